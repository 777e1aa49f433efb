"""``nlp.analyze``: entities (``legal_doc_analyzer`` in Triton), class and tags of a document.

The text is the step's ``text``, an OCR result blob (``source``), or the previous workflow step's
output (an ``ocr.extract`` result: its ``result`` blob, or its inline ``content``). Entity offsets
come back from the model against the whole text (pages joined by form feeds) and are turned into
page + offsets within that page, so a reader can highlight the value on the page it came from.
"""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError

from services.nlp.classify import classify, tags_for
from shared import segment
from shared.blobstore import BlobRef, BlobStore
from shared.bus import Bus
from shared.classifier import ClassifierStore
from shared.documents import (
    CONTRACT_FIELDS,
    PAGE_BREAK,
    AnalyzeText,
    Entity,
    ExtractedDocument,
    Span,
    TextAnalyzed,
)
from shared.errors import InvalidInput, PermanentFailure, Unavailable
from shared.inference import Tensor, infer

ANALYZE_TIMEOUT_S: Final = 120.0


class Analyzer:
    """The NLP capability with its dependencies (bus, blob store)."""

    def __init__(self) -> None:
        self.bus: Bus | None = None
        self.blobs: BlobStore | None = None
        self.learned: ClassifierStore | None = None

    def bind(self, bus: Bus, blobs: BlobStore, learned: ClassifierStore | None = None) -> None:
        self.bus, self.blobs, self.learned = bus, blobs, learned

    def _deps(self) -> tuple[Bus, BlobStore]:
        if self.bus is None or self.blobs is None:
            raise Unavailable("the NLP service is still starting")
        return self.bus, self.blobs

    async def analyze(self, inp: AnalyzeText) -> TextAnalyzed:
        """Contract entities with spans and confidences, the document class and tags."""
        bus, _ = self._deps()
        pages = await self._pages(inp)
        text = PAGE_BREAK.join(pages)
        fields = inp.entities_to_extract or list(CONTRACT_FIELDS)
        params: dict[str, Any] = {"entities_to_extract": fields}
        if inp.language:
            params["language"] = inp.language
        reply = await infer(
            bus,
            inp.model,
            [Tensor.text("TEXT", text), Tensor.text("PARAMS", json.dumps(params))],
            ["RESULT"],
            timeout_s=ANALYZE_TIMEOUT_S,
        )
        try:
            body = json.loads(reply.text("RESULT"))
        except ValueError:
            raise PermanentFailure(f"{inp.model} returned a result that is not JSON") from None
        starts = page_starts(pages)
        entities: dict[str, list[Entity]] = {name: [] for name in fields}
        for raw in body.get("entities", []):
            try:
                entity = Entity(
                    field=raw["field"],
                    value=raw["value"],
                    normalized=raw.get("normalized") or {},
                    confidence=float(raw.get("confidence", 0.0)),
                    span=span_of(starts, int(raw["start"]), int(raw["end"])) if "start" in raw else None,
                )
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                raise PermanentFailure(f"{inp.model} returned a malformed entity: {exc}") from None
            entities.setdefault(entity.field, []).append(entity)
        contract_type = next(
            (e.normalized.get("type") for e in entities.get("contract_type", []) if e.normalized.get("type")), None
        )
        classification, tags = classify(pages), tags_for(pages, contract_type)
        if self.learned is not None:
            tenant = inp.context.tenant if inp.context else "default"
            model = await self.learned.model(tenant)
            terms = await asyncio.to_thread(segment.terms, text)
            learned = model.classify(terms)
            # The tenant's corrections win where the rules have nothing, or are less sure than they are.
            if learned is not None and (
                classification.label == "other" or learned.confidence > classification.confidence
            ):
                classification = learned
            tags = list(dict.fromkeys([*tags, *model.tag(terms)]))
        return TextAnalyzed(
            language=str(body.get("language", "unknown")),
            entities=entities,
            classification=classification,
            tags=tags,
            model=inp.model,
            model_version=reply.model_version,
            warnings=[str(w) for w in body.get("warnings", [])],
        )

    async def _pages(self, inp: AnalyzeText) -> list[str]:
        if inp.text is not None:
            return inp.text.split(PAGE_BREAK)
        if inp.source is not None:
            return await self._pages_of_blob(inp.source)
        previous = inp.context.previous if inp.context else None
        if isinstance(previous, dict):
            if previous.get("result"):
                try:
                    ref = BlobRef.model_validate(previous["result"])
                except ValidationError:
                    raise InvalidInput("the previous step's `result` is not a blob reference") from None
                return await self._pages_of_blob(ref)
            for key in ("content", "text"):
                if isinstance(previous.get(key), str):
                    return str(previous[key]).split(PAGE_BREAK)
        if isinstance(previous, str):
            return previous.split(PAGE_BREAK)
        raise InvalidInput(
            "no text to analyse: pass `text` or `source`, or run the step after a step that produces text "
            "(ocr_extraction)"
        )

    async def _pages_of_blob(self, ref: BlobRef) -> list[str]:
        _, blobs = self._deps()
        data = await blobs.get(ref)
        try:
            document = ExtractedDocument.model_validate_json(data)
        except ValidationError:
            return data.decode("utf-8", errors="replace").split(PAGE_BREAK)  # a plain text blob
        return [page.text for page in document.pages]


def page_starts(pages: Sequence[str]) -> list[int]:
    """Offset of each page's first character in the pages joined by form feeds."""
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_BREAK)
    return starts


def span_of(starts: Sequence[int], start: int, end: int) -> Span:
    """Document offsets → page (1-based) and offsets within that page."""
    index = max(0, bisect_right(starts, start) - 1)
    base = starts[index]
    return Span(page=index + 1, start=start - base, end=end - base)
