"""Events of the audit trail (``hearth.audit.*``): the audit log's entries, copied off the database.

The ``audit_log`` table is the record; ``shared.identity.audit_relay`` copies every entry, in
order and with its chain hashes, to the ``HEARTH_AUDIT`` stream, which keeps them for ten years.
The copy is an anchor the database cannot rewrite: ``verify_chain`` finds entries altered or
deleted inside the table, and the stream's last entry shows whether the table's newest entries
were cut off (``verify_anchor``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, Field

from shared.events.catalog import CATALOG, DAY, StreamSpec, register_event

AUDIT_STREAM: Final = "HEARTH_AUDIT"
AUDIT_RETENTION_S: Final = 3650 * DAY
AUDIT_ENTRIES: Final = "hearth.audit.entries.v1"


class AuditedEntry(BaseModel):
    """One audit log row as stored, chain hashes in hex."""

    id: int = Field(ge=1)
    at: datetime
    event: str
    decision: str
    reason: str
    principal: str | None = None
    tenant: str | None = None
    role: str | None = None
    method: str | None = None
    route: str | None = None
    subject: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuditEntries(BaseModel):
    """``hearth.audit.entries.v1``: consecutive audit log entries, oldest first.

    Entries are batched (one message per relay round, bounded by the inline event limit) because
    every request is audited; each entry carries its own tenant, the envelope the platform's.
    """

    entries: list[AuditedEntry] = Field(min_length=1)


CATALOG.register_stream(
    StreamSpec(
        name=AUDIT_STREAM,
        subjects=("hearth.audit.>",),
        description="Hearth audit log entries (a copy of audit_log, in order, with chain hashes)",
        max_age_s=AUDIT_RETENTION_S,
    )
)
register_event(
    AUDIT_ENTRIES,
    AuditEntries,
    "Audit log entries (access and data decisions, key and policy events), relayed in order from the "
    "database with their hash chain; kept ten years.",
)
