"""Dates in folded contract text: 2024年1月1日, 二〇二四年一月一日, 2024-01-01, 2024.1.1, 01/03/2024,
March 5, 2024, 5 March 2024, the 5th day of March, 2024. Invalid calendar dates are kept (value None)
so callers can warn instead of guessing."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from .numerals import cn_integer

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4,
    "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
_G = r"\s{0,2}"  # a line break OCR put inside a date
_CN_YEAR = "[〇零O0一二三四五六七八九]{4}"
_CN_MD = "[一二三四五六七八九十廿卅]{1,4}"
_ORD = r"(?:\s?(?:st|nd|rd|th))?"  # 5th, 21 st (OCR)
# A numeric date starts after a non-word character; also after a '.' that stands for a colon (日期.2024.02.12)
# and after the dash of a range (2024.01.01-2025.12.31), not inside a version number or a code.
_START = r"(?:(?<![\w.\-/])|(?<=[^\w.]\.)|(?<=\d[-~]))"

DATE_PATTERN = re.compile(
    r"(?=\d|[〇零O一二三四五六七八九]|\b[JFMASONDjfmasond])(?:"
    # 2024年1月1日 / 二〇二四年一月一日 (day mark optional: "2024年1月1")
    rf"(?P<zy>(?<!\d)\d{{4}}|{_CN_YEAR}){_G}年{_G}(?P<zm>\d{{1,2}}|{_CN_MD}){_G}月{_G}"
    rf"(?P<zd>\d{{1,2}}(?!\d)|{_CN_MD}){_G}(?P<zmark>[日号])?"
    # 2024-01-01, 2024.1.1, 2024/01/01 (same separator twice); a range "2024.01.01-2025.12.31" is two
    rf"|{_START}(?P<iy>\d{{4}}){_G}(?P<isep>[-./]){_G}(?P<im>\d{{1,2}}){_G}(?P=isep){_G}"
    r"(?P<id>\d{1,2})(?![\d])(?!\.\d)"
    # 01/03/2024, 1.3.2024
    rf"|{_START}(?P<na>\d{{1,2}})(?P<nsep>[-./])(?P<nb>\d{{1,2}})(?P=nsep)(?P<ny>\d{{4}})(?!\d)"
    # March 5, 2024 / Mar. 5th 2024
    rf"|\b(?P<em>{MONTH_NAMES})\.?\s{{0,3}}(?P<ed>\d{{1,2}}){_ORD}\s{{0,2}},?\s{{0,3}}(?P<ey>\d{{4}})\b"
    # 5 March 2024 / 5th day of March, 2024
    rf"|\b(?P<fd>\d{{1,2}}){_ORD}\s{{0,3}}(?:day\s{{1,3}}of\s{{1,3}})?(?P<fm>{MONTH_NAMES})\.?\s{{0,2}},?\s{{0,3}}"
    r"(?P<fy>\d{4})\b)",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True)
class DateHit:
    """A date in the folded text; ``value`` is None for an impossible date (2024年2月30日)."""

    start: int
    end: int
    value: dt.date | None
    kind: str  # zh | zh_numeral | iso | numeric | en
    ambiguous: bool = False  # day/month order guessed (01/03/2024)


def _to_int(text: str) -> int | None:
    return int(text) if text.isdigit() else cn_integer(text)


def _make(year: int | None, month: int | None, day: int | None) -> tuple[dt.date | None, bool]:
    """(date, plausible): plausible means the parts look like a date even if the calendar refuses it."""
    if year is None or month is None or day is None or not 1900 <= year <= 2199:
        return None, False
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None, False
    try:
        return dt.date(year, month, day), True
    except ValueError:
        return None, True


def _day_first(sep: str, evidence: set[str]) -> bool:
    """Order of an ambiguous numeric date (01/03/2024): what other dates of the document prove, else
    US order with '/', day first with '.' or '-' (Europe, China)."""
    if evidence == {"dmy"}:
        return True
    if evidence == {"mdy"}:
        return False
    return sep != "/"


def find_dates(text: str) -> tuple[list[DateHit], list[tuple[int, int]]]:  # noqa: PLR0912 - one per format
    """Dates of ``text`` in order, and the spans of impossible but date-shaped ones (e.g. 2月30日)."""
    hits: list[DateHit | tuple[int, int, int, int, int, str]] = []
    invalid: list[tuple[int, int]] = []
    evidence: set[str] = set()
    for m in DATE_PATTERN.finditer(text):
        if m["zy"]:
            if not m["zy"].isdigit() and not m["zmark"]:
                continue  # 二〇二四年一月一 without 日 is too loose
            kind = "zh" if m["zy"].isdigit() else "zh_numeral"
            year = _to_int(m["zy"])
            value, plausible = _make(year, _to_int(m["zm"]), _to_int(m["zd"]))
            plausible = plausible or (year is not None and 1900 <= year <= 2199)  # 2024年13月1日 is meant as a date
        elif m["iy"]:
            kind = "iso"
            value, plausible = _make(int(m["iy"]), int(m["im"]), int(m["id"]))
        elif m["ny"]:
            a, b = int(m["na"]), int(m["nb"])
            if a > 12 >= b:
                evidence.add("dmy")
            elif b > 12 >= a:
                evidence.add("mdy")
            hits.append((m.start(), m.end(), a, b, int(m["ny"]), m["nsep"]))
            continue
        elif m["em"]:
            kind = "en"
            value, plausible = _make(int(m["ey"]), _MONTHS[m["em"].lower()], int(m["ed"]))
        else:
            kind = "en"
            value, plausible = _make(int(m["fy"]), _MONTHS[m["fm"].lower()], int(m["fd"]))
        if value is not None or plausible:
            hits.append(DateHit(m.start(), m.end(), value, kind))
            if value is None:
                invalid.append((m.start(), m.end()))
    out: list[DateHit] = []
    for hit in hits:
        if isinstance(hit, DateHit):
            out.append(hit)
            continue
        start, end, a, b, year, sep = hit
        ambiguous = a <= 12 and b <= 12 and a != b
        if a > 12 or (ambiguous and _day_first(sep, evidence)) or a == b:
            day, month = a, b
        else:
            day, month = b, a
        value, plausible = _make(year, month, day)
        if value is not None or plausible:
            out.append(DateHit(start, end, value, "numeric", ambiguous and len(evidence) != 1))
            if value is None:
                invalid.append((start, end))
    return out, invalid


def add_duration(start: dt.date, count: int, unit: str) -> dt.date:
    """Last day (inclusive) of a period of ``count`` ``unit`` (year, month, week, day) beginning on ``start``.

    ``start`` + duration − 1 day (2024-01-01 + 2 years → 2025-12-31); where the target month has no
    corresponding day (a month from 2024-01-31), the period ends on that month's last day.
    """
    if unit == "day":
        return start + dt.timedelta(days=count - 1)
    if unit == "week":
        return start + dt.timedelta(days=7 * count - 1)
    months = count * 12 if unit == "year" else count
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if start.day > last:
        return dt.date(year, month, last)
    return dt.date(year, month, start.day) - dt.timedelta(days=1)
