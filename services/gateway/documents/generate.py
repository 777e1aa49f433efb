"""Generative answers: a prompt from the passages the caller may read, a generator behind a protocol.

``/v1/ask`` retrieves the caller's chunks as for extractive answers (tenant-scoped, filtered);
``passages`` numbers the best of them within a character budget, ``build_prompt`` asks the model
to answer from those passages only and to cite them as ``[n]``, and ``cited`` maps the numbers in
the answer back to the passages. Every citation is one of the passages given, and every passage
is a chunk of a document the caller's tenant owns: an answer cannot cite anything else.

The generator is a text-generation model in Triton (``hearth models add-generator``), called
through the gateway's ``ModelService`` like every model (load on first use, budget, accounting).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from services.gateway.inference.lifecycle import declared_parameters
from services.gateway.inference.service import ModelService
from shared.errors import PermanentFailure

TEXT_GENERATION: Final = "text-generation"  # a model's `hearth.task` parameter

SYSTEM_PROMPT: Final = (
    "You answer questions about the user's documents using only the numbered passages given with the "
    "question. Cite every passage you use by its number in square brackets, like [1] or [2][3]. If the "
    "passages do not contain the answer, say that the documents do not say. Answer in the language of "
    "the question, briefly."
)

# [1], [1, 3], [1][2], 【1】 (full-width brackets, as Chinese output often has).
_REFERENCE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】]")


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk as the prompt shows it: ``[number]``, its place, its (possibly cut) text."""

    number: int
    document_id: str
    filename: str | None
    page: int
    start: int
    end: int
    text: str
    score: float


def passages(rows: Sequence[dict[str, Any]], filenames: dict[str, str | None], budget_chars: int) -> list[Passage]:
    """The retrieved chunks, best first, numbered from 1, until ``budget_chars`` of text are used.

    The first passage is always kept (cut to the budget if it is longer); a later one that does not
    fit is left out rather than cut, so the model sees whole passages.
    """
    out: list[Passage] = []
    used = 0
    for row in rows:
        text = str(row["text"]).strip()
        if not text:
            continue
        if out and used + len(text) > budget_chars:
            continue
        if not out and len(text) > budget_chars:
            text = text[:budget_chars]
        used += len(text)
        out.append(
            Passage(
                number=len(out) + 1,
                document_id=str(row["doc_id"]),
                filename=filenames.get(str(row["doc_id"])),
                page=int(row["page"]),
                start=int(row["start_offset"]),
                end=int(row["start_offset"]) + len(text),
                text=text,
                score=float(row.get("score", 0.0)),
            )
        )
    return out


def build_prompt(question: str, given: Sequence[Passage]) -> tuple[str, str]:
    """``(system, user)`` messages: the instructions, then the numbered passages and the question."""
    blocks = []
    for p in given:
        where = f"{p.filename or p.document_id}, page {p.page}"
        blocks.append(f"[{p.number}] ({where})\n{p.text}")
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}\nAnswer:"
    return SYSTEM_PROMPT, user


def cited(answer: str, given: Sequence[Passage]) -> list[Passage]:
    """The passages the answer refers to as ``[n]``, in order of number; numbers not given are ignored."""
    numbers: set[int] = set()
    for match in _REFERENCE.finditer(answer):
        numbers.update(int(n) for n in re.split(r"[,，、]", match.group(1)))
    by_number = {p.number: p for p in given}
    return [by_number[n] for n in sorted(numbers) if n in by_number]


@dataclass(frozen=True)
class Generated:
    """What a generator wrote, and what produced it (for the answer's provenance)."""

    text: str
    model: str
    version: str | None
    usage: dict[str, Any] = field(default_factory=dict)


class TextGenerator(Protocol):
    """Generates text from a prompt; ``configured`` says whether a model of that name exists now."""

    def configured(self, name: str) -> bool: ...

    async def generate(
        self, name: str, prompt: str, *, system: str, max_tokens: int, temperature: float, timeout_s: float
    ) -> Generated: ...


class ModelGenerator:
    """A text-generation model in Triton, through the gateway's model service."""

    def __init__(self, models: ModelService, repositories: Sequence[Path]) -> None:
        self._models = models
        self._repositories = list(repositories)

    def configured(self, name: str) -> bool:
        # Read from the repositories each time: `hearth models add-generator` needs no gateway restart.
        return declared_parameters(self._repositories, name).get("hearth.task") == TEXT_GENERATION

    async def generate(
        self, name: str, prompt: str, *, system: str, max_tokens: int, temperature: float, timeout_s: float
    ) -> Generated:
        inputs = {
            "PROMPT": np.array([prompt.encode("utf-8")], dtype=np.object_),
            "SYSTEM": np.array([system.encode("utf-8")], dtype=np.object_),
            "MAX_TOKENS": np.array([max_tokens], dtype=np.int32),
            "TEMPERATURE": np.array([temperature], dtype=np.float32),
        }
        results = await self._models.infer_arrays(name, inputs, ["TEXT", "USAGE"], timeout_s=timeout_s)
        text, usage_raw = _string(results["TEXT"]), _string(results["USAGE"])
        try:
            usage = json.loads(usage_raw)
        except ValueError:
            raise PermanentFailure(f"{name} returned unreadable USAGE: {usage_raw[:200]!r}") from None
        return Generated(text=text, model=name, version=str(usage.get("version") or "") or None, usage=usage)


def _string(array: np.ndarray[Any, Any]) -> str:
    value = array.reshape(-1)[0]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
