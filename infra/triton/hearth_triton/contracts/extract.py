"""``analyze``: fold the OCR text, find every requested field, map spans back to the original text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .amounts import find_money, pick_total
from .dates import DateHit, find_dates
from .doctype import not_a_contract
from .fields import resolve_fields, resolve_language
from .identifiers import find_contract_number
from .kinds import find_contract_kind
from .language import detect_language
from .normalize_text import Folded, fold
from .parties import find_parties
from .periods import find_valid_period
from .signing import find_signing_date

REPAIR_PENALTY = 0.95  # an entity whose span needed an OCR guess (O→0, 目→日)


class _Context:
    """One analysis: the folded text, the dates (found once, shared by three fields), the output lists."""

    def __init__(self, original: str, folded: Folded) -> None:
        self.original = original
        self.folded = folded
        self.text = folded.text
        self.entities: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        dates, invalid = find_dates(self.text)
        self.dates: list[DateHit] = dates
        self.invalid_dates = invalid
        self._signing_done = False
        self._signing: Any = None

    @property
    def signing(self) -> Any:
        if not self._signing_done:
            self._signing = find_signing_date(self.text, self.dates)
            self._signing_done = True
        return self._signing

    def add(self, field: str, start: int, end: int, normalized: dict[str, str], confidence: float) -> None:
        o_start, o_end = self.folded.span(start, end)
        if self.folded.repaired(start, end):
            confidence *= REPAIR_PENALTY
        self.entities.append(
            {
                "field": field,
                "value": self.original[o_start:o_end],
                "normalized": normalized,
                "start": o_start,
                "end": o_end,
                "confidence": round(max(0.01, min(1.0, confidence)), 3),
            }
        )

    def where(self, start: int, end: int) -> str:
        o_start, o_end = self.folded.span(start, end)
        return f"{self.original[o_start:o_end]!r} at offset {o_start}"


def _contract_type(ctx: _Context) -> None:
    kind = find_contract_kind(ctx.text)
    if kind:
        ctx.add("contract_type", kind.start, kind.end, {"type": kind.slug, "label": kind.label}, kind.confidence)


def _valid_period(ctx: _Context) -> None:
    signing = ctx.signing
    period = find_valid_period(ctx.text, ctx.dates, signing.date if signing else None)
    if period is None:
        return
    if period.value is None:
        ctx.warnings.append(f"valid_period: invalid date in {ctx.where(period.start, period.end)}; not reported")
        return
    confidence = period.confidence
    if period.last is None and signing is not None and period.first is signing.date:
        confidence = min(confidence, signing.confidence - 0.3)
    ctx.add("valid_period", period.start, period.end, {"start": period.value[0], "end": period.value[1]}, confidence)


def _parties(ctx: _Context) -> None:
    for party in find_parties(ctx.text, ctx.folded.gaps):
        ctx.add("parties", party.start, party.end, {"role": party.role, "name": party.name}, party.confidence)


def _amount(ctx: _Context) -> None:
    total = pick_total(ctx.text, find_money(ctx.text))
    if total is None:
        return
    if total.warning:
        ctx.warnings.append(f"amount: {total.warning}")
    normalized = {"amount": total.money.text_value, "currency": total.money.currency}
    ctx.add("amount", total.start, total.end, normalized, total.confidence)


def _contract_number(ctx: _Context) -> None:
    code = find_contract_number(ctx.text)
    if code:
        ctx.add("contract_number", code.start, code.end, {"number": code.number}, code.confidence)


def _signing_date(ctx: _Context) -> None:
    signing = ctx.signing
    if signing is None:
        return
    hit = signing.date
    if hit.value is None:
        ctx.warnings.append(f"signing_date: invalid date {ctx.where(hit.start, hit.end)}; not reported")
        return
    ctx.add("signing_date", hit.start, hit.end, {"date": hit.value.isoformat()}, signing.confidence)


_EXTRACTORS: dict[str, Callable[[_Context], None]] = {
    "contract_type": _contract_type,
    "valid_period": _valid_period,
    "parties": _parties,
    "amount": _amount,
    "contract_number": _contract_number,
    "signing_date": _signing_date,
}


def analyze(text: str, fields: Sequence[str] | None = None, language: str | None = None) -> dict[str, Any]:
    """Contract entities of ``text`` (OCR output: lines split by ``\\n``, pages by ``\\f``).

    ``fields``: names from :data:`~.fields.SUPPORTED_FIELDS` (None or empty: all); an unknown name raises
    :class:`~.fields.UnknownField`. ``language``: ``zh``/``en``/``mixed`` states the language (None or
    ``auto`` detects it); patterns of both languages always run. Returns ``{"language", "entities",
    "warnings"}``; every entity's ``start``/``end`` index the original ``text`` (``text[start:end] ==
    value``) and ``normalized`` holds the field's canonical form.
    """
    wanted = resolve_fields(fields)
    stated = resolve_language(language)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        return {"language": stated or "unknown", "entities": [], "warnings": ["empty text: nothing to analyse"]}
    folded = fold(text)
    detected, shares = detect_language(folded.text)
    ctx = _Context(text, folded)
    if detected == "unknown" and stated is None:
        if shares["other"] or shares["latin"]:
            ctx.warnings.append(
                "language not recognised (supported: Chinese, English); entities found by language-neutral "
                "patterns only may be incomplete"
            )
        else:
            ctx.warnings.append("no letters in the text: language unknown")
    refusal = not_a_contract(folded.text, find_contract_kind(folded.text))
    if refusal:
        ctx.warnings.append(refusal)
        return {"language": stated or detected, "entities": [], "warnings": ctx.warnings}
    for field in wanted:
        _EXTRACTORS[field](ctx)
    for start, end in ctx.invalid_dates[:5]:  # impossible dates (2024年2月30日) are never guessed at
        where = ctx.where(start, end)
        if not any(where in w for w in ctx.warnings):
            ctx.warnings.append(f"invalid date {where} ignored")
    found = {e["field"] for e in ctx.entities}
    ctx.warnings.extend(f"{field}: not found" for field in wanted if field not in found)
    return {"language": stated or detected, "entities": ctx.entities, "warnings": ctx.warnings}
