"""Composition root of the telemetry service: metrics, traces and alerts of the whole stack.

It scrapes every Prometheus endpoint of the stack into PostgreSQL, measures the host, GPUs, NATS
and the workflow engine itself (``collectors``), keeps recent traces, and answers the gateway's
dashboard and alert routes over NATS (``shared.telemetry``). Capabilities are NATS-only: a
workflow has no reason to ask for a chart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import AsyncExitStack
from typing import Any

import psutil
from nats.js import api
from prometheus_client import REGISTRY

from services.telemetry.alerting import Alerting
from services.telemetry.collectors import HostCollector, WorkflowRecorder
from services.telemetry.query import SeriesQuery
from services.telemetry.scrape import stack_targets
from services.telemetry.service import Telemetry
from services.telemetry.settings import TelemetrySettings
from services.telemetry.store import TelemetryStore
from shared.capabilities import CapabilityRegistry
from shared.clients import postgres_engine
from shared.events.consumer import EventConsumer
from shared.launcher.stack import probe_all
from shared.runtime import ServiceContext, run
from shared.telemetry import (
    AlertList,
    AlertsRequest,
    Overview,
    OverviewRequest,
    SeriesRequest,
    SeriesResult,
    SilenceRequest,
    SilenceView,
    Trace,
    TraceRequest,
    UnsilenceRequest,
)
from shared.tls import http_verify
from workflows.runs import RunService
from workflows.versions import DefinitionStore

_bound: dict[str, Any] = {}


def _telemetry() -> Telemetry:
    telemetry: Telemetry = _bound["telemetry"]
    return telemetry


def _alerting() -> Alerting:
    alerting: Alerting = _bound["alerting"]
    return alerting


def create_registry() -> CapabilityRegistry:
    registry = CapabilityRegistry(service="telemetry")

    async def overview(inp: OverviewRequest) -> Overview:
        return await _telemetry().overview(inp)

    async def series(inp: SeriesRequest) -> SeriesResult:
        return await _telemetry().series(inp)

    async def trace(inp: TraceRequest) -> Trace:
        return await _telemetry().trace(inp)

    async def alerts(inp: AlertsRequest) -> AlertList:
        return await _alerting().list_alerts(inp)

    async def silence(inp: SilenceRequest) -> SilenceView:
        return await _alerting().silence(inp)

    async def unsilence(inp: UnsilenceRequest) -> SilenceView:
        return await _alerting().unsilence(inp.id)

    registry.register("telemetry.alerts", alerts, max_workers=4, activity=False)
    registry.register("telemetry.silence", silence, activity=False)
    registry.register("telemetry.unsilence", unsilence, activity=False)
    registry.register("telemetry.overview", overview, max_workers=4, activity=False)
    registry.register("telemetry.series", series, max_workers=4, activity=False)
    registry.register("telemetry.trace", trace, max_workers=4, activity=False)
    return registry


def _supervisor_pid() -> int | None:
    """supervisord, when it started this process: its descendants are the stack's processes."""
    parent = psutil.Process(os.getpid()).parent()
    try:
        return parent.pid if parent is not None and "supervisord" in " ".join(parent.cmdline()) else None
    except psutil.Error:
        return None


def _background(stack: AsyncExitStack, *coroutines: Any) -> None:
    tasks = [asyncio.create_task(c) for c in coroutines]

    async def _cancel() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(_cancel)


async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per scrape otherwise
    settings = TelemetrySettings()
    engine = postgres_engine(ctx.settings, pool_size=4)
    stack.push_async_callback(engine.dispose)
    store = TelemetryStore(engine)
    await store.load()
    host = HostCollector(ctx.settings.home, _supervisor_pid())
    REGISTRY.register(host)
    stack.callback(REGISTRY.unregister, host)
    workflows = WorkflowRecorder()
    query = SeriesQuery(store)
    alerting = Alerting(engine, ctx.bus, query, settings)
    stack.push_async_callback(alerting.aclose)
    await alerting.start()
    _bound["alerting"] = alerting
    telemetry = Telemetry(
        store,
        stack_targets(ctx.settings),
        settings,
        nats_monitor_url=ctx.settings.nats_monitor_url,
        host=host,
        workflows=workflows,
        probe=lambda: probe_all(ctx.settings),
        alerts=alerting.active_views,
        runs=RunService(ctx.temporal, DefinitionStore(engine)),
        verify=http_verify(ctx.settings),
    )
    stack.push_async_callback(telemetry.aclose)
    _bound["telemetry"] = telemetry
    subscription = await telemetry.subscribe_spans(ctx.bus.nc)
    stack.push_async_callback(subscription.drain)
    for durable, subject, handler in (
        ("telemetry-workflow-steps", "hearth.workflow.step.completed.v1", workflows.on_step),
        ("telemetry-workflow-completed", "hearth.workflow.completed.v1", workflows.on_run),
        ("telemetry-workflow-failed", "hearth.workflow.failed.v1", workflows.on_run),
    ):
        consumer = EventConsumer(
            ctx.bus,
            durable=durable,
            filter_subject=subject,
            handler=handler,
            batch=16,
            description="workflow metrics of the telemetry service",
            deliver_policy=api.DeliverPolicy.NEW,
        )
        await consumer.start()
        stack.push_async_callback(consumer.stop)
    _background(
        stack, telemetry.run_scrapes(), telemetry.run_maintenance(), telemetry.run_span_writer(), alerting.run()
    )


def main() -> None:
    run(create_registry(), on_start=on_start)
