"""``ocr.extract``: a document's text, page by page, through ``chinese_ocr_v3`` in the gateway.

PDF pages with a usable text layer are read from it (exact, and fast); the others are rendered
at a DPI chosen for the detector, levelled by their projection profile (``deskew``) and OCR'd,
``concurrency`` pages at a time. A page read in the wrong orientation (most boxes taller than
wide, or most lines read upside down) is turned and read again, as is one whose recognised lines
still lean, and the better reading is kept. Boxes are given on the page as it was read (upright
and level; ``rotation`` and ``skew`` say how it was turned). A page that cannot be read is
reported in ``warnings`` and the rest of the document still comes back; a file that cannot be
read at all (corrupt, encrypted, empty, not a document) is a non-retryable ``InvalidInput``.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from PIL import Image
from temporalio import activity

from services.ocr.deskew import estimate_page_skew
from services.ocr.layout import (
    RawLine,
    document_markdown,
    estimate_skew,
    looks_sideways,
    page_text,
    reading_order,
    score,
    turn_lines,
    upside_down,
)
from services.ocr.pages import (
    PageImage,
    PdfReader,
    SkippedPage,
    TextLayerPage,
    encode_for_transport,
    fit_for_model,
    image_pages,
)
from services.ocr.sniff import claimed_kind, sniff
from shared.blobstore import DEFAULT_TENANT, BlobStore
from shared.bus import Bus
from shared.documents import (
    INLINE_TEXT_LIMIT,
    PAGE_BREAK,
    DocumentSource,
    ExtractedDocument,
    ExtractText,
    Page,
    TextExtracted,
)
from shared.errors import InvalidInput, Unavailable
from shared.inference import Tensor, infer
from shared.logging import get_logger

log = get_logger("ocr")

MIN_DESKEW_DEG: Final = 0.3
"""Pages leaning less than this are read as they are."""
SKEW_RETRY_DEG: Final = 1.0
"""Pages whose recognised lines still lean more than this are levelled and read again."""
TRANSPORT_HEADROOM: Final = 64 * 1024
OCR_TIMEOUT_S: Final = 120.0


class Extractor:
    """The OCR capability with its dependencies (bus, blob store); see the module docstring."""

    def __init__(self) -> None:
        self.bus: Bus | None = None
        self.blobs: BlobStore | None = None
        self._pdfium = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdfium")

    def bind(self, bus: Bus, blobs: BlobStore) -> None:
        self.bus, self.blobs = bus, blobs

    def _deps(self) -> tuple[Bus, BlobStore]:
        if self.bus is None or self.blobs is None:
            raise Unavailable("the OCR service is still starting")
        return self.bus, self.blobs

    async def extract(self, inp: ExtractText) -> TextExtracted:
        """The text of a PDF or image, page by page (text layer or OCR), in json, text or markdown."""
        bus, blobs = self._deps()
        started = time.perf_counter()
        source = inp.document or (
            DocumentSource.model_validate(inp.context.document) if inp.context and inp.context.document else None
        )
        if source is None:
            raise InvalidInput("no document to read: pass `document`, or run the step in a run whose input has one")
        document_warnings: list[str] = []
        job = _Job(bus, inp, max(64 * 1024, bus.nc.max_payload - TRANSPORT_HEADROOM))
        page_count, pages = await self._read(job, source, document_warnings)
        model_version = job.model_version
        pages.sort(key=lambda p: p.number)
        text = PAGE_BREAK.join(p.text for p in pages)
        markdown = document_markdown(pages) if inp.output_format == "markdown" else None
        for page in pages:
            document_warnings.extend(page.warnings)
        ocr_pages = [p for p in pages if p.source == "ocr" and p.confidence is not None]
        confidence = round(sum(p.confidence or 0.0 for p in ocr_pages) / len(ocr_pages), 4) if ocr_pages else None
        extracted = ExtractedDocument(
            pages=pages,
            text=text,
            markdown=markdown,
            model=inp.model if ocr_pages else None,
            model_version=model_version,
            warnings=document_warnings,
        )
        key = f"ocr/{inp.context.key}.json" if inp.context else None
        tenant = inp.context.tenant if inp.context else DEFAULT_TENANT
        result = await blobs.put(extracted.model_dump_json().encode(), "application/json", key=key, tenant=tenant)
        content = markdown if markdown is not None else text
        sources: dict[str, int] = {}
        for page in pages:
            sources[page.source] = sources.get(page.source, 0) + 1
        return TextExtracted(
            format=inp.output_format,
            result=result,
            content=content[:INLINE_TEXT_LIMIT],
            content_truncated=len(content) > INLINE_TEXT_LIMIT,
            page_count=page_count,
            pages_read=len(pages),
            sources=sources,
            chars=len(text),
            confidence=confidence,
            model=extracted.model,
            model_version=model_version,
            filename=source.filename,
            content_type=source.content_type,
            warnings=document_warnings[:50],
            timings_ms={"total": round((time.perf_counter() - started) * 1000, 1)},
        )

    async def _read(self, job: _Job, source: DocumentSource, notes: list[str]) -> tuple[int, list[Page]]:
        _, blobs = self._deps()
        inp = job.inp
        if source.blob is None:
            text = source.text or ""
            if not text.strip():
                raise InvalidInput("the document is empty")
            return 1, [Page(number=1, source="inline", width=0, height=0, text=text)]
        data = await blobs.get(source.blob)
        if not data:
            raise InvalidInput("the file is empty (0 bytes)")
        kind = sniff(data[:4096])
        claimed = claimed_kind(source.filename, source.content_type or source.blob.content_type)
        if kind is None:
            what = f"a {claimed.upper()} file" if claimed else "a PDF or an image"
            raise InvalidInput(
                f"the file is not {what}: its content is not a format Hearth reads (PDF, PNG, JPEG, TIFF)"
            )
        if claimed and claimed != kind:
            notes.append(
                f"the file says it is {claimed.upper()} but its content is {kind.upper()}; read as {kind.upper()}"
            )
        gate = asyncio.Semaphore(inp.concurrency)
        progress = {"done": 0}

        async def finish(page: Page) -> Page:
            progress["done"] += 1
            if activity.in_activity():
                activity.heartbeat({"pages_done": progress["done"]})
            return page

        if kind == "text":
            return 1, [Page(number=1, source="inline", width=0, height=0, text=data.decode("utf-8", errors="replace"))]
        if kind == "pdf":
            reader = await PdfReader.open(data, self._pdfium)
            try:
                count = reader.page_count
                if count == 0:
                    raise InvalidInput("the PDF has no pages")
                if count > inp.max_pages:
                    notes.append(f"the PDF has {count} pages; only the first {inp.max_pages} were read (max_pages)")

                async def pdf_page(index: int) -> Page | None:
                    async with gate:
                        item = await reader.page(index, inp.dpi)
                        return await finish(await job.page(item))

                results = await asyncio.gather(*(pdf_page(i) for i in range(min(count, inp.max_pages))))
            finally:
                await reader.close()
            return count, [p for p in results if p is not None]

        frames = await asyncio.to_thread(lambda: list(image_pages(data, inp.max_pages)))
        if not frames:
            raise InvalidInput("the image has no pages")

        async def image_page(item: PageImage | SkippedPage) -> Page | None:
            async with gate:
                return await finish(await job.page(item))

        results = await asyncio.gather(*(image_page(f) for f in frames))
        return len(frames), [p for p in results if p is not None]


@dataclass
class _Job:
    """One document being read: where OCR requests go, and what came back about the model."""

    bus: Bus
    inp: ExtractText
    limit: int
    """Largest encoded page the bus carries."""
    model_version: str | None = None

    async def page(self, item: TextLayerPage | PageImage | SkippedPage) -> Page:
        if isinstance(item, SkippedPage):
            return Page(number=item.number, source="ocr", width=0, height=0, text="", warnings=[item.reason])
        if isinstance(item, TextLayerPage):
            lines = reading_order(item.lines)
            return Page(
                number=item.number,
                source="text_layer",
                width=round(item.width, 1),
                height=round(item.height, 1),
                text=page_text(lines),
                lines=lines,
            )
        return await self._ocr_page(item)

    async def _ocr_page(self, item: PageImage) -> Page:
        """Level the page (projection profile), read it once, fix the orientation from the lines.

        A page read sideways or upside down has its lines turned geometrically: the recogniser
        reads every line upright (it turns tall crops, its classifier turns upside-down ones). Only
        lines that still lean after that cost a second reading. (A column-versus-row profile test
        for sideways pages was tried and dropped: left-aligned English pages fooled it.)
        """
        rotation = 0
        image, skew = await asyncio.to_thread(_level, item.image)
        lines = await self._recognise(image)
        turn = 0
        if looks_sideways(lines):
            # The recogniser turns tall crops counter-clockwise: text that was turned the other way
            # comes out upside down, and its direction classifier says so.
            turn = 270 if upside_down(lines) else 90
        elif upside_down(lines):
            turn = 180
        if turn:
            lines = turn_lines(lines, image.width, image.height, turn)
            image = image.rotate(turn, expand=True, fillcolor=_white(image))
            rotation = (rotation + turn) % 360
        residual = estimate_skew(lines)
        if abs(residual) >= SKEW_RETRY_DEG:  # the profile missed it (tables, sparse text): level by the lines
            straight = image.rotate(residual, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=_white(image))
            candidate = await self._recognise(straight)
            if score(candidate) >= score(lines) and not looks_sideways(candidate) and not upside_down(candidate):
                lines, image = candidate, straight
                skew += residual
                residual = estimate_skew(candidate)
        # Boxes are reported in the page's own units: the image's pixels, or PDF points.
        scale = item.scale or 1.0
        scaled = [
            RawLine(
                text=line.text,
                box=[[x / scale, y / scale] for x, y in line.box],
                confidence=line.confidence,
                angle=line.angle,
            )
            for line in lines
        ]
        ordered = reading_order(scaled, skew=residual)
        confidence = round(sum(line.confidence for line in ordered) / len(ordered), 4) if ordered else None
        warnings = list(item.warnings)
        if not ordered:
            warnings.append(f"page {item.number}: no text found")
        return Page(
            number=item.number,
            source="ocr",
            width=round(image.width / scale, 1),
            height=round(image.height / scale, 1),
            text=page_text(ordered),
            lines=ordered,
            rotation=rotation,
            skew=round(skew + residual, 2),
            confidence=confidence,
            warnings=warnings,
        )

    async def _recognise(self, image: Image.Image) -> list[RawLine]:
        payload = await asyncio.to_thread(encode_for_transport, image, self.limit)
        params = json.dumps({"text_score": self.inp.min_confidence})
        reply = await infer(
            self.bus,
            self.inp.model,
            [Tensor.raw("IMAGE", "UINT8", payload), Tensor.text("PARAMS", params)],
            ["RESULT"],
            timeout_s=OCR_TIMEOUT_S,
        )
        self.model_version = reply.model_version
        body = json.loads(reply.text("RESULT"))
        return [
            RawLine(
                text=str(line["text"]),
                box=[[float(x), float(y)] for x, y in line["polygon"]],
                confidence=float(line["confidence"]),
                angle=int(line.get("angle", 0)),
            )
            for line in body.get("lines", [])
        ]


def _level(image: Image.Image) -> tuple[Image.Image, float]:
    """The page turned so its text lines are level (by the projection profile), and the angle used."""
    angle = estimate_page_skew(image)
    if abs(angle) < MIN_DESKEW_DEG:
        return image, 0.0
    turned = image.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=_white(image))
    return fit_for_model(turned)[0], angle


def _white(image: Image.Image) -> int | tuple[int, int, int]:
    return 255 if image.mode == "L" else (255, 255, 255)
