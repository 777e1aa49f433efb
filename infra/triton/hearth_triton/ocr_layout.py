"""Pure OCR planning: request options, recogniser width buckets and batches, reading order.

Why buckets: Triton's dynamic batcher merges only requests whose tensors have the same shape
(short of ragged batching, which the python backend would hand over unpadded anyway). Line crops
are resized to height 48 and a width that follows their aspect ratio, then padded up to the next
bucket width, so crops of similar length from any image land in the same shape and the
recogniser's batcher can merge them. Padding is what PaddleOCR itself does inside a batch (to the
widest line of the batch, and to at least 320 px), so accuracy is unchanged; geometric buckets
keep the padding under 50% of a crop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

REC_HEIGHT = 48
DEFAULT_WIDTH_BUCKETS = (320, 480, 640, 960, 1280, 1920, 2560, 3200)


class InvalidRequest(ValueError):
    """The request itself is wrong (bad image, bad PARAMS): the client gets a 400 with this message."""


@dataclass(frozen=True)
class OcrOptions:
    """Per-request knobs, from the optional ``PARAMS`` JSON input."""

    rotate: bool = True  # run the direction classifier and turn upside-down lines
    text_score: float = 0.5  # drop lines the recogniser is less sure of
    box_thresh: float = 0.5  # DBNet: minimum mean probability inside a box
    unclip_ratio: float = 1.6  # DBNet: how far a box grows around its text

    def __post_init__(self) -> None:
        for name in ("text_score", "box_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"PARAMS.{name} must be between 0 and 1, not {value}")
        if not 1.0 <= self.unclip_ratio <= 4.0:
            raise InvalidRequest(f"PARAMS.unclip_ratio must be between 1 and 4, not {self.unclip_ratio}")


def parse_options(raw: bytes | str | None, defaults: OcrOptions | None = None) -> OcrOptions:
    """Options from ``PARAMS`` (a JSON object); absent or empty means the defaults."""
    base = defaults or OcrOptions()
    if raw is None or (isinstance(raw, bytes | str) and not raw.strip()):
        return base
    try:
        given = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"PARAMS is not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise InvalidRequest(f"PARAMS must be a JSON object, not {type(given).__name__}")
    known = [f.name for f in fields(OcrOptions)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRequest(f"PARAMS has unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    changes: dict[str, bool | float] = {}
    for key, value in given.items():
        if key == "rotate":
            if not isinstance(value, bool):
                raise InvalidRequest(f"PARAMS.rotate must be true or false, not {value!r}")
            changes[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"PARAMS.{key} must be a number, not {value!r}")
            changes[key] = float(value)
    return replace(base, **changes)


def rec_width(height: int, width: int, max_width: int, target_height: int = REC_HEIGHT) -> int:
    """Width of a ``height`` x ``width`` crop resized to ``target_height`` (aspect kept, capped)."""
    if height <= 0 or width <= 0:
        return 1
    return max(1, min(max_width, math.ceil(target_height * width / height)))


def bucket_for(width: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``width`` (the largest when none does: the crop is squeezed)."""
    for bucket in buckets:
        if width <= bucket:
            return bucket
    return buckets[-1]


def plan_batches(widths: Sequence[int], buckets: Sequence[int], max_batch: int) -> list[tuple[int, list[int]]]:
    """Group crop indices by bucket, in chunks of at most ``max_batch``: one recogniser request each."""
    groups: dict[int, list[int]] = {}
    for index, width in enumerate(widths):
        groups.setdefault(bucket_for(width, buckets), []).append(index)
    plan = []
    for bucket in sorted(groups):
        members = groups[bucket]
        plan.extend((bucket, members[start : start + max_batch]) for start in range(0, len(members), max_batch))
    return plan


def validate_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    if not buckets or any(b < REC_HEIGHT for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ValueError(f"recogniser width buckets must be increasing and >= {REC_HEIGHT}, not {list(buckets)}")
    return tuple(buckets)


def reading_order(top_lefts: Sequence[tuple[float, float]], same_line_px: float = 10.0) -> list[int]:
    """Indices of boxes (by top-left corner) top to bottom, left to right.

    Boxes whose tops differ by less than ``same_line_px`` count as one line and read left to right
    (PaddleOCR's ``sorted_boxes`` rule).
    """
    order = sorted(range(len(top_lefts)), key=lambda i: (top_lefts[i][1], top_lefts[i][0]))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = top_lefts[order[j]], top_lefts[order[j + 1]]
            if abs(b[1] - a[1]) < same_line_px and b[0] < a[0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order
