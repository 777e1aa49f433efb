"""The operator dashboard (``/dashboard``) in headless Chromium against the real test stack.

What an operator relies on: the page loads without a console error, the health strip shows every
component, the charts draw the inference traffic this module sends, a box without a GPU says so
instead of charting zeros, an alert fired by the test shows up (and can be silenced), a run opens
into its steps and trace, and a refused key is a banner, not an exception. Screenshots of each go to
the tests' output folder (``$HEARTH_TEST_OUTPUT``, default ``test-output/``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings
from tests.integration.browser import BrowserPage, chromium, new_page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

INFER_BODY = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}
MODEL = "double"  # tests/data/triton_models: tiny, loaded on its first request
# The browser's own network log reports every 4xx answer as a console error; the page itself
# reports nothing to the console. Only the tests that provoke a refusal ignore these lines.
NETWORK_REFUSAL = r"^Failed to load resource: the server responded with a status of 40[13]"


@pytest.fixture(scope="module")
def admin_key(stack: HearthSettings) -> str:
    return stack.read_secret("admin-api-key")


@pytest.fixture(scope="module")
async def api(stack: HearthSettings, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def open_dashboard(browser: Any, stack: HearthSettings, key: str) -> AsyncIterator[BrowserPage]:
    async with new_page(browser) as tab:
        await tab.page.goto(f"{stack.gateway_url}/dashboard")
        await tab.page.fill("#api-key", key)
        await tab.page.click("#key-form button[type=submit]")
        yield tab


@pytest.fixture
async def dashboard(browser: Any, stack: HearthSettings, admin_key: str) -> AsyncIterator[BrowserPage]:
    """The page, connected with the admin key, after its first complete refresh."""
    async for tab in open_dashboard(browser, stack, admin_key):
        await tab.page.wait_for_selector("body[data-loaded]", timeout=30_000)
        yield tab


async def refreshed(tab: BrowserPage) -> None:
    """Wait for the page's next complete poll round (every 5 s)."""
    before = await tab.page.get_attribute("body", "data-loaded")
    await tab.page.wait_for_function(
        "before => document.body.dataset.loaded !== before", arg=before, timeout=30_000, polling=200
    )


async def until(tab: BrowserPage, selector: str, *, timeout_s: float, nudge: Any = None) -> None:
    """Wait for ``selector`` across the page's own polling; ``nudge()`` runs between rounds (traffic)."""
    deadline = time.monotonic() + timeout_s
    while await tab.page.locator(selector).count() == 0:
        if time.monotonic() > deadline:
            shot = await tab.screenshot(f"timeout-{uuid.uuid4().hex[:6]}")
            raise AssertionError(f"{selector} did not appear in {timeout_s:.0f} s (screenshot {shot})")
        if nudge is not None:
            await nudge()
        await refreshed(tab)


async def infer(api: httpx.AsyncClient, n: int) -> None:
    for _ in range(n):
        resp = await api.post(f"/v1/models/{MODEL}/infer", json=INFER_BODY)
        assert resp.status_code == 200, resp.text


async def overview(api: httpx.AsyncClient) -> dict[str, Any]:
    resp = await api.get("/v1/telemetry/overview")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_the_page_is_a_public_static_shell_with_a_strict_content_policy(stack: HearthSettings) -> None:
    page = httpx.get(f"{stack.gateway_url}/dashboard", timeout=15)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("dashboard.js", "dashboard.css"):
        assert httpx.get(f"{stack.gateway_url}/dashboard/{asset}", timeout=15).status_code == 200
    # The shell is public; what it shows is not.
    assert httpx.get(f"{stack.gateway_url}/v1/telemetry/overview", timeout=15).status_code == 401


async def test_the_page_loads_without_console_errors_and_shows_every_component(
    dashboard: BrowserPage, api: httpx.AsyncClient
) -> None:
    page = dashboard.page
    expected = {c["name"]: c["status"] for c in (await overview(api))["components"]}
    assert expected, "the overview lists no component"
    strip = {
        await li.get_attribute("data-name"): await li.get_attribute("data-status")
        for li in await page.locator("#health li.component").all()
    }
    assert set(strip) == set(expected)
    assert {strip[name] for name in ("nats", "postgres")} == {"ok"}, strip
    await refreshed(dashboard)  # a second round: polling itself raises nothing either
    await dashboard.screenshot("dashboard-overview")
    assert dashboard.errors.all() == []


async def test_charts_draw_the_inference_traffic_sent_by_the_test(
    dashboard: BrowserPage, api: httpx.AsyncClient
) -> None:
    page = dashboard.page
    drawn = f'#chart-p95 path.series-line[data-series="{MODEL}"]'
    await until(dashboard, drawn, timeout_s=120, nudge=lambda: infer(api, 20))
    for chart in ("#chart-p95", "#chart-p99", "#chart-throughput"):
        line = page.locator(f'{chart} path.series-line[data-series="{MODEL}"]')
        await until(dashboard, f'{chart} path.series-line[data-series="{MODEL}"]', timeout_s=60)
        assert int(await line.get_attribute("data-points") or 0) >= 1, chart
        assert (await line.get_attribute("d") or "").startswith("M"), chart
        assert await page.locator(f"{chart} .x-axis text").count() >= 2, f"{chart} has no time labels"
        assert MODEL in (await page.locator(f"{chart} .legend").text_content() or "")
    model_row = page.locator(f'#models tr[data-model="{MODEL}"]')
    await until(dashboard, f'#models tr[data-model="{MODEL}"]', timeout_s=30)
    assert "loaded" in (await model_row.text_content() or "")
    await until(dashboard, '#chart-routes path.series-line[data-series="/v1/models/{name}/infer"]', timeout_s=60)
    await until(dashboard, "#chart-cpu path.series-line", timeout_s=60)
    # Hovering a chart shows the values at that time.
    box = await page.locator("#chart-p95 svg").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5)
    tooltip = page.locator("#tooltip")
    await tooltip.wait_for(state="visible", timeout=5_000)
    assert MODEL in (await tooltip.text_content() or "")
    await dashboard.screenshot("dashboard-charts")
    assert dashboard.errors.all() == []


async def test_a_box_without_a_gpu_says_so_instead_of_charting_zeros(
    dashboard: BrowserPage, api: httpx.AsyncClient
) -> None:
    page = dashboard.page
    gpu = (await overview(api))["gpu"]
    if gpu["status"] == "absent":
        panel = page.locator("#chart-gpu #no-gpu")
        await panel.wait_for(state="visible")
        text = await panel.text_content() or ""
        assert text.startswith("No GPU: ")
        assert gpu["reason"]
        assert gpu["reason"] in text
        assert await page.locator("#chart-gpu svg").count() == 0
    else:  # a machine with a GPU: its utilisation is charted per device
        await until(dashboard, "#chart-gpu path.series-line", timeout_s=60)
    await dashboard.screenshot("dashboard-gpu", selector="#chart-gpu")
    assert dashboard.errors.all() == []


async def failed_run(api: httpx.AsyncClient) -> str:
    """A run of ``t_review_strict`` rejected by its reviewer: the run fails (tests/data/workflows)."""
    started = await api.post("/v1/workflows/t_review_strict/runs", json={"input": {}})
    assert started.status_code == 201, started.text
    run_id: str = started.json()["id"]
    deadline = time.monotonic() + 60
    while (await api.get(f"/v1/runs/{run_id}")).json()["status"] != "waiting_review":
        assert time.monotonic() < deadline, f"run {run_id} never waited for its review"
        await asyncio.sleep(0.25)
    review = await api.post(f"/v1/runs/{run_id}/review", json={"decision": "reject", "comment": "dashboard test"})
    assert review.status_code == 202, review.text
    while (await api.get(f"/v1/runs/{run_id}")).json()["status"] != "failed":
        assert time.monotonic() < deadline, f"run {run_id} did not fail on rejection"
        await asyncio.sleep(0.25)
    return run_id


async def test_an_alert_fired_by_the_test_appears_and_is_silenced_from_the_page(
    dashboard: BrowserPage, api: httpx.AsyncClient
) -> None:
    # workflow-failure-rate (infra/alerts/workflows.yaml, for: 0s) fires once the failed run is counted.
    await failed_run(api)
    page = dashboard.page
    alert = '.alert[data-alertname="workflow-failure-rate"]:has(.label:text-is("workflow=t_review_strict"))'
    await until(dashboard, alert, timeout_s=120)
    row = page.locator(alert)
    assert "sev-critical" in (await row.get_attribute("class") or "")
    assert "firing" in (await row.text_content() or "")
    await dashboard.screenshot("dashboard-alert")
    await row.locator("button.silence").click()
    await page.locator("#banner.info").wait_for(state="visible")
    await until(dashboard, f"{alert}.is-silenced", timeout_s=30)
    assert dashboard.errors.all() == []
    # The silence is the one the page asked for; ended again so later tests see the alert live.
    silences = (await api.get("/v1/alerts")).json()["silences"]
    ours = [
        s
        for s in silences
        if s["active"] and {"label": "workflow", "op": "=", "value": "t_review_strict"} in s["matchers"]
    ]
    assert len(ours) == 1, silences
    assert {"label": "alertname", "op": "=", "value": "workflow-failure-rate"} in ours[0]["matchers"]
    assert (await api.delete(f"/v1/alerts/silences/{ours[0]['id']}")).status_code == 200


async def test_a_run_opens_into_its_steps_and_its_trace(dashboard: BrowserPage, api: httpx.AsyncClient) -> None:
    run_id = await failed_run(api)
    page = dashboard.page
    row = f'#runs tr[data-run="{run_id}"]'
    await until(dashboard, row, timeout_s=60)
    await page.locator(f"{row} button.run-link").click()
    detail = page.locator("#run-detail")
    await detail.wait_for(state="visible")
    step = page.locator('#run-steps tr[data-step="review"]')
    await step.wait_for(timeout=15_000)
    assert "failed" in (await step.text_content() or "")
    assert await page.locator("#run-steps svg.waterfall rect.bar").count() >= 1
    # The run's trace: its spans as nested bars (the trace is listed once its spans are stored).
    await until(dashboard, f"{row}:not(:has(td.mono .no-data))", timeout_s=60)
    await page.locator(f"{row} button.run-link").click()
    await page.locator("#run-trace svg.waterfall rect.bar").first.wait_for(timeout=15_000)
    await dashboard.screenshot("dashboard-run", selector="#run-detail")
    assert dashboard.errors.all() == []


@pytest.fixture
async def user_key(stack: HearthSettings) -> AsyncIterator[str]:
    engine = postgres_engine(stack, pool_size=1)
    keys = ApiKeyStore(engine)
    created = await keys.create(f"test-dashboard-{uuid.uuid4().hex[:6]}", "user")
    yield created.key
    await keys.revoke(created.prefix)
    await engine.dispose()


@pytest.mark.parametrize("refusal", [("forged", 401, "key"), ("user", 403, "may not GET")], ids=["401", "403"])
async def test_a_refused_key_is_a_banner_with_the_problem_not_an_exception(
    browser: Any, stack: HearthSettings, user_key: str, refusal: tuple[str, int, str]
) -> None:
    who, status, fragment = refusal
    key = user_key if who == "user" else "hearth_abcdefghijkl_nope"
    async for tab in open_dashboard(browser, stack, key):
        banner = tab.page.locator("#banner")
        await banner.wait_for(state="visible", timeout=15_000)
        text = await banner.text_content() or ""
        assert f"({status})" in text
        assert fragment in text
        assert await tab.page.locator("#key-form").is_visible()  # asked for another key
        assert await tab.page.locator("#content").is_hidden()
        await tab.screenshot(f"dashboard-refused-{status}", full_page=False)
        assert tab.errors.uncaught == []
        assert tab.errors.all(ignore=NETWORK_REFUSAL) == []
