"""Capabilities over both transports against real NATS and a real Temporal server.

Each test declares a throw-away service (``t<uuid>``), so subjects, queue groups and task queues
are its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import workflow

# The sandbox re-imports this module to validate the workflow below: pass everything else through.
with workflow.unsafe.imports_passed_through():
    import pytest
    from faststream.nats import NatsBroker
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from pydantic import BaseModel
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError
    from temporalio.worker import Worker

    from shared.bus import Bus
    from shared.capabilities import (
        CapabilityRegistry,
        HealthCheck,
        ServiceHealth,
        call_capability,
        error_from_application_error,
        service_broker,
    )
    from shared.clients import temporal_client
    from shared.errors import HearthError, InvalidInput, NotFound, Unavailable
    from shared.natsauth import broker_options
    from shared.settings import HearthSettings
    from shared.tracing import setup_tracing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Analyze(BaseModel):
    text: str


class Analyzed(BaseModel):
    words: int
    upper: str


class CallActivity(BaseModel):
    activity: str
    inp: Analyze


@workflow.defn(name="hearth-test-call-activity")
class CallActivityWorkflow:
    """Executes one capability as an activity, as the YAML interpreter will."""

    @workflow.run
    async def run(self, call: CallActivity) -> Analyzed:
        result: Analyzed = await workflow.execute_activity(
            call.activity,
            call.inp,
            result_type=Analyzed,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100)),
        )
        return result


class Service:
    """A throw-away service with one capability; counts calls to show retries (or none)."""

    def __init__(self) -> None:
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.registry = CapabilityRegistry(service=self.name, version="1.2.3")
        self.calls = 0
        self.registry.register(f"{self.name}.analyze", self.analyze, description="Count words.")

    @property
    def capability(self) -> str:
        return f"{self.name}.analyze"

    async def analyze(self, inp: Analyze) -> Analyzed:
        self.calls += 1
        if inp.text == "unknown":
            raise NotFound("no such document", extra={"document": "d-9"})
        if inp.text == "garbage":
            raise InvalidInput("cannot analyse garbage")
        if inp.text == "busy":
            raise Unavailable("model is loading")
        if inp.text == "bug":
            raise KeyError("oops")
        if inp.text.startswith("slow"):
            await asyncio.sleep(0.3)
        return Analyzed(words=len(inp.text.split()), upper=inp.text.upper())


@pytest.fixture
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(stack, name="test-capabilities")
    yield bus
    await bus.close()


@pytest.fixture(params=["lean", "default"])
async def served(request: pytest.FixtureRequest, stack: HearthSettings) -> AsyncIterator[Service]:
    """The service's capabilities on a FastStream broker: Hearth's lean one and FastStream's default."""
    service = Service()
    broker = (
        service_broker(stack, name=f"hearth-{service.name}")
        if request.param == "lean"
        else NatsBroker(stack.nats_url, name=f"hearth-{service.name}", **broker_options(stack))
    )
    service.registry.nats_subscribers(broker)
    await broker.start()
    await broker.connection.flush()
    yield service
    await broker.stop()


@pytest.fixture
async def temporal(stack: HearthSettings) -> Client:
    return await temporal_client(stack)  # the platform's converter: pydantic, encrypted, traced


async def run_workflow(temporal: Client, service: Service, text: str) -> Analyzed:
    async with Worker(
        temporal,
        task_queue=service.registry.task_queue,
        workflows=[CallActivityWorkflow],
        activities=service.registry.activities(),
    ):
        return await temporal.execute_workflow(
            CallActivityWorkflow.run,
            CallActivity(activity=service.capability, inp=Analyze(text=text)),
            id=f"test-{uuid.uuid4()}",
            task_queue=service.registry.task_queue,
            execution_timeout=timedelta(seconds=30),
        )


async def test_same_result_over_nats_and_as_a_temporal_activity(bus: Bus, served: Service, temporal: Client) -> None:
    inp = Analyze(text="quarterly report from the plant")
    over_nats = await call_capability(bus, served.capability, inp, Analyzed, timeout=5)
    as_activity = await run_workflow(temporal, served, inp.text)

    assert over_nats == as_activity == Analyzed(words=5, upper="QUARTERLY REPORT FROM THE PLANT")
    assert served.calls == 2


@pytest.mark.parametrize(
    ("text", "error", "code"),
    [
        ("unknown", NotFound, "not-found"),
        ("garbage", InvalidInput, "invalid-input"),
        ("busy", Unavailable, "unavailable"),
        ("bug", HearthError, "internal-error"),
    ],
)
async def test_errors_reach_the_nats_caller_as_the_same_hearth_error(
    bus: Bus, served: Service, text: str, error: type[HearthError], code: str
) -> None:
    with pytest.raises(error) as info:
        await call_capability(bus, served.capability, Analyze(text=text), Analyzed, timeout=5)
    assert type(info.value) is error
    assert info.value.code == code
    if error is NotFound:
        assert info.value.detail == "no such document"
        assert info.value.extra == {"document": "d-9"}


async def test_invalid_input_over_nats_carries_the_reasons(bus: Bus, served: Service) -> None:
    class Wrong(BaseModel):
        txt: str

    with pytest.raises(InvalidInput) as info:
        await call_capability(bus, served.capability, Wrong(txt="x"), Analyzed, timeout=5)
    assert info.value.extra["errors"][0]["loc"] == "text"
    assert served.calls == 0


@pytest.mark.parametrize("served", ["lean"], indirect=True)
async def test_non_retryable_errors_fail_the_activity_once(served: Service, temporal: Client) -> None:
    with pytest.raises(WorkflowFailureError) as info:
        await run_workflow(temporal, served, "garbage")
    cause = info.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "invalid-input"
    assert cause.cause.non_retryable
    assert isinstance(error_from_application_error(cause), InvalidInput)
    assert served.calls == 1  # no retry


@pytest.mark.parametrize("served", ["lean"], indirect=True)
async def test_retryable_errors_are_retried_by_temporal(served: Service, temporal: Client) -> None:
    with pytest.raises(WorkflowFailureError) as info:
        await run_workflow(temporal, served, "busy")
    cause = info.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "unavailable"
    assert not cause.cause.non_retryable
    assert served.calls == 3  # the workflow's retry policy allows three attempts


async def test_health_capability(bus: Bus, served: Service) -> None:
    health = await call_capability(bus, f"{served.name}.health", HealthCheck(), ServiceHealth, timeout=5)
    assert health.service == served.name
    assert health.status == "ok"
    assert health.version == "1.2.3"
    assert health.uptime_s >= 0
    raw = await bus.request(f"hearth.svc.{served.name}.health", b"{}", timeout=5)  # as the gateway asks
    assert raw.data.startswith(b'{"ok":true,"result":{"service":"' + served.name.encode())


async def test_nobody_answering_is_unavailable(bus: Bus) -> None:
    with pytest.raises(Unavailable, match="no instance"):
        await call_capability(bus, f"t{uuid.uuid4().hex[:8]}.analyze", Analyze(text="x"), Analyzed, timeout=2)


async def test_plain_nats_subscriptions_answer_the_same(stack: HearthSettings, bus: Bus) -> None:
    service = Service()
    server = await Bus.connect(stack, name="test-direct")
    try:
        await service.registry.subscribe(server.nc)
        result = await call_capability(bus.nc, service.capability, Analyze(text="a b"), Analyzed, timeout=5)
        assert result == Analyzed(words=2, upper="A B")
        with pytest.raises(NotFound):
            await call_capability(bus.nc, service.capability, Analyze(text="unknown"), Analyzed, timeout=5)
    finally:
        await server.close()


async def test_max_workers_answers_concurrently(stack: HearthSettings, bus: Bus) -> None:
    service = Service()
    registry = CapabilityRegistry(service=service.name, health=False)
    registry.register(f"{service.name}.analyze", service.analyze, max_workers=4)
    broker = service_broker(stack, name="test-workers")
    registry.nats_subscribers(broker)
    await broker.start()
    await broker.connection.flush()
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                call_capability(bus, service.capability, Analyze(text=f"slow {i}"), Analyzed, timeout=5)
                for i in range(4)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        await broker.stop()
    assert [r.words for r in results] == [2, 2, 2, 2]
    assert elapsed < 0.9, f"4 calls of 0.3 s took {elapsed:.2f} s: not concurrent"


@pytest.mark.parametrize("served", ["lean"], indirect=True)
async def test_trace_context_crosses_both_transports(bus: Bus, served: Service, temporal: Client) -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing("hearth-tests", processors=[SimpleSpanProcessor(exporter)])
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("gateway-request") as root:
        await call_capability(bus, served.capability, Analyze(text="x"), Analyzed, timeout=5)
    root_ctx = root.get_span_context()
    (server_span,) = [s for s in exporter.get_finished_spans() if s.name == served.capability]
    assert server_span.context is not None
    assert server_span.context.trace_id == root_ctx.trace_id
    assert server_span.parent is not None
    assert server_span.parent.span_id == root_ctx.span_id
    assert server_span.kind is trace.SpanKind.SERVER

    with tracer.start_as_current_span("workflow-start") as wf_root:
        await run_workflow(temporal, served, "y")
    activity_spans = [s for s in exporter.get_finished_spans() if s.name == f"RunActivity:{served.capability}"]
    assert activity_spans
    assert all(
        s.context is not None and s.context.trace_id == wf_root.get_span_context().trace_id for s in activity_spans
    )
