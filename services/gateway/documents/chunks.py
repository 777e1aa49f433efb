"""Text for search: chunks of pages, jieba segmentation for the full-text index, query terms, highlights.

Text is segmented with jieba (``shared.segment``) and indexed with the ``simple`` configuration;
queries are segmented the same way and OR-ed, ranked by ``ts_rank_cd``. With column encryption
the lexemes are keyed hashes of the terms (``blind_tsvector``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from shared.crypto.columns import TermHasher
from shared.segment import fold, terms

CHUNK_CHARS: Final = 400
"""Upper bound of a chunk: a few sentences, what one embedding still represents well."""
_STOP: Final = frozenset(
    {
        "的", "了", "和", "与", "及", "或", "是", "在", "为", "对", "由", "之", "其", "该", "本", "于", "以",
        "什么", "哪个", "哪些", "多少", "是否", "吗", "呢", "请问",
        "the", "a", "an", "of", "to", "and", "or", "in", "on", "for", "is", "are", "was", "be", "by",
        "what", "which", "who", "when", "how", "does", "do", "did", "with", "this", "that", "it",
    }
)  # fmt: skip


def index_text(text: str) -> str:
    """The text as space-separated terms, for ``to_tsvector('simple', ...)``."""
    return " ".join(terms(text))


_MAX_POSITIONS: Final = 256
_MAX_POSITION: Final = 16383
"""PostgreSQL keeps at most 256 positions per lexeme, each at most 16383."""


def blind_tsvector(text: str, hasher: TermHasher) -> str:
    """A ``tsvector`` literal of the text's terms as keyed hashes, at the positions the terms have.

    Built here rather than by ``to_tsvector`` because the lexemes are hashes already: PostgreSQL
    must store them as they are. Positions keep ``ts_rank_cd``'s proximity ranking working.
    """
    positions: dict[str, list[int]] = {}
    for number, word in enumerate(terms(text), start=1):
        found = positions.setdefault(hasher.term(word), [])
        if len(found) < _MAX_POSITIONS:
            found.append(min(number, _MAX_POSITION))
    return " ".join(f"'{lexeme}':{','.join(map(str, sorted(set(at))))}" for lexeme, at in positions.items())


def query_terms(question: str) -> list[str]:
    """Distinct terms of a query, stop words out (a query of only stop words keeps them)."""
    found = list(dict.fromkeys(terms(question)))
    kept = [t for t in found if t not in _STOP]
    return kept or found


def tsquery(words: Sequence[str]) -> str:
    """An OR ``to_tsquery('simple', ...)`` text of ``words`` (quoted, so no operator can slip in)."""
    return " | ".join("'" + w.replace("'", "''").replace("\\", "") + "'" for w in words if w)


@dataclass(frozen=True, slots=True)
class Chunk:
    page: int
    start: int
    end: int
    text: str


def chunk_pages(pages: Sequence[str], limit: int = CHUNK_CHARS) -> Iterator[Chunk]:
    """Consecutive lines of a page up to ``limit`` characters; a longer line is cut at sentence ends."""
    for number, page in enumerate(pages, start=1):
        start: int | None = None
        end = 0
        for line_start, line_end in _segments(page, limit):
            if start is not None and line_end - start > limit:
                yield Chunk(number, start, end, page[start:end])
                start = None
            if start is None:
                start = line_start
            end = line_end
        if start is not None and page[start:end].strip():
            yield Chunk(number, start, end, page[start:end])


def _segments(page: str, limit: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank line, long lines split after sentence punctuation or at ``limit``."""
    offset = 0
    for raw in page.split("\n"):
        begin, line = offset, raw
        offset += len(raw) + 1
        if not line.strip():
            continue
        while len(line) > limit:
            cut = max((line.rfind(p, 0, limit) for p in "。；;.!?！？"), default=-1) + 1
            if cut <= 0:
                cut = limit
            yield begin, begin + cut
            begin += cut
            line = line[cut:]
        if line.strip():
            yield begin, begin + len(line)


_SENTENCE_RE: Final = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]?|\n")
_ENGLISH_END: Final = re.compile(r"(?<=\.)\s+(?=[A-Z(\"“])")
"""A full stop ends an English sentence when a capital follows; 100.00 and No. 5 stay whole."""


def sentences(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` (Chinese and English sentence ends, and line breaks)."""
    for match in _SENTENCE_RE.finditer(text):
        begin = match.start()
        for part in _ENGLISH_END.split(match.group()):
            piece_start = text.index(part, begin) if part else begin
            begin = piece_start + len(part)
            if part.strip():
                lead = len(part) - len(part.lstrip())
                yield piece_start + lead, piece_start + len(part.rstrip())


def highlight(text: str, words: Sequence[str], *, width: int = 160) -> str:
    """A snippet of ``text`` around the first matching word, matches wrapped in ``<mark>``; text escaped."""
    folded = fold(text)
    hits = sorted(
        {
            (m.start(), m.end())
            for w in words
            if len(w) > 1 or not w.isascii()
            for m in re.finditer(re.escape(w), folded)
        }
    )
    first = hits[0][0] if hits else 0
    begin = max(0, first - width // 3)
    end = min(len(text), begin + width)
    out, cursor = [], begin
    for s, e in hits:
        if s < cursor or e > end:
            continue
        out.append(html.escape(text[cursor:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        cursor = e
    out.append(html.escape(text[cursor:end]))
    return ("…" if begin > 0 else "") + "".join(out) + ("…" if end < len(text) else "")
