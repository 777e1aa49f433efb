"""Composition root of the governance service: the data lifecycle (tiering, retention, key rotation).

The service runs the three lifecycle workflows and their activities on ``hearth-governance`` and
keeps their Temporal schedules in line with ``infra/governance/retention.yaml`` (checked at start:
a bad file stops the service with every problem named). It answers health over NATS like every
service. Legal holds and the lifecycle report are the gateway's routes, over the same tables.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.governance.activities import LifecycleActivities
from services.governance.config import load_config
from services.governance.keys import SERVICE_ROLE, TenantKeys
from services.governance.schedules import ensure_schedules
from services.governance.store import LifecycleStore
from services.governance.workflows import WORKFLOWS
from shared.blobstore import BlobStore
from shared.capabilities import CapabilityRegistry
from shared.clients import postgres_engine
from shared.logging import get_logger
from shared.runtime import ServiceContext, run

log = get_logger("governance")


def create_registry() -> CapabilityRegistry:
    return CapabilityRegistry(service="governance")


def main() -> None:
    lifecycle = LifecycleActivities()

    async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
        settings = lifecycle.settings
        try:
            config = load_config(settings.retention_file, settings.extra_files())
        except ValueError as exc:
            log.error("lifecycle policy refused; fix it and restart", error=str(exc))
            raise SystemExit(1) from exc
        engine = postgres_engine(ctx.settings, pool_size=3)
        stack.push_async_callback(engine.dispose)
        blobs = await BlobStore.create(ctx.bus.js, ctx.settings, service=ctx.name)
        keys = None
        if ctx.settings.secret_path(f"approle-{SERVICE_ROLE}.json").exists():
            keys = TenantKeys.for_service(ctx.settings)
        lifecycle.bind(LifecycleStore(engine), blobs, keys)
        await ensure_schedules(ctx.temporal, config, batch=settings.batch)

    run(create_registry(), on_start=on_start, workflows=WORKFLOWS, activities=lifecycle.activities())
