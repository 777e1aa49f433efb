"""The process skeleton every Hearth service runs on.

``serve`` connects to NATS and Temporal, exposes the service's capability registry on both
transports (request/reply in the service's queue group, activities on its task queue), answers
``hearth.svc.<name>.health``, and shuts down cleanly on SIGTERM: stop taking requests, finish
in-flight work, close connections, so a supervisor restart never loses acknowledged work.

Capabilities are served from plain nats-py subscriptions (``CapabilityRegistry.subscribe``), not
FastStream subscribers: same subjects, queue groups, replies and errors, but FastStream's
per-message pipeline cost +28-55% on a request/reply round trip against raw nats-py in
``bench/bench_bus.py``, while the plain path costs +3-10%. FastStream still generates the
AsyncAPI document from the same registries (``shared.asyncapi``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from opentelemetry.sdk.trace.export import SpanExporter
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from shared.bus import Bus
from shared.capabilities import CapabilityRegistry, ServiceHealth
from shared.clients import connect_temporal, payload_codec
from shared.crypto.payload_codec import EnvelopePayloadCodec
from shared.errors import Unavailable
from shared.logging import configure_logging
from shared.metrics import MetricsServer
from shared.metrics import set_enabled as set_metrics_enabled
from shared.settings import SERVICES, HearthSettings, get_settings
from shared.tls import server_context
from shared.tracing import HearthSampler, NatsSpanExporter, otlp_exporter, setup_tracing

log = structlog.get_logger("hearth.runtime")

GRACEFUL_SHUTDOWN = timedelta(seconds=12)


@dataclass
class ServiceContext:
    """What a running service holds: built once here, handed to the service's own code."""

    name: str
    settings: HearthSettings
    bus: Bus
    temporal: TemporalClient
    codec: EnvelopePayloadCodec | None = None
    """The payload codec ``temporal`` encrypts with (the gateway's codec endpoint serves it)."""
    started_at: float = field(default_factory=time.monotonic)
    checks: dict[str, Callable[[], Awaitable[tuple[bool, str]]]] = field(default_factory=dict)
    """Extra health checks a service adds: name -> async () -> (ok, detail)."""


Hook = Callable[[ServiceContext, AsyncExitStack], Awaitable[None]]


async def service_health(ctx: ServiceContext, registry: CapabilityRegistry, worker: Worker | None) -> ServiceHealth:
    """The answer to ``hearth.svc.<name>.health``: ``degraded`` when a dependency is not right."""
    connected = ctx.bus.nc.is_connected
    details: dict[str, Any] = {"nats": "connected" if connected else "disconnected"}
    status = "ok" if connected else "degraded"
    if worker is None:
        details["temporal_worker"] = "none (no activities yet)"
    else:
        details["temporal_worker"] = "running" if worker.is_running else "stopped"
        details["task_queue"] = registry.task_queue
        if not worker.is_running:
            status = "degraded"
    details["capabilities"] = [c.name for c in registry.capabilities()]
    for name, check in ctx.checks.items():
        ok, detail = await check()
        details[name] = detail
        if not ok:
            status = "degraded"
    return ServiceHealth(
        service=ctx.name,
        status=status,
        version=registry.version,
        pid=os.getpid(),
        uptime_s=round(time.monotonic() - ctx.started_at, 1),
        details=details,
    )


def _start_metrics(name: str, settings: HearthSettings) -> MetricsServer | None:
    """The process's /metrics endpoint, when it is a stack process and the stack has a token."""
    token_file = settings.secret_path("metrics-token")
    if name not in SERVICES or not token_file.exists():
        log.warning("no metrics endpoint", service=name, reason=f"not a stack process or no {token_file}")
        return None
    port = settings.service_metrics_port(name)
    tls = server_context(settings) if settings.tls else None
    server = MetricsServer(settings.bind_host, port, settings.read_secret("metrics-token"), tls=tls).start()
    log.info("metrics endpoint", url=settings.service_metrics_url(name))
    return server


def _export_spans(name: str, bus: Bus, settings: HearthSettings, loop: asyncio.AbstractEventLoop) -> None:
    """Spans to the telemetry service over NATS, and to an OTLP collector when one is configured."""
    exporters: list[SpanExporter] = [NatsSpanExporter(bus.nc.publish, loop)]
    if settings.otlp_endpoint:
        exporters.append(otlp_exporter(settings.otlp_endpoint))
    setup_tracing(name, exporters=exporters)


async def _payload_codec(settings: HearthSettings, name: str) -> EnvelopePayloadCodec | None:
    """The service's own AppRole seals its workflow payloads (``shared.crypto.payload_codec``).

    OpenBao being away stops the start here, with the reason in the log, and supervisor retries
    with back-off.
    """
    try:
        return await payload_codec(settings, name)
    except Unavailable as exc:
        log.error("cannot start without OpenBao", service=name, error=exc.detail)
        raise SystemExit(1) from exc


async def serve(
    registry: CapabilityRegistry,
    *,
    on_start: Hook | None = None,
    settings: HearthSettings | None = None,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
) -> None:
    """Run a service until SIGTERM/SIGINT. ``on_start`` adds service-specific parts (e.g. HTTP).

    ``workflows`` and ``activities`` (beyond the registry's, e.g. local activities) join the
    service's Temporal worker; only the workflow worker has any.
    """
    name = registry.service
    # Every NATS connection of the process (bus, health probes) uses the service's own user.
    settings = (settings or get_settings()).model_copy(update={"nats_user": name})
    configure_logging(name, settings.log_level)
    set_metrics_enabled(settings.telemetry_enabled)
    if settings.telemetry_enabled:
        setup_tracing(name, version=registry.version, sampler=HearthSampler(settings.trace_inference_ratio))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        bus = await Bus.connect(settings, name=f"hearth-{name}")
        stack.push_async_callback(bus.close)
        if settings.telemetry_enabled:
            _export_spans(name, bus, settings, loop)
            metrics = _start_metrics(name, settings)
            if metrics is not None:
                stack.callback(metrics.stop)
        codec = await _payload_codec(settings, name)
        temporal = await connect_temporal(settings, codec)
        ctx = ServiceContext(name=name, settings=settings, bus=bus, temporal=temporal, codec=codec)
        worker: Worker | None = None
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        worker_activities = [*registry.activities(), *activities]
        if worker_activities or workflows:
            worker = Worker(
                temporal,
                task_queue=registry.task_queue,
                activities=worker_activities,
                workflows=list(workflows),
                # In-flight activities get this long to finish on SIGTERM before they are cancelled
                # (and retried elsewhere); below supervisor's stopwaitsecs (20 s) for services.
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            )
            running = worker
            worker_task = asyncio.create_task(running.run(), name=f"{name}-temporal-worker")
            waiters.append(worker_task)

            async def _stop_worker() -> None:
                await running.shutdown()
                await asyncio.gather(worker_task, return_exceptions=True)

            stack.push_async_callback(_stop_worker)

        async def health() -> ServiceHealth:
            return await service_health(ctx, registry, worker)

        registry.set_health(health)
        if on_start is not None:
            await on_start(ctx, stack)
        subscriptions = await registry.subscribe(bus.nc)
        await bus.nc.flush()

        async def _unsubscribe() -> None:
            for sub in subscriptions:
                await sub.drain()  # type: ignore[no-untyped-call]

        stack.push_async_callback(_unsubscribe)
        log.info("service started", service=name, task_queue=registry.task_queue, pid=os.getpid())
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not waiters[0] and t.exception() is not None]
        if failed:
            # Exit non-zero so supervisor restarts the process with back-off.
            log.error("temporal worker stopped", error=str(failed[0].exception()))
            raise SystemExit(1)
        log.info("service stopping", service=name)
    log.info("service stopped", service=name)


def run(
    registry: CapabilityRegistry,
    *,
    on_start: Hook | None = None,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
) -> None:
    """Entry point of ``python -m services.<name>`` (and ``python -m workflows``)."""
    asyncio.run(serve(registry, on_start=on_start, workflows=workflows, activities=activities))
