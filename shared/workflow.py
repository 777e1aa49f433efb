"""Messages of the workflow engine: what a run takes, what it reports, what steps receive.

The interpreter workflow (``workflows/interpreter.py``), the workers, the gateway and the CLI all
speak these; they travel through Temporal with the pydantic data converter and over NATS as JSON.
Events the engine publishes are in ``shared/events/workflow.py``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shared.blobstore import BlobRef

INTERPRETER_WORKFLOW: Final = "hearth.interpreter"
"""Temporal workflow type of the one generic interpreter."""

EMIT_ACTIVITY: Final = "workflows.emit"
"""Activity of the workflow worker that publishes the engine's own events."""

WORKFLOW_SERVICE: Final = "workflows"
"""The workflow worker's service name: task queue ``hearth-workflows``, health on NATS."""

StepStatus = Literal["pending", "running", "waiting_review", "completed", "failed", "skipped", "compensated"]
RunStatus = Literal["running", "waiting_review", "completed", "failed", "cancelled"]

SEARCH_ATTRIBUTES: Final[dict[str, str]] = {
    "HearthWorkflow": "Keyword",
    "HearthTenant": "Keyword",
    "HearthDocumentId": "Keyword",
    "HearthStatus": "Keyword",
}
"""Custom search attributes registered at start-up, so operators filter runs in the Temporal UI."""


_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``1.5``, ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"`` or ``"3d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '2h', '1d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration: use seconds or '250ms', '30s', '5m', '2h', '1d'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a duration must be a positive, finite number of seconds")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A positive number of seconds, written as a number or ``"30s"``/``"5m"``/``"2h"``/``"1d"``."""


class StepContext(BaseModel):
    """Who is asking: handed to step activities whose input has a ``context`` field.

    ``key`` (``<workflow id>/<step id>``) is stable across retries and worker restarts: the
    idempotency key of the step's side effects.
    """

    workflow: str
    workflow_id: str
    step_id: str
    tenant: str = "default"
    key: str
    document: dict[str, Any] | None = Field(
        default=None, description="The run input's `document`, for step types that read it (ocr_extraction)."
    )
    previous: Any = Field(
        default=None, description="The previous step's output, for step types that read it (nlp_analysis)."
    )


class RunInput(BaseModel):
    """Input of the interpreter workflow: a definition snapshot and the run's own input.

    The snapshot is the definition as it was when the run started, so editing a YAML file never
    changes a running workflow; ``definition_hash`` identifies it.
    """

    workflow: str
    definition: dict[str, Any]
    definition_hash: str
    definition_version: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    tenant: str = "default"
    document_id: str | None = None
    trigger_event_id: str | None = None
    started_by: str | None = None


class StepProgress(BaseModel):
    """One step of a run as the progress query reports it."""

    id: str
    type: str
    status: StepStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    attempts: int | None = None
    error: dict[str, Any] | None = None
    reason: str | None = Field(default=None, description="Why a step was skipped, or what it is waiting for.")


class ReviewRequest(BaseModel):
    """The review a ``human_review`` step is waiting for."""

    step_id: str
    title: str
    instructions: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    fields: list[str] = Field(default_factory=list)
    requested_at: datetime
    deadline: datetime
    escalate_at: datetime | None = None
    escalated: bool = False
    escalate_to: str | None = None


class RunProgress(BaseModel):
    """Answer of the ``progress`` query (and the ``GET /v1/runs/{id}`` body while running)."""

    workflow: str
    workflow_id: str
    definition_hash: str
    definition_version: int | None = None
    tenant: str
    status: RunStatus
    current: list[str] = Field(default_factory=list, description="Steps running (or waiting) now.")
    steps: list[StepProgress] = Field(default_factory=list)
    review: ReviewRequest | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class RunResult(BaseModel):
    """What a finished run returns: the outputs of every step and the steps' record."""

    workflow: str
    status: Literal["completed"] = "completed"
    outputs: dict[str, Any]
    steps: list[StepProgress]


class ReviewDecision(BaseModel):
    """The ``review`` signal: a person's decision on a waiting ``human_review`` step."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    values: dict[str, Any] = Field(default_factory=dict, description="Corrected values, by field name.")
    reviewer: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=4000)
    step_id: str | None = Field(default=None, description="The step reviewed; the waiting one when omitted.")


class CancelRequest(BaseModel):
    """The ``cancel`` signal: stop the run after (or during) the current step."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by an operator", max_length=2000)
    by: str | None = Field(default=None, max_length=200)


class EmitEvent(BaseModel):
    """Input of the engine's activity publishing one ``hearth.workflow.*`` event.

    ``key`` is stable for the event across replays; the event id is derived from it, so a
    re-executed activity is de-duplicated by JetStream.
    """

    type: str
    key: str
    tenant: str = "default"
    correlation_id: str | None = None
    data: dict[str, Any]


# ---- platform step inputs and results (activities of the workflow worker) ---------------------


class StoreRecord(BaseModel):
    """``store`` step: keep a JSON record in PostgreSQL (``workflow_records``), once per step."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="Name grouping the records.")
    key: str | None = Field(default=None, max_length=500, description="Caller's key; defaults to the run id.")
    data: dict[str, Any] = Field(description="The record (usually built from earlier outputs).")
    context: StepContext | None = None


class RecordStored(BaseModel):
    record_id: int
    collection: str
    key: str
    created: bool = Field(description="False when the step had already stored it (a retried or replayed step).")


class PublishEvent(BaseModel):
    """``publish`` step: publish a catalogued event once (its id derives from the step's key)."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(description="A registered event type, e.g. hearth.workflow.review.requested.v1.")
    data: dict[str, Any]
    subject: str | None = Field(default=None, description="The event's CloudEvents subject (what it is about).")
    context: StepContext | None = None


class EventPublished(BaseModel):
    event_id: str
    type: str
    duplicate: bool


class InferTensor(BaseModel):
    """One KServe v2 input tensor."""

    datatype: str
    shape: list[int]
    data: list[Any]


class InferStep(BaseModel):
    """``infer`` step: run a model of the repository through the gateway's inference plane."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="A model of the Triton model repository.")
    inputs: dict[str, InferTensor]
    outputs: list[str] | None = Field(default=None, description="Outputs to return; all when omitted.")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)


class InferResult(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    model_version: str | None = None
    outputs: dict[str, Any] = Field(description="Output name -> data (flat list, row-major).")
    shapes: dict[str, list[int]]


class HumanReviewParams(BaseModel):
    """``human_review`` step: wait for a person's decision (the ``review`` signal).

    ``timeout`` bounds the wait; at ``escalate_after`` an escalation event names ``escalate_to``;
    when the deadline passes, ``on_timeout`` decides (reject, approve, or fail the run).
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="Review", max_length=500)
    instructions: str | None = Field(default=None, max_length=4000)
    values: dict[str, Any] = Field(default_factory=dict, description="Values shown to the reviewer.")
    fields: list[str] = Field(default_factory=list, description="Value names the reviewer may correct.")
    escalate_after: Duration | None = Field(default=None, description="How long before escalating.")
    escalate_to: str | None = Field(default=None, max_length=200)
    on_timeout: Literal["reject", "approve", "fail"] = "fail"
    on_reject: Literal["continue", "fail"] = "continue"


class ReviewOutcome(BaseModel):
    """Output of a ``human_review`` step."""

    decision: Literal["approve", "reject"]
    values: dict[str, Any]
    corrected: list[str] = Field(default_factory=list, description="Fields the reviewer changed.")
    reviewer: str | None = None
    comment: str | None = None
    escalated: bool = False
    timed_out: bool = False


class DocumentUpload(BaseModel):
    """What ``POST /v1/workflows/{name}/runs`` puts in ``input.document`` for a file upload."""

    blob: BlobRef
    filename: str | None = None
    content_type: str | None = None
