"""Documents end to end on the real stack: REST or an ingest event → the seed's workflow → results.

``POST /v1/documents`` (multipart) or ``hearth.ingest.document.v1`` starts ``document_processing``
(the seed's example, verbatim) or ``contract_analysis``; OCR (``chinese_ocr_v3``) and entities
(``legal_doc_analyzer``) run in Triton; ``GET /v1/documents/{id}`` shows what was found and
``hearth.document.processed.v1`` announces it.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.blobstore import BlobStore
from shared.bus import Bus
from shared.clients import postgres_engine, temporal_client
from shared.events.envelope import Envelope
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings
from tests.data.generate import font_path
from tests.integration.conftest import hearth_cli
from tests.integration.documents import processed, text_pdf
from tests.integration.histories import replay

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CONTRACT_ZH = [
    "设备采购合同",
    "合同编号：CG-2024-0315",
    "甲方（买方）：北京星河科技有限公司",
    "乙方（卖方）：上海远航机械制造有限公司",
    "第一条 甲方向乙方采购数控机床两台，合同总价款为人民币壹拾贰万元整（¥120,000.00）。",
    "第二条 本合同有效期自2024年3月1日起至2025年2月28日止。",
    "第三条 乙方应于签订后三十日内交付设备。",
    "签订日期：2024年2月20日",
]
Client = Callable[..., Awaitable[httpx.AsyncClient]]


def contract_scan(lines: list[str]) -> bytes:
    """The contract as a scanned page (no text layer): rendered at about 150 DPI."""
    image = Image.new("L", (1240, 90 + 60 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(font_path()), 30)
    for i, line in enumerate(lines):
        draw.text((60, 50 + 60 * i), line, font=font, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    async with await Bus.connect(stack, name="test-documents") as connected:
        yield connected


@pytest.fixture
async def client(stack: HearthSettings, engine: AsyncEngine) -> AsyncIterator[Client]:
    keys = ApiKeyStore(engine)
    clients: list[httpx.AsyncClient] = []

    async def make(tenant: str | None = None) -> httpx.AsyncClient:
        created = await keys.create(
            f"test-docs-{uuid.uuid4().hex[:6]}", "user", tenant=tenant or f"t-{uuid.uuid4().hex[:8]}"
        )
        http = httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"Authorization": f"Bearer {created.key}"}, timeout=60
        )
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


async def submit(http: httpx.AsyncClient, data: bytes, filename: str, **form: str) -> dict[str, Any]:
    resp = await http.post("/v1/documents", files={"file": (filename, data, "application/octet-stream")}, data=form)
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    assert resp.headers["location"] == f"/v1/documents/{body['id']}"
    assert body["run_id"] == f"doc-{body['id']}"
    return body


def only(entities: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    found = entities[name]
    assert len(found) == 1, (name, found)
    return found[0]


async def test_a_contract_pdf_runs_the_full_analysis_and_is_announced(
    client: Client, bus: Bus, stack: HearthSettings
) -> None:
    http = await client()
    announced: asyncio.Queue[Envelope] = asyncio.Queue()

    async def on_event(msg: Any) -> None:
        await announced.put(Envelope.model_validate_json(msg.data))

    sub = await bus.nc.subscribe("hearth.document.processed.v1", cb=on_event)
    try:
        submitted = await submit(http, text_pdf(CONTRACT_ZH), "contract.pdf", workflow="contract_analysis")
        doc = await processed(http, submitted["id"])
        assert doc["status"] == "processed", doc
        assert [p["source"] for p in doc["pages"]] == ["text_layer"]
        assert "设备采购合同" in doc["text"]
        entities = doc["entities"]
        assert only(entities, "contract_type")["normalized"]["type"] == "purchase"
        period = only(entities, "valid_period")
        assert (period["normalized"]["start"], period["normalized"]["end"]) == ("2024-03-01", "2025-02-28")
        page_text = doc["pages"][0]["text"]
        span = period["span"]
        assert span["page"] == 1
        assert page_text[span["start"] : span["end"]] == period["value"]
        assert only(entities, "amount")["normalized"] == {"amount": "120000.00", "currency": "CNY"}
        assert only(entities, "contract_number")["normalized"]["number"] == "CG-2024-0315"
        assert only(entities, "signing_date")["normalized"]["date"] == "2024-02-20"
        parties = {(p["normalized"]["role"], p["normalized"]["name"]) for p in entities["parties"]}
        assert parties == {("party_a", "北京星河科技有限公司"), ("party_b", "上海远航机械制造有限公司")}
        assert doc["classification"]["label"] == "contract"
        assert "purchase" in doc["tags"]
        assert doc["language"] == "zh"
        assert doc["provenance"]["entities"]["model"] == "legal_doc_analyzer"
        assert doc["provenance"]["workflow"] == "contract_analysis"
        await replay(await temporal_client(stack), submitted["run_id"], "contract_analysis")
        event = await asyncio.wait_for(announced.get(), 30)
        while event.data["document_id"] != submitted["id"]:
            event = await asyncio.wait_for(announced.get(), 30)
        assert event.data["status"] == "processed"
        assert event.data["doc_class"] == "contract"
        assert event.data["entities"]["contract_type"] == [only(entities, "contract_type")["normalized"]]
    finally:
        await sub.unsubscribe()


async def test_a_scanned_contract_runs_the_seed_workflow_verbatim(client: Client, stack: HearthSettings) -> None:
    http = await client()
    submitted = await submit(http, contract_scan(CONTRACT_ZH), "scan.png")
    doc = await processed(http, submitted["id"])
    assert doc["status"] == "processed", doc
    assert doc["workflow"] == "document_processing"
    assert [p["source"] for p in doc["pages"]] == ["ocr"]
    assert doc["provenance"]["ocr"]["model"] == "chinese_ocr_v3"
    # The seed's step asks for these two only.
    assert sorted(doc["entities"]) == ["contract_type", "valid_period"]
    assert only(doc["entities"], "contract_type")["normalized"]["type"] == "purchase"
    period = only(doc["entities"], "valid_period")["normalized"]
    assert (period["start"], period["end"]) == ("2024-03-01", "2025-02-28")
    run = (await http.get(f"/v1/runs/{submitted['run_id']}")).json()
    assert (run["workflow"], run["status"]) == ("document_processing", "completed")
    assert [s["id"] for s in run["progress"]["steps"]] == ["ocr_extraction", "nlp_analysis"]
    await replay(await temporal_client(stack), submitted["run_id"], "document_processing")


async def test_an_ingest_event_is_processed_once_per_external_id(
    client: Client, bus: Bus, stack: HearthSettings
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    http = await client(tenant)
    blobs = await BlobStore.create(bus.js, stack)
    blob = await blobs.put(text_pdf(CONTRACT_ZH), "application/pdf")
    external_id = f"ERP-{uuid.uuid4().hex[:8]}"

    def event() -> Envelope:
        data = {
            "blob": blob.model_dump(mode="json"),
            "filename": "erp-contract.pdf",
            "content_type": "application/pdf",
            "source_system": "erp",
            "external_id": external_id,
        }
        return Envelope(source="erp/test", type="hearth.ingest.document.v1", tenant=tenant, data=data)

    first = event()
    await bus.publish(first)
    await bus.publish(first)  # a duplicate delivery of the same event
    await bus.publish(event())  # the same document re-sent as a new event
    deadline = time.monotonic() + 120
    while True:
        listed = (await http.get("/v1/documents", params={"source_system": "erp"})).json()
        if listed and listed[0]["status"] != "processing":
            break
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # give the re-sent event time to be (not) turned into a second document
    listed = (await http.get("/v1/documents", params={"source_system": "erp"})).json()
    assert len(listed) == 1, listed
    (doc,) = listed
    assert (doc["external_id"], doc["status"], doc["tenant"]) == (external_id, "processed", tenant)
    full = await processed(http, doc["id"])
    assert only(full["entities"], "contract_type")["normalized"]["type"] == "purchase"


async def test_a_broken_file_fails_with_its_reason_and_others_keep_flowing(client: Client) -> None:
    http = await client()
    broken = await submit(http, b"%PDF-1.7\n garbage that is no PDF", "broken.pdf")
    good = await submit(http, text_pdf(CONTRACT_ZH), "good.pdf")
    failed = await processed(http, broken["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid-input"
    assert "the PDF cannot be read" in failed["error"]["detail"]
    assert (await processed(http, good["id"]))["status"] == "processed"


async def test_bad_submissions_are_problems(client: Client) -> None:
    http = await client()
    empty = await http.post("/v1/documents", files={"file": ("empty.pdf", b"", "application/pdf")})
    assert empty.status_code == 400, empty.text
    assert "empty" in empty.json()["detail"]
    unknown = await http.post(
        "/v1/documents", files={"file": ("a.pdf", b"%PDF-1.4", "application/pdf")}, data={"workflow": "nope"}
    )
    assert unknown.status_code == 404, unknown.text
    field = await http.post("/v1/documents", files={"file": ("a.pdf", b"x")}, data={"colour": "red"})
    assert field.status_code == 400
    assert "colour" in field.json()["detail"]


async def test_a_tenant_never_sees_another_tenants_documents(client: Client) -> None:
    owner, other = await client(), await client()
    resp = await owner.post("/v1/documents", json={"text": "\n".join(CONTRACT_ZH), "filename": "inline.txt"})
    assert resp.status_code == 202, resp.text
    doc_id = resp.json()["id"]
    assert (await other.get(f"/v1/documents/{doc_id}")).status_code == 404
    assert doc_id not in [d["id"] for d in (await other.get("/v1/documents")).json()]
    doc = await processed(owner, doc_id)
    assert doc["status"] == "processed"
    assert [p["source"] for p in doc["pages"]] == ["inline"]


async def test_an_idempotency_key_returns_the_first_document(client: Client) -> None:
    http = await client()
    key = uuid.uuid4().hex
    first = await http.post(
        "/v1/documents", json={"text": "保密协议\n甲方：某某公司"}, headers={"Idempotency-Key": key}
    )
    again = await http.post(
        "/v1/documents", json={"text": "保密协议\n甲方：某某公司"}, headers={"Idempotency-Key": key}
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["duplicate"] is True
    body = json.loads(again.text)
    assert body["run_id"] == f"doc-{body['id']}"


def test_the_cli_submits_a_document_with_its_sensitivity(
    stack: HearthSettings, stack_environment: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "board-memo.pdf"
    path.write_bytes(text_pdf(["Board memo", f"Reference {uuid.uuid4().hex[:8]}"]))
    out = hearth_cli(
        stack_environment, "docs", "add", str(path), "--sensitivity", "confidential", "--wait", "0", "--json"
    )
    submitted = json.loads(out.stdout)
    shown = json.loads(hearth_cli(stack_environment, "docs", "get", submitted["id"], "--json").stdout)
    assert shown["sensitivity"] == "confidential"
    refused = hearth_cli(stack_environment, "docs", "add", str(path), "--sensitivity", "top-secret", check=False)
    assert refused.returncode != 0
    assert "confidential" in " ".join(refused.stderr.split())  # the problem names the allowed values
