"""The lifecycle's view of the document tables: what is idle, what is due, tiers, purges, and their audit.

Every change of tier, every purge and every retention assessment that changed a date is written
with its audit entry (``shared.identity.audit``) in the same transaction, so the hash-chained log
and the rows never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.governance.config import TenantPolicy
from shared.blobstore import BlobRef
from shared.identity.audit import AuditEntry, append

ACTOR: Final = "governance"
"""The audit principal of what the schedules do (routes record the caller's key prefix)."""

# Rows a document's purge removes: everything derived from it. Media derivatives (thumbnails,
# subtitles) will be rows and blobs named by the document as well and join this list.
_DERIVED: Final = (
    "DELETE FROM doc_chunks WHERE doc_id = :id",
    "DELETE FROM doc_corrections WHERE doc_id = :id",
    "DELETE FROM processed_docs WHERE doc_id = :id",
    "DELETE FROM workflow_records WHERE workflow_id = :run_id",
)
_TOMBSTONE: Final = (
    "UPDATE raw_docs SET purged_at = now(), tier = 'purged', updated_at = now(), blob = NULL, inline_text = NULL, "
    "inline_sealed = NULL, data_key = NULL, filename = NULL, metadata = '{}'::jsonb, error = NULL, cold_bytes = NULL "
    "WHERE id = :id"
)
_FILES: Final = (
    "SELECT r.id, r.tenant, r.run_id, r.tier, r.tiered_at, r.retention_class, r.retain_until, r.sha256, r.blob, "
    "p.ocr_result "
    "FROM raw_docs r LEFT JOIN processed_docs p ON p.doc_id = r.id "
)


@dataclass(frozen=True)
class DocumentFiles:
    """A document and the blobs that belong to it (its original, its OCR result)."""

    id: str
    tenant: str
    run_id: str | None
    blobs: tuple[BlobRef, ...]
    tier: str = "hot"
    tiered_at: datetime | None = None
    retention_class: str | None = None
    retain_until: datetime | None = None
    sha256: str | None = None


def _ref(value: Any) -> BlobRef | None:
    if value is None:
        return None
    return BlobRef.model_validate(json.loads(value) if isinstance(value, str) else value)


def _files(row: Any) -> DocumentFiles:
    refs = tuple(r for r in (_ref(row.blob), _ref(row.ocr_result)) if r is not None)
    return DocumentFiles(
        id=row.id,
        tenant=row.tenant,
        run_id=row.run_id,
        blobs=refs,
        tier=row.tier,
        tiered_at=row.tiered_at,
        retention_class=row.retention_class,
        retain_until=row.retain_until,
        sha256=row.sha256,
    )


def lifecycle_entry(event: str, tenant: str, doc_id: str | None, reason: str, *, run: str | None = None) -> AuditEntry:
    """An audit entry of the lifecycle (``lifecycle.*``), by the governance service."""
    return AuditEntry(
        event=event,
        decision="allow",
        reason=reason,
        principal=ACTOR,
        tenant=tenant,
        route=run,
        subject=f"document:{doc_id}" if doc_id else None,
    )


class LifecycleStore:
    """SQL of the lifecycle workflows' activities."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def audit(self, entries: list[AuditEntry]) -> None:
        async with self._engine.begin() as conn:
            await append(conn, entries)

    async def tenants(self) -> list[str]:
        """Tenants that hold documents not purged yet."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(text("SELECT DISTINCT tenant FROM raw_docs WHERE purged_at IS NULL ORDER BY 1"))
            return [r[0] for r in rows]

    # ---- retention ---------------------------------------------------------------------------
    async def assess(self, policy: TenantPolicy, *, run: str | None = None) -> int:
        """Set ``retention_class``/``retain_until`` of the tenant's documents from ``policy``; rows changed.

        Every run looks at every document of the tenant, so a changed policy, or a person's
        correction of a class, counts from the next run. Documents still processing have no class
        yet and wait.
        """
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT r.id, r.created_at, p.doc_class, r.retention_class, r.retain_until FROM raw_docs r "
                        "LEFT JOIN processed_docs p ON p.doc_id = r.id "
                        "WHERE r.tenant = :tenant AND r.purged_at IS NULL AND r.status <> 'processing'"
                    ),
                    {"tenant": policy.tenant},
                )
            ).all()
            changes = []
            for row in rows:
                cls, until = policy.retain_until(row.doc_class, row.created_at)
                if cls != row.retention_class or until != row.retain_until:
                    changes.append({"id": row.id, "cls": cls, "until": until})
            if changes:
                await conn.execute(
                    text("UPDATE raw_docs SET retention_class = :cls, retain_until = :until WHERE id = :id"), changes
                )
                reason = f"retention assessed for {len(changes)} documents"
                await append(conn, [lifecycle_entry("lifecycle.assessed", policy.tenant, None, reason, run=run)])
        return len(changes)

    async def files(self, doc_id: str) -> DocumentFiles | None:
        """One document and its files (``None`` when there is no such document)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(text(_FILES + "WHERE r.id = :id"), {"id": doc_id})).one_or_none()
        return _files(row) if row is not None else None

    async def due(
        self, tenant: str, *, after: str = "", limit: int, now: datetime | None = None
    ) -> list[DocumentFiles]:
        """The tenant's documents past their retention and not under legal hold."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    _FILES + "WHERE r.tenant = :tenant AND r.purged_at IS NULL AND NOT r.legal_hold "
                    "AND r.retain_until <= :now AND r.status <> 'processing' AND r.id > :after "
                    "ORDER BY r.id LIMIT :limit"
                ),
                {"tenant": tenant, "now": now or datetime.now(UTC), "after": after, "limit": limit},
            )
            return [_files(r) for r in rows]

    async def purge(
        self,
        doc_id: str,
        delete_files: Callable[[DocumentFiles], Awaitable[int]],
        *,
        policy: str,
        run: str | None = None,
    ) -> DocumentFiles | None:
        """Purge one document, unless it is held or was purged already; ``None`` then.

        The row is locked first, so a legal hold set meanwhile waits for this transaction and then
        finds a tombstone; the files go (``delete_files``) while the lock is held, the derived
        rows and the content columns after, the audit entry with them. A failure rolls the rows
        back and a later run finishes (deleting a file that is gone already is no error).
        """
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        _FILES + "WHERE r.id = :id AND r.purged_at IS NULL AND NOT r.legal_hold "
                        "AND r.retain_until <= now() FOR UPDATE OF r"
                    ),
                    {"id": doc_id},
                )
            ).one_or_none()
            if row is None:
                return None
            doc = _files(row)
            removed = await delete_files(doc)
            for statement in _DERIVED:
                await conn.execute(text(statement), {"id": doc_id, "run_id": doc.run_id})
            await conn.execute(text(_TOMBSTONE), {"id": doc_id})
            reason = (
                f"purged: class {doc.retention_class or 'default'} past retention ({policy}) since "
                f"{doc.retain_until.isoformat() if doc.retain_until else '?'}; {removed} files and all derived data "
                f"deleted; sha256 {doc.sha256 or '-'} kept"
            )
            await append(conn, [lifecycle_entry("lifecycle.purged", doc.tenant, doc_id, reason, run=run)])
        return doc

    # ---- tiering -----------------------------------------------------------------------------
    async def idle(
        self, policy: TenantPolicy, *, after: str = "", limit: int, now: datetime | None = None
    ) -> list[DocumentFiles]:
        """The tenant's hot documents with files, none of them read since the policy's idle time."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    _FILES + "WHERE r.tenant = :tenant AND r.tier = 'hot' AND r.purged_at IS NULL "
                    "AND r.status <> 'processing' AND (r.blob IS NOT NULL OR p.ocr_result IS NOT NULL) "
                    "AND coalesce(r.last_accessed_at, r.updated_at) <= :before AND r.id > :after "
                    "ORDER BY r.id LIMIT :limit"
                ),
                {"tenant": policy.tenant, "before": policy.idle_since(now), "after": after, "limit": limit},
            )
            return [_files(r) for r in rows]

    async def mark_cold(
        self, doc: DocumentFiles, *, stored: int, idle_since: datetime, reason: str, run: str | None = None
    ) -> bool:
        """``tier = 'cold'`` if the document is still hot and idle (a read meanwhile keeps it hot)."""
        async with self._engine.begin() as conn:
            moved = (
                await conn.execute(
                    text(
                        "UPDATE raw_docs SET tier = 'cold', tiered_at = now(), cold_bytes = :stored "
                        "WHERE id = :id AND tier = 'hot' AND purged_at IS NULL "
                        "AND coalesce(last_accessed_at, updated_at) <= :before RETURNING id"
                    ),
                    {"id": doc.id, "stored": stored, "before": idle_since},
                )
            ).scalar_one_or_none()
            if moved is not None:
                await append(conn, [lifecycle_entry("lifecycle.archived", doc.tenant, doc.id, reason, run=run)])
        return moved is not None

    async def cold(self, tenant: str, *, after: str, limit: int) -> list[DocumentFiles]:
        """The tenant's cold documents, by id after ``after`` (for reconciling them with the stores)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    _FILES + "WHERE r.tenant = :tenant AND r.tier = 'cold' AND r.id > :after ORDER BY r.id LIMIT :limit"
                ),
                {"tenant": tenant, "after": after, "limit": limit},
            )
            return [_files(r) for r in rows]

    async def mark_hot(self, doc: DocumentFiles, *, reason: str, run: str | None = None) -> bool:
        """``tier = 'hot'`` for a cold document whose files were restored (a read anywhere)."""
        async with self._engine.begin() as conn:
            moved = (
                await conn.execute(
                    text(
                        "UPDATE raw_docs SET tier = 'hot', tiered_at = now(), cold_bytes = NULL, "
                        "last_accessed_at = now() "
                        "WHERE id = :id AND tier = 'cold' RETURNING id"
                    ),
                    {"id": doc.id},
                )
            ).scalar_one_or_none()
            if moved is not None:
                await append(conn, [lifecycle_entry("lifecycle.restored", doc.tenant, doc.id, reason, run=run)])
        return moved is not None

    # ---- key rotation ------------------------------------------------------------------------
    async def rewrap_row_keys(self, tenant: str, rewrap: Callable[[str], Awaitable[str | None]]) -> int:
        """Rewrap the tenant's column data keys (``shared.crypto.columns``: per document, per index).

        ``rewrap`` gets a stored key header and returns the new one, or ``None`` when it is on the
        newest version already. A row rewritten meanwhile keeps its own (newer) key. Rows changed.
        """
        changed = 0
        for table, id_column in (("raw_docs", "id"), ("tenant_index_keys", "tenant")):
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(f"SELECT {id_column}, data_key FROM {table} WHERE tenant = :t AND data_key IS NOT NULL"),  # noqa: S608 - fixed names
                        {"t": tenant},
                    )
                ).all()
            for row_id, stored in rows:
                fresh = await rewrap(stored)
                if fresh is None:
                    continue
                async with self._engine.begin() as conn:
                    result = await conn.execute(
                        text(f"UPDATE {table} SET data_key = :new WHERE {id_column} = :id AND data_key = :old"),  # noqa: S608 - fixed names
                        {"new": fresh, "id": row_id, "old": stored},
                    )
                changed += result.rowcount
        return changed
