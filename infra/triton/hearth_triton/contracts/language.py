"""Which language a contract is written in, by script counts: zh, en, mixed, or unknown."""

from __future__ import annotations

import re

from .normalize_text import HAN

_HAN = re.compile(f"[{HAN}]+")
_LATIN = re.compile(r"[A-Za-z]+")
# Letters of scripts this analyser has no patterns for: Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai,
# Hangul, kana, and accented Latin (é, ü count as Latin of another language only in bulk).
_OTHER = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\u0900-\u097f\u0e00-\u0e7f"
    "\u3040-\u30ff\uac00-\ud7af]+"
)
_WORD = re.compile(r"[A-Za-z]+")
_ENGLISH = frozenset(
    {
        "the", "and", "of", "to", "in", "for", "by", "this", "that", "shall", "be", "is", "are", "with", "or",
        "any", "as", "on", "party", "parties", "agreement", "contract", "date", "from", "such", "which", "its",
        "all", "not", "may", "will", "each", "under",
    }
)  # fmt: skip
_HAN_WEIGHT = 2.5  # a Chinese character carries about as much as two to three Latin letters


def detect_language(text: str) -> tuple[str, dict[str, float]]:
    """The language and the share of each script (han, latin, other) in the weighted letter count."""
    sample = text if len(text) <= 60_000 else text[:30_000] + text[-30_000:]
    size = len(sample)
    han = (size - len(_HAN.sub("", sample))) * _HAN_WEIGHT  # counting by deletion: C speed, no match objects
    latin = size - len(_LATIN.sub("", sample))
    other = size - len(_OTHER.sub("", sample))
    total = han + latin + other
    if total == 0:
        return "unknown", {"han": 0.0, "latin": 0.0, "other": 0.0}
    shares = {"han": han / total, "latin": latin / total, "other": other / total}
    if shares["other"] >= 0.3:
        language = "unknown"
    elif shares["han"] >= 0.8:
        language = "zh"
    elif shares["latin"] >= 0.8:
        tokens = _WORD.findall(sample, 0, 8000)
        english = sum(1 for t in tokens if t.lower() in _ENGLISH)
        # Latin script but hardly an English function word: French, German, Spanish, ...
        language = "en" if len(tokens) < 20 or english / len(tokens) >= 0.08 else "unknown"
    else:
        language = "mixed"
    return language, shares
