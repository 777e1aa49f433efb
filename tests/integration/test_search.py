"""Search and Q&A over processed documents on the real stack (jieba full text + USE embeddings in pgvector).

Each test submits its own documents in a tenant of its own (inline text: quick to process), so
results are exactly what the test put there, and checks hybrid ranking, filters, highlights,
citations and that no answer ever comes from another tenant's documents.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

LEASE = """房屋租赁合同
合同编号：ZL-2024-0088
出租方（甲方）：杭州云栖置业有限公司
承租方（乙方）：宁波海曙贸易有限公司
第一条 甲方将位于杭州市西湖区文三路88号的办公用房出租给乙方使用。
第二条 租赁期限自2024年5月1日起至2026年4月30日止。
第三条 月租金为人民币贰万伍仟元整（¥25,000.00）。
签订日期：2024年4月15日"""
NDA = """NON-DISCLOSURE AGREEMENT
Agreement No. NDA/2024/117
This Agreement is made between Northwind Components Ltd. (the "Discloser") and Acme Robotics Inc. (the "Recipient").
The Recipient shall keep the Confidential Information secret for a term of three (3) years commencing on 1 June 2024.
Dated 28 May 2024"""
INVOICE = """增值税专用发票
发票号码：04417788
购买方：宁波海曙贸易有限公司
销售方：温州瓯江电器有限公司
价税合计 ¥11,300.00 税额 ¥1,300.00"""

Client = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture
async def client(stack: HearthSettings, engine: AsyncEngine) -> AsyncIterator[Client]:
    keys = ApiKeyStore(engine)
    clients: list[httpx.AsyncClient] = []

    async def make() -> httpx.AsyncClient:
        created = await keys.create(f"test-search-{uuid.uuid4().hex[:6]}", "user", tenant=f"t-{uuid.uuid4().hex[:8]}")
        http = httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"Authorization": f"Bearer {created.key}"}, timeout=60
        )
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


async def add(http: httpx.AsyncClient, text: str, name: str, **extra: Any) -> str:
    body = {"text": text, "filename": name, "workflow": "contract_analysis", **extra}
    resp = await http.post("/v1/documents", json=body)
    assert resp.status_code == 202, resp.text
    doc_id: str = resp.json()["id"]
    deadline = time.monotonic() + 180
    while (doc := (await http.get(f"/v1/documents/{doc_id}")).json())["status"] == "processing":
        assert time.monotonic() < deadline, doc
        await asyncio.sleep(0.5)
    assert doc["status"] == "processed", doc
    assert doc["provenance"]["index"]["chunks"] >= 1
    return doc_id


@pytest.fixture
async def library(client: Client) -> tuple[httpx.AsyncClient, dict[str, str]]:
    http = await client()
    ids = await asyncio.gather(
        add(http, LEASE, "lease.txt", source_system="erp"),
        add(http, NDA, "nda.txt", source_system="legal"),
        add(http, INVOICE, "invoice.txt", source_system="erp"),
    )
    return http, dict(zip(("lease", "nda", "invoice"), ids, strict=True))


async def search(http: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    resp = await http.get("/v1/search", params={"q": q, **params})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_chinese_and_english_queries_find_the_right_document_with_highlights(
    library: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, ids = library
    found = await search(http, "文三路的办公用房租金")
    assert found["vector_search"] is True
    assert found["hits"][0]["document_id"] == ids["lease"]
    assert "<mark>" in found["hits"][0]["snippet"]
    assert "text" in found["hits"][0]["matched_by"]
    english = await search(http, "confidential information recipient")
    assert english["hits"][0]["document_id"] == ids["nda"]


async def test_a_question_in_another_language_is_matched_by_meaning(
    library: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, ids = library
    found = await search(http, "office rental agreement in Hangzhou")
    assert ids["lease"] in [h["document_id"] for h in found["hits"][:2]], found["hits"]


async def test_filters_narrow_by_class_source_entities_and_validity(
    library: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, ids = library
    by_class = await search(http, "宁波海曙贸易有限公司", **{"class": "invoice"})
    assert [h["document_id"] for h in by_class["hits"]] == [ids["invoice"]]
    by_source = await search(http, "宁波海曙贸易有限公司", source_system="erp")
    assert {h["document_id"] for h in by_source["hits"]} == {ids["lease"], ids["invoice"]}
    by_type = await search(http, "有限公司", entity="contract_type:lease")
    assert [h["document_id"] for h in by_type["hits"]] == [ids["lease"]]
    valid = await search(http, "合同 agreement", valid_on="2025-06-01")
    assert {h["document_id"] for h in valid["hits"]} == {ids["lease"], ids["nda"]}
    expired = await search(http, "合同 agreement", valid_on="2026-12-01")
    assert [h["document_id"] for h in expired["hits"]] == [ids["nda"]]
    bad = await http.get("/v1/search", params={"q": "x", "entity": "amount:5"})
    assert bad.status_code == 400
    paged = await search(http, "有限公司 Ltd", limit=1, offset=1)
    assert len(paged["hits"]) == 1
    assert paged["total"] >= 2


async def test_answers_cite_the_document_page_and_span(library: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, ids = library
    resp = await http.post("/v1/ask", json={"question": "租赁期限到什么时候？"})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["mode"] == "extractive"
    assert "2026年4月30日" in answer["answer"]
    (citation,) = answer["citations"]
    assert citation["document_id"] == ids["lease"]
    doc = (await http.get(f"/v1/documents/{ids['lease']}")).json()
    page = doc["pages"][citation["page"] - 1]["text"]
    assert page[citation["start"] : citation["end"]] == citation["text"] == answer["answer"]
    english = (await http.post("/v1/ask", json={"question": "How long must the recipient keep it secret?"})).json()
    assert english["citations"][0]["document_id"] == ids["nda"]
    assert "three (3) years" in english["answer"]


async def test_nothing_from_another_tenant_is_ever_found_or_cited(
    client: Client, library: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    _, ids = library
    stranger = await client()
    found = await search(stranger, "杭州云栖置业有限公司 房屋租赁合同")
    assert not set(ids.values()) & {h["document_id"] for h in found["hits"]}
    answer = (await stranger.post("/v1/ask", json={"question": "租赁期限到什么时候？"})).json()
    assert not set(ids.values()) & {c["document_id"] for c in answer["citations"]}


async def test_a_correction_is_kept_and_teaches_the_tenants_classifier(client: Client) -> None:
    http = await client()
    orders = [
        "订货单\n订单号：PO-{n}\n请于本周五前交货，数量{n}件，单价¥{n}0.00\n收货仓库：三号库",
        "订货单\n订单号：PO-{n}A\n加急交货：数量{n}箱，交货地点三号库\n采购员：王某",
    ]
    quotes = ["报价单\n报价编号：Q-{n}\n本报价有效期三十天，单价¥{n}5.00\n报价人：李某"]
    corrected = []
    for n in (1, 2):
        for template, label in [(orders[0], "order"), (orders[1], "order"), (quotes[0], "quote")]:
            doc_id = await add(http, template.format(n=n), f"{label}-{n}.txt")
            resp = await http.patch(f"/v1/documents/{doc_id}", json={"class": label, "tags": [label, "inbox"]})
            assert resp.status_code == 200, resp.text
            assert resp.json()["classification"] == {"label": label, "confidence": 1.0, "method": "user"}
            corrected.append(doc_id)
    fresh = await add(http, "订货单\n订单号：PO-77\n数量3件，交货地点三号库，请尽快交货", "new-order.txt")
    doc = (await http.get(f"/v1/documents/{fresh}")).json()
    assert doc["classification"]["label"] == "order", doc["classification"]
    assert doc["classification"]["method"] == "learned"
    assert "order" in doc["tags"]
    listed = (await http.get("/v1/documents", params={"class": "quote"})).json()
    assert len(listed) == 2
    refused = await http.patch(f"/v1/documents/{corrected[0]}", json={"colour": "red"})
    assert refused.status_code == 400
    other = await client()
    assert (await other.patch(f"/v1/documents/{corrected[0]}", json={"class": "x"})).status_code == 404
