"""Messages and names of the data lifecycle: tiering, retention, key rotation (the governance service).

The three workflows run on task queue ``hearth-governance``, each started by a Temporal schedule
the governance service keeps (``SCHEDULES``); their activities live in
``services/governance/activities.py``. The gateway reads the schedules for
``GET /v1/governance/lifecycle``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, Field

from shared.errors import NotFound

TASK_QUEUE: Final = "hearth-governance"
TIERING_WORKFLOW: Final = "lifecycle_tiering"
RETENTION_WORKFLOW: Final = "lifecycle_retention"
ROTATION_WORKFLOW: Final = "key_rotation"
SCHEDULES: Final[dict[str, str]] = {
    "hearth-lifecycle-tiering": TIERING_WORKFLOW,
    "hearth-lifecycle-retention": RETENTION_WORKFLOW,
    "hearth-key-rotation": ROTATION_WORKFLOW,
}
"""Schedule id -> the workflow it starts."""
TIERS: Final = ("hot", "cold", "purged")


class DocumentPurged(NotFound):
    """A purged document: HTTP 410, with its tombstone (what the audit trail needs, no content)."""

    status = 410
    code = "document-purged"
    title = "Document purged"
    tenant: str = ""
    sensitivity: str = ""

    @classmethod
    def of(cls, row: dict[str, Any]) -> DocumentPurged:
        """From a ``raw_docs`` row: id, tenant, class, times and the original's size and SHA-256."""
        tombstone = {
            "document_id": row.get("id"),
            "tenant": row.get("tenant"),
            "retention_class": row.get("retention_class"),
            "created_at": row.get("created_at"),
            "retain_until": row.get("retain_until"),
            "purged_at": row.get("purged_at"),
            "size": row.get("size"),
            "sha256": row.get("sha256"),
        }
        when = tombstone["purged_at"]
        stamp = when.isoformat() if isinstance(when, datetime) else str(when)
        extra = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in tombstone.items()}
        purged = cls(f"document {row.get('id')!r} was purged at {stamp} (retention ended)", extra={"tombstone": extra})
        # Not in the answer: what the gateway checks the caller's clearance against before it says 410.
        purged.tenant = str(row.get("tenant") or "")
        purged.sensitivity = str(row.get("sensitivity") or "")
        return purged


class TenantBatch(BaseModel):
    """A page of one tenant's documents: ids after ``after``, at most ``limit``."""

    tenant: str
    after: str = ""
    limit: int = 200
    run: str | None = None


class DocumentIds(BaseModel):
    ids: list[str] = Field(default_factory=list)


class TenantList(BaseModel):
    tenants: list[str] = Field(default_factory=list)


class DocumentTask(BaseModel):
    """One document to move or purge, and the run doing it (named in the audit entry)."""

    tenant: str
    document_id: str
    run: str | None = None


class Archived(BaseModel):
    """What moving one document to the cold tier did."""

    document_id: str
    moved: bool = Field(description="False: it was read meanwhile, or is cold or purged already.")
    files: int = 0
    bytes: int = Field(0, description="Plaintext bytes of its files.")
    stored_bytes: int = Field(0, description="Bytes its cold copies take (compressed, sealed).")
    reason: str = ""


class Reconciled(BaseModel):
    """Cold documents checked against the stores: restored elsewhere, or a move to finish."""

    tenant: str
    checked: int = 0
    restored: int = 0
    finished: int = 0


class Assessed(BaseModel):
    tenant: str
    changed: int = 0


class Purged(BaseModel):
    document_id: str
    purged: bool = Field(description="False: held, purged already, or not due any more.")
    files: int = 0


class KeyStatus(BaseModel):
    """A tenant key's newest version and its age; ``due`` when the policy wants a new one."""

    tenant: str
    version: int
    created_at: datetime | None = None
    due: bool = False


class KeyStatuses(BaseModel):
    keys: list[KeyStatus] = Field(default_factory=list)


class Rotated(BaseModel):
    tenant: str
    version: int


class Rewrapped(BaseModel):
    """Stored data keys moved to the newest version of their tenant key (blobs, cold copies, rows)."""

    blobs: int = 0
    cold: int = 0
    rows: int = 0
    checked: int = 0


class LifecycleSummary(BaseModel):
    """What one workflow run did (its result, visible in the Temporal UI)."""

    workflow: str
    tenants: int = 0
    archived: int = 0
    restored: int = 0
    finished: int = 0
    purged: int = 0
    assessed: int = 0
    rotated: list[Rotated] = Field(default_factory=list)
    rewrapped: Rewrapped | None = None
    failed: list[str] = Field(default_factory=list, description="Documents (or tenants) that failed, with why.")


class LifecycleRun(BaseModel):
    """Input of each lifecycle workflow (a schedule starts it with the defaults)."""

    batch: int = Field(200, ge=1, le=10_000, description="Documents per selection.")
    tenants: list[str] = Field(default_factory=list, description="Only these tenants; empty: every tenant.")
    resume_tenant: str = Field("", description="Continued as new: the tenant it stopped in.")
    resume_after: str = Field("", description="Continued as new: the last document id it had selected.")
    summary: LifecycleSummary | None = Field(None, description="Continued as new: the counts so far.")
