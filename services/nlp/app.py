"""Composition root of the nlp service: ``nlp.analyze`` (contract entities, class, tags).

The capability runs as the Temporal activity ``nlp.analyze`` on ``hearth-nlp`` (the
``nlp_analysis`` workflow step) and on NATS as ``hearth.svc.nlp.analyze``. Entity extraction runs
in Triton (``legal_doc_analyzer``) through the gateway; classes and tags come from rules, then
from what the tenant's corrections taught (``shared.classifier``).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from services.nlp.analyze import Analyzer
from shared import segment
from shared.blobstore import BlobStore
from shared.capabilities import CapabilityRegistry
from shared.classifier import ClassifierStore
from shared.clients import postgres_engine
from shared.crypto.columns import ColumnKeys
from shared.runtime import ServiceContext, run


def create_registry(analyzer: Analyzer | None = None) -> CapabilityRegistry:
    registry = CapabilityRegistry(service="nlp")
    registry.register("nlp.analyze", (analyzer or Analyzer()).analyze, max_workers=4)
    return registry


def main() -> None:
    analyzer = Analyzer()

    async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
        engine = postgres_engine(ctx.settings, pool_size=2)
        stack.push_async_callback(engine.dispose)
        await asyncio.to_thread(segment.ready)
        blobs = await BlobStore.create(ctx.bus.js, ctx.settings, service=ctx.name)
        # The learned terms are the tenant's blind-index hashes, made with the same keyring as the blobs.
        analyzer.bind(ctx.bus, blobs, ClassifierStore(engine, ColumnKeys(engine, blobs.keyring)))

    run(create_registry(analyzer), on_start=on_start)
