"""The workflow worker's own step types (``store``, ``publish``, ``infer``) and event publishing.

Each side effect happens once per step, however often Temporal runs the activity (retries, a
worker killed after the effect but before reporting it): ``store`` writes under a unique
``(workflow_id, step_id)``, ``publish`` and the engine's events derive their event id from the
step's key, so JetStream drops a re-publish and consumers see one event.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shared.bus import Bus
from shared.capabilities import CapabilityRegistry
from shared.errors import (
    HearthError,
    InvalidInput,
    TooLarge,
    Unavailable,
)
from shared.events.catalog import REQUEST_REPLY_DOMAINS, domain_of
from shared.events.envelope import Envelope
from shared.inference import Tensor, infer
from shared.workflow import (
    EMIT_ACTIVITY,
    WORKFLOW_SERVICE,
    EmitEvent,
    EventPublished,
    InferResult,
    InferStep,
    PublishEvent,
    RecordStored,
    StoreRecord,
)

EVENT_NAMESPACE: Final = uuid.UUID("8a1f7c3e-2b4d-4e6f-9a0b-1c2d3e4f5a6b")
SOURCE: Final = "hearth/workflows"
_BULKY: Final = ("output", "outputs", "values")


def event_id(key: str) -> str:
    """The id of the event a step (or the engine) publishes under ``key``: stable across retries."""
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


class PlatformSteps:
    """The activities behind ``store``, ``publish`` and ``infer``; dependencies set at start-up."""

    def __init__(self) -> None:
        self.bus: Bus | None = None
        self.engine: AsyncEngine | None = None

    def bind(self, bus: Bus, engine: AsyncEngine) -> None:
        self.bus, self.engine = bus, engine

    def _deps(self) -> tuple[Bus, AsyncEngine]:
        if self.bus is None or self.engine is None:
            raise Unavailable("the workflow worker is still starting")
        return self.bus, self.engine

    async def store(self, inp: StoreRecord) -> RecordStored:
        """Keep a JSON record in PostgreSQL (``workflow_records``), once per step."""
        _, engine = self._deps()
        ctx = inp.context
        key = inp.key or (ctx.workflow_id if ctx else None)
        if key is None:
            raise InvalidInput("store needs a `key` when it is not called from a workflow")
        params = {
            "tenant": ctx.tenant if ctx else "default",
            "collection": inp.collection,
            "key": key,
            "workflow": ctx.workflow if ctx else None,
            "workflow_id": ctx.workflow_id if ctx else None,
            "step_id": ctx.step_id if ctx else None,
            "data": json.dumps(inp.data, default=str),
        }
        async with engine.begin() as conn:
            record_id = (
                await conn.execute(
                    text(
                        "INSERT INTO workflow_records (tenant, collection, key, workflow, workflow_id, step_id, data) "
                        "VALUES (:tenant, :collection, :key, :workflow, :workflow_id, :step_id, CAST(:data AS jsonb)) "
                        "ON CONFLICT (workflow_id, step_id) DO NOTHING RETURNING id"
                    ),
                    params,
                )
            ).scalar_one_or_none()
            created = record_id is not None
            if record_id is None:
                record_id = (
                    await conn.execute(
                        text("SELECT id FROM workflow_records WHERE workflow_id = :w AND step_id = :s"),
                        {"w": params["workflow_id"], "s": params["step_id"]},
                    )
                ).scalar_one()
        return RecordStored(record_id=int(record_id), collection=inp.collection, key=key, created=created)

    async def publish(self, inp: PublishEvent) -> EventPublished:
        """Publish a catalogued event on JetStream, once per step."""
        bus, _ = self._deps()
        try:
            domain = domain_of(inp.event)
        except InvalidInput:
            raise InvalidInput(f"{inp.event!r} is not an event type") from None
        if domain in REQUEST_REPLY_DOMAINS:
            raise InvalidInput(f"{inp.event!r} is a request/reply subject, not an event")
        ctx = inp.context
        envelope = Envelope(
            id=event_id(ctx.key) if ctx else str(uuid.uuid4()),
            source=SOURCE,
            type=inp.event,
            subject=inp.subject,
            tenant=ctx.tenant if ctx else "default",
            correlationid=ctx.workflow_id if ctx else None,
            data=inp.data,
        )
        ack = await bus.publish(envelope)
        return EventPublished(event_id=envelope.id, type=inp.event, duplicate=bool(ack.duplicate))

    async def infer(self, inp: InferStep) -> InferResult:
        """Run a model through the gateway's inference plane (``hearth.infer.<model>``)."""
        bus, _ = self._deps()
        tensors = [Tensor(name, t.datatype, t.shape, data=t.data) for name, t in inp.inputs.items()]
        reply = await infer(bus, inp.model, tensors, inp.outputs, timeout_s=inp.timeout_s)
        return InferResult(
            model=inp.model, model_version=reply.model_version, outputs=reply.outputs, shapes=reply.shapes
        )

    async def emit(self, inp: EmitEvent) -> str:
        """Publish one of the engine's ``hearth.workflow.*`` events (a local activity of this worker).

        An event over the inline limit goes out without its outputs/values, marked truncated:
        the run's record (``GET /v1/runs/{id}``) has them. So does every event of a document's run
        (``document_id``): its outputs hold the document's text and entities, which JetStream would
        keep in plaintext; the run's record is in Temporal, encrypted (README "Encryption at rest").
        """
        bus, _ = self._deps()
        if inp.data.get("document_id"):
            return await self._publish_slim(bus, inp)

        try:
            await bus.publish(_envelope(inp, inp.data))
        except TooLarge:
            return await self._publish_slim(bus, inp)
        return event_id(inp.key)

    async def _publish_slim(self, bus: Bus, inp: EmitEvent) -> str:
        """The event without its outputs/values, marked truncated (the run's record has them)."""
        slim = {k: v for k, v in inp.data.items() if k not in _BULKY}
        slim.update({f"{k}_truncated": True for k in _BULKY if k in inp.data and k != "values"})
        await bus.publish(_envelope(inp, slim))
        return event_id(inp.key)


def _envelope(inp: EmitEvent, data: dict[str, Any]) -> Envelope:
    return Envelope(
        id=event_id(inp.key),
        source=SOURCE,
        type=inp.type,
        subject=str(data.get("workflow_id")),
        tenant=inp.tenant,
        correlationid=inp.correlation_id,
        data=data,
    )


def platform_registry(steps: PlatformSteps) -> CapabilityRegistry:
    """The workflow worker's capabilities (also callable over NATS: ``hearth.svc.workflows.*``)."""
    registry = CapabilityRegistry(service=WORKFLOW_SERVICE)
    registry.register("workflows.store", steps.store)
    registry.register("workflows.publish", steps.publish)
    registry.register("workflows.infer", steps.infer, max_workers=8)
    return registry


def emit_activity(steps: PlatformSteps) -> Any:
    """The local activity the interpreter publishes its events with."""

    async def emit(inp: EmitEvent) -> str:
        try:
            return await steps.emit(inp)
        except HearthError as err:
            raise ApplicationError(err.detail, err.to_dict(), type=err.code, non_retryable=not err.retryable) from err

    return activity.defn(name=EMIT_ACTIVITY)(emit)
