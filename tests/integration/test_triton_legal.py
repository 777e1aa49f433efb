"""``legal_doc_analyzer`` on the real Triton of a launcher-started stack, through the gateway (REST and NATS)."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import nats
import pytest

from shared.natsauth import connect_options
from shared.settings import REPO_ROOT, HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

MODEL = "legal_doc_analyzer"
MODEL_DIR = REPO_ROOT / "infra" / "triton" / "model_repository" / MODEL
EXPECTED = {
    "contract_type": {"type": "service", "label": "技术服务合同"},
    "valid_period": {"start": "2024-04-01", "end": "2025-03-31"},
    "amount": {"amount": "360000.00", "currency": "CNY"},
    "contract_number": {"number": "FW-2024-0031"},
    "signing_date": {"date": "2024-03-25"},
}
PARTIES = {"party_a": "苏州某某精密机械有限公司", "party_b": "无锡某某软件技术有限公司"}


def contract_text() -> str:
    """The model's own warm-up contract (one length-prefixed UTF-8 element)."""
    raw = (MODEL_DIR / "warmup" / "TEXT").read_bytes()
    (length,) = struct.unpack_from("<I", raw)
    return raw[4 : 4 + length].decode("utf-8")


def body(text: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": [text]}]
    if params is not None:
        inputs.append({"name": "PARAMS", "shape": [1], "datatype": "BYTES", "data": [json.dumps(params)]})
    return {"inputs": inputs}


def result_of(reply: dict[str, Any]) -> dict[str, Any]:
    (out,) = reply["outputs"]
    assert out["name"] == "RESULT"
    return dict(json.loads(out["data"][0]))


@pytest.fixture(scope="module")
def admin(stack: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}


def infer(stack: HearthSettings, admin: dict[str, str], payload: dict[str, Any]) -> httpx.Response:
    # The first request loads the model (jieba's dictionary: a few seconds).
    return httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/infer", json=payload, headers=admin, timeout=180)


def test_chinese_contract_over_rest(stack: HearthSettings, admin: dict[str, str]) -> None:
    text = contract_text()
    resp = infer(stack, admin, body(text))
    assert resp.status_code == 200, resp.text
    result = result_of(resp.json())
    assert result["model"] == MODEL
    assert result["version"] == "1"
    assert result["language"] == "zh"
    assert set(result["timings_ms"]) == {"parse", "analyze", "total"}
    found = {e["field"]: e["normalized"] for e in result["entities"] if e["field"] != "parties"}
    assert found == EXPECTED
    parties = {e["normalized"]["role"]: e["normalized"]["name"] for e in result["entities"] if e["field"] == "parties"}
    assert parties == PARTIES
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["value"]
    models = httpx.get(f"{stack.gateway_url}/v1/models", headers=admin, timeout=30).json()
    state = next(m for m in models if m["name"] == MODEL)
    assert state["state"] == "READY"
    print(f"{MODEL}: measured memory {state.get('memory_mb')} MB, cold start {state.get('cold_start_ms')} ms")


async def test_nats_gives_the_same_entities_for_selected_fields(stack: HearthSettings, admin: dict[str, str]) -> None:
    payload = body(contract_text(), {"entities_to_extract": ["contract_type", "valid_period"], "language": "zh"})
    over_http = result_of(infer(stack, admin, payload).json())
    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    try:
        msg = await nc.request(f"hearth.infer.{MODEL}", json.dumps(payload).encode(), timeout=60)
    finally:
        await nc.close()
    reply = json.loads(msg.data)
    assert reply["ok"] is True, reply
    over_nats = result_of(reply["result"])
    assert over_nats["entities"] == over_http["entities"]
    assert {e["field"] for e in over_nats["entities"]} == {"contract_type", "valid_period"}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"entities_to_extract": ["contract_type", "penalty_clause"]}, "supported: contract_type, valid_period"),
        ({"entities_to_extract": "parties"}, "list of field names"),
        ({"language": "klingon"}, "unsupported language"),
        ({"fields": ["parties"]}, "unknown key"),
    ],
)
def test_bad_params_are_400_naming_the_problem(
    stack: HearthSettings, admin: dict[str, str], params: dict[str, Any], fragment: str
) -> None:
    resp = infer(stack, admin, body("甲方：北京某某有限公司", params))
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    detail = resp.json()["detail"]
    assert fragment in detail
    if "penalty_clause" in json.dumps(params):
        assert "penalty_clause" in detail
        assert "signing_date" in detail


def test_empty_text_is_an_answer_with_a_warning(stack: HearthSettings, admin: dict[str, str]) -> None:
    resp = infer(stack, admin, body("   "))
    assert resp.status_code == 200, resp.text
    result = result_of(resp.json())
    assert result["entities"] == []
    assert result["warnings"] == ["empty text: nothing to analyse"]
