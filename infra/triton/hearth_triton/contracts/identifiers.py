"""Contract numbers: 合同编号：HT-2024-0012, 编号.京(2024)采购字第0012号, Contract No.: ABC/2024/001, Ref.: X."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .normalize_text import HAN

_LABEL = re.compile(
    r"(?=[合协编文]|\b[CcAaOoPpRrYyNn])(?:(?P<strong>合同编号|合同号码|合同号|合同编码|合同书编号|合同序号|协议编号|协议号|协议书编号|"
    r"(?:contract|agreement)\s{0,2}(?:no|number|#|ref(?:erence)?)\b\.?|"
    r"(?:contract|agreement)\s{1,2}reference(?:\s{1,2}(?:no|number)\b\.?)?)"
    r"|(?P<weak>(?<![证照码号户])编号|文号|(?:order|po|ref(?:erence)?|our\s{1,2}ref|your\s{1,2}ref)\s{0,2}(?:no\b\.?|number|#)?|"
    r"(?<![A-Za-z])No\b\.?))",
    re.IGNORECASE | re.ASCII,
)
_INNER_NO = re.compile(r"(?:No|NO|no)\.?\s{0,2}[:：]?\s{0,2}(?=[A-Za-z0-9])|#\s{0,2}")
_SEPARATOR = re.compile(r"\s{0,2}\.?\s{0,2}[:：#]?\s{0,3}")
# A Chinese docket number: 京(2024)采购字第0012号, [2024]第15号
_DOCKET = re.compile(rf"[{HAN}A-Za-z]{{0,8}}[(\[〔【]\d{{4}}[)\]〕】][{HAN}A-Za-z]{{0,6}}第?\s?\d{{1,8}}\s?号")
_CODE_CHARS = re.compile(r"[A-Za-z0-9\-_/.#()\[\]]")
_NOT_AFTER_WEAK = re.compile(r"[A-Za-z]")  # "Nov", "Notice": "No" must stand alone


@dataclass(frozen=True)
class Code:
    start: int
    end: int
    number: str
    confidence: float


def _read_code(text: str, pos: int) -> tuple[int, int, str] | None:
    """The code starting at ``pos`` (folded text): code characters, spaces only next to separators."""
    docket = _DOCKET.match(text, pos)
    if docket:
        return docket.start(), docket.end(), re.sub(r"\s", "", docket[0])
    end = pos
    limit = min(len(text), pos + 60)
    while end < limit:
        char = text[end]
        if _CODE_CHARS.match(char):
            end += 1
        elif char == " " and end > pos and end + 1 < limit:
            prev, nxt = text[end - 1], text[end + 1]
            # "HT -2024", "HT- 2024", "HT 2024-0012" (a letter prefix, then the digits)
            prefix = text[pos:end]
            if prev in "-_/." or nxt in "-_/." or (prefix.isalpha() and prefix.isupper() and nxt.isdigit()):
                end += 1
            else:
                break
        else:
            break
    raw = text[pos:end]
    stripped = raw.rstrip(" .-_/#(")
    if stripped.count("(") < stripped.count(")"):
        stripped = stripped.rstrip(")")
    end = pos + len(stripped)
    code = stripped.replace(" ", "")
    if len(code) < 3 or not any(c.isdigit() for c in code):
        return None
    return pos, end, code


def find_contract_number(text: str) -> Code | None:
    """The best-labelled contract number (合同编号 over 编号/No.), the earliest among equals."""
    best: Code | None = None
    head = max(2000, len(text) // 4)
    for m in _LABEL.finditer(text):
        label = m[0]
        if label[-1].isascii() and label[-1].isalpha() and _NOT_AFTER_WEAK.match(text, m.end()):
            continue
        sep = _SEPARATOR.match(text, m.end())
        pos = sep.end() if sep else m.end()
        inner = _INNER_NO.match(text, pos)  # 合同编号：No. HT-2024-001
        if inner and m["strong"]:
            pos = inner.end()
        if m["weak"] and m["weak"].lower() == "no" and not (sep and sep.group().strip()):
            continue  # "No" without ':' or '.' is too loose
        found = _read_code(text, pos)
        if found is None:
            continue
        start, end, number = found
        if re.fullmatch(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", number) or re.fullmatch(r"1\d{10}", number):
            continue  # a date or a mobile phone number
        confidence = 0.95 if m["strong"] else (0.8 if m.start() < head else 0.6)
        if best is None or confidence > best.confidence:
            best = Code(start, end, number, confidence)
    return best
