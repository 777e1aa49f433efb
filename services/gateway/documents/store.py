"""Documents in PostgreSQL: ``raw_docs`` (what was submitted) and ``processed_docs`` (the results)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.documents.cipher import INLINE, PROCESSED, DocumentCipher, entity_terms, valid_periods
from shared import segment
from shared.blobstore import BlobRef
from shared.classifier import ClassifierStore
from shared.documents import Classification, Entity
from shared.errors import Conflict, NotFound
from shared.identity.authz import DEFAULT_SENSITIVITY, Sensitivity
from shared.lifecycle import DocumentPurged

DocumentStatus = Literal["processing", "processed", "failed"]
ClassMethod = Literal["rules", "learned", "user"]


class NewDocument(BaseModel):
    """A document about to be recorded."""

    id: str
    tenant: str
    source_system: str
    external_id: str | None = None
    filename: str | None = None
    content_type: str | None = None
    blob: BlobRef | None = None
    inline_text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    workflow: str
    run_id: str
    submitted_by: str | None = None
    sensitivity: Sensitivity = DEFAULT_SENSITIVITY


class PageSummary(BaseModel):
    number: int
    source: str = Field(description="text_layer, ocr or inline.")
    text: str
    confidence: float | None = None
    rotation: int = 0
    skew: float = 0.0
    warnings: list[str] = Field(default_factory=list)


class Processed(BaseModel):
    """What processing made of a document (``processed_docs``)."""

    run_id: str
    language: str | None = None
    classification: Classification | None = None
    tags: list[str] = Field(default_factory=list)
    text: str
    pages: list[PageSummary]
    entities: dict[str, list[Entity]]
    provenance: dict[str, Any]
    ocr_result: BlobRef | None = None
    warnings: list[str] = Field(default_factory=list)


class DocumentSummary(BaseModel):
    id: str
    tenant: str
    status: DocumentStatus
    source_system: str
    external_id: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size: int | None = None
    workflow: str
    run_id: str | None = None
    doc_class: str | None = Field(default=None, description="The document's class once processed.")
    tags: list[str] = Field(default_factory=list)
    sensitivity: Sensitivity = Field(
        default=DEFAULT_SENSITIVITY,
        description="public, internal, confidential or secret: a key reads it only with a clearance at least this.",
    )
    created_at: datetime
    updated_at: datetime


class Document(DocumentSummary):
    """``GET /v1/documents/{id}``: the submission, and what processing found."""

    sha256: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    submitted_by: str | None = None
    error: dict[str, Any] | None = Field(default=None, description="Why processing failed.")
    language: str | None = None
    classification: Classification | None = None
    text: str | None = None
    pages: list[PageSummary] = Field(default_factory=list)
    entities: dict[str, list[Entity]] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    processed_at: datetime | None = None


_SUMMARY_COLUMNS = (
    "r.id, r.tenant, r.status, r.source_system, r.external_id, r.filename, r.content_type, r.size, r.workflow, "
    "r.run_id, r.created_at, r.updated_at, r.sensitivity, p.doc_class, coalesce(p.tags, '{}') AS tags"
)


class DocumentStore:
    """Documents in PostgreSQL; with a ``cipher`` their content columns are sealed (``cipher.py``)."""

    def __init__(self, engine: AsyncEngine, cipher: DocumentCipher | None = None) -> None:
        self._engine = engine
        self.cipher = cipher or DocumentCipher(engine, None)

    async def create(self, doc: NewDocument) -> tuple[DocumentSummary, bool]:
        """Record a submission; ``(existing, False)`` when this id or (source, external id) is known."""
        params = doc.model_dump(mode="json")
        params["blob"] = json.dumps(params["blob"]) if doc.blob else None
        params["metadata"] = json.dumps(doc.metadata)
        params["size"] = doc.blob.size if doc.blob else len((doc.inline_text or "").encode())
        params["sha256"] = doc.blob.sha256 if doc.blob else None
        params["data_key"] = params["inline_sealed"] = None
        made = await self.cipher.new_key(doc.tenant)
        if made is not None:
            params["data_key"] = made[0]
            if doc.inline_text is not None:
                params["inline_sealed"] = self.cipher.seal_text(made[1], doc.id, INLINE, doc.inline_text)
                params["inline_text"] = None
        try:
            async with self._engine.begin() as conn:
                inserted = (
                    await conn.execute(
                        text(
                            "INSERT INTO raw_docs (id, tenant, source_system, external_id, filename, content_type, "
                            "size, sha256, blob, inline_text, metadata, status, workflow, run_id, submitted_by, "
                            "sensitivity, data_key, inline_sealed) VALUES (:id, :tenant, :source_system, :external_id, "
                            ":filename, :content_type, :size, :sha256, CAST(:blob AS jsonb), :inline_text, "
                            "CAST(:metadata AS jsonb), 'processing', :workflow, :run_id, :submitted_by, :sensitivity, "
                            ":data_key, :inline_sealed) "
                            "ON CONFLICT (id) DO NOTHING RETURNING id"
                        ),
                        params,
                    )
                ).scalar_one_or_none()
        except IntegrityError:  # the (tenant, source_system, external_id) index: a re-sent document
            inserted = None
        existing = await self._find(doc)
        return existing, inserted is not None

    async def _find(self, doc: NewDocument) -> DocumentSummary:
        where = "r.id = :id"
        params: dict[str, Any] = {"id": doc.id}
        if doc.external_id is not None:
            where = "(r.id = :id OR (r.tenant = :tenant AND r.source_system = :source AND r.external_id = :external))"
            params.update(tenant=doc.tenant, source=doc.source_system, external=doc.external_id)
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text(
                            f"SELECT {_SUMMARY_COLUMNS} FROM raw_docs r LEFT JOIN processed_docs p ON p.doc_id = r.id "  # noqa: S608 - fixed columns
                            f"WHERE {where} ORDER BY r.created_at LIMIT 1"
                        ),
                        params,
                    )
                )
                .mappings()
                .one()
            )
        return DocumentSummary.model_validate(dict(row))

    async def get(self, doc_id: str, *, tenant: str | None) -> Document:
        """One document; another tenant's answers ``NotFound`` like a missing one (``tenant=None``: any).

        Its sensitivity is the caller's to check (the gateway asks the enforcer, and answers a
        refusal with the same ``NotFound``).
        """
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text(
                            f"SELECT {_SUMMARY_COLUMNS}, r.sha256, r.metadata, r.submitted_by, r.error, p.language, "  # noqa: S608 - fixed columns
                            "p.class_confidence, p.text, p.pages, p.entities, p.provenance, p.warnings, "
                            "p.processed_at, p.sealed, r.data_key, r.purged_at, r.retention_class, r.retain_until "
                            "FROM raw_docs r LEFT JOIN processed_docs p ON p.doc_id = r.id "
                            "WHERE r.id = :id AND (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant)"
                        ),
                        {"id": doc_id, "tenant": tenant},
                    )
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise NotFound(f"no document {doc_id!r}", code="unknown-document")
        data = dict(row)
        if data["purged_at"] is not None:  # a tombstone (shared.lifecycle): 410, with what is kept
            raise DocumentPurged.of(data)
        sealed, stored_key = data.pop("sealed"), data.pop("data_key")
        if sealed is not None:
            data.update(await self.cipher.open_json(stored_key, doc_id, PROCESSED, bytes(sealed)))
        if data["doc_class"] is not None:
            method = (data.get("provenance") or {}).get("classification", {}).get("method", "rules")
            data["classification"] = {
                "label": data["doc_class"],
                "confidence": data["class_confidence"],
                "method": method,
            }
        for key, empty in (("pages", []), ("entities", {}), ("provenance", {}), ("warnings", []), ("metadata", {})):
            if data.get(key) is None:
                data[key] = empty
        return Document.model_validate(data)

    async def run_of(self, doc_id: str) -> tuple[str, str | None, str] | None:
        """(tenant, run id, status) of a document, or ``None``."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT tenant, run_id, status FROM raw_docs WHERE id = :id"), {"id": doc_id})
            ).one_or_none()
        return (row[0], row[1], row[2]) if row else None

    async def list(
        self,
        *,
        tenant: str | None,
        status: str | None = None,
        source_system: str | None = None,
        doc_class: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        levels: list[str] | None = None,
    ) -> list[DocumentSummary]:
        """Summaries, newest first; ``levels``: only documents of these sensitivities (None: any)."""
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        text(
                            f"SELECT {_SUMMARY_COLUMNS} FROM raw_docs r LEFT JOIN processed_docs p ON p.doc_id = r.id "  # noqa: S608 - fixed columns
                            "WHERE (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant) AND r.purged_at IS NULL "
                            "AND (CAST(:status AS text) IS NULL OR r.status = :status) "
                            "AND (CAST(:source AS text) IS NULL OR r.source_system = :source) "
                            "AND (CAST(:class AS text) IS NULL OR p.doc_class = :class) "
                            "AND (CAST(:tag AS text) IS NULL OR p.tags @> ARRAY[CAST(:tag AS text)]) "
                            "AND (CAST(:levels AS text[]) IS NULL OR r.sensitivity = ANY(CAST(:levels AS text[]))) "
                            "ORDER BY r.created_at DESC, r.id LIMIT :limit OFFSET :offset"
                        ),
                        {
                            "tenant": tenant,
                            "status": status,
                            "source": source_system,
                            "class": doc_class,
                            "tag": tag,
                            "levels": levels,
                            "limit": limit,
                            "offset": offset,
                        },
                    )
                )
                .mappings()
                .all()
            )
        return [DocumentSummary.model_validate(dict(r)) for r in rows]

    async def mark_processed(self, doc_id: str, tenant: str, result: Processed) -> bool:
        """Store the results (idempotent: a repeated result for the same run changes nothing)."""
        classification = result.classification
        pages = [p.model_dump(mode="json") for p in result.pages]
        entities = {k: [e.model_dump(mode="json") for e in v] for k, v in result.entities.items()}
        sealed = None
        key = await self.cipher.key_for(doc_id, tenant)
        if key is not None:
            content = {"text": result.text, "pages": pages, "entities": entities}
            sealed = self.cipher.seal_json(key, doc_id, PROCESSED, content)
        hasher = await self.cipher.hasher(tenant)
        params = {
            "doc_id": doc_id,
            "tenant": tenant,
            "run_id": result.run_id,
            "language": result.language,
            "doc_class": classification.label if classification else None,
            "class_confidence": classification.confidence if classification else None,
            "tags": result.tags,
            "text": result.text if sealed is None else "",
            "pages": json.dumps(pages if sealed is None else []),
            "entities": json.dumps(entities if sealed is None else {}),
            "sealed": sealed,
            "entity_terms": entity_terms(hasher, entities),
            "valid_periods": valid_periods(entities),
            "provenance": json.dumps(result.provenance, default=str),
            "ocr_result": result.ocr_result.model_dump_json() if result.ocr_result else None,
            "warnings": json.dumps(result.warnings),
        }
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO processed_docs (doc_id, tenant, run_id, language, doc_class, class_confidence, tags, "
                    "text, pages, entities, provenance, ocr_result, warnings, sensitivity, sealed, entity_terms, "
                    "valid_periods) "
                    "VALUES (:doc_id, :tenant, :run_id, :language, :doc_class, :class_confidence, :tags, :text, "
                    "CAST(:pages AS jsonb), CAST(:entities AS jsonb), CAST(:provenance AS jsonb), "
                    "CAST(:ocr_result AS jsonb), CAST(:warnings AS jsonb), "
                    "(SELECT sensitivity FROM raw_docs WHERE id = :doc_id), :sealed, CAST(:entity_terms AS text[]), "
                    "CAST(CAST(:valid_periods AS text) AS daterange[])) "
                    "ON CONFLICT (doc_id) DO UPDATE SET run_id = EXCLUDED.run_id, "
                    "language = EXCLUDED.language, doc_class = EXCLUDED.doc_class, "
                    "class_confidence = EXCLUDED.class_confidence, tags = EXCLUDED.tags, text = EXCLUDED.text, "
                    "pages = EXCLUDED.pages, entities = EXCLUDED.entities, provenance = EXCLUDED.provenance, "
                    "ocr_result = EXCLUDED.ocr_result, warnings = EXCLUDED.warnings, sealed = EXCLUDED.sealed, "
                    "entity_terms = EXCLUDED.entity_terms, valid_periods = EXCLUDED.valid_periods, processed_at = now()"
                ),
                params,
            )
            updated = await conn.execute(
                text(
                    "UPDATE raw_docs SET status = 'processed', error = NULL, updated_at = now() "
                    "WHERE id = :id AND status <> 'processed'"
                ),
                {"id": doc_id},
            )
        return bool(updated.rowcount)

    async def correct(
        self,
        doc_id: str,
        *,
        tenant: str | None,
        doc_class: str | None,
        tags: list[str] | None,
        by: str | None,
        learner: ClassifierStore,
    ) -> Document:
        """A person's class and/or tags for a processed document: stored, recorded, and learned from."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT p.tenant, p.doc_class, p.tags, p.user_class, p.user_tags, p.text, p.sealed, r.data_key "
                        "FROM processed_docs p JOIN raw_docs r ON r.id = p.doc_id "
                        "WHERE p.doc_id = :id AND (CAST(:tenant AS text) IS NULL OR p.tenant = :tenant) FOR UPDATE OF p"
                    ),
                    {"id": doc_id, "tenant": tenant},
                )
            ).one_or_none()
            if row is None:
                await self.get(doc_id, tenant=tenant)  # 404 for a document that is not there (or not theirs)
                raise Conflict(f"document {doc_id!r} is not processed yet: correct it once it is", code="not-processed")
            owner, old_class, old_tags, user_class, user_tags, body, sealed, stored_key = row
            for field, old, new in (("class", old_class, doc_class), ("tags", old_tags, tags)):
                if new is not None and new != old:
                    await conn.execute(
                        text(
                            "INSERT INTO doc_corrections (doc_id, tenant, field, old_value, new_value, corrected_by) "
                            "VALUES (:id, :tenant, :field, CAST(:old AS jsonb), CAST(:new AS jsonb), :by)"
                        ),
                        {
                            "id": doc_id,
                            "tenant": owner,
                            "field": field,
                            "old": json.dumps(old),
                            "new": json.dumps(new),
                            "by": by,
                        },
                    )
            await conn.execute(
                text(
                    "UPDATE processed_docs SET doc_class = coalesce(:class, doc_class), "
                    "class_confidence = CASE WHEN CAST(:class AS text) IS NULL THEN class_confidence ELSE 1.0 END, "
                    "tags = coalesce(CAST(:tags AS text[]), tags), user_class = coalesce(:class, user_class), "
                    "user_tags = coalesce(CAST(:tags AS text[]), user_tags), "
                    "provenance = CASE WHEN CAST(:class AS text) IS NULL THEN provenance ELSE "
                    "jsonb_set(provenance, '{classification}', '{\"method\": \"user\"}') END "
                    "WHERE doc_id = :id"
                ),
                {"id": doc_id, "class": doc_class, "tags": tags},
            )
        if sealed is not None:
            body = (await self.cipher.open_json(stored_key, doc_id, PROCESSED, bytes(sealed)))["text"]
        words = await asyncio.to_thread(segment.terms, body)
        await learner.learn(
            owner,
            words,
            old_class=user_class,
            new_class=doc_class,
            old_tags=user_tags,
            new_tags=tags,
            all_tags=await learner.known_tags(owner),
        )
        return await self.get(doc_id, tenant=tenant)

    async def set_sensitivity(self, doc_id: str, sensitivity: Sensitivity, *, by: str | None) -> bool:
        """Change a document's sensitivity (both tables), recorded like a correction; False when unchanged."""
        async with self._engine.begin() as conn:
            old = (
                await conn.execute(
                    text("SELECT tenant, sensitivity FROM raw_docs WHERE id = :id FOR UPDATE"), {"id": doc_id}
                )
            ).one_or_none()
            if old is None:
                raise NotFound(f"no document {doc_id!r}", code="unknown-document")
            if old.sensitivity == sensitivity:
                return False
            for table, key in (("raw_docs", "id"), ("processed_docs", "doc_id")):
                await conn.execute(
                    text(f"UPDATE {table} SET sensitivity = :level WHERE {key} = :id"),  # noqa: S608 - fixed names
                    {"level": sensitivity, "id": doc_id},
                )
            await conn.execute(
                text(
                    "INSERT INTO doc_corrections (doc_id, tenant, field, old_value, new_value, corrected_by) "
                    "VALUES (:id, :tenant, 'sensitivity', CAST(:old AS jsonb), CAST(:new AS jsonb), :by)"
                ),
                {
                    "id": doc_id,
                    "tenant": old.tenant,
                    "old": json.dumps(old.sensitivity),
                    "new": json.dumps(sensitivity),
                    "by": by,
                },
            )
        return True

    async def mark_failed(self, doc_id: str, reason: dict[str, Any]) -> bool:
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                text(
                    "UPDATE raw_docs SET status = 'failed', error = CAST(:error AS jsonb), updated_at = now() "
                    "WHERE id = :id AND status = 'processing'"
                ),
                {"id": doc_id, "error": json.dumps(reason, default=str)},
            )
        return bool(updated.rowcount)
