"""The telemetry tables: series, samples, histograms and spans, written in batches; retention.

Only the telemetry service writes here, so the series index (name + labels -> id) lives in memory
and is loaded once at start. Downsampling keeps, for every series and every ``rollup_step_s``
older than the raw retention, one row: the last one for counters and histograms (their
increase over any window of whole steps is then unchanged) and the step's average for gauges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.telemetry.scrape import Labels, Scrape

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Series:
    id: int
    name: str
    labels: Labels
    kind: str
    bounds: tuple[float, ...] | None = None


def series_key(name: str, labels: Labels) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


_DOWNSAMPLE = (
    "DELETE FROM {table} t USING (SELECT series_id, floor(ts / :step) AS step, max(ts) AS last_ts "
    "FROM {table} WHERE ts < :raw GROUP BY series_id, floor(ts / :step)) keep "
    "WHERE t.ts < :raw AND t.series_id = keep.series_id AND floor(t.ts / :step) = keep.step "
    "AND t.ts <> keep.last_ts"
)
"""Keeps the last row of every series and step older than the raw retention ({table}: ours)."""


class TelemetryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._series: dict[SeriesKey, Series] = {}
        self._by_name: dict[str, list[Series]] = {}

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, name, labels, kind, bounds FROM telemetry_series"))
            for row in rows:
                self._remember(Series(row.id, row.name, dict(row.labels), row.kind, _bounds(row.bounds)))

    def _remember(self, series: Series) -> None:
        key = series_key(series.name, series.labels)
        previous = self._series.get(key)
        self._series[key] = series
        same_name = self._by_name.setdefault(series.name, [])
        if previous is not None:
            same_name.remove(previous)
        same_name.append(series)

    def series_named(self, name: str) -> list[Series]:
        return list(self._by_name.get(name, ()))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    async def _ensure_series(self, wanted: Iterable[tuple[str, Labels, str, tuple[float, ...] | None]]) -> None:
        missing: list[dict[str, Any]] = []
        for name, labels, kind, bounds in wanted:
            known = self._series.get(series_key(name, labels))
            if known is None or known.kind != kind or known.bounds != bounds:
                missing.append({"name": name, "labels": json.dumps(labels), "kind": kind, "bounds": bounds})
        if not missing:
            return
        async with self.engine.begin() as conn:
            for params in missing:
                row = (
                    await conn.execute(
                        text(
                            "INSERT INTO telemetry_series (name, labels, kind, bounds) "
                            "VALUES (:name, CAST(:labels AS jsonb), :kind, :bounds) "
                            "ON CONFLICT (name, labels) DO UPDATE SET kind = EXCLUDED.kind, bounds = EXCLUDED.bounds "
                            "RETURNING id"
                        ),
                        params,
                    )
                ).one()
                labels = json.loads(params["labels"])
                bounds = _bounds(params["bounds"])
                self._remember(Series(row.id, params["name"], labels, params["kind"], bounds))

    def _id(self, name: str, labels: Labels) -> int:
        return self._series[series_key(name, labels)].id

    async def write(self, scrapes: Sequence[Scrape]) -> int:
        """Store scrapes; returns the rows written. A series repeated in one scrape keeps its last value."""
        await self._ensure_series(
            [(s.name, s.labels, s.kind, None) for scrape in scrapes for s in scrape.scalars]
            + [(h.name, h.labels, "histogram", h.bounds) for scrape in scrapes for h in scrape.histograms]
        )
        samples: dict[tuple[int, float], float] = {}
        histograms: dict[tuple[int, float], dict[str, Any]] = {}
        for scrape in scrapes:
            for s in scrape.scalars:
                samples[(self._id(s.name, s.labels), scrape.ts)] = s.value
            for h in scrape.histograms:
                key = (self._id(h.name, h.labels), scrape.ts)
                histograms[key] = {"counts": list(h.counts), "sum": h.sum, "count": h.count}
        async with self.engine.begin() as conn:
            if samples:
                await conn.execute(
                    text(
                        "INSERT INTO telemetry_samples (series_id, ts, value) VALUES (:id, :ts, :value) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    [{"id": i, "ts": ts, "value": v} for (i, ts), v in samples.items()],
                )
            if histograms:
                await conn.execute(
                    text(
                        "INSERT INTO telemetry_histograms (series_id, ts, counts, sum, count) "
                        "VALUES (:id, :ts, :counts, :sum, :count) ON CONFLICT DO NOTHING"
                    ),
                    [{"id": i, "ts": ts, **h} for (i, ts), h in histograms.items()],
                )
        return len(samples) + len(histograms)

    async def write_spans(self, spans: Sequence[dict[str, Any]]) -> None:
        rows = [
            {**s, "start_ts": s["start"], "end_ts": s["end"], "attributes": json.dumps(s.get("attributes") or {})}
            for s in spans
            if s.get("trace_id") and s.get("span_id")
        ]
        if not rows:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO telemetry_spans (trace_id, span_id, parent_id, name, service, kind, start_ts, end_ts, "
                    "status, status_message, attributes) VALUES (:trace_id, :span_id, :parent_id, :name, :service, "
                    ":kind, :start_ts, :end_ts, :status, :status_message, CAST(:attributes AS jsonb)) "
                    "ON CONFLICT DO NOTHING"
                ),
                rows,
            )

    async def trace(self, trace_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT trace_id, span_id, parent_id, name, service, kind, start_ts, end_ts, status, "
                    "status_message, attributes FROM telemetry_spans WHERE trace_id = :t ORDER BY start_ts"
                ),
                {"t": trace_id},
            )
            return [
                {
                    "trace_id": r.trace_id,
                    "span_id": r.span_id,
                    "parent_id": r.parent_id,
                    "name": r.name,
                    "service": r.service,
                    "kind": r.kind,
                    "start": r.start_ts,
                    "end": r.end_ts,
                    "duration_ms": round((r.end_ts - r.start_ts) * 1000, 3),
                    "status": r.status,
                    "status_message": r.status_message,
                    "attributes": r.attributes,
                }
                for r in rows
            ]

    async def maintain(
        self, *, raw_retention_s: float, rollup_step_s: float, retention_s: float, span_retention_s: float
    ) -> dict[str, int]:
        """Downsample what is older than the raw retention, delete what is older than the retention."""
        now = time.time()
        params = {"raw": now - raw_retention_s, "old": now - retention_s, "step": rollup_step_s}
        counts: dict[str, int] = {}
        async with self.engine.begin() as conn:
            # Gauges: the step's average goes into its last row before the others are dropped.
            await conn.execute(
                text(
                    "WITH steps AS (SELECT s.series_id, floor(s.ts / :step) AS step, avg(s.value) AS avg_value, "
                    "max(s.ts) AS last_ts FROM telemetry_samples s JOIN telemetry_series r ON r.id = s.series_id "
                    "WHERE r.kind = 'gauge' AND s.ts < :raw GROUP BY s.series_id, floor(s.ts / :step) "
                    "HAVING count(*) > 1) "
                    "UPDATE telemetry_samples t SET value = steps.avg_value FROM steps "
                    "WHERE t.series_id = steps.series_id AND t.ts = steps.last_ts"
                ),
                params,
            )
            for table in ("telemetry_samples", "telemetry_histograms"):
                result = await conn.execute(text(_DOWNSAMPLE.format(table=table)), params)
                counts[f"{table}_downsampled"] = result.rowcount
                expire = f"DELETE FROM {table} WHERE ts < :old"  # noqa: S608 - table is a constant
                result = await conn.execute(text(expire), params)
                counts[f"{table}_expired"] = result.rowcount
            result = await conn.execute(
                text("DELETE FROM telemetry_spans WHERE end_ts < :t"), {"t": now - span_retention_s}
            )
            counts["telemetry_spans_expired"] = result.rowcount
        return counts


def _bounds(value: Any) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(b) for b in value)
