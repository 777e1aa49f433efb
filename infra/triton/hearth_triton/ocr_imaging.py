"""OCR image work: decoding, DBNet detection, crops, direction classification, recogniser inputs.

Detection pre/post-processing is RapidOCR's (``DetPreProcess``, ``DBPostProcess``,
``ClsPostProcess`` and its page resizing helpers), imported from ``rapidocr_onnxruntime`` so the
numbers match the reference pipeline; the ONNX sessions are ours, so placement, threads and
variants follow the Triton instance.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image
from rapidocr_onnxruntime.ch_ppocr_cls.utils import ClsPostProcess
from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess, DetPreProcess
from rapidocr_onnxruntime.utils.process_img import add_round_letterbox, increase_min_side, reduce_max_side

from .ocr_layout import REC_HEIGHT, InvalidRequest, OcrOptions, reading_order

# RapidOCR's defaults (rapidocr_onnxruntime/config.yaml).
MAX_SIDE_LEN = 2000
MIN_SIDE_LEN = 30
MIN_HEIGHT = 30
WIDTH_HEIGHT_RATIO = 8
DET_LIMIT_SIDE_LEN = 736
DET_THRESH = 0.3
DET_MAX_CANDIDATES = 1000
CLS_SHAPE = (3, 48, 192)
CLS_THRESH = 0.9
CLS_LABELS = ["0", "180"]
_JPEG_MAGIC = b"\xff\xd8"


def decode_image(data: np.ndarray, max_pixels: int) -> np.ndarray:
    """Encoded PNG/JPEG/TIFF/BMP/WebP bytes to an 8-bit BGR image; :class:`InvalidRequest` if not one."""
    raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    if raw.size == 0:
        raise InvalidRequest("IMAGE is empty: send the encoded image file's bytes (PNG, JPEG or TIFF)")
    head = raw[:2].tobytes()
    try:
        # The header alone gives the size: refuse decompression bombs before decoding them.
        with Image.open(io.BytesIO(raw.tobytes())) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        raise InvalidRequest(f"IMAGE is over the limit of {max_pixels} pixels") from None
    except (OSError, ValueError):
        width = height = 0  # not identifiable by Pillow: OpenCV decides below
    if width * height > max_pixels:
        raise InvalidRequest(f"IMAGE is {width}x{height} pixels, over the limit of {max_pixels} pixels")
    # JPEG has no alpha and may carry an EXIF orientation, which only IMREAD_COLOR applies.
    flags = cv2.IMREAD_COLOR if head == _JPEG_MAGIC else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(raw, flags)
    if image is None or image.size == 0:
        raise InvalidRequest(
            f"IMAGE ({raw.size} bytes, starting {head.hex()}) is not a decodable image: send PNG, JPEG or TIFF bytes"
        )
    return _to_bgr8(image)


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        # Transparent regions become white paper, not black.
        bgr = image[:, :, :3].astype(np.float32)
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (bgr * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


@dataclass
class PreparedPage:
    """The page as the detector sees it, and how to map its coordinates back to the original."""

    image: np.ndarray
    scale_x: float
    scale_y: float
    pad_top: int


def prepare_page(image: np.ndarray) -> PreparedPage:
    """RapidOCR's page preparation: bound the long side, raise the short side, letterbox strips."""
    scale_x = scale_y = 1.0
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE_LEN:
        image, ratio_h, ratio_w = reduce_max_side(image, MAX_SIDE_LEN)
        scale_x, scale_y = scale_x * ratio_w, scale_y * ratio_h
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE_LEN:
        image, ratio_h, ratio_w = increase_min_side(image, MIN_SIDE_LEN)
        scale_x, scale_y = scale_x * ratio_w, scale_y * ratio_h
    h, w = image.shape[:2]
    pad_top = 0
    if h <= MIN_HEIGHT or w / h > WIDTH_HEIGHT_RATIO:
        # A single wide line: pad above and below so DBNet sees text of a normal proportion.
        new_h = max(int(w / WIDTH_HEIGHT_RATIO), MIN_HEIGHT) * 2
        pad_top = int(abs(new_h - h) / 2)
        image = add_round_letterbox(image, (pad_top, pad_top, 0, 0))
    return PreparedPage(image, scale_x, scale_y, pad_top)


def to_original(boxes: np.ndarray, page: PreparedPage, width: int, height: int) -> np.ndarray:
    """Box corners in the prepared page back to the original image's pixel grid (clipped)."""
    out = boxes.astype(np.float32).copy()
    out[..., 1] -= page.pad_top
    out[..., 0] *= page.scale_x
    out[..., 1] *= page.scale_y
    out[..., 0] = np.clip(out[..., 0], 0, width)
    out[..., 1] = np.clip(out[..., 1], 0, height)
    return out


class Detector:
    """DBNet text detection (PP-OCRv4 det) with RapidOCR's pre- and post-processing."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._pre = DetPreProcess(DET_LIMIT_SIDE_LEN, "min", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])

    def __call__(self, image: np.ndarray, options: OcrOptions) -> list[np.ndarray]:
        """Quadrilaterals (4x2, clockwise from top-left) in reading order."""
        tensor = self._pre(image)
        if tensor is None:
            return []
        probabilities = self._session.run(None, {self._input: tensor})[0]
        post = DBPostProcess(
            thresh=DET_THRESH,
            box_thresh=options.box_thresh,
            max_candidates=DET_MAX_CANDIDATES,
            unclip_ratio=options.unclip_ratio,
            use_dilation=True,
            score_mode="fast",
        )
        h, w = image.shape[:2]
        boxes, _ = post(probabilities, (h, w))
        kept = []
        for box in boxes:
            quad = _clip(_order_clockwise(np.asarray(box, dtype=np.float32)), w, h)
            if int(np.linalg.norm(quad[0] - quad[1])) <= 3 or int(np.linalg.norm(quad[0] - quad[3])) <= 3:
                continue
            kept.append(quad)
        order = reading_order([(float(q[0][0]), float(q[0][1])) for q in kept])
        return [kept[i] for i in order]


def _order_clockwise(points: np.ndarray) -> np.ndarray:
    by_x = points[np.argsort(points[:, 0]), :]
    left, right = by_x[:2, :], by_x[2:, :]
    top_left, bottom_left = left[np.argsort(left[:, 1]), :]
    top_right, bottom_right = right[np.argsort(right[:, 1]), :]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def _clip(quad: np.ndarray, width: int, height: int) -> np.ndarray:
    quad[:, 0] = np.floor(np.clip(quad[:, 0], 0, width - 1))
    quad[:, 1] = np.floor(np.clip(quad[:, 1], 0, height - 1))
    return quad


def crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral's content warped upright; tall crops (vertical text) turned 90°."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    out = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if out.shape[0] / max(out.shape[1], 1) >= 1.5:
        out = np.rot90(out)
    return out


class DirectionClassifier:
    """0°/180° line classifier (PP-OCR mobile v2 cls): turns upside-down crops the right way up."""

    def __init__(self, session: Any, batch: int = 32) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._post = ClsPostProcess(CLS_LABELS)
        self._batch = batch

    def __call__(self, crops: list[np.ndarray]) -> list[int]:
        """Rotate flipped crops in place; returns each crop's angle (0 or 180)."""
        angles = [0] * len(crops)
        for start in range(0, len(crops), self._batch):
            chunk = range(start, min(start + self._batch, len(crops)))
            tensor = np.stack([_normalize(crops[i], CLS_SHAPE[1], CLS_SHAPE[2], CLS_SHAPE[2]) for i in chunk])
            results = self._post(self._session.run(None, {self._input: tensor})[0])
            for i, (label, score) in zip(chunk, results, strict=True):
                if label == "180" and score > CLS_THRESH:
                    crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
                    angles[i] = 180
        return angles


def _normalize(image: np.ndarray, height: int, width: int, padded_width: int) -> np.ndarray:
    """Resize to ``height`` x (aspect-kept width <= ``width``), scale to [-1, 1], zero-pad (CHW)."""
    h, w = image.shape[:2]
    resized_w = min(width, math.ceil(height * w / max(h, 1)))
    resized = cv2.resize(image, (max(resized_w, 1), height)).astype(np.float32)
    out = np.zeros((3, height, padded_width), dtype=np.float32)
    out[:, :, : resized.shape[1]] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def rec_tensor(crops: list[np.ndarray], widths: list[int], bucket: int) -> np.ndarray:
    """Recogniser input ``[n, 3, 48, bucket]`` for crops already sized to ``widths`` (<= bucket)."""
    return np.stack([_normalize(c, REC_HEIGHT, w, bucket) for c, w in zip(crops, widths, strict=True)])
