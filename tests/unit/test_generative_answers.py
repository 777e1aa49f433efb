"""Generative answers: passages, prompt, citations (documents/generate.py) and when /v1/ask generates.

The retrieval and the database are replaced by a test double of ``SearchIndex`` whose ranked
chunks are fixed; the generator is a fake ``TextGenerator``. The real path (Triton, llama.cpp, a
tiny GGUF, tenants) is tests/integration/test_generation.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.documents import generate
from services.gateway.documents.generate import Generated, Passage
from services.gateway.documents.search import AskOptions, SearchFilters, SearchIndex
from shared.errors import BadRequest, Unavailable

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]


def _row(doc: str, text: str, *, page: int = 1, start: int = 0, score: float = 0.03, chunk: int = 1) -> dict[str, Any]:
    return {
        "id": chunk,
        "doc_id": doc,
        "page": page,
        "start_offset": start,
        "end_offset": start + len(text),
        "text": text,
        "score": score,
        "words": ["amount"],
    }


ROWS = [
    _row("doc-a", "The total amount is USD 12,000.", page=2, start=40, score=0.032, chunk=1),
    _row("doc-b", "Payment is due within 30 days.", score=0.02, chunk=2),
    _row("doc-a", "This agreement is governed by the laws of Singapore.", page=3, score=0.01, chunk=3),
]


def test_passages_are_numbered_best_first_and_keep_their_place() -> None:
    given = generate.passages(ROWS, {"doc-a": "a.pdf", "doc-b": None}, budget_chars=1000)
    assert [p.number for p in given] == [1, 2, 3]
    first = given[0]
    assert (first.document_id, first.filename, first.page, first.start, first.end) == ("doc-a", "a.pdf", 2, 40, 71)
    assert given[1].filename is None


def test_passages_stop_at_the_budget_whole_except_the_first() -> None:
    long = _row("doc-c", "x" * 500)
    given = generate.passages([long, *ROWS], {}, budget_chars=300)
    assert [p.document_id for p in given] == ["doc-c"]
    assert len(given[0].text) == 300
    assert given[0].end == 300
    # A passage that does not fit is left out, a later shorter one still goes in.
    given = generate.passages([ROWS[2], _row("doc-d", "y" * 60), ROWS[1]], {}, budget_chars=90)
    assert [p.document_id for p in given] == ["doc-a", "doc-b"]
    assert generate.passages([_row("doc-e", "   ")], {}, budget_chars=100) == []


def test_the_prompt_holds_numbered_passages_then_the_question() -> None:
    given = generate.passages(ROWS[:2], {"doc-a": "a.pdf"}, budget_chars=1000)
    system, prompt = generate.build_prompt("  What is the total amount? ", given)
    assert "[1]" in system
    assert "only the numbered passages" in system
    assert prompt.startswith("Passages:\n\n[1] (a.pdf, page 2)\nThe total amount is USD 12,000.")
    assert "[2] (doc-b, page 1)\nPayment is due within 30 days." in prompt
    assert prompt.endswith("Question: What is the total amount?\nAnswer:")


@pytest.mark.parametrize(
    ("answer", "numbers"),
    [
        ("USD 12,000 [1].", [1]),
        ("It is due in 30 days [2][1].", [1, 2]),
        ("See [1, 3] and [2]", [1, 2, 3]),
        ("合同金额为12,000美元【1】，付款期限30天【2、3】。", [1, 2, 3]),
        ("Nothing cited here.", []),
        ("Only [9] and [0], which were never given.", []),
    ],
)
def test_citations_are_the_given_passages_the_answer_refers_to(answer: str, numbers: list[int]) -> None:
    given = generate.passages(ROWS, {}, budget_chars=1000)
    assert [p.number for p in generate.cited(answer, given)] == numbers


class FakeGenerator:
    def __init__(self, *, configured: set[str], text: str = "USD 12,000 [1].", error: Exception | None = None):
        self.names = configured
        self.text = text
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def configured(self, name: str) -> bool:
        return name in self.names

    async def generate(
        self, name: str, prompt: str, *, system: str, max_tokens: int, temperature: float, timeout_s: float
    ) -> Generated:
        self.calls.append({"name": name, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature})
        if self.error is not None:
            raise self.error
        usage = {"prompt_tokens": 90, "completion_tokens": 7, "finish_reason": "stop", "ms": 12.5}
        usage["weights"] = {"file": "m.gguf", "sha256": "ab" * 32}
        return Generated(text=self.text, model=name, version="1", usage=usage)


class FixedIndex(SearchIndex):
    """Retrieval replaced by fixed chunks (what the tenant-scoped queries would have returned)."""

    def __init__(self, generator: FakeGenerator | None, **options: Any) -> None:
        super().__init__(None, None, generator=generator, ask_options=AskOptions(**options))  # type: ignore[arg-type]
        self.tenants: list[str | None] = []

    async def embed(self, texts: Any) -> None:
        return None

    async def _ranked(self, query: str, filters: SearchFilters, tenant: str | None, vector: Any, limit: int) -> Any:
        self.tenants.append(tenant)
        return [dict(r) for r in ROWS], []

    async def _documents(self, ids: Any) -> dict[str, dict[str, Any]]:
        return {i: {"filename": f"{i}.pdf", "source_system": "api", "external_id": None} for i in ids}

    async def _fact(self, question: str, doc_id: str) -> None:
        return None


async def test_auto_generates_when_the_generator_is_configured() -> None:
    generator = FakeGenerator(configured={"text_generator"})
    index = FixedIndex(generator)
    answer = await index.ask("What is the total amount?", SearchFilters(), tenant="acme", max_tokens=64)
    assert index.tenants == ["acme"]
    assert (answer.mode, answer.source, answer.answer, answer.note) == (
        "generative",
        "generated",
        "USD 12,000 [1].",
        None,
    )
    assert [(c.document_id, c.ref, c.page, c.start) for c in answer.citations] == [("doc-a", 1, 2, 40)]
    assert answer.generator is not None
    assert (answer.generator.model, answer.generator.version, answer.generator.passages) == ("text_generator", "1", 3)
    assert answer.generator.weights == {"file": "m.gguf", "sha256": "ab" * 32}
    assert 0 < answer.confidence <= 1
    call = generator.calls[0]
    assert call["max_tokens"] == 64
    assert "[3] (doc-a.pdf, page 3)" in call["prompt"]


async def test_an_answer_citing_no_given_passage_cites_every_passage_it_was_given() -> None:
    index = FixedIndex(FakeGenerator(configured={"text_generator"}, text="About twelve thousand dollars [7]."))
    answer = await index.ask("How much?", SearchFilters(), tenant="acme")
    assert [c.ref for c in answer.citations] == [1, 2, 3]


async def test_a_failing_generator_gives_the_extractive_answer_with_a_note() -> None:
    failing = FakeGenerator(configured={"text_generator"}, error=Unavailable("Triton is not reachable"))
    answer = await FixedIndex(failing).ask("What is the total amount?", SearchFilters(), tenant="acme")
    assert answer.mode == "extractive"
    assert answer.source == "sentence"
    assert answer.note is not None
    assert "text_generator failed" in answer.note
    assert "Triton is not reachable" in answer.note
    assert answer.citations[0].document_id in {"doc-a", "doc-b"}
    silent = FakeGenerator(configured={"text_generator"}, text="  ")
    answer = await FixedIndex(silent).ask("What is the total amount?", SearchFilters(), tenant="acme")
    assert (answer.mode, answer.note) == ("extractive", "the generator text_generator wrote nothing: extractive answer")


async def test_without_a_generator_auto_is_extractive_and_generative_says_why() -> None:
    for generator in (None, FakeGenerator(configured=set())):
        auto = await FixedIndex(generator).ask("What is the total amount?", SearchFilters(), tenant="acme")
        assert (auto.mode, auto.note) == ("extractive", None)
        asked = await FixedIndex(generator).ask(
            "What is the total amount?", SearchFilters(), tenant="acme", mode="generative"
        )
        assert asked.mode == "extractive"
        assert asked.note is not None
        assert "no text-generation model is configured" in asked.note


async def test_extractive_mode_never_calls_the_generator() -> None:
    generator = FakeGenerator(configured={"text_generator"})
    for index, mode in ((FixedIndex(generator), "extractive"), (FixedIndex(generator, mode="extractive"), None)):
        answer = await index.ask("What is the total amount?", SearchFilters(), tenant="acme", mode=mode)  # type: ignore[arg-type]
        assert answer.mode == "extractive"
    assert generator.calls == []


async def test_a_request_may_name_a_configured_generator_only() -> None:
    generator = FakeGenerator(configured={"text_generator", "qwen_small"})
    answer = await FixedIndex(generator).ask("How much?", SearchFilters(), tenant="acme", generator="qwen_small")
    assert answer.generator is not None
    assert answer.generator.model == "qwen_small"
    with pytest.raises(BadRequest) as raised:
        await FixedIndex(generator).ask("How much?", SearchFilters(), tenant="acme", generator="legal_doc_analyzer")
    assert raised.value.code == "unknown-generator"


def test_passage_is_frozen() -> None:
    passage = Passage(1, "d", None, 1, 0, 1, "x", 0.1)
    with pytest.raises(AttributeError):
        passage.number = 2  # type: ignore[misc]
