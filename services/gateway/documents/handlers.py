"""``/v1/documents``: submit a document for processing, follow it, read what was found.

A document belongs to the tenant of the key that submitted it; another tenant's document answers
404 like a missing one. It has a sensitivity (public, internal, confidential, secret; default
internal) and a key reads it only with a clearance at least that: the enforcer decides each
document (``AccessGuard.permits``, audited allow and deny; a refusal is the same 404), and lists,
search and Q&A filter in SQL by the levels the enforcer allows. Processing is asynchronous:
``POST`` answers 202 with the document's id and its run (``/v1/runs/doc-<id>``, visible in the
Temporal UI); ``GET /v1/documents/{id}`` says ``processing`` until the run has finished, then
shows the text, pages, entities, class, tags and provenance, or ``failed`` with the reason.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.auth import AccessGuard
from services.gateway.documents.pipeline import DocumentPipeline
from services.gateway.documents.search import Answer, AskMode, SearchFilters, SearchIndex, SearchResults
from services.gateway.documents.store import Document, DocumentStore, DocumentSummary
from services.gateway.requests import (
    check_idempotency_key,
    discard_blob,
    principal_of,
    store_upload,
    tenant_scope,
    validated,
)
from shared.blobstore import BlobStore
from shared.classifier import ClassifierStore
from shared.documents import DocumentSource
from shared.errors import BadRequest, Forbidden, InvalidInput, NotFound
from shared.identity.apikeys import Principal
from shared.identity.authz import DEFAULT_SENSITIVITY, DataObject, Sensitivity
from shared.lifecycle import DocumentPurged

_NAMESPACE: Final = uuid.UUID("6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f")
_FORM_FIELDS: Final = frozenset({"file", "source_system", "external_id", "metadata", "workflow", "sensitivity"})
_WORKFLOW_NAME = r"^[a-z][a-z0-9_]{0,62}$"
DEFAULT_SOURCE: Final = "api"


class SubmitForm(BaseModel):
    """What a submission says about its document, beside the file (multipart fields)."""

    model_config = ConfigDict(extra="forbid")

    source_system: str = Field(default=DEFAULT_SOURCE, min_length=1, max_length=100)
    external_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    workflow: str | None = Field(default=None, pattern=_WORKFLOW_NAME, description="Processing workflow.")
    sensitivity: Sensitivity = Field(
        default=DEFAULT_SENSITIVITY, description="public, internal, confidential or secret; at most your clearance."
    )


class SubmitText(SubmitForm):
    """A JSON submission: text carried inline (files go as multipart)."""

    text: str = Field(min_length=1, max_length=1_000_000)
    filename: str | None = Field(default=None, max_length=255)


class Correction(BaseModel):
    """A person's class and/or tags for a document; the classifier learns from it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    doc_class: str | None = Field(
        default=None, alias="class", pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="The right class."
    )
    tags: list[str] | None = Field(default=None, max_length=50, description="The right tags (replacing the old ones).")
    sensitivity: Sensitivity | None = Field(
        default=None, description="A new sensitivity; your clearance must cover both the old and the new one."
    )

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for tag in value:
            if not re.fullmatch(r"[^\s,:][^,:]{0,62}", tag):
                raise ValueError(f"tag {tag!r}: 1-63 characters, no commas or colons, not starting with a space")
        return sorted(set(value))


class Submitted(BaseModel):
    id: str
    status: str
    run_id: str | None
    duplicate: bool = Field(description="True when this document was submitted before (nothing new started).")


@dataclass
class DocumentServices:
    store: DocumentStore
    pipeline: DocumentPipeline
    blobs: BlobStore
    classifier: ClassifierStore


def dependencies(services: DocumentServices) -> dict[str, Provide]:
    return {
        "document_store": Provide(lambda: services.store, use_cache=True, sync_to_thread=False),
        "document_pipeline": Provide(lambda: services.pipeline, use_cache=True, sync_to_thread=False),
        "search_index": Provide(lambda: services.pipeline.index, use_cache=True, sync_to_thread=False),
        "classifier_store": Provide(lambda: services.classifier, use_cache=True, sync_to_thread=False),
    }


async def _form(request: Request[Any, Any, Any]) -> tuple[SubmitForm, UploadFile]:
    form = await request.form()
    upload = form.get("file")
    try:
        unknown = sorted(set(form.keys()) - _FORM_FIELDS)
        if unknown:
            raise BadRequest(f"unknown form fields {', '.join(unknown)} (fields: {', '.join(sorted(_FORM_FIELDS))})")
        if not isinstance(upload, UploadFile):
            raise BadRequest("send the document as a file in the `file` field (or inline text as JSON)")
        named = ("source_system", "external_id", "workflow", "sensitivity")
        fields: dict[str, Any] = {k: form.get(k) for k in named if form.get(k)}
        raw_metadata = form.get("metadata")
        if raw_metadata not in (None, ""):
            try:
                fields["metadata"] = json.loads(str(raw_metadata))
            except ValueError as exc:
                raise BadRequest(f"the `metadata` field must hold a JSON object: {exc}") from None
        return validated(SubmitForm, fields), upload
    except Exception:
        if isinstance(upload, UploadFile):
            await upload.close()
        raise


def _document(doc: Document | DocumentSummary, sensitivity: str | None = None) -> DataObject:
    return DataObject("document", doc.tenant, sensitivity or doc.sensitivity, doc.id)


def _readable(request: Request[Any, Any, Any], access: AccessGuard, doc: Document) -> Document:
    """``doc`` if the caller may read it; otherwise the same 404 as a missing document (no existence leak)."""
    if not access.permits(request, principal_of(request), _document(doc), "read"):
        raise NotFound(f"no document {doc.id!r}", code="unknown-document")
    return doc


async def readable_document(
    request: Request[Any, Any, Any], access: AccessGuard, store: DocumentStore, doc_id: str
) -> Document:
    """The caller's document if it may read it; else the same 404 as a missing one.

    A purged document answers 410 with its tombstone only to a caller who could have read it:
    above one's clearance even its having existed is not told.
    """
    principal = principal_of(request)
    try:
        doc = await store.get(doc_id, tenant=tenant_scope(principal))
    except DocumentPurged as purged:
        if not access.permits(
            request, principal, DataObject("document", purged.tenant, purged.sensitivity, doc_id), "read"
        ):
            raise NotFound(f"no document {doc_id!r}", code="unknown-document") from None
        raise
    return _readable(request, access, doc)


def _levels(request: Request[Any, Any, Any], access: AccessGuard, principal: Principal, what: str) -> list[str]:
    """The sensitivities ``principal`` may read (the enforcer's), audited as the decision of a list or search."""
    levels = access.authorizer.allowed_levels(principal)
    reason = f"{what}: sensitivities {', '.join(levels) or 'none'} (clearance {principal.clearance})"
    access.audit_data(request, principal, "data.search", bool(levels), reason)
    return levels


class DocumentsController(Controller):
    path = "/v1/documents"
    tags = ["documents"]

    @post(
        "/",
        status_code=202,
        summary="Submit a document (multipart file, or JSON inline text); it is processed asynchronously",
        description="Multipart: `file` (PDF, PNG, JPEG, TIFF), optional `source_system` (default `api`), "
        "`external_id` (the document's id there: a re-sent document maps onto the one held), `metadata` "
        "(JSON object) and `sensitivity` (public, internal (default), confidential, secret: at most your clearance). "
        'JSON: `{"text": "...", "filename", "source_system", "external_id", "metadata", "sensitivity"}`. '
        "`Idempotency-Key` makes a repeated request return the first document. Answers 202 with the document "
        "id and its workflow run; 200 when the document was already submitted.",
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        document_pipeline: DocumentPipeline,
        access: AccessGuard,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key")] = None,
    ) -> Response[Submitted]:
        principal = principal_of(request)
        check_idempotency_key(idempotency_key)
        document_id = (
            str(uuid.uuid5(_NAMESPACE, f"{principal.tenant}/{idempotency_key}"))
            if idempotency_key
            else str(uuid.uuid4())
        )
        blobs = document_pipeline.blobs
        uploaded = None
        if request.content_type[0] == RequestEncodingType.MULTI_PART:
            form, file = await _form(request)
            try:
                uploaded = await store_upload(blobs, file, principal.tenant)
            finally:
                await file.close()
            source = DocumentSource(blob=uploaded.blob, filename=uploaded.filename, content_type=uploaded.content_type)
            described: SubmitForm = form
        else:
            body = validated(SubmitText, await request.body() or b"{}")
            source = DocumentSource(text=body.text, filename=body.filename, content_type="text/plain")
            described = body
        target = DataObject("document", principal.tenant, described.sensitivity, document_id)
        if not access.permits(request, principal, target, "write"):
            if uploaded is not None:
                await discard_blob(blobs, uploaded.blob)
            raise Forbidden(
                f"clearance {principal.clearance} may not submit a {described.sensitivity} document",
                code="insufficient-clearance",
            )
        try:
            doc, created = await document_pipeline.submit(
                document_id=document_id,
                tenant=principal.tenant,
                source=source,
                source_system=described.source_system,
                external_id=described.external_id,
                metadata=described.metadata,
                submitted_by=principal.name,
                workflow=described.workflow,
                sensitivity=described.sensitivity,
            )
        except (NotFound, InvalidInput):  # nothing was recorded: the upload is of no use
            if uploaded is not None:
                await discard_blob(blobs, uploaded.blob)
            raise
        if not created and uploaded is not None:  # the document held keeps its own file
            await discard_blob(blobs, uploaded.blob)
        answer = Submitted(id=doc.id, status=doc.status, run_id=doc.run_id, duplicate=not created)
        return Response(answer, status_code=202 if created else 200, headers={"Location": f"/v1/documents/{doc.id}"})

    @get(
        "/",
        summary="Documents, newest first (a non-admin key sees its tenant's; only those its clearance allows)",
        description="Filters: `status` (processing, processed, failed), `source_system`, `class`, `tag`; "
        "`limit` 1-200, `offset`.",
    )
    async def list_documents(
        self,
        request: Request[Any, Any, Any],
        document_store: DocumentStore,
        access: AccessGuard,
        *,
        status: str | None = None,
        source_system: str | None = None,
        doc_class: Annotated[str | None, Parameter(query="class")] = None,
        tag: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> list[DocumentSummary]:
        principal = principal_of(request)
        return await document_store.list(
            tenant=tenant_scope(principal),
            levels=_levels(request, access, principal, "list"),
            status=status,
            source_system=source_system,
            doc_class=doc_class,
            tag=tag,
            limit=limit,
            offset=offset,
        )

    @patch(
        "/{document_id:str}",
        summary="Correct a processed document's class and/or tags (the tenant's classifier learns from it), "
        "or change its sensitivity",
        description='`{"class": "invoice", "tags": ["finance", "2024"], "sensitivity": "confidential"}` (any may be '
        "left out). The correction is recorded (who, when, before and after) and the document's terms train the "
        "tenant's class and tag models (naive Bayes over the documents people labelled), which the NLP service uses "
        "for new documents once it is confident. 409 while the document is still processing (class and tags; a "
        "sensitivity can be changed at any time, by a key whose clearance covers the old and the new level).",
    )
    async def correct(
        self,
        request: Request[Any, Any, Any],
        *,
        document_store: DocumentStore,
        classifier_store: ClassifierStore,
        access: AccessGuard,
        document_id: str,
        data: Correction,
    ) -> Document:
        if data.doc_class is None and data.tags is None and data.sensitivity is None:
            raise BadRequest("send `class`, `tags` and/or `sensitivity`")
        principal = principal_of(request)
        doc = await readable_document(request, access, document_store, document_id)
        if not access.permits(request, principal, _document(doc), "write"):
            raise Forbidden(
                f"clearance {principal.clearance} may not change this document", code="insufficient-clearance"
            )
        if data.sensitivity is not None and data.sensitivity != doc.sensitivity:
            if not access.permits(request, principal, _document(doc, data.sensitivity), "write"):
                raise Forbidden(
                    f"clearance {principal.clearance} may not mark a document {data.sensitivity}",
                    code="insufficient-clearance",
                )
            await document_store.set_sensitivity(document_id, data.sensitivity, by=principal.name)
        if data.doc_class is None and data.tags is None:
            return await document_store.get(document_id, tenant=tenant_scope(principal))
        return await document_store.correct(
            document_id,
            tenant=tenant_scope(principal),
            doc_class=data.doc_class,
            tags=data.tags,
            by=principal.name,
            learner=classifier_store,
        )

    @get(
        "/{document_id:str}",
        summary="One document: status, text, pages, entities (value, normalised, span, confidence), class, "
        "tags, provenance",
    )
    async def get_document(
        self, request: Request[Any, Any, Any], document_store: DocumentStore, access: AccessGuard, document_id: str
    ) -> Document:
        return await readable_document(request, access, document_store, document_id)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    top_k: int = Field(default=5, ge=1, le=20, description="Chunks the answer is chosen from.")
    mode: AskMode | None = Field(
        default=None,
        description="auto (generative when a text-generation model is configured), extractive or generative; "
        "default HEARTH_GATEWAY_ASK_MODE (auto).",
    )
    generator: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="The text-generation model to use; default HEARTH_GATEWAY_ASK_GENERATOR (text_generator).",
    )
    max_tokens: int | None = Field(default=None, ge=1, le=1024, description="Longest generated answer, in tokens.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: the most likely answer (greedy).")


def _filters(
    *,
    doc_class: str | None,
    tags: list[str] | None,
    source_system: str | None,
    entities: list[str] | None,
    valid_on: date | None,
    since: datetime | None,
    until: datetime | None,
) -> SearchFilters:
    wanted: dict[str, str] = {}
    for item in entities or []:
        name, sep, value = item.partition(":")
        if not sep or not name or not value:
            raise BadRequest(f"entity filter {item!r}: write <field>:<value>, e.g. contract_type:purchase")
        wanted[name] = value
    return SearchFilters(
        doc_class=doc_class,
        tags=tags or [],
        source_system=source_system,
        entities=wanted,
        valid_on=valid_on,
        since=since,
        until=until,
    )


@get(
    "/v1/search",
    tags=["documents"],
    summary="Hybrid full-text + semantic search over the caller's documents, with highlights",
    description="`q` in any language (Chinese is segmented with jieba). Filters: `class`, `tag` (repeatable, all "
    "must match), `source_system`, `entity` (repeatable `<field>:<value>` on normalised values: "
    "contract_type:purchase, contract_number:HT-1, signing_date:2024-02-20, parties:<name>), `valid_on` "
    "(contracts valid that day), `since`/`until` (submission time), `sensitivity` (repeatable; only documents your "
    "clearance allows are ever searched). `limit` 1-50, `offset`.",
)
async def search(
    request: Request[Any, Any, Any],
    search_index: SearchIndex,
    access: AccessGuard,
    *,
    q: str,
    doc_class: Annotated[str | None, Parameter(query="class")] = None,
    tag: Annotated[list[str] | None, Parameter(query="tag")] = None,
    source_system: str | None = None,
    entity: Annotated[list[str] | None, Parameter(query="entity")] = None,
    valid_on: date | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sensitivity: Annotated[list[Sensitivity] | None, Parameter(query="sensitivity")] = None,
    limit: Annotated[int, Parameter(ge=1, le=50)] = 10,
    offset: Annotated[int, Parameter(ge=0, le=1000)] = 0,
) -> SearchResults:
    filters = _filters(
        doc_class=doc_class,
        tags=tag,
        source_system=source_system,
        entities=entity,
        valid_on=valid_on,
        since=since,
        until=until,
    ).model_copy(update={"sensitivity": sensitivity or []})
    principal = principal_of(request)
    levels = _levels(request, access, principal, "search")
    return await search_index.search(
        q, filters, tenant=tenant_scope(principal), levels=levels, limit=limit, offset=offset
    )


@post(
    "/v1/ask",
    tags=["documents"],
    status_code=200,
    summary="Answer a question from the caller's documents, with citations (document, page, span)",
    description="Extractive by default. A question asking for a contract fact (amount, expiry, signing date, number, "
    "parties) is answered with that entity of the best-matching document (`source: entity`, `field`, `normalized`); "
    "any other with the sentence that best answers it (`source: sentence`). Either is cited with its document, page "
    "and character span in that page's text. When a text-generation model is configured (`hearth models "
    "add-generator`), `mode` auto (the default) or generative answers with text the model writes from the best "
    "`top_k` passages (`mode: generative`, `source: generated`), citing the passages it used (`ref` = the [n] in "
    "the answer) and naming the model, version and weights (`generator`); if it is absent or fails the answer is "
    "extractive with a `note` saying why. Every citation is a document of the caller's tenant that its clearance "
    "allows. `filters` as for /v1/search.",
)
async def ask(
    request: Request[Any, Any, Any], search_index: SearchIndex, access: AccessGuard, data: AskRequest
) -> Answer:
    principal = principal_of(request)
    return await search_index.ask(
        data.question,
        data.filters,
        tenant=tenant_scope(principal),
        levels=_levels(request, access, principal, "ask"),
        top_k=data.top_k,
        mode=data.mode,
        generator=data.generator,
        max_tokens=data.max_tokens,
        temperature=data.temperature,
    )
