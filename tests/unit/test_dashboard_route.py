"""``/dashboard``: served without a key, locked down by its headers, and free of markup injection.

The page's behaviour in a browser against the real stack is in ``tests/integration/test_dashboard.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from services.gateway.auth import AccessGuard, load_enforcer
from services.gateway.dashboard.routes import STATIC_DIR, dashboard_router
from services.gateway.errors import EXCEPTION_HANDLERS
from shared.errors import Unauthorized
from shared.identity.apikeys import Principal

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class NoKeys:
    async def verify(self, key: str) -> Principal:
        raise Unauthorized("the API key is unknown or revoked")


@get("/v1/telemetry/overview")
async def overview() -> dict[str, str]:
    return {"never": "reached without a key"}


@pytest.fixture
def client() -> TestClient[Any]:
    app = Litestar(
        route_handlers=[dashboard_router(), overview],
        guards=[AccessGuard(NoKeys(), load_enforcer())],  # type: ignore[arg-type]
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return TestClient(app)


def test_the_page_and_its_assets_need_no_key_and_the_data_does(client: TestClient[Any]) -> None:
    with client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert 'id="key-form"' in page.text
        script = client.get("/dashboard/dashboard.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert client.get("/dashboard/dashboard.css").status_code == 200
        assert client.get("/dashboard/nothing-here.js").status_code == 404
        assert client.get("/v1/telemetry/overview").status_code == 401


def test_the_page_may_run_only_its_own_script_and_talk_only_to_its_origin(client: TestClient[Any]) -> None:
    with client:
        headers = client.get("/dashboard").headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_page_loads_nothing_from_elsewhere_and_never_writes_markup_from_data() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    script = (STATIC_DIR / "dashboard.js").read_text()
    # No CDN (the box is air-gapped) and no inline script (the policy would refuse it anyway).
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    # Values reach the page through textContent and attributes only.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
