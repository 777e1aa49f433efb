"""Pure parts of the NLP service and the inference client: spans, rules, tensors on the bus."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.gateway.inference.kserve import parse_binary_request
from services.nlp.analyze import page_starts, span_of
from services.nlp.classify import classify, tags_for
from shared.documents import CONTRACT_FIELDS, PAGE_BREAK, AnalyzeText
from shared.errors import BadRequest, PermanentFailure
from shared.inference import HEADER_LENGTH, Tensor, decode_reply, encode_request

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def test_document_offsets_become_page_and_offset_in_that_page() -> None:
    pages = ["第一页", "Second page text", "三"]
    text = PAGE_BREAK.join(pages)
    starts = page_starts(pages)
    assert starts == [0, 4, 21]
    start = text.index("page")
    span = span_of(starts, start, start + 4)
    assert (span.page, pages[span.page - 1][span.start : span.end]) == (2, "page")
    assert span_of(starts, 0, 2).page == 1
    assert span_of(starts, 21, 22).page == 3


def test_unknown_entities_are_refused_with_the_supported_list() -> None:
    with pytest.raises(ValidationError) as info:
        AnalyzeText(entities_to_extract=["contract_type", "colour"])
    message = str(info.value)
    assert "colour" in message
    assert all(name in message for name in CONTRACT_FIELDS)
    with pytest.raises(ValidationError):
        AnalyzeText(entities_to_extract=[])
    assert AnalyzeText(entities_to_extract=["amount", "amount"]).entities_to_extract == ["amount"]


@pytest.mark.parametrize(
    ("pages", "label"),
    [
        (["房屋租赁合同\n甲方（出租方）：王某\n乙方（承租方）：李某\n本合同一式两份，双方签字后生效。"], "contract"),
        (["SERVICES AGREEMENT\nThis Agreement is made between Party A and Party B.\nGoverning law"], "contract"),
        (["增值税专用发票\n购买方：某公司\n纳税人识别号：123\n价税合计 ¥1,130.00\n税额 130.00"], "invoice"),
        (["INVOICE\nInvoice No. 2024-11\nBill to: Acme\nSubtotal 100\nTax 10\nTotal due 110"], "invoice"),
        (["关于调整作息时间的通知\n尊敬的各位同事：\n特此通知。\n此致 敬礼"], "letter"),
        (["质量检验报告\n检验结论：合格\n检测项目：外观、尺寸"], "report"),
        (["Minutes of the meeting\nAttendees: A, B\nAgenda: budget\nConclusion: approved"], "report"),
        (["a few words with nothing to go on"], "other"),
    ],
)
def test_rules_classify_common_documents(pages: list[str], label: str) -> None:
    assert classify(pages).label == label


def test_tags_lead_with_the_contract_type_then_the_most_evident_keywords() -> None:
    pages = ["设备采购合同\n甲方采购设备，乙方负责供货。质量验收合格后付款。采购清单见附件。验收标准见附件。"]
    tags = tags_for(pages, "purchase")
    assert tags[0] == "purchase"
    assert "procurement" in tags
    assert "quality" in tags


def test_inputs_with_bytes_travel_in_the_binary_extension() -> None:
    image = bytes(range(256)) * 4
    payload, headers = encode_request(
        [Tensor.raw("IMAGE", "UINT8", image), Tensor.text("PARAMS", json.dumps({"rotate": False}))], ["RESULT"]
    )
    request, raw = parse_binary_request(payload, int(headers[HEADER_LENGTH]))
    assert [t.name for t in request.inputs] == ["IMAGE", "PARAMS"]
    assert request.inputs[0].shape == [len(image)]
    assert raw["IMAGE"] == image
    assert raw["PARAMS"][4:] == b'{"rotate": false}'
    assert int.from_bytes(raw["PARAMS"][:4], "little") == len(b'{"rotate": false}')
    assert [o.name for o in request.outputs] == ["RESULT"]


def test_json_only_inputs_need_no_header() -> None:
    payload, headers = encode_request([Tensor("X", "FP32", [2], data=[1.0, 2.0])])
    assert headers == {}
    assert json.loads(payload) == {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}


def test_replies_decode_to_outputs_or_the_error_they_carry() -> None:
    ok = {"ok": True, "result": {"model_version": "1", "outputs": [{"name": "RESULT", "shape": [1], "data": ["{}"]}]}}
    reply = decode_reply("m", json.dumps(ok).encode())
    assert (reply.model_version, reply.text("RESULT"), reply.shapes) == ("1", "{}", {"RESULT": [1]})
    with pytest.raises(PermanentFailure):
        reply.text("MISSING")
    error = {"ok": False, "error": {"kind": "BadRequest", "code": "bad-request", "detail": "unknown field x"}}
    with pytest.raises(BadRequest, match="unknown field x"):
        decode_reply("m", json.dumps(error).encode())
    with pytest.raises(PermanentFailure):
        decode_reply("m", b"not json")
