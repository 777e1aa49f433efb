"""An in-memory ``SeriesSource`` for the alert rule and engine unit tests.

Series hold raw samples; histograms are kept as raw observations, so a quantile is the
nearest-rank quantile of the observations in the window. Good enough to test the evaluator's
plumbing (selectors, windows, grouping); the real arithmetic is the store's and tested there.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.telemetry.selectors import GaugeAgg, Selector


@dataclass
class _Series:
    name: str
    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


class FakeSource:
    def __init__(self) -> None:
        self.series: list[_Series] = []
        self.calls: list[tuple[str, str, float, float, tuple[str, ...]]] = []
        self.fail: Exception | None = None

    def _get(self, name: str, labels: dict[str, str]) -> _Series:
        for series in self.series:
            if series.name == name and series.labels == labels:
                return series
        series = _Series(name, dict(labels))
        self.series.append(series)
        return series

    def add(self, name: str, labels: dict[str, str], *points: tuple[float, float]) -> None:
        """Samples (or, for a histogram, observations) ``(ts, value)`` of one series."""
        self._get(name, labels).points.extend(points)

    def drop(self, name: str, labels: dict[str, str]) -> None:
        self.series = [s for s in self.series if not (s.name == name and s.labels == labels)]

    def _groups(
        self, kind: str, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], list[tuple[float, float]]]]:
        if self.fail is not None:
            raise self.fail
        self.calls.append((kind, str(sel), window_s, at, by))
        for series in self.series:
            if sel.matches(series.name, series.labels):
                points = [(t, v) for t, v in series.points if at - window_s < t <= at]
                yield tuple(series.labels.get(label, "") for label in by), points

    async def increase(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = defaultdict(float)
        for key, points in self._groups("increase", sel, window_s, at, by):
            if len(points) >= 2:
                out[key] += points[-1][1] - points[0][1]
        return dict(out)

    async def quantile(
        self, q: float, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], float]:
        values: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for key, points in self._groups("quantile", sel, window_s, at, by):
            values[key].extend(v for _, v in points)
        return {key: sorted(vs)[max(0, math.ceil(q * len(vs)) - 1)] for key, vs in values.items() if vs}

    async def gauge(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...], agg: GaugeAgg
    ) -> dict[tuple[str, ...], float]:
        points: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)
        for key, pts in self._groups(f"gauge:{agg}", sel, window_s, at, by):
            points[key].extend(pts)
        out: dict[tuple[str, ...], float] = {}
        for key, pts in points.items():
            if not pts:
                continue
            values = [v for _, v in pts]
            if agg == "avg":
                out[key] = sum(values) / len(values)
            elif agg == "max":
                out[key] = max(values)
            elif agg == "min":
                out[key] = min(values)
            else:
                out[key] = max(pts)[1]
        return out

    async def count_samples(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], int]:
        out: dict[tuple[str, ...], int] = defaultdict(int)
        for key, points in self._groups("count", sel, window_s, at, by):
            out[key] += len(points)
        return dict(out)
