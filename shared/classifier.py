"""Document classes and tags learned from a tenant's own corrections, as Paperless-ngx learns.

Every correction (``PATCH /v1/documents/{id}`` with the right class or tags) adds the document's
terms to the tenant's model; a document corrected again moves from its old labels to the new
ones. The model is multinomial naive Bayes over term presence (each term counts once per
document, so a long contract does not outvote ten short ones), Laplace smoothing, one model
for the class and one yes/no model per tag. Only documents a person labelled train it.

The NLP service asks ``predict`` when it classifies; the learned answer replaces the rules
once the tenant has labelled at least two classes and it is confident
(``MIN_CONFIDENCE``); tags are added when a tag's own model says yes.

With column encryption (a ``ColumnKeys`` with a keyring) the stored terms are the tenant's blind
index hashes (``shared.crypto.columns.TermHasher``), not the words: ``doc_label_model`` holds no
document text. Callers pass and get plain words; the hashing happens here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.crypto.columns import ColumnKeys, TermHasher
from shared.documents import Classification

MIN_CONFIDENCE: Final = 0.6
MIN_TAG_DOCS: Final = 2
_CLASS: Final = "class"
_TAG: Final = "tag"


@dataclass
class LabelCounts:
    docs: int = 0
    terms: dict[str, int] = field(default_factory=dict)


@dataclass
class NaiveBayes:
    """Term-presence multinomial naive Bayes over labels."""

    labels: dict[str, LabelCounts] = field(default_factory=dict)

    @property
    def total_docs(self) -> int:
        return sum(c.docs for c in self.labels.values())

    def log_scores(self, terms: Iterable[str]) -> dict[str, float]:
        present = set(terms)
        vocabulary = {t for c in self.labels.values() for t in c.terms}
        known = present & vocabulary
        total = max(1, self.total_docs)
        scores: dict[str, float] = {}
        for label, counts in self.labels.items():
            if counts.docs <= 0:
                continue
            denominator = sum(counts.terms.values()) + len(vocabulary) + 1
            score = math.log(counts.docs / total)
            for term in known:
                score += math.log((counts.terms.get(term, 0) + 1) / denominator)
            scores[label] = score
        return scores

    def posterior(self, terms: Iterable[str]) -> dict[str, float]:
        scores = self.log_scores(terms)
        if not scores:
            return {}
        top = max(scores.values())
        weights = {label: math.exp(s - top) for label, s in scores.items()}
        total = sum(weights.values())
        return {label: w / total for label, w in weights.items()}


@dataclass
class TenantModel:
    classes: NaiveBayes
    tags: dict[str, NaiveBayes]
    """Per tag: labels ``yes`` / ``no`` over the corrected documents."""
    hasher: TermHasher = field(default_factory=lambda: TermHasher(None))
    """How the stored terms were hashed: the words given to ``classify`` and ``tag`` are hashed so too."""

    def _terms(self, terms: Sequence[str]) -> list[str]:
        return [self.hasher.term(t) for t in terms] if self.hasher.blind else list(terms)

    def classify(self, terms: Sequence[str]) -> Classification | None:
        if sum(1 for c in self.classes.labels.values() if c.docs > 0) < 2:
            return None
        posterior = self.classes.posterior(self._terms(terms))
        if not posterior:
            return None
        label, confidence = max(posterior.items(), key=lambda item: item[1])
        if confidence < MIN_CONFIDENCE:
            return None
        return Classification(label=label, confidence=round(confidence, 3), method="learned")

    def tag(self, terms: Sequence[str]) -> list[str]:
        terms = self._terms(terms)
        out = []
        for tag, model in self.tags.items():
            yes = model.labels.get("yes")
            if yes is None or yes.docs < MIN_TAG_DOCS or "no" not in model.labels:
                continue
            if model.posterior(terms).get("yes", 0.0) > 0.5:
                out.append(tag)
        return sorted(out)


def _counts(rows: Iterable[Mapping[Any, Any]], hasher: TermHasher) -> TenantModel:
    classes = NaiveBayes()
    tags: dict[str, NaiveBayes] = {}
    for row in rows:
        counts = LabelCounts(docs=int(row["docs"]), terms=dict(row["terms"] or {}))
        if row["kind"] == _CLASS:
            classes.labels[row["label"]] = counts
        else:
            tag, _, side = str(row["label"]).rpartition(":")
            tags.setdefault(tag, NaiveBayes()).labels[side] = counts
    return TenantModel(classes=classes, tags=tags, hasher=hasher)


class ClassifierStore:
    """The learned models in PostgreSQL (``doc_label_model``), written by corrections, read by the NLP service."""

    def __init__(self, engine: AsyncEngine, keys: ColumnKeys | None = None) -> None:
        self._engine = engine
        self._keys = keys
        self._cache: dict[str, tuple[tuple[int, Any], TenantModel]] = {}

    async def model(self, tenant: str) -> TenantModel:
        """The tenant's model; re-read only when a correction changed it (one cheap query otherwise)."""
        hasher = await self._hasher(tenant)
        async with self._engine.connect() as conn:
            stamp = (
                await conn.execute(
                    text("SELECT count(*), max(updated_at) FROM doc_label_model WHERE tenant = :t"), {"t": tenant}
                )
            ).one()
            version = (int(stamp[0]), stamp[1])
            cached = self._cache.get(tenant)
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = (
                await conn.execute(
                    text("SELECT kind, label, docs, terms FROM doc_label_model WHERE tenant = :t"), {"t": tenant}
                )
            ).mappings()
            model = _counts(list(rows), hasher)
        self._cache[tenant] = (version, model)
        return model

    async def learn(
        self,
        tenant: str,
        terms: Sequence[str],
        *,
        old_class: str | None,
        new_class: str | None,
        old_tags: Sequence[str] | None,
        new_tags: Sequence[str] | None,
        all_tags: Sequence[str],
    ) -> None:
        """Move a document's terms from the labels a person gave it before to the ones given now.

        ``old_*`` are ``None`` when the document had not been corrected before; ``all_tags`` are
        the tenant's known tags, so a document without a tag counts as a ``no`` for it.
        """
        hasher = await self._hasher(tenant)
        present = sorted({hasher.term(t) for t in terms})
        changes: list[tuple[str, str, int]] = []
        if new_class is not None and new_class != old_class:
            if old_class is not None:
                changes.append((_CLASS, old_class, -1))
            changes.append((_CLASS, new_class, +1))
        if new_tags is not None:
            before = set(old_tags) if old_tags is not None else None
            after = set(new_tags)
            for tag in sorted(set(all_tags) | after | (before or set())):
                was = None if before is None else ("yes" if tag in before else "no")
                now = "yes" if tag in after else "no"
                if was == now:
                    continue
                if was is not None:
                    changes.append((_TAG, f"{tag}:{was}", -1))
                changes.append((_TAG, f"{tag}:{now}", +1))
        if not changes:
            return
        async with self._engine.begin() as conn:
            for kind, label, sign in changes:
                row = (
                    await conn.execute(
                        text(
                            "SELECT docs, terms FROM doc_label_model WHERE tenant = :t AND kind = :k AND label = :l "
                            "FOR UPDATE"
                        ),
                        {"t": tenant, "k": kind, "l": label},
                    )
                ).one_or_none()
                docs, counts = (int(row[0]), dict(row[1] or {})) if row else (0, {})
                for term in present:
                    value = counts.get(term, 0) + sign
                    if value > 0:
                        counts[term] = value
                    else:
                        counts.pop(term, None)
                await conn.execute(
                    text(
                        "INSERT INTO doc_label_model (tenant, kind, label, docs, terms) VALUES (:t, :k, :l, :d, "
                        "CAST(:terms AS jsonb)) ON CONFLICT (tenant, kind, label) DO UPDATE SET docs = EXCLUDED.docs, "
                        "terms = EXCLUDED.terms, updated_at = now()"
                    ),
                    {"t": tenant, "k": kind, "l": label, "d": max(0, docs + sign), "terms": json.dumps(counts)},
                )
        self._cache.pop(tenant, None)

    async def _hasher(self, tenant: str) -> TermHasher:
        return await self._keys.hasher(tenant) if self._keys is not None else TermHasher(None)

    async def known_tags(self, tenant: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT DISTINCT regexp_replace(label, ':(yes|no)$', '') FROM doc_label_model "
                    "WHERE tenant = :t AND kind = 'tag'"
                ),
                {"t": tenant},
            )
            return sorted(r[0] for r in rows)
