"""Contract parties, Chinese and English: labelled lines (甲方：X, 出租方（甲方）：X, Buyer: X), defined
terms (X（以下简称"甲方"）, X (the "Seller")) and the numbered BETWEEN block ((1) X; and (2) Y).

Roles: 甲/乙/丙/丁 and Party A-D give party_a-d directly, also when they qualify another role word
(出租方（甲方）, Party A (Buyer)). Other role words (出租方/承租方, Buyer/Seller, ...) take the next free
letter in the order they first appear, so the first-listed party is party_a and the second party_b.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from .normalize_text import HAN
from .segment import words

# Role words and the party they denote (synonyms share a key, so 出租人 in the header and 出租方 in the
# signature block are one party).
_ZH_ROLES = {
    "甲方": "甲", "乙方": "乙", "丙方": "丙", "丁方": "丁",
    "出租方": "lessor", "出租人": "lessor", "承租方": "lessee", "承租人": "lessee",
    "委托方": "principal", "委托人": "principal", "受托方": "agent", "受托人": "agent",
    "代理方": "agent", "代理人": "agent", "被代理人": "principal",
    "购买方": "buyer", "买方": "buyer", "买受人": "buyer", "采购方": "buyer", "采购人": "buyer", "需方": "buyer",
    "购货方": "buyer", "订购方": "buyer",
    "卖方": "seller", "出卖人": "seller", "出卖方": "seller", "供应方": "seller", "供应商": "seller", "供方": "seller",
    "供货方": "seller", "销售方": "seller",
    "用人单位": "employer", "聘用方": "employer", "聘用单位": "employer", "雇主": "employer",
    "劳动者": "employee", "受聘方": "employee", "受聘人": "employee", "雇员": "employee", "员工": "employee",
    "许可方": "licensor", "许可人": "licensor", "授权方": "licensor",
    "被许可方": "licensee", "被许可人": "licensee", "被授权方": "licensee",
    "借款人": "borrower", "借款方": "borrower", "贷款人": "lender", "贷款方": "lender", "出借人": "lender",
    "出借方": "lender",
    "发包人": "employer_works", "发包方": "employer_works", "承包人": "contractor", "承包方": "contractor",
    "服务方": "provider", "服务商": "provider", "服务提供方": "provider", "客户": "customer",
    "披露方": "discloser", "信息披露方": "discloser", "接收方": "recipient", "信息接收方": "recipient",
    "转让方": "assignor", "受让方": "assignee", "保证人": "guarantor", "担保人": "guarantor", "担保方": "guarantor",
}  # fmt: skip
_EN_ROLES = {
    "party a": "甲", "party b": "乙", "party c": "丙", "party d": "丁",
    "buyer": "buyer", "purchaser": "buyer", "customer": "customer", "client": "customer",
    "seller": "seller", "vendor": "seller", "supplier": "seller",
    "service provider": "provider", "provider": "provider", "consultant": "provider", "contractor": "contractor",
    "company": "company", "employer": "employer", "employee": "employee", "executive": "employee",
    "landlord": "lessor", "lessor": "lessor", "tenant": "lessee", "lessee": "lessee",
    "licensor": "licensor", "licensee": "licensee", "lender": "lender", "borrower": "borrower",
    "guarantor": "guarantor", "principal": "principal", "agent": "agent", "distributor": "agent",
    "disclosing party": "discloser", "discloser": "discloser", "receiving party": "recipient",
    "recipient": "recipient", "owner": "employer_works", "developer": "developer", "manufacturer": "seller",
}  # fmt: skip
_LETTERS = {"甲": "party_a", "乙": "party_b", "丙": "party_c", "丁": "party_d"}
ROLES = ("party_a", "party_b", "party_c", "party_d")


def _alternation(words_: dict[str, str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s{0,2}") for w in sorted(words_, key=len, reverse=True))


_ZH_FIRST = "".join(sorted({w[0] for w in _ZH_ROLES}))
_ZH_ROLE = rf"(?=[{_ZH_FIRST}])(?<![提购出被承销服务息])(?:{_alternation(_ZH_ROLES)})".replace(
    "代理人", "(?<!委托)(?<!授权)代理人"
)
_EN_ROLE = rf"(?:{_alternation(_EN_ROLES)})"
_ENUM = r"(?:[(（]?(?:[一二三四五六七八九十]{1,2}|\d{1,2})[)）.、]\s{0,2})?"

_NAME_WORD = r"(?:单位名称|公司名称|名称|全称|姓名|单位|\(全称\)|\(名称\))?"  # 甲方名称：
ZH_LABEL = re.compile(
    rf"(?P<role>{_ZH_ROLE})[ \t]{{0,2}}{_NAME_WORD}[ \t]{{0,2}}(?:\((?P<qual>[^()\n]{{1,18}}?)\))?"
    rf"[ \t]{{0,2}}{_NAME_WORD}[ \t]{{0,2}}"
    r"(?:Party[ \t]?(?P<qual_en>[A-D])[ \t]{0,2})?(?P<sep>[:：.])?[ \t]{0,3}"
)
EN_LABEL = re.compile(
    rf"^[ \t]*{_ENUM}(?:the\s{{1,2}})?(?P<role>{_EN_ROLE})[ \t]{{0,2}}(?:\((?P<qual>[^()\n]{{1,30}})\))?[ \t]{{0,2}}"
    r"(?:name[ \t]{0,2})?[:：][ \t]{0,3}",
    re.IGNORECASE | re.MULTILINE | re.ASCII,
)
ZH_DEFINED = re.compile(
    r"\(\s{0,2}(?:以下简称|以下称为|以下称|以下统称|下称|简称)\s{0,2}(?:为|:)?\s{0,2}[\"']?\s{0,2}"
    rf"(?P<role>{_ZH_ROLE})\s{{0,2}}[\"']?\s{{0,2}}(?:[,，或][^()\n]{{0,20}})?\)"
)
EN_DEFINED = re.compile(
    r"\(\s{0,2}(?:hereinafter\s{0,3}(?:referred\s{0,3}to\s{0,3}as\s{0,3}|called\s{0,3}|the\s{0,3})?|the\s{0,3})?"
    rf"[\"']?\s{{0,2}}(?:the\s{{1,3}})?(?P<role>{_EN_ROLE})\s{{0,2}}[\"']?\s{{0,2}}(?:[,;][^()]{{0,80}})?\)",
    re.IGNORECASE | re.ASCII,
)
# A party defined by a short name instead of a role: Orion Robotics, Inc. ("Orion")
EN_DEFINED_NAME = re.compile(
    r"\(\s{0,2}(?:hereinafter\s{1,3}(?:referred\s{1,3}to\s{1,3}as\s{1,3}|called\s{1,3})?)?(?:the\s{1,3})?"
    r"[\"'](?P<term>[A-Z][\w&.\- ]{1,30}?)[\"']\s{0,2}\)",
    re.ASCII,
)
_NOT_PARTY_TERMS = re.compile(
    r"agreement|contract|effective|date|confidential|information|services?|products?|goods|territory|term|"
    r"premises|property|software|deliverables?|work|project|purpose|schedule|exhibit|annex|parties|party$",
    re.IGNORECASE | re.ASCII,
)
_BETWEEN = re.compile(r"(?:by\s*and\s*)?between\b\s{0,3}:?", re.IGNORECASE | re.ASCII)  # also "madebetween"
_EN_ENUM_PARTY = re.compile(r"(?m)^[ \t]*\(\s?(?P<n>[1-4])\s?\)\s{0,3}(?P<rest>[^\n]{2,300})")

_ZH_ORG = (
    r"股份有限公司|有限责任公司|有限公司|集团有限公司|集团公司|集团|分公司|子公司|公司|研究院|研究所|设计院|医院|大学|学院|学校|"
    r"事务所|合伙企业|\(普通合伙\)|\(有限合伙\)|中心|银行|支行|分行|委员会|协会|商行|工作室|合作社"
)
_EN_ORG = (
    r"Co\.,?\s?Ltd\.?|Company\s+Limited|Pte\.?\s?Ltd\.?|Pty\.?\s?Ltd\.?|Sdn\.?\s?Bhd\.?|Ltd\.?|Limited|Inc\.?|"
    r"Incorporated|L\.L\.C\.|LLC|LLP|L\.P\.|PLC|GmbH|AG|S\.A\.S\.|S\.A\.|B\.V\.|N\.V\.|S\.p\.A\.|S\.r\.l\.|"
    r"Corp\.?|Corporation|Co\.|Company|Group|Holdings|K\.K\.|A/S|Oy|AB"
)
_ORG = re.compile(rf"(?:{_ZH_ORG})|(?<![A-Za-z])(?i:{_EN_ORG})(?![A-Za-z])")
_ZH_STOP = re.compile(
    r"地址|住所|住址|注册地|通讯地址|联系地址|法定代表人|法人代表|负责人|委托代理人|授权代表|代表人|联系人|联系电话|电话|"
    r"手机|传真|邮编|邮政编码|电子邮箱|邮箱|e-?mail|开户|银行账号|账号|帐号|税号|纳税人识别号|统一社会信用代码|社会信用代码|"
    r"信用代码|营业执照|注册号|身份证|证件|护照|性别|出生|民族|签字|签章|盖章|签名|印章|公章|以下简称|以下称|下称|简称|日期|"
    r"职务|户籍|国籍|电邮|网址"
    rf"|(?:{_ZH_ROLE})\s{{0,2}}(?:\([^()\n]{{1,18}}\))?\s{{0,2}}[:：]",
    re.IGNORECASE | re.ASCII,
)
_EN_STOP = re.compile(
    r",?\s+(?:a|an)\s+(?:[\w-]+\s+){0,4}?(?:company|corporation|partnership|entity|individual|limited\s+liability"
    r"|llc|organi[sz]ation|bank|institution|citizen|resident|national)\b"
    r"|,\s?an?\s?(?:company|corporation|partnership|individual|limited\s?liability)"  # ",acompany" (OCR)
    r"|,?\s*\b(?:incorporated\s+(?:in|under)|organi[sz]ed|registered\s+(?:in|under|office|address|number|no)"
    r"|established|existing|having|with\s+(?:its|a|an|offices?)|whose|residing|located|domiciled|represented\s+by"
    r"|acting\s+(?:by|through)|address|principal\s+(?:place|office)|tel(?:ephone)?\b|fax\b|e-?mail|attn|attention"
    r"|company\s+(?:no|number|registration)|reg(?:istration)?\.?\s+no|id\s+no|passport|hereinafter|of\s+\d)"
    r"|\s*\((?:the\s|the[\"']|\"|'|hereinafter|each|together|collectively|company|registration|reg)"
    r"|\s*[;:]|\s{2,}",
    re.IGNORECASE | re.ASCII,
)
_PLACEHOLDER = re.compile(r"^[\s_＿.…·\-—()\[\]*/×xX]*$")
_SIGNATURE_WORD = re.compile(
    r"(?:签字|签章|盖章|签名|印章|公章|\(?盖章|\(?签字|by\b|name\b|title\b|signature)", re.IGNORECASE | re.ASCII
)
_SENTENCE_WORDS = {
    "应", "应当", "须", "必须", "负责", "有权", "同意", "承担", "按照", "根据", "在", "将", "向", "的", "对",
    "如", "若", "未", "不", "可", "已", "并", "及时", "支付", "提供", "保证", "本合同", "本协议", "违约", "之间",
}  # fmt: skip
_LEADING_WORDS = {
    "本合同", "本协议", "合同", "协议", "本", "由", "与", "和", "及", "同", "、", "经", "双方", "是", "系", "兹", "为",
    "以及", "并", "其中", "即", "签订", "订立", "甲方", "乙方", ",", "，", ":", "：",
}  # fmt: skip
_ABBREVIATION_END = re.compile(r"(?:Ltd|Inc|Co|Corp|L\.L\.C|L\.P|S\.A|B\.V|N\.V|S\.p\.A|S\.r\.l|K\.K|Jr|Sr)\.$")


@dataclass(frozen=True)
class Party:
    start: int  # folded span of the name
    end: int
    name: str
    role: str  # party_a .. party_d
    confidence: float


@dataclass
class _Hit:
    start: int
    end: int
    name: str
    key: str  # role key: 甲/乙/丙/丁 or a role such as lessor
    qual_key: str | None
    confidence: float


def _canonical(name: str) -> str:
    name = re.sub(r"\s+", " ", name).strip()
    if re.search(f"[{HAN}]", name):
        name = name.replace("(", "（").replace(")", "）")  # registered Chinese names use full-width brackets
    return name


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " \t,，;；:：、。\"'“”_-/":
        end -= 1
    while end > start and text[end - 1] == "." and not _ABBREVIATION_END.search(text[start:end]):
        end -= 1
    return end


def _zh_name(text: str, start: int, limit: int) -> tuple[int, int] | None:
    """The name starting at ``start`` (folded text) on its line, cut before the next label."""
    end = limit
    stop = _ZH_STOP.search(text, start, end)
    if stop:
        end = stop.start()
    for mark in ",，;；。":
        found = text.find(mark, start, end)
        if found != -1:
            end = found
    orgs = list(_ORG.finditer(text, start, end))
    if orgs:
        end = orgs[-1].end()
    else:
        paren = text.find("(", start, end)
        if paren > start:
            end = paren
        space = text.find("  ", start, end)
        if space > start:
            end = space
    end = _trim_end(text, start, end)
    while start < end and text[start] in " \"'":
        start += 1
    return (start, end) if end > start else None


def _en_name(text: str, start: int, limit: int) -> tuple[int, int] | None:
    end = limit
    stop = _EN_STOP.search(text, start, end)
    if stop and stop.start() > start:
        end = stop.start()
    orgs = list(_ORG.finditer(text, start, end))
    if orgs:
        end = orgs[-1].end()
    else:
        for mark in ",;(":
            found = text.find(mark, start, end)
            if found > start:
                end = found
    end = _trim_end(text, start, end)
    while start < end and text[start] in " \"'":
        start += 1
    return (start, end) if end > start else None


def _plausible(name: str, *, strict: bool) -> bool:  # noqa: PLR0911 - one return per test
    """A name, not a placeholder, a date or a sentence (``strict``: no org suffix and no colon seen)."""
    if _PLACEHOLDER.match(name) or len(name) > 100:
        return False
    letters = sum(1 for c in name if c.isalpha())
    if letters < 2 or re.fullmatch(r"[\d\s年月日.\-/:]+", name):
        return False
    if _SIGNATURE_WORD.match(name):
        return False
    if _ORG.search(name):
        return True
    if re.search(f"[{HAN}]", name):
        tokens = words(name)
        if any(t in _SENTENCE_WORDS for t in tokens):
            return False
        return not strict or len(name) <= 4
    return not strict


def _has_org(name: str) -> bool:
    return bool(_ORG.search(name))


def _strip_leading_words(text: str, start: int, end: int) -> int:
    """Skip leading function words of a Chinese chunk (本合同由…, 与…) by jieba's word boundaries."""
    chunk = text[start:end]
    offset = 0
    for token in words(chunk):
        position = chunk.find(token, offset)
        if token in _LEADING_WORDS or not token.strip():
            offset = position + len(token)
            continue
        break
    while offset < len(chunk) and chunk[offset] in " \"'":
        offset += 1
    return start + offset


def _line_end(text: str, pos: int) -> int:
    ends = [i for i in (text.find("\n", pos), text.find("\f", pos)) if i != -1]
    return min(ends) if ends else len(text)


def _line_start(text: str, pos: int) -> int:
    return max(text.rfind("\n", 0, pos), text.rfind("\f", 0, pos)) + 1


def _qual_key(qual: str | None) -> str | None:
    if not qual:
        return None
    for char in "甲乙丙丁":
        if char in qual:
            return char
    m = re.search(rf"(?:{_ZH_ROLE})", qual)
    if m:
        return _ZH_ROLES[m[0]]
    m = re.search(rf"\b(?:{_EN_ROLE})\b", qual, re.IGNORECASE | re.ASCII)
    if m:
        return _en_key(m[0])
    return None


def _zh_labelled(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for m in ZH_LABEL.finditer(text):
        line_start = _line_start(text, m.start())
        at_line_start = not text[line_start : m.start()].strip() or re.fullmatch(_ENUM, text[line_start : m.start()])
        sep = m["sep"]
        if sep == "." and not at_line_start:
            sep = None
        if not sep and not at_line_start:
            continue
        qual = m["qual"] or ""
        if re.search("以下简称|简称|下称", qual):
            qual_key = _qual_key(qual)
        else:
            qual_key = _qual_key(qual) or (m["qual_en"] and "甲乙丙丁"["ABCD".index(m["qual_en"].upper())])
        limit = _line_end(text, m.end())
        span = _zh_name(text, m.end(), limit)
        # 甲方（盖章）： 乙方（盖章）： on one line, or on consecutive lines, heads a table
        header = len(ZH_LABEL.findall(text, line_start, limit)) > 1 or _in_role_run(text, line_start, limit)
        if span is None and sep and m.end() >= limit and not header:  # 甲方：\n北京某某有限公司
            nxt = limit + 1
            if nxt < len(text) and not ZH_LABEL.match(text, nxt):
                span = _zh_name(text, nxt, _line_end(text, nxt))
        if span is None:
            continue
        name = text[span[0] : span[1]]
        has_org = _has_org(name)
        if not sep and not has_org:
            continue  # 甲方应当… : without a colon only an organisation name is believed
        if not _plausible(name, strict=not sep):
            continue
        person = bool(re.fullmatch(f"[{HAN}·]{{2,5}}", name))
        confidence = 0.95 if has_org else 0.9 if person else 0.8
        if not sep:
            confidence -= 0.1
        hits.append(_Hit(span[0], span[1], name, _ZH_ROLES[m["role"]], qual_key, confidence))
    return hits


def _in_role_run(text: str, start: int, end: int) -> bool:
    """Whether the line [start, end) is a bare role label next to another one (a table read by cells)."""
    if not _BARE_ROLE.fullmatch(text, start, end):
        return False
    before = _line_start(text, max(0, start - 1)) if start > 0 else None
    if before is not None and before < start - 1 and _BARE_ROLE.fullmatch(text, before, start - 1):
        return True
    nxt = end + 1
    return nxt < len(text) and _BARE_ROLE.fullmatch(text, nxt, _line_end(text, nxt)) is not None


def _zh_defined(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    previous = 0
    for m in ZH_DEFINED.finditer(text):
        start = max(previous, _line_start(text, m.start()), m.start() - 60)
        chunk = text[start : m.start()]
        cut = max(chunk.rfind(c) for c in ",，。;；:：")
        if cut != -1:
            start += cut + 1
        previous = m.end()
        start = _strip_leading_words(text, start, m.start())
        end = _trim_end(text, start, m.start())
        name = text[start:end]
        if not name or name in _ZH_ROLES or not _plausible(name, strict=False):
            continue
        hits.append(_Hit(start, end, name, _ZH_ROLES[m["role"]], None, 0.9 if _has_org(name) else 0.8))
    return hits


_EN_KEYS = {w.replace(" ", ""): key for w, key in _EN_ROLES.items()}


def _en_key(role: str) -> str:
    """The role key of an English role word as matched ("Party  A", "PartyA", "service provider")."""
    return _EN_KEYS[re.sub(r"\s+", "", role.lower())]


def _en_labelled(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for m in EN_LABEL.finditer(text):
        span = _en_name(text, m.end(), _line_end(text, m.end()))
        if span is None:
            continue
        name = text[span[0] : span[1]]
        if not _plausible(name, strict=False):
            continue
        confidence = 0.95 if _has_org(name) else 0.85
        hits.append(_Hit(span[0], span[1], name, _en_key(m["role"]), _qual_key(m["qual"]), confidence))
    return hits


def _en_defined(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    previous = 0
    for m in EN_DEFINED.finditer(text):
        window = max(previous, m.start() - 400)
        start = window
        if previous < window:  # no earlier term to start after: at most the line before the term's line
            line = _line_start(text, m.start())
            start = max(window, _line_start(text, line - 1) if line > 0 else 0)
        for anchor in _BETWEEN.finditer(text, window, m.start()):
            start = anchor.end()
        base = start
        for anchor in re.finditer(r"\(\s?\d\s?\)|(?m:^\s*\d\.\s)|;", text[base : m.start()]):
            start = base + anchor.end()
        previous = m.end()
        lead = re.match(r"[\s,;:]*(?:and\s+)?(?:\(\s?\d\s?\)\s*)?", text[start : m.start()])
        if lead:
            start += lead.end()
        span = _en_name(text, start, m.start())
        if span is None:
            continue
        name = text[span[0] : span[1]]
        if not _plausible(name, strict=False) or name.lower() in _EN_ROLES or len(name) > 80:
            continue
        if not _has_org(name) and not re.fullmatch(r"[A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*){0,4}", name, re.ASCII):
            continue  # without a company suffix, only a capitalised name (John Smith)
        hits.append(_Hit(span[0], span[1], name, _en_key(m["role"]), None, 0.9 if _has_org(name) else 0.8))
    return hits


def _en_defined_names(text: str) -> list[_Hit]:
    """Parties the preamble defines by a short name (("Orion"), ("Helix")): in order, after "between"."""
    between = _BETWEEN.search(text, 0, min(len(text), 5000))
    if between is None:
        return []
    hits: list[_Hit] = []
    previous = between.end()
    for m in EN_DEFINED_NAME.finditer(text, between.end(), min(len(text), between.end() + 1500)):
        if _NOT_PARTY_TERMS.search(m["term"]) or EN_DEFINED.match(text, m.start()):
            previous = m.end()
            continue
        start = previous
        base = start
        for anchor in re.finditer(r"\(\s?\d\s?\)|;", text[base : m.start()]):
            start = base + anchor.end()
        lead = re.match(r"[\s,;:]*(?:and\s+)?(?:\(\s?\d\s?\)\s*)?", text[start : m.start()])
        if lead:
            start += lead.end()
        previous = m.end()
        span = _en_name(text, start, m.start())
        if span is None:
            continue
        name = text[span[0] : span[1]]
        if _plausible(name, strict=False) and len(name) <= 80 and name[:1].isupper():
            hits.append(_Hit(span[0], span[1], name, f"defined:{len(hits)}", None, 0.85 if _has_org(name) else 0.75))
        if len(hits) == 4:
            break
    return hits


def _en_enumerated(text: str) -> list[_Hit]:
    """``BETWEEN: (1) X …; and (2) Y …`` without defined roles: (1) is party_a, (2) party_b."""
    between = _BETWEEN.search(text, 0, min(len(text), 5000))
    if between is None:
        return []
    hits: list[_Hit] = []
    for m in _EN_ENUM_PARTY.finditer(text, between.end(), min(len(text), between.end() + 3000)):
        span = _en_name(text, m.start("rest"), m.end("rest"))
        if span is None:
            continue
        name = text[span[0] : span[1]]
        if _plausible(name, strict=False):
            hits.append(_Hit(span[0], span[1], name, "甲乙丙丁"[int(m["n"]) - 1], None, 0.75))
    return hits


_TABLE_ROLE = re.compile(
    rf"\s{{0,3}}\|?\s{{0,3}}(?:the\s{{1,2}})?(?P<role>{_ZH_ROLE}|{_EN_ROLE})\s{{0,2}}(?:\((?P<qual>[^()\n]{{1,16}})\))?"
    r"\s{0,2}[:：]?\s{0,3}\|?",
    re.IGNORECASE | re.ASCII,
)
_LINE = re.compile(r"[^\n\f]+")
_CELL_PREFIX = re.compile(r"^\s*(?:名称|单位名称|公司名称|全称|姓名|name)\s{0,2}[:：]\s{0,2}", re.IGNORECASE | re.ASCII)


def _role_key(role: str) -> str:
    return _ZH_ROLES.get(role) or _en_key(role)


def _split_cells(text: str, start: int, end: int, count: int, gaps: list[int]) -> list[tuple[int, int]] | None:
    """``count`` cells of the row ``text[start:end]``: cut at the whitespace (kept, or dropped by the
    folding) right after an organisation suffix, else at the only or the widest gap."""
    cuts = sorted({g for g in gaps if start < g < end} | {i for i in range(start, end) if text[i] == " "})
    if len(cuts) < count - 1:
        return None
    org_ends = {m.end() for m in _ORG.finditer(text, start, end)}
    after_org = [c for c in cuts if c in org_ends or (c - 1 in org_ends and text[c - 1] in ".,;")]
    if len(after_org) >= count - 1:
        chosen = after_org[: count - 1]
    elif len(cuts) == count - 1:
        chosen = cuts
    else:
        return None  # several gaps and no company suffix to tell which one splits the row
    cells = []
    for left, right in itertools.pairwise([start, *chosen, end]):
        a = left
        while a < right and text[a] in " |":
            a += 1
        prefix = _CELL_PREFIX.match(text, a, right)
        if prefix:
            a = prefix.end()
        cells.append((a, _trim_end(text, a, right)))
    return cells


def _tables(text: str, gaps: list[int]) -> list[_Hit]:
    """Roles side by side on one line (甲方 乙方 / Seller Buyer / 甲方（盖章）： 乙方（盖章）：), names below."""
    hits: list[_Hit] = []
    for line in _LINE.finditer(text):
        roles = []
        pos = line.start()
        while pos < line.end():
            m = _TABLE_ROLE.match(text, pos, line.end())
            if not m or m.end() == pos:
                break
            roles.append(m)
            pos = m.end()
        if len(roles) < 2 or text[pos : line.end()].strip(" |"):
            continue
        nxt = _LINE.search(text, line.end())
        if nxt is None or (_TABLE_ROLE.match(text, nxt.start()) and ZH_LABEL.match(text, nxt.start())):
            continue
        cells = _split_cells(text, nxt.start(), nxt.end(), len(roles), gaps)
        if cells is None:
            continue
        for m, (a, b) in zip(roles, cells, strict=True):
            name = text[a:b]
            if a < b and _plausible(name, strict=False):
                key = _role_key(m["role"])
                hits.append(_Hit(a, b, name, key, _qual_key(m["qual"]), 0.9 if _has_org(name) else 0.8))
    return hits


_BARE_ROLE = re.compile(
    rf"[ \t]{{0,3}}(?:the\s{{1,2}})?(?P<role>{_ZH_ROLE}|{_EN_ROLE})\s{{0,2}}(?:\((?P<qual>[^()\n]{{1,16}})\))?"
    r"[ \t]{0,2}[:：]?[ \t]{0,3}",
    re.IGNORECASE | re.ASCII,
)


def _vertical_tables(text: str) -> list[_Hit]:
    """A table read cell by cell (OCR gives each box its own line): role lines, then as many name lines.

    甲方 / 乙方 / 武汉某某有限公司 / 西安某某有限公司, Purchaser / Supplier / Highland Ltd / Newhaven GmbH."""
    hits: list[_Hit] = []
    lines = list(_LINE.finditer(text))
    i = 0
    while i < len(lines):
        run = []
        while i + len(run) < len(lines):
            line = lines[i + len(run)]
            m = _BARE_ROLE.fullmatch(text, line.start(), line.end())
            if not m:
                break
            run.append(m)
        if len(run) < 2 or i + 2 * len(run) > len(lines):
            i += max(1, len(run))
            continue
        names = lines[i + len(run) : i + 2 * len(run)]
        for m, line in zip(run, names, strict=True):
            a = line.start()
            prefix = _CELL_PREFIX.match(text, a, line.end())
            if prefix:
                a = prefix.end()
            b = _trim_end(text, a, line.end())
            name = text[a:b]
            if a < b and _plausible(name, strict=False) and not _BARE_ROLE.fullmatch(text, line.start(), line.end()):
                hits.append(_Hit(a, b, name, _role_key(m["role"]), _qual_key(m["qual"]), 0.8))
        i += 2 * len(run)
    return hits


def find_parties(text: str, gaps: list[int] | None = None) -> list[Party]:  # noqa: PLR0912 - the letter rules
    """One party per role (party_a … party_d), best evidence first, in role order. ``gaps``: where the
    folding dropped whitespace (:attr:`.normalize_text.Folded.gaps`), to split table rows."""
    hits = _zh_labelled(text) + _zh_defined(text) + _en_labelled(text) + _en_defined(text)
    hits += _tables(text, gaps or []) + _vertical_tables(text)
    if len({h.key for h in hits}) < 2:
        hits += _en_defined_names(text)
    if len({h.key for h in hits}) < 2:
        hits += _en_enumerated(text)
    hits.sort(key=lambda h: h.start)
    # Letters: explicit ones first (甲方, Party A, 出租方（甲方）), then role keys tied to them, then the
    # next free letter in order of appearance.
    letter_of: dict[str, str] = {}
    for h in hits:
        for key, other in ((h.key, h.qual_key), (h.qual_key, h.key)):
            if key in _LETTERS and other and other not in _LETTERS:
                letter_of.setdefault(other, key)
    explicit_names = {_canonical(h.name): h.key for h in hits if h.key in _LETTERS}
    for h in hits:
        if h.key not in _LETTERS and h.key not in letter_of and _canonical(h.name) in explicit_names:
            letter_of[h.key] = explicit_names[_canonical(h.name)]
    used = {h.key for h in hits if h.key in _LETTERS} | set(letter_of.values())
    free = [c for c in "甲乙丙丁" if c not in used]
    for h in hits:
        if h.key not in _LETTERS and h.key not in letter_of and free:
            letter_of[h.key] = free.pop(0)
    best: dict[str, _Hit] = {}
    for h in hits:
        letter = h.key if h.key in _LETTERS else letter_of.get(h.key)
        if letter is None:
            continue
        if letter not in best or h.confidence > best[letter].confidence:
            best[letter] = h
    parties: list[Party] = []
    seen: set[str] = set()
    for letter in "甲乙丙丁":
        if letter in best:
            h = best[letter]
            name = _canonical(h.name)
            if name in seen:
                continue
            seen.add(name)
            parties.append(Party(h.start, h.end, name, _LETTERS[letter], h.confidence))
    return parties
