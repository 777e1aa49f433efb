"""Valid period: explicit ranges (自2024年1月1日起至2025年12月31日止, from … to …, 2024.01.01-2025.12.31),
a duration with its start (有效期两年，自2024年1月1日起 / for a term of two (2) years commencing on …),
labelled start and end dates (起始日期 … 终止日期 …), or a duration from signing (自签订之日起)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from .dates import DateHit, add_duration
from .numerals import EN_NUMBER_WORDS, cn_integer, en_number

_TIME = r"(?:\d{1,2}[:：]\d{2}|[\d零〇一二三四五六七八九十]{1,3}\s?[时点](?:整)?)?"
_CONNECTOR = re.compile(
    rf"[\s,，]{{0,3}}{_TIME}\s{{0,2}}(?:起|开始)?\s{{0,2}}(?:\((?:含|inclusive)\))?[\s,，]{{0,3}}"
    r"(?P<word>至|到|止至|起至|-|~|—|to|through|thru|until|till|up\s{1,3}to(?:\s{1,3}and\s{1,3}including)?"
    r"|(?:and\s{1,3})?(?:shall\s{1,3}|will\s{1,3})?(?:continue\s{1,3}(?:until|to|through)|end|ends|ending|expire|expires"
    r"|expiring|terminate|terminates|terminating)(?:\s{1,3}on)?|and)"
    r"[\s,，]{0,3}(?:on\s{1,3})?(?:the\s{1,3})?",
    re.IGNORECASE | re.ASCII,
)
# Cues before a range or duration; the nearest one decides. Negative words absorb a following 期限
# so 付款期限 reads as payment, not as term.
_CUE = re.compile(
    r"(?P<neg>(?:试用|保修|质保|保证|付款|支付|交货|交付|供货|装修|免租|通知|宽限|整改|验收|维修|退货|发货|培训)"
    r"(?:期限|期间|期|日期|时间)?|(?:warranty|probation(?:ary)?|delivery|payment|invoice|notice|grace|rent[-\s]free|"
    r"cure|defects\s+liability|training|installation|trial)(?:\s+(?:period|term))?|surviv\w*|"
    r"after\s+(?:the\s+)?(?:termination|expiry|expiration))"
    r"|(?P<pos>有效期|合同期限|期限|租赁期|租期|聘用期|聘期|服务期|合同期|承包期|工期|履行期|合作期|代理期|许可期|"
    r"借款期|贷款期|保密期|有效|生效|\bterm\b|\bperiod\b|\bvalid|\beffective|commenc\w*|duration|"
    r"in\s+(?:full\s+)?(?:force|effect)|"
    r"lease|tenancy|employment|licen[cs]e\s+period)",
    re.IGNORECASE | re.ASCII,
)
_BOUNDARY = re.compile(r"[。;；]|\n\s*\n")
_BETWEEN_BEFORE = re.compile(r"between\s*$", re.IGNORECASE | re.ASCII)
_CN_COUNT = "[一二两三四五六七八九十百壹贰叁肆伍陆柒捌玖拾]{1,4}|半"
ZH_DURATION = re.compile(
    r"(?P<kw>有效期|期限|租期|租赁期|聘期|聘用期|服务期|合同期|为期|工期|借款期|贷款期|许可期|代理期|合作期|承包期|履行期)"
    rf"(?P<fill>[^。;；\n\d]{{0,8}}?)(?P<n>\d{{1,3}}|{_CN_COUNT})\s{{0,2}}(?:\(\s{{0,2}}(?P<n2>\d{{1,3}})\s{{0,2}}\)\s{{0,2}})?"
    r"(?P<unit>个自然月|个月|月|年|周|个星期|星期|天|日)(?!内|以内)"
)
_EN_COUNT = rf"(?:{EN_NUMBER_WORDS})(?:-(?:{EN_NUMBER_WORDS}))?|\d{{1,3}}"
EN_DURATION = re.compile(
    # Spaces optional and no word boundaries: PP-OCR glues English ("fora termof three (3) years").
    r"(?:(?P<kw>term|period|duration)\s{0,3}of|for)\s{0,3}(?:an?\s{0,3}(?:fixed\s{0,3}|initial\s{0,3})?"
    rf"(?:term|period)\s{{0,3}}of\s{{0,3}})?(?P<n>{_EN_COUNT})\s{{0,3}}(?:\(\s{{0,2}}(?P<n2>\d{{1,3}})\s{{0,2}}\)\s{{0,3}})?"
    r"(?:calendar\s{1,3}|consecutive\s{1,3})?(?P<unit>years?|months?|weeks?|days?)",
    re.IGNORECASE | re.ASCII,
)
_EN_AFTER_NEG = re.compile(
    r"\s{0,3}(?:after|following|from\s+(?:the\s+)?(?:date\s+of\s+)?(?:termination|expiry|expiration|receipt|delivery)|"
    r"upon\s+termination|of\s+(?:the\s+)?(?:termination|notice)|prior|notice|written)",
    re.IGNORECASE | re.ASCII,
)
_START_BEFORE = re.compile(
    r"(?:自|从|于|起始于|开始于|commenc\w*|start\w*|begin\w*|effective|with\s+effect|as\s+(?:from|of)|from|on\s+and\s+from)"
    r"(?:\s{1,3}(?:on|from|as\s+of))?\s{0,3}(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
_START_AFTER = re.compile(r"\s{0,2}(?:零时|0时|00:00)?\s{0,2}(?:起|开始|生效)")
_FROM_SIGNING = re.compile(
    r"签订之日|签署之日|签字之日|盖章之日|签章之日|签字盖章之日|签订后|签署后|生效之日|"
    r"date\s+of\s+(?:signing|signature|execution|this\s+agreement)|signing|execution|date\s+hereof|effective\s+date",
    re.IGNORECASE | re.ASCII,
)
_START_LABEL = re.compile(
    r"(?:起始日期|开始日期|生效日期|起租日期?|起始日|开始时间|起始时间|合同生效日|开工日期|commencement\s{1,3}date|"
    r"start(?:ing)?\s{1,3}date|effective\s{1,3}date|date\s{1,3}(?:for|of)\s{1,3}commencement)\s{0,2}(?:shall\s{1,3}be|is|[:：.])?\s{0,3}(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
_END_LABEL = re.compile(
    r"(?:终止日期|结束日期|截止日期|到期日期?|届满日期?|终止时间|结束时间|竣工日期|完工日期|expiry\s{1,3}date|expiration\s{1,3}date|"
    r"end(?:ing)?\s{1,3}date|termination\s{1,3}date|completion\s{1,3}date|date\s{1,3}(?:for|of)\s{1,3}completion)\s{0,2}(?:shall\s{1,3}be|is|[:：.])?\s{0,3}(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
# An end date alone (有效期至2025年12月31日, valid until …): the start is the signing or effective date.
_UNTIL = re.compile(
    r"(?:有效期至|有效期到|有效期截至|有效期截止|期限至|截至|截止至|届满于|valid\s{1,3}(?:until|through|till)|"
    r"(?:shall\s{1,3})?(?:expire|expires|terminate|terminates|end|ends)\s{1,3}on|until|through)\s{0,3}(?:the\s{1,3})?$",
    re.IGNORECASE | re.ASCII,
)
_DEFINED_EFFECTIVE = re.compile(r"\s{0,3}\(\s{0,2}(?:the\s{1,3})?[\"']?effective\s{1,3}date", re.IGNORECASE | re.ASCII)
_UNITS = {"年": "year", "月": "month", "个月": "month", "个自然月": "month", "周": "week", "星期": "week",
          "个星期": "week", "天": "day", "日": "day"}  # fmt: skip


@dataclass(frozen=True)
class Period:
    start: int  # folded span
    end: int
    first: DateHit
    last: DateHit | None  # None: computed from a duration
    value: tuple[str, str] | None  # (start, end) ISO, None when a date is invalid
    confidence: float


def _cue_score(text: str, start: int, window: int = 60) -> float:
    before = text[max(0, start - window) : start]
    cuts = [m.end() for m in _BOUNDARY.finditer(before)]
    if cuts:
        before = before[cuts[-1] :]
    cues = list(_CUE.finditer(before))
    if not cues:
        return 0.0
    return 2.0 if cues[-1].lastgroup == "pos" else -3.0


def _ranges(text: str, dates: list[DateHit]) -> list[tuple[float, Period]]:
    found: list[tuple[float, Period]] = []
    for first, last in itertools.pairwise(dates):
        if last.start - first.end > 40:
            continue
        m = _CONNECTOR.fullmatch(text, first.end, last.start)
        if not m:
            continue
        if m["word"].lower() == "and" and not _BETWEEN_BEFORE.search(text, max(0, first.start - 20), first.start):
            continue  # "… 1 May 2024 and 2 June 2024" is a range only after "between"
        cue = _cue_score(text, first.start)
        if cue < 0:
            continue
        if first.value and last.value and last.value <= first.value:
            continue
        value = (first.value.isoformat(), last.value.isoformat()) if first.value and last.value else None
        confidence = 0.95 if cue > 0 else 0.7
        if first.ambiguous or last.ambiguous:
            confidence -= 0.1
        found.append((1.0 + cue, Period(first.start, last.end, first, last, value, confidence)))
    return found


def _count(m: re.Match[str]) -> int | None:
    if m["n2"]:
        return int(m["n2"])
    raw = m["n"]
    if raw == "半":
        return None
    if raw.isdigit():
        return int(raw)
    return cn_integer(raw) or en_number(raw)


def _durations(text: str) -> list[tuple[int, int, int, str]]:
    """(start, end, count, unit) of the durations that read as the contract's term."""
    found: list[tuple[int, int, int, str]] = []
    for m in ZH_DURATION.finditer(text):
        before = text[max(0, m.start() - 4) : m.start()]
        if _CUE.search(before + m["kw"]) and _CUE.search(before + m["kw"]).lastgroup == "neg":  # type: ignore[union-attr]
            continue
        count = _count(m)
        unit = _UNITS[m["unit"]]
        if m["n"] == "半" and unit == "year":
            count, unit = 6, "month"
        if count:
            found.append((m.start(), m.end(), count, unit))
    for m in EN_DURATION.finditer(text):
        if _EN_AFTER_NEG.match(text, m.end()):
            continue
        # "for three years" needs a term cue before it or in it ("for a term of"); a negative cue kills it.
        cue = _cue_score(text, m.end(), 80 + m.end() - m.start())
        if cue < 0 or (cue == 0 and m["kw"] is None):
            continue
        count = _count(m)
        if count:
            found.append((m.start(), m.end(), count, m["unit"].lower().rstrip("s")))
    return found


def _start_date(text: str, dates: list[DateHit], start: int, end: int) -> DateHit | None:
    """The date that starts a duration found at [start, end): cued (自…起, commencing on …), nearest."""
    best: tuple[int, DateHit] | None = None
    for hit in dates:
        if hit.end < start - 100 or hit.start > end + 100:
            continue
        cued = _START_BEFORE.search(text, max(0, hit.start - 25), hit.start) or _START_AFTER.match(text, hit.end)
        if not cued:
            continue
        distance = min(abs(hit.start - end), abs(start - hit.end))
        if best is None or distance < best[0]:
            best = (distance, hit)
    return best[1] if best else None


_EFFECTIVE_CUE = re.compile(r"effective|生效", re.IGNORECASE | re.ASCII)
Candidate = tuple[float, Period]


def _labelled(text: str, dates: list[DateHit]) -> tuple[list[Candidate], DateHit | None]:
    """起始日期：… 终止日期：… as a range, and the effective date (生效日期：…, … (the "Effective Date"))."""
    effective: DateHit | None = None
    starts: list[DateHit] = []
    ends: list[DateHit] = []
    for hit in dates:
        before = text[max(0, hit.start - 30) : hit.start]
        if _START_LABEL.search(before):
            starts.append(hit)
            if re.search(r"effective\s{1,3}date|生效日期", before, re.IGNORECASE | re.ASCII):
                effective = effective or hit
        elif _END_LABEL.search(before):
            ends.append(hit)
        if _DEFINED_EFFECTIVE.match(text, hit.end):
            effective = effective or hit
    found: list[Candidate] = []
    if starts and ends and ends[0].start > starts[0].start:
        first, last = starts[0], ends[0]
        value = (first.value.isoformat(), last.value.isoformat()) if first.value and last.value else None
        if value is None or value[1] > value[0]:
            found.append((2.5, Period(first.start, last.end, first, last, value, 0.9)))
    return found, effective


def _from_durations(
    text: str, dates: list[DateHit], signing: DateHit | None, effective: DateHit | None
) -> list[Candidate]:
    found: list[Candidate] = []
    for d_start, d_end, count, unit in _durations(text):
        begin = _start_date(text, dates, d_start, d_end)
        score, confidence = 2.8, 0.85
        span = (d_start, d_end)
        if begin is None:
            cue = _FROM_SIGNING.search(text, max(0, d_start - 60), d_end + 60)
            if not cue:
                continue
            begin = effective if effective and _EFFECTIVE_CUE.search(cue[0]) else signing
            if begin is None:
                continue
            score, confidence = 1.5, 0.6
        else:
            span = (min(d_start, begin.start), max(d_end, begin.end))
        value = None
        if begin.value:
            value = (begin.value.isoformat(), add_duration(begin.value, count, unit).isoformat())
        found.append((score, Period(span[0], span[1], begin, None, value, confidence)))
    return found


def _until(text: str, dates: list[DateHit], signing: DateHit | None, effective: DateHit | None) -> list[Candidate]:
    """有效期至2025年12月31日 / valid until …, counted from signing (or the effective date)."""
    found: list[Candidate] = []
    for hit in dates:
        if not _UNTIL.search(text, max(0, hit.start - 20), hit.start) or _cue_score(text, hit.start, 80) <= 0:
            continue
        cue = _FROM_SIGNING.search(text, max(0, hit.start - 100), hit.start)
        if not cue:
            continue
        begin = effective if effective and _EFFECTIVE_CUE.search(cue[0]) else signing
        if begin is None or begin is hit:
            continue
        value = None
        if begin.value and hit.value:
            if hit.value <= begin.value:
                continue
            value = (begin.value.isoformat(), hit.value.isoformat())
        found.append((1.4, Period(cue.start(), hit.end, begin, hit, value, 0.6)))
    return found


def find_valid_period(text: str, dates: list[DateHit], signing: DateHit | None) -> Period | None:
    """The contract's validity period. Scores: a range with a term cue 3, a duration with its start 2.8,
    labelled start and end 2.5, a duration from signing 1.5, an end date from signing 1.4, a bare range 1."""
    labelled, effective = _labelled(text, dates)
    candidates = _ranges(text, dates) + labelled
    candidates += _from_durations(text, dates, signing, effective) + _until(text, dates, signing, effective)
    if not candidates:
        return None
    return max(candidates, key=lambda item: (item[0], -item[1].start))[1]
