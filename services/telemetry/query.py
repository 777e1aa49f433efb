"""Window functions over the stored series: increase, rate, histogram quantiles, gauge aggregates.

Every function takes the window ``(at - window_s, at]``. A counter's increase starts from the last
sample at or before the window's start; a series with no sample before the start was born inside
the window and starts from zero (Hearth's counters and histograms are created at their first
observation, so nothing is lost from a new model's first requests). Counter resets (a process
restarted) are detected per step and counted from zero, like Prometheus.

Quantiles interpolate linearly inside the bucket holding the rank, as ``histogram_quantile``
does; with ``shared.metrics.LATENCY_BUCKETS`` that is within a few percent of the exact value.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import text

from services.telemetry.selectors import Selector
from services.telemetry.store import Series, TelemetryStore

Group = tuple[str, ...]
Aggregate = Literal["avg", "max", "min", "last"]


@dataclass(slots=True)
class _Points:
    """One series' samples, sorted by time (values: floats, or cumulative count vectors)."""

    series: Series
    ts: list[float]
    values: list[np.ndarray]

    def window(self, start: float, end: float) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """The baseline (last value at or before ``start``) and the values in the window.

        The points always include the last sample at or before the earliest window asked for, so
        no sample before ``start`` means the series was born later: its baseline is zero.
        """
        lo = bisect.bisect_right(self.ts, start)
        hi = bisect.bisect_right(self.ts, end)
        inside = self.values[lo:hi]
        if lo > 0:
            return self.values[lo - 1], inside
        return (np.zeros_like(inside[0]), inside) if inside else (None, [])


def increase_of(baseline: np.ndarray, values: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of the steps from ``baseline`` through ``values``; a decrease is a reset counted from zero."""
    total = np.zeros_like(baseline)
    previous = baseline
    for value in values:
        reset = bool(np.any(value < previous))
        total = total + (value if reset else value - previous)
        previous = value
    return total


def bucket_quantile(q: float, bounds: Sequence[float], counts: np.ndarray) -> float | None:
    """The ``q`` quantile of observations counted in cumulative buckets (``None`` when empty)."""
    total = float(counts[-1]) if len(counts) else 0.0
    if total <= 0:
        return None
    rank = q * total
    i = int(np.searchsorted(counts, rank, side="left"))
    i = min(i, len(bounds) - 1)
    upper = bounds[i]
    if upper == float("inf"):
        return float(bounds[i - 1]) if i > 0 else None
    lower = bounds[i - 1] if i > 0 else 0.0
    below = float(counts[i - 1]) if i > 0 else 0.0
    in_bucket = float(counts[i]) - below
    if in_bucket <= 0:
        return float(upper)
    return float(lower + (upper - lower) * (rank - below) / in_bucket)


_COLUMNS = {"telemetry_samples": "value", "telemetry_histograms": "counts"}
_BASELINE = {
    table: f"SELECT b.series_id, b.ts, b.{column} AS v FROM unnest(CAST(:ids AS bigint[])) AS i(id) "  # noqa: S608
    f"CROSS JOIN LATERAL (SELECT series_id, ts, {column} FROM {table} "
    "WHERE series_id = i.id AND ts <= :start ORDER BY ts DESC LIMIT 1) b"
    for table, column in _COLUMNS.items()
}
"""Per series, the last sample at or before the window (the PK index answers each in one probe)."""
_INSIDE = {
    table: f"SELECT series_id, ts, {column} AS v FROM {table} "  # noqa: S608
    "WHERE series_id = ANY(CAST(:ids AS bigint[])) AND ts > :start AND ts <= :end ORDER BY ts"
    for table, column in _COLUMNS.items()
}


_COUNTER_STEPS = (
    "SELECT series_id, ts, v FROM (SELECT series_id, ts, value AS v, "
    "lag(value) OVER w AS prev, lead(value) OVER w AS next FROM telemetry_samples "
    "WHERE series_id = ANY(CAST(:ids AS bigint[])) AND ts > :start AND ts <= :end "
    "WINDOW w AS (PARTITION BY series_id ORDER BY ts)) s "
    "WHERE prev IS NULL OR next IS NULL OR v < prev OR next < v ORDER BY ts"
)
"""A counter's samples in a window that its increase depends on: first, last, either side of a reset."""
_COUNT_BASELINE = (
    "SELECT b.series_id, b.ts, b.count AS n FROM unnest(CAST(:ids AS bigint[])) AS i(id) "
    "CROSS JOIN LATERAL (SELECT series_id, ts, count FROM telemetry_histograms "
    "WHERE series_id = i.id AND ts <= :start ORDER BY ts DESC LIMIT 1) b"
)
_COUNT_INSIDE = (
    "SELECT series_id, ts, count AS n FROM telemetry_histograms "
    "WHERE series_id = ANY(CAST(:ids AS bigint[])) AND ts > :start AND ts <= :end ORDER BY ts"
)


class SeriesQuery:
    """``SeriesSource`` over the telemetry tables (the alert engine's and the dashboard's view)."""

    def __init__(self, store: TelemetryStore, lookback_s: float = 3600.0) -> None:
        self.store = store
        self.lookback_s = lookback_s  # how far before a window a baseline sample is looked for

    def matching(self, sel: Selector) -> list[Series]:
        return [s for s in self.store.series_named(sel.metric) if sel.matches(s.name, s.labels)]

    async def _points(
        self, series: list[Series], start: float, end: float, *, counter_steps: bool = False
    ) -> list[_Points]:
        """Samples in ``(start, end]`` plus, per series, the last one at or before ``start``.

        ``counter_steps``: of the samples inside, only those one window's increase needs (the
        first, the last, and the two around each reset), chosen by the database.
        """
        if not series:
            return []
        histogram = series[0].kind == "histogram"
        table = "telemetry_histograms" if histogram else "telemetry_samples"
        ids = [s.id for s in series]
        async with self.store.engine.connect() as conn:
            baseline = await conn.execute(text(_BASELINE[table]), {"ids": ids, "start": start})
            rows = list(baseline)
            query = _COUNTER_STEPS if counter_steps and not histogram else _INSIDE[table]
            inside = await conn.execute(text(query), {"ids": ids, "start": start, "end": end})
            rows.extend(inside)
        by_id = {s.id: _Points(s, [], []) for s in series}
        for row in rows:
            points = by_id[row.series_id]
            points.ts.append(row.ts)
            points.values.append(np.asarray(row.v if histogram else [row.v], dtype=np.float64))
        return list(by_id.values())

    @staticmethod
    def _group(series: Series, by: tuple[str, ...]) -> Group:
        return tuple(series.labels.get(label, "") for label in by)

    def _increases(
        self, points: list[_Points], start: float, end: float, by: tuple[str, ...]
    ) -> dict[Group, tuple[Series, np.ndarray]]:
        """Per group: the summed increase (vectors of equal bounds only) and one series of the group."""
        groups: dict[Group, tuple[Series, np.ndarray]] = {}
        for p in points:
            baseline, values = p.window(start, end)
            if baseline is None:
                continue
            delta = increase_of(baseline, values)
            key = self._group(p.series, by)
            known = groups.get(key)
            if known is None:
                groups[key] = (p.series, delta)
            elif known[0].bounds == p.series.bounds:
                groups[key] = (known[0], known[1] + delta)
        return groups

    async def increase(self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]) -> dict[Group, float]:
        points = await self._points(self.matching(sel), at - window_s, at, counter_steps=True)
        return {k: float(v[1][-1]) for k, v in self._increases(points, at - window_s, at, by).items()}

    async def rate(self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]) -> dict[Group, float]:
        return {k: v / window_s for k, v in (await self.increase(sel, window_s, at, by)).items()}

    async def quantile(
        self, q: float, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[Group, float]:
        series = [s for s in self.matching(sel) if s.kind == "histogram"]
        points = await self._histogram_window(series, at - window_s, at)
        return self._quantiles(q, points, at - window_s, at, by)

    async def _histogram_window(self, series: list[Series], start: float, end: float) -> list[_Points]:
        """The bucket vectors one window's increase needs, not every scrape's.

        An hour at a 10 s scrape is 360 vectors of 132 floats per series; the increase only needs
        the baseline, the last vector, and the two around each counter reset, which the ``count``
        column alone reveals.
        """
        if not series:
            return []
        ids = [s.id for s in series]
        async with self.store.engine.connect() as conn:
            rows = list(await conn.execute(text(_COUNT_BASELINE), {"ids": ids, "start": start}))
            rows.extend(await conn.execute(text(_COUNT_INSIDE), {"ids": ids, "start": start, "end": end}))
            counts: dict[int, list[tuple[float, float]]] = {}
            for row in rows:
                counts.setdefault(row.series_id, []).append((row.ts, row.n))
            wanted: list[tuple[int, float]] = []
            for series_id, seq in counts.items():
                keep = {0, len(seq) - 1}
                keep.update(j for i in range(1, len(seq)) if seq[i][1] < seq[i - 1][1] for j in (i - 1, i))
                wanted.extend((series_id, seq[i][0]) for i in sorted(keep))
            vectors = await conn.execute(
                text(
                    "SELECT h.series_id, h.ts, h.counts FROM telemetry_histograms h JOIN "
                    "unnest(CAST(:ids AS bigint[]), CAST(:ts AS float8[])) AS w(id, ts) "
                    "ON h.series_id = w.id AND h.ts = w.ts ORDER BY h.ts"
                ),
                {"ids": [w[0] for w in wanted], "ts": [w[1] for w in wanted]},
            )
            by_id = {s.id: _Points(s, [], []) for s in series}
            for row in vectors:
                points = by_id[row.series_id]
                points.ts.append(row.ts)
                points.values.append(np.asarray(row.counts, dtype=np.float64))
        return list(by_id.values())

    def _quantiles(
        self, q: float, points: list[_Points], start: float, end: float, by: tuple[str, ...]
    ) -> dict[Group, float]:
        result = {}
        for key, (series, counts) in self._increases(points, start, end, by).items():
            value = bucket_quantile(q, series.bounds or (), counts)
            if value is not None:
                result[key] = value
        return result

    async def gauge(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...], agg: Aggregate
    ) -> dict[Group, float]:
        points = await self._points(self.matching(sel), at - window_s, at)
        return self._gauges(points, at - window_s, at, by, agg)

    def _gauges(
        self, points: list[_Points], start: float, end: float, by: tuple[str, ...], agg: Aggregate
    ) -> dict[Group, float]:
        """Per group: ``agg`` over the window's samples of every series (``last``: the sum of each series' last)."""
        collected: dict[Group, list[float]] = {}
        lasts: dict[Group, float] = {}
        for p in points:
            _, values = p.window(start, end)
            if not values:
                continue
            key = self._group(p.series, by)
            collected.setdefault(key, []).extend(float(v[0]) for v in values)
            lasts[key] = lasts.get(key, 0.0) + float(values[-1][0])
        if agg == "last":
            return lasts
        if agg == "avg":
            return {k: sum(v) / len(v) for k, v in collected.items()}
        return {k: max(v) if agg == "max" else min(v) for k, v in collected.items()}

    async def count_samples(self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]) -> dict[Group, int]:
        points = await self._points(self.matching(sel), at - window_s, at)
        counts: dict[Group, int] = {}
        for p in points:
            _, values = p.window(at - window_s, at)
            if values:
                key = self._group(p.series, by)
                counts[key] = counts.get(key, 0) + len(values)
        return counts

    async def range(
        self,
        sel: Selector,
        fn: Literal["rate", "increase", "quantile", "gauge"],
        *,
        since: float,
        until: float,
        step_s: float,
        window_s: float,
        by: tuple[str, ...],
        q: float = 0.95,
        agg: Aggregate = "avg",
    ) -> dict[Group, list[tuple[float, float]]]:
        """``fn`` evaluated every ``step_s`` from ``since`` to ``until`` (the dashboard's charts)."""
        series = self.matching(sel)
        if fn == "quantile":
            series = [s for s in series if s.kind == "histogram"]
        points = await self._points(series, since - window_s, until)
        steps = np.arange(since, until + step_s / 2, step_s)
        result: dict[Group, list[tuple[float, float]]] = {}
        for at in steps:
            start = float(at) - window_s
            if fn == "quantile":
                values = self._quantiles(q, points, start, float(at), by)
            elif fn == "gauge":
                values = self._gauges(points, start, float(at), by, agg)
            else:
                increases = {k: float(v[1][-1]) for k, v in self._increases(points, start, float(at), by).items()}
                values = {k: v / window_s for k, v in increases.items()} if fn == "rate" else increases
            for key, value in values.items():
                result.setdefault(key, []).append((round(float(at), 3), value))
        return result
