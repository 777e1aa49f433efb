"""Character error rate (CER) for scoring OCR output against the text a test image was rendered from."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def normalize(text: str) -> str:
    """Fold text to what OCR is scored on: NFKC, without whitespace.

    NFKC maps full-width forms to their ASCII twins (U+FF1A → ``:``, U+FF21 → ``A``), which the
    recogniser emits interchangeably. Whitespace is layout, not content: the Chinese dictionary
    model drops or inserts spaces between Latin words, and line breaks depend on detection.
    """
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace())


def edit_distance(reference: str, hypothesis: str) -> int:
    """Levenshtein distance in characters (insertions, deletions, substitutions cost 1)."""
    if len(reference) < len(hypothesis):
        reference, hypothesis = hypothesis, reference
    previous = list(range(len(hypothesis) + 1))
    for i, ref_ch in enumerate(reference, start=1):
        current = [i]
        for j, hyp_ch in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_ch != hyp_ch)))
        previous = current
    return previous[-1]


def cer(reference: str | Iterable[str], hypothesis: str | Iterable[str]) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` after :func:`normalize`.

    Lists of lines are joined in order, so a line read in the wrong order counts as errors. An
    empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
    """
    ref = normalize(reference if isinstance(reference, str) else "".join(reference))
    hyp = normalize(hypothesis if isinstance(hypothesis, str) else "".join(hypothesis))
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)
