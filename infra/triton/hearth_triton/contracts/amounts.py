"""Money in folded contract text: figures with a currency (¥100,000.00, USD 5,000, 100万元, EUR 1.234,56),
Chinese amounts in words (人民币壹拾贰万叁仟肆佰伍拾陆元柒角捌分), and the pick of the contract total."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .numerals import BIG_UNITS, CN_DIGIT_CHARS, CN_NUMBER_CHARS, DIGITS, cn_integer

# Currency marks → ISO code. "$" alone is USD; "¥" is CNY unless JPY/日元/円 is written.
_PREFIX = {
    "人民币": "CNY", "rmb": "CNY", "cny": "CNY", "¥": "CNY",
    "usd": "USD", "us$": "USD", "u.s.$": "USD", "us dollars": "USD", "$": "USD", "美元": "USD",
    "eur": "EUR", "€": "EUR", "欧元": "EUR",
    "gbp": "GBP", "£": "GBP", "英镑": "GBP",
    "hkd": "HKD", "hk$": "HKD", "港币": "HKD", "港元": "HKD",
    "jpy": "JPY", "jp¥": "JPY", "日元": "JPY",
}  # fmt: skip
_SUFFIX = {
    "元": "CNY", "圆": "CNY", "块": "CNY", "yuan": "CNY", "rmb": "CNY", "cny": "CNY",
    "美元": "USD", "usd": "USD", "dollars": "USD", "dollar": "USD", "us dollars": "USD", "u.s. dollars": "USD",
    "欧元": "EUR", "eur": "EUR", "euros": "EUR", "euro": "EUR",
    "英镑": "GBP", "gbp": "GBP", "pounds": "GBP", "pounds sterling": "GBP",
    "港元": "HKD", "港币": "HKD", "hkd": "HKD", "hong kong dollars": "HKD",
    "日元": "JPY", "円": "JPY", "jpy": "JPY", "yen": "JPY",
}  # fmt: skip


def _alternation(words: dict[str, str]) -> str:
    # A bare "$" must not be the tail of S$, A$, NT$ (currencies this module does not know).
    escaped = (r"(?<![A-Za-z])\$" if w == "$" else re.escape(w) for w in sorted(words, key=len, reverse=True))
    return "|".join(escaped)


_PRE = rf"(?:{_alternation(_PREFIX)})"
_SUF = rf"(?:{_alternation(_SUFFIX)})"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,4})?|\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?|\d+(?:[.,]\d{1,4})?"
_MULT = r"万|亿|千|million|billion|thousand|mn\b|m\b|k\b"
_CN_AMOUNT = f"[{CN_NUMBER_CHARS}]{{1,24}}(?:\\s{{1,2}}[{CN_NUMBER_CHARS}]{{1,16}})?"  # a line break may cut it
_WORDS_MARK = r"(?:[(\[]?\s{0,2}(?:大写|小写)\s{0,2}[)\]]?\s{0,2}[:：]?)?"

# Characters an amount can start with; the leading lookahead lets the regex engine skip the rest fast.
_FIRST_SIGN = re.escape("".join(sorted({w[0] for w in _PREFIX if not w[0].isascii() or not w[0].isalpha()})))
_FIRST_LETTER = "".join(sorted({w[0] for w in _PREFIX if w[0].isascii() and w[0].isalpha()}))
AMOUNT_PATTERN = re.compile(
    rf"(?=[{_FIRST_SIGN}\d(\[大小{CN_NUMBER_CHARS}]|\b[{_FIRST_LETTER}])(?:"
    # ¥100,000.00 / 人民币（小写）：¥100,000.00元 / USD 5,000 / 100万元 / 5,000 US dollars
    rf"(?:(?P<pre>{_PRE})\s{{0,2}}{_WORDS_MARK}\s{{0,2}}(?P<pre2>{_PRE})?\s{{0,2}})?"
    rf"(?<![\d.,])(?P<num>{_NUM})(?![\d])\s{{0,2}}(?P<mult>{_MULT})?\s{{0,2}}(?P<suf>{_SUF}(?![A-Za-z]))?"
    # 人民币（大写）壹拾万元整
    rf"|(?P<wpre>{_PRE})?\s{{0,2}}{_WORDS_MARK}\s{{0,2}}(?P<words>{_CN_AMOUNT})\s{{0,2}}"
    r"(?P<wcur>元|圆|美元|欧元|英镑|港元|港币|日元)"
    rf"(?:\s{{0,2}}零?\s{{0,2}}(?P<jiao>[{CN_DIGIT_CHARS}])角)?(?:\s{{0,2}}零?\s{{0,2}}(?P<fen>[{CN_DIGIT_CHARS}])分)?"
    r"(?:\s{0,2}[整正])?)",
    re.IGNORECASE | re.ASCII,
)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Money:
    """An amount in the folded text; ``in_words`` for 大写 amounts."""

    start: int
    end: int
    value: Decimal
    currency: str
    in_words: bool

    @property
    def text_value(self) -> str:
        return str(self.value.quantize(_CENT, rounding=ROUND_HALF_UP))


def parse_figure(raw: str, currency: str) -> Decimal | None:
    """'100,000.00' → 100000.00; '1.234,56' → 1234.56 (decimal comma: the last separator with 1-2 digits
    after it, or ',' before exactly 2 digits); '1.234' is 1234 only for EUR, else 1.234."""
    commas, dots = raw.count(","), raw.count(".")
    if commas and dots:
        decimal_sep = "," if raw.rfind(",") > raw.rfind(".") else "."
    elif commas:
        tail = raw.rsplit(",", 1)[1]
        decimal_sep = "," if commas == 1 and len(tail) in (1, 2) else None
    elif dots:
        tail = raw.rsplit(".", 1)[1]
        decimal_sep = None if dots > 1 or (len(tail) == 3 and currency == "EUR") else "."
    else:
        decimal_sep = None
    thousands = {",", "."} - {decimal_sep}
    digits = "".join(c for c in raw if c not in thousands)
    if decimal_sep == ",":
        digits = digits.replace(",", ".")
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def _multiplier(mult: str | None) -> int:
    if not mult:
        return 1
    mult = mult.lower()
    if mult in BIG_UNITS:
        return BIG_UNITS[mult]
    return {"千": 1000, "thousand": 1000, "k": 1000, "million": 10**6, "mn": 10**6, "m": 10**6}.get(mult, 10**9)


def find_money(text: str) -> list[Money]:
    """Every amount with a currency mark (bare numbers are not money)."""
    found: list[Money] = []
    for m in AMOUNT_PATTERN.finditer(text):
        if m["num"] is not None:
            pre = (m["pre2"] or m["pre"] or "").lower()
            suf = (m["suf"] or "").lower()
            if not pre and not suf:
                continue
            currency = _PREFIX.get(pre) or _SUFFIX.get(suf, "CNY")
            if suf in _SUFFIX and _SUFFIX[suf] != "CNY" and pre in ("", "¥", "$"):
                currency = _SUFFIX[suf]  # "¥5,000 日元", "$5,000 Hong Kong dollars"
            value = parse_figure(m["num"], currency)
            if value is None:
                continue
            value *= _multiplier(m["mult"])
            start = m.start("pre") if m["pre"] else m.start("num")
            end = m.end() - (len(m[0]) - len(m[0].rstrip()))
            found.append(Money(start, end, value, currency, in_words=False))
        else:
            words = re.sub(r"\s", "", m["words"])
            if not any(c in DIGITS for c in words):
                continue  # 万元 alone, 千万 etc.
            integer = cn_integer(words)
            if integer is None:
                continue
            value = Decimal(integer)
            if m["jiao"]:
                value += Decimal(DIGITS[m["jiao"]]) / 10
            if m["fen"]:
                value += Decimal(DIGITS[m["fen"]]) / 100
            pre = (m["wpre"] or "").lower()
            currency = _PREFIX.get(pre) or _SUFFIX.get(m["wcur"], "CNY")
            start = m.start("wpre") if m["wpre"] else m.start("words")
            end = m.end() - (len(m[0]) - len(m[0].rstrip()))
            found.append(Money(start, end, value, currency, in_words=True))
    return found


# ---- which amount is the contract's total --------------------------------------------------------------

_TOTAL = (
    r"合同总价|合同总金额|合同总价款|合同总额|合同价款|合同金额|合同价格|合同总价格|合同总造价|签约合同价|总价款|总金额|总价|"
    r"总额|价款总额|总计|合计|总造价|工程总价|工程款总额|借款金额|借款本金|贷款金额|贷款本金|借款额度|授信额度|租金总额|总租金|"
    r"服务费总额|费用总额|总费用|许可费总额|"
    r"total\s?(?:contract\s?)?(?:price|value|amount|sum|fees?|consideration|cost|rent(?:al)?|charges?|payments?|"
    r"remuneration|compensation)|in\s(?:the\s)?aggregate|contract\s?(?:price|value|sum|amount)|"
    r"aggregate\s?(?:price|amount|sum)|purchase\s?price|loan\s?amount|principal\s?(?:amount|sum)|facility\s?amount|"
    r"the\ssum\sof|consideration"
)
_MEDIUM = (
    r"金额|价款|价格|费用|服务费|租金|报酬|薪酬|工资|薪资|许可费|使用费|代理费|佣金|本金|工程款|货款|"
    r"fees?|price|amount|payment|rent|salary|remuneration|royalt(?:y|ies)|compensation|wages?|principal"
)
_NEGATIVE = (
    r"定金|订金|保证金|押金|违约金|滞纳金|罚款|罚金|赔偿|单价|利息|逾期|首付|预付款|预付|分期|第[一二三四五六七八九十\d]{1,2}期|"
    r"每期|尾款|质保金|保修金|上限|不超过|以内|至少|最低|最高|奖金|补贴|注册资本|"
    r"(?:advance|down|deposit|interim|progress|retention|late)\s(?:payments?|money|fees?)|"
    r"not\s(?:less|more)\sthan|at\sleast|minimum|target|quota|不低于|不少于|销售目标|任务额|"
    r"deposit|penalt(?:y|ies)|liquidated\sdamages|late|interest|unit\sprice|per\sunit|advance|instal?lments?|"
    r"damages|retention|not\s(?:to\s)?exceed|cap\b|insurance|bonus|allowance|fines?\b|registered\scapital"
)
_CUE = re.compile(rf"(?P<total>{_TOTAL})|(?P<negative>{_NEGATIVE})|(?P<medium>{_MEDIUM})", re.IGNORECASE | re.ASCII)
_PERIODIC = re.compile(
    r"每月|每年|每季|每日|每天|每平方米|每个.{0,4}年度|年度|月工资|月薪|年薪|日工资|月租金|月租|按月|按年|/\s?(?:月|年|季|天|日|平方米|㎡|m2|件|台|吨|个|人|小时|h\b)|"
    r"per\s(?:month|annum|year|quarter|day|hour|unit|piece)|monthly|annual|annually|yearly|a\smonth|"
    r"/\s?(?:month|year|hour)|each\s(?:month|year)",
    re.IGNORECASE | re.ASCII,
)
_PARENTHETICAL = re.compile(r"[(（][^()（）]{0,30}[)）]")
_SHARE = re.compile(r"%|％|百分之|倍|per\s?cent", re.IGNORECASE | re.ASCII)
_SHARE_OF = re.compile(r"(?:%|per\s?cent)\)?\s{0,2}(?:of\s{1,3}(?:the\s{1,3})?)?$", re.IGNORECASE | re.ASCII)
_ROLE_AFTER = re.compile(
    rf"\s{{0,2}}[)）]?\s{{0,2}}(?:作为|用作|为|的|as\s(?:an?\s|the\s)?|by\sway\sof\s)\s{{0,2}}(?:[^\s。;；,，]{{0,4}}?)(?:{_NEGATIVE})",
    re.IGNORECASE | re.ASCII,
)
_WORDS_CURRENCY_END = re.compile(
    r"(?:dollars?|euros?|pounds?(?:\ssterling)?|yuan|renminbi|yen)(?:\sonly)?\s{0,2}[(\[]\s{0,2}$",
    re.IGNORECASE | re.ASCII,
)
MIN_SCORE = 1.0  # a price or total cue, or words and figures of the largest amount
CUE_WINDOW = 120  # characters before an amount searched for its cue (within the sentence)
_PAIR_GAP = re.compile(r"[\s()\[\]:：,，;；即为计大写小写]{0,12}")
_BOUNDARY = re.compile(r"[。;；]|\n\s*\n|\.\s+(?=[A-Z(])|\.\n")


@dataclass(frozen=True)
class Total:
    """The chosen contract total: folded span, value, confidence, and a warning if words and figures differ."""

    start: int
    end: int
    money: Money
    confidence: float
    warning: str | None = None


def _merge_pairs(text: str, found: list[Money]) -> list[tuple[Money, int, int, str | None]]:
    """Amount in words next to the same amount in figures → one mention (the words' value wins)."""
    merged: list[tuple[Money, int, int, str | None]] = []
    i = 0
    while i < len(found):
        a = found[i]
        b = found[i + 1] if i + 1 < len(found) else None
        pair = b is not None and (a.in_words != b.in_words or a.value == b.value)
        if b is not None and pair and _PAIR_GAP.fullmatch(text, a.end, b.start):
            words = a if a.in_words else b
            figures = b if words is a else a
            warning = None
            if words.value != figures.value:
                warning = (
                    f"amount in words ({words.text_value}) differs from the figures ({figures.text_value}); "
                    "the amount in words is reported"
                )
            end = b.end
            gap = text[a.end : b.start]
            if gap.count("(") > gap.count(")") and text.startswith(")", end):
                end += 1  # 壹拾万元整（¥100,000.00）: the figures' bracket closes inside the mention
            merged.append((words, a.start, end, warning))
            i += 2
        else:
            merged.append((a, a.start, a.end, None))
            i += 1
    return merged


def _spelled_out_before(text: str, start: int) -> int:
    """Length of an amount in English words just before the figures ("… Four United States Dollars ("),
    so the cue before the words is still in reach."""
    if not _WORDS_CURRENCY_END.search(text, max(0, start - 40), start):
        return 0
    pos = start
    floor = max(0, start - 300)
    while pos > floor and (text[pos - 1].isascii() and (text[pos - 1].isalpha() or text[pos - 1] in " -,\n(")):
        pos -= 1
    return start - pos


def pick_total(text: str, found: list[Money]) -> Total | None:  # noqa: PLR0912 - one branch per cue rule
    """The contract total: the amount whose nearest preceding cue (same sentence) names a total
    (合同总价, total price), else a plain price/fee; deposits, penalties, unit prices, shares of the
    total and periodic amounts (monthly rent, salary, annual fees) are never the total."""
    candidates = _merge_pairs(text, found)
    if not candidates:
        return None
    largest: dict[str, Decimal] = {}
    for money, *_ in candidates:
        largest[money.currency] = max(largest.get(money.currency, money.value), money.value)
    best: tuple[float, int, Total] | None = None
    previous_end = 0
    for money, start, end, warning in candidates:
        window_start = max(previous_end, start - CUE_WINDOW - _spelled_out_before(text, start))
        before = text[window_start:start]
        cut = [m.end() for m in _BOUNDARY.finditer(before)]
        if cut:
            before = before[cut[-1] :]
        previous_end = end
        cues = list(_CUE.finditer(before))
        score = 0.0
        periodic_from = max(0, len(before) - 15)
        if cues:
            last = cues[-1]
            score = {"total": 3.0, "medium": 1.0, "negative": -3.0}[last.lastgroup or "medium"]
            if any(c.lastgroup == "negative" for c in cues[:-1]):
                score -= 1.0
            # Derived from the total, not the total: 违约金为合同总价的20%，即… / 30% of the contract price, being …
            tail = _PARENTHETICAL.sub("", before[last.end() :])  # （含13%增值税） is no derivation
            if _SHARE.search(tail) or _SHARE_OF.search(before, max(0, last.start() - 30), last.start()):
                score -= 3.0
            periodic_from = min(periodic_from, max(0, last.start() - 20))
        if _PERIODIC.search(before, periodic_from) or _PERIODIC.search(text, end, min(len(text), end + 24)):
            score -= 2.5  # a monthly rent or salary, an annual fee: not the contract's total
        if _ROLE_AFTER.match(text, end, min(len(text), end + 20)):
            score -= 3.0  # …13,630.00元作为质量保证金 / USD 5,000 as a security deposit
        if money.value == largest[money.currency]:
            score += 0.5
        if end - start > money.end - money.start:  # words and figures both given
            score += 0.5
        if score < MIN_SCORE:
            continue
        confidence = 0.95 if score >= 3 else 0.8 if score >= 1.5 else 0.6
        if warning:
            confidence = min(confidence, 0.6)
        total = Total(start, end, money, confidence, warning)
        if best is None or score > best[0]:
            best = (score, start, total)
    return best[2] if best else None
