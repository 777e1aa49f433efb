"""Durations as people write them in rules and query strings: ``30s``, ``5m``, ``1.5h``, ``1d``."""

from __future__ import annotations

import math
import re
from typing import Final

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
ACCEPTED: Final = "write a number and one of the units s, m, h, d (e.g. 30s, 5m, 1h, 1d)"


def parse_duration(text: str, *, bare_seconds: bool = False) -> float:
    """Seconds from ``"30s"``, ``"5m"``, ``"1.5h"`` or ``"1d"`` (``"0s"`` is zero).

    ``bare_seconds`` also accepts a plain number as seconds (query strings); otherwise a number
    without a unit, another unit or anything else raises ``ValueError`` saying what is accepted.
    """
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} is not a string: {ACCEPTED}")
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: {ACCEPTED}")
    number, unit = match.groups()
    if not unit and not bare_seconds:
        raise ValueError(f"duration {text!r} has no unit: {ACCEPTED}")
    if unit and unit not in _UNIT_S:
        raise ValueError(f"duration {text!r} has unknown unit {unit!r}: {ACCEPTED}")
    seconds = float(number) * _UNIT_S[unit or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"duration {text!r} is too large")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the largest whole unit: ``300.0`` -> ``"5m"``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
