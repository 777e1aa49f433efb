"""Cost of the shared messaging layer against bare nats-py, measured in the same run.

1. Request/reply round trip through the capability layer (FastStream subscriber +
   ``call_capability``: trace context, server span, typed input/result, JSON reply envelope)
   against a raw nats-py subscription answering (a) the same bytes back and (b) the same typed
   work done by hand (parse the input model, build and dump the result, parse it on the
   client). The layer runs on ``service_broker`` (what services use), on a FastStream broker
   with default options, and on plain nats-py subscriptions (``CapabilityRegistry.subscribe``).
2. JetStream acked publish through ``Bus.publish`` (building the envelope, catalog validation,
   size check, ``Nats-Msg-Id``, expected stream, ``traceparent``) against raw ``js.publish`` of
   a payload of the same size, bare and with the same de-duplication headers.

It prints figures, it asserts nothing. Runs against the stack described by ``HEARTH_*``::

    python -m bench.bench_bus --n 2000

Rounds of the variants are interleaved so drift on a shared box hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel

from shared.bus import Bus
from shared.capabilities import CapabilityRegistry, call_capability, service_broker
from shared.events.catalog import CATALOG
from shared.events.envelope import Envelope
from shared.natsauth import connect_options
from shared.settings import HearthSettings, load_settings
from shared.tracing import setup_tracing


class EchoInput(BaseModel):
    text: str
    count: int


class EchoResult(BaseModel):
    text: str
    count: int


class BenchSample(BaseModel):
    text: str


@dataclass
class Figures:
    name: str
    samples_s: list[float]

    @property
    def p50_us(self) -> float:
        return statistics.median(self.samples_s) * 1e6

    @property
    def p95_us(self) -> float:
        return statistics.quantiles(self.samples_s, n=20)[18] * 1e6

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples_s) * 1e6

    def line(self) -> str:
        return f"  {self.name:<36} p50 {self.p50_us:8.1f} us   p95 {self.p95_us:8.1f} us   mean {self.mean_us:8.1f} us"


def overhead(of: Figures, base: Figures) -> str:
    return (
        f"  {of.name} vs {base.name}: p50 {100 * (of.p50_us / base.p50_us - 1):+.1f}%   "
        f"mean {100 * (of.mean_us / base.mean_us - 1):+.1f}%"
    )


async def timed_rounds(
    variants: dict[str, Callable[[], Awaitable[object]]], n: int, rounds: int, warmup: int
) -> dict[str, Figures]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        for _ in range(warmup):
            await call()
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for name, call in variants.items():
            out = samples[name]
            for _ in range(per_round):
                started = time.perf_counter()
                await call()
                out.append(time.perf_counter() - started)
    return {name: Figures(name, s) for name, s in samples.items()}


def echo_registry(service: str) -> CapabilityRegistry:
    registry = CapabilityRegistry(service=service, health=False)

    @registry.capability(f"{service}.echo")
    async def echo(inp: EchoInput) -> EchoResult:
        return EchoResult(text=inp.text, count=inp.count + 1)

    return registry


async def bench_request_reply(nc: Client, settings: HearthSettings, n: int, rounds: int, payload_chars: int) -> None:
    url = settings.nats_url
    service = f"bench{uuid.uuid4().hex[:8]}"
    # The layer as services run it (shared.capabilities.service_broker) ...
    lean = service_broker(settings, name="hearth-bench-lean")
    echo_registry(service).nats_subscribers(lean)
    await lean.start()
    await lean.connection.flush()
    # ... and on a FastStream broker with default options (per-message records at INFO are
    # filtered here: the root logger is not configured, as in a service at level WARNING).
    default = NatsBroker(url, log_level=logging.DEBUG, **connect_options(settings))
    echo_registry(f"{service}d").nats_subscribers(default)
    await default.start()
    await default.connection.flush()

    server = await nats.connect(url, **connect_options(settings))
    # ... and without FastStream: the same registry on plain nats-py subscriptions.
    await echo_registry(f"{service}p").subscribe(server)

    async def raw_echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    async def raw_typed(msg: Msg) -> None:
        inp = EchoInput.model_validate_json(msg.data)
        await msg.respond(EchoResult(text=inp.text, count=inp.count + 1).model_dump_json().encode())

    raw_subject = f"bench.raw.{service}"
    typed_subject = f"bench.typed.{service}"
    await server.subscribe(raw_subject, queue="bench", cb=raw_echo)
    await server.subscribe(typed_subject, queue="bench", cb=raw_typed)
    await server.flush()

    inp = EchoInput(text="x" * payload_chars, count=1)
    raw_payload = inp.model_dump_json().encode()

    async def call_raw() -> object:
        return await nc.request(raw_subject, raw_payload, timeout=5)

    async def call_typed() -> object:
        reply = await nc.request(typed_subject, inp.model_dump_json().encode(), timeout=5)
        return EchoResult.model_validate_json(reply.data)

    async def call_layer() -> object:
        return await call_capability(nc, f"{service}.echo", inp, EchoResult, timeout=5)

    async def call_layer_default() -> object:
        return await call_capability(nc, f"{service}d.echo", inp, EchoResult, timeout=5)

    async def call_layer_plain() -> object:
        return await call_capability(nc, f"{service}p.echo", inp, EchoResult, timeout=5)

    # "as services run it" is the runtime's path (shared/runtime.py): plain nats-py subscriptions.
    layer = "capability layer (as services run it: plain nats-py sub)"
    via_faststream = "capability layer on FastStream service_broker"
    via_default = "capability layer on FastStream default broker"
    figures = await timed_rounds(
        {
            "raw nats-py (echo bytes)": call_raw,
            "raw nats-py (typed, by hand)": call_typed,
            layer: call_layer_plain,
            via_faststream: call_layer,
            via_default: call_layer_default,
        },
        n,
        rounds,
        warmup=200,
    )
    print(f"request/reply round trip, {n} calls each, request {len(raw_payload)} bytes")
    for fig in figures.values():
        print(fig.line())
    typed = figures["raw nats-py (typed, by hand)"]
    print(overhead(figures[layer], typed) + "   (target <= 20%)")
    print(overhead(figures[layer], figures["raw nats-py (echo bytes)"]))
    print(overhead(figures[via_faststream], typed))
    print(overhead(figures[via_default], typed))
    await server.close()
    await lean.stop()
    await default.stop()


async def bench_publish(bus: Bus, n: int, rounds: int, payload_chars: int) -> None:
    domain = f"bench{uuid.uuid4().hex[:8]}"
    catalog = CATALOG.copy()
    event_type = catalog.register_event(f"hearth.{domain}.sample.v1", BenchSample, "Benchmark sample.")
    bus.catalog = catalog
    await bus.ensure_stream(catalog.get_stream(event_type.stream))
    sample = BenchSample(text="y" * payload_chars)
    size = len(Envelope.new(event_type.type, sample, source="hearth/bench").to_json())
    raw_payload = b"z" * size
    raw_subject = f"hearth.{domain}.raw.v1"

    async def layer() -> object:
        return await bus.publish(Envelope.new(event_type.type, sample, source="hearth/bench"))

    async def raw() -> object:
        return await bus.js.publish(raw_subject, raw_payload)

    async def raw_with_id() -> object:
        headers = {"Nats-Msg-Id": str(uuid.uuid4())}
        return await bus.js.publish(raw_subject, raw_payload, stream=event_type.stream, headers=headers)

    try:
        figures = await timed_rounds(
            {"raw js.publish": raw, "raw js.publish + msg id, stream": raw_with_id, "Bus.publish": layer},
            n,
            rounds,
            warmup=100,
        )
    finally:
        await bus.js.delete_stream(event_type.stream)
    print(f"JetStream acked publish (sequential), {n} messages each, {size} bytes")
    for fig in figures.values():
        rate = 1e6 / fig.mean_us
        print(f"{fig.line()}   {rate:8.0f} msg/s")
    print(overhead(figures["Bus.publish"], figures["raw js.publish"]))
    print(overhead(figures["Bus.publish"], figures["raw js.publish + msg id, stream"]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="calls per variant")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--payload-chars", type=int, default=256, help="size of the text field")
    parser.add_argument("--no-tracing", action="store_true", help="skip the SDK tracer provider services install")
    args = parser.parse_args()
    settings = load_settings()
    if not args.no_tracing:
        setup_tracing("bench")  # as every service does; spans are recorded, none exported
    print(f"NATS {settings.nats_url}; tracing {'off' if args.no_tracing else 'on (SDK provider, no exporter)'}")
    bus = await Bus.connect(settings, name="hearth-bench")
    try:
        await bench_request_reply(bus.nc, settings, args.n, args.rounds, args.payload_chars)
        await bench_publish(bus, args.n, args.rounds, args.payload_chars)
    finally:
        await bus.close()


if __name__ == "__main__":
    asyncio.run(main())
