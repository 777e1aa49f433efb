"""Document class and tags from rules: keyword evidence in the title lines and the body.

The first classifier of a new installation, before users have corrected any document. Titles
(the first lines of the first page) weigh three times the body; the class with the most evidence
wins, ``other`` when nothing is convincing. Confidence is the winner's share of the evidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Final

from shared.documents import Classification

CLASS_KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "contract": (
        "合同",
        "协议",
        "协议书",
        "甲方",
        "乙方",
        "签订",
        "违约责任",
        "争议解决",
        "生效",
        "本合同",
        "双方",
        "agreement",
        "contract",
        "party a",
        "party b",
        "hereinafter",
        "whereas",
        "in witness whereof",
        "governing law",
        "terminate",
        "term of",
        "the parties",
    ),
    "invoice": (
        "发票",
        "增值税",
        "税额",
        "价税合计",
        "开票",
        "购买方",
        "销售方",
        "纳税人识别号",
        "金额合计",
        "invoice",
        "tax",
        "subtotal",
        "amount due",
        "bill to",
        "invoice no",
        "vat",
        "total due",
        "payment terms",
    ),
    "letter": (
        "函",
        "通知",
        "致",
        "此致",
        "敬礼",
        "尊敬的",
        "特此通知",
        "联系人",
        "dear",
        "sincerely",
        "yours faithfully",
        "regards",
        "notice",
        "we are pleased",
        "please find",
    ),
    "report": (
        "报告",
        "纪要",
        "会议",
        "检验",
        "检测",
        "结论",
        "参会",
        "议题",
        "汇报",
        "总结",
        "report",
        "minutes",
        "meeting",
        "inspection",
        "findings",
        "conclusion",
        "attendees",
        "agenda",
        "summary",
    ),
}
"""Evidence per class; ``other`` is what is left when none of these is convincing."""

TAG_KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "procurement": ("采购", "供货", "购销", "purchase", "procurement", "supply"),
    "sales": ("销售", "sale of goods", "sales"),
    "lease": ("租赁", "出租", "承租", "lease", "tenancy", "rent"),
    "employment": ("劳动", "聘用", "雇佣", "employment", "employee", "salary"),
    "confidentiality": ("保密", "商业秘密", "confidential", "non-disclosure"),
    "finance": ("借款", "贷款", "利息", "付款", "loan", "interest", "payment"),
    "software": ("软件", "许可", "software", "license", "licence"),
    "construction": ("工程", "施工", "construction", "works"),
    "services": ("服务", "咨询", "service", "consulting"),
    "quality": ("质量", "检验", "验收", "quality", "inspection", "acceptance"),
}

_TITLE_LINES: Final = 3
_TITLE_WEIGHT: Final = 3.0
_MIN_EVIDENCE: Final = 2.0


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).lower()


def _hits(text: str, keywords: Sequence[str]) -> int:
    return sum(text.count(word) for word in keywords)


def classify(pages: Sequence[str]) -> Classification:
    """The document's class from its pages' text."""
    first = pages[0] if pages else ""
    title = _fold(" ".join(first.splitlines()[:_TITLE_LINES]))
    body = _fold(" ".join(pages))
    evidence = {
        label: _TITLE_WEIGHT * _hits(title, words) + min(_hits(body, words), 30)
        for label, words in CLASS_KEYWORDS.items()
    }
    best = max(evidence, key=lambda label: evidence[label])
    total = sum(evidence.values())
    if evidence[best] < _MIN_EVIDENCE or total == 0:
        return Classification(label="other", confidence=0.5)
    return Classification(label=best, confidence=round(evidence[best] / total, 3))


def tags_for(pages: Sequence[str], contract_type: str | None = None, limit: int = 6) -> list[str]:
    """Keyword tags, most evident first; the contract type leads when known."""
    body = _fold(" ".join(pages))
    counted = sorted(((tag, _hits(body, words)) for tag, words in TAG_KEYWORDS.items()), key=lambda item: -item[1])
    tags = [tag for tag, hits in counted if hits >= 2]
    if contract_type and contract_type != "other":
        tags = [contract_type, *[t for t in tags if t != contract_type]]
    return tags[:limit]
