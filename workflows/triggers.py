"""Triggers: durable JetStream consumers that turn matching events into workflow runs.

One durable consumer per (workflow, trigger), named ``wf-<workflow>-<n>``, created to deliver
events published after it (not the stream's history); it keeps its place across restarts. For each event whose
``filter`` holds, a run starts with id ``<workflow>-<event id>``: a redelivered or re-published
event (same id) finds that run already there, so it never starts a second one. An event that
does not match is acknowledged and left alone; a filter or input that fails on an event is a
permanent error (dead letter with the reason); Temporal being down is retried with back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js.api import DeliverPolicy

from shared.bus import Bus
from shared.errors import HearthError, InvalidInput
from shared.events.consumer import EventConsumer
from shared.events.envelope import Envelope
from shared.logging import get_logger
from workflows.definitions import Definition, TriggerSpec
from workflows.expressions import ExpressionError, compile_expression, render
from workflows.runs import RunService

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TriggerKey:
    workflow: str
    index: int
    subject: str
    filter: str | None
    input: str

    @property
    def durable(self) -> str:
        return f"wf-{self.workflow}-{self.index}".replace("_", "-")


def trigger_keys(definitions: dict[str, Definition]) -> dict[TriggerKey, TriggerSpec]:
    return {
        TriggerKey(name, i, t.subject, t.filter, repr(t.input) + repr(t.document_id)): t
        for name, d in definitions.items()
        for i, t in enumerate(d.triggers)
    }


def run_input(trigger: TriggerSpec, envelope: Envelope) -> tuple[bool, dict[str, Any], str | None]:
    """Whether ``envelope`` starts a run, the run's input and its document id (pure)."""
    context = {"event": envelope.model_dump(mode="json")}
    try:
        if trigger.filter is not None and not compile_expression(trigger.filter).evaluate(context):
            return False, {}, None
        data = render(trigger.input, context) if trigger.input is not None else {"event": context["event"]}
        document_id = compile_expression(trigger.document_id).evaluate(context) if trigger.document_id else None
    except ExpressionError as exc:
        raise InvalidInput(f"trigger of {envelope.type} failed on event {envelope.id}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the trigger input must be a mapping, got {type(data).__name__}")
    return True, data, str(document_id) if document_id is not None else None


class Triggers:
    """Keeps one consumer per declared trigger, following definition changes."""

    def __init__(self, bus: Bus, runs: RunService) -> None:
        self._bus = bus
        self._runs = runs
        self._consumers: dict[TriggerKey, EventConsumer] = {}

    async def apply(self, definitions: dict[str, Definition]) -> None:
        """Start consumers for new triggers, stop those whose trigger went away or changed."""
        wanted = trigger_keys(definitions)
        for key in [k for k in self._consumers if k not in wanted]:
            await self._consumers.pop(key).stop()
            log.info("trigger stopped", workflow=key.workflow, subject=key.subject)
        for key, trigger in wanted.items():
            if key in self._consumers:
                continue
            consumer = EventConsumer(
                self._bus,
                durable=key.durable,
                filter_subject=trigger.subject,
                handler=self._handler(key.workflow, trigger),
                description=f"starts {key.workflow} runs from {trigger.subject}",
                batch=8,
                # A new trigger sees events published from now on, not the stream's past month;
                # once created, the durable keeps its place across restarts.
                deliver_policy=DeliverPolicy.NEW,
            )
            try:
                await consumer.start()
            except HearthError as exc:  # the worker keeps running; the next sync tries again
                log.error("trigger not started", workflow=key.workflow, durable=key.durable, error=exc.to_dict())
                continue
            self._consumers[key] = consumer
            log.info("trigger started", workflow=key.workflow, subject=trigger.subject, durable=key.durable)

    async def stop(self) -> None:
        for consumer in self._consumers.values():
            await consumer.stop()
        self._consumers.clear()

    def _handler(self, workflow: str, trigger: TriggerSpec) -> Any:
        async def handle(envelope: Envelope, _data: Any) -> None:
            matches, data, document_id = run_input(trigger, envelope)
            if not matches:
                return
            started = await self._runs.start(
                workflow,
                data,
                tenant=envelope.tenant,
                run_id=f"{workflow}-{envelope.id}",
                document_id=document_id,
                trigger_event_id=envelope.id,
                started_by=f"event {envelope.type} from {envelope.source}",
            )
            log.info(
                "run triggered", workflow=workflow, run_id=started.id, event_id=envelope.id, duplicate=started.duplicate
            )

        return handle
