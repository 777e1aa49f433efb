"""Composition root of the ocr service: ``ocr.extract`` (documents → text, page by page).

The capability runs as the Temporal activity ``ocr.extract`` on ``hearth-ocr`` (the
``ocr_extraction`` workflow step) and on NATS as ``hearth.svc.ocr.extract``. OCR itself runs in
Triton (``chinese_ocr_v3``) through the gateway; this service reads files, pages and layout.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.ocr.extract import Extractor
from shared.blobstore import BlobStore
from shared.capabilities import CapabilityRegistry
from shared.runtime import ServiceContext, run

MAX_DOCUMENTS = 4
"""Documents read at the same time by one process (each reads its own pages concurrently)."""


def create_registry(extractor: Extractor | None = None) -> CapabilityRegistry:
    registry = CapabilityRegistry(service="ocr")
    registry.register("ocr.extract", (extractor or Extractor()).extract, max_workers=MAX_DOCUMENTS)
    return registry


def main() -> None:
    extractor = Extractor()

    async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
        extractor.bind(ctx.bus, await BlobStore.create(ctx.bus.js, ctx.settings, service=ctx.name))

    run(create_registry(extractor), on_start=on_start)
