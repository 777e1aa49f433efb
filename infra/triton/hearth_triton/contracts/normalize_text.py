"""Fold PP-OCR noise out of contract text, keeping a map from every folded character to the original.

Two passes. The first is one character for one character (``str.translate``): NFKC (full-width
``：，（０-９Ａ`` to ASCII, Kangxi radicals to ideographs), curly quotes to ``"``/``'``, dashes to
``-``, ``○`` to ``〇``, ``曰`` to ``日``. The second changes lengths: it drops spaces OCR inserts
between CJK characters, inside numbers (``100, 000.00``, ``2024 年 1 月``) and at line ends,
collapses other space runs, drops zero-width characters, turns ``\\r\\n`` into ``\\n``, puts back
the spaces PP-OCR drops from English (``thePurchaser``, ``2023between``) where a text is glued, reads
``O``/``o``/``I``/``l`` touching a digit run as ``0``/``1`` and ``目`` after a numeral as ``日``.
Those two guesses are recorded (:meth:`Folded.repaired`) so callers can lower their confidence.
Line breaks (``\\n``) and page breaks (``\\f``) are kept.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Ideographs, CJK punctuation (。、《》【】「」〔〕), kana, bopomofo, CJK compatibility forms.
CJK = HAN + "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u312f\ufe30-\ufe4f"
_CJK_CHAR = re.compile(f"[{CJK}]")

_CUSTOM = {
    **dict.fromkeys("“”„‟«»〝〞", '"'),
    **dict.fromkeys("‘’‚‛", "'"),
    **dict.fromkeys("—–‒―−‐‑﹣", "-"),
    "〜": "~",
    "○": "〇",
    "◯": "〇",
    "曰": "日",
    "\t": " ",
    "\x0b": "\n",
}
_KEEP = (
    range(0x2460, 0x2500),  # circled and parenthesised numbers (①, ⑴, ⒈) are list marks, not digits
    range(0x3251, 0x3260),
    range(0x32B1, 0x32C0),
)


def _fold_char(code: int) -> int:
    char = chr(code)
    folded = _CUSTOM.get(char)
    if folded is None:
        folded = char if any(code in r for r in _KEEP) else unicodedata.normalize("NFKC", char)
        folded = _CUSTOM.get(folded, folded)
    return ord(folded) if len(folded) == 1 else code  # one-to-one folds only


def _fold_map() -> dict[str, str]:
    """Every character the first pass changes. NFKC changes nothing among the unified ideographs,
    Hangul or Yi, so only the blocks below are scanned (about 20 ms, once)."""
    mapping = {c: f for c, f in _CUSTOM.items() if len(f) == 1}
    for low, high in ((0x80, 0x3400), (0xF900, 0x10000)):
        for code in range(low, high):
            folded = _fold_char(code)
            if folded != code:
                mapping[chr(code)] = chr(folded)
    return mapping


_MAP = _fold_map()
_CHANGED = re.compile("[" + "".join(re.escape(c) for c in sorted(_MAP)) + "]")


def _translate(text: str) -> str:
    # A regex over the few characters that change beats str.translate's per-character lookups.
    return _CHANGED.sub(lambda m: _MAP[m[0]], text)


# Whitespace to drop: next to CJK or a line end, between digits, inside grouped numbers and codes.
# It runs on the original text (one-for-one with the translated one), so a space after a full-width
# '：' or '，' that follows CJK counts as Chinese context ("Co.， Ltd." keeps its space). The leading
# lookahead lets the regex engine skip to candidate characters (10x faster on clean text).
_WS = "[ \t\u00a0\u3000]"
_FW_PUNCT = "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
_CTX = f"{CJK}\n\f"
_SEP = ".\\-/．－／"
_DROP = re.compile(
    r"(?=[ \t\u00a0\u3000\r\u00ad\u200b-\u200d\u2060\ufeff])(?:"
    r"[\u00ad\u200b-\u200d\u2060\ufeff]+"
    rf"|{_WS}(?<=[{_CTX}]{_WS}){_WS}*"
    rf"|{_WS}(?<=[{CJK}][{_FW_PUNCT}]{_WS}){_WS}*"  # "甲方： X": a full-width colon in Chinese context
    rf"|{_WS}(?<=[{CJK}]{_WS}[{_FW_PUNCT}]{_WS}){_WS}*"
    rf"|{_WS}+(?=[{_CTX}]|\Z)"
    rf"|{_WS}(?<=\d{_WS}){_WS}*(?=[OoIl]{{0,2}}\d|[OoIl]{{1,2}}[,.，．]\d|[,{_SEP}，]\d)"
    rf"|{_WS}(?<=\d[OoIl]{_WS}){_WS}*(?=\d)"  # "2 O24", "2O 24": a confusable inside a digit run
    rf"|{_WS}(?<=\d{_WS}){_WS}*(?=[OoIl](?![A-Za-z]))"  # "202 l": the run's last digit read as a letter
    rf"|{_WS}(?<=\d[,，]{_WS}){_WS}*(?=\d{{3}}(?!\d))"  # "100, 000.00"; not "March 1, 2024"
    rf"|{_WS}(?<=\d[{_SEP}]{_WS}){_WS}*(?=\d)"  # "2024. 01. 01", "HT-2024- 0012"
    r"|(?P<cr>\r\n?)"
    rf"|(?P<collapse>{_WS}{{2,}}|[\t\u00a0\u3000]))"
)
# One-for-one OCR guesses, on the space-free text: O/o/I/l touching a digit run, 目 after a numeral.
_GUESS = re.compile(
    r"(?=[OoIl目申已])(?:[OoIl](?<![A-Za-z][OoIl])[OoIl]?(?=\d)"
    r"|[OoIl](?<=\d[OoIl])[OoIl]?(?![A-Za-z])"
    r"|[OoIl](?<=\d[OoIl])(?=(?:st|nd|rd|th)(?![A-Za-z]))"  # 1lth
    r"|目(?<=[\dOoIl一二三四五六七八九十]目)|(?<!项)目(?=期)"  # 3目 → 3日; 目期 (not 项目期限) → 日期
    r"|申(?=方)|已(?=方\s{0,2}[:：(（]))"  # 申方 → 甲方, 已方： → 乙方
)
_HAN_GUESS = {"目": "日", "申": "甲", "已": "乙"}
_CONFUSABLE = str.maketrans("OoIl", "0011")
# A wrapped line of a Chinese paragraph: Han on both sides of the break, a line before it about as
# long as the document's long lines (it filled the measure) that does not end with a company name,
# and a next line that does not start a clause or a label.
_SOFT_BREAK = re.compile(f"(?<=[{HAN}])\n(?=[{HAN}])")
_LINE_START = re.compile(
    r"第[一二三四五六七八九十百\d]{1,4}[条章节款]|[一二三四五六七八九十]{1,3}[、.]|[^\n:：。，,()（）]{1,8}[:：]|"
    r"(?:甲|乙|丙|丁)方|附件|备注|注[:：]"
)
SOFT_BREAK_MIN_LINE = 16
_NAME_END = re.compile(r"(?:公司|集团|研究院|研究所|银行|分行|支行|中心|事务所|大学|医院)$")


@dataclass(frozen=True)
class Folded:
    """Folded text and, for each of its characters, the index of the original character it comes from."""

    text: str
    origin: list[int]  # len(text) + 1 entries; the last is len(original)
    repaired_at: list[int]  # sorted folded positions where a guess (O→0, 目→日) was applied
    gaps: list[int]  # sorted folded positions where whitespace was dropped (a table's cell boundary, maybe)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` of the folded ``[start, end)``."""
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1

    def repaired(self, start: int, end: int) -> bool:
        """Whether an OCR guess was applied inside the folded ``[start, end)``."""
        i = bisect.bisect_left(self.repaired_at, start)
        return i < len(self.repaired_at) and self.repaired_at[i] < end


def is_cjk(char: str) -> bool:
    return bool(_CJK_CHAR.match(char))


def fold(text: str) -> Folded:
    """``text`` with OCR noise folded (see the module docstring), with its offset map."""
    t = _translate(text)
    pieces: list[str] = []
    origin: list[int] = []
    pos = 0
    if t[:1] == " ":  # leading spaces (the pattern's lookbehinds cannot see the start)
        pos = len(t) - len(t.lstrip(" "))
    gaps: list[int] = []
    for match in _DROP.finditer(text, pos):
        s, e = match.span()
        pieces.append(t[pos:s])
        origin.extend(range(pos, s))
        if match.lastgroup is not None:  # \r\n → \n, a run of spaces → one
            pieces.append("\n" if match.lastgroup == "cr" else " ")
            origin.append(s)
        elif t[s] == " ":
            gaps.append(len(origin))
        pos = e
    pieces.append(t[pos:])
    origin.extend(range(pos, len(t)))
    origin.append(len(text))
    folded = "".join(pieces)
    if _glued(folded):
        folded, origin, gaps = _unglue(folded, origin, gaps)
    if "\n" in folded:
        folded, origin, gaps = _join_wrapped_lines(folded, origin, gaps)
    repaired: list[int] = []
    if _GUESS.search(folded):
        chars = list(folded)
        for match in _GUESS.finditer(folded):
            s, e = match.span()
            chars[s:e] = _HAN_GUESS.get(folded[s]) or folded[s:e].translate(_CONFUSABLE)
            repaired.extend(range(s, e))
        folded = "".join(chars)
    return Folded(folded, origin, repaired, gaps)


# PP-OCR's Chinese recogniser often drops the spaces of English text (TheLicensorownstheSoftware,
# September24,2023betweenMarlow). Where a text is glued like that, spaces are put back at the
# boundaries that case and digits show; lower-case runs stay glued (patterns allow for that).
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z][A-Z][a-z]|[a-z]{2}\d|\d[a-z]{2}")
_WORDS = re.compile(r"[A-Za-z]{2,}")
_UNGLUE = re.compile(
    r"(?<=[a-z])(?=[A-Z][a-z])"  # thePurchaser, AtlasInvestment
    r"|(?<=[A-Z])(?=[A-Z][a-z]{2})"  # WHEREASThe
    r"|(?<=[a-z])(?=(?:USD|HKD|EUR|GBP|RMB|CNY|JPY|US\$|HK\$)(?![a-z]))"  # isHKD808
    r"|(?<=[a-z]{2})(?=\d)"  # January2019, from1
    r"|(?<=\d)(?=[a-z]{2})(?!(?:st|nd|rd|th)(?![a-z]))"  # 2023between; not 5th
    r"|(?<=[,;:)\]])(?=[A-Za-z]{2})"  # Co.,Ltd. / No.:PA19 / ")and"
)
GLUE_RATIO = 0.03


def _glued(folded: str) -> bool:
    """Whether the English of this text lost its spaces (many case/digit seams inside words)."""
    words = len(_WORDS.findall(folded))
    return words >= 20 and len(_CAMEL.findall(folded)) / words >= GLUE_RATIO


def _unglue(folded: str, origin: list[int], gaps: list[int]) -> tuple[str, list[int], list[int]]:
    cuts = [m.start() for m in _UNGLUE.finditer(folded)]
    if not cuts:
        return folded, origin, gaps
    pieces: list[str] = []
    mapped: list[int] = []
    pos = 0
    for cut in cuts:
        pieces.append(folded[pos:cut])
        mapped.extend(origin[pos:cut])
        pieces.append(" ")
        mapped.append(origin[cut])  # the inserted space maps to the character it precedes
        pos = cut
    pieces.append(folded[pos:])
    mapped.extend(origin[pos:])
    shifted = [g + bisect.bisect_right(cuts, g) for g in gaps]
    return "".join(pieces), mapped, shifted


def _join_wrapped_lines(folded: str, origin: list[int], gaps: list[int]) -> tuple[str, list[int], list[int]]:
    """Drop the line breaks OCR put inside a Chinese phrase (合同总价款为人民\n币…) at paragraph wraps."""
    # A wrapped line fills the measure: compare with the document's long lines (90th percentile).
    lengths = sorted(len(line) for line in folded.split("\n") if len(line) >= 8)
    measure = lengths[int(len(lengths) * 0.9)] if lengths else 0
    minimum = max(SOFT_BREAK_MIN_LINE, int(measure * 0.8))
    drops = []
    for match in _SOFT_BREAK.finditer(folded):
        i = match.start()
        line_start = folded.rfind("\n", 0, i) + 1
        if i - line_start < minimum or _LINE_START.match(folded, i + 1) or _NAME_END.search(folded, i - 8, i):
            continue  # short line, a clause or label next, or a line ending with a company name (a table row)
        drops.append(i)
    if not drops:
        return folded, origin, gaps
    pieces: list[str] = []
    kept: list[int] = []
    pos = 0
    for i in drops:
        pieces.append(folded[pos:i])
        kept.extend(origin[pos:i])
        pos = i + 1
    pieces.append(folded[pos:])
    kept.extend(origin[pos:])
    shifted = [g - bisect.bisect_left(drops, g) for g in gaps]
    return "".join(pieces), kept, shifted
