"""The telemetry service's work: scrape, store, maintain, and answer the dashboard's questions.

Loops (each survives its own failures and says so in the log):

* scrape: every ``scrape_interval_s`` NATS monitoring is polled, then every target is scraped
  concurrently and the results written in one batch;
* maintenance: downsampling and retention every ``maintenance_interval_s``;
* spans: finished spans arriving on ``hearth.telemetry.spans`` are written in batches.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import text

from services.telemetry.collectors import HostCollector, RecentRun, WorkflowRecorder, poll_nats
from services.telemetry.query import SeriesQuery
from services.telemetry.scrape import Scrape, Target, scrape
from services.telemetry.selectors import Matcher, Selector
from services.telemetry.settings import TelemetrySettings
from services.telemetry.store import TelemetryStore
from shared.errors import HearthError, NotFound
from shared.health import ComponentHealth
from shared.settings import SERVICES
from shared.telemetry import (
    AlertView,
    ComponentView,
    GpuView,
    HostView,
    ModelView,
    Overview,
    OverviewRequest,
    RouteView,
    RunView,
    SeriesPoints,
    SeriesRequest,
    SeriesResult,
    SpanView,
    Trace,
    TraceRequest,
    WorkflowView,
)
from shared.tracing import SPANS_SUBJECT
from workflows.runs import RunFilter, RunService

log = structlog.get_logger("telemetry")

SPAN_BATCH = 500
RECENT_RUNS = 20


class Telemetry:
    def __init__(
        self,
        store: TelemetryStore,
        targets: list[Target],
        settings: TelemetrySettings,
        *,
        nats_monitor_url: str,
        host: HostCollector,
        workflows: WorkflowRecorder,
        probe: Any,
        alerts: Callable[[], list[AlertView]] = list,
        runs: RunService | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.store = store
        self.query = SeriesQuery(store)
        self.targets = targets
        self.settings = settings
        self.nats_monitor_url = nats_monitor_url
        self.host = host
        self.workflows = workflows
        self._probe = probe  # async () -> dict[str, ComponentHealth]
        self._alerts = alerts
        self._runs = runs
        self._client = httpx.AsyncClient(verify=verify)  # the stack's CA: metrics and NATS monitoring are HTTPS
        self.last_errors: dict[str, str] = {}
        self._scraped_at: dict[str, float] = {}
        self.last_scrape_at: float | None = None
        self._spans: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(maxsize=1000)
        self._health: tuple[float, dict[str, ComponentHealth]] | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- loops --------------------------------------------------------------------------------

    async def scrape_once(self) -> list[Scrape]:
        try:
            await poll_nats(self._client, self.nats_monitor_url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("NATS monitoring not read", error=str(exc))
        timeout = min(self.settings.scrape_timeout_s, self.settings.scrape_interval_s)
        now = time.monotonic()
        due = [t for t in self.targets if now - self._scraped_at.get(t.job, -1e9) >= t.every_s]
        for target in due:
            self._scraped_at[target.job] = now
        scrapes = list(await asyncio.gather(*(scrape(self._client, t, timeout) for t in due)))
        await self.store.write(scrapes)
        errors = {s.job: s.error for s in scrapes if s.error}
        for job in set(errors) - set(self.last_errors):
            log.warning("scrape failing", job=job, error=errors[job])
        scraped = {s.job for s in scrapes}
        kept = {job: e for job, e in self.last_errors.items() if job not in scraped}
        self.last_errors = kept | {job: error for job, error in errors.items() if error}
        self.last_scrape_at = scrapes[0].ts if scrapes else time.time()
        return scrapes

    async def run_scrapes(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.scrape_once()
            except Exception:  # the store down: the next round tries again
                log.exception("scrape round failed")
            await asyncio.sleep(max(0.0, self.settings.scrape_interval_s - (time.monotonic() - started)))

    async def run_maintenance(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval_s)
            try:
                counts = await self.store.maintain(
                    raw_retention_s=self.settings.raw_retention_s,
                    rollup_step_s=self.settings.rollup_step_s,
                    retention_s=self.settings.retention_s,
                    span_retention_s=self.settings.span_retention_s,
                )
                log.info("telemetry maintenance", **counts)
            except Exception:
                log.exception("telemetry maintenance failed")

    async def subscribe_spans(self, nc: Client) -> Any:
        async def received(msg: Msg) -> None:
            try:
                spans = json.loads(msg.data)
            except ValueError:
                log.warning("malformed span batch dropped", size=len(msg.data))
                return
            if isinstance(spans, list):
                try:
                    self._spans.put_nowait([s for s in spans if isinstance(s, dict)])
                except asyncio.QueueFull:
                    log.warning("span queue full; batch dropped", spans=len(spans))

        return await nc.subscribe(SPANS_SUBJECT, cb=received)

    async def run_span_writer(self) -> None:
        while True:
            batch = await self._spans.get()
            while len(batch) < SPAN_BATCH and not self._spans.empty():
                batch.extend(self._spans.get_nowait())
            try:
                await self.store.write_spans(batch)
            except Exception:
                log.exception("spans not stored", spans=len(batch))

    # ---- capabilities -------------------------------------------------------------------------

    async def series(self, request: SeriesRequest) -> SeriesResult:
        until = time.time()
        step = max(request.step_s, request.since_s / 500)  # at most ~500 points per group
        selector = Selector(request.metric, tuple(Matcher(k, "=", v) for k, v in sorted(request.labels.items())))
        groups = await self.query.range(
            selector,
            request.fn,
            since=until - request.since_s,
            until=until,
            step_s=step,
            window_s=request.window_s,
            by=tuple(request.by),
            q=request.q,
            agg=request.agg,
        )
        points = [
            SeriesPoints(group=dict(zip(request.by, key, strict=True)), values=values)
            for key, values in sorted(groups.items())
        ]
        return SeriesResult(metric=request.metric, fn=request.fn, points=points)

    async def trace(self, request: TraceRequest) -> Trace:
        trace_id = request.trace_id
        if trace_id is None and request.workflow_id:
            trace_id = await self._trace_of_run(request.workflow_id)
        if trace_id is None:
            raise NotFound("no trace recorded for that run" if request.workflow_id else "give trace_id or workflow_id")
        spans = await self.store.trace(trace_id)
        if not spans:
            raise NotFound(f"no spans recorded for trace {trace_id} (kept {self.settings.span_retention_s:.0f} s)")
        return Trace(trace_id=trace_id, spans=[SpanView(**s) for s in spans])

    async def _trace_of_run(self, workflow_id: str) -> str | None:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT trace_id FROM telemetry_spans WHERE attributes->>'temporalWorkflowID' = :id "
                        "ORDER BY start_ts LIMIT 1"
                    ),
                    {"id": workflow_id},
                )
            ).first()
        return None if row is None else str(row.trace_id)

    async def _components(self) -> list[ComponentView]:
        cached = self._health
        if cached is None or time.monotonic() - cached[0] > 5:
            self._health = cached = (time.monotonic(), await self._probe())
        return [
            ComponentView(
                name=name,
                kind="service" if name in SERVICES else "infrastructure",
                status=str(health.status),
                detail=health.detail,
            )
            for name, health in cached[1].items()
        ]

    async def overview(self, request: OverviewRequest) -> Overview:
        at = time.time()
        window = request.window_s
        components, models, routes, workflows, host = await asyncio.gather(
            self._components(),
            self._models(at, window),
            self._routes(at, window),
            self._workflows(at, window),
            self._host(at),
        )
        gpu = self.host.gpu
        return Overview(
            generated_at=at,
            window_s=window,
            components=components,
            models=models,
            routes=routes,
            workflows=workflows,
            host=host,
            gpu=GpuView(
                status="present" if gpu.present else "absent",
                reason=gpu.reason,
                devices=[sample.to_dict() for sample in gpu.gpus],
            ),
            alerts=self._alerts(),
            recent_runs=await self._recent_runs(),
            scrape_errors=self.last_errors,
        )

    async def _models(self, at: float, window: float) -> list[ModelView]:
        q = self.query
        by = ("model",)
        loaded = await q.gauge(Selector("hearth_model_loaded"), 3 * self.settings.scrape_interval_s, at, by, "last")
        requests = await q.increase(Selector("hearth_model_requests_total"), window, at, by)
        errors = await q.increase(
            Selector("hearth_model_requests_total", (Matcher("outcome", "=", "error"),)), window, at, by
        )
        latency = Selector("hearth_model_request_duration_seconds")
        p95 = await q.quantile(0.95, latency, window, at, by)
        p99 = await q.quantile(0.99, latency, window, at, by)
        memory = await q.gauge(
            Selector("hearth_model_memory_bytes"), 3 * self.settings.scrape_interval_s, at, by, "last"
        )
        details = {
            s.labels.get("model", ""): s.labels for s in q.matching(Selector("hearth_model_loaded"))
        }  # the latest label set of each model: version, variant, device
        triton = await self._triton_figures(at, window)
        names = sorted({k[0] for k in (*loaded, *requests)})
        views = []
        for name in names:
            key = (name,)
            labels = details.get(name, {}) if key in loaded else {}
            views.append(
                ModelView(
                    name=name,
                    state="loaded" if key in loaded else "not loaded",
                    version=labels.get("version") or None,
                    variant=labels.get("variant") or None,
                    device=labels.get("device") or None,
                    memory_mb=round(memory[key] / 2**20, 1) if key in memory else None,
                    requests=requests.get(key),
                    errors=errors.get(key, 0.0 if key in requests else None),
                    p95_ms=round(p95[key] * 1000, 2) if key in p95 else None,
                    p99_ms=round(p99[key] * 1000, 2) if key in p99 else None,
                    **triton.get(name, {}),
                )
            )
        return views

    async def _triton_figures(self, at: float, window: float) -> dict[str, dict[str, float]]:
        """Per model from Triton's counters: mean queue and compute time, mean batch size."""
        q, by = self.query, ("model",)
        names = (
            "nv_inference_request_success",
            "nv_inference_queue_duration_us",
            "nv_inference_compute_infer_duration_us",
            "nv_inference_count",
            "nv_inference_exec_count",
        )
        success, queue, compute, count, executions = await asyncio.gather(
            *(q.increase(Selector(n), window, at, by) for n in names)
        )
        figures: dict[str, dict[str, float]] = {}
        for key, done in success.items():
            if done <= 0:
                continue
            entry = figures.setdefault(key[0], {})
            if key in queue:
                entry["queue_ms"] = round(queue[key] / done / 1000, 3)
            if key in compute:
                entry["compute_ms"] = round(compute[key] / done / 1000, 3)
            if executions.get(key):
                entry["batch_size"] = round(count.get(key, 0.0) / executions[key], 2)
        return figures

    async def _routes(self, at: float, window: float) -> list[RouteView]:
        q, by = self.query, ("route", "method")
        requests = await q.increase(Selector("hearth_http_requests_total"), window, at, by)
        errors = await q.increase(
            Selector("hearth_http_requests_total", (Matcher("status", "=~", "5.."),)), window, at, by
        )
        p95 = await q.quantile(0.95, Selector("hearth_http_request_duration_seconds"), window, at, by)
        views = [
            RouteView(
                route=key[0],
                method=key[1],
                requests=total,
                errors=errors.get(key, 0.0),
                p95_ms=round(p95[key] * 1000, 2) if key in p95 else None,
            )
            for key, total in requests.items()
            if total > 0
        ]
        return sorted(views, key=lambda r: -r.requests)

    async def _workflows(self, at: float, window: float) -> list[WorkflowView]:
        q = self.query
        by = ("workflow",)
        runs = await q.increase(Selector("hearth_workflow_runs_total"), window, at, by)
        failed = await q.increase(
            Selector("hearth_workflow_runs_total", (Matcher("outcome", "=", "failed"),)), window, at, by
        )
        p95 = await q.quantile(0.95, Selector("hearth_workflow_run_duration_seconds"), window, at, by)
        return [
            WorkflowView(
                workflow=key[0],
                runs=total,
                failed=failed.get(key, 0.0),
                success_rate=round(1 - failed.get(key, 0.0) / total, 4) if total > 0 else None,
                p95_s=round(p95[key], 3) if key in p95 else None,
            )
            for key, total in sorted(runs.items())
        ]

    async def _host(self, at: float) -> HostView:
        q = self.query
        recent = 3 * self.settings.scrape_interval_s

        async def last(metric: str, kind: str | None = None) -> float | None:
            matchers = (Matcher("kind", "=", kind),) if kind else ()
            values = await q.gauge(Selector(metric, matchers), recent, at, (), "last")
            return values.get(())

        async def rate(direction: str) -> float | None:
            sel = Selector("hearth_host_network_bytes_total", (Matcher("direction", "=", direction),))
            values = await q.rate(sel, max(recent, 60.0), at, ())
            return round(values[()], 1) if () in values else None

        return HostView(
            cpu_percent=await last("hearth_host_cpu_percent"),
            memory_used_bytes=await last("hearth_host_memory_bytes", "used"),
            memory_total_bytes=await last("hearth_host_memory_bytes", "total"),
            disk_used_bytes=await last("hearth_host_disk_bytes", "used"),
            disk_total_bytes=await last("hearth_host_disk_bytes", "total"),
            network_rx_bytes_per_s=await rate("rx"),
            network_tx_bytes_per_s=await rate("tx"),
        )

    async def _recent_runs(self) -> list[RunView]:
        """The newest runs from Temporal's visibility (running ones too), else those seen in events."""
        seen = {r.workflow_id: r for r in self.workflows.recent}
        runs = await self._visible_runs(seen)
        traces: dict[str, str] = {}
        if runs:
            async with self.store.engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT DISTINCT ON (attributes->>'temporalWorkflowID') "
                        "attributes->>'temporalWorkflowID' AS id, trace_id FROM telemetry_spans "
                        "WHERE attributes->>'temporalWorkflowID' = ANY(:ids) "
                        "ORDER BY attributes->>'temporalWorkflowID', start_ts"
                    ),
                    {"ids": [r.workflow_id for r in runs]},
                )
                traces = {r.id: r.trace_id for r in rows}
        return [r.model_copy(update={"trace_id": traces.get(r.workflow_id)}) for r in runs]

    async def _visible_runs(self, seen: dict[str, RecentRun]) -> list[RunView]:
        if self._runs is not None:
            try:
                summaries = await self._runs.list(RunFilter(), limit=RECENT_RUNS)
            except HearthError as exc:
                log.warning("runs not listed from Temporal", error=exc.detail)
            else:
                now = time.time()
                views = []
                for run in summaries:
                    started = run.started_at.timestamp() if run.started_at else now
                    ended = run.closed_at.timestamp() if run.closed_at else now
                    known = seen.get(run.id)
                    views.append(
                        RunView(
                            workflow_id=run.id,
                            workflow=run.workflow or "",
                            status=run.status,
                            started_at=started,
                            duration_ms=round((ended - started) * 1000, 1),
                            failed_step=known.failed_step if known else None,
                        )
                    )
                return views
        return [
            RunView(
                workflow_id=r.workflow_id,
                workflow=r.workflow,
                status=r.status,
                started_at=r.started_at,
                duration_ms=r.duration_ms,
                failed_step=r.failed_step,
            )
            for r in list(seen.values())[:RECENT_RUNS]
        ]
