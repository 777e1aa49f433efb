from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.gateway.inference.lifecycle import Budget, LifecycleManager, declared_parameters

pytestmark = pytest.mark.unit


class FakeMemory:
    """Measured RSS per model, as the real TritonMemory would report it."""

    def __init__(self, per_model: dict[str, float], server: float = 500.0) -> None:
        self.per_model = per_model
        self.server = server

    def per_model_mb(self) -> dict[str, float]:
        return dict(self.per_model)

    def server_mb(self) -> float:
        return self.server


def write_model(repo: Path, name: str, **params: str) -> None:
    (repo / name).mkdir(parents=True)
    entries = ",\n".join(f'  {{ key: "{k}", value: {{ string_value: "{v}" }} }}' for k, v in params.items())
    (repo / name / "config.pbtxt").write_text(f'backend: "python"\nparameters [\n{entries}\n]\n')


def manager(tmp_path: Path, measured: dict[str, float], limit: float, **kw: object) -> LifecycleManager:
    return LifecycleManager(
        memory=FakeMemory(measured),  # type: ignore[arg-type]
        repositories=[tmp_path],
        budget=Budget("cpu", limit),
        idle_ttl_s=kw.pop("idle_ttl_s", 60.0),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_parameters_are_read_from_config_pbtxt(tmp_path: Path) -> None:
    write_model(tmp_path, "m", **{"hearth.memory_mb.fp32": "120", "hearth.default_variant": "fp32"})
    assert declared_parameters([tmp_path], "m") == {"hearth.memory_mb.fp32": "120", "hearth.default_variant": "fp32"}
    assert declared_parameters([tmp_path], "absent") == {}


def test_estimate_prefers_measured_then_declared_variant_then_default(tmp_path: Path) -> None:
    write_model(tmp_path, "m", **{"hearth.memory_mb.int8": "70", "hearth.default_variant": "int8"})
    lm = manager(tmp_path, {}, 1000)
    assert lm.estimate_mb("m") == 70
    assert lm.estimate_mb("unknown") == lm.default_estimate_mb
    lm.life("m").memory_mb = 55.5
    assert lm.estimate_mb("m") == 55.5


def test_eviction_takes_least_recently_used_first_and_skips_pinned(tmp_path: Path) -> None:
    write_model(tmp_path, "pinned", **{"hearth.pinned": "true"})
    write_model(tmp_path, "new", **{"hearth.memory_mb": "50"})
    lm = manager(tmp_path, {"pinned": 40, "old": 40, "recent": 40}, 140)
    for name in ("pinned", "old", "recent"):
        lm.touch(name)
        time.sleep(0.001)
    assert lm.eviction_plan("new", {"pinned", "old", "recent"}) == ["old"]
    assert lm.life("pinned").pinned


def test_nothing_is_evicted_when_it_fits_and_pins_from_settings_hold(tmp_path: Path) -> None:
    lm = manager(tmp_path, {"a": 40, "b": 40}, 400, pinned={"a"})
    assert lm.eviction_plan("c", {"a", "b"}) == []
    lm2 = manager(tmp_path, {"a": 200, "b": 200}, 250, pinned={"a", "b"})
    assert lm2.eviction_plan("c", {"a", "b"}) == []  # pinned models are never victims, even over budget


def test_idle_models_after_ttl_but_never_pinned(tmp_path: Path) -> None:
    lm = manager(tmp_path, {}, 1000, idle_ttl_s=0.01, pinned={"keep"})
    lm.touch("keep")
    lm.touch("drop")
    time.sleep(0.02)
    assert lm.idle({"keep", "drop"}) == ["drop"]
    assert manager(tmp_path, {}, 1000, idle_ttl_s=0).idle({"drop"}) == []


def test_unload_records_reason_and_memory_triton_kept(tmp_path: Path) -> None:
    memory = FakeMemory({}, server=500.0)
    lm = LifecycleManager(memory=memory, repositories=[tmp_path], budget=Budget("cpu", 1000), idle_ttl_s=60)  # type: ignore[arg-type]
    lm.before_load("m")
    memory.server = 512.5
    lm.after_unload("m", "idle for 60s")
    life = lm.life("m")
    assert (life.unloads, life.last_unload_reason, life.retained_after_unload_mb) == (1, "idle for 60s", 12.5)


def test_dependencies_are_touched_kept_and_unloaded_after_their_callers(tmp_path: Path) -> None:
    write_model(tmp_path, "ocr", **{"hearth.depends_on": "rec"})
    lm = manager(tmp_path, {"ocr": 300, "rec": 200, "other": 50}, 600, idle_ttl_s=0.01)
    lm.touch("ocr")
    assert lm.life("rec").last_used == lm.life("ocr").last_used
    assert "rec" not in lm.eviction_plan("other2", {"ocr", "rec", "other"})
    time.sleep(0.02)
    lm.touch("other")
    lm.life("rec").last_used = 0  # even if the callee looks idle, its caller decides
    lm.life("ocr").last_used = time.monotonic()
    assert lm.idle({"ocr", "rec"}) == []
    lm.life("ocr").last_used = 0
    assert lm.idle({"ocr", "rec"}) == ["ocr", "rec"]


def test_the_quantised_variant_is_chosen_when_full_precision_cannot_fit(tmp_path: Path) -> None:
    params = {
        "hearth.variants": "fp32,int8",
        "hearth.default_variant": "fp32",
        "hearth.memory_mb.fp32": "900",
        "hearth.memory_mb.int8": "600",
    }
    write_model(tmp_path, "ocr", **params)
    write_model(tmp_path, "pinned", **{"hearth.pinned": "true", "hearth.memory_mb": "300"})
    roomy = manager(tmp_path, {}, 2000)
    assert roomy.choose_variant("ocr", set()) == (None, None)
    tight = manager(tmp_path, {"pinned": 300, "other": 500}, 1000)
    variant, reason = tight.choose_variant("ocr", {"pinned", "other"})  # "other" can be evicted, "pinned" not
    assert variant == "int8"
    assert reason is not None
    assert "fp32 needs 900 MB" in reason
    assert "at most 700 MB" in reason
    assert tight.eviction_plan("ocr", {"pinned", "other"}, variant) == ["other"]
    hopeless = manager(tmp_path, {"pinned": 300}, 500)
    assert hopeless.choose_variant("ocr", {"pinned"}) == (None, None)  # nothing fits: the default, with a warning


def test_a_model_with_requests_in_flight_is_evicted_last(tmp_path: Path) -> None:
    write_model(tmp_path, "new", **{"hearth.memory_mb": "50"})
    lm = manager(tmp_path, {"old": 40, "recent": 40}, 100)
    for name in ("old", "recent"):
        lm.touch(name)
        time.sleep(0.001)
    lm.life("old").in_flight = 2
    assert lm.eviction_plan("new", {"old", "recent"}) == ["recent"]  # not the LRU one: it is busy
    write_model(tmp_path, "big", **{"hearth.memory_mb": "90"})
    assert lm.eviction_plan("big", {"old", "recent"}) == ["recent", "old"]  # busy only as a last resort


def test_a_busy_model_is_never_unloaded_as_idle(tmp_path: Path) -> None:
    lm = manager(tmp_path, {}, 1000, idle_ttl_s=0.01)
    lm.touch("slow")
    lm.touch("quiet")
    lm.life("slow").in_flight = 1  # one request longer than the TTL
    time.sleep(0.02)
    assert lm.idle({"slow", "quiet"}) == ["quiet"]
    lm.life("slow").in_flight = 0
    assert sorted(lm.idle({"slow", "quiet"})) == ["quiet", "slow"]
