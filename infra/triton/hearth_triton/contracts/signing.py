"""Signing date: 签订日期：…, 于…在北京签订, 日期：… in the signature block, Signed on / Dated / made on the
5th day of March, 2024 / made as of March 5, 2024."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .dates import DateHit

_STRONG = re.compile(
    r"(?:(?:签订|签署|签约|签字|订立|签章|盖章)(?:日期|时间|日)|签订于|签署于|签约于"
    r"|date\s{1,3}of\s{1,3}(?:signature|signing|execution)|signing\s{1,3}date|execution\s{1,3}date|date\s{1,3}signed"
    r"|signature\s{1,3}date|signed\s{1,3}(?:on|this|at\s[^\n]{1,40}?\s{1,3}on)|executed\s{1,3}(?:on|as\s{1,3}of|this)"
    r"|dated(?:\s{1,3}as\s{1,3}of)?(?:\s{1,3}this)?)\s{0,2}[:：.]?\s{0,3}(?:on\s{1,3})?(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
_MADE = re.compile(
    r"(?:made|entered\s{1,3}into|concluded)(?:\s{1,3}and\s{1,3}entered\s{1,3}into)?(?:\s{1,3}effective)?"
    r"\s{1,3}(?:on|as\s{1,3}of)"
    r"(?:\s{1,3}this)?\s{0,3}(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
_GENERIC = re.compile(r"(?:日期|时间|date)\s{0,2}[:：.]?\s{0,3}$", re.IGNORECASE | re.ASCII)
_NOT_SIGNING = re.compile(
    r"(?:交货|交付|付款|支付|生效|开始|起始|终止|到期|结束|出生|届满|截止|发货|验收|完工|竣工|开工|起租|租赁|履行|"
    r"effective|start|end|expiry|expiration|delivery|due|payment|commencement|birth|completion|termination|"
    r"invoice|issue)\s?$",
    re.IGNORECASE | re.ASCII,
)
_AFTER = re.compile(r"\s{0,3}(?:在[^\n。，,;；]{1,24}?)?(?:由双方|经双方|双方)?(?:正式)?(?:签订|签署|签约|订立|签字)")
_SIGNATURE_CUE = re.compile(r"签字|签章|盖章|签名|授权代表|signature|signed|by:|in\s+witness", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Signing:
    date: DateHit
    confidence: float


def find_signing_date(text: str, dates: list[DateHit]) -> Signing | None:
    """The best-labelled signing date, the earliest among equals; None when no date is labelled."""
    best: Signing | None = None
    tail_start = int(len(text) * 0.6)
    for hit in dates:
        before = text[max(0, hit.start - 40) : hit.start]
        confidence = 0.0
        if _STRONG.search(before):
            confidence = 0.95
        elif _MADE.search(before) or _AFTER.match(text, hit.end):  # made on …, 于…在北京签订
            confidence = 0.9
        else:
            generic = _GENERIC.search(before)
            if generic and not _NOT_SIGNING.search(before[: generic.start()]):
                near_signature = _SIGNATURE_CUE.search(text, max(0, hit.start - 150), hit.start)
                confidence = 0.8 if hit.start >= tail_start or near_signature else 0.6
        if not confidence:
            continue
        if hit.ambiguous:
            confidence -= 0.1
        if best is None or confidence > best.confidence:
            best = Signing(hit, confidence)
    return best
