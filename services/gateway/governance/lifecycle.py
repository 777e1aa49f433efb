"""Data lifecycle routes: legal holds, a document's file (restored from the cold tier), the lifecycle report.

* ``PUT /v1/documents/{id}/legal-hold`` (``{"hold": true, "reason": "..."}``) and ``DELETE``: a
  held document is never purged. Admin, or a tenant admin for its own tenant's documents, within
  its clearance (a document above it is a 404, as for a read).
* ``GET /v1/documents/{id}/file``: the original file. When the document's files are in the cold
  tier the blob store restores them on this read (``shared.blobstore``), and the row becomes hot
  again; every read counts as an access for the idle clock.
* ``GET /v1/governance/lifecycle``: documents and bytes per tier (hot, cold, purged) per tenant
  (a tenant admin: its own tenant only), legal holds, and the schedules' next runs.

Every hold change and every restore is in the hash-chained audit log, in the transaction that
makes it. The schedules themselves run in the governance service (``services/governance``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast
from urllib.parse import quote

from litestar import Request, delete, get, put
from litestar.di import Provide
from litestar.response import Stream
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client as TemporalClient

from services.gateway.auth import AccessGuard
from services.gateway.documents.handlers import readable_document
from services.gateway.documents.store import DocumentStore
from services.gateway.requests import json_body, principal_of, tenant_scope, validated
from shared.blobstore import BlobRef, BlobStore
from shared.errors import HearthError, NotFound
from shared.identity.apikeys import Principal
from shared.identity.audit import AuditEntry, append
from shared.lifecycle import SCHEDULES, TIERS, DocumentPurged
from shared.logging import get_logger

log = get_logger(__name__)

_HOLDS_LISTED: Final = 200


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold: bool = Field(True, description="true: put on hold; false: release (as DELETE does).")
    reason: str | None = Field(
        None, min_length=1, max_length=500, description="Why (a case, a request); required to hold."
    )

    @model_validator(mode="after")
    def _reason_to_hold(self) -> HoldRequest:
        if self.hold and not self.reason:
            raise ValueError("a legal hold needs a reason")
        return self


class HoldState(BaseModel):
    id: str
    tenant: str
    legal_hold: bool
    reason: str | None = None
    by: str | None = None
    at: datetime | None = None


class TierCount(BaseModel):
    documents: int = 0
    bytes: int = Field(0, description="Plaintext bytes of the files (purged: what the originals took).")
    stored_bytes: int | None = Field(None, description="Cold tier only: bytes the compressed, sealed copies take.")


class TenantLifecycle(BaseModel):
    tenant: str
    hot: TierCount = Field(default_factory=TierCount)
    cold: TierCount = Field(default_factory=TierCount)
    purged: TierCount = Field(default_factory=TierCount)
    legal_hold: int = Field(0, description="Documents under legal hold.")


class ScheduleState(BaseModel):
    id: str
    workflow: str
    paused: bool = False
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_run_id: str | None = None


class LifecycleReport(BaseModel):
    tenants: list[TenantLifecycle]
    totals: TenantLifecycle
    legal_holds: list[HoldState] = Field(description=f"Documents under legal hold (the first {_HOLDS_LISTED}).")
    schedules: list[ScheduleState]
    schedules_error: str | None = Field(None, description="Why the schedules could not be read (Temporal down).")


def _ref(value: Any) -> BlobRef | None:
    if value is None:
        return None
    return BlobRef.model_validate(json.loads(value) if isinstance(value, str) else value)


@dataclass
class LifecycleAdmin:
    """The SQL and stores behind the lifecycle routes."""

    engine: AsyncEngine
    blobs: BlobStore
    temporal: TemporalClient | None = None

    async def set_hold(
        self, doc_id: str, *, tenant: str | None, hold: bool, reason: str | None, by: Principal
    ) -> HoldState:
        """Put a document on legal hold or release it (audited); ``NotFound`` / ``DocumentPurged`` as for a read."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, tenant, purged_at, legal_hold FROM raw_docs WHERE id = :id "
                        "AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant) FOR UPDATE"
                    ),
                    {"id": doc_id, "tenant": tenant},
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"no document {doc_id!r}", code="unknown-document")
            if row.purged_at is not None:
                raise DocumentPurged(
                    f"document {doc_id!r} was purged at {row.purged_at.isoformat()}",
                    extra={"purged_at": row.purged_at.isoformat()},
                )
            state = (
                await conn.execute(
                    text(
                        "UPDATE raw_docs SET legal_hold = :hold, legal_hold_reason = :reason, legal_hold_by = :by, "
                        "legal_hold_at = CASE WHEN :hold THEN now() ELSE NULL END WHERE id = :id "
                        "RETURNING id, tenant, legal_hold, legal_hold_reason AS reason, legal_hold_by AS by, "
                        "legal_hold_at AS at"
                    ),
                    {"id": doc_id, "hold": hold, "reason": reason if hold else None, "by": by.name if hold else None},
                )
            ).one()
            if row.legal_hold != hold:
                what = f"legal hold set: {reason}" if hold else "legal hold released"
                await append(
                    conn,
                    [
                        AuditEntry(
                            event="lifecycle.legal_hold",
                            decision="allow",
                            reason=what,
                            principal=by.prefix or by.name,
                            tenant=row.tenant,
                            role=by.role,
                            subject=f"document:{doc_id}",
                        )
                    ],
                )
        return HoldState.model_validate(dict(state._mapping))

    async def file_of(self, doc_id: str) -> tuple[BlobRef | None, str]:
        """The document's original file and its tier."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(text("SELECT blob, tier FROM raw_docs WHERE id = :id"), {"id": doc_id})).one()
        return _ref(row.blob), row.tier

    async def accessed(self, doc_id: str, *, was_cold: bool, by: Principal) -> bool:
        """A read of the document's file: the idle clock restarts; a cold document is hot again (audited).

        False when the document was purged meanwhile (the read raced the retention run).
        """
        async with self.engine.begin() as conn:
            moved = (
                await conn.execute(
                    text(
                        "UPDATE raw_docs SET last_accessed_at = now(), "
                        "tier = CASE WHEN tier = 'cold' THEN 'hot' ELSE tier END, "
                        "tiered_at = CASE WHEN tier = 'cold' THEN now() ELSE tiered_at END, "
                        "cold_bytes = CASE WHEN tier = 'cold' THEN NULL ELSE cold_bytes END "
                        "WHERE id = :id AND purged_at IS NULL RETURNING tenant"
                    ),
                    {"id": doc_id},
                )
            ).scalar_one_or_none()
            if moved is not None and was_cold:
                entry = AuditEntry(
                    event="lifecycle.restored",
                    decision="allow",
                    reason="restored from the cold tier by a read of its file",
                    principal=by.prefix or by.name,
                    tenant=moved,
                    role=by.role,
                    subject=f"document:{doc_id}",
                )
                await append(conn, [entry])
        return moved is not None

    async def report(self, *, tenant: str | None) -> LifecycleReport:
        """Counts and bytes per tier per tenant, holds, schedules (``tenant=None``: every tenant)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT r.tenant, r.tier, count(*) AS documents, "
                        "coalesce(sum(coalesce(r.size, 0) + coalesce((p.ocr_result->>'size')::bigint, 0)), 0) "
                        "AS bytes, "
                        "coalesce(sum(r.cold_bytes), 0) AS stored, count(*) FILTER (WHERE r.legal_hold) AS held "
                        "FROM raw_docs r LEFT JOIN processed_docs p ON p.doc_id = r.id "
                        "WHERE CAST(:tenant AS text) IS NULL OR r.tenant = :tenant GROUP BY r.tenant, r.tier "
                        "ORDER BY r.tenant"
                    ),
                    {"tenant": tenant},
                )
            ).all()
            holds = (
                await conn.execute(
                    text(
                        "SELECT id, tenant, legal_hold, legal_hold_reason AS reason, legal_hold_by AS by, "
                        "legal_hold_at AS at FROM raw_docs WHERE legal_hold "
                        "AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant) ORDER BY legal_hold_at DESC LIMIT :n"
                    ),
                    {"tenant": tenant, "n": _HOLDS_LISTED},
                )
            ).all()
        per_tenant: dict[str, TenantLifecycle] = {}
        totals = TenantLifecycle(tenant="*")
        for row in rows:
            if row.tier not in TIERS:
                continue
            for target in (per_tenant.setdefault(row.tenant, TenantLifecycle(tenant=row.tenant)), totals):
                count: TierCount = getattr(target, row.tier)
                count.documents += row.documents
                count.bytes += int(row.bytes)
                if row.tier == "cold":
                    count.stored_bytes = (count.stored_bytes or 0) + int(row.stored)
                target.legal_hold += row.held
        schedules, error = await self._schedules()
        return LifecycleReport(
            tenants=list(per_tenant.values()),
            totals=totals,
            legal_holds=[HoldState.model_validate(dict(h._mapping)) for h in holds],
            schedules=schedules,
            schedules_error=error,
        )

    async def _schedules(self) -> tuple[list[ScheduleState], str | None]:
        if self.temporal is None:
            return [], "no Temporal client"
        states = []
        try:
            for schedule_id, workflow in SCHEDULES.items():
                described = await self.temporal.get_schedule_handle(schedule_id).describe()
                info = described.info
                last = info.recent_actions[-1] if info.recent_actions else None
                action = getattr(last, "action", None) if last else None
                states.append(
                    ScheduleState(
                        id=schedule_id,
                        workflow=workflow,
                        paused=described.schedule.state.paused,
                        next_run=info.next_action_times[0] if info.next_action_times else None,
                        last_run=last.started_at if last else None,
                        last_run_id=getattr(action, "workflow_id", None),
                    )
                )
        except Exception as exc:  # Temporal down or a schedule not made yet: the counts still answer
            log.warning("lifecycle schedules unreadable", error=str(exc))
            return states, f"{type(exc).__name__}: {exc}"
        return states, None


def dependencies(admin: LifecycleAdmin) -> dict[str, Provide]:
    return {"lifecycle_admin": Provide(lambda: admin, use_cache=True, sync_to_thread=False)}


async def _readable_document(
    request: Request[Any, Any, Any], store: DocumentStore, access: AccessGuard, doc_id: str
) -> str:
    """The document's file name, if the caller may read it (the same 404 as a missing one otherwise; 410 purged)."""
    doc = await readable_document(request, access, store, doc_id)
    return doc.filename or doc_id


@put(
    "/v1/documents/{document_id:str}/legal-hold",
    tags=["governance"],
    summary="Put a document on legal hold: it is never purged while held",
    description='`{"hold": true, "reason": "case 2024-17"}` (`"hold": false` releases, like DELETE). Admin, or a '
    "tenant admin for its own tenant's documents within its clearance (otherwise the same 404 as a missing "
    "document); audited (`lifecycle.legal_hold`). 410 for a purged document.",
)
async def put_legal_hold(
    request: Request[Any, Any, Any],
    lifecycle_admin: LifecycleAdmin,
    document_store: DocumentStore,
    access: AccessGuard,
    document_id: str,
) -> HoldState:
    body = validated(HoldRequest, await json_body(request))
    # Above the caller's clearance a document is as missing as for a read: no hold, no existence leak.
    await _readable_document(request, document_store, access, document_id)
    principal = principal_of(request)
    return await lifecycle_admin.set_hold(
        document_id, tenant=tenant_scope(principal), hold=body.hold, reason=body.reason, by=principal
    )


@delete(
    "/v1/documents/{document_id:str}/legal-hold",
    tags=["governance"],
    summary="Release a document's legal hold (its retention applies again)",
    status_code=200,
)
async def delete_legal_hold(
    request: Request[Any, Any, Any],
    lifecycle_admin: LifecycleAdmin,
    document_store: DocumentStore,
    access: AccessGuard,
    document_id: str,
) -> HoldState:
    await _readable_document(request, document_store, access, document_id)  # as for PUT
    principal = principal_of(request)
    return await lifecycle_admin.set_hold(
        document_id, tenant=tenant_scope(principal), hold=False, reason=None, by=principal
    )


@get(
    "/v1/documents/{document_id:str}/file",
    tags=["documents"],
    summary="The document's original file (restored from the cold tier when it is there)",
    description="Streams the file as it was submitted (its SHA-256 is checked as it streams). A document whose "
    "files moved to the cold tier is restored on this read and is hot again. 404 for a document submitted as "
    "inline text (it has no file), 410 for a purged one.",
)
async def document_file(
    request: Request[Any, Any, Any],
    document_store: DocumentStore,
    access: AccessGuard,
    lifecycle_admin: LifecycleAdmin,
    document_id: str,
) -> Stream:
    filename = await _readable_document(request, document_store, access, document_id)
    ref, tier = await lifecycle_admin.file_of(document_id)
    if ref is None:
        raise NotFound(f"document {document_id!r} was submitted as text and has no file", code="no-file")
    chunks = lifecycle_admin.blobs.open(ref)
    # The first chunk before the answer starts: a restore (or a missing file) shows as a problem, not a cut stream.
    first = await anext(chunks, b"")
    if not await lifecycle_admin.accessed(document_id, was_cold=tier == "cold", by=principal_of(request)):
        await cast(AsyncGenerator[bytes, None], chunks).aclose()
        with contextlib.suppress(NotFound):  # what this read restored must not outlive the purge
            await lifecycle_admin.blobs.delete(ref)
        raise DocumentPurged(f"document {document_id!r} was purged while it was read")

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        try:
            async for chunk in chunks:
                yield chunk
        except HearthError as exc:  # the client sees a cut answer; the log says why
            log.error("document file stream failed", document=document_id, error=exc.detail)
            raise

    return Stream(
        body(),
        media_type=ref.content_type,
        headers={
            "Content-Length": str(ref.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "X-Content-SHA256": ref.sha256,
        },
    )


@get(
    "/v1/governance/lifecycle",
    tags=["governance"],
    summary="Documents and bytes per storage tier (hot, cold, purged), legal holds, the lifecycle schedules",
    description="Per tenant: the admin sees every tenant, a tenant admin its own. `schedules`: the tiering, "
    "retention and key-rotation schedules with their next and last run (Temporal).",
)
async def lifecycle_report(request: Request[Any, Any, Any], lifecycle_admin: LifecycleAdmin) -> LifecycleReport:
    return await lifecycle_admin.report(tenant=tenant_scope(principal_of(request)))


ROUTES: Final = [put_legal_hold, delete_legal_hold, document_file, lifecycle_report]
