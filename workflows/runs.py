"""Runs of workflow definitions on Temporal: start, list, describe, review, cancel (no transport).

Used by the gateway's routes and by the trigger consumers. A run is a Temporal workflow of type
``hearth.interpreter`` on task queue ``hearth-workflows``; its id is the caller's (an event id for
a triggered run, an ``Idempotency-Key`` for REST) or a fresh one. Ids are never reused
(``REJECT_DUPLICATE``), so starting the same id twice returns the first run instead of a second.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecution, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from shared.capabilities import task_queue_for
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from shared.logging import get_logger
from shared.workflow import (
    INTERPRETER_WORKFLOW,
    SEARCH_ATTRIBUTES,
    WORKFLOW_SERVICE,
    CancelRequest,
    ReviewDecision,
    RunInput,
    RunProgress,
)
from workflows.versions import DefinitionStore, DefinitionVersion

log = get_logger(__name__)

TASK_QUEUE: Final = task_queue_for(WORKFLOW_SERVICE)
_KEYS: Final = {name: SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES}
_ID_MAX: Final = 255
_STATUSES: Final = ("running", "waiting_review", "completed", "failed", "cancelled", "terminated", "timed_out")
_CLOSED: Final = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: "cancelled",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "completed",
}


class StartedRun(BaseModel):
    id: str
    workflow: str
    version: int
    definition_hash: str
    duplicate: bool = Field(description="True when a run with this id existed already (nothing new started).")


class RunSummary(BaseModel):
    id: str
    workflow: str | None
    status: str
    tenant: str | None
    document_id: str | None = None
    started_at: datetime | None
    closed_at: datetime | None = None


class RunDetail(RunSummary):
    definition_hash: str | None = None
    definition_version: int | None = None
    progress: RunProgress | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    workflow: str | None = None
    status: str | None = None
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    document_id: str | None = None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_query(flt: RunFilter) -> str:
    """The Temporal list filter for ``flt`` (search attributes are registered at start-up)."""
    clauses = [f"WorkflowType = {_quote(INTERPRETER_WORKFLOW)}"]
    if flt.workflow:
        clauses.append(f"HearthWorkflow = {_quote(flt.workflow)}")
    if flt.tenant:
        clauses.append(f"HearthTenant = {_quote(flt.tenant)}")
    if flt.document_id:
        clauses.append(f"HearthDocumentId = {_quote(flt.document_id)}")
    if flt.status:
        if flt.status not in _STATUSES:
            raise InvalidInput(f"unknown status {flt.status!r} (one of {', '.join(_STATUSES)})")
        if flt.status in ("terminated", "timed_out"):
            clauses.append(f"ExecutionStatus = {_quote('Terminated' if flt.status == 'terminated' else 'TimedOut')}")
        else:
            clauses.append(f"HearthStatus = {_quote(flt.status)}")
            if flt.status in ("running", "waiting_review"):  # a terminated run keeps its last HearthStatus
                clauses.append("ExecutionStatus = 'Running'")
    if flt.since:
        clauses.append(f"StartTime >= {_quote(flt.since.isoformat())}")
    if flt.until:
        clauses.append(f"StartTime <= {_quote(flt.until.isoformat())}")
    return " AND ".join(clauses)


def _status(execution: WorkflowExecution) -> str:
    closed = _CLOSED.get(execution.status) if execution.status is not None else None
    recorded = execution.typed_search_attributes.get(_KEYS["HearthStatus"])
    if closed in (None, "failed", "completed") and recorded in ("cancelled", "failed", "completed"):
        return recorded  # the interpreter's own word (a cancel signal ends as a failure in Temporal)
    return closed or recorded or "running"


def _summary(execution: WorkflowExecution) -> dict[str, Any]:
    attrs = execution.typed_search_attributes
    return {
        "id": execution.id,
        "workflow": attrs.get(_KEYS["HearthWorkflow"]),
        "status": _status(execution),
        "tenant": attrs.get(_KEYS["HearthTenant"]),
        "document_id": attrs.get(_KEYS["HearthDocumentId"]),
        "started_at": execution.start_time,
        "closed_at": execution.close_time,
    }


def _rpc_unavailable(exc: RPCError) -> Unavailable:
    return Unavailable(f"Temporal did not answer: {exc.message}")


class RunService:
    """Starts and follows runs; the one place that knows how runs map onto Temporal."""

    def __init__(self, temporal: TemporalClient, definitions: DefinitionStore) -> None:
        self._temporal = temporal
        self._definitions = definitions

    async def start(
        self,
        name: str,
        input: dict[str, Any],
        *,
        tenant: str = "default",
        version: int | None = None,
        run_id: str | None = None,
        document_id: str | None = None,
        trigger_event_id: str | None = None,
        started_by: str | None = None,
    ) -> StartedRun:
        """Start a run of ``name`` (its active version unless ``version``); idempotent on ``run_id``."""
        definition = await self._definitions.get(name, version)
        workflow_id = run_id or f"{name}-{uuid.uuid4()}"
        if len(workflow_id) > _ID_MAX:
            raise InvalidInput(f"a run id is at most {_ID_MAX} characters")
        run_input = RunInput(
            workflow=name,
            definition=definition.definition,
            definition_hash=definition.hash,
            definition_version=definition.version,
            input=input,
            tenant=tenant,
            document_id=document_id,
            trigger_event_id=trigger_event_id,
            started_by=started_by,
        )
        attrs = [
            SearchAttributePair(_KEYS["HearthWorkflow"], name),
            SearchAttributePair(_KEYS["HearthTenant"], tenant),
            SearchAttributePair(_KEYS["HearthStatus"], "running"),
        ]
        if document_id:
            attrs.append(SearchAttributePair(_KEYS["HearthDocumentId"], document_id))
        try:
            await self._temporal.start_workflow(
                INTERPRETER_WORKFLOW,
                run_input,
                id=workflow_id,
                task_queue=TASK_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(attrs),
                static_summary=f"{name} v{definition.version}",
            )
        except WorkflowAlreadyStartedError:
            log.info("run already exists; not starting another", run_id=workflow_id, workflow=name)
            existing = await self._existing(workflow_id)
            return StartedRun(
                id=workflow_id,
                workflow=existing.workflow if existing else name,
                version=(existing.definition_version or 0) if existing else definition.version,
                definition_hash=existing.definition_hash if existing else definition.hash,
                duplicate=True,
            )
        except RPCError as exc:
            raise _rpc_unavailable(exc) from exc
        log.info("run started", run_id=workflow_id, workflow=name, version=definition.version, tenant=tenant)
        return StartedRun(
            id=workflow_id, workflow=name, version=definition.version, definition_hash=definition.hash, duplicate=False
        )

    async def definition(self, name: str, version: int | None = None) -> DefinitionVersion:
        """The definition a run of ``name`` would start on; ``NotFound`` naming what exists."""
        return await self._definitions.get(name, version)

    async def _existing(self, run_id: str) -> RunProgress | None:
        """What the run already started under this id runs (its own version and hash)."""
        try:
            return await self._temporal.get_workflow_handle(run_id).query("progress", result_type=RunProgress)
        except (RPCError, WorkflowQueryFailedError) as exc:
            log.warning("could not read the existing run", run_id=run_id, error=str(exc))
            return None

    async def list(self, flt: RunFilter, limit: int = 50) -> list[RunSummary]:
        """Runs matching ``flt``, newest first."""
        try:
            return [
                RunSummary(**_summary(execution))
                async for execution in self._temporal.list_workflows(
                    visibility_query(flt), limit=limit, page_size=min(limit, 1000)
                )
            ]
        except RPCError as exc:
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"bad run filter: {exc.message}") from exc
            raise _rpc_unavailable(exc) from exc

    async def describe(self, run_id: str, *, tenant: str | None = None) -> RunDetail:
        """Status, progress, outputs and errors of one run.

        With ``tenant``, a run of another tenant is ``NotFound``, the same answer as for no run: its
        existence is not revealed.
        """
        detail = await self._detail(run_id)
        if tenant is not None and detail.tenant != tenant:
            raise NotFound(f"no run {run_id!r}", code="unknown-run")
        return detail

    async def _detail(self, run_id: str) -> RunDetail:
        handle = self._temporal.get_workflow_handle(run_id)
        try:
            execution = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no run {run_id!r}", code="unknown-run") from exc
            raise _rpc_unavailable(exc) from exc
        if execution.workflow_type != INTERPRETER_WORKFLOW:
            raise NotFound(f"no run {run_id!r}", code="unknown-run")
        detail = RunDetail(**_summary(execution))
        try:
            progress = await handle.query("progress", result_type=RunProgress)
        # No worker to answer, or a history the worker cannot replay: the status is still known.
        except (RPCError, WorkflowQueryFailedError) as exc:
            log.warning("progress query failed", run_id=run_id, error=exc.message)
            progress = None
        if progress is not None:
            detail.progress = progress
            detail.definition_hash = progress.definition_hash
            detail.definition_version = progress.definition_version
            detail.outputs = progress.outputs
            detail.error = progress.error
        if detail.status == "failed" and detail.error is None:
            detail.error = await self._failure(handle)
        return detail

    async def _failure(self, handle: Any) -> dict[str, Any] | None:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
                return cause.details[0]
            return {"code": "failed", "detail": str(cause or exc)}
        except RPCError:
            return None
        return None

    async def review(self, run_id: str, decision: ReviewDecision, *, tenant: str | None = None) -> RunDetail:
        """Deliver a review decision; ``Conflict`` unless the run waits for one."""
        detail = await self.describe(run_id, tenant=tenant)
        review = detail.progress.review if detail.progress else None
        if detail.status != "waiting_review" or review is None:
            raise Conflict(f"run {run_id} is {detail.status}, not waiting for a review", code="no-review-pending")
        if decision.step_id is not None and decision.step_id != review.step_id:
            raise Conflict(f"run {run_id} waits for a review of {review.step_id!r}, not {decision.step_id!r}")
        unknown = sorted(set(decision.values) - set(review.fields)) if review.fields else []
        if unknown:
            raise InvalidInput(
                f"{', '.join(unknown)} may not be corrected in {review.step_id} (fields: {', '.join(review.fields)})",
                code="unknown-review-field",
            )
        await self._signal(run_id, "review", decision.model_copy(update={"step_id": review.step_id}))
        return detail

    async def cancel(self, run_id: str, request: CancelRequest, *, tenant: str | None = None) -> RunDetail:
        """Ask a running run to stop; ``Conflict`` when it has already finished."""
        detail = await self.describe(run_id, tenant=tenant)
        if detail.status not in ("running", "waiting_review"):
            raise Conflict(f"run {run_id} has already finished ({detail.status})", code="run-finished")
        await self._signal(run_id, "cancel", request)
        return detail

    async def _signal(self, run_id: str, name: Literal["review", "cancel"], arg: BaseModel) -> None:
        try:
            await self._temporal.get_workflow_handle(run_id).signal(name, arg)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no run {run_id!r}", code="unknown-run") from exc
            raise _rpc_unavailable(exc) from exc


async def register_search_attributes(temporal: TemporalClient) -> None:
    """Register Hearth's search attributes on the namespace (idempotent)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    namespace = temporal.namespace
    existing = await temporal.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }
    if not missing:
        return
    try:
        await temporal.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    log.info("search attributes registered", names=sorted(missing))
