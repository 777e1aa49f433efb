"""``POST /v1/ocr``: an image upload in, the recognised lines out, through ``chinese_ocr_v3``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel

from services.gateway.inference.service import ModelService
from shared.errors import BadRequest, HearthError, TooLarge

OCR_MODEL = "chinese_ocr_v3"
MAX_IMAGE_BYTES = 32 * 1024 * 1024


class OcrLine(BaseModel):
    polygon: list[list[float]]
    text: str
    confidence: float


class OcrResult(BaseModel):
    model: str
    width: int | None = None
    height: int | None = None
    lines: list[OcrLine]
    timings_ms: dict[str, float] = {}


async def recognise(models: ModelService, image: bytes, params: dict[str, Any] | None = None) -> OcrResult:
    """OCR one encoded image (PNG/JPEG/TIFF)."""
    if not image:
        raise BadRequest("the upload is empty: send an image file in the `file` field")
    if len(image) > MAX_IMAGE_BYTES:
        raise TooLarge(f"the image is {len(image)} bytes; the limit is {MAX_IMAGE_BYTES}")
    inputs = {"IMAGE": np.frombuffer(image, dtype=np.uint8)}
    if params:
        inputs["PARAMS"] = np.array([json.dumps(params).encode()], dtype=np.object_)
    try:
        results = await models.infer_arrays(OCR_MODEL, inputs, ["RESULT"])
    except HearthError as err:
        if err.status < 500 and ("decode" in err.detail.lower() or "image" in err.detail.lower()):
            raise BadRequest(f"the file is not a readable image: {err.detail}", code="undecodable-image") from None
        raise
    raw = results["RESULT"].reshape(-1)[0]
    body = json.loads(raw if isinstance(raw, (bytes, str)) else bytes(raw))
    return OcrResult(
        model=OCR_MODEL, **{k: v for k, v in body.items() if k in ("width", "height", "lines", "timings_ms")}
    )
