"""Chinese numerals (everyday 一二三 and financial 壹贰叁), English number words."""

from __future__ import annotations

DIGITS = {
    "零": 0, "〇": 0, "○": 0, "O": 0, "o": 0, "0": 0,
    "一": 1, "壹": 1, "幺": 1, "1": 1,
    "二": 2, "贰": 2, "貳": 2, "两": 2, "兩": 2, "2": 2,
    "三": 3, "叁": 3, "參": 3, "叄": 3, "3": 3,
    "四": 4, "肆": 4, "4": 4,
    "五": 5, "伍": 5, "5": 5,
    "六": 6, "陆": 6, "陸": 6, "6": 6,
    "七": 7, "柒": 7, "7": 7,
    "八": 8, "捌": 8, "8": 8,
    "九": 9, "玖": 9, "9": 9,
}  # fmt: skip
UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000, "廿": 20, "卅": 30}
BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}

# Character classes for regexes.
CN_DIGIT_CHARS = "零〇一二两三四五六七八九壹贰貳叁參肆伍陆陸柒捌玖"
CN_NUMBER_CHARS = CN_DIGIT_CHARS + "十拾百佰千仟廿卅万萬亿億"

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "a": 1, "an": 1,
}  # fmt: skip
EN_NUMBER_WORDS = "|".join(sorted((w for w in _WORDS if len(w) > 2), key=len, reverse=True))


def cn_integer(text: str) -> int | None:
    """二十三 → 23, 壹拾贰万叁仟 → 123000, 一百零五 → 105; None when ``text`` is not a Chinese numeral.

    A run of bare digits without units (二〇二四) reads digit by digit, as years are written.
    """
    if not text:
        return None
    if all(c in DIGITS for c in text):
        value = 0
        for c in text:
            value = value * 10 + DIGITS[c]
        return value
    total = section = number = 0
    seen_digit_or_unit = False
    for c in text:
        if c in DIGITS:
            number = DIGITS[c]
            seen_digit_or_unit = True
        elif c in UNITS:
            unit = UNITS[c]
            if unit in (20, 30):  # 廿 / 卅
                section += unit
            else:
                section += (number or 1) * unit
            number = 0
            seen_digit_or_unit = True
        elif c in BIG_UNITS:
            section += number
            if BIG_UNITS[c] == 10**8:  # 一万亿: everything so far is multiplied
                total = (total + section) * BIG_UNITS[c]
            else:
                total += section * BIG_UNITS[c]
            section = number = 0
            seen_digit_or_unit = True
        else:
            return None
    return total + section + number if seen_digit_or_unit else None


def en_number(word: str) -> int | None:
    """``two`` → 2, ``twenty-four`` → 24, ``24`` → 24 (English number words up to 99)."""
    word = word.strip().lower()
    if word.isdigit():
        return int(word)
    total = 0
    for part in word.replace("-", " ").split():
        if part not in _WORDS:
            return None
        total += _WORDS[part]
    return total or None
