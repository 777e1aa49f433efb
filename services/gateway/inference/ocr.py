"""``POST /v1/ocr``: an image upload in, the recognised lines out, through ``chinese_ocr_v3``.

A multi-page TIFF (a scanner's usual output) is split into its pages here, each page goes to the
model as a PNG, a few at a time, and the answer lists every page. Documents of many pages belong
in ``POST /v1/documents`` (a durable workflow); this route answers while the client waits.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError
from pydantic import BaseModel

from services.gateway.inference.service import ModelService
from shared.errors import BadRequest, HearthError, TooLarge

OCR_MODEL = "chinese_ocr_v3"
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_PAGES = 50
PAGE_CONCURRENCY = 4
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


class OcrLine(BaseModel):
    polygon: list[list[float]]
    text: str
    confidence: float


class OcrPage(BaseModel):
    number: int
    width: int | None = None
    height: int | None = None
    lines: list[OcrLine]
    timings_ms: dict[str, float] = {}


class OcrResult(OcrPage):
    """Every page in ``pages``; the top-level ``lines``, ``width``, ``height`` are the first page's."""

    model: str
    number: int = 1
    pages: list[OcrPage] = []


def split_pages(image: bytes, max_pages: int = MAX_PAGES) -> list[bytes]:
    """The pages of an upload: itself, or each page of a multi-page TIFF as a PNG."""
    if not image.startswith(TIFF_MAGIC):
        return [image]
    try:
        with Image.open(io.BytesIO(image)) as opened:
            count = getattr(opened, "n_frames", 1)
            if count == 1:
                return [image]
            if count > max_pages:
                raise TooLarge(
                    f"the TIFF has {count} pages; /v1/ocr reads at most {max_pages} "
                    "(send long documents to POST /v1/documents)",
                    code="too-many-pages",
                )
            pages = []
            for frame in ImageSequence.Iterator(opened):
                out = io.BytesIO()
                frame.convert("L" if frame.mode in ("1", "L", "I;16") else "RGB").save(out, format="PNG")
                pages.append(out.getvalue())
            return pages
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"a page of the TIFF is too large to decode: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadRequest(f"the file is not a readable image: {exc}", code="undecodable-image") from None


async def recognise(models: ModelService, image: bytes, params: dict[str, Any] | None = None) -> OcrResult:
    """OCR an encoded image (PNG/JPEG/TIFF; every page of a multi-page TIFF)."""
    if not image:
        raise BadRequest("the upload is empty: send an image file in the `file` field")
    if len(image) > MAX_IMAGE_BYTES:
        raise TooLarge(f"the image is {len(image)} bytes; the limit is {MAX_IMAGE_BYTES}")
    pages = await asyncio.to_thread(split_pages, image)
    limit = asyncio.Semaphore(PAGE_CONCURRENCY)

    async def page(number: int, data: bytes) -> OcrPage:
        async with limit:
            return await recognise_page(models, number, data, params)

    read = await asyncio.gather(*(page(number, data) for number, data in enumerate(pages, start=1)))
    first = read[0]
    return OcrResult(model=OCR_MODEL, **first.model_dump(exclude={"number"}), pages=list(read))


async def recognise_page(models: ModelService, number: int, image: bytes, params: dict[str, Any] | None) -> OcrPage:
    inputs = {"IMAGE": np.frombuffer(image, dtype=np.uint8)}
    if params:
        inputs["PARAMS"] = np.array([json.dumps(params).encode()], dtype=np.object_)
    try:
        results = await models.infer_arrays(OCR_MODEL, inputs, ["RESULT"])
    except HearthError as err:
        if err.status < 500 and ("decode" in err.detail.lower() or "image" in err.detail.lower()):
            where = f"page {number} of the file" if number > 1 else "the file"
            raise BadRequest(f"{where} is not a readable image: {err.detail}", code="undecodable-image") from None
        raise
    raw = results["RESULT"].reshape(-1)[0]
    body = json.loads(raw if isinstance(raw, (bytes, str)) else bytes(raw))
    return OcrPage(number=number, **{k: v for k, v in body.items() if k in ("width", "height", "lines", "timings_ms")})
