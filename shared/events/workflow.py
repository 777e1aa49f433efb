"""Events of the workflow engine (``hearth.workflow.*``): steps and runs that finished or need a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.events.catalog import register_event


class _RunEvent(BaseModel):
    workflow: str = Field(description="Definition name.")
    workflow_id: str = Field(description="The run's id (Temporal workflow id).")
    run_id: str = Field(description="Temporal run id of the execution.")
    definition_hash: str
    definition_version: int | None = None
    document_id: str | None = None


class WorkflowStepCompleted(_RunEvent):
    """A step of a run finished (``hearth.workflow.step.completed.v1``); ``outcome`` says how."""

    step_id: str
    step_type: str
    outcome: str = Field(description="completed or failed (a failed step's on_failure says whether the run goes on).")
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    output: dict[str, Any] | None = Field(default=None, description="The step's output (omitted when too big).")
    output_truncated: bool = False
    error: dict[str, Any] | None = None


class WorkflowCompleted(_RunEvent):
    """A run finished successfully (``hearth.workflow.completed.v1``), with every step's output."""

    duration_ms: float
    outputs: dict[str, Any] | None = Field(default=None, description="Step id -> output (omitted when too big).")
    outputs_truncated: bool = False


class WorkflowFailed(_RunEvent):
    """A run failed or was cancelled (``hearth.workflow.failed.v1``): which step and why."""

    duration_ms: float
    failed_step: str | None = None
    reason: dict[str, Any] = Field(description="The error, as HearthError.to_dict(); code 'cancelled' for a cancel.")
    compensated: list[str] = Field(default_factory=list, description="Compensation steps that ran.")


class ReviewRequested(_RunEvent):
    """A ``human_review`` step waits for a decision (``hearth.workflow.review.requested.v1``)."""

    step_id: str
    title: str
    deadline: datetime
    values: dict[str, Any] = Field(default_factory=dict)


class ReviewEscalated(_RunEvent):
    """A review was not decided in time and is escalated (``hearth.workflow.review.escalated.v1``)."""

    step_id: str
    title: str
    escalate_to: str | None = None
    deadline: datetime


register_event(
    "hearth.workflow.step.completed.v1", WorkflowStepCompleted, "A step of a workflow run finished, with its output."
)
register_event("hearth.workflow.completed.v1", WorkflowCompleted, "A workflow run completed, with its outputs.")
register_event("hearth.workflow.failed.v1", WorkflowFailed, "A workflow run failed or was cancelled, and why.")
register_event("hearth.workflow.review.requested.v1", ReviewRequested, "A workflow run waits for a person's review.")
register_event(
    "hearth.workflow.review.escalated.v1", ReviewEscalated, "A review was not decided in time and is escalated."
)
