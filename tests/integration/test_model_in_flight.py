"""A model busy with a request longer than the idle TTL is not unloaded as idle under it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shared.settings import HearthSettings
from tests.integration.conftest import TEST_IDLE_TTL_S

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL = "sleepy"


async def _state(client: httpx.AsyncClient, stack: HearthSettings) -> dict[str, Any]:
    models = (await client.get(f"{stack.gateway_url}/v1/models")).json()
    return next(m for m in models if m["name"] == MODEL)


async def test_a_request_longer_than_the_idle_ttl_keeps_its_model_loaded(stack: HearthSettings) -> None:
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    url = f"{stack.gateway_url}/v1/models/{MODEL}/infer"
    delay_ms = (TEST_IDLE_TTL_S + 6) * 1000.0

    def body(ms: float) -> dict[str, Any]:
        return {"inputs": [{"name": "DELAY_MS", "shape": [1], "datatype": "FP32", "data": [ms]}]}

    async with httpx.AsyncClient(headers=headers, timeout=TEST_IDLE_TTL_S + 120) as client:
        warm = await client.post(url, json=body(1))
        assert warm.status_code == 200, warm.text
        before = await _state(client, stack)
        slow = asyncio.create_task(client.post(url, json=body(delay_ms)))
        await asyncio.sleep(2)
        during = await _state(client, stack)
        assert during["in_flight"] == 1
        answer = await slow
        assert answer.status_code == 200, answer.text
        after = await _state(client, stack)
    # The idle sweep ran every 2 s past the TTL while the request slept: the model stayed.
    assert after["unloads"] == before["unloads"], after["last_unload_reason"]
    assert after["state"] == "READY"
    assert after["in_flight"] == 0
