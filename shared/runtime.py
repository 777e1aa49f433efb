"""The process skeleton every Hearth service runs on.

``run_service`` connects to NATS (FastStream broker) and Temporal, exposes the service's
capability registry on both transports (request/reply in the service's queue group, activities
on its task queue), answers ``hearth.svc.<name>.health``, and shuts down cleanly on SIGTERM so
supervisor restarts never lose acknowledged work.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream.nats import NatsBroker
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from shared.bus import Bus
from shared.capabilities import CapabilityRegistry, ServiceHealth, service_broker
from shared.logging import configure_logging
from shared.settings import HearthSettings, get_settings
from shared.tracing import setup_tracing

VERSION = "0.1.0"

log = structlog.get_logger("hearth.runtime")


@dataclass
class ServiceContext:
    """What a running service holds: built once here, handed to the service's own code."""

    name: str
    settings: HearthSettings
    broker: NatsBroker
    bus: Bus
    temporal: TemporalClient
    started_at: float = field(default_factory=time.time)
    checks: dict[str, Callable[[], Awaitable[tuple[bool, str]]]] = field(default_factory=dict)


Hook = Callable[[ServiceContext, AsyncExitStack], Awaitable[None]]


async def _health(ctx: ServiceContext, worker: Worker | None) -> ServiceHealth:
    details: dict[str, Any] = {"nats": "connected" if ctx.broker.connection.is_connected else "disconnected"}
    status = "ok" if details["nats"] == "connected" else "degraded"
    if worker is None:
        details["temporal_worker"] = "none (no activities yet)"
    else:
        details["temporal_worker"] = "running" if worker.is_running else "stopped"
        if not worker.is_running:
            status = "degraded"
    for name, check in ctx.checks.items():
        ok, detail = await check()
        details[name] = detail
        if not ok:
            status = "degraded"
    return ServiceHealth(
        service=ctx.name,
        status=status,
        version=VERSION,
        pid=os.getpid(),
        uptime_s=round(time.time() - ctx.started_at, 1),
        details=details,
    )


async def serve(registry: CapabilityRegistry, *, on_start: Hook | None = None, settings: HearthSettings | None = None) -> None:
    """Run a service until SIGTERM/SIGINT. ``on_start`` adds service-specific parts (e.g. HTTP)."""
    settings = settings or get_settings()
    name = registry.service
    configure_logging(name, settings.log_level)
    setup_tracing(name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    broker = service_broker(settings, name=f"hearth-{name}")
    worker: Worker | None = None
    async with AsyncExitStack() as stack:
        temporal = await TemporalClient.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        ctx_holder: dict[str, ServiceContext] = {}

        async def health() -> ServiceHealth:
            return await _health(ctx_holder["ctx"], worker)

        registry.set_health(health)
        registry.nats_subscribers(broker)
        await broker.start()
        stack.push_async_callback(broker.stop)
        bus = Bus.from_client(broker.connection, settings=settings)
        ctx = ServiceContext(name=name, settings=settings, broker=broker, bus=bus, temporal=temporal)
        ctx_holder["ctx"] = ctx
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        activities = registry.activities()
        if activities:
            worker = Worker(temporal, task_queue=registry.task_queue, activities=activities)
            running = worker
            worker_task = asyncio.create_task(running.run(), name=f"{name}-temporal-worker")
            waiters.append(worker_task)

            async def _stop_worker() -> None:
                await running.shutdown()
                await asyncio.gather(worker_task, return_exceptions=True)

            stack.push_async_callback(_stop_worker)
        if on_start is not None:
            await on_start(ctx, stack)
        log.info("service started", service=name, task_queue=registry.task_queue, pid=os.getpid())
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not waiters[0] and t.exception() is not None]
        if failed:
            # Exit non-zero so supervisor restarts the process with back-off.
            log.error("temporal worker stopped", error=str(failed[0].exception()))
            raise SystemExit(1)
        log.info("service stopping", service=name)
    log.info("service stopped", service=name)


def run(registry: CapabilityRegistry, *, on_start: Hook | None = None) -> None:
    """Entry point of ``python -m services.<name>``."""
    asyncio.run(serve(registry, on_start=on_start))
