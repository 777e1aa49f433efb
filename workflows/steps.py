"""The step-type registry: what a ``type`` in a workflow definition runs, and its parameters.

Each step type resolves to a service capability (a Temporal activity on that service's task
queue) with a pydantic parameter model, checked when a definition is loaded. A service that adds
a capability usable from workflows adds one entry here; the interpreter itself needs nothing
new, because the resolved activity name and task queue are written into the definition snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel

from shared.capabilities import task_queue_for
from shared.documents import AnalyzeText, ExtractText
from shared.workflow import WORKFLOW_SERVICE, HumanReviewParams, InferStep, PublishEvent, StoreRecord

Receives = Literal["document", "previous"]


@dataclass(frozen=True, slots=True)
class StepType:
    """One step type: its parameters and the activity that runs it (none for ``human_review``)."""

    name: str
    description: str
    params: type[BaseModel]
    kind: Literal["activity", "review"] = "activity"
    activity: str | None = None
    service: str | None = None
    default_timeout_s: float = 60.0
    heartbeat_timeout_s: float | None = None
    model_param: str | None = None
    """The parameter naming a model, checked against the Triton model repository at load time."""
    receives: tuple[Receives, ...] = ()
    """What the interpreter adds to the step's ``context``: the run's document, the previous output."""

    @property
    def task_queue(self) -> str | None:
        return task_queue_for(self.service) if self.service else None

    @property
    def takes_context(self) -> bool:
        """Whether the interpreter hands the step its ``StepContext`` (idempotency key, tenant)."""
        return "context" in self.params.model_fields


STEP_TYPES: Final[dict[str, StepType]] = {
    step.name: step
    for step in (
        StepType(
            name="store",
            description="Keep a JSON record in PostgreSQL (table workflow_records), exactly once per step.",
            params=StoreRecord,
            activity="workflows.store",
            service=WORKFLOW_SERVICE,
            default_timeout_s=30.0,
        ),
        StepType(
            name="publish",
            description="Publish a catalogued event on NATS JetStream, exactly once per step.",
            params=PublishEvent,
            activity="workflows.publish",
            service=WORKFLOW_SERVICE,
            default_timeout_s=30.0,
        ),
        StepType(
            name="infer",
            description="Run a model of the Triton repository through the gateway (KServe v2 tensors).",
            params=InferStep,
            activity="workflows.infer",
            service=WORKFLOW_SERVICE,
            default_timeout_s=120.0,
            heartbeat_timeout_s=30.0,  # a model's cold start can take most of the timeout
            model_param="model",
        ),
        StepType(
            name="ocr_extraction",
            description="Read a PDF or image (the run's document unless `document` is given): text layer "
            "where the PDF has one, OCR elsewhere; json, text or markdown.",
            params=ExtractText,
            activity="ocr.extract",
            service="ocr",
            default_timeout_s=3600.0,  # a 500-page scan takes minutes per hundred pages on a small box
            heartbeat_timeout_s=120.0,
            model_param="model",
            receives=("document",),
        ),
        StepType(
            name="nlp_analysis",
            description="Extract contract entities (contract_type, valid_period, parties, amount, "
            "contract_number, signing_date), classify and tag the previous step's text.",
            params=AnalyzeText,
            activity="nlp.analyze",
            service="nlp",
            default_timeout_s=300.0,
            heartbeat_timeout_s=60.0,
            model_param="model",
            receives=("previous",),
        ),
        StepType(
            name="human_review",
            description="Wait for a person's decision (approve / reject / corrected values), with a deadline "
            "and escalation.",
            params=HumanReviewParams,
            kind="review",
            default_timeout_s=7 * 86400.0,
        ),
    )
}
"""Every step type a definition may use, by name."""
