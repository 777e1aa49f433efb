"""Cost of encryption at rest on document ingestion: end to end, and each encryption step with against without.

The running stack has no switch to turn encryption off (and should have none), so "without" is
never measured end to end. The bench measures, in the same run:

1. **End to end**: N small text PDFs (two pages of Chinese contract text, text layer) posted to
   ``POST /v1/documents`` with a user key of a tenant of its own (seed workflow
   ``document_processing``: ``ocr_extraction`` then ``nlp_analysis``), timed from the request to
   the ``hearth.document.processed.v1`` event of that document (published once the results are
   stored: the document reads ``processed`` from then on). Sequentially, then ``--concurrency`` at
   a time. p50 / p90 ms per document, all of it with encryption, as the stack runs.
2. **Every encryption step one ingestion performs**, in this process against the same OpenBao,
   NATS and PostgreSQL, with against without, in rounds alternated ABBA, on the sizes the
   end-to-end documents produced (the last one's file, OCR result, Temporal history and
   results). What one ingestion does, from the code:

   * **blobs** (``shared/blobstore.py``): two writes, the upload (gateway) and the OCR result JSON
     (``ocr``; a text-layer PDF renders no page images), each a transit ``datakey`` and AES-GCM
     per 128 KiB chunk; three reads in processes that did not write them, each a transit
     ``decrypt``: the upload (``ocr``), the OCR result (``nlp``, then the gateway storing the
     results). Timed as ``put`` / ``get`` on the real bucket, the reader's key cache emptied
     before each read; plaintext: a store without keyring.
   * **workflow payloads** (``shared/crypto/payload_codec.py``): every payload of the run's
     history sealed by the codec (found by walking the real history: run input, each activity's
     input and result, each local activity's result, the run's result, the summary), each
     encoded once and decoded once; the engine's event activities' inputs (local activities, not
     in the history: rebuilt from the step outputs they carry), encoded and decoded once each;
     the ``progress`` query the gateway sends when the run has finished (the completed event of
     a document's run carries no outputs), its result encoded and decoded once. Through the data
     converter with the codec against without, the codec's data key reused and unwrapped keys
     cached as in the services (steady state: no transit call).
   * **columns** (``services/gateway/documents/cipher.py``): ``bench_column_encryption``'s store
     round on the end-to-end document's text, pages and entities: record the document (with
     encryption, the document's data key from transit ``datakey``), index its pages (chunks
     sealed, terms hashed; no embeddings, the same both ways) and store the results (sealed,
     entity terms hashed); plus opening the sealed results once (the gateway reads the document
     back to announce it). Plaintext: ``DocumentCipher(engine, None)``.

It also times single transit calls (``datakey``, an uncached ``decrypt``), which the blob and
column lines include: where the extra time goes.

Not counted (amortised or conditional): the tenant index key's unwrap (once per 10 minutes per
process, gateway and ``nlp``), the first data key of each codec, and a replay of the history
should the worker answering the ``progress`` query no longer hold the finished run (it decodes
the history's payloads once more: less than the payload line again).

It prints the end-to-end p50, the extra time per document of the encryption steps (sealed
minus plaintext, p50s) and the overhead ``extra / (end-to-end p50 - extra)`` against the 10 %
target. It prints figures, it asserts nothing. Needs a running stack (``make up``)::

    python -m bench.bench_ingestion_encryption --docs 12 --concurrency 4 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fpdf import FPDF
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.client import Client as TemporalClient
from temporalio.converter import DataConverter

from bench.bench_column_encryption import _line, _round, delete_tenants
from services.gateway.documents.cipher import PROCESSED, DocumentCipher
from services.gateway.documents.store import PageSummary, Processed
from shared import segment
from shared.blobstore import DEFAULT_BUCKET, BlobRef, BlobStore
from shared.bus import Bus
from shared.capabilities import DATA_CONVERTER, encrypted_data_converter
from shared.clients import postgres_engine, temporal_client
from shared.crypto.columns import ColumnKeys, open_json, seal_json
from shared.crypto.payload_codec import ENCODING, EnvelopePayloadCodec
from shared.crypto.transit import TransitKeyring
from shared.documents import Entity
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings, load_settings
from shared.tls import http_verify, temporal_tls
from shared.workflow import EmitEvent
from tests.data.generate import font_path

TARGET = 10.0
PAGES = (
    [
        "设备采购合同",
        "合同编号：CG-2024-{n:04d}",
        "甲方（买方）：北京星河科技有限公司",
        "乙方（卖方）：上海远航机械制造有限公司",
        "第一条 甲方向乙方采购数控机床两台，合同总价款为人民币壹拾贰万元整（¥120,000.00）。",
        "第二条 本合同有效期自2024年3月1日起至2025年2月28日止。",
        "第三条 乙方应于签订后三十日内交付设备，并负责安装调试，费用由乙方承担。",
    ],
    [
        "第四条 质量保证期为十二个月，自设备验收合格之日起计算。",
        "第五条 甲方应于设备验收合格后十五日内支付全部价款。",
        "第六条 因本合同发生的争议，双方协商解决；协商不成的，提交甲方所在地人民法院诉讼解决。",
        "签订日期：2024年2月20日",
    ],
)


def contract_pdf(n: int) -> bytes:
    """A two-page contract with a text layer (so OCR reads the layer: the small-document path)."""
    pdf = FPDF(format="A4")
    pdf.add_font("noto", fname=str(font_path()))
    pdf.set_font("noto", size=12)
    for lines in PAGES:
        pdf.add_page()
        for line in lines:
            pdf.multi_cell(0, 8, line.format(n=n), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


# ---- 1. end to end ---------------------------------------------------------------------------


class Ingest:
    """Posts documents and waits for their ``hearth.document.processed.v1`` events."""

    def __init__(self, http: httpx.AsyncClient, bus: Bus) -> None:
        self.http = http
        self.bus = bus
        self.waiting: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self.serial = 0

    async def start(self) -> None:
        async def on_event(msg: Any) -> None:
            data = json.loads(msg.data).get("data") or {}
            fut = self.waiting.get(str(data.get("document_id")))
            if fut is not None and not fut.done():
                fut.set_result((time.perf_counter(), str(data.get("status"))))

        self.sub = await self.bus.nc.subscribe("hearth.document.processed.v1", cb=on_event)

    async def one(self) -> tuple[float, str]:
        """(ms from the request to the processed event, document id)."""
        self.serial += 1
        data = contract_pdf(self.serial)
        start = time.perf_counter()
        resp = await self.http.post(
            "/v1/documents", files={"file": (f"contract-{self.serial}.pdf", data, "application/pdf")}
        )
        if resp.status_code != 202:
            raise SystemExit(f"POST /v1/documents answered {resp.status_code}: {resp.text[:300]}")
        doc_id = resp.json()["id"]
        fut = self.waiting.setdefault(doc_id, asyncio.get_running_loop().create_future())
        done, status = await asyncio.wait_for(fut, 300)
        if status != "processed":
            raise SystemExit(f"document {doc_id} ended {status}: see GET /v1/documents/{doc_id}")
        return (done - start) * 1000, doc_id

    async def many(self, count: int, concurrency: int) -> tuple[list[float], float, str]:
        gate = asyncio.Semaphore(concurrency)

        async def bounded() -> tuple[float, str]:
            async with gate:
                return await self.one()

        start = time.perf_counter()
        results = await asyncio.gather(*(bounded() for _ in range(count)))
        return [r[0] for r in results], time.perf_counter() - start, results[-1][1]


# ---- what one ingestion carried, from its run --------------------------------------------------


def _payloads(msg: Message, where: str) -> Iterator[tuple[str, Payload]]:
    """Every ``Payload`` inside a protobuf message, with the event attribute it sits in."""
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = [v for v in value.values() if isinstance(v, Message)]
        elif isinstance(value, Message):
            values = [value]
        else:
            values = list(value)
        name = field.name if where == "" else where
        for item in values:
            if isinstance(item, Payload):
                yield name, item
            else:
                yield from _payloads(item, name)


class _Recorder(EnvelopePayloadCodec):
    """The codec, keeping what it decoded (the gateway's view of a query result)."""

    def __init__(self, keyring: TransitKeyring) -> None:
        super().__init__(keyring)
        self.decoded_payloads: list[Payload] = []

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = await super().decode(payloads)
        self.decoded_payloads.extend(out)
        return out


async def run_payloads(settings: HearthSettings, run_id: str) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The sealed payloads of a document's run as (where, value), and the OCR step's result."""
    client = await temporal_client(settings)
    codec = EnvelopePayloadCodec(TransitKeyring.from_settings(settings, "gateway"))
    history = await client.get_workflow_handle(run_id).fetch_history()
    found: list[tuple[str, Any]] = []
    results: dict[str, Any] = {}
    scheduled: dict[int, str] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        for where, payload in _payloads(event, ""):
            if payload.metadata.get("encoding") != ENCODING:
                continue  # trace headers, local-activity bookkeeping: plaintext by design
            inner = (await codec.decode([payload]))[0]
            value = DATA_CONVERTER.payload_converter.from_payloads([inner])[0]
            found.append((where, value))
            if where == "activity_task_completed_event_attributes":
                step = scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
                results[step] = value
    # The engine's event activities (local: their inputs are not in the history), rebuilt the way
    # workflows/interpreter.py builds them: one per step, carrying its output, and the completed one.
    base: dict[str, Any] = {"workflow": "document_processing", "workflow_id": run_id, "run_id": str(uuid.uuid4())}
    base |= {"definition_hash": "0" * 64, "definition_version": 1, "document_id": run_id[4:]}
    for step, output in results.items():
        data = {**base, "step_id": step, "step_type": step, "outcome": "completed", "output": output}
        data |= {"started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00"}
        emitted = EmitEvent(type="hearth.workflow.step.completed.v1", key=f"{run_id}/x/step/{step}", data=data)
        found.append(("local activity input (event)", emitted.model_dump(mode="json")))
    done = {**base, "duration_ms": 1000.0, "outputs": results, "outputs_truncated": False}
    emitted = EmitEvent(type="hearth.workflow.completed.v1", key=f"{run_id}/x/completed", data=done)
    found.append(("local activity input (event)", emitted.model_dump(mode="json")))
    # The progress query of the finished run (RunService.describe from on_run_finished).
    recorder = _Recorder(TransitKeyring.from_settings(settings, "gateway"))
    querying = await TemporalClient.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=encrypted_data_converter(recorder),
        tls=temporal_tls(settings),
    )
    await querying.get_workflow_handle(run_id).query("progress")
    for inner in recorder.decoded_payloads:
        found.append(("progress query result", DATA_CONVERTER.payload_converter.from_payloads([inner])[0]))
    return found, results.get("ocr_extraction", {})


def processed_of(doc: dict[str, Any]) -> Any:
    """A factory of the end-to-end document's results, for ``bench_column_encryption._round``."""
    pages = [PageSummary.model_validate(p) for p in doc["pages"]]
    entities = {k: [Entity.model_validate(e) for e in v] for k, v in doc["entities"].items()}

    def make(run_id: str) -> Processed:
        return Processed(
            run_id=run_id, text=doc["text"], pages=pages, entities=entities, provenance={}, tags=doc["tags"]
        )

    return make


# ---- 2. the encryption steps, with against without --------------------------------------------


@dataclass(kw_only=True)
class Steps:
    """One ingestion's encryption steps at the end-to-end document's sizes, timed per document in either mode."""

    engine: AsyncEngine
    bus: Bus
    stores: dict[str, BlobStore]
    converters: dict[str, tuple[DataConverter, DataConverter]]
    """Writer and reader: different processes, so each codec has its own data key and cache."""
    ciphers: dict[str, DocumentCipher]
    tenant: str
    upload: bytes
    ocr_json: bytes
    values: list[Any]
    doc: dict[str, Any]

    async def blobs(self, mode: str) -> float:
        store = self.stores[mode]
        start = time.perf_counter()
        refs: list[BlobRef] = []
        for data, content_type, readers in (
            (self.upload, "application/pdf", 1),
            (self.ocr_json, "application/json", 2),
        ):
            ref = await store.put(data, content_type, tenant=self.tenant)
            refs.append(ref)
            for _ in range(readers):
                if store.keyring is not None:
                    store.keyring.forget()  # the reader is another process: no cached key
                await store.get(ref)
        elapsed = (time.perf_counter() - start) * 1000
        for ref in refs:
            await store.delete(ref)
        return elapsed

    async def payloads(self, mode: str) -> float:
        writer, reader = self.converters[mode]
        start = time.perf_counter()
        for value in self.values:
            await reader.decode(await writer.encode([value]))
        return (time.perf_counter() - start) * 1000

    def open_results(self, mode: str) -> float:
        # DocumentStore.get when the gateway announces the document: the sealed results opened
        # (the data key from the keyring's cache), or the plaintext jsonb columns parsed.
        content = {"text": self.doc["text"], "pages": self.doc["pages"], "entities": self.doc["entities"]}
        doc_id, key = str(uuid.uuid4()), b"\x07" * 32
        if mode == "sealed":
            sealed = seal_json(key, doc_id, PROCESSED, content)
            start = time.perf_counter()
            open_json(key, doc_id, PROCESSED, sealed)
        else:
            stored = [json.dumps(content["pages"]), json.dumps(content["entities"])]
            start = time.perf_counter()
            for value in stored:
                json.loads(value)
        return (time.perf_counter() - start) * 1000

    async def transit(self) -> tuple[float, float]:
        """One transit ``datakey`` and one uncached ``decrypt`` (ms): what the blob and column steps pay per call."""
        keyring = self.stores["sealed"].keyring
        if keyring is None:
            raise SystemExit("the blob store has no keyring: is this the native stack (`hearth up`)?")
        start = time.perf_counter()
        key = await keyring.new_data_key(self.tenant)
        middle = time.perf_counter()
        keyring.forget()
        await keyring.unwrap(key.header())
        return (middle - start) * 1000, (time.perf_counter() - middle) * 1000

    async def columns(self, mode: str, docs: int) -> list[float]:
        cipher, tenant = self.ciphers[mode], f"{self.tenant}-{mode}"
        stored, _ = await _round(self.engine, self.bus, cipher, tenant, docs, result=processed_of(self.doc))
        return [t + self.open_results(mode) for t in stored]


async def end_to_end(http: httpx.AsyncClient, bus: Bus, docs: int, concurrency: int) -> dict[str, Any]:
    ingest = Ingest(http, bus)
    await ingest.start()
    try:
        await ingest.one()  # warm-up: the tenant's transit key, first run of the workers
        sequential, _, last = await ingest.many(docs, 1)
        concurrent: list[float] = []
        wall = 0.0
        if concurrency > 1:
            concurrent, wall, _ = await ingest.many(docs, concurrency)
    finally:
        await ingest.sub.unsubscribe()
    return {"sequential": sequential, "concurrent": concurrent, "wall": wall, "last": last}


async def prepare(
    settings: HearthSettings, engine: AsyncEngine, bus: Bus, http: httpx.AsyncClient, *, tenant: str, last: str
) -> tuple[Steps, list[tuple[str, Any]]]:
    """The steps of the last sequential document, at its sizes, and the payloads its run carried."""
    doc = (await http.get(f"/v1/documents/{last}")).json()
    sealed_blobs = await BlobStore.create(bus.js, settings, service="gateway")
    values, ocr = await run_payloads(settings, f"doc-{last}")
    async with engine.connect() as conn:
        query = text("SELECT blob FROM raw_docs WHERE id = :id")
        upload_ref = BlobRef.model_validate((await conn.execute(query, {"id": last})).scalar_one())
    keyring = TransitKeyring.from_settings(settings, "gateway")
    reader = EnvelopePayloadCodec(TransitKeyring.from_settings(settings, "gateway"))
    steps = Steps(
        engine=engine,
        bus=bus,
        stores={
            "plain": BlobStore(bus.js, bucket=DEFAULT_BUCKET, max_bytes=settings.blob_max_bytes, keyring=None),
            "sealed": sealed_blobs,
        },
        converters={
            "plain": (DATA_CONVERTER, DATA_CONVERTER),
            "sealed": (encrypted_data_converter(EnvelopePayloadCodec(keyring)), encrypted_data_converter(reader)),
        },
        ciphers={"plain": DocumentCipher(engine, None), "sealed": DocumentCipher(engine, ColumnKeys(engine, keyring))},
        tenant=tenant,
        upload=await sealed_blobs.get(upload_ref),
        ocr_json=await sealed_blobs.get(BlobRef.model_validate(ocr["result"])),
        values=[v for _, v in values],
        doc=doc,
    )
    return steps, values


async def in_process(steps: Steps, rounds: int, per_round: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {m: {"blobs": [], "payloads": [], "columns": []} for m in steps.ciphers}
    times["transit"] = {"datakey": [], "decrypt": []}
    for mode in steps.ciphers:  # warm-up: keys exist, data keys cached, connections open
        await steps.blobs(mode)
        await steps.payloads(mode)
        await steps.columns(mode, 1)
    for i in range(rounds * 2):
        mode = ("plain", "sealed", "sealed", "plain")[i % 4]
        for _ in range(per_round):
            times[mode]["blobs"].append(await steps.blobs(mode))
            times[mode]["payloads"].append(await steps.payloads(mode))
        times[mode]["columns"].extend(await steps.columns(mode, per_round))
        if mode == "sealed":
            for _ in range(per_round):
                datakey, decrypt = await steps.transit()
                times["transit"]["datakey"].append(datakey)
                times["transit"]["decrypt"].append(decrypt)
    return times


def report(
    args: argparse.Namespace,
    e2e: dict[str, Any],
    steps: Steps,
    values: list[tuple[str, Any]],
    times: dict[str, dict[str, list[float]]],
) -> None:
    doc = steps.doc
    print(
        f"end to end: {args.docs} text PDFs of {len(doc['pages'])} pages ({len(steps.upload)} B, "
        f"{len(doc['text'])} characters), POST to processed event"
    )
    print("  " + _line("c=1", e2e["sequential"]))
    if e2e["concurrent"]:
        rate = args.docs / e2e["wall"]
        print("  " + _line(f"c={args.concurrency}", e2e["concurrent"]) + f"  ({rate:.2f} documents/s)")
    where: dict[str, int] = {}
    for name, _ in values:
        where[name] = where.get(name, 0) + 1
    size = sum(len(DATA_CONVERTER.payload_converter.to_payloads([v])[0].data) for _, v in values)
    print(f"one ingestion's encryption steps, {args.rounds} rounds x {args.per_round} per mode (ABBA), ms per document")
    print(
        f"  blobs: 2 writes ({len(steps.upload)} B upload, {len(steps.ocr_json)} B OCR result), 3 reads; "
        "transit: 2 datakey, 3 decrypt"
    )
    print(f"  payloads: {len(values)} sealed, {size} B of plaintext in all, each encoded and decoded once:")
    for name, count in where.items():
        print(f"    {count} x {name}")
    print("  columns: record (transit datakey), index (chunks sealed, terms hashed), results sealed, opened once")
    extra = 0.0
    for step in ("blobs", "payloads", "columns"):
        plain, sealed = (statistics.median(times[m][step]) for m in ("plain", "sealed"))
        extra += sealed - plain
        print(f"  {step}")
        for mode in ("plain", "sealed"):
            print("    " + _line(mode, times[mode][step]))
        print(f"    extra (p50 sealed - plain) {sealed - plain:7.2f} ms")
    print("  of which transit calls, each (in blobs: 5, in columns: 1)")
    for call in ("datakey", "decrypt"):
        print("    " + _line(call, times["transit"][call]))
    p50 = statistics.median(e2e["sequential"])
    overhead = extra / (p50 - extra) * 100
    verdict = "within" if overhead <= TARGET else "over"
    print(f"end-to-end p50 (c=1)            {p50:8.1f} ms")
    print(f"encryption extra per document   {extra:8.1f} ms")
    print(f"overhead extra / (p50 - extra)  {overhead:8.1f} %  (target <= {TARGET:.0f} %: {verdict})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=12, help="documents ingested end to end, per pass")
    parser.add_argument("--concurrency", type=int, default=4, help="second pass: this many at a time (0: skip)")
    parser.add_argument("--rounds", type=int, default=4, help="in-process rounds per mode (ABBA order)")
    parser.add_argument("--per-round", type=int, default=6, help="documents' worth of steps per in-process round")
    args = parser.parse_args()
    settings = load_settings()
    await asyncio.to_thread(segment.ready)
    engine = postgres_engine(settings, pool_size=4)
    bus = await Bus.connect(settings, name="bench-ingestion")
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    created = await ApiKeyStore(engine).create(f"bench-ingest-{tenant}", "user", tenant=tenant)
    http = httpx.AsyncClient(
        base_url=settings.gateway_url,
        headers={"Authorization": f"Bearer {created.key}"},
        timeout=60,
        verify=http_verify(settings),
    )
    try:
        e2e = await end_to_end(http, bus, args.docs, args.concurrency)
        steps, values = await prepare(settings, engine, bus, http, tenant=tenant, last=e2e["last"])
        times = await in_process(steps, args.rounds, args.per_round)
        report(args, e2e, steps, values, times)
    finally:
        await http.aclose()
        await ApiKeyStore(engine).revoke(created.prefix)
        await delete_tenants(engine, (tenant, f"{tenant}-plain", f"{tenant}-sealed"))
        await bus.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
