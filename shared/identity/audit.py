"""The audit trail: access and data decisions, key and policy events in the append-only ``audit_log``.

Access decisions are recorded on the request path only as far as a ``put_nowait`` on a bounded
queue; a background task (the gateway guard's) writes them in batches with ``flush``. A full
queue drops the entry, counts it and logs it: auditing never blocks or fails a request. Key
events are written by ``ApiKeyStore`` in the transaction that changes the key, so they are never
lost. Entries never hold a key, only its prefix.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger("audit")

Decision = Literal["allow", "deny"]
EVENTS: Final = (
    "access",
    "key.created",
    "key.rotated",
    "key.revoked",
    "authz.changed",
    "data.read",
    "data.write",
    "data.search",
)

_COLUMNS: Final = (
    "at",
    "event",
    "principal",
    "tenant",
    "role",
    "method",
    "route",
    "decision",
    "reason",
    "subject",
    "request_id",
    "trace_id",
)
_INSERT: Final = text(
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"  # noqa: S608 - fixed column names
)


@dataclass(frozen=True)
class AuditEntry:
    """One audit row. ``principal`` and ``subject`` are key prefixes, never keys."""

    event: str
    decision: Decision
    reason: str
    principal: str | None = None
    tenant: str | None = None
    role: str | None = None
    method: str | None = None
    route: str | None = None
    subject: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class AuditRecord(AuditEntry):
    """An entry as read back, with its position in the log."""

    id: int = 0


async def append(conn: AsyncConnection, entries: list[AuditEntry]) -> None:
    """Insert ``entries`` on ``conn`` (inside the caller's transaction)."""
    if entries:
        await conn.execute(_INSERT, [asdict(e) for e in entries])


def since_of(value: str, now: datetime | None = None) -> datetime:
    """``since`` as a time: an ISO 8601 timestamp, or a duration back from now (``1h``, ``30m``)."""
    from shared.durations import parse_duration

    now = now or datetime.now(UTC)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            return datetime.fromtimestamp(now.timestamp() - parse_duration(value), UTC)
        except ValueError:
            raise ValueError(f"since={value!r} is neither an ISO 8601 time nor a duration such as 1h") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class AuditLog:
    """Batched, non-blocking writer of access decisions, and the reader behind ``GET /v1/audit``."""

    def __init__(
        self, engine: AsyncEngine, *, queue_size: int = 10_000, batch_size: int = 500, interval_s: float = 0.5
    ) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._interval_s = interval_s
        self.dropped = 0
        """Entries refused because the queue was full (since the process started)."""

    def record(self, entry: AuditEntry) -> None:
        """Queue ``entry`` for writing; never blocks, never raises (a full queue drops and counts)."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            # One line for the first drop and then one per thousand: a flood must not flood the log.
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit queue full: entries dropped", dropped=self.dropped, queue=self._queue.maxsize)

    def pending(self) -> int:
        return self._queue.qsize()

    def _take(self, batch: list[AuditEntry]) -> None:
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def flush(self) -> int:
        """Write everything queued now; the number written. A database error leaves nothing lost but is raised."""
        written = 0
        while True:
            batch: list[AuditEntry] = []
            self._take(batch)
            if not batch:
                return written
            try:
                async with self._engine.begin() as conn:
                    await append(conn, batch)
            except BaseException:
                # Back to the queue (as far as room allows) so the next round retries them.
                for entry in batch:
                    self.record(entry)
                raise
            written += len(batch)

    async def read(
        self,
        *,
        since: datetime | None = None,
        principal: str | None = None,
        decision: str | None = None,
        event: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Entries matching every given filter, newest first."""
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        for column, value in (("principal", principal), ("decision", decision), ("event", event)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        if since is not None:
            where.append("at >= :since")
            params["since"] = since
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(f"SELECT id, {', '.join(_COLUMNS)} FROM audit_log {clause} ORDER BY id DESC LIMIT :limit"),  # noqa: S608 - fixed columns
                    params,
                )
            ).mappings()
            return [AuditRecord(**dict(row)) for row in rows]
