"""The gateway's persisted model state: the document's round trip, and a restart with a fake store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.gateway.inference.canary import CanaryRequest
from services.gateway.inference.forecast import ModelRate
from services.gateway.inference.kserve import InferRequest
from services.gateway.inference.lifecycle import Budget, LifecycleManager
from services.gateway.inference.service import LoadRequest, ModelService
from services.gateway.inference.state import CanaryMarker, PersistedModel
from tests.unit.test_lifecycle import FakeMemory

pytestmark = pytest.mark.unit


def test_a_model_state_document_round_trips_through_json() -> None:
    rate = ModelRate()
    rate.slots[9], rate.current_slot, rate.current_count = 42.5, 10, 3
    model = PersistedModel(
        previous_version="1",
        variant="int8",
        device="cpu",
        requests=12,
        errors=2,
        last_used=datetime(2026, 12, 1, 8, 30, tzinfo=UTC),
        cold_start_ms=812.5,
        rate=rate,
        canary=CanaryMarker("1", "2", 0.2),
    )
    assert PersistedModel.from_json(json.loads(json.dumps(model.to_json()))) == model
    assert PersistedModel.from_json(PersistedModel().to_json()) == PersistedModel()


def test_unknown_keys_of_a_newer_gateway_are_kept() -> None:
    model = PersistedModel.from_json({"format": 2, "requests": 3, "shiny": {"a": 1}})
    assert model.requests == 3
    assert model.to_json()["shiny"] == {"a": 1}


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.saves = 0

    async def load(self) -> dict[str, PersistedModel]:
        return {m: PersistedModel.from_json(json.loads(s)) for m, s in self.rows.items()}

    async def save(self, models: dict[str, PersistedModel]) -> None:
        self.saves += 1
        self.rows |= {m: json.dumps(p.to_json()) for m, p in models.items()}


class FakeTriton:
    """One model, ``double``, whose served versions follow the loads (as Triton's would)."""

    def __init__(self) -> None:
        self.versions = ["2"]
        self.loads: list[dict[str, Any] | None] = []

    async def index(self) -> list[dict[str, Any]]:
        return [{"name": "double", "version": v, "state": "READY"} for v in self.versions]

    async def config(self, name: str) -> dict[str, Any]:
        return {"name": name}

    async def load(self, name: str, override: dict[str, Any] | None = None) -> None:
        self.loads.append(override)
        if override and "version_policy" in override:
            self.versions = [str(v) for v in override["version_policy"]["specific"]["versions"]]

    async def metadata(self, name: str) -> dict[str, Any]:
        return {"inputs": {"X": {"datatype": "FP32", "shape": [-1, 4]}}, "outputs": {"Y": {"datatype": "FP32"}}}

    async def infer(self, name: str, inputs: Any, outputs: Any, **kw: Any) -> tuple[dict[str, Any], str]:
        return {"Y": np.zeros((1, 4), dtype=np.float32)}, kw.get("model_version") or max(self.versions)


def gateway(tmp_path: Path, triton: FakeTriton, store: MemoryStore) -> ModelService:
    lifecycle = LifecycleManager(
        memory=FakeMemory({}),  # type: ignore[arg-type]
        repositories=[tmp_path],
        budget=Budget("cpu", 1000),
        idle_ttl_s=0,
    )
    return ModelService(triton, lifecycle, store=store)  # type: ignore[arg-type]


BODY = InferRequest.model_validate(
    {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
)


async def test_a_restarted_gateway_keeps_counts_and_the_rollback_version(tmp_path: Path) -> None:
    triton, store = FakeTriton(), MemoryStore()
    first = gateway(tmp_path, triton, store)
    await first.restore()
    await first.load("double", LoadRequest(version="1"))
    for _ in range(3):
        await first.infer("double", BODY)
    await first.flush()
    saves = store.saves
    await first.flush()
    assert store.saves == saves  # nothing changed: nothing written

    second = gateway(tmp_path, triton, store)
    await second.restore()
    state = await second.get_model("double")
    assert (state.serving_version, state.previous_version, state.requests) == ("1", "2", 3)
    assert state.cold_start_ms is not None
    assert second.snapshot()["double"].rate == first.snapshot()["double"].rate
    rolled_back = await second.rollback("double")
    assert (rolled_back.serving_version, rolled_back.previous_version) == ("2", "1")


async def test_a_canary_running_at_restart_is_cancelled_and_the_baseline_serves(tmp_path: Path) -> None:
    triton, store = FakeTriton(), MemoryStore()
    first = gateway(tmp_path, triton, store)
    await first.start_canary("double", CanaryRequest(version="3", share=0.5))
    assert triton.versions == ["2", "3"]
    await first.flush()
    assert json.loads(store.rows["double"])["canary"]["canary_version"] == "3"

    second = gateway(tmp_path, triton, store)  # the first "crashed": no clean stop
    await second.restore()
    state = await second.get_model("double")
    assert triton.versions == ["2"]
    assert state.serving_version == "2"
    assert state.previous_version is None  # the canary never served alone
    assert state.canary is not None
    assert state.canary.status == "cancelled"
    assert "restarted" in str(state.canary.reason)
    assert json.loads(store.rows["double"])["canary"] is None
