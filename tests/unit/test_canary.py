from __future__ import annotations

import random

import pytest

from services.gateway.inference.canary import Canary, CanaryRequest

pytestmark = pytest.mark.unit


def canary(**kw: object) -> Canary:
    req = CanaryRequest(version="2", share=0.5, min_requests=10, **kw)  # type: ignore[arg-type]
    return Canary(baseline_version="1", request=req, rng=random.Random(7))  # noqa: S311 - a traffic split, not a secret


def test_traffic_is_split_by_share() -> None:
    c = canary()
    picks = [c.pick() for _ in range(2000)]
    assert 0.45 < picks.count("2") / len(picks) < 0.55


def test_no_verdict_before_enough_canary_answers() -> None:
    c = canary()
    for _ in range(9):
        c.record("2", True, 1.0)
    assert c.verdict() == "running"


def test_healthy_canary_is_promoted() -> None:
    c = canary()
    for _ in range(20):
        c.record("1", True, 1.0)
        c.record("2", True, 1.1)
    assert c.verdict() == "promoted"
    assert c.state().canary_requests == 20


def test_errors_roll_back() -> None:
    c = canary()
    for _ in range(10):
        c.record("1", True, 1.0)
        c.record("2", False, 1.0)
    assert c.verdict() == "rolled_back"
    assert "error rate 100.0%" in (c.reason or "")


def test_slow_canary_rolls_back_on_latency() -> None:
    c = canary(max_latency_ratio=1.5)
    for _ in range(10):
        c.record("1", True, 2.0)
        c.record("2", True, 5.0)
    assert c.verdict() == "rolled_back"
    assert "median latency" in (c.reason or "")


def test_jitter_below_the_slack_is_not_a_regression() -> None:
    c = canary(max_latency_ratio=1.5, latency_slack_ms=2.0)
    for _ in range(10):
        c.record("1", True, 1.0)
        c.record("2", True, 2.5)  # 2.5x the baseline, yet 1.5 ms: noise for a millisecond model
    assert c.verdict() == "promoted"


def test_a_verdict_is_final() -> None:
    c = canary()
    for _ in range(10):
        c.record("2", False, 1.0)
    assert c.verdict() == "rolled_back"
    for _ in range(100):
        c.record("2", True, 1.0)
    assert c.verdict() == "rolled_back"
