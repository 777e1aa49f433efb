"""The gateway's inference plane against the real Triton: auth, KServe v2 over HTTP and NATS, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import nats
import numpy as np
import pytest

from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.natsauth import connect_options
from shared.settings import HearthSettings
from tests.integration.conftest import TEST_IDLE_TTL_S, hearth_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INFER_BODY = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}


@pytest.fixture(scope="module")
def model() -> str:
    """A tiny model of the tests' repository (tests/data/triton_models), loaded on its first request."""
    return "double"


@pytest.fixture(scope="module")
def admin(stack: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}


@pytest.fixture
async def user_key(stack: HearthSettings) -> AsyncIterator[str]:
    engine = postgres_engine(stack, pool_size=1)
    store = ApiKeyStore(engine)
    created = await store.create(f"test-user-{uuid.uuid4().hex[:6]}", "user")
    yield created.key
    await store.revoke(created.prefix)
    await engine.dispose()


def test_admin_key_is_private_and_every_route_but_health_and_schema_needs_it(stack: HearthSettings) -> None:
    assert stack.secret_path("admin-api-key").stat().st_mode & 0o777 == 0o600
    for path in ("/v1/health", "/v1/health/live", "/schema", "/schema/openapi.json", "/schema/asyncapi.json"):
        assert httpx.get(f"{stack.gateway_url}{path}", timeout=15).status_code in (200, 503), path
    resp = httpx.get(f"{stack.gateway_url}/v1/models", timeout=5)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["content-type"].startswith("application/problem+json")
    forged = httpx.get(
        f"{stack.gateway_url}/v1/models", headers={"Authorization": "Bearer hearth_abcdefghijkl_nope"}, timeout=5
    )
    assert forged.status_code == 401
    assert httpx.get(f"{stack.gateway_url}/v1/models", headers={"X-API-Key": "garbage"}, timeout=5).status_code == 401


async def test_user_role_may_infer_but_not_control_models(stack: HearthSettings, model: str, user_key: str) -> None:
    headers = {"Authorization": f"Bearer {user_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        assert (await client.get("/v1/models")).status_code == 200
        assert (await client.post(f"/v1/models/{model}/infer", json=INFER_BODY)).status_code == 200
        denied = await client.post(f"/v1/models/{model}/unload")
        assert denied.status_code == 403
        assert "may not POST" in denied.json()["detail"]


def test_kserve_v2_inference_over_http(stack: HearthSettings, model: str, admin: dict[str, str]) -> None:
    resp = httpx.post(f"{stack.gateway_url}/v1/models/{model}/infer", json=INFER_BODY, headers=admin, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_name"] == model
    assert body["model_version"] == "2"  # the latest version serves by default
    (out,) = body["outputs"]
    assert out["name"] == "Y"
    assert out["shape"] == [2, 4]
    assert out["data"] == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]


async def test_nats_inference_gives_the_same_answer(stack: HearthSettings, model: str, admin: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        over_http = await client.post(f"{stack.gateway_url}/v1/models/{model}/infer", json=INFER_BODY, headers=admin)
    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    try:
        msg = await nc.request(f"hearth.infer.{model}", json.dumps(INFER_BODY).encode(), timeout=30)
        bad = await nc.request(f"hearth.infer.{model}", b'{"inputs": "nope"}', timeout=30)
    finally:
        await nc.close()
    reply = json.loads(msg.data)
    assert reply["ok"] is True
    assert reply["result"]["outputs"] == over_http.json()["outputs"]
    refused = json.loads(bad.data)
    assert refused["ok"] is False
    assert refused["error"]["kind"] == "BadRequest"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "shape [1, 3]"),
        ({"inputs": [{"name": "Z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "unknown input 'Z'"),
        ({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}]}, "must be FP32"),
        ({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]}, "2 values for shape"),
        ({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": ["a", 1, 2, 3]}]}, "do not fit FP32"),
    ],
)
def test_wrong_tensors_are_400_naming_the_problem(
    stack: HearthSettings, model: str, admin: dict[str, str], body: dict[str, object], fragment: str
) -> None:
    resp = httpx.post(f"{stack.gateway_url}/v1/models/{model}/infer", json=body, headers=admin, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert fragment in resp.json()["detail"]


def test_unknown_model_is_404_and_malformed_body_is_400(stack: HearthSettings, admin: dict[str, str]) -> None:
    url = f"{stack.gateway_url}/v1/models/no_such_model/infer"
    missing = httpx.post(url, json=INFER_BODY, headers=admin, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/unknown-model")
    garbled = httpx.post(url, content=b"{not json", headers={**admin, "content-type": "application/json"}, timeout=30)
    assert garbled.status_code == 400


@pytest.mark.slow
def test_triton_down_is_503_with_retry_after_and_the_gateway_recovers(
    stack: HearthSettings, stack_environment: dict[str, str], admin: dict[str, str]
) -> None:
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.run_dir / "supervisord.conf")]
    subprocess.run([*ctl, "stop", "triton"], check=True, capture_output=True, env=stack_environment)
    try:
        down = httpx.get(f"{stack.gateway_url}/v1/models", headers=admin, timeout=30)
        assert down.status_code == 503
        assert int(down.headers["retry-after"]) > 0
    finally:
        subprocess.run([*ctl, "start", "triton"], check=True, capture_output=True, env=stack_environment)
    deadline = time.monotonic() + 60
    while True:  # no gateway restart: the same gRPC channel reconnects by itself
        back = httpx.get(f"{stack.gateway_url}/v1/models", headers=admin, timeout=30)
        if back.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert back.status_code == 200, back.text


def test_cli_uses_the_admin_key_by_default(stack_environment: dict[str, str]) -> None:
    listed = hearth_cli(stack_environment, "models", "list", "--json")
    assert isinstance(json.loads(listed.stdout), list)
    refused = hearth_cli(
        {**stack_environment, "HEARTH_API_KEY": "hearth_abcdefghijkl_nope"}, "models", "list", check=False
    )
    assert refused.returncode == 1
    assert "unknown API key" in refused.stderr
    assert "Traceback" not in refused.stderr


def _models(stack: HearthSettings, admin: dict[str, str]) -> dict[str, dict[str, object]]:
    resp = httpx.get(f"{stack.gateway_url}/v1/models", headers=admin, timeout=30)
    assert resp.status_code == 200, resp.text
    return {m["name"]: m for m in resp.json()}


def _infer(stack: HearthSettings, admin: dict[str, str], name: str) -> httpx.Response:
    return httpx.post(f"{stack.gateway_url}/v1/models/{name}/infer", json=INFER_BODY, headers=admin, timeout=120)


def test_first_request_loads_the_model_and_reports_cold_start_and_memory(
    stack: HearthSettings, admin: dict[str, str]
) -> None:
    httpx.post(f"{stack.gateway_url}/v1/models/double_b/unload", headers=admin, timeout=60)
    assert _models(stack, admin)["double_b"]["state"] != "READY"
    assert _infer(stack, admin, "double_b").status_code == 200
    state = _models(stack, admin)["double_b"]
    assert state["state"] == "READY"
    assert state["cold_start_ms"] > 0  # type: ignore[operator]
    assert 5 < state["memory_mb"] < 500  # type: ignore[operator]  # measured RSS of its backend process


@pytest.mark.slow
def test_lru_eviction_keeps_the_budget_and_never_touches_pinned_models(
    stack: HearthSettings, admin: dict[str, str]
) -> None:
    # Budget 140 MB (test stack); each model's backend process measures ~35-45 MB, double_c declares 60.
    for name in ("double", "double_b", "double_c", "double_idle"):
        httpx.post(f"{stack.gateway_url}/v1/models/{name}/unload", headers=admin, timeout=60)
    for name in ("double_pinned", "double", "double_b"):
        assert _infer(stack, admin, name).status_code == 200
        time.sleep(0.05)  # distinct last-use times
    assert _infer(stack, admin, "double").status_code == 200  # double_b is now the least recently used
    assert _infer(stack, admin, "double_c").status_code == 200
    models = _models(stack, admin)
    assert models["double_pinned"]["state"] == "READY"
    assert models["double_pinned"]["pinned"] is True
    assert models["double_c"]["state"] == "READY"
    evicted = [n for n in ("double", "double_b") if models[n]["state"] != "READY"]
    assert "double_b" in evicted
    assert "evicted to make room for double_c" in str(models["double_b"]["last_unload_reason"])
    ours = [m for n, m in models.items() if n.startswith("double") and m["state"] == "READY"]
    assert sum(m["memory_mb"] or 0 for m in ours) <= 140 + 60  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_idle_models_are_unloaded_after_the_ttl(stack: HearthSettings, admin: dict[str, str]) -> None:
    assert _infer(stack, admin, "double_idle").status_code == 200
    deadline = time.monotonic() + TEST_IDLE_TTL_S + 60
    while time.monotonic() < deadline:
        state = _models(stack, admin)["double_idle"]
        if state["state"] != "READY":
            assert str(state["last_unload_reason"]).startswith("idle for")
            assert state["unloads"] >= 1  # type: ignore[operator]
            return
        time.sleep(2)
    pytest.fail("double_idle was not unloaded after its idle TTL")


async def test_hot_switch_and_rollback_under_load_fail_no_request(stack: HearthSettings, admin: dict[str, str]) -> None:
    url = f"{stack.gateway_url}/v1/models/double"
    async with httpx.AsyncClient(headers=admin, timeout=120) as client:
        assert (await client.post(f"{url}/infer", json=INFER_BODY)).status_code == 200
        failures: list[str] = []
        versions: set[str] = set()
        done = asyncio.Event()

        async def traffic() -> None:
            while not done.is_set():
                resp = await client.post(f"{url}/infer", json=INFER_BODY)
                if resp.status_code != 200:
                    failures.append(resp.text)
                else:
                    versions.add(resp.json()["model_version"])

        workers = [asyncio.create_task(traffic()) for _ in range(4)]
        try:
            switched = await client.post(f"{url}/load", json={"version": "1"})
            assert switched.status_code == 200, switched.text
            await asyncio.sleep(0.5)
            rolled_back = await client.post(f"{url}/rollback")
            assert rolled_back.status_code == 200, rolled_back.text
            await asyncio.sleep(0.5)
        finally:
            done.set()
            await asyncio.gather(*workers)
        assert failures == []
        assert versions == {"1", "2"}
        assert switched.json()["serving_version"] == "1"
        assert switched.json()["previous_version"] == "2"
        assert rolled_back.json()["serving_version"] == "2"
        nothing_before = await client.post(f"{stack.gateway_url}/v1/models/double_b/rollback")
        assert nothing_before.status_code == 409


def test_device_inventory_reports_the_cpu_and_no_phantom_gpu(stack: HearthSettings, admin: dict[str, str]) -> None:
    resp = httpx.get(f"{stack.gateway_url}/v1/devices", headers=admin, timeout=30)
    assert resp.status_code == 200
    devices = resp.json()
    assert devices[0]["id"] == "cpu"
    assert devices[0]["memory_total_mb"] > 0
    gpus = [d for d in devices if d["kind"] == "gpu"]
    assert all(g["memory_total_mb"] > 0 for g in gpus)  # absent GPUs are absent, never zero-filled


async def _drive(client: httpx.AsyncClient, url: str, until: Callable[[], Awaitable[bool]], limit: int = 600) -> None:
    for _ in range(limit):
        await client.post(f"{url}/infer", json=INFER_BODY)
        if await until():
            return
    pytest.fail("no canary verdict")


async def test_canary_is_promoted_when_healthy_and_rolled_back_when_broken(
    stack: HearthSettings, admin: dict[str, str]
) -> None:
    url = f"{stack.gateway_url}/v1/models/double_canary"
    async with httpx.AsyncClient(headers=admin, timeout=120) as client:
        await client.post(f"{url}/load", json={"version": "1"})

        async def state() -> dict[str, Any]:
            models = (await client.get(f"{stack.gateway_url}/v1/models")).json()
            return next(m for m in models if m["name"] == "double_canary")

        async def decided() -> bool:
            canary = (await state())["canary"]
            return canary is not None and canary["status"] != "running"

        # Identical models: only host noise tells their latencies apart, and a loaded 2-core box
        # makes millisecond medians over 20 answers differ by x1.5 (the latency rule's own unit
        # tests hold it to its default tolerance).
        healthy = {"version": "2", "share": 0.5, "min_requests": 20, "max_latency_ratio": 3.0}
        started = await client.post(f"{url}/canary", json=healthy)
        assert started.status_code == 200, started.text
        assert started.json()["canary"]["status"] == "running"
        again = await client.post(f"{url}/canary", json=healthy)
        assert again.status_code == 409
        await _drive(client, url, decided)
        promoted = await state()
        assert promoted["canary"]["status"] == "promoted", promoted["canary"]
        for _ in range(100):  # the verdict is applied in the background
            if (await state())["serving_version"] == "2":
                break
            await asyncio.sleep(0.1)
        assert (await state())["serving_version"] == "2"

        broken = await client.post(f"{url}/canary", json={"version": "3", "share": 0.5, "min_requests": 10})
        assert broken.status_code == 200, broken.text
        await _drive(client, url, decided)
        rolled_back = (await state())["canary"]
        assert rolled_back["status"] == "rolled_back"
        assert "error rate" in rolled_back["reason"]
        for _ in range(100):  # the rollback is applied in the background
            after = await client.post(f"{url}/infer", json=INFER_BODY)
            if after.status_code == 200 and (await state())["serving_version"] == "2":
                break
            await asyncio.sleep(0.1)
        assert after.status_code == 200
        assert after.json()["model_version"] == "2"
        assert (await state())["previous_version"] == "1"  # a rolled-back canary never served alone


def test_a_model_whose_load_fails_reports_state_and_reason(stack: HearthSettings, admin: dict[str, str]) -> None:
    resp = _infer(stack, admin, "broken_init")
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "weights file is corrupt" in resp.json()["detail"]
    assert "At:" not in resp.json()["detail"]  # the model code's stack trace stays in Triton's log
    state = _models(stack, admin)["broken_init"]
    assert state["state"] == "UNAVAILABLE"
    assert "weights file is corrupt" in str(state["reason"])


def test_payload_over_the_limit_is_413(stack: HearthSettings, admin: dict[str, str]) -> None:
    too_big = b"\x89PNG" + b"\0" * (34 * 1024 * 1024)
    resp = httpx.post(
        f"{stack.gateway_url}/v1/ocr", headers=admin, files={"file": ("big.png", too_big, "image/png")}, timeout=120
    )
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_binary_tensor_extension_in_and_out(stack: HearthSettings, model: str, admin: dict[str, str]) -> None:
    x = np.arange(8, dtype="<f4").reshape(2, 4)
    header = json.dumps(
        {
            "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}],
            "outputs": [{"name": "Y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    resp = httpx.post(
        f"{stack.gateway_url}/v1/models/{model}/infer",
        content=header + x.tobytes(),
        headers={**admin, "Inference-Header-Content-Length": str(len(header))},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    length = int(resp.headers["inference-header-content-length"])
    meta = json.loads(resp.content[:length])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 32
    y = np.frombuffer(resp.content[length:], dtype="<f4").reshape(2, 4)
    assert np.array_equal(y, x * 2)
