"""The gateway's model state survives a restart of the gateway process (table ``model_state``)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from shared.settings import HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

INFER_BODY = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}


def _restart_gateway(stack: HearthSettings) -> None:
    conf = str(stack.run_dir / "supervisord.conf")
    subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", conf, "restart", "gateway"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.gateway_url}/v1/health/live", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail("the gateway did not come back after its restart")


def test_rollback_version_counts_survive_a_restart_and_a_running_canary_is_cancelled(stack: HearthSettings) -> None:
    admin = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    with httpx.Client(base_url=stack.gateway_url, headers=admin, timeout=120) as client:

        def model(name: str) -> dict[str, Any]:
            resp = client.get(f"/v1/models/{name}")
            assert resp.status_code == 200, resp.text
            return dict(resp.json())

        assert client.post("/v1/models/double/load", json={"version": "1"}).status_code == 200
        switched = client.post("/v1/models/double/load", json={"version": "2"})
        assert switched.status_code == 200, switched.text
        assert switched.json()["previous_version"] == "1"
        for _ in range(5):
            assert client.post("/v1/models/double/infer", json=INFER_BODY).status_code == 200
        made = model("double")["requests"]
        assert made >= 5

        # A canary that cannot reach a verdict before the restart.
        assert client.post("/v1/models/double_canary/load", json={"version": "1"}).status_code == 200
        canary = {"version": "2", "share": 0.5, "min_requests": 10_000}
        started = client.post("/v1/models/double_canary/canary", json=canary)
        assert started.status_code == 200, started.text
        assert started.json()["canary"]["status"] == "running"

        time.sleep(3)  # one sweep (2 s in the test stack) writes the counts behind
        _restart_gateway(stack)

        after = model("double")
        assert after["previous_version"] == "1"
        # None when LRU eviction made room for double_canary (the test budget is small).
        assert after["serving_version"] in ("2", None)
        assert after["requests"] >= made
        assert after["cold_start_ms"] is not None

        cancelled = model("double_canary")
        assert cancelled["canary"]["status"] == "cancelled"
        assert "restarted" in cancelled["canary"]["reason"]
        assert cancelled["serving_version"] == "1"
        answers = {
            client.post("/v1/models/double_canary/infer", json=INFER_BODY).json()["model_version"] for _ in range(10)
        }
        assert answers == {"1"}  # the canary version gets no traffic any more

        rolled_back = client.post("/v1/models/double/rollback")
        assert rolled_back.status_code == 200, rolled_back.text
        assert rolled_back.json()["serving_version"] == "1"
        served = client.post("/v1/models/double/infer", json=INFER_BODY)
        assert served.status_code == 200
        assert served.json()["model_version"] == "1"

        # Leave `double` as the other tests expect it: serving version 2.
        restored = client.post("/v1/models/double/load", json={"version": "2"})
        assert restored.status_code == 200, restored.text
        assert restored.json()["serving_version"] == "2"
