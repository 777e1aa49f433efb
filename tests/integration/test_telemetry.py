"""Telemetry on the real stack: metrics endpoints, percentiles against the client's, GPU absence,
a document's trace across the mesh, and an alert that fires and resolves with the load.

The test stack scrapes every second (``HEARTH_TELEMETRY_SCRAPE_INTERVAL_S``) and loads the rules
of ``tests/data/alerts``; latencies come from the ``sleepy`` test model, which sleeps as told.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import nats
import numpy as np
import pytest
from sqlalchemy import text

from services.telemetry.query import SeriesQuery
from services.telemetry.scrape import Scalar, Scrape
from services.telemetry.selectors import Selector
from services.telemetry.store import TelemetryStore
from shared.clients import postgres_engine
from shared.natsauth import connect_options
from shared.settings import SERVICES, HearthSettings
from tests.integration.conftest import WEBHOOK_PORT

MODEL = "sleepy"
SCRAPE_S = 1.0


@pytest.fixture(scope="module")
def admin(stack: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}


@pytest.fixture
async def api(stack: HearthSettings, admin: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin, timeout=60) as client:
        yield client


def _body(delay_ms: float) -> dict[str, Any]:
    return {"inputs": [{"name": "DELAY_MS", "shape": [1], "datatype": "FP32", "data": [delay_ms]}]}


async def _infer(api: httpx.AsyncClient, delay_ms: float) -> float:
    started = time.perf_counter()
    resp = await api.post(f"/v1/models/{MODEL}/infer", json=_body(delay_ms))
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    return elapsed


async def _overview(api: httpx.AsyncClient, window_s: float) -> dict[str, Any]:
    resp = await api.get("/v1/telemetry/overview", params={"window": f"{window_s:.3f}s"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_process_serves_metrics_on_loopback_behind_the_token(stack: HearthSettings) -> None:
    token = stack.read_secret("metrics-token")
    assert stack.secret_path("metrics-token").stat().st_mode & 0o777 == 0o600
    for service in SERVICES:
        url = stack.service_metrics_url(service)
        assert url.startswith("https://127.0.0.1:"), url
        assert httpx.get(url, timeout=10).status_code == 401, service
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401, service
        resp = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 200, service
        assert "process_resident_memory_bytes" in resp.text, service


async def test_telemetry_routes_are_for_operators(stack: HearthSettings, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as anonymous:
        assert (await anonymous.get("/v1/telemetry/overview")).status_code == 401
    bad = await api.get("/v1/telemetry/series", params={"metric": "up", "window": "5 minutes"})
    assert bad.status_code == 422
    assert "window" in bad.json()["detail"]


async def test_reported_p95_and_p99_match_the_clients_within_ten_percent(api: httpx.AsyncClient) -> None:
    await _infer(api, 1)  # loads the model; this request stays out of the measured window
    await asyncio.sleep(3 * SCRAPE_S)
    rng = np.random.default_rng(7)
    # A long-tailed mix, like real inference: most 40-120 ms, a tail up to 600 ms. Long enough
    # that the client's own few milliseconds (HTTP, its event loop) stay small beside them.
    delays = np.concatenate([rng.uniform(40, 120, 170), rng.uniform(200, 600, 30)])
    rng.shuffle(delays)
    started = time.time()
    client = [await _infer(api, float(d)) for d in delays]
    await asyncio.sleep(3 * SCRAPE_S)  # the last requests are scraped
    window = time.time() - started + 0.5
    overview = await _overview(api, window)
    (model,) = [m for m in overview["models"] if m["name"] == MODEL]
    assert model["requests"] == len(delays)
    assert model["errors"] == 0
    for q, reported in ((95, model["p95_ms"]), (99, model["p99_ms"])):
        expected = float(np.percentile(client, q)) * 1000
        assert abs(reported - expected) / expected <= 0.10, (q, reported, expected)
    (route,) = [r for r in overview["routes"] if r["route"] == "/v1/models/{name}/infer"]
    assert route["requests"] >= len(delays)
    assert route["p95_ms"] >= model["p95_ms"]  # the route's time includes the model call
    # Triton's own view of the same requests: compute is the model's sleep, one request per execution.
    assert model["compute_ms"] == pytest.approx(float(np.mean(delays)), rel=0.15)
    assert model["queue_ms"] < model["compute_ms"]
    assert model["batch_size"] == 1
    # The same figures over time, as the dashboard charts them.
    resp = await api.get(
        "/v1/telemetry/series",
        params={
            "metric": "hearth_model_request_duration_seconds",
            "fn": "quantile",
            "q": "0.99",
            "window": f"{window:.0f}s",
            "since": "10s",
            "step": "5s",
            "by": "model",
            "match": f"model={MODEL}",
        },
    )
    assert resp.status_code == 200, resp.text
    (points,) = resp.json()["points"]
    assert points["group"] == {"model": MODEL}
    assert points["values"], points


async def test_host_is_measured_and_an_absent_gpu_is_reported_absent_not_zero(api: httpx.AsyncClient) -> None:
    overview = await _overview(api, 60)
    host = overview["host"]
    assert 0 <= host["cpu_percent"] <= 100
    assert 0 < host["memory_used_bytes"] < host["memory_total_bytes"]
    assert overview["gpu"]["status"] == "absent"  # the CI and dev boxes have no GPU
    assert overview["gpu"]["reason"]
    resp = await api.get("/v1/telemetry/series", params={"metric": "hearth_gpu_utilization_percent", "fn": "gauge"})
    assert resp.json()["points"] == []
    components = {c["name"]: c["status"] for c in overview["components"]}
    assert set(components) >= {*SERVICES, "nats", "postgres", "temporal", "triton", "openbao"}
    assert overview["scrape_errors"] == {}


async def test_a_document_run_is_one_trace_across_the_mesh(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        "/v1/documents",
        json={"text": "房屋租赁合同\n合同期限：2024年1月1日至2024年12月31日。", "source_system": "telemetry-test"},
    )
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["run_id"]

    # Each process exports its spans in batches (every few seconds): wait until all have arrived.
    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {s["name"] for s in spans}
        ids = {s["span_id"] for s in spans}
        orphans = [s for s in spans if s["parent_id"] and s["parent_id"] not in ids]
        return (
            {"gateway", "workflows", "nlp"} <= {s["service"] for s in spans}
            and {"POST /v1/documents", "triton legal_doc_analyzer"} <= names
            and not orphans
        )

    deadline = time.monotonic() + 120
    trace: dict[str, Any] = {"spans": []}
    while time.monotonic() < deadline and not complete(trace["spans"]):
        await asyncio.sleep(1)
        resp = await api.get(f"/v1/runs/{run_id}/trace")
        if resp.status_code == 200:
            trace = resp.json()
    spans = trace["spans"]
    assert complete(spans), spans
    assert len({s["trace_id"] for s in spans}) == 1
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids]
    assert [r["name"] for r in roots] == ["POST /v1/documents"], roots
    # The NLP service's model call went on through the gateway's NATS endpoint into Triton.
    (triton,) = [s for s in spans if s["name"] == "triton legal_doc_analyzer"]
    assert triton["kind"] == "client"
    by_id = {s["span_id"]: s for s in spans}
    assert by_id[triton["parent_id"]]["name"] == "infer legal_doc_analyzer"
    same = await api.get(f"/v1/traces/{trace['trace_id']}")
    assert same.status_code == 200
    assert len(same.json()["spans"]) >= len(spans)


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(stack: HearthSettings) -> Iterator[list[dict[str, Any]]]:
    """The test stack's alert webhook (``HEARTH_TELEMETRY_WEBHOOKS``): what it was sent."""
    server = ThreadingHTTPServer(("127.0.0.1", stack.port_offset + WEBHOOK_PORT), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Webhook.received.clear()
    yield _Webhook.received
    server.shutdown()
    server.server_close()


async def test_an_alert_fires_under_load_and_resolves_after_it(
    stack: HearthSettings, api: httpx.AsyncClient, webhook: list[dict[str, Any]]
) -> None:
    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    events: list[dict[str, Any]] = []

    async def received(msg: Any) -> None:
        events.append(json.loads(msg.data))

    await nc.subscribe("hearth.alert.>", cb=received)
    try:
        alert: dict[str, Any] | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and alert is None:
            await _infer(api, 600)
            listed = (await api.get("/v1/alerts", params={"state": "firing"})).json()["alerts"]
            alert = next((a for a in listed if a["alertname"] == "test-sleepy-slow"), None)
        assert alert is not None, "the alert did not fire under load"
        assert alert["labels"]["model"] == MODEL
        assert alert["labels"]["team"] == "tests"
        assert alert["summary"].startswith(f"median of {MODEL} is ")
        deadline = time.monotonic() + 60
        resolved = False
        while time.monotonic() < deadline and not resolved:
            await asyncio.sleep(1)
            listed = (await api.get("/v1/alerts")).json()["alerts"]
            resolved = any(a["id"] == alert["id"] and a["state"] == "resolved" for a in listed)
        assert resolved, "the alert did not resolve once the load stopped"
        await asyncio.sleep(1)
        kinds = [e["type"] for e in events if e["data"]["id"] == alert["id"]]
        assert kinds == ["hearth.alert.fired.v1", "hearth.alert.resolved.v1"], kinds
        posted = [e["type"] for e in webhook if e["data"]["id"] == alert["id"]]
        assert posted == kinds, posted
    finally:
        await nc.close()


async def test_old_samples_are_downsampled_then_expired(stack: HearthSettings) -> None:
    """Retention on the real store: one row per minute after the raw period, nothing after retention."""
    engine = postgres_engine(stack, pool_size=1)
    store = TelemetryStore(engine)
    await store.load()
    now = time.time()
    name = f"test_retention_{uuid.uuid4().hex[:8]}"
    minute = (now - 7200) // 60 * 60  # two hours ago, a whole minute
    rounds = []
    for i in range(6):  # every 10 s through that minute: gauge 0..50, counter 0..5
        ts = minute + i * 10
        scrape = Scrape(job="test", ts=ts)
        scrape.scalars.append(Scalar(f"{name}_gauge", {"job": "test"}, "gauge", float(i * 10)))
        scrape.scalars.append(Scalar(f"{name}_total", {"job": "test"}, "counter", float(i)))
        rounds.append(scrape)
    expired = Scrape(job="test", ts=now - 40 * 86400)
    expired.scalars.append(Scalar(f"{name}_total", {"job": "test"}, "counter", 0.0))
    try:
        await store.write([expired, *rounds])
        await store.maintain(raw_retention_s=3600, rollup_step_s=60, retention_s=30 * 86400, span_retention_s=86400)
        query = SeriesQuery(store)
        gauge = await query.gauge(Selector(f"{name}_gauge"), 120, minute + 60, (), "avg")
        assert gauge == {(): 25.0}  # the minute's average, kept in its last row
        assert await query.count_samples(Selector(f"{name}_gauge"), 120, minute + 60, ()) == {(): 1}
        counter = query.matching(Selector(f"{name}_total"))
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT ts, value FROM telemetry_samples WHERE series_id = :id ORDER BY ts"),
                    {"id": counter[0].id},
                )
            ).all()
        assert [(r.ts, r.value) for r in rows] == [(minute + 50, 5.0)]  # last of the minute; 40-day row gone
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM telemetry_series WHERE name LIKE :n"), {"n": f"{name}%"})
        await engine.dispose()
