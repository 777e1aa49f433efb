"""Contract type: the title's gazetteer keyword, Chinese and English, mapped to one slug.

The keyword nearest the end of the title wins (Chinese and English titles put the head noun
last: 设备租赁合同 → lease, 销售代理协议 → agency, Software License Agreement → license).
Decisions: supply/供货 = the customer buying → ``purchase``; distribution/经销/分销 → ``agency``
(the distributor resells on the principal's behalf); 买卖合同 → ``sales``; 劳务合同 → ``employment``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTRACT_TYPES = (
    "purchase", "sales", "service", "lease", "employment", "nda", "loan", "license", "construction", "agency", "other",
)  # fmt: skip

_ZH = {
    "nda": "保密|竞业限制|竞业禁止|不披露",
    "employment": "劳动|聘用|雇佣|聘任|劳务|用工",
    "lease": "租赁|租用|出租|承租|租房|租车",
    "loan": "借款|贷款|借贷|信贷|授信|借据",
    "license": "许可|授权使用",
    "construction": "建设工程|施工|工程承包|工程总承包|承包|建筑|装修|装饰工程|安装工程",
    "agency": "代理|经销|分销|代销|居间",
    "purchase": "采购|购销|购买|订购|购货|供货|供应|购置",
    "sales": "销售|买卖|出售",
    "service": "服务|咨询|委托|外包|维保|维护|运维|培训|物业",
}
_EN = {
    "nda": r"non[-\s]?disclosure|confidentiality|nda|secrecy",
    "employment": r"employment|employee|labou?r",
    "lease": r"lease|leasing|tenancy|rental",
    "loan": r"loan|credit|facility|promissory|borrowing|lending",
    "license": r"licen[cs]e|licen[cs]ing",
    "construction": r"construction|works|epc|building",
    "agency": r"agency|agent|distribution|distributor(?:ship)?|dealer(?:ship)?|reseller|representative|representation",
    "purchase": r"purchase|procurement|supply|purchasing",
    "sales": r"sales?|selling",
    "service": r"services?|consult(?:ing|ancy)|msa|maintenance|outsourcing",
}
_KEYWORD = re.compile(
    "|".join(f"(?P<{slug}>{words})" for slug, words in _ZH.items())
    + "|"
    + "|".join(rf"\b(?P<en_{slug}>{words})\b" for slug, words in _EN.items()),
    re.IGNORECASE | re.ASCII,
)
# The same without word boundaries, for a title whose spaces OCR lost (TENANCYAGREEMENT).
_KEYWORD_GLUED = re.compile(_KEYWORD.pattern.replace(r"\b", ""), re.IGNORECASE | re.ASCII)
_GLUED_TITLE = re.compile(r"[A-Z]{12,}")
# What ends a title: 合同, 协议, Agreement, ... (a title line names one of these).
_HEAD = re.compile(
    r"合同书?|协议书?|契约|确认书|承诺书|订单|\b(?:agreement|contract|deed|lease|nda|note|licen[cs]e|"
    r"offer\s+of\s+employment|purchase\s+order|terms\s+and\s+conditions)\b",
    re.IGNORECASE | re.ASCII,
)
# Lines that carry a label rather than the title.
_HEAD_GLUED = re.compile(_HEAD.pattern.replace(r"\b", ""), re.IGNORECASE | re.ASCII)
_NOT_TITLE = re.compile(
    r"^\s*(?:合同编号|编号|合同号|甲方|乙方|丙方|签订|签署|日期|地址|第.{1,3}条|[一二三四五六七八九十]+[、.]|\d+[.、]|"
    r"(?:contract|agreement)\s*no|no\.|party\s|between|date|ref|this\s|whereas|by\s+and)",
    re.IGNORECASE | re.ASCII,
)
_LABEL_ON_TITLE_LINE = re.compile(
    r"合同编号|协议编号|编号|合同号|签订日期|\b(?:contract|agreement)\s*(?:no|number)\b|\bno\.|\bref\b|\bdate\b",
    re.IGNORECASE | re.ASCII,
)
_SENTENCE = re.compile(r"[，。；;]|^(?:鉴于|本|根据|依据|为了|经)|[a-z]\.\s+[A-Z]")
_BODY_MENTION = re.compile(
    r"(?:本|该|此)(?P<title>[^\s,，。;；:：()]{0,12}?(?:合同|协议))"
    r"|\bthis\s+(?P<en>(?:[A-Za-z-]+\s+){0,4}?(?:agreement|contract|lease))\b",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True)
class ContractKind:
    start: int
    end: int
    slug: str
    label: str
    confidence: float


def classify(title: str) -> str | None:
    """The slug of a title by its last gazetteer keyword; None when the title names none."""
    last: tuple[int, int, str] | None = None
    keywords = _KEYWORD_GLUED if _GLUED_TITLE.search(title) else _KEYWORD
    for m in keywords.finditer(title):
        slug = (m.lastgroup or "").removeprefix("en_")
        key = (m.end(), m.end() - m.start())
        if last is None or key > last[:2]:
            last = (*key, slug)
    return last[2] if last else None


def _lines(text: str, limit: int) -> list[tuple[int, int]]:
    """(start, end) of the first ``limit`` non-empty lines (pages count as lines)."""
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"[^\n\f]+", text):
        if m[0].strip():
            spans.append((m.start(), m.end()))
            if len(spans) == limit:
                break
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t*#-_=\"'《》「」【】[]·•":
        start += 1
    while end > start and text[end - 1] in " \t*#-_=\"'《》「」【】[]·•:：.。":
        end -= 1
    return start, end


def find_contract_kind(text: str) -> ContractKind | None:
    """The type from the title (first lines), else from how the body names the contract (本采购合同)."""
    lines = _lines(text, 10)
    for index, (line_start, line_end) in enumerate(lines):
        start, end = _trim(text, line_start, line_end)
        line = text[start:end]
        if not line or len(line) > 60 or _NOT_TITLE.match(line) or _SENTENCE.search(line):
            continue
        heads = list((_HEAD_GLUED if _GLUED_TITLE.search(line) else _HEAD).finditer(line))
        if not heads:
            # A title broken over two lines: 设备采购 / 合同
            if index + 1 < len(lines) and len(line) <= 20:
                nxt_start, nxt_end = _trim(text, *lines[index + 1])
                nxt = text[nxt_start:nxt_end]
                if len(nxt) <= 12 and _HEAD.fullmatch(nxt.strip()) and classify(line):
                    label = line + (" " if line[-1].isascii() else "") + nxt.strip()
                    return ContractKind(start, nxt_end, classify(line) or "other", label, 0.85)
            continue
        # Cut what follows the title on the same line (合同编号：…); keep "Contract of Employment" whole.
        label_cut = _LABEL_ON_TITLE_LINE.search(line, 1)
        if label_cut:
            line = line[: label_cut.start()].rstrip()
            heads = [h for h in heads if h.end() <= len(line)]
            if not heads:
                continue
        title_end = heads[-1].end()
        tail = line[title_end:].strip()
        if re.match(r"(?:of|for)\s+\w", tail, re.IGNORECASE | re.ASCII):
            title_end = len(line)
        elif tail and not re.fullmatch(r"[(\[][^()\[\]]{0,16}[)\]]", tail):
            continue  # 合同总价…: the head word is inside a sentence, not ending a title
        label = line[:title_end].strip()
        slug = classify(label)
        confidence = (0.95 if index < 3 else 0.85) if slug else 0.7
        return ContractKind(start, start + title_end, slug or "other", label, confidence)
    # No title: the most frequent way the body names the contract.
    counts: dict[str, list[tuple[int, int, str]]] = {}
    for m in _BODY_MENTION.finditer(text, 0, min(len(text), 5000)):
        group = "title" if m["title"] else "en"
        slug = classify(m[group])
        if slug:
            counts.setdefault(slug, []).append((m.start(group), m.end(group), m[group]))
    if not counts:
        return None
    slug, mentions = max(counts.items(), key=lambda item: (len(item[1]), -item[1][0][0]))
    start, end, label = mentions[0]
    return ContractKind(start, end, slug, label, 0.6)
