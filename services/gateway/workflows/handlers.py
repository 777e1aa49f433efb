"""Routes of the workflow engine: parse, call DefinitionStore / RunService / BlobStore, map.

A run belongs to the tenant of the key that started it. A non-admin key sees, reviews and cancels
only its own tenant's runs; another tenant's run answers 404 like one that does not exist, so
its existence is not revealed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.requests import (
    check_idempotency_key,
    discard_blob,
    principal_of,
    store_upload,
    tenant_scope,
    validated,
)
from services.gateway.telemetry.handlers import TelemetryClient
from shared.blobstore import BlobStore
from shared.errors import BadRequest, Conflict, InvalidInput, NotFound
from shared.telemetry import Trace, TraceRequest
from shared.workflow import CancelRequest, DocumentUpload, ReviewDecision
from workflows.definitions import GroupSpec, Loaded
from workflows.runs import RunDetail, RunFilter, RunService, RunSummary, StartedRun
from workflows.versions import DefinitionStore, DefinitionVersion

log = structlog.get_logger("gateway.workflows")

_FORM_FIELDS: Final = frozenset({"file", "input", "version", "document_id"})
_M = TypeVar("_M", bound=BaseModel)


# ---- bodies and answers -------------------------------------------------------------------------


class StepInfo(BaseModel):
    id: str
    type: str
    group: str | None = Field(default=None, description="The parallel group the step runs in, if any.")


class TriggerInfo(BaseModel):
    subject: str = Field(description="NATS subject whose events start a run.")
    event: str | None = None
    filter: str | None = None


class ProblemInfo(BaseModel):
    file: str
    line: int | None
    reason: str


class WorkflowInfo(BaseModel):
    name: str
    description: str | None
    active_version: int
    hash: str = Field(description="SHA-256 of the active version's snapshot.")
    file: str | None = Field(description="The file the active version was read from.")
    triggers: list[TriggerInfo]
    steps: list[StepInfo]


class WorkflowDetail(WorkflowInfo):
    version: int = Field(description="The version shown (the active one unless asked for another).")
    created_at: datetime
    snapshot: dict[str, Any] = Field(description="The checked definition runs of this version carry.")


class RefusedFile(BaseModel):
    file: str
    problems: list[ProblemInfo]
    workflows: list[str] = Field(
        description="Definitions last read from this file: their last good version stays active."
    )


class WorkflowCatalog(BaseModel):
    workflows: list[WorkflowInfo]
    refused: list[RefusedFile] = Field(description="Definition files that failed to load, with every problem.")


class VersionInfo(BaseModel):
    version: int
    hash: str
    created_at: datetime
    file: str | None
    active: bool
    diff: str = Field(description="Unified diff of the canonical YAML against the version before.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version to make active.")


class StartRunRequest(BaseModel):
    """``POST /v1/workflows/{name}/runs`` as JSON (the multipart form has the same fields and ``file``)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict, description="The run's input (`${input...}`).")
    version: int | None = Field(default=None, ge=1, description="Pin a version; the active one when omitted.")
    document_id: str | None = Field(default=None, min_length=1, max_length=500)


# ---- dependencies --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowServices:
    """What the workflow routes need; built in ``app._start_http``, handed in by tests."""

    definitions: DefinitionStore
    runs: RunService
    blobs: BlobStore
    read_files: Callable[[], Loaded]
    """Reads the definition files now (blocking: called in a thread), for the files refused."""


def dependencies(services: WorkflowServices) -> dict[str, Provide]:
    return {
        "definition_store": Provide(lambda: services.definitions, use_cache=True, sync_to_thread=False),
        "run_service": Provide(lambda: services.runs, use_cache=True, sync_to_thread=False),
        "blob_store": Provide(lambda: services.blobs, use_cache=True, sync_to_thread=False),
        "definition_files": Provide(lambda: services.read_files, use_cache=True, sync_to_thread=False),
    }


# ---- mapping -------------------------------------------------------------------------------------


def _info(row: DefinitionVersion) -> dict[str, Any]:
    definition = row.parsed()
    steps: list[StepInfo] = []
    for item in definition.steps:
        if isinstance(item, GroupSpec):
            steps.extend(StepInfo(id=s.id, type=s.type, group=item.id) for s in item.parallel)
        else:
            steps.append(StepInfo(id=item.id, type=item.type))
    return {
        "name": row.name,
        "description": definition.description,
        "active_version": row.version,
        "hash": row.hash,
        "file": row.file,
        "triggers": [TriggerInfo(subject=t.subject, event=t.event, filter=t.filter) for t in definition.triggers],
        "steps": steps,
    }


def _detail(row: DefinitionVersion, active_version: int) -> WorkflowDetail:
    return WorkflowDetail(
        **{**_info(row), "active_version": active_version},
        version=row.version,
        created_at=row.created_at,
        snapshot=row.definition,
    )


def _utc(value: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, the way Temporal stores start times.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def _form_request(request: Request[Any, Any, Any]) -> tuple[StartRunRequest, UploadFile]:
    form = await request.form()  # the upload is spooled to disk past 1 MiB; the body limit applies
    unknown = sorted(set(form.keys()) - _FORM_FIELDS)
    if unknown:
        raise BadRequest(f"unknown form fields {', '.join(unknown)} (fields: {', '.join(sorted(_FORM_FIELDS))})")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("send the document as a file in the `file` field (or start the run with a JSON body)")
    fields: dict[str, Any] = {}
    try:
        raw_input = form.get("input")
        if raw_input not in (None, ""):
            try:
                fields["input"] = json.loads(str(raw_input))
            except ValueError as exc:
                raise BadRequest(f"the `input` field must hold a JSON object: {exc}") from None
        for name in ("version", "document_id"):
            value = form.get(name)
            if value not in (None, ""):
                fields[name] = value
        return validated(StartRunRequest, fields), upload
    except Exception:
        await upload.close()
        raise


def _document_description(run_input: dict[str, Any]) -> dict[str, Any]:
    """What the caller says about the uploaded document (``input.document``: metadata, source...)."""
    described = run_input.get("document", {})
    if not isinstance(described, dict):
        raise BadRequest("`input.document` describes the uploaded file: it must be an object, or left out")
    taken = sorted(set(described) & set(DocumentUpload.model_fields))
    if taken:
        raise BadRequest(f"`input.document` may not set {', '.join(taken)}: they come from the uploaded file")
    return described


# ---- routes --------------------------------------------------------------------------------------


class WorkflowsController(Controller):
    path = "/v1/workflows"
    tags = ["workflows"]

    @get(
        "/",
        summary="Every workflow definition with its active version, and the definition files refused",
        description="A refused file keeps its workflows on their last good version; `refused` lists each "
        "problem with its file and line.",
    )
    async def list_workflows(
        self, definition_store: DefinitionStore, definition_files: Callable[[], Loaded]
    ) -> WorkflowCatalog:
        loaded = await asyncio.to_thread(definition_files)
        active = await definition_store.names()
        rows = [await definition_store.get(name, version) for name, version in active.items()]
        refused = [
            RefusedFile(
                file=file,
                problems=[ProblemInfo(file=p.file, line=p.line, reason=p.reason) for p in error.problems],
                workflows=[r.name for r in rows if r.file == file],
            )
            for file, error in sorted(loaded.errors.items())
        ]
        return WorkflowCatalog(workflows=[WorkflowInfo(**_info(r)) for r in rows], refused=refused)

    @get("/{name:str}", summary="One workflow definition with its snapshot (the active version by default)")
    async def get_workflow(
        self,
        definition_store: DefinitionStore,
        name: str,
        version: Annotated[int | None, Parameter(ge=1, description="Another version than the active one.")] = None,
    ) -> WorkflowDetail:
        active = await definition_store.get(name)
        row = active if version is None or version == active.version else await definition_store.get(name, version)
        return _detail(row, active.version)

    @get("/{name:str}/versions", summary="Every version of a definition, newest first, with its diff")
    async def versions(self, definition_store: DefinitionStore, name: str) -> list[VersionInfo]:
        return [VersionInfo(**v) for v in await definition_store.versions(name)]

    @post(
        "/{name:str}/rollback",
        status_code=200,
        summary="Make an earlier version active (admin); new runs start on it, running ones keep theirs",
    )
    async def rollback(
        self, request: Request[Any, Any, Any], definition_store: DefinitionStore, name: str, data: RollbackRequest
    ) -> WorkflowDetail:
        row = await definition_store.rollback(name, data.version, by=principal_of(request).name)
        return _detail(row, row.version)

    @post(
        "/{name:str}/runs",
        summary="Start a run; `Idempotency-Key` makes a repeat return the first run",
        description='JSON `{"input": {...}, "version": N, "document_id": "..."}`, or a multipart form '
        "with the document in `file` (stored in the blob store; the run gets `blob`, `filename` and "
        "`content_type` in `input.document`, beside what `input.document` already says, e.g. `metadata`) and "
        "optional `input` (JSON text), `version`, `document_id`. The run belongs "
        "to the key's tenant. With `Idempotency-Key: <1-200 of A-Z a-z 0-9 . _ ->` the run id is "
        "`<name>-<key>`: 201 when started, 200 with the same run when it exists already. 404 unknown workflow "
        "or version, 413 over 32 MiB.",
        status_code=201,
    )
    async def start_run(
        self,
        request: Request[Any, Any, Any],
        run_service: RunService,
        blob_store: BlobStore,
        name: str,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key")] = None,
    ) -> Response[StartedRun]:
        principal = principal_of(request)
        run_id = None
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            run_id = f"{name}-{idempotency_key}"
        upload: DocumentUpload | None = None
        if request.content_type[0] == RequestEncodingType.MULTI_PART:
            body, file = await _form_request(request)
            try:
                described = _document_description(body.input)
                upload = await store_upload(blob_store, file, principal.tenant)
            finally:
                await file.close()
            run_input = {**body.input, "document": {**described, **upload.model_dump(mode="json")}}
        else:
            body = validated(StartRunRequest, await request.body() or b"{}")
            run_input = body.input
        try:
            started = await run_service.start(
                name,
                run_input,
                tenant=principal.tenant,
                version=body.version,
                run_id=run_id,
                document_id=body.document_id,
                started_by=principal.name,
            )
        except (NotFound, InvalidInput):  # certainly nothing started: the upload is of no use
            if upload is not None:
                await discard_blob(blob_store, upload.blob)
            raise
        if started.duplicate:
            if upload is not None:  # the first run keeps the document it was started with
                await discard_blob(blob_store, upload.blob)
            existing = await run_service.describe(started.id)
            if existing.tenant != principal.tenant:
                # Run ids are global; say only that the key is taken, nothing about whose run it is.
                raise Conflict("this Idempotency-Key is already used; send another", code="idempotency-key-taken")
        return Response(
            started, status_code=200 if started.duplicate else 201, headers={"Location": f"/v1/runs/{started.id}"}
        )


class RunsController(Controller):
    path = "/v1/runs"
    tags = ["workflows"]

    @get(
        "/",
        summary="Runs, newest first; a non-admin key sees only its tenant's",
        description="Filters: `workflow`, `status` (running, waiting_review, completed, failed, cancelled, "
        "terminated, timed_out), `since`/`until` (ISO 8601 start times; UTC without an offset), `document_id`, "
        "`tenant` (admin only; other keys always get their own tenant), `limit` 1-500.",
    )
    async def list_runs(
        self,
        request: Request[Any, Any, Any],
        run_service: RunService,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        document_id: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> list[RunSummary]:
        principal = principal_of(request)
        flt = RunFilter(
            workflow=workflow,
            status=status,
            tenant=tenant_scope(principal) or tenant,
            since=_utc(since),
            until=_utc(until),
            document_id=document_id,
        )
        return await run_service.list(flt, limit)

    @get("/{run_id:str}", summary="One run: status, step progress, the review it waits for, outputs, errors")
    async def get_run(self, request: Request[Any, Any, Any], run_service: RunService, run_id: str) -> RunDetail:
        return await run_service.describe(run_id, tenant=tenant_scope(principal_of(request)))

    @get(
        "/{run_id:str}/trace",
        summary="The run's trace: every span from the request or event that started it to its last step",
        description="404 while no span of the run has been recorded (traces are kept for a day by default).",
    )
    async def get_trace(
        self, request: Request[Any, Any, Any], run_service: RunService, telemetry: TelemetryClient, run_id: str
    ) -> Trace:
        await run_service.describe(run_id, tenant=tenant_scope(principal_of(request)))  # 404 for another tenant's
        return await telemetry.trace(TraceRequest(workflow_id=run_id))

    @post(
        "/{run_id:str}/review",
        status_code=202,
        summary="Approve or reject the review a run waits for, with corrected values",
        description="409 unless the run waits for a review; 422 for a value the step does not let reviewers "
        "correct. `reviewer` defaults to the key's name. The answer is the run as it was when the decision "
        "was delivered.",
    )
    async def review(
        self, request: Request[Any, Any, Any], run_service: RunService, run_id: str, data: ReviewDecision
    ) -> RunDetail:
        principal = principal_of(request)
        decision = data if data.reviewer else data.model_copy(update={"reviewer": principal.name})
        return await run_service.review(run_id, decision, tenant=tenant_scope(principal))

    @post(
        "/{run_id:str}/cancel",
        status_code=202,
        summary="Ask a run to stop during or after its current step; 409 when it has finished already",
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        run_service: RunService,
        run_id: str,
        data: CancelRequest | None = None,
    ) -> RunDetail:
        principal = principal_of(request)
        cancel = (data or CancelRequest()).model_copy(update={"by": principal.name})
        return await run_service.cancel(run_id, cancel, tenant=tenant_scope(principal))
