"""Scores for the document pipeline against the contract corpus (``tests/data/contracts.py``).

* :func:`entity_scores`: precision, recall and F1 of extracted contract fields, per field and
  overall (``"micro"``). Values are compared in normalised form, so ``Acme Industrial Co., Ltd.``
  matches ``ACME Industrial Co.,Ltd.`` and ``100000`` matches ``100000.00``.
* :func:`classification_accuracy`: the share of documents given their true class.
* :func:`recall_at_k`: for search, the share of each question's relevant documents found in the
  top *k*, averaged over questions.
* :func:`format_table`: rows of numbers as an aligned plain-text table, for bench output.

Equality rules (the corpus README of sorts): ``contract_type`` by ``type``; ``valid_period`` by
``start`` and ``end``; ``parties`` as a set of (role, name) pairs, each pair counted on its own,
names after NFKC, whitespace removal and case folding; ``amount`` by Decimal value and currency;
``contract_number`` after NFKC, whitespace removal and case folding (hyphens and slashes kept);
``signing_date`` by ``date``. Dates must be ISO (``YYYY-MM-DD``); a value that does not parse is
compared as a plain string, so it never matches a well-formed truth by accident.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

FIELDS = ("contract_type", "valid_period", "parties", "amount", "contract_number", "signing_date")
MICRO = "micro"


def fold(text: object) -> str:
    """NFKC, no whitespace, case-folded: how names and numbers are compared."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", str(text)) if not ch.isspace()).casefold()


def _date(value: object) -> Hashable:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return ("unparsed", str(value).strip())


def _decimal(value: object) -> Hashable:
    try:
        return Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        return ("unparsed", str(value).strip())


def entity_keys(field: str, normalized: Any) -> list[Hashable]:  # noqa: PLR0911 - one rule per field
    """The comparison keys of one normalised value (a list for ``parties``, else one key).

    ``parties`` may be given as one ``{"role", "name"}`` or a list of them. Extra keys are ignored.
    """
    if field == "parties":
        items = normalized if isinstance(normalized, list) else [normalized]
        return [(fold(p.get("role", "")), fold(p.get("name", ""))) for p in items if isinstance(p, Mapping)]
    if not isinstance(normalized, Mapping):
        return [("malformed", repr(normalized))]
    if field == "contract_type":
        return [fold(normalized.get("type", ""))]
    if field == "valid_period":
        return [(_date(normalized.get("start")), _date(normalized.get("end")))]
    if field == "amount":
        return [(_decimal(normalized.get("amount")), str(normalized.get("currency", "")).strip().upper())]
    if field == "contract_number":
        return [fold(normalized.get("number", ""))]
    if field == "signing_date":
        return [_date(normalized.get("date"))]
    return [repr(sorted(normalized.items()))]


def truth_entities(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A manifest document's ``fields`` as a list of entities ``{"field", "normalized"}``."""
    return [{"field": name, "normalized": value} for name, value in fields.items()]


def _counter(entities: Iterable[Mapping[str, Any]]) -> dict[str, Counter[Hashable]]:
    out: dict[str, Counter[Hashable]] = {}
    for entity in entities:
        name = str(entity.get("field", ""))
        out.setdefault(name, Counter()).update(entity_keys(name, entity.get("normalized")))
    return out


def _ratios(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    # Nothing predicted is not a wrong prediction (precision 1.0); nothing to find is found
    # (recall 1.0). F1 is 0.0 only when one of them is 0.
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def entity_scores(
    predicted: Mapping[str, Sequence[Mapping[str, Any]]],
    truth: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]],
    fields: Sequence[str] = FIELDS,
) -> dict[str, dict[str, float | int]]:
    """Per-field ``{"tp", "fp", "fn", "precision", "recall", "f1"}``, plus ``"micro"`` over all.

    ``predicted`` maps a document id to its entities (``{"field", "normalized", ...}``; other keys
    such as ``value``, ``label``, ``confidence`` or ``spans`` are ignored). ``truth`` maps a
    document id to a manifest ``fields`` dict or to a list of entities. Matching is per document
    and per field, as multisets: a right value is a true positive, a wrong one is a false
    positive and a false negative, a duplicate is a false positive. Documents only in
    ``predicted`` count all their entities as false positives; documents only in ``truth``, as
    false negatives. Fields outside ``fields`` are ignored.
    """
    counts = {name: [0, 0, 0] for name in fields}
    for doc_id in sorted(set(predicted) | set(truth)):
        raw = truth.get(doc_id, {})
        gold = _counter(truth_entities(raw) if isinstance(raw, Mapping) else raw)
        guess = _counter(predicted.get(doc_id, []))
        for name in fields:
            want, got = gold.get(name, Counter()), guess.get(name, Counter())
            hit = sum((want & got).values())
            counts[name][0] += hit
            counts[name][1] += sum(got.values()) - hit
            counts[name][2] += sum(want.values()) - hit
    scores = {name: _ratios(*c) for name, c in counts.items()}
    scores[MICRO] = _ratios(*(sum(c[i] for c in counts.values()) for i in range(3)))
    return scores


def classification_accuracy(pred: Mapping[str, str], truth: Mapping[str, str]) -> float:
    """Share of ``truth`` documents whose predicted class equals the true one (missing is wrong)."""
    if not truth:
        return 1.0
    return sum(1 for doc_id, cls in truth.items() if pred.get(doc_id) == cls) / len(truth)


def recall_at_k(
    ranked_ids_per_question: Mapping[Any, Sequence[str]] | Sequence[Sequence[str]],
    relevant_ids_per_question: Mapping[Any, Iterable[str]] | Sequence[Iterable[str]],
    k: int = 5,
) -> float:
    """Mean over questions of |relevant ∩ top-k ranked| / |relevant|.

    Give both as mappings keyed by question (a question missing from the ranking found nothing)
    or as equally long sequences in question order. Questions without relevant documents are
    skipped; with none left the result is 1.0.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if isinstance(relevant_ids_per_question, Mapping):
        ranked_map = ranked_ids_per_question if isinstance(ranked_ids_per_question, Mapping) else None
        if ranked_map is None:
            raise TypeError("give the rankings as a mapping when the relevant documents are one")
        pairs = [(ranked_map.get(q, ()), rel) for q, rel in relevant_ids_per_question.items()]
    else:
        if isinstance(ranked_ids_per_question, Mapping):
            raise TypeError("give the rankings as a sequence when the relevant documents are one")
        if len(ranked_ids_per_question) != len(relevant_ids_per_question):
            raise ValueError("one ranking per question is needed")
        pairs = list(zip(ranked_ids_per_question, relevant_ids_per_question, strict=True))
    recalls = []
    for ranked, relevant in pairs:
        wanted = set([relevant] if isinstance(relevant, str) else relevant)
        if wanted:
            recalls.append(len(wanted & set(list(ranked)[:k])) / len(wanted))
    return sum(recalls) / len(recalls) if recalls else 1.0


def format_table(
    rows: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    title: str = "",
    digits: int = 3,
) -> str:
    """``rows`` (name → {column: value}) as an aligned text table; floats get ``digits`` decimals.

    ``format_table(entity_scores(...))`` prints one line per field with tp/fp/fn/P/R/F1.
    """
    if columns is None:
        columns = list(dict.fromkeys(c for row in rows.values() for c in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return "" if value is None else str(value)

    head = [title or "", *columns]
    body = [[name, *(cell(row.get(c)) for c in columns)] for name, row in rows.items()]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = (v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule, *(line(r) for r in body)])
