"""Cost of encrypting Temporal payloads: the platform's converter with the codec against without, same run.

Two measurements against the running stack's real OpenBao and Temporal:

1. **encode + decode of N payloads** (an activity-input-sized pydantic model, about 2 KB) through
   the data converter: plaintext (``DATA_CONVERTER``), the codec as configured (a data key reused
   for many payloads, unwrapped keys cached), and the codec with both caches off (one transit
   ``datakey`` per encode and one ``decrypt`` per decode: what the caching saves). Microseconds
   per payload, and how many transit calls each made.
2. **a one-activity workflow** run end to end (start to result, a worker in this process on its
   own task queue), codec off and on, alternated ABBA so drift hits both alike: p50 / p90 ms.

It prints figures, it asserts nothing. Needs a running stack (``make up``)::

    python -m bench.bench_payload_codec --payloads 2000 --runs 40
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from shared.capabilities import DATA_CONVERTER, encrypted_data_converter
from shared.crypto.payload_codec import EnvelopePayloadCodec
from shared.crypto.transit import TransitKeyring
from shared.settings import HearthSettings, load_settings
from shared.tls import temporal_tls


class Page(BaseModel):
    document_id: str
    page: int
    text: str
    entities: list[dict[str, str]]


def sample(i: int) -> Page:
    return Page(
        document_id=f"doc-{i}",
        page=i % 40,
        text=("The supplier shall deliver the goods within thirty days of the order. " * 25)[:1800],
        entities=[{"type": "ORG", "text": "ACME Industrial Ltd."}, {"type": "DATE", "text": "2026-12-01"}],
    )


@activity.defn(name="bench.codec.echo")
async def echo(page: Page) -> Page:
    return page


@workflow.defn(name="bench.codec.one_step", sandboxed=False)
class OneStep:
    @workflow.run
    async def run(self, page: Page) -> Page:
        return await workflow.execute_activity(echo, page, start_to_close_timeout=timedelta(seconds=30))


async def converter_figures(settings: HearthSettings, n: int) -> None:
    values = [sample(i) for i in range(n)]
    keyring = TransitKeyring.from_settings(settings, "gateway")
    size = len(DATA_CONVERTER.payload_converter.to_payload(values[0]).data)
    print(f"encode + decode of payloads of {size} B, one at a time (as activities and results go)")

    def configured() -> EnvelopePayloadCodec:
        return EnvelopePayloadCodec(keyring)

    def uncached() -> EnvelopePayloadCodec:
        return EnvelopePayloadCodec(keyring, max_uses=1, unwrap_cache_size=0)

    base = 0.0
    # (name, codec factory, payloads): the uncached variant calls transit twice per payload, so
    # fewer of them. Decoding uses a fresh codec (another process, cold caches) like a worker would.
    for name, make, count in (
        ("codec off (plaintext)", None, n),
        ("codec on (as configured)", configured, n),
        ("codec on, no key caching", uncached, max(50, n // 10)),
    ):
        writer, reader = (make(), make()) if make else (None, None)
        enc = encrypted_data_converter(writer) if writer else DATA_CONVERTER
        dec = encrypted_data_converter(reader) if reader else DATA_CONVERTER
        await keyring.payload_data_key()  # the AppRole login, outside the timing
        batch = values[:count]
        start = time.perf_counter()
        encoded = [(await enc.encode([v]))[0] for v in batch]
        middle = time.perf_counter()
        decoded = [(await dec.decode([p], [Page]))[0] for p in encoded]
        end = time.perf_counter()
        if decoded != batch:
            raise SystemExit("decoded values differ from the encoded ones")
        enc_us, dec_us = (middle - start) / count * 1e6, (end - middle) / count * 1e6
        base = base or enc_us + dec_us
        calls = (
            f"transit: {writer.stats.data_keys_issued} datakey, {reader.stats.unwrap_calls} decrypt"
            if writer and reader
            else "transit: none"
        )
        print(
            f"  {name:<26} encode {enc_us:8.1f} us  decode {dec_us:8.1f} us per payload "
            f"(x{(enc_us + dec_us) / base:.2f} of plaintext; {count} payloads; {calls})"
        )


async def workflow_figures(settings: HearthSettings, runs: int) -> None:
    plain = await TemporalClient.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        tls=temporal_tls(settings),
    )
    encrypted = await TemporalClient.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=encrypted_data_converter(
            EnvelopePayloadCodec(TransitKeyring.from_settings(settings, "gateway"))
        ),
        tls=temporal_tls(settings),
    )
    clients = {"off": plain, "on": encrypted}
    times: dict[str, list[float]] = {"off": [], "on": []}
    queue = {name: f"bench-codec-{name}-{uuid.uuid4().hex[:8]}" for name in clients}
    workers = [
        Worker(client, task_queue=queue[name], workflows=[OneStep], activities=[echo])
        for name, client in clients.items()
    ]
    async with workers[0], workers[1]:
        for name, client in clients.items():  # warm up: first task of each worker, first data key
            await client.execute_workflow(OneStep.run, sample(0), id=f"warm-{uuid.uuid4()}", task_queue=queue[name])
        order = ["off", "on", "on", "off"]
        for i in range(runs * 2):
            name = order[i % 4]
            start = time.perf_counter()
            await clients[name].execute_workflow(
                OneStep.run, sample(i), id=f"bench-codec-{uuid.uuid4()}", task_queue=queue[name]
            )
            times[name].append((time.perf_counter() - start) * 1000)
    print(f"one-activity workflow, start to result, {runs} runs each (ABBA)")
    for name in ("off", "on"):
        t = sorted(times[name])
        p90 = t[int(len(t) * 0.9) - 1]
        print(f"  codec {name:<3}  p50 {statistics.median(t):7.2f} ms  p90 {p90:7.2f} ms")
    ratio = statistics.median(times["on"]) / statistics.median(times["off"])
    print(f"  codec on / off (p50): x{ratio:.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    settings = load_settings()
    await converter_figures(settings, args.payloads)
    await workflow_figures(settings, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
