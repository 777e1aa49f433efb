"""Composition root of the nlp service: ``nlp.analyze`` (contract entities, class, tags).

The capability runs as the Temporal activity ``nlp.analyze`` on ``hearth-nlp`` (the
``nlp_analysis`` workflow step) and on NATS as ``hearth.svc.nlp.analyze``. Entity extraction runs
in Triton (``legal_doc_analyzer``) through the gateway.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.nlp.analyze import Analyzer
from shared.blobstore import BlobStore
from shared.capabilities import CapabilityRegistry
from shared.runtime import ServiceContext, run


def create_registry(analyzer: Analyzer | None = None) -> CapabilityRegistry:
    registry = CapabilityRegistry(service="nlp")
    registry.register("nlp.analyze", (analyzer or Analyzer()).analyze, max_workers=4)
    return registry


def main() -> None:
    analyzer = Analyzer()

    async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
        analyzer.bind(ctx.bus, await BlobStore.create(ctx.bus.js, ctx.settings))

    run(create_registry(analyzer), on_start=on_start)
