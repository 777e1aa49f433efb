"""Window arithmetic of the telemetry store: increases across resets, bucket quantiles, windows."""

from __future__ import annotations

import numpy as np
import pytest

from services.telemetry.query import _Points, bucket_quantile, increase_of
from services.telemetry.store import Series
from shared.metrics import LATENCY_BUCKETS

pytestmark = pytest.mark.unit


def _v(*values: float) -> list[np.ndarray]:
    return [np.asarray([v]) for v in values]


def test_increase_counts_a_reset_from_zero() -> None:
    (baseline, *values) = _v(10, 15, 3, 8)
    assert increase_of(baseline, values)[0] == 5 + 3 + 5


def test_a_series_born_inside_the_window_starts_from_zero() -> None:
    points = _Points(Series(1, "x_total", {}, "counter"), [5.0, 6.0], _v(4, 9))
    baseline, inside = points.window(0.0, 10.0)
    assert baseline is not None
    assert increase_of(baseline, inside)[0] == 9
    baseline, inside = points.window(5.0, 10.0)  # the sample at 5 is the baseline now
    assert increase_of(baseline, inside)[0] == 5
    assert points.window(7.0, 10.0)[1] == []


def test_bucket_quantiles_are_within_the_bucket_precision_of_the_exact_ones() -> None:
    rng = np.random.default_rng(3)
    observations = np.concatenate([rng.uniform(0.02, 0.08, 900), rng.uniform(0.15, 0.4, 100)])
    bounds = (*LATENCY_BUCKETS, float("inf"))
    counts = np.array([np.sum(observations <= b) for b in bounds], dtype=float)
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(observations, q))
        assert bucket_quantile(q, bounds, counts) == pytest.approx(exact, rel=0.05)


def test_quantile_of_nothing_is_none_and_of_the_overflow_bucket_the_last_bound() -> None:
    bounds = (0.1, 1.0, float("inf"))
    assert bucket_quantile(0.5, bounds, np.zeros(3)) is None
    assert bucket_quantile(0.99, bounds, np.array([0.0, 0.0, 5.0])) == 1.0
