"""A generated, labelled corpus of contracts and other business documents, in Chinese and English.

It evaluates the document pipeline end to end: OCR (text layer or scan), entity extraction,
classification and search. Each document is laid out once (wrapped lines, numbered clauses, tables
of goods, signature blocks, page numbers) and then rendered one or more ways: a PDF with a text
layer, a scanned PDF with none, PNG/JPEG pages or a multi-page TIFF, clean or with a scanned look
(noise, blur, skew, JPEG artefacts, paper tint, a page turned 90° or 180°). The ground truth of a
document is the exact text of its pages (what was drawn, one entry per visual line), its class,
language and tags and, for contracts, the normalised fields an extractor must find (see
``tests/data/docmetrics.py`` for how they are compared).

Decisions worth knowing:

* ``fields`` is only filled for contracts. Invoices, letters and reports have ``fields == {}`` even
  though they print amounts and dates: they are the classifier's negatives, and an extractor that
  reports contract fields on them is wrong. Their own facts (invoice number, total) are in
  ``extra``, which nothing scores.
* ``amount`` is the contract total. Employment contracts and NDAs never have one (a monthly salary
  or a penalty is not a contract total), leases only when a total rent is stated; deposits,
  advance payments, penalties, unit prices and table lines are listed in ``distractors``.
* ``valid_period`` of a construction contract is its contract period (planned start and
  completion); a duration ("two years from 1 March 2024") ends the day before the anniversary.
* Parties are positional: the first party listed is ``party_a``, then ``party_b``, ``party_c``.
* Document ids (``doc-007``) say nothing about class or language; file names derive from them.
* ``rotation`` and ``skew`` of a file are counter-clockwise degrees applied to every page of it
  (undo by turning clockwise); ``clean`` is true only for an undegraded rendering.

Deterministic: the same seed, count and library versions (Pillow, FreeType, fpdf2, numpy) give
byte-identical files. CLI: ``python -m tests.data.contracts --out DIR [--seed N] [--count N]
[--quick] [--long]`` writes the files and ``manifest.json``.
"""

# ruff: noqa: E501 - the clause texts are prose, one sentence a string; split literals would hide them

from __future__ import annotations

import argparse
import calendar
import io
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEFAULT_SEED = 20240611
DEFAULT_COUNT = 60
QUICK_COUNT = 12
LONG_PAGES = 30
GENERATOR_VERSION = 1

CLASSES = ("contract", "invoice", "letter", "report")
LANGUAGES = ("zh", "en")
CONTRACT_TYPES = (
    "purchase",
    "sales",
    "service",
    "lease",
    "employment",
    "nda",
    "loan",
    "license",
    "construction",
    "agency",
)
FIELDS = ("contract_type", "valid_period", "parties", "amount", "contract_number", "signing_date")
KINDS = ("pdf_text", "pdf_scan", "png", "jpeg", "tiff")
CURRENCIES = ("CNY", "USD", "EUR", "HKD")

# A4 in points; pages are laid out in points and rasterised at the file's DPI.
PAGE_W = 595.28
PAGE_H = 841.89
MIN_PT = 11.0  # nothing is drawn smaller: PP-OCRv4 reads 11 pt at 150 DPI (about 23 px a line)
ASCENT = 0.88  # Noto Sans/Serif SC ascender, in em


# ---------------------------------------------------------------------------------------------
# Manifest types (what manifest.json holds, and what generate_corpus returns)


class FileEntry(TypedDict):
    """One rendered file of a document. ``pages`` are indices into the document's ``pages``."""

    path: str
    kind: str  # one of KINDS
    clean: bool
    rotation: int  # counter-clockwise degrees: 0, 90, 180 or 270
    skew: float  # counter-clockwise degrees
    pages: list[int]
    dpi: int | None  # None for pdf_text
    font: str  # "sans" or "serif"


class Question(TypedDict):
    """A search question whose answer is in exactly one document."""

    question: str
    document: str
    answer: str
    field: str


class Distractor(TypedDict):
    """A value printed in the document that an extractor must not take for the field."""

    field: str
    text: str
    kind: str


DocumentEntry = TypedDict(
    "DocumentEntry",
    {
        "id": str,
        "class": str,
        "language": str,
        "title": str,
        "tags": list[str],
        "layout": str,
        "fields": dict[str, Any],
        "surface": dict[str, list[str]],
        "distractors": list[Distractor],
        "extra": dict[str, Any],
        "pages": list[str],
        "files": list[FileEntry],
        "questions": list[Question],
    },
)


class Manifest(TypedDict):
    """The corpus: its seed and documents. ``manifest.json`` is this, as JSON."""

    seed: int
    generator: int
    quick: bool
    documents: list[DocumentEntry]


def load_manifest(path: Path) -> Manifest:
    """Read a ``manifest.json`` written by :func:`generate_corpus` (a file or its directory)."""
    if path.is_dir():
        path = path / "manifest.json"
    manifest: Manifest = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def all_questions(manifest: Manifest) -> list[Question]:
    """Every document's questions, in document order."""
    return [q for doc in manifest["documents"] for q in doc["questions"]]


# ---------------------------------------------------------------------------------------------
# Fonts and measuring


@cache
def font_file(family: str) -> Path:
    """Noto Sans SC (``sans``) or Noto Serif SC (``serif``), shipped by ``pylopdf-fonts-zh-cn``."""
    try:
        from pylopdf_fonts_zh_cn import sans_path, serif_path
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the CJK test fonts are missing: install the `pylopdf-fonts-zh-cn` package") from exc
    path = Path(sans_path() if family == "sans" else serif_path())
    if not path.is_file():  # pragma: no cover
        raise RuntimeError(f"pylopdf-fonts-zh-cn is installed but its font {path} is missing")
    return path


@cache
def _pil_font(family: str, px: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: no shaping and no GPOS kerning, so advances match fpdf2's (hmtx) exactly.
    return ImageFont.truetype(str(font_file(family)), px, layout_engine=ImageFont.Layout.BASIC)


_WIDTHS: dict[tuple[str, str], float] = {}


def text_width(text: str, family: str, size: float) -> float:
    """Advance width of ``text`` in points at ``size`` pt (sum of unhinted glyph advances)."""
    total = 0.0
    for ch in text:
        key = (family, ch)
        width = _WIDTHS.get(key)
        if width is None:
            width = _pil_font(family, 1000).getlength(ch) / 1000.0
            _WIDTHS[key] = width
        total += width
    return total * size


@cache
def font_charset(family: str) -> frozenset[int]:
    """Code points the font has glyphs for."""
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(font_file(family)), lazy=True).getBestCmap())


# ---------------------------------------------------------------------------------------------
# Dates, numbers and amounts as contracts write them

ZH_DIGITS = "〇一二三四五六七八九"
MONTHS = tuple(calendar.month_name)[1:]
EN_SMALL = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

ZH_DATE_STYLES = ("cn", "cn", "cn0", "iso", "dot", "hanzi")
EN_DATE_STYLES = ("mdy", "mdy", "dmy", "dmy", "iso", "ordinal", "abbr")


def zh_number(n: int) -> str:
    """0–99 in Chinese numerals (十二, 二十一): month, day and clause numbers."""
    if n < 10:
        return "零一二三四五六七八九"[n]
    tens, ones = divmod(n, 10)
    return (
        ("" if tens == 1 else "零一二三四五六七八九"[tens]) + "十" + ("" if ones == 0 else "零一二三四五六七八九"[ones])
    )


def fmt_date(d: date, lang: str, style: str) -> str:  # noqa: PLR0911 - one return per style
    """``d`` the way a contract prints it; styles are ZH_DATE_STYLES / EN_DATE_STYLES."""
    if style == "iso":
        return d.isoformat()
    if lang == "zh":
        if style == "cn":
            return f"{d.year}年{d.month}月{d.day}日"
        if style == "cn0":
            return f"{d.year}年{d.month:02d}月{d.day:02d}日"
        if style == "dot":
            return f"{d.year}.{d.month:02d}.{d.day:02d}"
        if style == "hanzi":
            year = "".join(ZH_DIGITS[int(c)] for c in str(d.year))
            return f"{year}年{zh_number(d.month)}月{zh_number(d.day)}日"
    else:
        month = MONTHS[d.month - 1]
        if style == "mdy":
            return f"{month} {d.day}, {d.year}"
        if style == "dmy":
            return f"{d.day} {month} {d.year}"
        if style == "ordinal":
            suffix = "th" if 10 < d.day % 100 < 14 else {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10, "th")
            return f"{d.day}{suffix} {month} {d.year}"
        if style == "abbr":
            return f"{d.day} {month[:3]}. {d.year}" if len(month) > 3 else f"{d.day} {month} {d.year}"
    raise ValueError(f"unknown date style {style!r} for {lang}")


def date_surfaces(d: date, lang: str) -> set[str]:
    """Every way :func:`fmt_date` may print ``d`` in ``lang`` (for checking the truth is on the page)."""
    styles = ZH_DATE_STYLES if lang == "zh" else EN_DATE_STYLES
    return {fmt_date(d, lang, s) for s in styles}


def add_months(d: date, months: int) -> date:
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def term_end(start: date, months: int) -> date:
    """Inclusive end of a term of ``months`` starting on ``start``: the day before the anniversary."""
    return add_months(start, months) - timedelta(days=1)


def en_words(n: int) -> str:
    """An integer in English words, as cheques and contracts spell totals (Title Case)."""
    if n < 20:
        return EN_SMALL[n].title()
    if n < 100:
        tens, ones = divmod(n, 10)
        return EN_TENS[tens].title() + (f"-{EN_SMALL[ones].title()}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{EN_SMALL[hundreds].title()} Hundred" + (f" {en_words(rest)}" if rest else "")
    for scale, name in ((10**9, "Billion"), (10**6, "Million"), (1000, "Thousand")):
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{en_words(high)} {name}" + (f" {en_words(rest)}" if rest else "")
    raise AssertionError(n)  # pragma: no cover


def en_count(n: int) -> str:
    """``two (2)``: how English contracts write a number of years or months."""
    return f"{en_words(n).lower()} ({n})"


ZH_UPPER = "零壹贰叁肆伍陆柒捌玖"


def zh_upper_amount(value: Decimal) -> str:
    """An amount in Chinese financial numerals: 壹拾万元整, 壹佰零伍万伍仟元伍角."""
    cents = int((value * 100).to_integral_value(ROUND_HALF_UP))
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    groups = []
    while yuan:
        yuan, group = divmod(yuan, 10000)
        groups.append(group)
    out = ""
    pending_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            pending_zero = bool(out)
            continue
        if out and (pending_zero or group < 1000):
            out += "零"
        text, zero = "", False
        for pos in (3, 2, 1, 0):
            digit = group // 10**pos % 10
            if digit == 0:
                zero = bool(text)
                continue
            if zero:
                text += "零"
                zero = False
            text += ZH_UPPER[digit] + ("", "拾", "佰", "仟")[pos]
        out += text + ("", "万", "亿", "万亿")[index]
        pending_zero = False
    out = (out or "零") + "元"
    if jiao == 0 and fen == 0:
        return out + "整"
    if jiao:
        out += ZH_UPPER[jiao] + "角"
    elif fen:
        out += "零"
    return out + (ZH_UPPER[fen] + "分" if fen else "")


def money(value: Decimal, decimals: int = 2) -> str:
    """``123,456.78`` (thousands separators)."""
    return f"{value:,.{decimals}f}"


AMOUNT_STYLES = {
    "zh": {
        "CNY": ("yen", "yen_full", "upper", "upper2", "wan", "yuan", "rmb"),
        "USD": ("usd", "usd_cn"),
        "EUR": ("eur_code",),
        "HKD": ("hkd_code",),
    },
    "en": {
        "CNY": ("rmb", "cny"),
        "USD": ("usd", "usd_short", "usd_words"),
        "EUR": ("eur_code", "eur_sign"),
        "HKD": ("hkd_code", "hkd_sign"),
    },
}


def fmt_amount(value: Decimal, currency: str, style: str) -> str:  # noqa: PLR0911, PLR0912 - one per style
    """An amount as printed: ¥100,000.00, 人民币壹拾万元整（¥100,000.00）, USD 5,000.00, US$5,000..."""
    whole = value == value.to_integral_value()
    if style == "yen":
        return f"¥{money(value)}"
    if style == "yen_full":
        return f"￥{money(value)}元"
    if style == "upper":
        return f"人民币{zh_upper_amount(value)}（¥{money(value)}）"
    if style == "upper2":
        return f"人民币（大写）{zh_upper_amount(value)}（小写：¥{money(value)}）"
    if style == "wan":
        if value % 100 == 0:
            return f"人民币{(value / 10000).normalize():f}万元"
        return f"人民币{money(value)}元"
    if style == "yuan":
        return f"{money(value)}元"
    if style == "rmb":
        return f"RMB {money(value)}"
    if style == "cny":
        return f"CNY {money(value)}"
    if style == "usd":
        return f"USD {money(value)}"
    if style == "usd_cn":
        return f"{money(value)}美元"
    if style == "usd_short":
        return f"US${money(value, 0 if whole else 2)}"
    if style == "usd_words":
        cents = int(value * 100) % 100
        words = en_words(int(value)) + (f" and {cents:02d}/100" if cents else "")
        return f"{words} United States Dollars (USD {money(value)})"
    if style == "eur_code":
        return f"EUR {money(value)}"
    if style == "eur_sign":
        return f"€{money(value)}"
    if style == "hkd_code":
        return f"HKD {money(value)}"
    if style == "hkd_sign":
        return f"HK${money(value)}"
    raise ValueError(f"unknown amount style {style!r}")


def amount_surfaces(value: Decimal) -> set[str]:
    """The digit forms an amount takes on the page (for checking the truth is there)."""
    out = {money(value), money(value, 0)}
    if value % 100 == 0:
        out.add(f"{(value / 10000).normalize():f}万")
    return out


# ---------------------------------------------------------------------------------------------
# Document model: blocks a builder emits, laid out into pages of positioned runs


@dataclass(frozen=True)
class Para:
    """A paragraph, wrapped to the text width. ``hang`` is drawn first; wrapped lines align after it."""

    text: str
    size: float | None = None  # None: the document's body size
    align: Literal["left", "center", "right"] = "left"
    hang: str = ""
    indent: float = 0.0  # first-line indent, in em (Chinese paragraphs indent two characters)
    left: float = 0.0  # left inset of every line, in em
    before: float = 0.0  # space before, in lines
    after: float = 0.0
    keep_next: bool = False
    rule: float = 0.0  # a signature line this long (pt) drawn after the text


@dataclass(frozen=True)
class Table:
    """Rows of single-line cells. If a cell cannot fit even at 11 pt, ``fallback`` is laid out instead."""

    rows: tuple[tuple[str, ...], ...]
    header: bool = True
    ruled: bool = True
    align: tuple[str, ...] = ()  # per column: "left", "right" or "center"
    widths: tuple[float, ...] = ()  # fractions of the text width; () sizes columns to their content
    size: float | None = None
    fallback: tuple[Block, ...] = ()
    before: float = 0.3
    after: float = 0.3


@dataclass(frozen=True)
class Gap:
    lines: float = 1.0


@dataclass(frozen=True)
class Keep:
    """Blocks kept on one page when they fit on one (signature blocks, a heading and its table)."""

    blocks: tuple[Block, ...]


Block = Para | Table | Gap | Keep


@dataclass(frozen=True)
class Style:
    """How a document looks: one font family, a body size, line spacing, margins, page furniture."""

    family: str = "sans"
    size: float = 12.0
    leading: float = 1.65
    margin_x: float = 66.0
    margin_top: float = 62.0
    margin_bottom: float = 70.0
    footer: str = ""  # page number format, with {page} and {pages}; "" for none
    header: str = ""  # running header on pages after the first; "" for none


@dataclass(frozen=True)
class Run:
    x: float
    y: float  # baseline
    text: str
    size: float


@dataclass(frozen=True)
class Stroke:
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass
class Page:
    runs: list[Run] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class _Box:
    """One visual line: its height, what it draws (y relative to its top) and its text."""

    height: float
    runs: list[Run]
    strokes: list[Stroke]
    line: str | None
    keep_next: bool = False
    gap: bool = False


class LayoutError(ValueError):
    """A block does not fit the page (a table cell too wide even at the smallest size)."""


_CLOSE = set("，。、；：？！）》”’」』】,.;:?!)%")
_OPEN = set("（《“‘「『【(")
_TOKEN = re.compile(r"\s+|[^\s\u2e80-\u9fff\uff00-\uffef“”‘’《》（）]+|.")


def _tokens(text: str) -> list[str]:
    """Break opportunities: words and numbers stay whole, CJK breaks anywhere, no line starts with ，。."""
    raw = _TOKEN.findall(text)
    out: list[str] = []
    carry = ""
    for piece in raw:
        if piece in _OPEN:
            carry += piece
            continue
        tok = carry + piece
        carry = ""
        if out and (tok[0] in _CLOSE) and not out[-1].isspace():
            out[-1] += tok
        else:
            out.append(tok)
    if carry:
        out.append(carry)
    return out


def wrap(text: str, width: float, family: str, size: float, first_width: float | None = None) -> list[str]:
    """Greedy line breaking of ``text`` into lines no wider than ``width`` points."""
    lines: list[str] = []
    current = ""
    limit = width if first_width is None else first_width
    for token in _tokens(text):
        if token.isspace():
            if current:
                current += " "
            continue
        tok = token
        candidate = current + tok
        if text_width(candidate.rstrip(), family, size) <= limit:
            current = candidate
            continue
        if current.strip():
            lines.append(current.rstrip())
            limit = width
            current = ""
        # a token wider than a line (a long URL, an account number) breaks between characters
        while text_width(tok, family, size) > limit:
            cut = len(tok)
            while cut > 1 and text_width(tok[:cut], family, size) > limit:
                cut -= 1
            lines.append(tok[:cut])
            tok = tok[cut:]
            limit = width
        current = tok
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _baseline(top: float, height: float, size: float) -> float:
    return top + (height - size) / 2 + ASCENT * size


class Layout:
    """Turns blocks into A4 pages: wraps, paginates, keeps groups together, numbers the pages."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self.left = style.margin_x
        self.width = PAGE_W - 2 * style.margin_x

    def measure(self, text: str, size: float | None = None) -> float:
        return text_width(text, self.style.family, size or self.style.size)

    def _para(self, block: Para) -> list[_Box]:
        size = max(MIN_PT, block.size or self.style.size)
        height = size * self.style.leading
        left = self.left + block.left * size
        width = self.width - block.left * size
        hang_w = self.measure(block.hang, size) if block.hang else 0.0
        indent = block.indent * size
        avail_rest = width - hang_w
        first = avail_rest - indent
        if block.rule:
            first = min(first, avail_rest - block.rule - 6)
        lines = wrap(block.text, avail_rest, self.style.family, size, first_width=first) or [""]
        boxes = []
        for index, line in enumerate(lines):
            x = left + hang_w + (indent if index == 0 else 0.0)
            shown = (block.hang + line) if index == 0 and block.hang else line
            if block.align == "center":
                x = self.left + (self.width - self.measure(shown, size)) / 2
                runs = [Run(x, _baseline(0, height, size), shown, size)]
            elif block.align == "right":
                x = self.left + self.width - self.measure(shown, size)
                runs = [Run(x, _baseline(0, height, size), shown, size)]
            elif index == 0 and block.hang:
                runs = [Run(left, _baseline(0, height, size), shown, size)]
            else:
                runs = [Run(x, _baseline(0, height, size), line, size)]
            strokes = []
            if block.rule and index == len(lines) - 1:
                end = runs[0].x + self.measure(runs[0].text, size) + 4
                length = min(block.rule, self.left + self.width - end)
                base = _baseline(0, height, size) + 2
                strokes.append(Stroke(end, base, end + length, base))
            boxes.append(_Box(height, runs, strokes, shown.strip(), keep_next=block.keep_next))
        if block.before:
            boxes.insert(0, _Box(block.before * height, [], [], None, keep_next=True, gap=True))
        if block.after:
            boxes.append(_Box(block.after * height, [], [], None, gap=True))
        for box in boxes[:-1]:
            box.keep_next = box.keep_next or len(lines) <= 2  # no widowed two-line paragraphs
        return boxes

    def _table(self, block: Table) -> list[_Box]:  # noqa: PLR0912 - sizing, alignment and rules
        ncols = max(len(row) for row in block.rows)
        rows = [tuple(row) + ("",) * (ncols - len(row)) for row in block.rows]
        pad = 5.0
        size = max(MIN_PT, block.size or self.style.size)
        while True:
            if block.widths:
                widths = [f * self.width for f in block.widths]
                fits = all(
                    self.measure(cell, size) + 2 * pad <= widths[c] for row in rows for c, cell in enumerate(row)
                )
            else:
                natural = [max(self.measure(row[c], size) for row in rows) + 2 * pad for c in range(ncols)]
                fits = sum(natural) <= self.width
                extra = (self.width - sum(natural)) / ncols if fits else 0.0
                widths = [w + extra for w in natural]
            if fits:
                break
            if size <= MIN_PT:
                if block.fallback:
                    return [box for sub in block.fallback for box in self._block(sub)]
                raise LayoutError(f"table row does not fit: {rows[0]!r}")
            size = max(MIN_PT, size - 0.5)
        height = size * 1.95
        xs = [self.left]
        for w in widths:
            xs.append(xs[-1] + w)
        aligns = block.align or ("left",) * ncols
        boxes = []
        for r, row in enumerate(rows):
            runs = []
            for c, cell in enumerate(row):
                if not cell:
                    continue
                cell_w = self.measure(cell, size)
                align = aligns[c] if c < len(aligns) else "left"
                if align == "right":
                    x = xs[c + 1] - pad - cell_w
                elif align == "center":
                    x = xs[c] + (widths[c] - cell_w) / 2
                else:
                    x = xs[c] + pad
                runs.append(Run(x, _baseline(0, height, size), cell, size))
            strokes = []
            if block.ruled:
                strokes.append(Stroke(xs[0], 0, xs[-1], 0))
                strokes.append(Stroke(xs[0], height, xs[-1], height))
                strokes.extend(Stroke(x, 0, x, height) for x in xs)
            line = " ".join(cell for cell in row if cell)
            keep = (r == 0 and block.header) or r >= len(rows) - 2
            boxes.append(_Box(height, runs, strokes, line or None, keep_next=keep and r < len(rows) - 1))
        if block.before:
            boxes.insert(0, _Box(block.before * height, [], [], None, keep_next=True, gap=True))
        if block.after:
            boxes.append(_Box(block.after * height, [], [], None, gap=True))
        return boxes

    def _block(self, block: Block) -> list[_Box]:
        if isinstance(block, Para):
            return self._para(block)
        if isinstance(block, Table):
            return self._table(block)
        if isinstance(block, Gap):
            return [_Box(block.lines * self.style.size * self.style.leading, [], [], None, gap=True)]
        boxes = [box for sub in block.blocks for box in self._block(sub)]
        for box in boxes[:-1]:
            box.keep_next = True
        return boxes

    def pages(self, blocks: Sequence[Block]) -> list[Page]:
        """Lay ``blocks`` out; returns pages whose ``lines`` are the text in reading order."""
        boxes = [box for block in blocks for box in self._block(block)]
        style = self.style
        furniture = MIN_PT * style.leading
        top0 = style.margin_top
        bottom = PAGE_H - style.margin_bottom
        pages: list[Page] = [Page()]
        y = top0
        i = 0
        while i < len(boxes):
            box = boxes[i]
            if box.gap and y == self._top(len(pages) - 1, top0, furniture):
                i += 1  # no blank space at the top of a page
                continue
            chain = box.height
            j = i
            while boxes[j].keep_next and j + 1 < len(boxes):
                j += 1
                chain += boxes[j].height
            page_room = bottom - self._top(len(pages), top0, furniture)
            if y + box.height > bottom or (y + chain > bottom and chain <= page_room):
                pages.append(Page())
                y = self._top(len(pages) - 1, top0, furniture)
                continue
            page = pages[-1]
            page.runs.extend(Run(r.x, r.y + y, r.text, r.size) for r in box.runs)
            page.strokes.extend(Stroke(s.x0, s.y0 + y, s.x1, s.y1 + y) for s in box.strokes)
            if box.line:
                page.lines.append(box.line)
            y += box.height
            i += 1
        while len(pages) > 1 and not pages[-1].lines:
            pages.pop()
        self._furniture(pages, furniture)
        return pages

    def _top(self, index: int, top0: float, furniture: float) -> float:
        return top0 + (furniture + 6 if index > 0 and self.style.header else 0.0)

    def _furniture(self, pages: list[Page], height: float) -> None:
        style = self.style
        total = len(pages)
        for number, page in enumerate(pages, start=1):
            if style.header and number > 1:
                text = style.header
                y = _baseline(style.margin_top, height, MIN_PT)
                page.runs.insert(0, Run(self.left + self.width - self.measure(text, MIN_PT), y, text, MIN_PT))
                page.strokes.append(
                    Stroke(self.left, style.margin_top + height, self.left + self.width, style.margin_top + height)
                )
                page.lines.insert(0, text)
            if style.footer:
                text = style.footer.format(page=number, pages=total)
                y = PAGE_H - style.margin_bottom / 2
                page.runs.append(Run(self.left + (self.width - self.measure(text, MIN_PT)) / 2, y, text, MIN_PT))
                page.lines.append(text)


# ---------------------------------------------------------------------------------------------
# Rendering: a PDF with a text layer, page images, the scanned look, scanned PDFs, TIFF

_PDF_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def _new_pdf() -> Any:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.set_creation_date(_PDF_DATE)  # a fixed date (and so a fixed /ID): same seed, same bytes
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_creator("hearth tests.data.contracts")
    pdf.set_producer("fpdf2")
    return pdf


def render_pdf_text(pages: Sequence[Page], family: str, title: str) -> bytes:
    """A PDF whose text layer holds exactly the pages' runs, in reading order."""
    pdf = _new_pdf()
    pdf.set_title(title)
    pdf.add_font(family, fname=str(font_file(family)))
    # The subset keeps the full font's bounding box: recomputing it walks every CFF charstring
    # and is most of the time a PDF takes to write.
    pdf.fonts[family].ttfont.recalcBBoxes = False
    pdf.set_line_width(0.6)
    for page in pages:
        pdf.add_page()
        for stroke in page.strokes:
            pdf.line(stroke.x0, stroke.y0, stroke.x1, stroke.y1)
        for run in page.runs:
            pdf.set_font(family, size=run.size)
            pdf.text(run.x, run.y, run.text)
    return bytes(pdf.output())


def render_image(page: Page, family: str, dpi: int) -> Image.Image:
    """The page drawn in black on white at ``dpi`` (A4 at 150 DPI is 1240 × 1754)."""
    scale = dpi / 72.0
    image = Image.new("L", (round(PAGE_W * scale), round(PAGE_H * scale)), 255)
    draw = ImageDraw.Draw(image)
    width = max(1, round(0.6 * scale))
    for s in page.strokes:
        draw.line([(s.x0 * scale, s.y0 * scale), (s.x1 * scale, s.y1 * scale)], fill=0, width=width)
    for run in page.runs:
        draw.text(
            (run.x * scale, run.y * scale),
            run.text,
            font=_pil_font(family, round(run.size * scale)),
            fill=0,
            anchor="ls",
        )
    return image


@dataclass(frozen=True)
class Look:
    """How a rendering is degraded. The default is a clean rendering."""

    dpi: int = 150
    rotation: int = 0  # counter-clockwise, a multiple of 90
    skew: float = 0.0  # counter-clockwise degrees
    blur: float = 0.0
    noise: float = 0.0  # Gaussian sigma, in grey levels
    jpeg_quality: int = 0  # 0: no JPEG round trip
    tint: tuple[int, int, int] | None = None  # paper colour
    specks: int = 0  # dark dust spots per page

    @property
    def clean(self) -> bool:
        return self == Look(dpi=self.dpi)


def scan(image: Image.Image, look: Look, seed: Sequence[int]) -> Image.Image:
    """The scanned look: optics blur, skew, sensor noise and dust, paper tint, JPEG artefacts, rotation."""
    if look.clean:
        return image
    rng = np.random.default_rng(seed)
    if look.blur:
        image = image.filter(ImageFilter.GaussianBlur(look.blur))
    if look.skew:
        image = image.rotate(look.skew, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if look.noise or look.specks:
        pixels = np.asarray(image, dtype=np.float32)
        if look.noise:
            pixels = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(look.noise)
        for _ in range(look.specks):
            y, x = rng.integers(0, pixels.shape[0]), rng.integers(0, pixels.shape[1])
            r = int(rng.integers(1, 4))
            pixels[max(0, y - r) : y + r, max(0, x - r) : x + r] *= np.float32(0.35)
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "L")
    if look.tint:
        # grey level g becomes ink (22) to paper (the tint) linearly, per channel: a colour scan
        bands = [image.point([round(22 + (c - 22) * g / 255) for g in range(256)]) for c in look.tint]
        image = Image.merge("RGB", bands)
    if look.jpeg_quality:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=look.jpeg_quality)
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    if look.rotation:
        turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
        image = image.transpose(turn[look.rotation])
    return image


def encode_image(image: Image.Image, kind: str, dpi: int) -> bytes:
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG", compress_level=3, dpi=(dpi, dpi))
    elif kind == "jpeg":
        image.convert("RGB" if image.mode == "RGB" else "L").save(buffer, format="JPEG", quality=88, dpi=(dpi, dpi))
    else:
        raise ValueError(kind)
    return buffer.getvalue()


def encode_tiff(images: Sequence[Image.Image], dpi: int) -> bytes:
    """A multi-page TIFF (deflate), one frame per page."""
    buffer = io.BytesIO()
    first, *rest = images
    first.save(
        buffer, format="TIFF", save_all=True, append_images=rest, compression="tiff_adobe_deflate", dpi=(dpi, dpi)
    )
    return buffer.getvalue()


def render_pdf_scan(images: Sequence[Image.Image], dpi: int) -> bytes:
    """A PDF of page images (JPEG, as scanners write them) and no text layer."""
    pdf = _new_pdf()
    for image in images:
        w_pt, h_pt = image.width * 72.0 / dpi, image.height * 72.0 / dpi
        pdf.add_page(format=(w_pt, h_pt))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=82)
        buffer.seek(0)
        pdf.image(buffer, x=0, y=0, w=w_pt, h=h_pt)
    return bytes(pdf.output())


# ---------------------------------------------------------------------------------------------
# Names: companies, people, places, numbers — unique across the corpus, so questions have one answer

ZH_CITIES = {
    "北京": ("Beijing", ("海淀区", "朝阳区", "东城区", "丰台区")),
    "上海": ("Shanghai", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    "深圳": ("Shenzhen", ("南山区", "福田区", "宝安区", "龙岗区")),
    "杭州": ("Hangzhou", ("西湖区", "滨江区", "余杭区")),
    "广州": ("Guangzhou", ("天河区", "海珠区", "黄埔区")),
    "成都": ("Chengdu", ("武侯区", "锦江区", "高新区")),
    "苏州": ("Suzhou", ("工业园区", "吴中区", "姑苏区")),
    "武汉": ("Wuhan", ("洪山区", "江汉区", "武昌区")),
    "南京": ("Nanjing", ("鼓楼区", "江宁区", "玄武区")),
    "天津": ("Tianjin", ("和平区", "南开区", "滨海新区")),
    "西安": ("Xi'an", ("雁塔区", "未央区")),
    "重庆": ("Chongqing", ("渝北区", "江北区")),
    "青岛": ("Qingdao", ("市南区", "黄岛区")),
    "厦门": ("Xiamen", ("思明区", "湖里区")),
    "宁波": ("Ningbo", ("鄞州区", "海曙区")),
    "合肥": ("Hefei", ("蜀山区", "包河区")),
    "长沙": ("Changsha", ("岳麓区", "天心区")),
    "郑州": ("Zhengzhou", ("金水区", "二七区")),
}
ZH_TRADE = (
    ("华信", "Huaxin"), ("中诚", "Zhongcheng"), ("恒达", "Hengda"), ("瑞丰", "Ruifeng"), ("锦程", "Jincheng"),
    ("博远", "Boyuan"), ("嘉禾", "Jiahe"), ("天衡", "Tianheng"), ("鼎盛", "Dingsheng"), ("宏图", "Hongtu"),
    ("新元", "Xinyuan"), ("汇通", "Huitong"), ("凯越", "Kaiyue"), ("明德", "Mingde"), ("安泰", "Antai"),
    ("星河", "Xinghe"), ("云帆", "Yunfan"), ("正和", "Zhenghe"), ("金桥", "Jinqiao"), ("远航", "Yuanhang"),
    ("永安", "Yongan"), ("海纳", "Haina"), ("联创", "Lianchuang"), ("智远", "Zhiyuan"), ("泰和", "Taihe"),
    ("恒信", "Hengxin"), ("立达", "Lida"), ("华腾", "Huateng"), ("卓越", "Zhuoyue"), ("诚泰", "Chengtai"),
    ("弘毅", "Hongyi"), ("德润", "Derun"), ("启明", "Qiming"), ("朗科", "Langke"), ("青松", "Qingsong"),
    ("伟业", "Weiye"), ("长风", "Changfeng"), ("众合", "Zhonghe"), ("信诺", "Xinnuo"), ("华晟", "Huasheng"),
)  # fmt: skip
# (Chinese, English, tag): the industries in company names, and the tag a document gets from them
INDUSTRIES = {
    "tech": ("科技", "Technology", "technology"),
    "electronics": ("电子", "Electronics", "electronics"),
    "machinery": ("机械设备", "Machinery", "manufacturing"),
    "trading": ("贸易", "Trading", "trade"),
    "logistics": ("物流", "Logistics", "logistics"),
    "it": ("信息技术", "Information Technology", "it"),
    "medical": ("医疗器械", "Medical Devices", "healthcare"),
    "food": ("食品", "Foods", "food"),
    "chemical": ("化工", "Chemicals", "chemicals"),
    "materials": ("新材料", "Advanced Materials", "materials"),
    "property": ("置业", "Properties", "real_estate"),
    "facilities": ("物业管理", "Property Management", "real_estate"),
    "construction": ("建设工程", "Construction Engineering", "construction"),
    "software": ("软件", "Software", "software"),
    "energy": ("能源", "Energy", "energy"),
    "consulting": ("咨询", "Consulting", "consulting"),
    "finance": ("投资", "Investment", "finance"),
    "marketing": ("营销策划", "Marketing", "marketing"),
}
ZH_FORMS = ("有限公司", "有限公司", "股份有限公司", "有限责任公司")
EN_PREFIX = (
    "Northwind", "Acme", "Bluestone", "Harbor", "Summit", "Redwood", "Silverline", "Crescent", "Pinecrest",
    "Ironbridge", "Westfield", "Lakeside", "Granite", "Oakridge", "Brightwater", "Evergreen", "Meridian",
    "Keystone", "Falcon", "Sterling", "Orion", "Atlas", "Cobalt", "Beacon", "Highland", "Riverbend", "Blackrock",
    "Clearview", "Foxglove", "Goldcrest", "Kingsway", "Marlow", "Newhaven", "Quayside", "Stonegate", "Thornbury",
)  # fmt: skip
EN_FORMS = ("Ltd.", "Co., Ltd.", "Inc.", "LLC", "Limited", "GmbH", "Pte. Ltd.", "plc", "Corporation")
EN_JURISDICTIONS = {
    "Ltd.": "England and Wales", "Limited": "Hong Kong", "Co., Ltd.": "the People's Republic of China",
    "Inc.": "the State of Delaware", "LLC": "the State of California", "GmbH": "Germany",
    "Pte. Ltd.": "Singapore", "plc": "England and Wales", "Corporation": "the State of New York",
}  # fmt: skip
ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
ZH_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉兰萍鹏辉宇浩凯健俊帆欣怡佳琳晨雪婷博文思雨子涵轩志国建立德海峰晓红"
)
EN_FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William",
    "Susan", "Richard", "Jessica", "Thomas", "Sarah", "Daniel", "Karen", "Matthew", "Emily", "Andrew", "Olivia",
    "Joshua", "Sophie", "Oliver", "Charlotte", "Henry", "Amelia", "George", "Hannah", "Lucas", "Grace",
)  # fmt: skip
EN_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Moore",
    "Jackson", "Martin", "Thompson", "White", "Harris", "Clarke", "Lewis", "Walker", "Hall", "Allen", "Young",
    "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Carter",
    "Roberts", "Turner", "Phillips", "Evans", "Edwards", "Collins", "Stewart", "Murphy", "Cook", "Morgan",
)  # fmt: skip
ZH_ROADS = [
    "中关村大街",
    "科技园路",
    "建国路",
    "人民路",
    "解放路",
    "长江路",
    "滨江大道",
    "高新大道",
    "学院路",
    "创业路",
    "望京街",
    "世纪大道",
    "南京路",
    "黄河路",
    "和平路",
    "文化路",
]
EN_STREETS = (
    "King Street", "Queen's Road", "Harbour Road", "Market Street", "Victoria Avenue", "Station Road",
    "Park Lane", "Bridge Street", "Commerce Drive", "Industrial Way", "Mill Road", "Canal Street",
)  # fmt: skip
EN_CITIES = ("London", "Manchester", "Hong Kong", "Singapore", "Munich", "San Jose", "Boston", "Austin", "Leeds")
ZH_BANKS = ("中国工商银行", "中国建设银行", "中国银行", "招商银行", "交通银行", "中国农业银行", "浦发银行")
EN_BANKS = (
    "HSBC",
    "Barclays Bank",
    "Standard Chartered Bank",
    "Deutsche Bank",
    "DBS Bank",
    "Bank of China (Hong Kong)",
)


def _fold_name(name: str) -> str:
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKC", name) if not ch.isspace()).casefold()


@dataclass(frozen=True)
class Org:
    name: str
    industry: str
    address: str
    city: str
    rep: str  # legal representative / signatory
    phone: str
    credit_code: str = ""
    bank: str = ""
    account: str = ""
    jurisdiction: str = ""
    person: bool = False


class Registry:
    """Hands out names and numbers that no other document of the corpus uses."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def _unique(self, make: Callable[[], str]) -> str:
        for _ in range(500):
            value = make()
            key = _fold_name(value)
            if key not in self.used and not any(key in u or u in key for u in self.used if len(u) > 6):
                self.used.add(key)
                return value
        raise RuntimeError("ran out of unique names")  # pragma: no cover

    def zh_person(self, rng: random.Random) -> str:
        return self._unique(lambda: rng.choice(ZH_SURNAMES) + "".join(rng.sample(ZH_GIVEN, rng.choice((1, 2, 2)))))

    def en_person(self, rng: random.Random) -> str:
        return self._unique(lambda: f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}")

    def org(self, rng: random.Random, lang: str, industry: str) -> Org:
        zh_ind, en_ind, _ = INDUSTRIES[industry]
        city = rng.choice(sorted(ZH_CITIES))
        pinyin, districts = ZH_CITIES[city]
        trade, trade_en = rng.choice(ZH_TRADE)
        if lang == "zh":

            def make() -> str:
                t = rng.choice(ZH_TRADE)[0]
                form = rng.choice(ZH_FORMS)
                return f"{t}（{city}）{zh_ind}{form}" if rng.random() < 0.15 else f"{city}{t}{zh_ind}{form}"

            name = self._unique(make)
            road = rng.choice(ZH_ROADS)
            address = f"{city}市{rng.choice(districts)}{road}{rng.randint(1, 399)}号"
            if rng.random() < 0.5:
                address += f"{rng.randint(1, 12)}号楼{rng.randint(2, 25)}{rng.randint(1, 20):02d}室"
            area = rng.randint(10, 99)
            code = f"91{rng.randint(11, 65)}{rng.randint(1000, 9999)}MA{rng.randint(10, 99)}{''.join(rng.choices('ABCDEFGHJKLMNPQRTUWXY0123456789', k=6))}"
            return Org(
                name=name,
                industry=industry,
                address=address,
                city=city,
                rep=self.zh_person(rng),
                phone=f"0{area}-{rng.randint(6000_0000, 8999_9999)}"
                if rng.random() < 0.6
                else f"1{rng.randint(3, 9)}{rng.randint(0, 9)}{rng.randint(1000_0000, 9999_9999)}",
                credit_code=code,
                bank=f"{rng.choice(ZH_BANKS)}{city}{rng.choice(districts)[:2]}支行",
                account=" ".join(str(rng.randint(1000, 9999)) for _ in range(4)) + f" {rng.randint(100, 999)}",
            )

        def make_en() -> str:
            form = rng.choice(EN_FORMS)
            if rng.random() < 0.25:
                return f"{pinyin} {rng.choice(ZH_TRADE)[1]} {en_ind} Co., Ltd."
            return f"{rng.choice(EN_PREFIX)} {en_ind} {form}"

        name = self._unique(make_en)
        form = next((f for f in sorted(EN_JURISDICTIONS, key=len, reverse=True) if name.endswith(f)), "Ltd.")
        chinese = name.endswith("Co., Ltd.") and name.split()[0] == pinyin
        place = f"{pinyin}, China" if chinese else rng.choice(EN_CITIES)
        address = f"{rng.randint(2, 240)} {rng.choice(EN_STREETS)}, {place}"
        del trade, trade_en
        return Org(
            name=name,
            industry=industry,
            address=address,
            city=place,
            rep=self.en_person(rng),
            phone=f"+{rng.choice((44, 852, 65, 49, 1, 86))} {rng.randint(20, 99)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
            bank=rng.choice(EN_BANKS),
            account=f"{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(100, 999)}",
            jurisdiction="the People's Republic of China" if chinese else EN_JURISDICTIONS[form],
        )

    def person(self, rng: random.Random, lang: str) -> Org:
        name = self.zh_person(rng) if lang == "zh" else self.en_person(rng)
        if lang == "zh":
            city = rng.choice(sorted(ZH_CITIES))
            address = f"{city}市{rng.choice(ZH_CITIES[city][1])}{rng.choice(ZH_ROADS)}{rng.randint(1, 300)}号"
            phone = f"1{rng.randint(3, 9)}{rng.randint(0, 9)}{rng.randint(1000_0000, 9999_9999)}"
        else:
            address = (
                f"Flat {rng.randint(1, 40)}, {rng.randint(2, 240)} {rng.choice(EN_STREETS)}, {rng.choice(EN_CITIES)}"
            )
            phone = f"+{rng.choice((44, 852, 65))} {rng.randint(7000, 9999)} {rng.randint(1000, 9999)}"
        return Org(name=name, industry="", address=address, city="", rep=name, phone=phone, person=True)

    def number(self, rng: random.Random, prefix: str, year: int, when: date) -> str:
        styles: tuple[Callable[[], str], ...] = (
            lambda: f"{prefix}-{year}-{rng.randint(1, 9999):04d}",
            lambda: f"{prefix}{year}-{rng.randint(1, 999):03d}",
            lambda: f"{prefix}-{when:%Y%m%d}-{rng.randint(1, 99):02d}",
            lambda: f"{prefix}/{year}/{rng.randint(100, 999)}",
            lambda: f"{year}-{prefix}-{rng.randint(1, 9999):04d}",
            lambda: f"{prefix}{when:%y%m}{rng.randint(100, 999)}",
        )
        return self._unique(rng.choice(styles))


# ---------------------------------------------------------------------------------------------
# Content: what each kind of document says, with its ground truth recorded as it is written

TITLES = {
    "purchase": {
        "zh": ("采购合同", "设备采购合同", "物资采购协议", "货物采购合同", "原材料采购合同", "办公设备采购合同"),
        "en": ("Purchase Agreement", "Supply Agreement", "Equipment Purchase Agreement", "Purchase Contract", "Goods Supply Contract"),
    },
    "sales": {
        "zh": ("销售合同", "产品销售合同", "商品销售合同", "销售协议"),
        "en": ("Sales Contract", "Sales Agreement", "Product Sales Agreement"),
    },
    "service": {
        "zh": ("技术服务合同", "信息系统运维服务合同", "咨询服务协议", "物业管理服务合同", "服务合同"),
        "en": ("Master Services Agreement", "Consulting Services Agreement", "Maintenance Services Agreement", "IT Support Services Agreement", "Service Agreement"),
    },
    "lease": {
        "zh": ("房屋租赁合同", "厂房租赁合同", "办公用房租赁合同", "仓库租赁合同"),
        "en": ("Lease Agreement", "Office Lease Agreement", "Warehouse Lease Agreement", "Tenancy Agreement"),
    },
    "employment": {
        "zh": ("劳动合同", "劳动合同书", "固定期限劳动合同"),
        "en": ("Employment Agreement", "Employment Contract", "Contract of Employment"),
    },
    "nda": {
        "zh": ("保密协议", "商业保密协议", "技术保密协议", "保密及不披露协议"),
        "en": ("Non-Disclosure Agreement", "Confidentiality Agreement", "Mutual Non-Disclosure Agreement"),
    },
    "loan": {
        "zh": ("借款合同", "企业借款合同", "流动资金借款合同", "借款协议"),
        "en": ("Loan Agreement", "Term Loan Agreement", "Intercompany Loan Agreement", "Facility Agreement"),
    },
    "license": {
        "zh": ("软件许可协议", "软件使用许可合同", "技术许可合同", "软件产品授权许可协议"),
        "en": ("Software License Agreement", "Software Licence Agreement", "Technology License Agreement", "Enterprise Software License Agreement"),
    },
    "construction": {
        "zh": ("建设工程施工合同", "装修工程施工合同", "工程施工合同", "建筑安装工程承包合同"),
        "en": ("Construction Contract", "Building Construction Contract", "Fit-Out Works Contract"),
    },
    "agency": {
        "zh": ("代理协议", "销售代理协议", "委托代理合同", "独家代理协议", "区域代理合同"),
        "en": ("Agency Agreement", "Sales Agency Agreement", "Exclusive Agency Agreement", "Sales Representative Agreement"),
    },
}  # fmt: skip
TYPE_TAGS = {
    "purchase": ("采购", "procurement"), "sales": ("销售", "sales"), "service": ("服务", "services"),
    "lease": ("租赁", "lease"), "employment": ("劳动", "employment"), "nda": ("保密", "confidentiality"),
    "loan": ("借款", "loan"), "license": ("许可", "licensing"), "construction": ("施工", "construction"),
    "agency": ("代理", "agency"),
}  # fmt: skip
NUMBER_PREFIX = {
    "purchase": ("CG", "PA"), "sales": ("XS", "SA"), "service": ("FW", "MSA"), "lease": ("ZL", "LA"),
    "employment": ("LD", "EMP"), "nda": ("BM", "NDA"), "loan": ("JK", "LN"), "license": ("XK", "SLA"),
    "construction": ("SG", "CC"), "agency": ("DL", "AG"),
}  # fmt: skip
# (party_a industry choices, party_b industry choices)
TYPE_INDUSTRIES = {
    "purchase": (("tech", "machinery", "food", "logistics", "medical", "energy"), ("trading", "electronics", "machinery", "materials", "chemical")),
    "sales": (("electronics", "machinery", "materials", "chemical", "food"), ("trading", "tech", "logistics", "energy")),
    "service": (("trading", "food", "energy", "medical", "property"), ("it", "software", "consulting", "facilities", "tech")),
    "lease": (("property", "finance"), ("tech", "trading", "logistics", "consulting", "software")),
    "employment": (("tech", "software", "machinery", "trading", "medical", "consulting"), ()),
    "nda": (("tech", "electronics", "medical", "software", "materials"), ("tech", "consulting", "software", "machinery")),
    "loan": (("finance",), ("trading", "machinery", "food", "logistics", "chemical")),
    "license": (("software", "it"), ("trading", "logistics", "medical", "energy", "food")),
    "construction": (("tech", "property", "food", "logistics", "medical"), ("construction",)),
    "agency": (("electronics", "medical", "food", "machinery", "chemical"), ("trading", "marketing")),
}  # fmt: skip
# Chinese labels of the parties (first, second) and the word the clauses use for each
ZH_LABELS = {
    "purchase": (("甲方（买方）", "乙方（卖方）"), ("采购方（甲方）", "供应方（乙方）"), ("甲方", "乙方"), ("买方", "卖方"), ("需方", "供方")),
    "sales": (("甲方（卖方）", "乙方（买方）"), ("供方", "需方"), ("卖方", "买方"), ("甲方", "乙方")),
    "service": (("甲方（委托方）", "乙方（服务方）"), ("委托方", "受托方"), ("甲方", "乙方"), ("甲方（客户）", "乙方（服务商）")),
    "lease": (("出租方（甲方）", "承租方（乙方）"), ("出租人", "承租人"), ("甲方（出租方）", "乙方（承租方）")),
    "employment": (("甲方（用人单位）", "乙方（劳动者）"), ("用人单位（甲方）", "劳动者（乙方）")),
    "nda": (("披露方（甲方）", "接收方（乙方）"), ("甲方", "乙方")),
    "loan": (("出借人（甲方）", "借款人（乙方）"), ("贷款人", "借款人"), ("甲方（出借方）", "乙方（借款方）")),
    "license": (("许可方（甲方）", "被许可方（乙方）"), ("甲方（许可方）", "乙方（被许可方）"), ("许可人", "被许可人")),
    "construction": (("发包人", "承包人"), ("甲方（发包方）", "乙方（承包方）")),
    "agency": (("委托方（甲方）", "代理方（乙方）"), ("甲方（委托方）", "乙方（代理商）"), ("委托人", "受托人")),
}  # fmt: skip
EN_ROLES = {
    "purchase": (("Buyer", "Seller"), ("Purchaser", "Supplier"), ("Customer", "Supplier")),
    "sales": (("Seller", "Buyer"), ("Supplier", "Customer")),
    "service": (("Client", "Service Provider"), ("Customer", "Provider"), ("Client", "Consultant")),
    "lease": (("Landlord", "Tenant"), ("Lessor", "Lessee")),
    "employment": (("Employer", "Employee"), ("Company", "Employee")),
    "nda": (("Disclosing Party", "Receiving Party"), ("Party A", "Party B")),
    "loan": (("Lender", "Borrower"),),
    "license": (("Licensor", "Licensee"),),
    "construction": (("Employer", "Contractor"), ("Owner", "Contractor")),
    "agency": (("Principal", "Agent"),),
}  # fmt: skip

ZH_GOODS = (
    ("工业控制器", "PLC-S200", "台", 3000, 12000), ("伺服电机", "SM-750W", "台", 800, 3000),
    ("变频器", "VFD-7.5KW", "台", 2000, 6000), ("激光打印机", "LJ-M405", "台", 1500, 4000),
    ("笔记本电脑", "T14 Gen4", "台", 5000, 9000), ("机架式服务器", "R740 2U", "台", 30000, 80000),
    ("交换机", "S5735-48T", "台", 3000, 9000), ("不锈钢板", "304 2.0mm", "吨", 14000, 20000),
    ("铜芯电缆", "YJV 3×95", "米", 150, 400), ("办公桌椅", "BG-1600", "套", 800, 2500),
    ("显示器", "27英寸4K", "台", 1500, 3500), ("UPS电源", "10kVA", "台", 8000, 20000),
    ("空气压缩机", "GA-37", "台", 40000, 90000), ("监控摄像机", "DS-2CD3T", "台", 400, 1200),
    ("复印纸", "A4 70g", "箱", 100, 200), ("LED灯具", "T8 18W", "只", 20, 60), ("安全帽", "ABS", "顶", 30, 80),
    ("医用口罩", "YY0469", "箱", 300, 800), ("电动叉车", "CPD20", "台", 60000, 120000), ("硒鼓", "CF217A", "个", 200, 500),
)  # fmt: skip
EN_GOODS = (
    ("Industrial controller", "PLC-S200", "unit", 400, 1800), ("Servo motor", "SM-750W", "pcs", 120, 450),
    ("Network switch", "S5735-48T", "unit", 450, 1300), ("Laptop computer", "T14 Gen4", "pcs", 700, 1400),
    ("Rack server", "R740 2U", "unit", 4500, 12000), ("Stainless steel sheet", "304, 2.0 mm", "t", 2100, 2900),
    ("Copper cable", "YJV 3x95", "m", 20, 60), ("Office chair", "ERG-200", "pcs", 110, 350),
    ("Monitor", "27 in 4K", "pcs", 220, 520), ("UPS unit", "10 kVA", "unit", 1200, 2900),
    ("Air compressor", "GA-37", "unit", 6000, 13000), ("CCTV camera", "DS-2CD3T", "pcs", 60, 180),
    ("LED luminaire", "T8 18 W", "pcs", 4, 10), ("Safety helmet", "ABS", "pcs", 5, 12),
    ("Electric forklift", "CPD20", "unit", 9000, 17000), ("Toner cartridge", "CF217A", "pcs", 30, 75),
)  # fmt: skip


# how long terms run, in months, by contract type
TERM_MONTHS: dict[str, tuple[int, ...]] = {
    "employment": (12, 24, 36, 36, 60), "lease": (12, 24, 36, 60), "loan": (6, 12, 12, 24, 36),
    "construction": (6, 8, 10, 12, 18), "nda": (12, 24, 36, 60),
}  # fmt: skip


@dataclass
class Clause:
    title: str
    paras: list[str]
    table: Table | None = None  # drawn after the first paragraph


@dataclass
class Built:
    """A document before layout: blocks and everything its ground truth needs."""

    cls: str
    lang: str
    title: str
    layout: str
    blocks: list[Block]
    tags: list[str]
    fields: dict[str, Any] = field(default_factory=dict)
    surface: dict[str, list[str]] = field(default_factory=dict)
    distractors: list[Distractor] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    questions: list[tuple[str, str, str]] = field(default_factory=list)  # (question, answer, field)


class Writer:
    """Shared helpers of the builders: date and amount formats fixed per document, truth notes."""

    def __init__(self, rng: random.Random, reg: Registry, lang: str) -> None:
        self.rng = rng
        self.reg = reg
        self.lang = lang
        self.zh = lang == "zh"
        self.ds = rng.choice(ZH_DATE_STYLES if self.zh else EN_DATE_STYLES)
        self.surface: dict[str, list[str]] = {}
        self.distractors: list[Distractor] = []

    def d(self, value: date) -> str:
        return fmt_date(value, self.lang, self.ds)

    def note(self, name: str, text: str) -> str:
        if text not in self.surface.setdefault(name, []):
            self.surface[name].append(text)
        return text

    def distract(self, name: str, text: str, kind: str) -> str:
        self.distractors.append({"field": name, "text": text, "kind": kind})
        return text

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]


def cap(text: str) -> str:
    """First letter upper-cased, the rest kept ("the Seller" → "The Seller")."""
    return text[:1].upper() + text[1:]


def _signing_day(rng: random.Random) -> date:
    return date(2019, 1, 1) + timedelta(days=rng.randrange(0, 8 * 365))


def _round_to(value: float, step: int) -> Decimal:
    return Decimal(max(step, round(value / step) * step))


class ContractWriter(Writer):
    """Writes one contract of a type, in a language and layout, and records its truth."""

    def __init__(  # noqa: PLR0912 - every field is optional, each decided here
        self, rng: random.Random, reg: Registry, lang: str, *, ctype: str, layout: str, style: Style, long: bool = False
    ) -> None:
        super().__init__(rng, reg, lang)
        self.ctype, self.layout, self.style, self.long = ctype, layout, style, long
        self.title = self.plain_title = self.pick(TITLES[ctype][lang])
        if not self.zh and rng.random() < 0.5:
            self.title = self.title.upper()  # as printed at the top; plain_title is for sentences
        self.currency = "CNY"
        if self.zh and ctype in ("purchase", "sales", "license") and rng.random() < 0.15:
            self.currency = "USD"
        elif not self.zh:
            self.currency = self.pick(("USD", "USD", "USD", "EUR", "HKD", "CNY"))
        self.ams = self.pick(AMOUNT_STYLES[lang][self.currency])
        simple = {"CNY": ("yen", "yuan", "rmb") if self.zh else ("rmb", "cny")}
        self.small_style = self.pick(simple.get(self.currency, AMOUNT_STYLES[lang][self.currency][:1]))
        if self.small_style == "usd_words":  # pragma: no cover - the simple styles exclude it
            self.small_style = "usd"
        # dates: signed, then the term starts the same day or a little later
        self.signed = _signing_day(rng)
        self.start = self.signed + timedelta(days=self.pick((0, 0, 1, 5, 10, 14)))
        if rng.random() < 0.6:
            self.start = (
                date(self.start.year, self.start.month, 1)
                if self.start.day == 1
                else add_months(date(self.start.year, self.start.month, 1), 1)
            )
        self.months: int = self.pick(TERM_MONTHS.get(ctype, (6, 12, 12, 24, 36)))
        self.end = term_end(self.start, self.months)
        # which fields this contract leaves out (absence is tested too)
        self.has_number = rng.random() > 0.12
        self.has_signing = rng.random() > 0.15
        self.has_period = rng.random() > (0.5 if ctype in ("purchase", "sales") else 0.1)
        self.has_amount = ctype not in ("employment", "nda") and rng.random() > {"lease": 0.35, "agency": 0.5}.get(
            ctype, 0.08
        )
        self.amount: Decimal | None = None
        # parties
        ind_a, ind_b = TYPE_INDUSTRIES[ctype]
        self.a = reg.org(rng, lang, self.pick(ind_a))
        self.b = reg.person(rng, lang) if ctype == "employment" else reg.org(rng, lang, self.pick(ind_b))
        self.c: Org | None = None
        if ctype == "loan" and rng.random() < 0.4:
            self.c = reg.org(rng, lang, self.pick(("finance", "trading", "tech")))
        if self.zh:
            self.la, self.lb = self.pick(ZH_LABELS[ctype])
            self.lc = self.pick(("保证人（丙方）", "丙方（保证人）"))
            self.sa, self.sb = (self._short(self.la, "甲方"), self._short(self.lb, "乙方"))
            self.sc = "丙方" if "丙方" in self.lc else "保证人"
        else:
            self.la, self.lb = self.pick(EN_ROLES[ctype])
            self.lc = "Guarantor"
            self.sa, self.sb, self.sc = (f"the {self.la}", f"the {self.lb}", "the Guarantor")
            if self.la.startswith("Party"):
                self.sa, self.sb = self.la, self.lb
        prefix = NUMBER_PREFIX[ctype][0 if self.zh else 1]
        self.number = reg.number(rng, prefix, self.signed.year, self.signed)
        self.sign_at = (
            self.pick(("sig", "sig", "header", "end")) if self.zh else self.pick(("sig", "sig", "preamble", "header"))
        )
        self.fields: dict[str, Any] = {"contract_type": {"type": ctype}}
        self.note("contract_type", self.title)
        self.parties: list[dict[str, str]] = [
            {"role": "party_a", "name": self.a.name},
            {"role": "party_b", "name": self.b.name},
        ]
        if self.c:
            self.parties.append({"role": "party_c", "name": self.c.name})
        self.fields["parties"] = self.parties
        for party in self.parties:
            self.note("parties", party["name"])
        if self.has_number:
            self.fields["contract_number"] = {"number": self.number}
            self.note("contract_number", self.number)
        if self.has_signing:
            self.fields["signing_date"] = {"date": self.signed.isoformat()}
            self.note("signing_date", self.d(self.signed))
        if self.has_period:
            self.fields["valid_period"] = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        self.premises = ""
        self.questions: list[tuple[str, str, str]] = []

    @staticmethod
    def _short(label: str, fallback: str) -> str:
        return fallback if fallback in label else label

    # -- values ------------------------------------------------------------------------------

    def total(self, value: Decimal, style: str | None = None) -> str:
        """The contract total, as this contract writes it; recorded as the ``amount`` truth."""
        self.amount = value
        self.fields["amount"] = {"amount": f"{value:.2f}", "currency": self.currency}
        return self.note("amount", fmt_amount(value, self.currency, style or self.ams))

    def small(self, value: Decimal, kind: str) -> str:
        """An amount that is not the total (a deposit, a penalty, an instalment)."""
        if self.amount is not None and value == self.amount:
            value += Decimal("100")
        return self.distract("amount", fmt_amount(value, self.currency, self.small_style), kind)

    def period(self) -> str:
        """The term, as a phrase that follows 租赁期限 / "The Premises are let ..."; records its truth."""
        s, e = self.d(self.start), self.d(self.end)
        m = self.months
        if self.zh:
            dur = (
                ("一年", "两年", "三年", "四年", "五年")[m // 12 - 1]
                if m % 12 == 0 and m <= 60
                else f"{zh_number(m) if m < 20 else m}个月"
            )
            forms = [
                (f"自{s}起至{e}止", [s, e]),
                (f"为{s}至{e}", [s, e]),
                (f"自{s}至{e}", [s, e]),
                (f"为{dur}，自{s}起计算", [dur, s]),
                (f"为{dur}，自{s}起至{e}止", [dur, s, e]),
                (f"为{dur}，自{s}起", [dur, s]),
            ]
        else:
            dur = en_count(m // 12) + (" year" if m == 12 else " years") if m % 12 == 0 else en_count(m) + " months"
            forms = [
                (f"from {s} to {e} (both dates inclusive)", [s, e]),
                (f"for a term of {dur} commencing on {s}", [dur, s]),
                (f"for a period of {dur} from {s}", [dur, s]),
                (f"commencing on {s} and ending on {e}", [s, e]),
                (f"from {s} until {e}", [s, e]),
            ]
        text: str
        text, parts = self.pick(forms)
        for part in parts:
            self.note("valid_period", part)
        return text

    def money_rows(self, rows: Sequence[tuple[str, ...]]) -> None:
        total = money(self.amount) if self.amount is not None else None
        for row in rows:
            for cell in row:
                if re.fullmatch(r"[\d,]+\.\d\d", cell) and cell != total:
                    self.distract("amount", cell, "table")

    # -- purchase and sales ------------------------------------------------------------------

    def _goods(self, rows: int) -> list[tuple[str, str, str, int, Decimal]]:
        catalog = ZH_GOODS if self.zh else EN_GOODS
        picked = self.rng.sample(range(len(catalog)), min(rows, len(catalog)))
        out = []
        for index in picked:
            name, spec, unit, low, high = catalog[index]
            price = Decimal(self.rng.randint(low, high)) + (Decimal("0.50") if self.rng.random() < 0.2 else 0)
            qty = (
                self.rng.choice((1, 2, 3, 5, 8, 10, 12, 20, 50))
                if high > 1000
                else self.rng.choice((20, 50, 100, 200, 500))
            )
            if rows == 1:
                qty = max(qty, 2)  # one line of one item would make its price the total
            out.append((name, spec, unit, qty, price))
        return out

    def _goods_table(self, goods: list[tuple[str, str, str, int, Decimal]], total: Decimal) -> Table:
        """The table of goods; with a total row only when the contract states its total."""
        stated = self.amount is not None
        head: tuple[str, ...]
        body: list[tuple[str, ...]]
        last: tuple[str, ...]
        if self.zh:
            cur = "（元）" if self.currency == "CNY" else "（美元）"
            head = ("序号", "货物名称", "规格型号", "单位", "数量", f"单价{cur}", f"金额{cur}")
            if not stated:
                head = (*head[:4], "预计数量", f"单价{cur}")
            body = [
                (str(i), n, s, u, str(q), money(p), money(p * q)) for i, (n, s, u, q, p) in enumerate(goods, start=1)
            ]
            last = ("合计", "", "", "", "", "", money(total))
            align = ("center", "left", "left", "center", "right", "right", "right")
        else:
            head = ("No.", "Description", "Model", "Qty", f"Unit Price ({self.currency})", "Amount")
            if not stated:
                head = (*head[:3], "Est. Qty", f"Unit Price ({self.currency})")
            body = [
                (str(i), n, s, f"{q} {u}s" if u == "unit" and q > 1 else f"{q} {u}", money(p), money(p * q))
                for i, (n, s, u, q, p) in enumerate(goods, start=1)
            ]
            last = ("Total", "", "", "", "", money(total))
            align = ("center", "left", "left", "right", "right", "right")
        if not stated:
            body = [row[:-1] for row in body]
        self.money_rows(body)
        rows = [head, *body, last] if stated else [head, *body]
        if stated:
            self.note("amount", money(total))
        fallback = tuple(
            Para("; ".join(f"{h}: {c}" for h, c in zip(head[1:], row[1:], strict=True)), hang=f"{row[0]}. ")
            for row in rows[1:]
        )
        return Table(tuple(rows), align=align, fallback=fallback)

    def _trade(self) -> list[Clause]:  # noqa: PLR0912 - one branch per wording
        zh, rng = self.zh, self.rng
        buyer, seller = (self.sa, self.sb) if self.ctype == "purchase" else (self.sb, self.sa)
        buyer_org = self.a if self.ctype == "purchase" else self.b
        goods = self._goods(rng.randint(1, 4) if not self.long else 6)
        total = sum((p * q for *_, q, p in goods), Decimal(0))
        total_text = self.total(total) if self.has_amount else ""
        listed = self.layout == "clauses" and rng.random() < 0.6
        deliver = self.signed + timedelta(days=rng.choice((15, 20, 30, 45, 60)))
        clauses: list[Clause] = []
        tax = rng.choice((13, 13, 9, 6))
        if zh:
            intro = f"{buyer}向{seller}采购下列货物，货物名称、规格型号、数量及价格如下："
            if listed:
                paras = [intro]
                for i, (n, s, u, q, p) in enumerate(goods, start=1):
                    paras.append(f"（{i}）{n}，规格型号{s}，数量{q}{u}，单价{self.small(p, 'unit_price')}。")
                if total_text:
                    paras.append(f"合同总价为{total_text}，已包含货物价款、包装费、运输费、保险费及{tax}%增值税。")
                clauses.append(Clause("货物名称、规格、数量及价格", paras))
            else:
                table = self._goods_table(goods, total)
                after = (
                    f"合同总价为{total_text}，该价格已包含货物价款、包装费、运输费、安装调试费及{tax}%增值税。"
                    if total_text
                    else f"上述价格含{tax}%增值税，最终结算金额以实际交货数量为准。"
                )
                clauses.append(Clause("标的物及价格", [intro, after], table=table))
            clauses.append(
                Clause(
                    "质量标准",
                    [
                        f"{seller}所提供的货物应为全新、未使用过的合格产品，符合国家标准、行业标准及本合同约定的技术要求，并随货提供产品合格证、使用说明书及质量检验报告。"
                    ],
                )
            )
            clauses.append(Clause("交货时间、地点及方式", [
                f"{seller}应于{self.d(deliver)}前将全部货物送达{buyer}指定地点：{buyer_org.address}。",
                f"货物由{seller}负责运输，运输费用及货物运抵交货地点前的毁损、灭失风险由{seller}承担。",
            ]))  # fmt: skip
            clauses.append(
                Clause(
                    "验收",
                    [
                        f"货物送达后，{buyer}应在{rng.choice((3, 5, 7))}个工作日内组织验收。验收不合格的，{seller}应在接到书面通知后{rng.choice((5, 7, 10))}日内免费更换或补足，由此产生的费用由{seller}承担。"
                    ],
                )
            )
            if total_text or rng.random() < 0.5:
                base = total if total else Decimal(rng.randint(50, 500) * 1000)
                adv = self.small((base * Decimal("0.3")).quantize(Decimal("0.01")), "advance_payment")
                pay = [
                    f"本合同签订后{rng.choice((5, 7, 10))}个工作日内，{buyer}向{seller}支付合同总价的30%作为预付款，即{adv}；货物验收合格并收到{seller}开具的合法有效的增值税专用发票后{rng.choice((15, 30))}日内，{buyer}支付剩余货款。"
                ]
                if rng.random() < 0.5:
                    ret = self.small((base * Decimal("0.05")).quantize(Decimal("0.01")), "retention")
                    pay.append(
                        f"剩余货款中合同总价的5%即{ret}作为质量保证金，在质量保证期满且无质量问题后{rng.choice((10, 15, 30))}日内无息退还。"
                    )
                clauses.append(Clause("付款方式", pay))
            clauses.append(
                Clause(
                    "质量保证",
                    [
                        f"质量保证期为货物验收合格之日起{rng.choice(('十二', '十八', '二十四'))}个月。质保期内因产品质量问题造成的故障，{seller}应在接到通知后{rng.choice((4, 8, 24))}小时内响应，并免费维修或更换。"
                    ],
                )
            )
            penalty = [
                f"{seller}逾期交货的，每逾期一日，应按逾期交货部分货款的千分之五向{buyer}支付违约金；逾期超过{rng.choice((10, 15, 30))}日的，{buyer}有权解除合同。"
            ]
            if rng.random() < 0.5:
                penalty.append(
                    f"{buyer}无正当理由逾期付款的，每逾期一日，应按逾期付款金额的万分之五向{seller}支付违约金。"
                )
            else:
                penalty.append(
                    f"任何一方违反本合同约定的，应向守约方支付违约金{self.small(_round_to(float(total or 100000) * 0.1, 1000), 'penalty')}；违约金不足以弥补损失的，还应赔偿差额部分。"
                )
            clauses.append(Clause("违约责任", penalty))
            if self.has_period:
                clauses.append(
                    Clause(
                        "合同有效期",
                        [
                            f"本合同有效期{self.period()}。有效期内{buyer}可根据需要另行下达采购订单，订单价格按本合同约定执行。"
                        ],
                    )
                )
        else:
            intro = f'{cap(seller)} agrees to sell and {buyer} agrees to purchase the goods set out below (the "Goods") on the terms of this Agreement.'
            if listed:
                paras = [intro]
                for i, (n, s, u, q, p) in enumerate(goods, start=1):
                    paras.append(
                        f"({chr(96 + i)}) {n}, model {s}, quantity {q} {u}, unit price {self.small(p, 'unit_price')}."
                    )
                if total_text:
                    paras.append(
                        f"The total contract price is {total_text}, inclusive of packaging, freight to the delivery point and insurance."
                    )
                clauses.append(Clause("Goods and Price", paras))
            else:
                table = self._goods_table(goods, total)
                after = (
                    f"The total contract price is {total_text}, inclusive of packaging, freight, insurance and all applicable taxes."
                    if total_text
                    else "Prices are fixed for the duration of this Agreement and exclusive of VAT."
                )
                clauses.append(Clause("Goods and Price", [intro, after], table=table))
            clauses.append(Clause("Delivery", [
                f"{cap(seller)} shall deliver the Goods DAP (Incoterms 2020) to {buyer_org.address} no later than {self.d(deliver)}.",
                f"Title to and risk in the Goods shall pass to {buyer} on delivery.",
            ]))  # fmt: skip
            clauses.append(
                Clause(
                    "Inspection and Acceptance",
                    [
                        f"{cap(buyer)} shall inspect the Goods within {en_count(rng.choice((5, 7, 10)))} business days after delivery and notify {seller} in writing of any defect or shortage. {cap(seller)} shall replace defective Goods at its own cost."
                    ],
                )
            )
            if total_text or rng.random() < 0.5:
                base = total if total else Decimal(rng.randint(50, 500) * 100)
                adv = self.small((base * Decimal("0.3")).quantize(Decimal("0.01")), "advance_payment")
                clauses.append(
                    Clause(
                        "Payment",
                        [
                            f"{cap(buyer)} shall pay an advance of thirty per cent (30%) of the contract price, being {adv}, within {en_count(rng.choice((7, 10, 14)))} days after signing, and the balance within thirty (30) days after acceptance of the Goods and receipt of a valid invoice."
                        ],
                    )
                )
            clauses.append(
                Clause(
                    "Warranty",
                    [
                        f"{cap(seller)} warrants that the Goods are new, of merchantable quality and free from defects in design, materials and workmanship for {en_count(rng.choice((12, 18, 24)))} months from acceptance."
                    ],
                )
            )
            late = f"If {seller} fails to deliver the Goods on time, it shall pay liquidated damages of 0.5% of the price of the delayed Goods for each day of delay, up to ten per cent (10%) of the contract price."
            if rng.random() < 0.5:
                late += f" In any event the liquidated damages shall not exceed {self.small(_round_to(float(total or 10000) * 0.1, 100), 'penalty')}."
            clauses.append(Clause("Late Delivery", [late]))
            if self.has_period:
                clauses.append(
                    Clause(
                        "Term",
                        [
                            f"This Agreement shall remain in force {self.period()}, and purchase orders issued during the term shall be governed by it."
                        ],
                    )
                )
        return clauses

    # -- services, leases, employment --------------------------------------------------------

    def _schedule(self, total: Decimal, parts: Sequence[tuple[str, int]]) -> Table:
        """A payment schedule: instalments are distractors, the total row is the total."""
        rows: list[tuple[str, ...]] = [
            ("期次", "付款条件", "比例", "金额（元）")
            if self.zh
            else ("Instalment", "Due", "Share", f"Amount ({self.currency})")
        ]
        paid = Decimal(0)
        for index, (when, pct) in enumerate(parts, start=1):
            value = (total * pct / 100).quantize(Decimal("0.01")) if index < len(parts) else total - paid
            paid += value
            rows.append((f"第{index}期" if self.zh else str(index), when, f"{pct}%", money(value)))
        self.money_rows(rows[1:])
        rows.append(("合计" if self.zh else "Total", "", "100%", money(total)))
        self.note("amount", money(total))
        return Table(tuple(rows), align=("center", "left", "right", "right"))

    def _service(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        monthly = _round_to(rng.uniform(8000, 90000) if zh else rng.uniform(1500, 15000), 500)
        total = monthly * self.months
        tasks_zh = {
            "运维": (
                "服务器、存储及网络设备的日常巡检与维护",
                "系统故障的排查、处理与根因分析",
                "数据备份及恢复演练",
                "每月提交运维服务报告",
            ),
            "咨询": (
                "现状调研与问题诊断",
                "管理制度及业务流程优化方案设计",
                "方案落地辅导及培训",
                "阶段性咨询报告的编制",
            ),
            "物业": (
                "公共区域的保洁与绿化养护",
                "门岗值守及安全巡逻",
                "供配电、给排水及电梯设备的运行维护",
                "访客及车辆管理",
            ),
            "技术": ("软件系统的技术支持与远程诊断", "版本升级与补丁更新", "用户操作培训", "重大活动期间的现场保障"),
        }
        key = (
            "运维"
            if "运维" in self.title
            else "咨询"
            if "咨询" in self.title
            else "物业"
            if "物业" in self.title
            else "技术"
        )
        tasks_en = {
            "maintenance": (
                "preventive maintenance of the equipment listed in Schedule 1",
                "corrective repairs within the agreed response times",
                "quarterly condition reports",
            ),
            "consulting": (
                "a review of the Client's current processes",
                "recommendations and an implementation roadmap",
                "workshops and training for the Client's staff",
            ),
            "it": (
                "a service desk available on business days from 8:00 to 18:00",
                "monitoring of servers and network devices",
                "patch management and monthly service reports",
            ),
        }
        low = self.title.lower()
        key_en = "maintenance" if "maintenance" in low else "consulting" if "consult" in low else "it"
        stated = self.has_amount
        clauses: list[Clause] = []
        if zh:
            items = "；".join(f"（{i}）{t}" for i, t in enumerate(tasks_zh[key], start=1))
            clauses.append(
                Clause(
                    "服务内容",
                    [
                        f"{b}按照本合同约定为{a}提供{key}服务，服务内容包括：{items}。",
                        f"服务地点为{a}位于{self.a.address}的办公场所。",
                    ],
                )
            )
            if self.has_period:
                clauses.append(
                    Clause("服务期限", [f"本合同服务期限{self.period()}。服务期满前三十日，双方可协商续签事宜。"])
                )
            fee = [f"服务费按月计算，每月服务费为{self.small(monthly, 'instalment')}（含税）。"]
            table = None
            if stated:
                fee.insert(0, f"本合同服务费总额为{self.total(total)}。")
                if self.layout == "goods_table":
                    table = self._schedule(
                        total, (("合同签订后10日内", 30), ("服务期过半后10日内", 40), ("服务期满验收后10日内", 30))
                    )
                    fee.insert(1, "服务费按下表分期支付：")
            fee.append(f"{a}应在收到{b}开具的合法有效发票后{rng.choice((7, 10, 15))}个工作日内支付相应款项。")
            clauses.append(Clause("服务费用及支付方式", fee, table=table))
            clauses.append(
                Clause(
                    "服务标准",
                    [
                        f"{b}应保证服务人员具备相应的专业资质。对于紧急故障，{b}应在接到报修后{rng.choice((30, 60))}分钟内响应，{rng.choice((2, 4))}小时内到达现场。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "双方的权利和义务",
                    [
                        f"{a}应为{b}提供必要的工作条件和资料，并指定专人负责联络。",
                        f"{b}应遵守{a}的安全管理及保密制度，未经{a}同意不得将本合同项下的服务转包给第三方。",
                    ],
                )
            )
        else:
            items = "; ".join(f"({chr(97 + i)}) {t}" for i, t in enumerate(tasks_en[key_en]))
            clauses.append(
                Clause("Services", [f'{cap(b)} shall provide the following services to {a} (the "Services"): {items}.'])
            )
            if self.has_period:
                clauses.append(
                    Clause(
                        "Term",
                        [
                            f"This Agreement shall remain in force {self.period()}, unless terminated earlier in accordance with its terms."
                        ],
                    )
                )
            fee = [f"The monthly service fee is {self.small(monthly, 'instalment')}, payable monthly in arrears."]
            table = None
            if stated:
                fee.insert(0, f"The total fee for the Services over the Term is {self.total(total)}.")
                if self.layout == "goods_table":
                    table = self._schedule(
                        total, (("On signing", 30), ("Mid-term review", 40), ("Final acceptance", 30))
                    )
                    fee.insert(1, "The fee shall be paid in the instalments below:")
            fee.append(f"Invoices are payable within {en_count(rng.choice((14, 30)))} days of receipt.")
            clauses.append(Clause("Fees and Payment", fee, table=table))
            clauses.append(
                Clause(
                    "Service Levels",
                    [
                        f"{cap(b)} shall respond to a critical incident within {en_count(rng.choice((1, 2)))} hour(s) and restore the affected service within {en_count(rng.choice((4, 8)))} hours."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Personnel",
                    [
                        f"{cap(b)} shall assign suitably qualified personnel and shall not subcontract the Services without the prior written consent of {a}."
                    ],
                )
            )
        return clauses

    def _lease(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        area = Decimal(rng.randint(80, 2400)) + (Decimal("0.5") if rng.random() < 0.3 else 0)
        rate = Decimal(rng.randint(45, 220) if zh else rng.randint(15, 60))
        monthly = (area * rate).quantize(Decimal("1"))
        total = monthly * self.months
        building, floor = rng.randint(1, 12), rng.randint(2, 28)
        unit = f"{floor}{rng.randint(1, 12):02d}"
        use = self.pick(("办公", "仓储", "生产及办公") if zh else ("office", "warehousing", "light industrial"))

        def premises() -> str:
            if zh:
                city = self.a.city
                return f"{city}市{self.pick(ZH_CITIES[city][1])}{self.pick(ZH_ROADS)}{rng.randint(1, 399)}号{building}号楼{unit}室"
            return f"Unit {unit}, {floor}/F, Building {building}, {rng.randint(2, 240)} {self.pick(EN_STREETS)}, {self.a.city}"

        self.premises = self.reg._unique(premises)
        deposit = self.small(monthly * self.pick((2, 3)), "deposit")
        clauses: list[Clause] = []
        if zh:
            clauses.append(
                Clause(
                    "租赁房屋",
                    [
                        f"{a}将位于{self.premises}的房屋（以下简称“该房屋”）出租给{b}使用，建筑面积为{area}平方米，租赁用途为{use}。{b}不得擅自改变房屋用途。"
                    ],
                )
            )
            if self.has_period:
                clauses.append(
                    Clause(
                        "租赁期限",
                        [
                            f"租赁期限{self.period()}。",
                            f"租赁期满，{b}需继续承租的，应于期满前{rng.choice((30, 60, 90))}日向{a}提出书面申请，同等条件下{b}享有优先承租权。",
                        ],
                    )
                )
            rent = [
                f"该房屋月租金为{self.small(monthly, 'monthly_rent')}（每平方米每月{rate}元），租金按{self.pick(('季度', '半年', '月'))}支付，{b}应于每期开始前{rng.choice((5, 10))}日内支付当期租金。"
            ]
            table = None
            if self.has_amount:
                rent.append(f"租赁期内租金总额为{self.total(total)}。")
                if self.layout == "goods_table":
                    table = self._schedule(total, (("租赁期第一年", 30), ("租赁期第二年", 30), ("其余租期", 40)))
            clauses.append(Clause("租金及支付方式", rent, table=table))
            clauses.append(
                Clause(
                    "押金",
                    [
                        f"{b}应于本合同签订之日向{a}支付房屋押金{deposit}。租赁期满且{b}结清全部费用并返还房屋后，{a}应在{rng.choice((7, 10, 15))}个工作日内将押金无息退还。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "其他费用",
                    [
                        f"租赁期内，该房屋的水费、电费、燃气费、网络通信费及物业管理费由{b}承担。物业管理费标准为每平方米每月{rng.randint(5, 25)}元。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "房屋的使用与维修",
                    [
                        f"{b}应合理使用该房屋及其附属设施。因{b}使用不当造成房屋或设施损坏的，{b}应负责修复或赔偿。房屋主体结构的维修由{a}负责。",
                        f"未经{a}书面同意，{b}不得将该房屋转租、转借他人，不得对房屋进行改建或扩建。",
                    ],
                )
            )
            clauses.append(
                Clause(
                    "房屋的返还", [f"租赁期满或合同解除后，{b}应在{rng.choice((5, 10))}日内将该房屋恢复原状后返还{a}。"]
                )
            )
        else:
            clauses.append(
                Clause(
                    "Premises",
                    [
                        f'{cap(a)} lets to {b} the premises at {self.premises}, with a gross floor area of approximately {area} square metres (the "Premises"), for use as {use} premises only.'
                    ],
                )
            )
            if self.has_period:
                clauses.append(
                    Clause(
                        "Term",
                        [
                            f'The Premises are let {self.period()} (the "Term").',
                            f"{cap(b)} may request a renewal by written notice given at least {en_count(self.pick((3, 6)))} months before the end of the Term.",
                        ],
                    )
                )
            rent = [
                f"The monthly rent is {self.small(monthly, 'monthly_rent')}, exclusive of management fees and utilities, payable quarterly in advance."
            ]
            table = None
            if self.has_amount:
                rent.append(f"The total rent payable for the Term is {self.total(total)}.")
            clauses.append(Clause("Rent", rent, table=table))
            clauses.append(
                Clause(
                    "Deposit",
                    [
                        f"On signing, {b} shall pay a security deposit of {deposit}, to be refunded without interest within {en_count(self.pick((14, 30)))} days after the end of the Term, less any sums owed."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Use and Repair",
                    [
                        f"{cap(b)} shall keep the interior of the Premises in good and clean condition and shall not make structural alterations without the prior written consent of {a}. {cap(a)} remains responsible for the structure and common parts."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Assignment and Subletting",
                    [
                        f"{cap(b)} shall not assign, sublet or part with possession of the whole or any part of the Premises."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Yield Up",
                    [
                        f"At the end of the Term {b} shall vacate the Premises and return them in the condition required by this Agreement, fair wear and tear excepted."
                    ],
                )
            )
        return clauses

    def _employment(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        position = self.pick(
            (
                "软件工程师",
                "销售经理",
                "财务专员",
                "行政主管",
                "生产主管",
                "质量工程师",
                "人力资源专员",
                "采购专员",
                "产品经理",
            )
            if zh
            else (
                "Software Engineer",
                "Sales Manager",
                "Finance Officer",
                "Operations Supervisor",
                "Quality Engineer",
                "HR Specialist",
                "Procurement Officer",
                "Product Manager",
            )
        )
        salary = _round_to(rng.uniform(6000, 40000) if zh else rng.uniform(2500, 9000), 100)
        probation_end = term_end(self.start, 3 if self.months >= 36 else 2 if self.months >= 12 else 1)
        self.extra_position = position
        clauses: list[Clause] = []
        if zh:
            term = [
                f"本合同为固定期限劳动合同，合同期限{self.period()}。"
                if self.has_period
                else "本合同为无固定期限劳动合同。"
            ]
            term.append(
                self.distract(
                    "valid_period", f"其中试用期自{self.d(self.start)}起至{self.d(probation_end)}止。", "probation"
                )
            )
            clauses.append(Clause("劳动合同期限", term))
            clauses.append(
                Clause(
                    "工作内容和工作地点",
                    [
                        f"{b}同意根据{a}工作需要，担任{position}岗位工作，工作地点为{self.a.city}市。{a}因生产经营需要调整{b}工作岗位的，应与{b}协商一致。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "工作时间和休息休假",
                    [
                        f"{a}实行标准工时制度，{b}每日工作时间不超过八小时，每周工作时间不超过四十小时。{b}依法享受法定节假日、带薪年休假、婚假、产假等假期。"
                    ],
                )
            )
            pay = f"{b}月工资为{self.small(salary, 'salary')}（税前），试用期月工资为{self.small((salary * Decimal('0.8')).quantize(Decimal('1')), 'salary')}。{a}于每月{rng.choice((10, 15, 25))}日前以货币形式支付{b}上月工资。"
            clauses.append(Clause("劳动报酬", [pay]))
            clauses.append(
                Clause(
                    "社会保险和福利待遇",
                    [
                        f"{a}按照国家和{self.a.city}市的有关规定为{b}缴纳基本养老、医疗、失业、工伤、生育保险费和住房公积金，个人缴纳部分由{a}从{b}工资中代扣代缴。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "劳动保护和劳动条件",
                    [
                        f"{a}为{b}提供符合国家规定的劳动安全卫生条件和必要的劳动防护用品，并对{b}进行安全生产教育和岗位培训。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "劳动合同的解除和终止",
                    [
                        f"经双方协商一致，本合同可以解除。{b}提前三十日以书面形式通知{a}，可以解除本合同；在试用期内提前三日通知{a}，可以解除本合同。",
                        "本合同的解除和终止依照《中华人民共和国劳动合同法》的有关规定执行。",
                    ],
                )
            )
        else:
            term = [
                f"The employment under this Agreement is for a fixed term {self.period()}."
                if self.has_period
                else "The employment under this Agreement is for an indefinite period."
            ]
            term.append(
                self.distract(
                    "valid_period",
                    f"The first three months, ending on {self.d(probation_end)}, are a probationary period.",
                    "probation",
                )
            )
            clauses.append(Clause("Commencement and Term", term))
            clauses.append(
                Clause(
                    "Position and Duties",
                    [
                        f"{cap(a)} employs {b} as {position}. {cap(b)} shall perform the duties reasonably assigned by {a} and report to the head of department."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Place of Work and Hours",
                    [
                        f"The normal place of work is {self.a.address}. Normal working hours are 9:00 to 18:00, Monday to Friday, with one hour for lunch."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Remuneration",
                    [
                        f"{cap(b)} shall receive a gross monthly salary of {self.small(salary, 'salary')}, payable in arrears on or before the last working day of each month, subject to statutory deductions."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Annual Leave",
                    [
                        f"{cap(b)} is entitled to {en_count(self.pick((15, 20, 25)))} working days of paid annual leave in each calendar year in addition to public holidays."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Termination",
                    [
                        f"After the probationary period either party may terminate the employment by giving {en_count(self.pick((1, 2, 3)))} month(s) written notice to the other."
                    ],
                )
            )
        return clauses

    # -- NDAs, loans, licences, construction, agency -----------------------------------------

    def _nda(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        project = self.pick(
            ("智能仓储系统", "新能源电池管理系统", "医疗影像平台", "工业互联网平台", "供应链金融")
            if zh
            else (
                "smart warehousing",
                "battery management",
                "medical imaging",
                "industrial IoT",
                "supply chain finance",
            )
        )
        survive = self.pick((2, 3, 5))
        penalty = self.small(
            _round_to(rng.uniform(50000, 1000000) if zh else rng.uniform(10000, 200000), 10000), "penalty"
        )
        clauses: list[Clause] = []
        if zh:
            clauses.append(
                Clause(
                    "保密信息",
                    [
                        f"本协议所称保密信息，是指{a}以书面、口头、电子或其他任何形式向{b}披露的，与双方拟开展的{project}合作项目有关的技术信息和经营信息，包括但不限于设计图纸、源代码、技术方案、客户名单、报价及财务数据。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "保密义务",
                    [
                        f"{b}应对保密信息严格保密，仅将其用于本协议约定的目的，并仅向确有必要知悉的员工披露。未经{a}书面同意，{b}不得向任何第三方披露保密信息。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "例外情形",
                    [
                        "下列信息不属于保密信息：（1）披露时已为公众所知悉的信息；（2）接收方在披露前已合法掌握的信息；（3）接收方从有权披露的第三方合法获得的信息；（4）依法律法规或司法机关要求必须披露的信息。"
                    ],
                )
            )
            term = [
                f"本协议有效期{self.period()}。"
                if self.has_period
                else "本协议自双方签字盖章之日起生效，直至双方书面确认终止时止。"
            ]
            term.append(f"本协议终止后，{b}的保密义务仍持续{zh_number(survive)}年。")
            clauses.append(Clause("保密期限", term))
            clauses.append(
                Clause(
                    "资料的返还",
                    [
                        f"{a}提出要求或本协议终止时，{b}应在{rng.choice((5, 7, 10))}个工作日内返还或销毁全部载有保密信息的资料及其复制件，并书面确认。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "违约责任",
                    [f"{b}违反本协议约定的，应向{a}支付违约金{penalty}；造成{a}损失超过违约金的，还应赔偿超出部分。"],
                )
            )
            if self.layout == "goods_table":
                contact = (
                    ("项目", "甲方联系人", "乙方联系人"),
                    ("姓名", self.a.rep, self.reg.zh_person(rng)),
                    ("电话", self.a.phone, self.b.phone),
                )
                clauses.append(Clause("联系人", ["双方指定下列人员负责保密信息的交接："], table=Table(contact)))
        else:
            clauses.append(
                Clause(
                    "Confidential Information",
                    [
                        f'"Confidential Information" means all information disclosed by {a} to {b} in connection with the proposed {project} project, whether in writing, orally or electronically, including designs, source code, business plans, customer lists and pricing.'
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Obligations",
                    [
                        f"{cap(b)} shall keep the Confidential Information secret, use it only to evaluate the proposed project and disclose it only to employees and advisers who need to know it and are bound by equivalent obligations."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Exclusions",
                    [
                        "The obligations above do not apply to information that is or becomes public other than through a breach of this Agreement, was lawfully known to the recipient before disclosure, or must be disclosed by law."
                    ],
                )
            )
            term = [
                f"This Agreement shall remain in force {self.period()}."
                if self.has_period
                else "This Agreement takes effect on signature and continues until terminated by either party on written notice."
            ]
            term.append(f"The obligations of confidentiality survive for {en_count(survive)} years after termination.")
            clauses.append(Clause("Term", term))
            clauses.append(
                Clause(
                    "Return of Materials",
                    [
                        f"On request, {b} shall promptly return or destroy all documents containing Confidential Information and certify in writing that it has done so."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Remedies",
                    [
                        f"Damages alone may not be an adequate remedy for a breach of this Agreement, and {a} shall be entitled to seek injunctive relief. In addition, {b} shall pay liquidated damages of {penalty} for each breach."
                    ],
                )
            )
        return clauses

    def _loan(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        principal = _round_to(rng.uniform(200000, 10000000) if zh else rng.uniform(50000, 2000000), 10000)
        rate = self.pick(("3.85", "4.35", "4.75", "5.25", "6.00"))
        purpose = self.pick(
            ("补充流动资金", "采购原材料", "设备更新改造", "偿还到期债务")
            if zh
            else ("general working capital", "the purchase of raw materials", "capital expenditure on new equipment")
        )
        stated = self.has_amount
        clauses: list[Clause] = []
        if zh:
            amount = self.total(principal) if stated else "以实际放款金额为准"
            clauses.append(
                Clause(
                    "借款金额",
                    [
                        f"{a}同意向{b}提供借款，借款金额为{amount}。"
                        if stated
                        else f"借款金额以借据记载为准，{a}根据{b}的用款申请分次放款。"
                    ],
                )
            )
            clauses.append(Clause("借款用途", [f"本合同项下借款用于{purpose}。未经{a}书面同意，{b}不得改变借款用途。"]))
            if self.has_period:
                clauses.append(
                    Clause("借款期限", [f"借款期限{self.period()}。实际放款日与约定不一致的，借款期限相应顺延。"])
                )
            clauses.append(
                Clause("借款利率和计息", [f"借款年利率为{rate}%，按日计息，按季结息，结息日为每季末月的第二十日。"])
            )
            repay = [f"{b}应于借款到期日一次性归还全部借款本金及剩余利息。"]
            table = None
            if self.layout == "goods_table" and stated:
                repay = [f"{b}应按下表约定分期归还借款本金，利息按季支付："]
                rows: list[tuple[str, ...]] = [("期数", "还款日期", "应还本金（元）")]
                parts = 3
                for k in range(1, parts + 1):
                    when = term_end(self.start, self.months * k // parts)
                    share = (
                        (principal / parts).quantize(Decimal("0.01"))
                        if k < parts
                        else principal - (principal / parts).quantize(Decimal("0.01")) * (parts - 1)
                    )
                    rows.append((str(k), self.distract("signing_date", self.d(when), "repayment_date"), money(share)))
                self.money_rows(rows[1:])
                table = Table(tuple(rows), align=("center", "left", "right"))
            clauses.append(Clause("还款方式", repay, table=table))
            clauses.append(
                Clause("放款账户", [f"{a}将借款发放至{b}的下列账户：开户行{self.b.bank}，账号{self.b.account}。"])
            )
            if self.c:
                clauses.append(
                    Clause(
                        "担保",
                        [
                            f"{self.sc}自愿为{b}在本合同项下的全部债务提供连带责任保证，保证期间为主债务履行期限届满之日起三年。"
                        ],
                    )
                )
            clauses.append(
                Clause(
                    "违约责任",
                    [
                        f"{b}未按期还款的，就逾期部分自逾期之日起按借款利率上浮百分之五十计收罚息。{b}改变借款用途的，{a}有权提前收回全部借款。"
                    ],
                )
            )
        else:
            amount = self.total(principal) if stated else ""
            clauses.append(
                Clause(
                    "The Facility",
                    [
                        f'{cap(a)} agrees to make available to {b} a term loan facility in an aggregate amount of {amount} (the "Loan").'
                        if stated
                        else f"{cap(a)} agrees to make available to {b} a revolving facility in the amounts requested by {b} from time to time and approved by {a}."
                    ],
                )
            )
            clauses.append(Clause("Purpose", [f"{cap(b)} shall apply the Loan towards {purpose} only."]))
            if self.has_period:
                clauses.append(
                    Clause(
                        "Drawdown and Term",
                        [f"The Loan shall be drawn in one amount and is made available {self.period()}."],
                    )
                )
            clauses.append(
                Clause(
                    "Interest",
                    [
                        f"Interest accrues on the outstanding Loan at a fixed rate of {rate} per cent per annum, calculated on the actual number of days elapsed and a 365-day year, and is payable quarterly in arrears."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Repayment",
                    [
                        f"{cap(b)} shall repay the Loan in full, together with accrued interest, on the final day of the term. {cap(b)} may prepay the Loan in whole or in part on {en_count(10)} business days' notice without penalty."
                    ],
                )
            )
            if self.c:
                clauses.append(
                    Clause(
                        "Guarantee",
                        [
                            f"{cap(self.sc)} irrevocably and unconditionally guarantees to {a} the punctual payment of all sums due from {b} under this Agreement."
                        ],
                    )
                )
            clauses.append(
                Clause(
                    "Events of Default",
                    [
                        f"If {b} fails to pay any sum when due, breaches any other obligation or becomes insolvent, {a} may declare the Loan immediately due and payable, and default interest shall accrue at two per cent (2%) per annum above the agreed rate."
                    ],
                )
            )
        return clauses

    def _license(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        product = self.pick(
            (
                "企业资源计划管理系统",
                "智能仓储管理系统",
                "协同办公平台",
                "财务共享服务平台",
                "设备物联网监控平台",
                "数据分析平台",
            )
            if zh
            else (
                "Enterprise Resource Planning Suite",
                "Warehouse Management System",
                "Collaboration Platform",
                "Data Analytics Platform",
                "Asset Monitoring Platform",
            )
        )
        version = f"{rng.randint(2, 9)}.{rng.randint(0, 9)}"
        users = self.pick((20, 50, 100, 200, 500))
        fee = _round_to(rng.uniform(50000, 2000000) if zh else rng.uniform(10000, 300000), 1000)
        annual = _round_to(float(fee) * 0.18, 100)
        clauses: list[Clause] = []
        if zh:
            clauses.append(
                Clause(
                    "许可软件",
                    [
                        f"{a}许可{b}使用的软件为《{product}》V{version}（以下简称“许可软件”），包括其安装程序、用户手册及相关技术文档。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "许可范围",
                    [
                        f"许可方式为非独占、不可转让、不可再许可的使用许可。许可用户数为{users}个，许可使用地域为中国大陆地区，仅限于{b}内部经营管理使用。"
                    ],
                )
            )
            if self.has_period:
                clauses.append(
                    Clause("许可期限", [f"许可期限{self.period()}。许可期满后，{b}可按届时的价格续购许可。"])
                )
            fees = [
                f"许可费用总额为{self.total(fee)}，包含首年技术支持服务费。"
                if self.has_amount
                else f"许可费用按{b}实际开通的用户数计算，具体以双方确认的订单为准。"
            ]
            fees.append(
                f"自第二年起，年度技术支持服务费为{self.small(annual, 'annual_fee')}，于每个服务年度开始前支付。"
            )
            clauses.append(Clause("许可费用", fees))
            clauses.append(
                Clause(
                    "技术支持与升级",
                    [f"{a}在技术支持服务期内为{b}提供电话、远程及现场技术支持，并免费提供许可软件的补丁及小版本升级。"],
                )
            )
            clauses.append(
                Clause(
                    "知识产权",
                    [f"许可软件及其相关文档的著作权及其他知识产权均归{a}所有。本合同的签订不构成任何知识产权的转让。"],
                )
            )
            clauses.append(
                Clause(
                    "使用限制",
                    [f"{b}不得对许可软件进行反向工程、反编译或反汇编，不得将许可软件出租、出借或提供给第三方使用。"],
                )
            )
        else:
            clauses.append(
                Clause(
                    "Grant of Licence",
                    [
                        f'Subject to this Agreement, {a} grants {b} a non-exclusive, non-transferable licence to install and use the {product} version {version} (the "Software") for up to {users} named users, for {b}\'s internal business purposes only.'
                    ],
                )
            )
            if self.has_period:
                clauses.append(
                    Clause(
                        "Licence Term",
                        [f"The licence is granted {self.period()}, and may be renewed at {a}'s then current prices."],
                    )
                )
            fees = [
                f"{cap(b)} shall pay a licence fee of {self.total(fee)} within thirty (30) days of the invoice date."
                if self.has_amount
                else f"Licence fees are charged per named user as set out in each order form accepted by {a}."
            ]
            fees.append(
                f"Support and maintenance after the first year is charged at {self.small(annual, 'annual_fee')} per year."
            )
            clauses.append(Clause("Fees", fees))
            clauses.append(
                Clause(
                    "Support and Updates",
                    [
                        f"During the support period {a} shall provide telephone and remote support on business days and make available all patches and minor releases of the Software."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Intellectual Property",
                    [
                        f"All intellectual property rights in the Software and its documentation remain with {a}. No rights are granted other than those expressly set out in this Agreement."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Restrictions",
                    [
                        f"{cap(b)} shall not copy (except for back-up), modify, reverse engineer, decompile or disassemble the Software, nor sublicense, rent or lend it to any third party."
                    ],
                )
            )
        return clauses

    def _construction(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        price = _round_to(
            rng.uniform(1_000_000, 60_000_000) if zh else rng.uniform(200_000, 8_000_000), 1000
        ) + Decimal(rng.randint(0, 999))
        project = self.pick(
            (
                f"{self.a.city}产业园二期厂房建设工程",
                "办公楼装修改造工程",
                "研发中心综合楼工程",
                "仓储物流中心一期工程",
                "员工宿舍楼建设工程",
            )
            if zh
            else (
                "Phase II factory building",
                "office fit-out works",
                "R&D centre building",
                "logistics warehouse (Phase I)",
            )
        )
        site = self.a.address
        days = (self.end - self.start).days + 1
        clauses: list[Clause] = []
        if zh:
            clauses.append(
                Clause(
                    "工程概况",
                    [
                        f"工程名称：{project}。",
                        f"工程地点：{site}。",
                        "工程承包范围：施工图纸范围内的土建、安装及配套工程，具体以工程量清单为准。",
                    ],
                )
            )
            if self.has_period:
                if self.rng.random() < 0.6:
                    s, e = self.note("valid_period", self.d(self.start)), self.note("valid_period", self.d(self.end))
                    clauses.append(
                        Clause(
                            "合同工期", [f"计划开工日期：{s}。", f"计划竣工日期：{e}。", f"工期总日历天数：{days}天。"]
                        )
                    )
                else:
                    clauses.append(
                        Clause("合同工期", [f"合同工期{self.period()}。实际开工日期以监理人发出的开工通知为准。"])
                    )
            clauses.append(Clause("质量标准", ["工程质量符合国家现行《建筑工程施工质量验收统一标准》合格标准。"]))
            safe = self.small((price * Decimal("0.02")).quantize(Decimal("0.01")), "safety_fee")
            prov = self.small(_round_to(float(price) * 0.05, 1000), "provisional_sum")
            money_line = [
                f"签约合同价为{self.total(price)}，其中安全文明施工费{safe}，暂列金额{prov}。"
                if self.has_amount
                else "合同价款按经审定的竣工结算价确定，采用固定综合单价方式计价。"
            ]
            clauses.append(Clause("签约合同价与合同价格形式", money_line))
            adv = self.small((price * Decimal("0.1")).quantize(Decimal("0.01")), "advance_payment")
            clauses.append(
                Clause(
                    "工程款支付",
                    [
                        f"合同签订后{rng.choice((7, 14))}日内，{a}向{b}支付预付款{adv}。工程进度款按月支付，每月支付当月已完成合格工程量价款的{rng.choice((70, 75, 80))}%。",
                        "工程竣工验收合格并办理结算后，付至结算价款的97%，剩余3%作为质量保证金。",
                    ],
                )
            )
            clauses.append(
                Clause(
                    "项目经理",
                    [f"{b}项目经理：{self.reg.zh_person(rng)}。项目经理应常驻施工现场，未经{a}书面同意不得更换。"],
                )
            )
            clauses.append(
                Clause(
                    "安全文明施工",
                    [
                        f"{b}应遵守国家及地方有关安全生产的法律法规，建立健全安全生产责任制度，因{b}原因发生的安全事故由{b}承担全部责任。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "竣工验收与质量保修",
                    [
                        f"工程具备竣工验收条件后，{b}应向{a}提交竣工验收申请报告。工程质量保修期自竣工验收合格之日起计算，其中屋面防水工程保修期为五年。"
                    ],
                )
            )
        else:
            clauses.append(
                Clause(
                    "The Works",
                    [
                        f'{cap(b)} shall execute and complete the {project} at {site} (the "Works") in accordance with the drawings, specification and bills of quantities.'
                    ],
                )
            )
            if self.has_period:
                if self.rng.random() < 0.6:
                    s, e = self.note("valid_period", self.d(self.start)), self.note("valid_period", self.d(self.end))
                    clauses.append(
                        Clause(
                            "Contract Period", [f"The Date for Commencement is {s} and the Date for Completion is {e}."]
                        )
                    )
                else:
                    clauses.append(Clause("Contract Period", [f"The Works shall be carried out {self.period()}."]))
            prov = self.small(_round_to(float(price) * 0.05, 1000), "provisional_sum")
            clauses.append(
                Clause(
                    "Contract Sum",
                    [
                        f"The Contract Sum is {self.total(price)}, including a provisional sum of {prov}."
                        if self.has_amount
                        else "The Contract Sum shall be the re-measured value of the Works at the rates in the bills of quantities."
                    ],
                )
            )
            adv = self.small((price * Decimal("0.1")).quantize(Decimal("0.01")), "advance_payment")
            clauses.append(
                Clause(
                    "Payment",
                    [
                        f"{cap(a)} shall pay an advance payment of {adv} against an advance payment guarantee. Interim payments shall be made monthly, less a retention of five per cent (5%)."
                    ],
                )
            )
            ld = self.small(_round_to(float(price) * 0.0005, 10), "liquidated_damages")
            clauses.append(
                Clause(
                    "Liquidated Damages",
                    [
                        f"If the Works are not completed by the Date for Completion, {b} shall pay liquidated damages at the rate of {ld} for each day of delay."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Defects Liability",
                    [
                        f"{cap(b)} shall make good any defects notified within {en_count(12)} months from the date of practical completion."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Insurance",
                    [
                        f"{cap(b)} shall maintain contractor's all risks insurance for the full reinstatement value of the Works and third-party liability insurance."
                    ],
                )
            )
        return clauses

    def _agency(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        product = self.pick(
            ("医疗耗材", "工业传感器", "休闲食品", "涂料产品", "智能门锁")
            if zh
            else ("medical consumables", "industrial sensors", "snack foods", "coatings", "smart locks")
        )
        region = self.pick(
            ("华东地区", "华南地区", "西南地区", "华北地区", "长三角地区")
            if zh
            else ("the United Kingdom", "Hong Kong and Macau", "Southeast Asia", "the DACH region")
        )
        titled = "独家" in self.title or "exclusive" in self.title.lower()
        exclusive = titled or rng.random() < 0.4
        commission = self.pick((5, 6, 8, 10, 12))
        target = self.small(_round_to(rng.uniform(1e6, 2e7) if zh else rng.uniform(2e5, 3e6), 100000), "sales_target")
        clauses: list[Clause] = []
        if zh:
            clauses.append(
                Clause(
                    "代理事项",
                    [
                        f"{a}委托{b}作为其{product}在{region}的{'独家' if exclusive else '非独家'}销售代理商，{b}接受委托。"
                    ],
                )
            )
            if self.has_period:
                clauses.append(Clause("代理期限", [f"代理期限{self.period()}。"]))
            clauses.append(
                Clause(
                    "代理权限",
                    [
                        f"{b}在代理区域内以{a}的名义开展产品推广和销售活动，但未经{a}书面授权，{b}无权以{a}的名义签订任何合同或作出任何承诺。"
                    ],
                )
            )
            clauses.append(
                Clause(
                    "销售目标",
                    [
                        f"代理期内{b}的年度销售目标为{target}。{b}连续两个季度未完成季度目标的，{a}有权取消其独家代理资格。"
                    ],
                )
            )
            fee = [f"{a}按{b}实际完成的销售回款额的{commission}%向{b}支付代理佣金，按季度结算。"]
            if self.has_amount:
                fee.append(
                    f"此外，{a}向{b}支付市场推广服务费，服务费总额为{self.total(_round_to(rng.uniform(100000, 2000000), 1000))}。"
                )
            clauses.append(Clause("代理佣金", fee))
            clauses.append(
                Clause(
                    "代理保证金",
                    [
                        f"{b}应于本协议签订后七日内向{a}缴纳代理保证金{self.small(_round_to(rng.uniform(20000, 500000), 10000), 'deposit')}，代理期满且无违约情形的，{a}无息退还。"
                    ],
                )
            )
        else:
            clauses.append(
                Clause(
                    "Appointment",
                    [
                        f'{cap(a)} appoints {b} as its {"exclusive" if exclusive else "non-exclusive"} sales agent for {product} in {region} (the "Territory"), and {b} accepts the appointment.'
                    ],
                )
            )
            if self.has_period:
                clauses.append(Clause("Term", [f"This Agreement shall remain in force {self.period()}."]))
            clauses.append(
                Clause(
                    "Authority",
                    [
                        f"{cap(b)} shall solicit orders in the Territory on behalf of {a} but has no authority to conclude contracts or make representations binding on {a}."
                    ],
                )
            )
            clauses.append(
                Clause(
                    "Minimum Targets",
                    [
                        f"{cap(b)} shall use its best endeavours to achieve annual sales of not less than {target} in the Territory."
                    ],
                )
            )
            fee = [
                f"{cap(a)} shall pay {b} a commission of {en_words(commission).lower()} per cent ({commission}%) of the net invoiced value of all orders accepted from customers in the Territory, within thirty (30) days after the end of each quarter."
            ]
            if self.has_amount:
                fee.append(
                    f"{cap(a)} shall also pay {b} a fixed marketing fee of {self.total(_round_to(rng.uniform(20000, 300000), 1000))} for the Term."
                )
            clauses.append(Clause("Commission", fee))
            clauses.append(
                Clause(
                    "Reporting",
                    [
                        f"{cap(b)} shall submit a monthly report on market conditions, competitor activity and orders obtained."
                    ],
                )
            )
        return clauses

    # -- clauses every contract has, the header, parties and signatures -----------------------

    def _general(self) -> list[Clause]:
        zh, rng, a, b = self.zh, self.rng, self.sa, self.sb
        pool: list[Clause]
        if zh:
            court = self.pick(
                (f"{self.a.city}市{self.pick(ZH_CITIES[self.a.city][1])}人民法院", f"{self.a.city}仲裁委员会")
            )
            dispute = (
                f"因本合同引起的或与本合同有关的任何争议，双方应友好协商解决；协商不成的，任何一方均可向{court}"
                + ("提起诉讼。" if court.endswith("法院") else "申请仲裁，仲裁裁决是终局的，对双方均有约束力。")
            )
            pool = [
                Clause(
                    "保密",
                    [
                        "双方对在履行本合同过程中知悉的对方商业秘密和技术秘密负有保密义务，未经对方书面同意，不得向任何第三方披露。本条款在合同终止后继续有效。"
                    ],
                ),
                Clause(
                    "不可抗力",
                    [
                        f"因地震、台风、洪水、火灾、战争等不可抗力致使本合同不能履行的，受影响的一方应在不可抗力发生后{rng.choice((3, 5, 7))}日内书面通知对方，并在{rng.choice((10, 15))}日内提供相关证明，双方协商是否延期履行或解除合同。"
                    ],
                ),
                Clause(
                    "合同的变更与解除",
                    [
                        "本合同履行过程中，任何一方需要变更合同内容的，应经双方协商一致并签订书面补充协议。一方严重违约致使合同目的无法实现的，守约方有权书面通知解除本合同。"
                    ],
                ),
                Clause(
                    "通知与送达",
                    [
                        f"本合同项下的通知应以书面形式送达对方在本合同首部列明的地址。任何一方地址或联系方式发生变更的，应在变更后{rng.choice((3, 5, 7))}日内书面通知对方，否则按原地址送达即视为有效送达。"
                    ],
                ),
                Clause(
                    "廉洁条款",
                    [
                        f"双方应严格遵守国家有关廉洁从业的规定，任何一方不得向对方工作人员提供回扣、礼金、有价证券或其他不正当利益。{b}违反本条约定的，{a}有权解除合同。"
                    ],
                ),
                Clause(
                    "知识产权",
                    [
                        f"{b}保证其提供的产品、服务及相关资料不侵犯任何第三方的知识产权。因侵权引起的纠纷，由{b}负责处理并承担全部责任。"
                    ],
                ),
            ]
            chosen = [c for c in pool if rng.random() < 0.55]
            chosen.append(Clause("争议解决", [dispute]))
            copies = self.pick((2, 4, 6))
            other = [
                f"本合同一式{zh_number(copies)}份，{a}、{b}双方各执{zh_number(copies // 2)}份，具有同等法律效力。",
                "本合同未尽事宜，由双方另行协商并签订补充协议，补充协议与本合同具有同等法律效力。",
            ]
            other.insert(
                0,
                self.pick(
                    ("本合同自双方签字盖章之日起生效。", "本合同经双方法定代表人或授权代表签字并加盖公章后生效。")
                ),
            )
            chosen.append(Clause("其他", other))
        else:
            law = self.pick(
                (
                    "the laws of England and Wales",
                    "the laws of the Hong Kong Special Administrative Region",
                    "the laws of Singapore",
                    "the laws of the State of New York",
                )
            )
            forum = self.pick(
                (
                    "the courts of England",
                    "arbitration administered by the Hong Kong International Arbitration Centre",
                    "arbitration under the SIAC Rules",
                    "the state and federal courts located in New York County",
                )
            )
            pool = [
                Clause(
                    "Confidentiality",
                    [
                        "Each party shall keep confidential the terms of this Agreement and all information received from the other party, and shall not disclose it without the other party's prior written consent, except as required by law."
                    ],
                ),
                Clause(
                    "Force Majeure",
                    [
                        "Neither party shall be liable for any failure or delay in performance caused by events beyond its reasonable control, provided that it notifies the other party promptly and uses reasonable efforts to mitigate the effects."
                    ],
                ),
                Clause(
                    "Limitation of Liability",
                    [
                        "Neither party shall be liable for any indirect or consequential loss. Each party's aggregate liability under this Agreement shall not exceed the amounts paid and payable under it in the twelve (12) months preceding the claim."
                    ],
                ),
                Clause(
                    "Notices",
                    [
                        "Any notice under this Agreement shall be in writing and delivered by hand, courier or email to the address of the recipient set out above, or such other address as it notifies in writing."
                    ],
                ),
                Clause(
                    "Assignment",
                    [
                        "Neither party may assign or transfer any of its rights or obligations under this Agreement without the prior written consent of the other party."
                    ],
                ),
                Clause(
                    "Anti-Bribery",
                    [
                        "Each party shall comply with all applicable anti-bribery and anti-corruption laws and shall not offer or accept any bribe or improper payment in connection with this Agreement."
                    ],
                ),
            ]
            chosen = [c for c in pool if rng.random() < 0.55]
            chosen.append(
                Clause(
                    "Governing Law and Disputes",
                    [
                        f"This Agreement is governed by {law}. Any dispute arising out of or in connection with it shall be referred to {forum}."
                    ],
                )
            )
            chosen.append(
                Clause(
                    "Entire Agreement",
                    [
                        "This Agreement constitutes the entire agreement between the parties and supersedes all prior negotiations, representations and agreements relating to its subject matter. It may be executed in counterparts, each of which is an original."
                    ],
                )
            )
        return chosen

    def _party_lines(self, org: Org, label: str) -> list[str]:
        zh = self.zh
        if zh:
            lines = [f"{label}：{org.name}"]
            if org.person:
                return [*lines, f"住址：{org.address}", f"联系电话：{org.phone}"]
            if self.rng.random() < 0.4:
                lines.append(f"统一社会信用代码：{org.credit_code}")
            lines += [f"地址：{org.address}", f"法定代表人：{org.rep}", f"联系电话：{org.phone}"]
            if self.ctype in ("loan", "purchase", "sales") and self.rng.random() < 0.4:
                lines.append(f"开户银行：{org.bank}")
            return lines
        lines = [f"{label}: {org.name}"]
        if org.person:
            return [*lines, f"Address: {org.address}", f"Telephone: {org.phone}"]
        return [
            *lines,
            f"Registered address: {org.address}",
            f"Authorised signatory: {org.rep}",
            f"Telephone: {org.phone}",
        ]

    def _party_cells(self, org: Org, label: str) -> list[str]:
        """One column of the two-party table: the label as its head, then short cells."""
        if self.zh:
            cells = [label, org.name, org.address]
            return cells + ([org.phone] if org.person else [f"法定代表人：{org.rep}", f"电话：{org.phone}"])
        cells = [label, org.name, org.address]
        return cells + ([org.phone] if org.person else [f"Signatory: {org.rep}", f"Tel: {org.phone}"])

    def _parties_block(self) -> list[Block]:
        zh = self.zh
        orgs = [(self.a, self.la), (self.b, self.lb), *([(self.c, self.lc)] if self.c else [])]
        stacked: list[Block] = []
        for org, label in orgs:
            lines = self._party_lines(org, label)
            stacked.append(Keep((*(Para(t, keep_next=True) for t in lines[:-1]), Para(lines[-1], after=0.4))))
        if zh or self.layout == "party_table":
            if self.layout == "party_table" and not self.c:
                columns = [self._party_cells(org, label) for org, label in orgs]
                depth = max(len(c) for c in columns)
                padded = [c + [""] * (depth - len(c)) for c in columns]
                rows = tuple(zip(*padded, strict=True))
                return [Table(rows, header=True, widths=(0.5, 0.5), fallback=tuple(stacked))]
            return stacked
        # English: the recital styles of common-law agreements
        style = self.pick(("between", "sentence", "lines"))
        if style == "lines":
            return [
                Keep((*(Para(t, keep_next=True) for t in self._party_lines(org, f"Party {chr(65 + i)}")), Gap(0.3)))
                for i, (org, _) in enumerate(orgs)
            ]
        described = []
        for org, label in orgs:
            if org.person:
                described.append(f'{org.name}, residing at {org.address} (the "{label}")')
            else:
                described.append(
                    f'{org.name}, a company incorporated under the laws of {org.jurisdiction}, whose registered office is at {org.address} (the "{label}")'
                )
        if style == "between":
            blocks: list[Block] = [Para("BETWEEN:", before=0.3, keep_next=True)]
            for i, text in enumerate(described):
                tail = "; and" if i < len(described) - 1 else "."
                blocks.append(Para(text + tail, hang=f"({i + 1}) ", after=0.2))
            return blocks
        names = [f'{org.name} (the "{label}")' for org, label in orgs]
        made = f" on {self.d(self.signed)}" if self.sign_at == "preamble" and self.has_signing else ""
        joined = ", ".join(names[:-1]) + " and " + names[-1]
        return [
            Para(f'This {self.plain_title} (the "Agreement") is made{made} between {joined}.', before=0.3, after=0.3)
        ]

    def _preamble(self) -> list[Block]:
        zh, a, b = self.zh, self.sa, self.sb
        if zh:
            subject = {
                "purchase": "货物采购", "sales": "产品销售", "service": "服务", "lease": "房屋租赁", "employment": "劳动关系",
                "nda": "保密信息的保护", "loan": "借款", "license": "软件许可使用", "construction": "工程施工", "agency": "销售代理",
            }[self.ctype]  # fmt: skip
            law = (
                "《中华人民共和国劳动法》《中华人民共和国劳动合同法》"
                if self.ctype == "employment"
                else "《中华人民共和国民法典》"
            )
            return [
                Para(
                    f"根据{law}及有关法律法规的规定，{a}、{b}双方本着平等自愿、诚实信用的原则，经友好协商，就{subject}事宜达成如下协议，以资共同遵守。",
                    indent=2,
                    before=0.3,
                    after=0.3,
                )
            ]
        lines: list[Block] = []
        if (
            self.sign_at == "preamble"
            and self.has_signing
            and not any(isinstance(x, Para) and " is made on " in x.text for x in self._cache_parties)
        ):
            lines.append(Para(f"This Agreement is dated {self.d(self.signed)}.", before=0.3))
        recital = {
            "purchase": f"{cap(self.sa)} wishes to purchase and {self.sb} wishes to supply the Goods on the terms set out below",
            "sales": f"{cap(self.sa)} wishes to sell and {self.sb} wishes to buy the products described below",
            "service": f"{cap(b)} has the expertise to provide, and {a} wishes to obtain, the Services described below",
            "lease": f"{cap(a)} is the owner of the Premises and has agreed to let them to {b}",
            "employment": f"{cap(a)} wishes to employ {b}, and {b} wishes to accept employment, on the terms below",
            "nda": "the parties wish to exchange confidential information for the purpose of evaluating a business relationship",
            "loan": f"{cap(a)} has agreed to make a loan facility available to {b} on the terms of this Agreement",
            "license": f"{cap(a)} owns the Software and has agreed to license it to {b}",
            "construction": f"{cap(a)} wishes to have the Works executed and has accepted the tender of {b}",
            "agency": f"{cap(a)} wishes to appoint {b} as its agent in the Territory",
        }[self.ctype]
        lines.append(Para(f"WHEREAS {recital};", before=0.3))
        lines.append(Para("NOW, THEREFORE, the parties agree as follows:", after=0.3))
        return lines

    def _clause_blocks(self, clauses: Sequence[Clause]) -> list[Block]:
        zh, rng = self.zh, self.rng
        style = self.pick(("article", "hanzi", "dotted") if zh else ("dotted", "article", "clause"))
        blocks: list[Block] = []
        size = self.style.size
        for n, clause in enumerate(clauses, start=1):
            if zh:
                head = {
                    "article": f"第{zh_number(n)}条 {clause.title}",
                    "hanzi": f"{zh_number(n)}、{clause.title}",
                    "dotted": f"{n}. {clause.title}",
                }[style]
            else:
                head = {
                    "dotted": f"{n}. {clause.title.upper()}",
                    "article": f"Article {n} {clause.title}",
                    "clause": f"Clause {n}: {clause.title}",
                }[style]
            blocks.append(Para(head, size=size + 0.5, before=0.35, keep_next=True))
            numbered = len(clause.paras) > 1 and style != "article"
            for k, text in enumerate(clause.paras, start=1):
                if numbered and not text.startswith(("（", "(")):
                    blocks.append(Para(text, hang=f"{n}.{k} "))
                elif zh and not text.startswith("（"):
                    blocks.append(Para(text, indent=2))
                else:
                    blocks.append(Para(text, left=1.0 if text.startswith(("（", "(")) else 0.0))
                if k == 1 and clause.table is not None:
                    blocks.append(clause.table)
        del rng
        return blocks

    def _signatures(self) -> list[Block]:
        zh = self.zh
        when = self.d(self.signed) if self.has_signing else None
        orgs = [(self.a, self.la, self.sa), (self.b, self.lb, self.sb)] + (
            [(self.c, self.lc, self.sc)] if self.c else []
        )
        in_sig = self.sign_at == "sig"
        blocks: list[Block] = []
        if zh:
            blocks.append(Para("（以下无正文，为签署页）", align="center", before=0.5, after=0.5))
            date_line = f"日期：{when}" if when and in_sig else "日期：    年    月    日" if in_sig else ""
            if self.layout == "party_table" and not self.c:
                cells = []
                for org, label, _ in orgs[:2]:
                    seal = "（签字）" if org.person else "（盖章）"
                    col = [f"{label.split('（')[0]}{seal}：", org.name]
                    if not org.person:
                        col.append("法定代表人或授权代表：")
                    if date_line:
                        col.append(date_line)
                    cells.append(col)
                depth = max(len(c) for c in cells)
                rows = tuple(zip(*[c + [""] * (depth - len(c)) for c in cells], strict=True))
                stacked = self._zh_sig_stacked(orgs, date_line)
                blocks.append(
                    Keep((Table(rows, header=False, ruled=False, widths=(0.5, 0.5), fallback=tuple(stacked)),))
                )
            else:
                blocks.extend(self._zh_sig_stacked(orgs, date_line))
            if self.sign_at == "end":
                blocks.append(Para(f"签订日期：{when}" if when else "签订日期：    年    月    日", before=0.5))
                blocks.append(Para(f"签订地点：{self.a.city}市"))
            return blocks
        blocks.append(
            Para(
                "IN WITNESS WHEREOF the parties have executed this Agreement by their duly authorised representatives"
                + (" on the date first written above." if self.sign_at in ("preamble", "header") else "."),
                before=0.5,
                after=0.4,
            )
        )
        date_line = f"Date: {when}" if when and in_sig else "Date:" if in_sig else ""
        if self.layout == "party_table" and not self.c:
            cells = []
            for org, _label, _ in orgs[:2]:
                col = ["Signed by the Employee" if org.person else "For and on behalf of", org.name]
                if not org.person:
                    col += [
                        "By:",
                        f"Name: {org.rep}",
                        f"Title: {self.pick(('Director', 'General Manager', 'Chief Executive Officer', 'Managing Director'))}",
                    ]
                if date_line:
                    col.append(date_line)
                cells.append(col)
            depth = max(len(c) for c in cells)
            rows = tuple(zip(*[c + [""] * (depth - len(c)) for c in cells], strict=True))
            blocks.append(
                Keep(
                    (
                        Table(
                            rows,
                            header=False,
                            ruled=False,
                            widths=(0.5, 0.5),
                            fallback=tuple(self._en_sig_stacked(orgs, date_line)),
                        ),
                    )
                )
            )
        else:
            blocks.extend(self._en_sig_stacked(orgs, date_line))
        return blocks

    def _zh_sig_stacked(self, orgs: Sequence[tuple[Org, str, str]], date_line: str) -> list[Block]:
        out: list[Block] = []
        for org, label, _ in orgs:
            seal = "（签字）" if org.person else "（盖章）"
            lines: list[Block] = [Para(f"{label.split('（')[0]}{seal}：{org.name}", before=0.4, keep_next=True)]
            if not org.person:
                lines.append(Para("法定代表人或授权代表（签字）：", rule=120, keep_next=True))
            if date_line:
                lines.append(Para(date_line))
            out.append(Keep(tuple(lines)))
        return out

    def _en_sig_stacked(self, orgs: Sequence[tuple[Org, str, str]], date_line: str) -> list[Block]:
        out: list[Block] = []
        for org, _, _ in orgs:
            lines: list[Block] = [
                Para("Signed by the Employee" if org.person else "For and on behalf of", before=0.4, keep_next=True),
                Para(org.name, keep_next=True),
            ]
            lines.append(Para("Signature:" if org.person else "By:", rule=150, keep_next=True))
            if not org.person:
                lines.append(Para(f"Name: {org.rep}", keep_next=True))
                lines.append(
                    Para(
                        f"Title: {self.pick(('Director', 'General Manager', 'Chief Executive Officer', 'Managing Director'))}",
                        keep_next=True,
                    )
                )
            if date_line:
                lines.append(Para(date_line, rule=0 if self.has_signing else 120))
            out.append(Keep(tuple(lines)))
        return out

    def _header(self) -> list[Block]:
        zh, size = self.zh, self.style.size
        blocks: list[Block] = [Para(self.title, size=size + self.pick((6, 7, 8)), align="center", after=0.4)]
        if zh and self.layout == "clauses" and self.rng.random() < 0.3:
            blocks = [
                Para(self.title, size=size + 7, align="center", after=0.2),
                Para("（示范文本）" if self.ctype == "construction" else "（合同正本）", align="center", after=0.4),
            ]
        number = (
            (
                f"合同编号：{self.number}"
                if zh
                else f"{self.pick(('Agreement No.', 'Contract No.', 'Reference No.'))}: {self.number}"
            )
            if self.has_number
            else ""
        )
        sign = ""
        if self.sign_at == "header":
            sign = (
                (f"签订日期：{self.d(self.signed)}" if zh else f"Date: {self.d(self.signed)}")
                if self.has_signing
                else ("签订日期：    年    月    日" if zh else "")
            )
        place = f"签订地点：{self.a.city}市" if zh else ""
        if self.layout == "goods_table":
            cells = [c for c in (number, sign, place) if c]
            if cells:
                pairs = [tuple(cells[i : i + 2]) for i in range(0, len(cells), 2)]
                rows = tuple(p if len(p) == 2 else (*p, "") for p in pairs)
                blocks.append(
                    Table(
                        rows,
                        header=False,
                        ruled=False,
                        widths=(0.55, 0.45),
                        fallback=tuple(Para(c, align="right") for c in cells),
                    )
                )
        else:
            for cell in (number, sign):
                if cell:
                    blocks.append(Para(cell, align="right" if self.rng.random() < 0.7 else "left"))
        if zh and self.ctype == "purchase" and self.rng.random() < 0.3:
            code = self.reg.number(self.rng, "ZB", self.signed.year, self.signed)
            blocks.append(Para(self.distract("contract_number", f"项目编号：{code}", "project_number"), align="right"))
        blocks.append(Gap(0.3))
        return blocks

    def _annex(self, target_rows: int) -> list[Block]:
        catalog = ZH_GOODS if self.zh else EN_GOODS
        rows: list[tuple[str, ...]] = [
            ("序号", "备件名称", "规格型号", "单位", "单价（元）")
            if self.zh
            else ("No.", "Spare part", "Model", "Unit", f"Unit Price ({self.currency})")
        ]
        for i in range(1, target_rows + 1):
            name, spec, unit, low, high = catalog[(i * 7) % len(catalog)]
            suffix = f"-{chr(65 + i % 26)}{i % 97:02d}"
            price = Decimal(self.rng.randint(max(1, low // 10), max(2, high // 5)))
            rows.append((str(i), name, spec + suffix, unit, money(price)))
        self.money_rows(rows[1:])
        title = "附件一：备品备件及价格清单" if self.zh else "Schedule 1 - Spare Parts Price List"
        note = (
            "下列单价为质保期满后备品备件的采购单价，不计入合同总价。"
            if self.zh
            else "The prices below apply to spare parts ordered after the warranty period and are not part of the contract price."
        )
        return [
            Para(title, size=self.style.size + 1, before=1.0, keep_next=True),
            Para(note, keep_next=True),
            Table(tuple(rows), align=("center", "left", "left", "center", "right")),
        ]

    def write(self, annex_rows: int = 0) -> Built:
        body = {
            "purchase": self._trade, "sales": self._trade, "service": self._service, "lease": self._lease,
            "employment": self._employment, "nda": self._nda, "loan": self._loan, "license": self._license,
            "construction": self._construction, "agency": self._agency,
        }[self.ctype]()  # fmt: skip
        clauses = body + self._general()
        self._cache_parties = self._parties_block()
        blocks = (
            self._header() + self._cache_parties + self._preamble() + self._clause_blocks(clauses) + self._signatures()
        )
        if annex_rows:
            blocks += self._annex(annex_rows)
        if self.has_period:
            assert self.surface.get("valid_period"), f"{self.ctype}: the term was never written"
        self.surface["parties"] = [p["name"] for p in self.parties]
        kw, en_kw = TYPE_TAGS[self.ctype]
        industry = INDUSTRIES[(self.a if self.b.person else self.b).industry][2]
        built = Built(
            cls="contract",
            lang=self.lang,
            title=self.title,
            layout=self.layout,
            blocks=blocks,
            tags=[self.ctype, kw if self.zh else en_kw, industry],
            fields=self.fields,
            surface=self.surface,
            distractors=self.distractors,
            extra={"premises": self.premises} if self.premises else {},
        )
        built.questions = self._questions()
        return built

    def _questions(self) -> list[tuple[str, str, str]]:  # noqa: PLR0912 - one branch per question
        zh, A, B, t = self.zh, self.a.name, self.b.name, self.plain_title
        options: list[tuple[str, str, str]] = []
        if zh:
            if self.has_number:
                options.append((f"合同编号为{self.number}的合同中{self.sb}是谁？", B, "parties"))
            if self.amount is not None:
                options.append((f"{A}与{B}签订的{t}总金额是多少？", self.surface["amount"][0], "amount"))
            if self.has_period:
                options.append((f"{A}与{B}之间的{t}什么时候到期？", self.d(self.end), "valid_period"))
            if self.has_signing:
                options.append((f"{A}和{B}的{t}是哪天签订的？", self.d(self.signed), "signing_date"))
            if self.has_number:
                options.append((f"{A}与{B}签订的{t}编号是多少？", self.number, "contract_number"))
            if self.premises:
                options.append((f"{self.premises}的承租方是谁？", B, "parties"))
            if self.ctype == "employment":
                options.append((f"{B}在{A}担任什么职位？", self.extra_position, "position"))
        else:
            role = self.lb
            if self.has_number:
                options.append((f"Who is the {role} under agreement {self.number}?", B, "parties"))
            if self.amount is not None:
                options.append(
                    (f"What is the total amount of the {t} between {A} and {B}?", self.surface["amount"][0], "amount")
                )
            if self.has_period:
                options.append((f"When does the {t} between {A} and {B} expire?", self.d(self.end), "valid_period"))
            if self.has_signing:
                options.append(
                    (f"On what date was the {t} between {A} and {B} signed?", self.d(self.signed), "signing_date")
                )
            if self.premises:
                options.append((f"Who is the {role.lower()} of {self.premises}?", B, "parties"))
            if self.ctype == "employment":
                options.append((f"What position does {B} hold at {A}?", self.extra_position, "position"))
        if not options:
            options.append(
                (
                    (f"{A}与{B}签订的是什么合同？" if zh else f"What kind of agreement did {A} sign with {B}?"),
                    t,
                    "contract_type",
                )
            )
        return self.rng.sample(options, min(len(options), self.rng.choice((1, 2))))


class OtherWriter(Writer):
    """Invoices, letters and reports: the classifier's negatives. Their ``fields`` stay empty."""

    def __init__(self, rng: random.Random, reg: Registry, lang: str, *, cls: str, layout: str, style: Style) -> None:
        super().__init__(rng, reg, lang)
        self.cls, self.layout, self.style = cls, layout, style
        self.day = _signing_day(rng)
        self.sender = reg.org(rng, lang, self.pick(sorted(INDUSTRIES)))
        self.to = reg.org(rng, lang, self.pick(sorted(INDUSTRIES)))
        self.currency = "CNY" if self.zh else self.pick(("USD", "EUR", "HKD", "USD"))

    def amt(self, value: Decimal) -> str:
        return fmt_amount(value, self.currency, self.pick(AMOUNT_STYLES[self.lang][self.currency][:2]))

    def write(self) -> Built:
        return {"invoice": self._invoice, "letter": self._letter, "report": self._report}[self.cls]()

    def _built(self, title: str, blocks: list[Block], tags: list[str], extra: dict[str, Any]) -> Built:
        return Built(
            self.cls,
            self.lang,
            title,
            self.layout,
            blocks,
            [*tags, INDUSTRIES[self.sender.industry][2]],
            extra=extra,
            distractors=self.distractors,
        )

    def _invoice(self) -> Built:
        zh, rng, size = self.zh, self.rng, self.style.size
        title = self.pick(
            ("发票", "销售发票", "商业发票", "货物销售发票") if zh else ("INVOICE", "TAX INVOICE", "COMMERCIAL INVOICE")
        )
        number = self.reg._unique(
            lambda: f"{rng.randint(10**7, 10**8 - 1)}" if zh else f"INV-{self.day.year}-{rng.randint(1, 99999):05d}"
        )
        catalog = ZH_GOODS if zh else EN_GOODS
        lines = []
        for name, spec, unit, low, high in rng.sample(list(catalog), rng.randint(1, 5)):
            qty = rng.choice((1, 2, 4, 10, 20))
            lines.append((name, spec, unit, qty, Decimal(rng.randint(low, high))))
        subtotal = sum((p * q for *_, q, p in lines), Decimal(0))
        rate = self.pick((13, 9, 6)) if zh else self.pick((20, 5, 0))
        tax = (subtotal * rate / 100).quantize(Decimal("0.01"))
        total = subtotal + tax
        blocks: list[Block] = [Para(title, size=size + 7, align="center", after=0.5)]
        if zh:
            blocks.append(
                Table(
                    ((f"发票号码：{number}", f"开票日期：{self.d(self.day)}"),),
                    header=False,
                    ruled=False,
                    widths=(0.55, 0.45),
                )
            )
            for label, org in (("购买方", self.to), ("销售方", self.sender)):
                blocks.append(Para(f"{label}名称：{org.name}", before=0.3, keep_next=True))
                blocks.append(Para(f"纳税人识别号：{org.credit_code}", keep_next=True))
                blocks.append(Para(f"地址、电话：{org.address} {org.phone}", keep_next=True))
                blocks.append(Para(f"开户行及账号：{org.bank} {org.account}"))
            rows: list[tuple[str, ...]] = [("项目名称", "规格型号", "单位", "数量", "单价", "金额", "税率", "税额")]
            for name, spec, unit, qty, price in lines:
                rows.append(
                    (
                        name,
                        spec,
                        unit,
                        str(qty),
                        money(price),
                        money(price * qty),
                        f"{rate}%",
                        money((price * qty * rate / 100).quantize(Decimal("0.01"))),
                    )
                )
            rows.append(("合计", "", "", "", "", money(subtotal), "", money(tax)))
            blocks.append(
                Table(
                    tuple(rows),
                    align=("left", "left", "center", "right", "right", "right", "right", "right"),
                    size=size - 0.5,
                    before=0.6,
                )
            )
            blocks.append(Para(f"价税合计（大写）：{zh_upper_amount(total)}", before=0.3))
            blocks.append(Para(f"价税合计（小写）：¥{money(total)}"))
            blocks.append(
                Para(
                    f"备注：{self.pick(('货款请于开票后三十日内支付', '本发票仅作结算凭证', '请核对后签收'))}",
                    before=0.3,
                )
            )
            blocks.append(
                Table(
                    (
                        (
                            f"收款人：{self.reg.zh_person(rng)}",
                            f"复核：{self.reg.zh_person(rng)}",
                            f"开票人：{self.reg.zh_person(rng)}",
                        ),
                    ),
                    header=False,
                    ruled=False,
                    before=1.0,
                )
            )
        else:
            due = self.day + timedelta(days=30)
            blocks.append(Para(self.sender.name, keep_next=True))
            blocks.append(Para(self.sender.address, after=0.4))
            blocks.append(
                Table(
                    ((f"Invoice No.: {number}", f"Invoice Date: {self.d(self.day)}"), ("", f"Due Date: {self.d(due)}")),
                    header=False,
                    ruled=False,
                    widths=(0.5, 0.5),
                )
            )
            blocks.append(Para("Bill To:", before=0.4, keep_next=True))
            blocks.append(Para(self.to.name, keep_next=True))
            blocks.append(Para(self.to.address))
            rows = [("Description", "Qty", "Unit Price", f"Amount ({self.currency})")]
            for name, spec, _unit, qty, price in lines:
                rows.append((f"{name} ({spec})", str(qty), money(price), money(price * qty)))
            rows += [
                ("Subtotal", "", "", money(subtotal)),
                (f"VAT {rate}%", "", "", money(tax)),
                ("Total Due", "", "", money(total)),
            ]
            blocks.append(Table(tuple(rows), align=("left", "right", "right", "right"), before=0.6))
            blocks.append(
                Para(f"Payment terms: net 30 days. Please quote invoice number {number} with your payment.", before=0.5)
            )
            blocks.append(Para(f"Bank: {self.sender.bank}, account {self.sender.account}"))
            blocks.append(Para("Thank you for your business.", before=0.5))
        extra = {
            "invoice_number": number,
            "issue_date": self.day.isoformat(),
            "total": {"amount": f"{total:.2f}", "currency": self.currency},
            "seller": self.sender.name,
            "buyer": self.to.name,
        }
        return self._built(title, blocks, ["invoice", "发票" if zh else "billing"], extra)

    def _letter(self) -> Built:
        zh, rng, size = self.zh, self.rng, self.style.size
        kind = self.pick(("address", "reminder", "price", "holiday"))
        ref = self.reg.number(rng, "HT" if zh else "PO", self.day.year - 1, self.day - timedelta(days=200))
        owed = _round_to(rng.uniform(20000, 900000), 10)
        new_addr = self.reg.org(rng, self.lang, self.sender.industry).address
        if zh:
            title = {
                "address": "关于办公地址变更的通知",
                "reminder": "催款函",
                "price": "关于产品价格调整的函",
                "holiday": "关于春节假期安排的通知",
            }[kind]
            body = {
                "address": [
                    f"因业务发展需要，我公司自{self.d(self.day + timedelta(days=14))}起迁至新址办公。新办公地址为：{new_addr}。",
                    "公司名称、银行账户及联系电话均保持不变。搬迁期间如有不便，敬请谅解。",
                ],
                "reminder": [
                    f"贵司与我司于{self.d(self.day - timedelta(days=200))}签订的采购合同（合同编号：{ref}）约定，贵司应于货物验收合格后三十日内支付货款。",
                    f"截至{self.d(self.day)}，贵司尚欠我司货款{self.amt(owed)}。请贵司于收到本函之日起七日内付清上述款项，逾期我司将依法追究贵司的违约责任。",
                ],
                "price": [
                    f"受原材料价格持续上涨影响，经公司研究决定，自{self.d(self.day + timedelta(days=30))}起对部分产品的出厂价格上调百分之{zh_number(self.pick((3, 5, 8)))}。",
                    "调价前已确认的订单仍按原价格执行。具体价格请咨询各区域销售经理。",
                ],
                "holiday": [
                    f"根据国家有关规定，结合公司实际情况，现将春节放假安排通知如下：{self.d(self.day)}至{self.d(self.day + timedelta(days=7))}放假调休，共八天。",
                    "放假期间请各部门做好安全检查工作，确保节日期间的安全稳定。",
                ],
            }[kind]
            close = "特此通知。" if kind in ("address", "holiday") else "特此函告。"
            blocks: list[Block] = [
                Para(self.sender.name, size=size + 4, align="center", keep_next=True),
                Para(self.sender.address, align="center", after=0.8),
            ]
            blocks.append(Para(title, size=size + 3, align="center", after=0.6))
            blocks.append(Para(f"{self.to.name}：" if kind != "holiday" else "各部门、全体员工：", after=0.3))
            blocks += [Para(text, indent=2) for text in body]
            blocks.append(Para(close, indent=2, after=1.0))
            blocks.append(Para(self.sender.name, align="right", keep_next=True))
            blocks.append(Para(self.d(self.day), align="right"))
        else:
            title = {
                "address": "Notice of Change of Address",
                "reminder": "Payment Reminder",
                "price": "Notice of Price Adjustment",
                "holiday": "Notice of Holiday Closure",
            }[kind]
            body = {
                "address": [
                    f"We are pleased to inform you that with effect from {self.d(self.day + timedelta(days=14))} our offices will move to {new_addr}.",
                    "Our telephone numbers, bank details and company registration remain unchanged. Please update your records accordingly.",
                ],
                "reminder": [
                    f"According to our records, payment for purchase order {ref} dated {self.d(self.day - timedelta(days=200))} remains outstanding.",
                    f"The balance of {self.amt(owed)} was due on {self.d(self.day - timedelta(days=20))}. We would be grateful if you would arrange payment within seven (7) days of the date of this letter.",
                ],
                "price": [
                    f"Owing to sustained increases in raw material and freight costs, our list prices will increase by {self.pick((3, 5, 8))}% with effect from {self.d(self.day + timedelta(days=30))}.",
                    "Orders confirmed before that date will be invoiced at the current prices.",
                ],
                "holiday": [
                    f"Please note that our offices and warehouse will be closed from {self.d(self.day)} to {self.d(self.day + timedelta(days=3))} inclusive.",
                    "Orders received during the closure will be processed on the next working day.",
                ],
            }[kind]
            blocks = [Para(self.sender.name, size=size + 4, keep_next=True), Para(self.sender.address, after=0.8)]
            blocks.append(Para(self.d(self.day), after=0.5))
            blocks += [Para(self.to.name, keep_next=True), Para(self.to.address, after=0.5)]
            blocks.append(Para(f"Dear {self.to.rep},", after=0.3))
            blocks.append(Para(f"Re: {title}", after=0.3))
            blocks += [Para(text, after=0.3) for text in body]
            blocks.append(Para("Yours sincerely,", before=0.5, after=1.2, keep_next=True))
            blocks.append(Para(self.sender.rep, keep_next=True))
            blocks.append(
                Para(
                    f"{self.pick(('Finance Manager', 'Office Manager', 'Sales Director', 'General Manager'))}, {self.sender.name}"
                )
            )
        slug = {
            "address": "address_change",
            "reminder": "payment_reminder",
            "price": "price_adjustment",
            "holiday": "holiday_notice",
        }[kind]
        return self._built(
            title,
            blocks,
            ["letter", slug],
            {"date": self.day.isoformat(), "sender": self.sender.name, "recipient": self.to.name},
        )

    def _report(self) -> Built:
        zh, rng, size = self.zh, self.rng, self.style.size
        kind = self.pick(("minutes", "inspection"))
        people = [self.reg.zh_person(rng) if zh else self.reg.en_person(rng) for _ in range(5)]
        blocks: list[Block]
        if kind == "minutes":
            topic = self.pick(
                ("年度预算评审", "新产品上市推进", "安全生产工作", "信息化项目周例会", "供应商年度评估")
                if zh
                else (
                    "Quarterly Operations Review",
                    "Project Steering Committee",
                    "Health and Safety Committee",
                    "Supplier Performance Review",
                )
            )
            title = f"{topic}会议纪要" if zh else f"Minutes of Meeting - {topic}"
            due = [self.d(self.day + timedelta(days=d)) for d in (7, 14, 30)]
            if zh:
                blocks = [Para(title, size=size + 6, align="center", after=0.5)]
                blocks += [
                    Para(t, keep_next=True)
                    for t in (
                        f"会议时间：{self.d(self.day)} 14:00",
                        f"会议地点：{self.sender.name}{self.pick(('第一会议室', '三楼会议室', '综合楼201会议室'))}",
                        f"主持人：{people[0]}",
                        f"参会人员：{'、'.join(people[1:4])}",
                    )
                ]
                blocks.append(Para(f"记录人：{people[4]}", after=0.4))
                blocks.append(Para("一、会议议题", before=0.3, keep_next=True))
                blocks.append(Para(f"会议听取了各部门关于{topic}的工作汇报，对存在的问题进行了讨论。", indent=2))
                blocks.append(Para("二、会议决定事项", before=0.3, keep_next=True))
                decisions = (
                    "各部门于本月底前完成工作计划的修订并报综合管理部备案",
                    "财务部牵头对重点项目的费用执行情况进行专项检查",
                    "下次会议时间另行通知",
                )
                blocks += [Para(t, hang=f"{i}. ") for i, t in enumerate(decisions, start=1)]
                rows: list[tuple[str, ...]] = [("序号", "工作事项", "责任人", "完成时间")]
                for i, (task, who, when) in enumerate(
                    zip(("修订工作计划", "费用专项检查", "整改情况汇报"), people[1:4], due, strict=True), start=1
                ):
                    rows.append((str(i), task, who, when))
                blocks.append(Para("三、后续工作安排", before=0.3, keep_next=True))
                blocks.append(Table(tuple(rows)))
            else:
                blocks = [Para(title, size=size + 5, align="center", after=0.5)]
                blocks += [
                    Para(t, keep_next=True)
                    for t in (
                        f"Date: {self.d(self.day)}, 10:00",
                        f"Venue: {self.pick(('Board Room', 'Meeting Room 2', 'Video conference'))}, {self.sender.name}",
                        f"Chair: {people[0]}",
                        f"Present: {', '.join(people[1:4])}",
                    )
                ]
                blocks.append(Para(f"Minutes: {people[4]}", after=0.4))
                items = (
                    "Minutes of the previous meeting were approved without amendment.",
                    "Operations reported that the backlog had been reduced and on-time delivery improved.",
                    "Finance presented the forecast; the committee asked for a revised cost plan.",
                )
                blocks += [Para(t, hang=f"{i}. ", after=0.2) for i, t in enumerate(items, start=1)]
                rows = [("Action", "Owner", "Due")]
                for task, who, when in zip(
                    ("Revise cost plan", "Circulate supplier scorecards", "Report on safety audit"),
                    people[1:4],
                    due,
                    strict=True,
                ):
                    rows.append((task, who, when))
                blocks.append(Para("Actions", before=0.4, keep_next=True))
                blocks.append(Table(tuple(rows)))
            slug, kw = "meeting_minutes", "会议纪要" if zh else "minutes"
        else:
            product = self.pick(ZH_GOODS if zh else EN_GOODS)
            number = self.reg.number(rng, "JC" if zh else "QR", self.day.year, self.day)
            title = self.pick(
                ("产品质量检验报告", "设备验收报告", "检验报告")
                if zh
                else ("Quality Inspection Report", "Site Inspection Report", "Inspection Report")
            )
            checks_zh = (
                ("外观", "无划痕、无变形", "符合"),
                ("尺寸偏差", "±0.5mm", "0.2mm"),
                ("绝缘电阻", "≥2MΩ", "15MΩ"),
                ("功能测试", "各项功能正常", "正常"),
                ("包装标识", "清晰完整", "符合"),
            )
            checks_en = (
                ("Appearance", "No scratches or dents", "Pass"),
                ("Dimensions", "+/- 0.5 mm", "0.2 mm"),
                ("Insulation resistance", ">= 2 MOhm", "15 MOhm"),
                ("Function test", "All functions normal", "Pass"),
                ("Labelling", "Legible and complete", "Pass"),
            )
            checks = checks_zh if zh else checks_en
            if zh:
                blocks = [Para(title, size=size + 6, align="center", after=0.5)]
                blocks.append(
                    Table(
                        (
                            (f"报告编号：{number}", f"检验日期：{self.d(self.day)}"),
                            (f"产品名称：{product[0]}", f"规格型号：{product[1]}"),
                            (f"委托单位：{self.to.name}", ""),
                        ),
                        header=False,
                        ruled=False,
                        widths=(0.62, 0.38),
                        fallback=tuple(
                            Para(t)
                            for t in (
                                f"报告编号：{number}",
                                f"检验日期：{self.d(self.day)}",
                                f"产品名称：{product[0]}",
                                f"规格型号：{product[1]}",
                                f"委托单位：{self.to.name}",
                            )
                        ),
                    )
                )
                rows = [("序号", "检验项目", "技术要求", "检验结果", "单项结论")]
                rows += [(str(i), a, b, c, "合格") for i, (a, b, c) in enumerate(checks, start=1)]
                blocks.append(Table(tuple(rows), before=0.6))
                blocks.append(Para("检验结论：所检项目均符合相关标准及合同技术要求，判定该批产品合格。", before=0.4))
                blocks.append(
                    Table(
                        ((f"检验员：{people[0]}", f"审核：{people[1]}", f"批准：{people[2]}"),),
                        header=False,
                        ruled=False,
                        before=1.0,
                    )
                )
                blocks.append(Para(f"检验单位：{self.sender.name}", align="right", before=0.5))
            else:
                blocks = [Para(title, size=size + 5, align="center", after=0.5)]
                blocks += [
                    Para(t, keep_next=True)
                    for t in (
                        f"Report No.: {number}",
                        f"Date of inspection: {self.d(self.day)}",
                        f"Item: {product[0]}, model {product[1]}",
                    )
                ]
                blocks.append(Para(f"Client: {self.to.name}", after=0.4))
                rows = [("Check", "Requirement", "Result", "Verdict")]
                rows += [(a, b, c, "Pass") for a, b, c in checks]
                blocks.append(Table(tuple(rows)))
                blocks.append(
                    Para(
                        "Conclusion: all items inspected conform to the specification. The lot is accepted.", before=0.4
                    )
                )
                blocks.append(Para(f"Inspected by: {people[0]}", before=0.8, keep_next=True))
                blocks.append(Para(f"Approved by: {people[1]}, {self.sender.name}"))
            slug, kw = "inspection", "检验" if zh else "inspection"
        return self._built(
            title, blocks, ["report", slug, kw], {"date": self.day.isoformat(), "author": self.sender.name}
        )


# ---------------------------------------------------------------------------------------------
# The corpus: what to generate, laying it out, rendering each document, the manifest

LAYOUTS = ("clauses", "goods_table", "party_table")
TINTS = ((246, 240, 225), (240, 236, 228), (250, 247, 238), (236, 236, 236))
ZH_FOOTERS = ("第{page}页 共{pages}页", "第 {page} 页，共 {pages} 页", "- {page} -", "{page}/{pages}")
EN_FOOTERS = ("Page {page} of {pages}", "- {page} -", "{page}", "Page {page}")


@dataclass(frozen=True)
class Rendering:
    kind: str
    look: Look = Look()


@dataclass(frozen=True)
class Plan:
    """One document to generate: class, language, contract type and layout, and its renderings."""

    cls: str
    lang: str
    ctype: str
    layout: str
    renderings: tuple[Rendering, ...]
    long: bool = False


def _noisy_look(rng: random.Random, *, rotation: int, dpi: int) -> Look:
    return Look(
        dpi=dpi,
        rotation=rotation,
        skew=round(rng.choice((-1, 1)) * rng.uniform(0.5, 3.0), 2),
        blur=round(rng.uniform(0.3, 1.0), 2),
        noise=round(rng.uniform(3.0, 12.0), 1),
        jpeg_quality=rng.randint(35, 80) if rng.random() < 0.6 else 0,
        tint=rng.choice(TINTS) if rng.random() < 0.5 else None,
        specks=rng.randint(0, 40),
    )


def plan_corpus(seed: int, count: int, *, quick: bool = False, long: bool = False) -> list[Plan]:
    """What the corpus holds: about two thirds contracts (every type, both languages, every layout),
    the rest invoices, letters and reports; every rendering kind, clean and noisy, some pages rotated."""
    if count < 1:
        raise ValueError("count must be at least 1")
    rng = random.Random(f"{seed}:plan")  # noqa: S311 - seeded test data, not secrets
    n_other = 0 if count < 4 else min(count - 1, 6 * max(1, round(count * 0.3 / 6)))
    types = list(CONTRACT_TYPES)
    rng.shuffle(types)
    docs: list[tuple[str, str, str, str]] = []
    for i in range(count - n_other):
        lang = LANGUAGES[(i + i // len(types)) % 2]
        docs.append(("contract", lang, types[i % len(types)], LAYOUTS[(i // 2) % len(LAYOUTS)]))
    for i in range(n_other):
        cls = ("invoice", "letter", "report")[i % 3]
        docs.append((cls, LANGUAGES[(i // 3) % 2], "", cls))
    rng.shuffle(docs)
    plans = []
    scans = 0
    for j, (cls, lang, ctype, layout) in enumerate(docs):
        primary = KINDS[j % len(KINDS)]
        kinds = [primary]
        if primary != "pdf_text" and j % 2 == 0:
            kinds.insert(0, "pdf_text")
        elif primary == "pdf_text" and j % 3 != 2:
            kinds.append(KINDS[1 + (j // len(KINDS)) % 4])
        renderings = []
        for kind in kinds:
            if kind == "pdf_text":
                renderings.append(Rendering(kind))
                continue
            dpi = 150 if quick or rng.random() < 0.7 else 200
            if scans % 3 == 0:
                look = Look(dpi=dpi)
            else:
                noisy = scans - scans // 3 - 1  # index among the noisy renderings
                rotation = {2: 90, 5: 180, 9: 180, 13: 270}.get(noisy % 16, 0)  # about one in four
                look = _noisy_look(rng, rotation=rotation, dpi=dpi)
            scans += 1
            renderings.append(Rendering(kind, look))
        plans.append(Plan(cls, lang, ctype, layout, tuple(renderings)))
    if long:
        look = _noisy_look(rng, rotation=0, dpi=150)
        plans.append(
            Plan(
                "contract",
                "zh",
                "purchase",
                "goods_table",
                (Rendering("pdf_text"), Rendering("pdf_scan", look)),
                long=True,
            )
        )
    return plans


def _style(rng: random.Random, lang: str, cls: str) -> Style:
    footers = ZH_FOOTERS if lang == "zh" else EN_FOOTERS
    return Style(
        family=rng.choice(("sans", "sans", "serif")),
        size=rng.choice((11.5, 12.0, 12.0, 12.5, 13.0)),
        leading=rng.choice((1.55, 1.65, 1.75)),
        margin_x=rng.choice((60.0, 66.0, 72.0)),
        margin_top=rng.choice((56.0, 62.0, 70.0)),
        footer="" if cls == "letter" and rng.random() < 0.7 else rng.choice(footers),
    )


def _check_glyphs(pages: Sequence[Page], family: str) -> None:
    charset = font_charset(family)
    missing = sorted(
        {ch for page in pages for line in page.lines for ch in line if ord(ch) not in charset and not ch.isspace()}
    )
    if missing:
        raise ValueError(f"characters missing from Noto {family.title()} SC: {''.join(missing)!r}")


def build_document(plan: Plan, rng: random.Random, reg: Registry) -> tuple[Built, Style, list[Page]]:
    """Write and lay out one planned document (a long one grows its annex to LONG_PAGES pages)."""
    state = rng.getstate()
    annex, base, tuned = 0, 0, False
    saved = set(reg.used)
    while True:
        rng.setstate(state)
        reg.used = set(saved)
        style = _style(rng, plan.lang, plan.cls)
        if plan.cls == "contract":
            writer = ContractWriter(
                rng, reg, plan.lang, ctype=plan.ctype, layout=plan.layout, style=style, long=plan.long
            )
            built = writer.write(annex_rows=annex)
            if rng.random() < 0.3:
                header = f"合同编号：{writer.number}" if plan.lang == "zh" and writer.has_number else built.title
                style = replace(style, header=header)
        else:
            built = OtherWriter(rng, reg, plan.lang, cls=plan.cls, layout=plan.layout, style=style).write()
        pages = Layout(style).pages(built.blocks)
        if not plan.long or (len(pages) >= LONG_PAGES and (tuned or len(pages) == LONG_PAGES)):
            break
        if annex == 0:
            base, annex = len(pages), (LONG_PAGES - len(pages)) * 30
        elif len(pages) > LONG_PAGES and not tuned:
            # the annex grows to just fill LONG_PAGES pages, at the rows per page just measured
            rate = annex / max(1, len(pages) - base)
            annex, tuned = int((LONG_PAGES - base) * rate), True
        else:
            annex += 30
    _check_glyphs(pages, style.family)
    return built, style, pages


def _file(path: str, kind: str, look: Look, pages: list[int], family: str, *, dpi: int | None) -> FileEntry:
    return {
        "path": path,
        "kind": kind,
        "clean": look.clean,
        "rotation": look.rotation,
        "skew": look.skew,
        "pages": pages,
        "dpi": dpi,
        "font": family,
    }


def render_document(
    out: Path, doc_id: str, built: Built, pages: list[Page], *, style: Style, plan: Plan, seed: int, index: int
) -> list[FileEntry]:
    """Write every planned rendering of one document under ``out``; returns their manifest entries."""
    files: list[FileEntry] = []
    base: dict[int, list[Image.Image]] = {}
    all_pages = list(range(len(pages)))
    for r, rendering in enumerate(plan.renderings):
        look, kind = rendering.look, rendering.kind
        if kind == "pdf_text":
            name = f"{doc_id}.pdf"
            (out / name).write_bytes(render_pdf_text(pages, style.family, built.title))
            files.append(_file(name, kind, look, all_pages, style.family, dpi=None))
            continue
        if look.dpi not in base:
            base[look.dpi] = [render_image(page, style.family, look.dpi) for page in pages]
        images = [scan(image, look, _seed(seed, index, r, p)) for p, image in enumerate(base[look.dpi])]
        if kind == "pdf_scan":
            name = f"{doc_id}.scan.pdf"
            (out / name).write_bytes(render_pdf_scan(images, look.dpi))
            files.append(_file(name, kind, look, all_pages, style.family, dpi=look.dpi))
        elif kind == "tiff":
            name = f"{doc_id}.tif"
            (out / name).write_bytes(encode_tiff(images, look.dpi))
            files.append(_file(name, kind, look, all_pages, style.family, dpi=look.dpi))
        else:
            ext = "png" if kind == "png" else "jpg"
            for p, image in enumerate(images):
                name = f"{doc_id}-p{p + 1}.{ext}"
                (out / name).write_bytes(encode_image(image, kind, look.dpi))
                files.append(_file(name, kind, look, [p], style.family, dpi=look.dpi))
    return files


def _seed(*parts: int) -> list[int]:
    return [int(p) for p in parts]


def generate_corpus(
    out: Path,
    seed: int = DEFAULT_SEED,
    count: int | None = None,
    quick: bool = False,
    long: bool = False,
) -> Manifest:
    """Generate the corpus into ``out`` (files and ``manifest.json``) and return its manifest.

    ``count`` defaults to QUICK_COUNT with ``quick`` (every class, language and rendering kind; a
    few seconds) and DEFAULT_COUNT otherwise. ``long`` adds one contract of LONG_PAGES pages.
    """
    count = count if count is not None else (QUICK_COUNT if quick else DEFAULT_COUNT)
    out.mkdir(parents=True, exist_ok=True)
    reg = Registry()
    documents: list[DocumentEntry] = []
    for index, plan in enumerate(plan_corpus(seed, count, quick=quick, long=long)):
        doc_id = f"doc-{index:03d}"
        rng = random.Random(f"{seed}:{index}")  # noqa: S311 - seeded test data, not secrets
        built, style, pages = build_document(plan, rng, reg)
        files = render_document(out, doc_id, built, pages, style=style, plan=plan, seed=seed, index=index)
        tags = list(dict.fromkeys([*built.tags, *(["long"] if plan.long else [])]))
        documents.append(
            {
                "id": doc_id,
                "class": built.cls,
                "language": built.lang,
                "title": built.title,
                "tags": tags,
                "layout": built.layout,
                "fields": built.fields,
                "surface": built.surface,
                "distractors": built.distractors,
                "extra": built.extra,
                "pages": [page.text for page in pages],
                "files": files,
                "questions": [
                    {"question": q, "document": doc_id, "answer": a, "field": f} for q, a, f in built.questions
                ],
            }
        )
    manifest: Manifest = {"seed": seed, "generator": GENERATOR_VERSION, "quick": quick, "documents": documents}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return manifest


def summary(manifest: Manifest) -> str:
    """Counts per class, language and rendering kind (clean/noisy), one line each."""
    from collections import Counter

    docs = manifest["documents"]
    by_class = Counter(f"{d['class']}/{d['language']}" for d in docs)
    by_kind = Counter(f"{f['kind']}:{'clean' if f['clean'] else 'noisy'}" for d in docs for f in d["files"])
    types = Counter(d["fields"]["contract_type"]["type"] for d in docs if d["class"] == "contract")
    pages = sum(len(d["pages"]) for d in docs)
    return "\n".join(
        [
            f"{len(docs)} documents, {pages} pages, {sum(len(d['questions']) for d in docs)} questions",
            "classes: " + ", ".join(f"{k} {v}" for k, v in sorted(by_class.items())),
            "contract types: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())),
            "files: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the files and manifest.json to")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (same seed, same bytes)")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help=f"documents to generate (default {DEFAULT_COUNT}, {QUICK_COUNT} with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small corpus covering every class, language and rendering"
    )
    parser.add_argument("--long", action="store_true", help=f"add one {LONG_PAGES}-page contract (throughput tests)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = generate_corpus(args.out, seed=args.seed, count=args.count, quick=args.quick, long=args.long)
    print(summary(manifest))
    print(f"wrote {args.out / 'manifest.json'} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
