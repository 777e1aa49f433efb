"""The bus and durable consumers against a real NATS JetStream server.

Every test registers its own event domain (``hearth.t<uuid>.…``, stream ``HEARTH_T<UUID>``) in a
copy of the catalog and deletes that stream afterwards; dead letters land on the shared
``HEARTH_DEADLETTER`` stream under the test's own subjects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from shared.bus import Bus
from shared.errors import InvalidInput, TooLarge, Unavailable
from shared.events import CATALOG, Catalog, DeadLetterRecord, Envelope, deadletter_subject
from shared.events.catalog import StreamSpec
from shared.events.consumer import Action, EventConsumer
from shared.settings import HearthSettings
from shared.tracing import setup_tracing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEADLETTER_STREAM = "HEARTH_DEADLETTER"


class Thing(BaseModel):
    name: str
    size: int = 0


@dataclass
class Domain:
    """One test's private event domain."""

    name: str
    type: str
    stream: str
    catalog: Catalog

    def envelope(self, name: str = "a", **kwargs: Any) -> Envelope:
        return Envelope.new(self.type, Thing(name=name), source="hearth/test", **kwargs)

    @property
    def deadletter_subject(self) -> str:
        return deadletter_subject(self.type)


@dataclass
class Recorder:
    """A handler that records its calls and fails as told."""

    failures: list[BaseException] = field(default_factory=list)
    calls: list[tuple[Envelope, BaseModel]] = field(default_factory=list)
    trace_ids: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, envelope: Envelope, data: BaseModel) -> None:
        self.calls.append((envelope, data))
        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        if self.failures:
            raise self.failures.pop(0)
        self.done.set()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def count(bus: Bus, stream: str, subject: str) -> int:
    info = await bus.js.stream_info(stream, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def dead_letters(bus: Bus, subject: str) -> list[Envelope]:
    if await count(bus, DEADLETTER_STREAM, subject) == 0:
        return []
    sub = await bus.js.subscribe(subject, stream=DEADLETTER_STREAM, ordered_consumer=True)
    try:
        out = []
        while True:
            msg = await sub.next_msg(timeout=5)
            out.append(Envelope.from_json(msg.data))
            if msg.metadata.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


@pytest.fixture
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(stack, name="test-bus")
    yield bus
    await bus.close()


@pytest.fixture
async def domain(bus: Bus) -> AsyncIterator[Domain]:
    name = f"t{uuid.uuid4().hex[:12]}"
    catalog = CATALOG.copy()
    event = catalog.register_event(f"hearth.{name}.thing_happened.v1", Thing, "A test event.")
    bus.catalog = catalog
    await bus.ensure_streams()
    yield Domain(name=name, type=event.type, stream=event.stream, catalog=catalog)
    await bus.js.delete_stream(event.stream)


@pytest.fixture
async def consumers() -> AsyncIterator[list[EventConsumer]]:
    started: list[EventConsumer] = []
    yield started
    for consumer in started:
        await consumer.stop()


async def start_consumer(
    bus: Bus, domain: Domain, handler: Recorder, started: list[EventConsumer], **options: Any
) -> EventConsumer:
    options.setdefault("backoff", (0.05,))
    options.setdefault("fetch_timeout", 1.0)
    consumer = EventConsumer(
        bus, durable=f"c-{uuid.uuid4().hex[:8]}", filter_subject=f"hearth.{domain.name}.>", handler=handler, **options
    )
    await consumer.start()
    started.append(consumer)
    return consumer


# ---- publishing ------------------------------------------------------------------------------


async def test_publish_is_deduplicated_by_event_id(bus: Bus, domain: Domain) -> None:
    env = domain.envelope()
    first = await bus.publish(env)
    second = await bus.publish(env)

    assert first.stream == domain.stream
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq
    assert await count(bus, domain.stream, domain.type) == 1
    stored = await bus.js.get_last_msg(domain.stream, domain.type)
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == env.id
    assert Envelope.from_json(stored.data or b"") == env


async def test_oversized_and_invalid_events_are_refused_and_nothing_is_stored(bus: Bus, domain: Domain) -> None:
    big = Envelope.new(domain.type, Thing(name="x" * (bus.settings.event_inline_max_bytes + 1)), source="hearth/test")
    with pytest.raises(TooLarge):
        await bus.publish(big)
    with pytest.raises(InvalidInput):
        await bus.publish(Envelope(type=domain.type, source="hearth/test", data={"size": "not a number"}))
    assert await count(bus, domain.stream, domain.type) == 0


async def test_the_stream_refuses_oversized_raw_publishes_too(bus: Bus, domain: Domain) -> None:
    # LOB systems publish without the Bus: the stream's max_msg_size enforces the claim check.
    payload = b"x" * (bus.settings.event_inline_max_bytes + 64 * 1024)
    with pytest.raises(Exception, match="maximum"):
        await bus.js.publish(domain.type, payload)


async def test_publish_without_a_stream_is_unavailable(bus: Bus) -> None:
    catalog = CATALOG.copy()
    event = catalog.register_event(f"hearth.t{uuid.uuid4().hex[:12]}.orphan.v1", Thing, "Never provisioned.")
    bus.catalog = catalog
    with pytest.raises(Unavailable):
        await bus.publish(Envelope.new(event.type, Thing(name="x"), source="hearth/test"), timeout=2)


async def test_request_reply_subjects_are_not_captured_by_streams(bus: Bus) -> None:
    bus.catalog = CATALOG
    await bus.ensure_streams()
    # A stream capturing hearth.svc.> would answer with a PubAck; nobody answering is correct.
    with pytest.raises(Unavailable, match="nobody"):
        await bus.request(f"hearth.svc.t{uuid.uuid4().hex[:8]}.health", b"{}", timeout=2)
    # hearth.infer.* is answered by the gateway (an unknown model here), never by a stream's PubAck.
    reply = json.loads((await bus.request(f"hearth.infer.t{uuid.uuid4().hex[:8]}", b"{}", timeout=10)).data)
    assert "stream" not in reply
    assert reply["ok"] is False


async def test_ensure_streams_is_idempotent_and_fixes_drift(bus: Bus, domain: Domain) -> None:
    assert set((await bus.ensure_streams()).values()) == {"unchanged"}

    spec = domain.catalog.get_stream(domain.stream)
    changed = StreamSpec(
        name=spec.name, subjects=spec.subjects, description="changed", max_age_s=3600.0, duplicate_window_s=30.0
    )
    assert await bus.ensure_stream(changed) == "updated"
    config = (await bus.js.stream_info(domain.stream)).config
    assert config.max_age == 3600.0
    assert config.duplicate_window == 30.0
    assert config.description == "changed"
    assert await bus.ensure_stream(changed) == "unchanged"
    assert await bus.ensure_stream(spec) == "updated"


# ---- consuming -------------------------------------------------------------------------------


async def test_success_is_acked_once(bus: Bus, domain: Domain, consumers: list[EventConsumer]) -> None:
    handler = Recorder()
    consumer = await start_consumer(bus, domain, handler, consumers)
    env = domain.envelope("ok", subject="doc-1")
    await bus.publish(env)
    await asyncio.wait_for(handler.done.wait(), 10)

    ((got, data),) = handler.calls
    assert got == env
    assert data == Thing(name="ok")

    async def settled() -> bool:
        info = await bus.js.consumer_info(domain.stream, consumer.durable)
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

    await eventually(settled)


async def test_retryable_failure_then_success_is_acked_not_dead_lettered(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    handler = Recorder(failures=[Unavailable("database down"), RuntimeError("flaky")])
    consumer = await start_consumer(bus, domain, handler, consumers, max_deliver=5)
    env = domain.envelope()
    await bus.publish(env)
    await asyncio.wait_for(handler.done.wait(), 10)

    assert [e.id for e, _ in handler.calls] == [env.id] * 3  # the id handlers de-duplicate on

    async def acked() -> bool:
        info = await bus.js.consumer_info(domain.stream, consumer.durable)
        return bool(info.num_ack_pending == 0 and info.num_redelivered == 0)

    await eventually(acked)
    assert await dead_letters(bus, domain.deadletter_subject) == []


async def test_poison_message_is_dead_lettered_after_max_deliveries(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    handler = Recorder(failures=[RuntimeError(f"boom {i}") for i in range(10)])
    await start_consumer(bus, domain, handler, consumers, max_deliver=3)
    env = domain.envelope("poison", correlationid="corr-1")
    await bus.publish(env)

    async def dead_lettered() -> bool:
        return await count(bus, DEADLETTER_STREAM, domain.deadletter_subject) == 1

    await eventually(dead_lettered)
    (letter,) = await dead_letters(bus, domain.deadletter_subject)
    record = DeadLetterRecord.model_validate(letter.data)
    assert len(handler.calls) == 3
    assert record.deliveries == 3
    assert record.original_subject == domain.type
    assert record.original_stream == domain.stream
    assert record.original_envelope is not None
    assert record.original_envelope["id"] == env.id
    assert record.reason["code"] == "max-deliveries-exceeded"
    assert record.reason["extra"]["last_error"]["kind"] == "RuntimeError"
    assert "boom 2" in record.reason["detail"]
    assert letter.subject == env.id
    assert letter.correlationid == "corr-1"
    await asyncio.sleep(0.5)
    assert len(handler.calls) == 3  # terminated: no further deliveries


async def test_schema_invalid_message_is_dead_lettered_at_once(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    handler = Recorder()
    await start_consumer(bus, domain, handler, consumers)
    bad = Envelope(type=domain.type, source="erp", data={"size": "big"})  # bypasses the Bus's own validation
    await bus.js.publish(domain.type, bad.to_json())
    await bus.js.publish(domain.type, b"\x00\x01 not even json")

    async def both() -> bool:
        return await count(bus, DEADLETTER_STREAM, domain.deadletter_subject) == 2

    await eventually(both)
    first, second = (
        DeadLetterRecord.model_validate(e.data) for e in await dead_letters(bus, domain.deadletter_subject)
    )
    assert handler.calls == []
    assert first.deliveries == 1
    assert first.reason["code"] == "invalid-event-data"
    assert first.reason["extra"]["errors"]
    assert second.reason["code"] == "invalid-envelope"
    assert second.original_base64 is not None


async def test_handler_invalid_input_is_dead_lettered_at_once(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    handler = Recorder(failures=[InvalidInput("unknown customer", code="unknown-customer")])
    await start_consumer(bus, domain, handler, consumers)
    await bus.publish(domain.envelope())

    async def dead_lettered() -> bool:
        return await count(bus, DEADLETTER_STREAM, domain.deadletter_subject) == 1

    await eventually(dead_lettered)
    (letter,) = await dead_letters(bus, domain.deadletter_subject)
    record = DeadLetterRecord.model_validate(letter.data)
    assert record.deliveries == 1
    assert record.reason["code"] == "unknown-customer"
    assert len(handler.calls) == 1


async def test_dead_letter_publish_is_deduplicated(bus: Bus, domain: Domain) -> None:
    handler = Recorder(failures=[InvalidInput("bad")] * 2)
    consumer = EventConsumer(bus, durable=f"c-{uuid.uuid4().hex[:8]}", filter_subject=domain.type, handler=handler)
    await bus.js.add_consumer(domain.stream, consumer.consumer_config())
    sub = await bus.js.pull_subscribe_bind(durable=consumer.durable, stream=domain.stream)
    await bus.publish(domain.envelope())
    (msg,) = await sub.fetch(1, timeout=5)

    # A crash between the dead-letter publish and the term means the step runs again.
    assert (await consumer.process(dataclasses.replace(msg))).action is Action.DEAD_LETTER
    assert (await consumer.process(msg)).action is Action.DEAD_LETTER
    assert await count(bus, DEADLETTER_STREAM, domain.deadletter_subject) == 1
    await sub.unsubscribe()


async def test_deliveries_without_a_verdict_are_dead_lettered_without_the_handler(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    handler = Recorder()
    durable = f"c-{uuid.uuid4().hex[:8]}"
    probe = EventConsumer(
        bus, durable=durable, filter_subject=domain.type, handler=handler, max_deliver=2, ack_wait=1.0
    )
    await bus.js.add_consumer(domain.stream, probe.consumer_config())
    sub = await bus.js.pull_subscribe_bind(durable=durable, stream=domain.stream)
    await bus.publish(domain.envelope())
    for _ in range(2):  # two deliveries that "crash": never settled, redelivered after ack_wait
        (msg,) = await sub.fetch(1, timeout=5)
        assert msg.metadata.num_delivered == _ + 1
    await sub.unsubscribe()

    consumer = EventConsumer(
        bus,
        durable=durable,
        filter_subject=domain.type,
        handler=handler,
        max_deliver=2,
        ack_wait=1.0,
        fetch_timeout=1.0,
    )
    await consumer.start()
    consumers.append(consumer)

    async def dead_lettered() -> bool:
        return await count(bus, DEADLETTER_STREAM, domain.deadletter_subject) == 1

    await eventually(dead_lettered)
    (letter,) = await dead_letters(bus, domain.deadletter_subject)
    record = DeadLetterRecord.model_validate(letter.data)
    assert record.deliveries == 3
    assert record.reason["code"] == "max-deliveries-exceeded"
    assert handler.calls == []


async def test_trace_context_crosses_publish_and_consume(
    bus: Bus, domain: Domain, consumers: list[EventConsumer]
) -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing("hearth-tests", processors=[SimpleSpanProcessor(exporter)])
    handler = Recorder()
    await start_consumer(bus, domain, handler, consumers)

    with provider.get_tracer("test").start_as_current_span("lob-request") as root:
        await bus.publish(domain.envelope())
    await asyncio.wait_for(handler.done.wait(), 10)

    root_ctx = root.get_span_context()
    assert handler.trace_ids == [root_ctx.trace_id]

    def consume_spans() -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == f"consume {domain.type}"]

    async def finished() -> bool:
        return bool(consume_spans())

    await eventually(finished)
    (span,) = consume_spans()
    assert span.parent is not None
    assert span.parent.span_id == root_ctx.span_id
    assert span.kind is trace.SpanKind.CONSUMER
    assert json.loads(json.dumps(dict(span.attributes or {})))["messaging.consumer.group.name"].startswith("c-")
