"""Hybrid search and extractive Q&A over a tenant's documents.

Indexing (``SearchIndex.index``, after a document is processed): pages are cut into chunks
(``chunks.chunk_pages``), each stored with its jieba terms (``tsvector``) and its embedding
(``use_multilingual_v3`` in Triton, through the gateway's own inference plane; pgvector HNSW).
Without the embedding model a document is still indexed for full-text search and says so.

Search ranks chunks twice, by full text (``ts_rank_cd``) and by embedding (cosine), merges the two
lists by reciprocal rank fusion (k = 60, as Elasticsearch and OpenSearch do) and keeps each
document's best chunk. Filters (class, tag, source system, entity values, validity dates,
submission dates) apply in both lists. Every query is scoped to the caller's tenant and to the
sensitivities its clearance allows (``levels``, from the enforcer), in SQL.

With column encryption (``cipher.py``) a chunk's text is sealed and its ``tsvector`` is blind: its
lexemes are the tenant's keyed hashes of the terms (``shared.crypto.columns.TermHasher``), and a
query's terms are hashed the same way (for each tenant, when an admin searches them all); the
entity filter matches hashed ``field:key=value`` terms and ``valid_on`` plain date ranges. Only the
chunks that are returned (or answer a question) are decrypted, for snippets and sentences.
Embeddings stay plaintext: the HNSW index needs them (README "Encryption at rest").

Q&A retrieves the best chunks the same way. A question asking for a contract fact (an amount,
an expiry, a signing date, a number, the parties: ``question_field``) is answered with that
entity as extracted from the best document, cited by its span; any other question with the
sentence of the best chunks closest to it (embedding cosine plus term overlap), citing document,
page and the span in that page. When a text-generation model is configured (``hearth models
add-generator``; ``mode`` auto, the default, or generative), the answer is generated from the
numbered passages of the best chunks instead and cites the passages it refers to (``generate.py``);
without one, or when it fails, the answer is extractive and says why. Either way every citation
is a chunk of a document of the caller's tenant.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.documents import chunks, generate
from services.gateway.documents.cipher import PROCESSED, DocumentCipher, chunk_column
from shared.bus import Bus
from shared.crypto.columns import TermHasher
from shared.errors import BadRequest, HearthError
from shared.generators import DEFAULT_GENERATOR
from shared.identity.authz import Sensitivity
from shared.inference import Tensor, infer
from shared.logging import get_logger

log = get_logger("gateway.search")

EMBEDDING_MODEL: Final = "use_multilingual_v3"
RRF_K: Final = 60
CANDIDATES: Final = 50
EMBED_BATCH: Final = 32


class SearchFilters(BaseModel):
    doc_class: str | None = None
    tags: list[str] = Field(default_factory=list)
    source_system: str | None = None
    entities: dict[str, str] = Field(default_factory=dict, description="Field -> normalised value, e.g. type=purchase.")
    valid_on: date | None = Field(default=None, description="Contracts whose valid_period covers this day.")
    since: datetime | None = None
    until: datetime | None = None
    sensitivity: list[Sensitivity] = Field(
        default_factory=list, description="Only documents of these sensitivities (always within your clearance)."
    )


def scoped(filters: SearchFilters, levels: Sequence[str]) -> SearchFilters:
    """``filters`` with ``sensitivity`` narrowed to the levels the caller is allowed (``levels``): deny by default."""
    wanted = set(filters.sensitivity)
    allowed = [level for level in levels if not wanted or level in wanted]
    return filters.model_copy(update={"sensitivity": allowed})


class SearchHit(BaseModel):
    document_id: str
    filename: str | None
    source_system: str
    external_id: str | None
    doc_class: str | None
    tags: list[str]
    score: float
    page: int
    start: int
    end: int
    snippet: str = Field(description="The best chunk around the matches, <mark>ed, HTML-escaped.")
    matched_by: list[str] = Field(description="text, vector, or both.")


class SearchResults(BaseModel):
    query: str
    total: int = Field(description="Documents matching (up to the candidates considered).")
    offset: int
    limit: int
    hits: list[SearchHit]
    vector_search: bool = Field(description="False when the embedding model was not available: full text only.")


AskMode = Literal["auto", "extractive", "generative"]


class Citation(BaseModel):
    document_id: str
    filename: str | None
    page: int
    start: int
    end: int
    text: str
    ref: int | None = Field(
        default=None, description="Generative answers: the passage number the answer cites this as, [ref]."
    )


class GeneratorProvenance(BaseModel):
    """Which model wrote a generative answer, from which weights, and what it cost."""

    model: str
    version: str | None
    weights: dict[str, Any] | None = Field(default=None, description="The weights' file name and SHA-256.")
    passages: int = Field(description="Passages the prompt held (all of the caller's tenant).")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = Field(default=None, description="stop, length (max_tokens) or time.")
    ms: float | None = None


class Answer(BaseModel):
    question: str
    answer: str | None = Field(description="The text that answers it; null when nothing relevant was found.")
    mode: str = Field(description="extractive, or generative (written by a text-generation model).")
    source: str = Field(
        default="sentence",
        description="entity: an extracted fact of the best document; sentence: its best sentence; generated.",
    )
    field: str | None = Field(default=None, description="The entity the question asks for, when it asks for one.")
    normalized: dict[str, Any] | None = Field(default=None, description="That entity's normalised value.")
    confidence: float = Field(
        description="Extractive: how well the answer matched. Generative: how well the cited passages matched "
        "the question (retrieval), not a judgement of the generated text."
    )
    citations: list[Citation]
    generator: GeneratorProvenance | None = None
    note: str | None = Field(
        default=None, description="Why the answer is extractive when a generative one was possible or asked for."
    )


@dataclass(frozen=True)
class AskOptions:
    """How questions are answered (``HEARTH_GATEWAY_ASK_*``); a request may override mode and generator."""

    mode: AskMode = "auto"
    generator: str = DEFAULT_GENERATOR
    context_chars: int = 6000
    max_tokens: int = 256
    timeout_s: float = 180.0


_INTENTS: Final = (
    ("amount", re.compile(r"金额|价款|总价|总额|多少钱|how much|amount|price|value|consideration", re.I)),
    (
        "valid_period",
        re.compile(r"到期|有效期|期限|截止|何时结束|expire|expiry|valid until|term|end date|ends?\b", re.I),
    ),
    ("signing_date", re.compile(r"签订|签署|签约|signed|signing|date of signature|dated", re.I)),
    ("contract_number", re.compile(r"编号|合同号|contract (?:no|number)|agreement (?:no|number)|reference", re.I)),
    ("contract_type", re.compile(r"什么(?:类型|合同)|哪类|what (?:kind|type) of", re.I)),
    (
        "parties",
        re.compile(
            r"甲方|乙方|当事人|双方是|名称|who (?:is|are)|which (?:company|party)|lessee|lessor|buyer|seller", re.I
        ),
    ),
)


def question_field(question: str) -> str | None:
    """The contract field a question asks for (the first intent that matches), if any."""
    for name, pattern in _INTENTS:
        if pattern.search(question):
            return name
    return None


_ENTITY_KEYS: Final = {"contract_type": "type", "contract_number": "number", "signing_date": "date", "parties": "name"}


def _entity_filter(entities: dict[str, str]) -> str | None:
    """A jsonb containment value for ``processed_docs.entities``: any entity of the field with that value."""
    if not entities:
        return None
    wanted: dict[str, list[dict[str, Any]]] = {}
    for name, value in entities.items():
        if name not in _ENTITY_KEYS:
            raise BadRequest(f"entity filter on {name!r}: filter on one of {', '.join(sorted(_ENTITY_KEYS))}")
        wanted[name] = [{"normalized": {_ENTITY_KEYS[name]: value}}]
    return json.dumps(wanted, ensure_ascii=False)


def _entity_terms(entities: dict[str, str], hashers: Sequence[TermHasher]) -> str | None:
    """Per hasher (tenant), the blind-index terms all of which a document must have: a JSON list of lists."""
    if not entities:
        return None
    return json.dumps([[h.entity(name, _ENTITY_KEYS[name], v) for name, v in entities.items()] for h in hashers])


# Entity filters: rows sealed since 0011 by their hashed terms (one list per tenant hashing them),
# plaintext rows from before by their entities.
_FILTERS = (
    "AND (CAST(:class AS text) IS NULL OR p.doc_class = :class) "
    "AND (CAST(:tags AS text[]) IS NULL OR p.tags @> CAST(:tags AS text[])) "
    "AND (CAST(:source AS text) IS NULL OR r.source_system = :source) "
    "AND (CAST(:entities AS jsonb) IS NULL OR (p.sealed IS NULL AND p.entities @> CAST(:entities AS jsonb)) "
    "OR EXISTS (SELECT 1 FROM jsonb_array_elements(CAST(:eterms AS jsonb)) w "
    "WHERE p.entity_terms @> ARRAY(SELECT jsonb_array_elements_text(w)))) "
    "AND (CAST(:valid_on AS date) IS NULL OR EXISTS (SELECT 1 FROM unnest(p.valid_periods) v "
    "WHERE v @> CAST(:valid_on AS date))) "
    "AND (CAST(:since AS timestamptz) IS NULL OR r.created_at >= CAST(:since AS timestamptz)) "
    "AND (CAST(:until AS timestamptz) IS NULL OR r.created_at < CAST(:until AS timestamptz)) "
)


# Constant text; every value is a bound parameter.
_CHUNK_QUERY = (
    "SELECT c.id, c.doc_id, c.chunk_no, c.page, c.start_offset, c.end_offset, c.sealed, r.data_key, "  # noqa: S608
    "c.text FROM doc_chunks c "
    "JOIN raw_docs r ON r.id = c.doc_id LEFT JOIN processed_docs p ON p.doc_id = c.doc_id "
    "WHERE (CAST(:tenant AS text) IS NULL OR c.tenant = :tenant) "
    "AND r.sensitivity = ANY(CAST(:levels AS text[])) " + _FILTERS
)


class SearchIndex:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        *,
        embedding_model: str = EMBEDDING_MODEL,
        generator: generate.TextGenerator | None = None,
        ask_options: AskOptions | None = None,
        cipher: DocumentCipher | None = None,
    ) -> None:
        self._engine = engine
        self._cipher = cipher or DocumentCipher(engine, None)
        self._bus = bus
        self.embedding_model = embedding_model
        self._generator = generator
        self.ask_options = ask_options or AskOptions()

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Embeddings of ``texts``; ``None`` when the embedding model cannot answer now."""
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(texts), EMBED_BATCH):
                batch = [t[:2000] or " " for t in texts[start : start + EMBED_BATCH]]
                tensor = Tensor.text("TEXT", *batch)
                tensor = Tensor(tensor.name, tensor.datatype, [len(batch), 1], binary=tensor.binary)
                reply = await infer(self._bus, self.embedding_model, [tensor], ["EMBEDDING"], timeout_s=60)
                flat = reply.outputs["EMBEDDING"]
                dim = len(flat) // len(batch)
                vectors.extend(flat[i * dim : (i + 1) * dim] for i in range(len(batch)))
        except HearthError as exc:
            log.warning("embeddings unavailable; full-text only", model=self.embedding_model, reason=exc.detail)
            return None
        return vectors

    async def index(self, doc_id: str, tenant: str, pages: Sequence[str]) -> dict[str, Any]:
        """(Re)index a document's pages; what was done, for the document's provenance."""
        found = list(chunks.chunk_pages(pages))
        key = await self._cipher.key_for(doc_id, tenant)
        hasher = await self._cipher.hasher(tenant)
        if hasher.blind:
            segmented = await asyncio.to_thread(lambda: [chunks.blind_tsvector(c.text, hasher) for c in found])
            terms_sql = "CAST(:terms AS tsvector)"
        else:
            segmented = await asyncio.to_thread(lambda: [chunks.index_text(c.text) for c in found])
            terms_sql = "to_tsvector('simple', :terms)"
        vectors = await self.embed([c.text for c in found]) if found else []
        rows = [
            {
                "doc_id": doc_id,
                "tenant": tenant,
                "chunk_no": i,
                "page": c.page,
                "start": c.start,
                "end": c.end,
                "text": c.text if key is None else "",
                "sealed": self._cipher.seal_text(key, doc_id, chunk_column(i), c.text) if key is not None else None,
                "terms": terms,
                "embedding": _vector(vectors[i]) if vectors else None,
                "model": self.embedding_model if vectors else None,
            }
            for i, (c, terms) in enumerate(zip(found, segmented, strict=True))
        ]
        async with self._engine.begin() as conn:
            await conn.execute(text("DELETE FROM doc_chunks WHERE doc_id = :id"), {"id": doc_id})
            if rows:
                await conn.execute(
                    text(
                        "INSERT INTO doc_chunks (doc_id, tenant, chunk_no, page, start_offset, end_offset, text, "  # noqa: S608 - fixed SQL
                        "sealed, terms, embedding, embedding_model) VALUES (:doc_id, :tenant, :chunk_no, :page, "
                        f":start, :end, :text, :sealed, {terms_sql}, CAST(:embedding AS vector), :model)"
                    ),
                    rows,
                )
        return {"chunks": len(rows), "embedding_model": self.embedding_model if vectors else None}

    async def _ranked(
        self, query: str, filters: SearchFilters, tenant: str | None, vector: list[float] | None, limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Chunks ranked by text and by vector; ``filters.sensitivity`` is the exact set allowed (scoped)."""
        words = await asyncio.to_thread(chunks.query_terms, query)
        hashers = await self._cipher.hashers(tenant)
        blind = " | ".join(chunks.tsquery([h.term(w) for w in words]) for h in hashers if h.blind and words)
        params: dict[str, Any] = {
            "tenant": tenant,
            "levels": list(filters.sensitivity),
            "class": filters.doc_class,
            "tags": filters.tags or None,
            "source": filters.source_system,
            "entities": _entity_filter(filters.entities),
            "eterms": _entity_terms(filters.entities, hashers),
            "valid_on": filters.valid_on,
            "since": filters.since,
            "until": filters.until,
            "limit": limit,
        }
        base = _CHUNK_QUERY
        lexical: list[dict[str, Any]] = []
        semantic: list[dict[str, Any]] = []
        async with self._engine.connect() as conn:
            if words:
                # Blind lexemes for sealed chunks, plain ones for chunks indexed before encryption.
                tsq = "(to_tsquery('simple', :q) || CAST(:hq AS tsquery))" if blind else "to_tsquery('simple', :q)"
                rows = await conn.execute(
                    text(base + f"AND c.terms @@ {tsq} ORDER BY ts_rank_cd(c.terms, {tsq}) DESC, c.id LIMIT :limit"),
                    {**params, "q": chunks.tsquery(words), **({"hq": blind} if blind else {})},
                )
                lexical = [dict(r) for r in rows.mappings()]
            if vector is not None:
                await conn.execute(text("SET LOCAL hnsw.ef_search = 100"))
                rows = await conn.execute(
                    text(
                        base.replace("c.text FROM", "c.text, c.embedding <=> CAST(:v AS vector) AS distance FROM")
                        + "AND c.embedding IS NOT NULL ORDER BY c.embedding <=> CAST(:v AS vector) LIMIT :limit"
                    ),
                    {**params, "v": _vector(vector)},
                )
                semantic = [dict(r) for r in rows.mappings()]
        for row in lexical + semantic:
            row["words"] = words
        return lexical, semantic

    async def search(
        self,
        query: str,
        filters: SearchFilters,
        *,
        tenant: str | None,
        levels: Sequence[str] = (),
        limit: int = 10,
        offset: int = 0,
    ) -> SearchResults:
        """Documents of ``tenant`` (None: any) whose sensitivity is one of ``levels`` (the caller's allowed)."""
        if not query.strip():
            raise BadRequest("`q` is empty: say what to look for")
        vectors = await self.embed([query])
        vector = vectors[0] if vectors else None
        lexical, semantic = await self._ranked(query, scoped(filters, levels), tenant, vector, CANDIDATES)
        fused = _fuse(lexical, semantic)
        best: dict[str, dict[str, Any]] = {}
        for row in fused:
            best.setdefault(row["doc_id"], row)
        ranked = sorted(best.values(), key=lambda r: -r["score"])
        page = ranked[offset : offset + limit]
        await self._cipher.open_chunks(page)
        meta = await self._documents([r["doc_id"] for r in page])
        hits = [
            SearchHit(
                document_id=r["doc_id"],
                filename=meta[r["doc_id"]]["filename"],
                source_system=meta[r["doc_id"]]["source_system"],
                external_id=meta[r["doc_id"]]["external_id"],
                doc_class=meta[r["doc_id"]]["doc_class"],
                tags=meta[r["doc_id"]]["tags"] or [],
                score=round(r["score"], 6),
                page=r["page"],
                start=r["start_offset"],
                end=r["end_offset"],
                snippet=chunks.highlight(r["text"], r["words"]),
                matched_by=r["matched_by"],
            )
            for r in page
            if r["doc_id"] in meta
        ]
        return SearchResults(
            query=query, total=len(ranked), offset=offset, limit=limit, hits=hits, vector_search=vector is not None
        )

    async def _documents(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT r.id, r.filename, r.source_system, r.external_id, p.doc_class, p.tags FROM raw_docs r "
                    "LEFT JOIN processed_docs p ON p.doc_id = r.id WHERE r.id = ANY(:ids)"
                ),
                {"ids": list(ids)},
            )
            return {r["id"]: dict(r) for r in rows.mappings()}

    async def ask(
        self,
        question: str,
        filters: SearchFilters,
        *,
        tenant: str | None,
        levels: Sequence[str] = (),
        top_k: int = 5,
        mode: AskMode | None = None,
        generator: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> Answer:
        """Answer from the caller's documents (``tenant``; None: an admin, every tenant; ``levels``: allowed).

        ``mode`` auto generates when the generator is configured; generative asks for it (and falls
        back, with a note, like auto does when it fails); extractive never generates.
        """
        if not question.strip():
            raise BadRequest("the question is empty")
        options = self.ask_options
        mode = mode or options.mode
        name = generator or options.generator
        if generator is not None and (self._generator is None or not self._generator.configured(generator)):
            raise BadRequest(
                f"no text-generation model {generator!r} is configured (add one with `hearth models add-generator`)",
                code="unknown-generator",
            )
        vectors = await self.embed([question])
        qvec = vectors[0] if vectors else None
        lexical, semantic = await self._ranked(question, scoped(filters, levels), tenant, qvec, CANDIDATES)
        top = _fuse(lexical, semantic)[:top_k]
        if not top:
            return Answer(question=question, answer=None, mode="extractive", confidence=0.0, citations=[])
        await self._cipher.open_chunks(top)
        note = None
        if mode != "extractive":
            if self._generator is not None and self._generator.configured(name):
                generated, note = await self._generated(
                    self._generator, question, top, name=name, max_tokens=max_tokens, temperature=temperature
                )
                if generated is not None:
                    return generated
            elif mode == "generative":
                note = "no text-generation model is configured (`hearth models add-generator`): extractive answer"
        answer = await self._extractive(question, top, qvec)
        answer.note = note
        return answer

    async def _generated(
        self,
        generator: generate.TextGenerator,
        question: str,
        top: list[dict[str, Any]],
        *,
        name: str,
        max_tokens: int | None,
        temperature: float,
    ) -> tuple[Answer | None, str | None]:
        """A generated answer from the passages of ``top``; (None, why) when the generator fails."""
        options = self.ask_options
        meta = await self._documents(list(dict.fromkeys(r["doc_id"] for r in top)))
        given = generate.passages(top, {k: v["filename"] for k, v in meta.items()}, options.context_chars)
        system, prompt = generate.build_prompt(question, given)
        try:
            out = await generator.generate(
                name,
                prompt,
                system=system,
                max_tokens=max_tokens or options.max_tokens,
                temperature=temperature,
                timeout_s=options.timeout_s,
            )
        except HearthError as exc:
            log.warning("generator failed; extractive answer", model=name, reason=exc.detail)
            return None, f"the generator {name} failed ({exc.detail}): extractive answer"
        if not out.text.strip():
            return None, f"the generator {name} wrote nothing: extractive answer"
        # No reference in the text: the answer came from all of them, so all are cited.
        used = generate.cited(out.text, given) or given
        citations = [
            Citation(
                document_id=p.document_id,
                filename=p.filename,
                page=p.page,
                start=p.start,
                end=p.end,
                text=p.text,
                ref=p.number,
            )
            for p in used
        ]
        usage = out.usage
        provenance = GeneratorProvenance(
            model=out.model,
            version=out.version,
            weights=usage.get("weights"),
            passages=len(given),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=usage.get("finish_reason"),
            ms=usage.get("ms"),
        )
        confidence = round(min(1.0, max(p.score for p in used) * RRF_K / 2), 3)
        answer = Answer(
            question=question,
            answer=out.text.strip(),
            mode="generative",
            source="generated",
            confidence=confidence,
            citations=citations,
            generator=provenance,
        )
        return answer, None

    async def _extractive(self, question: str, top: list[dict[str, Any]], qvec: list[float] | None) -> Answer:
        fact = await self._fact(question, top[0]["doc_id"])
        if fact is not None:
            return fact
        words = set(top[0]["words"])
        candidates: list[tuple[dict[str, Any], int, int, str]] = []
        for row in top:
            for s, e in chunks.sentences(row["text"]):
                candidates.append((row, s, e, row["text"][s:e]))
        sentence_vectors = await self.embed([c[3] for c in candidates]) if qvec is not None else None
        sentence_words = await asyncio.to_thread(lambda: [set(chunks.query_terms(c[3])) for c in candidates])
        scored = []
        for i, (row, s, e, sentence) in enumerate(candidates):
            overlap = len(words & sentence_words[i]) / max(1, len(words))
            cosine = _dot(qvec, sentence_vectors[i]) if qvec is not None and sentence_vectors else 0.0
            # The chunk's own rank says which documents are relevant; the sentence scores which part answers.
            scored.append((0.6 * cosine + 0.4 * overlap + 0.2 * row["score"] * RRF_K, row, s, e, sentence, cosine))
        scored.sort(key=lambda item: -item[0])
        score, row, s, e, sentence, cosine = scored[0]
        meta = await self._documents([row["doc_id"]])
        citation = Citation(
            document_id=row["doc_id"],
            filename=meta.get(row["doc_id"], {}).get("filename"),
            page=row["page"],
            start=row["start_offset"] + s,
            end=row["start_offset"] + e,
            text=sentence,
        )
        confidence = round(min(1.0, max(0.0, score / 1.2)), 3)
        return Answer(
            question=question, answer=sentence, mode="extractive", confidence=confidence, citations=[citation]
        )

    async def _fact(self, question: str, doc_id: str) -> Answer | None:
        """An answer from the best document's extracted entities, when the question asks for one."""
        wanted = question_field(question)
        if wanted is None:
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT p.entities -> :field, p.pages, r.filename, p.sealed, r.data_key FROM processed_docs p "
                        "JOIN raw_docs r ON r.id = p.doc_id WHERE p.doc_id = :id"
                    ),
                    {"field": wanted, "id": doc_id},
                )
            ).one_or_none()
        if row is None:
            return None
        found, pages, filename = row[0], row[1] or [], row[2]
        if row[3] is not None:
            content = await self._cipher.open_json(row[4], doc_id, PROCESSED, bytes(row[3]))
            found, pages = content["entities"].get(wanted), content["pages"]
        if not found:
            return None
        best = max(found, key=lambda e: float(e.get("confidence", 0)))
        span = best.get("span") or {}
        page_no = int(span.get("page", 1))
        page_text = pages[page_no - 1]["text"] if 0 < page_no <= len(pages) else best["value"]
        values = "；".join(str(e["value"]) for e in found) if wanted == "parties" else str(best["value"])
        citation = Citation(
            document_id=doc_id,
            filename=filename,
            page=page_no,
            start=int(span.get("start", 0)),
            end=int(span.get("end", 0)),
            text=page_text[int(span.get("start", 0)) : int(span.get("end", 0))] or str(best["value"]),
        )
        return Answer(
            question=question,
            answer=values,
            mode="extractive",
            source="entity",
            field=wanted,
            normalized=best.get("normalized"),
            confidence=round(float(best.get("confidence", 0.5)), 3),
            citations=[citation],
        )


def _fuse(lexical: list[dict[str, Any]], semantic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reciprocal rank fusion of the two rankings, by chunk."""
    merged: dict[int, dict[str, Any]] = {}
    for name, ranking in (("text", lexical), ("vector", semantic)):
        for rank, row in enumerate(ranking, start=1):
            entry = merged.setdefault(row["id"], {**row, "score": 0.0, "matched_by": []})
            entry["score"] += 1.0 / (RRF_K + rank)
            entry["matched_by"].append(name)
    return sorted(merged.values(), key=lambda r: (-r["score"], r["id"]))


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.6g}" for v in values) + "]"


def _dot(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    if a is None or b is None:
        return 0.0
    value = sum(x * y for x, y in zip(a, b, strict=False))
    return value if math.isfinite(value) else 0.0
