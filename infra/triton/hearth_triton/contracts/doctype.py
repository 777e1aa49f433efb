"""Is the text a contract at all? Invoices, letters, reports and minutes print amounts, dates, numbers
and company names too; reporting contract fields on them is wrong, so ``analyze`` reports none there."""

from __future__ import annotations

import re

from .kinds import ContractKind

# How a contract speaks of itself and its parties.
_SELF_REFERENCE = re.compile(
    r"本合同|本协议|本契约|本合同书|本协议书|甲乙双方|双方当事人|this\s+(?:[a-z-]+\s+){0,3}?(?:agreement|contract|lease|deed)\b|"
    r"hereinafter|in\s+witness\s+whereof|\bwhereas\b|by\s+and\s+between|\bbetween\s*:",
    re.IGNORECASE | re.ASCII,
)
_PARTY_LABEL = re.compile(
    r"(?:甲方|乙方|Party\s?[AB])\s{0,2}(?:\([^()\n]{1,12}\))?\s{0,2}[:：]", re.IGNORECASE | re.ASCII
)
# Titles of the documents that are not contracts (first lines).
_OTHER_TITLE = re.compile(
    r"(?:发票|收据|报告|报告书|纪要|函|通知|通知书|证明|说明|简报|报价单|对账单|订货单|送货单|验收单)\s*$|"
    r"^\s*(?:dear\s|re:|to:|致[:：]|subject:)|"
    r"\b(?:invoice|receipt|report|minutes|memo(?:randum)?|quotation|statement|delivery\s+note|packing\s+list)\b",
    re.IGNORECASE | re.ASCII,
)
SHORT_TEXT = 300  # snippets shorter than this are analysed whatever they are


def not_a_contract(text: str, kind: ContractKind | None) -> str | None:
    """Why ``text`` is not a contract (a warning), or None when it is one or cannot be told."""
    if kind is not None and kind.confidence >= 0.7:  # a contract title
        return None
    if _SELF_REFERENCE.search(text) or len(_PARTY_LABEL.findall(text, 0, 5000)) >= 2:
        return None
    head = [line.strip() for line in text[:600].splitlines() if line.strip()][:8]
    other = next((line for line in head if _OTHER_TITLE.search(line)), None)
    if other is not None:
        return f"not a contract ({other[:40]!r} reads as another kind of document): no entities reported"
    if len(text) >= SHORT_TEXT:
        return "not a contract (no contract title, no 本合同/this Agreement, no party labels): no entities reported"
    return None
