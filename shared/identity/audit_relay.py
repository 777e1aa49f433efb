"""Copies the audit log, in order, to the ``HEARTH_AUDIT`` JetStream stream, and checks it against it.

One relay runs at a time across all processes: the one holding a session advisory lock in
PostgreSQL (a gateway replica that cannot take it stays idle and tries again each round). The
relay's position is the stream itself, the id of the last entry it holds, so nothing is kept
locally and a relay that dies mid-batch resumes exactly where the stream ends: an entry is
copied once, in id order (writers serialise on the chain lock, so ids become visible in order).

``verify_stream`` compares the stream with the table: the hash chain inside the table finds
altered and deleted entries, but not the newest ones cut off its end, nor a run deleted and the
chain recomputed over the rest by someone who can write the table; the copy off the database
does, for every entry the relay had copied (it runs every second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
import nats.js.errors
import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import Bus
from shared.errors import HearthError
from shared.events.audit import AUDIT_ENTRIES, AUDIT_STREAM, AuditedEntry, AuditEntries
from shared.events.envelope import Envelope
from shared.identity.audit import COLUMNS

log = structlog.get_logger("audit.relay")

_RELAY_LOCK: Final = 0x48_45_41_52_54_48_52_4C  # "HEARTHRL": whoever holds it relays
_ENVELOPE_ROOM: Final = 2048
"""Bytes an envelope adds around the entries (ids, times, source), with room to spare."""
_SELECT: Final = text(
    f"SELECT id, {', '.join(COLUMNS)}, prev_hash, hash FROM audit_log "  # noqa: S608 - fixed columns
    "WHERE id > :after ORDER BY id LIMIT :limit"
)


def audited(row: Any) -> AuditedEntry:
    """A table row as the stream carries it."""
    values = dict(row)
    values["prev_hash"] = bytes(values["prev_hash"]).hex()
    values["hash"] = bytes(values["hash"]).hex()
    return AuditedEntry.model_validate(values)


def batches(entries: list[AuditedEntry], max_bytes: int) -> list[list[AuditedEntry]]:
    """Consecutive runs of ``entries`` whose JSON fits ``max_bytes`` (one entry always makes a batch)."""
    out: list[list[AuditedEntry]] = []
    current: list[AuditedEntry] = []
    size = 0
    for entry in entries:
        length = len(entry.model_dump_json()) + 1
        if current and size + length > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += length
    if current:
        out.append(current)
    return out


def _entries_of(msg: Any) -> list[AuditedEntry]:
    return AuditEntries.model_validate(json.loads(msg.data or b"{}")["data"]).entries


async def stream_head(bus: Bus) -> AuditedEntry | None:
    """The last entry the stream holds, or None while it holds none."""
    try:
        msg = await bus.js.get_last_msg(AUDIT_STREAM, AUDIT_ENTRIES)
    except nats.js.errors.NotFoundError:
        return None
    return _entries_of(msg)[-1]


@dataclass(frozen=True)
class StreamReport:
    """What comparing the audit stream with the table found."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str | None = None


async def verify_stream(engine: AsyncEngine, bus: Bus) -> StreamReport:
    """Every entry of the stream must be in the table, unchanged, and the stream's chain unbroken.

    This finds what the chain inside the table cannot: entries cut off its end, or a run of
    entries deleted and the chain recomputed over the rest, after the relay copied them.
    """
    seq, count, prev = 1, 0, None
    async with engine.connect() as conn:
        while True:
            try:
                msg = await bus.js.get_msg(AUDIT_STREAM, seq=seq, subject=AUDIT_ENTRIES, next=True)
            except nats.js.errors.NotFoundError:
                return StreamReport(True, count)
            entries = _entries_of(msg)
            ids = [entry.id for entry in entries]
            rows = (await conn.execute(text("SELECT id, hash FROM audit_log WHERE id = ANY(:ids)"), {"ids": ids})).all()
            stored: dict[int, bytes] = {row.id: bytes(row.hash) for row in rows}
            for entry in entries:
                why = None
                if prev is not None and entry.prev_hash != prev:
                    why = "the audit stream's chain breaks here: entries before it were deleted from the database"
                elif entry.id not in stored:
                    why = "it is in the audit stream but was deleted from the database"
                elif stored[entry.id].hex() != entry.hash:
                    why = "it differs from its copy in the audit stream"
                if why is not None:
                    return StreamReport(False, count, entry.id, why)
                prev = entry.hash
                count += 1
            if msg.seq is None:
                raise ValueError("JetStream answered a message without its sequence")
            seq = msg.seq + 1


class AuditRelay:
    """The loop that copies new audit entries to the stream (``run``), one round at a time (``relay``)."""

    def __init__(self, engine: AsyncEngine, bus: Bus, *, batch_rows: int = 1000, interval_s: float = 1.0) -> None:
        self._engine = engine
        self._bus = bus
        self._batch_rows = batch_rows
        self._interval_s = interval_s
        self._max_bytes = bus.settings.event_inline_max_bytes - _ENVELOPE_ROOM
        self._lock_conn: AsyncConnection | None = None
        self._cursor: int | None = None
        self._cursor_hash: str | None = None
        self.relayed = 0
        """Entries copied by this process since it started."""

    async def _leader(self) -> bool:
        """Whether this process holds the relay lock (taking it if free)."""
        if self._lock_conn is None:
            conn = await self._engine.connect()
            try:
                taken = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _RELAY_LOCK})).scalar()
            except BaseException:
                await conn.close()
                raise
            if not taken:
                await conn.close()
                return False
            self._lock_conn, self._cursor, self._cursor_hash = conn, None, None
            log.info("audit relay: this process relays the audit log")
        return True

    async def _release(self) -> None:
        conn, self._lock_conn, self._cursor, self._cursor_hash = self._lock_conn, None, None, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await conn.close()  # ends the session, and the lock with it

    async def relay(self) -> int:
        """Copy every entry the stream lacks, if this process is the relay; the number copied."""
        if not await self._leader():
            return 0
        if self._cursor is None:
            head = await stream_head(self._bus)
            self._cursor, self._cursor_hash = (head.id, head.hash) if head else (0, None)
        copied = 0
        while True:
            async with self._engine.connect() as conn:
                rows = (
                    (await conn.execute(_SELECT, {"after": self._cursor, "limit": self._batch_rows})).mappings().all()
                )
            if not rows:
                return copied
            entries = [audited(row) for row in rows]
            if self._cursor_hash is not None and entries[0].prev_hash != self._cursor_hash:
                # Copied all the same (nothing is dropped); verify_stream reports it from now on.
                log.error(
                    "audit log rewritten: the next entry does not chain onto the last one copied",
                    entry=entries[0].id,
                    last_copied=self._cursor,
                )
            for batch in batches(entries, self._max_bytes):
                envelope = Envelope(
                    id=f"audit-{batch[0].id}-{batch[-1].id}",  # a re-sent batch is dropped as a duplicate
                    type=AUDIT_ENTRIES,
                    source="hearth/audit-relay",
                    data=AuditEntries(entries=batch).model_dump(mode="json"),
                )
                await self._bus.publish(envelope)
                self._cursor, self._cursor_hash = batch[-1].id, batch[-1].hash
                copied += len(batch)
                self.relayed += len(batch)
            if len(rows) < self._batch_rows:
                return copied

    async def run(self) -> None:
        """Relay every ``interval_s`` until cancelled; a failure is logged and the round retried."""
        try:
            while True:
                try:
                    await self.relay()
                except (SQLAlchemyError, OSError, HearthError, nats.errors.Error) as exc:
                    # The database or NATS is away: start over from the stream's end next round.
                    log.warning("audit relay round failed; retrying", error=str(exc))
                    await self._release()
                await asyncio.sleep(self._interval_s)
        finally:
            await self._release()
