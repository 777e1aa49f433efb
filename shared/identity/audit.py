"""The audit trail: access and data decisions, key and policy events in the append-only ``audit_log``.

Access decisions are recorded on the request path only as far as a ``put_nowait`` on a bounded
queue; a background task (the gateway guard's) writes them in batches with ``flush``. A full
queue drops the entry, counts it and logs it: auditing never blocks or fails a request. Key
events are written by ``ApiKeyStore`` in the transaction that changes the key, so they are never
lost. Entries never hold a key, only its prefix.

The log is a hash chain: each row stores the SHA-256 of the previous row's hash and its own
canonical content (``entry_digest``), so ``verify_chain`` (``hearth audit verify``) finds any row
altered or deleted after the fact, even by a database superuser who lifts the append-only
trigger. Writers serialise on an advisory lock for the length of their transaction, which makes
the chain order the insertion order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

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
    # The data lifecycle (services/governance, the gateway's lifecycle routes)
    "lifecycle.archived",
    "lifecycle.restored",
    "lifecycle.assessed",
    "lifecycle.purged",
    "lifecycle.legal_hold",
    "lifecycle.key_rotated",
    "lifecycle.rewrapped",
)

COLUMNS: Final = (
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
_CHAINED: Final = (*COLUMNS, "prev_hash", "hash")
_INSERT: Final = text(
    f"INSERT INTO audit_log ({', '.join(_CHAINED)}) VALUES ({', '.join(':' + c for c in _CHAINED)})"  # noqa: S608 - fixed column names
)
GENESIS: Final = bytes(32)
"""The ``prev_hash`` of the first entry."""
CHAIN_LOCK: Final = 0x48_45_41_52_54_48_41_55  # "HEARTHAU": one advisory lock key for every writer


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


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def entry_digest(prev_hash: bytes, row: Mapping[Any, Any]) -> bytes:
    """SHA-256 over the previous hash and the entry's columns as canonical JSON."""
    content = json.dumps(
        {column: _canonical(row[column]) for column in COLUMNS},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(prev_hash + content.encode()).digest()


async def append(conn: AsyncConnection, entries: list[AuditEntry]) -> None:
    """Insert ``entries`` on ``conn`` (inside the caller's transaction), chained to the last entry."""
    if not entries:
        return
    # Held until the caller's transaction ends: no other writer can chain onto the same head.
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    head = (await conn.execute(text("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1"))).scalar()
    prev = bytes(head) if head is not None else GENESIS
    rows = []
    for entry in entries:
        row = asdict(entry)
        # Microseconds are what PostgreSQL keeps: hash exactly what will be read back.
        row["at"] = row["at"].astimezone(UTC)
        row["prev_hash"] = prev
        row["hash"] = prev = entry_digest(prev, row)
        rows.append(row)
    await conn.execute(_INSERT, rows)


class StreamCheck(Protocol):
    """What comparing the audit stream with the table found (``shared.identity.audit_relay``)."""

    @property
    def ok(self) -> bool: ...
    @property
    def entries(self) -> int: ...
    @property
    def first_bad_id(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found."""

    ok: bool
    entries: int
    head_id: int | None = None
    head_hash: str | None = None
    first_bad_id: int | None = None
    reason: str | None = None
    stream_entries: int | None = None
    """Entries compared with their copies in the audit stream (None: not compared)."""


async def verify_chain(engine: AsyncEngine, *, batch: int = 5000) -> ChainReport:
    """Walk the whole log in order, recomputing every link; the first break, if any."""
    prev, last_id, count = GENESIS, 0, 0
    columns = ", ".join(("id", *_CHAINED))
    async with engine.connect() as conn:
        while True:
            rows = (
                await conn.execute(
                    text(f"SELECT {columns} FROM audit_log WHERE id > :after ORDER BY id LIMIT :batch"),  # noqa: S608 - fixed columns
                    {"after": last_id, "batch": batch},
                )
            ).mappings()
            seen = 0
            for row in rows:
                seen += 1
                stored_prev = bytes(row["prev_hash"]) if row["prev_hash"] is not None else None
                if stored_prev != prev:
                    why = "an entry before it was deleted or altered" if count else "entries at the start were deleted"
                    return ChainReport(False, count, last_id or None, prev.hex(), row["id"], why)
                if bytes(row["hash"]) != entry_digest(prev, row):
                    return ChainReport(False, count, last_id or None, prev.hex(), row["id"], "its content was altered")
                prev, last_id = bytes(row["hash"]), row["id"]
                count += 1
            if seen < batch:
                break
    return ChainReport(True, count, last_id or None, prev.hex() if count else None)


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
        self,
        engine: AsyncEngine,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        interval_s: float = 0.5,
        stream_check: Callable[[], Awaitable[StreamCheck]] | None = None,
    ) -> None:
        self._engine = engine
        self._stream_check = stream_check
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

    async def verify(self) -> ChainReport:
        """The whole chain checked, then the copy in the audit stream if there is one (``GET /v1/audit/verify``)."""
        report = await verify_chain(self._engine)
        if self._stream_check is None or not report.ok:
            return report
        stream = await self._stream_check()
        if stream.ok:
            return replace(report, stream_entries=stream.entries)
        return replace(
            report, ok=False, first_bad_id=stream.first_bad_id, reason=stream.reason, stream_entries=stream.entries
        )

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
                    text(f"SELECT id, {', '.join(COLUMNS)} FROM audit_log {clause} ORDER BY id DESC LIMIT :limit"),  # noqa: S608 - fixed columns
                    params,
                )
            ).mappings()
            return [AuditRecord(**dict(row)) for row in rows]
