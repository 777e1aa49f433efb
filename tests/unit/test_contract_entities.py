"""Contract entity extraction (``hearth_triton.contracts``, the ``legal_doc_analyzer`` model): formats,
OCR noise, offsets, requests, speed, and the Triton model's config and request handling."""

from __future__ import annotations

import importlib.util
import json
import random
import struct
import sys
import types
from typing import Any

import numpy as np
import pytest

from shared.settings import REPO_ROOT

TRITON_DIR = REPO_ROOT / "infra" / "triton"
if str(TRITON_DIR) not in sys.path:
    sys.path.insert(0, str(TRITON_DIR))  # hearth_triton runs in Triton's venv; this package is pure Python

from hearth_triton.contracts import (  # noqa: E402
    SUPPORTED_FIELDS,
    ContractRequestError,
    UnknownField,
    analyze,
    parse_params,
    warm_up,
)
from hearth_triton.contracts.dates import add_duration  # noqa: E402
from hearth_triton.contracts.kinds import classify  # noqa: E402
from hearth_triton.contracts.normalize_text import fold  # noqa: E402
from hearth_triton.params import ModelParams  # noqa: E402
from hearth_triton.repository import read_config  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]
MODEL_DIR = TRITON_DIR / "model_repository" / "legal_doc_analyzer"


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm_up()  # jieba's dictionary (about 1 s), once for the module


def entities(result: dict[str, Any], field: str) -> list[dict[str, Any]]:
    return [e for e in result["entities"] if e["field"] == field]


def normalized(text: str, **kwargs: Any) -> dict[str, Any]:
    """field → normalized form (parties: role → name), after checking every entity's offsets."""
    result = analyze(text, **kwargs)
    assert_offsets(text, result)
    out: dict[str, Any] = {}
    for e in result["entities"]:
        if e["field"] == "parties":
            out.setdefault("parties", {})[e["normalized"]["role"]] = e["normalized"]["name"]
        else:
            assert e["field"] not in out, f"two {e['field']} entities"
            out[e["field"]] = e["normalized"]
    return out


def assert_offsets(text: str, result: dict[str, Any]) -> None:
    for e in result["entities"]:
        assert text[e["start"] : e["end"]] == e["value"], e
        assert 0 < e["confidence"] <= 1, e
    json.dumps(result, ensure_ascii=False)  # JSON-able


# ---- whole contracts -----------------------------------------------------------------------------------

ZH_PURCHASE = """设备采购合同

合同编号：HT-2024-0012
签订日期：2024年3月5日
签订地点：北京市海淀区

甲方（买方）：北京某某科技有限公司
地址：北京市海淀区中关村大街1号
法定代表人：张三

乙方（卖方）：上海某某贸易有限公司
地址：上海市浦东新区世纪大道100号
法定代表人：李四

根据《中华人民共和国民法典》及相关法律法规，甲乙双方经友好协商，就甲方向乙方采购设备事宜达成如下协议：

第一条 合同标的
乙方向甲方提供服务器设备10台，单价人民币12,345.68元/台。

第二条 合同价款
合同总价款为人民币（大写）壹拾贰万叁仟肆佰伍拾陆元柒角捌分（¥123,456.78），含税。
甲方应于合同签订后五日内支付定金人民币20,000.00元。

第三条 合同期限
本合同有效期自2024年3月5日起至2025年3月4日止。

第四条 违约责任
任何一方违约，应向对方支付合同总价20%的违约金，即人民币24,691.36元。

甲方（盖章）：北京某某科技有限公司
日期：2024年3月5日
乙方（盖章）：上海某某贸易有限公司
日期：2024年3月5日
"""
ZH_PURCHASE_EXPECTED = {
    "contract_type": {"type": "purchase", "label": "设备采购合同"},
    "valid_period": {"start": "2024-03-05", "end": "2025-03-04"},
    "parties": {"party_a": "北京某某科技有限公司", "party_b": "上海某某贸易有限公司"},
    "amount": {"amount": "123456.78", "currency": "CNY"},
    "contract_number": {"number": "HT-2024-0012"},
    "signing_date": {"date": "2024-03-05"},
}

EN_SERVICES = """MASTER SERVICES AGREEMENT

Agreement No.: MSA-2024-017

This Master Services Agreement (the "Agreement") is made and entered into as of March 5, 2024 by and between:

(1) ACME Trading Co., Ltd., a company incorporated under the laws of the People's Republic of China, with its
registered office at 1 Main Road, Shanghai (the "Customer"); and

(2) Beta Solutions LLC, a Delaware limited liability company, having its principal place of business at 500
Market Street, San Francisco (the "Service Provider").

1. Term. This Agreement shall commence on April 1, 2024 and shall remain in force for a term of two (2) years.

2. Fees. The total contract price for the Services is USD 250,000.00 (two hundred fifty thousand US dollars).
A deposit of USD 25,000.00 is payable within 10 days.

3. Late payment. Late payments bear interest at 1% per month.

4. Confidentiality. The obligations in this clause survive for a period of five (5) years after termination.

IN WITNESS WHEREOF, the parties have executed this Agreement.

Customer: ACME Trading Co., Ltd.
By: ________  Name: Wang Wei  Title: Director
Date: March 5, 2024

Service Provider: Beta Solutions LLC
By: ________  Name: John Smith  Title: CEO
Date: March 6, 2024
"""
EN_SERVICES_EXPECTED = {
    "contract_type": {"type": "service", "label": "MASTER SERVICES AGREEMENT"},
    "valid_period": {"start": "2024-04-01", "end": "2026-03-31"},
    "parties": {"party_a": "ACME Trading Co., Ltd.", "party_b": "Beta Solutions LLC"},
    "amount": {"amount": "250000.00", "currency": "USD"},
    "contract_number": {"number": "MSA-2024-017"},
    "signing_date": {"date": "2024-03-05"},
}


def test_chinese_contract_all_six_fields() -> None:
    result = analyze(ZH_PURCHASE)
    assert result["language"] == "zh"
    assert result["warnings"] == []
    assert normalized(ZH_PURCHASE) == ZH_PURCHASE_EXPECTED
    # The total, not the deposit or the penalty; words and figures are one entity.
    (amount,) = entities(result, "amount")
    assert amount["value"].startswith("人民币（大写）壹拾贰万")
    assert amount["value"].endswith("¥123,456.78）")
    assert amount["confidence"] >= 0.9


def test_english_contract_all_six_fields() -> None:
    result = analyze(EN_SERVICES)
    assert result["language"] == "en"
    assert normalized(EN_SERVICES) == EN_SERVICES_EXPECTED


CONTRACTS = {
    "zh_lease": (
        """房 屋 租 赁 合 同

合同编号：ZL-2024-118

出租方（甲方）：王五
身份证号码：110101197001011234
承租方（乙方）：深圳市某某（集团）有限公司
统一社会信用代码：91440300MA5XXXXXX

第一条 租赁期限
租赁期限为三年，自2024年1月1日起至2026年12月31日止。其中免租期自2024年1月1日至2024年1月31日。

第二条 租金
月租金为人民币5,000元，押金为人民币10,000元。租金总额为人民币180,000.00元（大写：壹拾捌万元整）。

甲方（签字）：王五
乙方（盖章）：深圳市某某（集团）有限公司
签约日期：2023年12月20日
""",
        {
            "contract_type": {"type": "lease", "label": "房屋租赁合同"},
            "valid_period": {"start": "2024-01-01", "end": "2026-12-31"},
            "parties": {"party_a": "王五", "party_b": "深圳市某某（集团）有限公司"},
            "amount": {"amount": "180000.00", "currency": "CNY"},
            "contract_number": {"number": "ZL-2024-118"},
            "signing_date": {"date": "2023-12-20"},
        },
    ),
    "zh_employment_probation_is_not_the_term": (
        """劳动合同书

用人单位（甲方）：杭州某某网络有限公司
法定代表人：孙七
劳动者（乙方）：赵六     性别：男
身份证号码：330101199001011234

一、合同期限
本合同为固定期限劳动合同，其中试用期自2024年1月1日起至2024年3月31日止，合同期限自2024年1月1日起至2026年12月31日止。

二、劳动报酬
乙方月工资为人民币8,000元。

签订日期：2023年12月28日
""",
        {
            "contract_type": {"type": "employment", "label": "劳动合同书"},
            "valid_period": {"start": "2024-01-01", "end": "2026-12-31"},
            "parties": {"party_a": "杭州某某网络有限公司", "party_b": "赵六"},
            "signing_date": {"date": "2023-12-28"},  # a monthly salary is not a contract total
        },
    ),
    "zh_loan_guarantor_is_party_c": (
        """借款合同
编号：JK〔2024〕第015号
贷款人：中国某某银行股份有限公司北京分行
借款人：北京某某建材有限公司
保证人：北京某某融资担保有限公司
第一条 借款金额
借款金额为人民币（大写）伍拾万元整（¥500,000.00）。
第二条 借款期限
借款期限为12个月，自2024年1月15日起。
第三条 利息
逾期利息按日万分之五计算，违约金为人民币5,000元。
本合同于2024年1月10日在北京市西城区签订。
""",
        {
            "contract_type": {"type": "loan", "label": "借款合同"},
            "valid_period": {"start": "2024-01-15", "end": "2025-01-14"},
            "parties": {
                "party_a": "中国某某银行股份有限公司北京分行",
                "party_b": "北京某某建材有限公司",
                "party_c": "北京某某融资担保有限公司",
            },
            "amount": {"amount": "500000.00", "currency": "CNY"},
            "contract_number": {"number": "JK〔2024〕第015号"},
            "signing_date": {"date": "2024-01-10"},
        },
    ),
    "zh_service_term_from_signing": (
        """技术服务合同

委托方：上海某某生物科技股份有限公司
受托方：南京某某信息技术有限公司

经双方友好协商，委托方委托受托方提供信息系统运维服务，达成如下条款：
1. 服务期限为一年，自本合同签订之日起计算。
2. 服务费用总额为人民币贰拾肆万元整（¥240,000.00），按季度支付。

委托方（盖章）：上海某某生物科技股份有限公司
日期：2024年6月18日
受托方（盖章）：南京某某信息技术有限公司
日期：2024年6月18日
""",
        {
            "contract_type": {"type": "service", "label": "技术服务合同"},
            "valid_period": {"start": "2024-06-18", "end": "2025-06-17"},
            "parties": {"party_a": "上海某某生物科技股份有限公司", "party_b": "南京某某信息技术有限公司"},
            "amount": {"amount": "240000.00", "currency": "CNY"},
            "signing_date": {"date": "2024-06-18"},
        },
    ),
    "zh_nda_numeral_dates": (
        """竞业限制及保密协议

甲方：广州某某电子有限公司
乙方：陈八

本协议由甲方与乙方于二〇二四年五月八日签订。
本协议有效期为两年，自二〇二四年五月八日起算。
违约金为人民币100万元。
""",
        {
            "contract_type": {"type": "nda", "label": "竞业限制及保密协议"},
            "valid_period": {"start": "2024-05-08", "end": "2026-05-07"},
            "parties": {"party_a": "广州某某电子有限公司", "party_b": "陈八"},
            "signing_date": {"date": "2024-05-08"},
        },
    ),
    "zh_construction_labelled_start_and_end": (
        """建设工程施工合同

发包人：成都某某房地产开发有限公司
承包人：中国某某建设集团有限公司

二、合同工期
计划开工日期：2024年3月1日
计划竣工日期：2025年6月30日
三、签约合同价
签约合同价为：人民币（大写）壹仟贰佰叁拾肆万伍仟陆佰柒拾捌元玖角（¥12,345,678.90）。
四、质量保修
质量保修金为签约合同价的3%。
合同订立时间：2024年2月20日
""",
        {
            "contract_type": {"type": "construction", "label": "建设工程施工合同"},
            "valid_period": {"start": "2024-03-01", "end": "2025-06-30"},
            "parties": {"party_a": "成都某某房地产开发有限公司", "party_b": "中国某某建设集团有限公司"},
            "amount": {"amount": "12345678.90", "currency": "CNY"},
            "signing_date": {"date": "2024-02-20"},
        },
    ),
    "zh_defined_terms_inline": (
        """产品销售协议

本协议由武汉某某光电股份有限公司（以下简称"甲方"）与重庆某某机电有限公司（以下简称"乙方"）于2024年9月9日签订。
一、合同金额：本协议项下产品总金额为人民币壹佰万元整（¥1,000,000.00）。
二、有效期：2024.09.09-2025.09.08
""",
        {
            "contract_type": {"type": "sales", "label": "产品销售协议"},
            "valid_period": {"start": "2024-09-09", "end": "2025-09-08"},
            "parties": {"party_a": "武汉某某光电股份有限公司", "party_b": "重庆某某机电有限公司"},
            "amount": {"amount": "1000000.00", "currency": "CNY"},
            "signing_date": {"date": "2024-09-09"},
        },
    ),
    "zh_agency": (
        """独家代理协议
协议编号：DL-2024-003
委托方：佛山某某家具有限公司（以下简称"甲方"）
代理方：长沙某某商贸有限公司（以下简称"乙方"）
代理期限：2024年7月1日至2025年6月30日。
签署日期：2024年6月25日
""",
        {
            "contract_type": {"type": "agency", "label": "独家代理协议"},
            "valid_period": {"start": "2024-07-01", "end": "2025-06-30"},
            "parties": {"party_a": "佛山某某家具有限公司", "party_b": "长沙某某商贸有限公司"},
            "contract_number": {"number": "DL-2024-003"},
            "signing_date": {"date": "2024-06-25"},
        },
    ),
    "en_employment": (
        """EMPLOYMENT AGREEMENT

This Employment Agreement is entered into on 1 February 2024 between Northwind Analytics Ltd (the "Employer")
and Mary Jones (the "Employee").

1. Commencement and Term. The employment shall commence on 1 March 2024 and continue for a fixed term of
twelve (12) months, subject to a probationary period of three (3) months.

2. Salary. The Employer shall pay the Employee an annual salary of GBP 60,000.00, payable monthly.
""",
        {
            "contract_type": {"type": "employment", "label": "EMPLOYMENT AGREEMENT"},
            "valid_period": {"start": "2024-03-01", "end": "2025-02-28"},
            "parties": {"party_a": "Northwind Analytics Ltd", "party_b": "Mary Jones"},
            "signing_date": {"date": "2024-02-01"},  # an annual salary is not a contract total
        },
    ),
    "en_loan_european_amount": (
        """LOAN AGREEMENT

Dated: 10 January 2024
Ref.: LA/2024/0091

Lender: Rhine Capital Bank AG
Borrower: Lakeside Holdings B.V.

1. The Lender agrees to lend to the Borrower the principal amount of EUR 1.000.000,00 (the "Loan").
2. The Loan is made for the period 2024-01-15 through 2026-01-14.
3. Default interest of EUR 500,00 per day applies.
""",
        {
            "contract_type": {"type": "loan", "label": "LOAN AGREEMENT"},
            "valid_period": {"start": "2024-01-15", "end": "2026-01-14"},
            "parties": {"party_a": "Rhine Capital Bank AG", "party_b": "Lakeside Holdings B.V."},
            "amount": {"amount": "1000000.00", "currency": "EUR"},
            "contract_number": {"number": "LA/2024/0091"},
            "signing_date": {"date": "2024-01-10"},
        },
    ),
    "en_nda_short_names_and_effective_date": (
        """MUTUAL NON-DISCLOSURE AGREEMENT

This Mutual Non-Disclosure Agreement is made effective as of May 1, 2024 (the "Effective Date") by and between
Orion Robotics, Inc., a California corporation ("Orion"), and Helix Medical GmbH, a company organized under the
laws of Germany ("Helix").

This Agreement shall remain in effect for three (3) years from the Effective Date.
""",
        {
            "contract_type": {"type": "nda", "label": "MUTUAL NON-DISCLOSURE AGREEMENT"},
            "valid_period": {"start": "2024-05-01", "end": "2027-04-30"},
            "parties": {"party_a": "Orion Robotics, Inc.", "party_b": "Helix Medical GmbH"},
            "signing_date": {"date": "2024-05-01"},
        },
    ),
    "en_lease_day_first_dates": (
        """LEASE AGREEMENT
Lease No. L-2024-77

The Landlord: Harbour Properties Limited
The Tenant: Blue Fin Cafe Pty Ltd

1. Term. The term of this Lease shall be from 01/06/2024 to 31/05/2026.
2. Rent. The monthly rent is HK$45,000. The total rent payable over the term is HK$1,080,000.
3. A security deposit of HK$90,000 is payable on signing.

Signed on 20 May 2024.
""",
        {
            "contract_type": {"type": "lease", "label": "LEASE AGREEMENT"},
            "valid_period": {"start": "2024-06-01", "end": "2026-05-31"},
            "parties": {"party_a": "Harbour Properties Limited", "party_b": "Blue Fin Cafe Pty Ltd"},
            "amount": {"amount": "1080000.00", "currency": "HKD"},
            "contract_number": {"number": "L-2024-77"},
            "signing_date": {"date": "2024-05-20"},
        },
    ),
    "en_sales": (
        """SALES CONTRACT
Contract No: SC-2024-088
Date: March 15, 2024

The Seller: Ningbo Ocean Export Co., Ltd.
The Buyer: Maple Leaf Trading Inc.

The total contract value is US$ 1,250,000.00 (Say US Dollars One Million Two Hundred Fifty Thousand Only).
Unit price: USD 12.50 per piece.
This contract is valid from March 15, 2024 until December 31, 2024.
""",
        {
            "contract_type": {"type": "sales", "label": "SALES CONTRACT"},
            "valid_period": {"start": "2024-03-15", "end": "2024-12-31"},
            "parties": {"party_a": "Ningbo Ocean Export Co., Ltd.", "party_b": "Maple Leaf Trading Inc."},
            "amount": {"amount": "1250000.00", "currency": "USD"},
            "contract_number": {"number": "SC-2024-088"},
            "signing_date": {"date": "2024-03-15"},
        },
    ),
}


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_contracts_of_several_kinds_and_phrasings(name: str) -> None:
    text, expected = CONTRACTS[name]
    assert normalized(text) == expected


# ---- valid period: every date format and phrasing -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("合同有效期：自2024年1月1日起至2025年12月31日止。", "2024-01-01", "2025-12-31"),
        ("有效期：2024年1月1日至2025年12月31日", "2024-01-01", "2025-12-31"),
        ("本合同有效期 2024.01.01-2025.12.31", "2024-01-01", "2025-12-31"),
        ("有效期二〇二四年一月一日至二〇二五年十二月三十一日", "2024-01-01", "2025-12-31"),
        ("合同期限：2024/1/1—2025/12/31", "2024-01-01", "2025-12-31"),
        ("期限自2024年01月01日零时起，至2025年12月31日24时止", "2024-01-01", "2025-12-31"),
        ("This Agreement is valid from January 1, 2024 to December 31, 2025.", "2024-01-01", "2025-12-31"),
        ("The term commencing on 1 March 2024 and ending on 28 February 2026.", "2024-03-01", "2026-02-28"),
        ("The lease is granted for the period 2024-03-01 through 2026-02-28.", "2024-03-01", "2026-02-28"),
        ("The term runs from the 1st day of March 2024 until the 28th day of February 2026.", "2024-03-01",
         "2026-02-28"),
        ("This Agreement is effective from 1 January 2024 and expires on 31 December 2025.", "2024-01-01",
         "2025-12-31"),
        ("起始日期：2024年1月1日\n终止日期：2024年12月31日", "2024-01-01", "2024-12-31"),
    ],
)  # fmt: skip
def test_explicit_periods(text: str, start: str, end: str) -> None:
    assert normalized(text)["valid_period"] == {"start": start, "end": end}


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("本合同有效期为两年，自2024年1月1日起计算。", "2024-01-01", "2025-12-31"),
        ("本合同有效期三年，自2024年1月1日起。", "2024-01-01", "2026-12-31"),
        ("合同期限为24个月，自2024年3月1日起。", "2024-03-01", "2026-02-28"),
        ("租赁期限为贰（2）年，从2024年7月1日开始。", "2024-07-01", "2026-06-30"),
        ("服务期为半年，自2024年1月1日起。", "2024-01-01", "2024-06-30"),
        ("This Agreement shall continue for a term of two (2) years commencing on March 1, 2024.", "2024-03-01",
         "2026-02-28"),
        ("The Lease is for a period of 18 months starting on 1 April 2024.", "2024-04-01", "2025-09-30"),
        ("This Agreement shall commence on 31 January 2024 and remain in force for one (1) month.", "2024-01-31",
         "2024-02-29"),
    ],
)  # fmt: skip
def test_duration_periods_end_the_day_before(text: str, start: str, end: str) -> None:
    assert normalized(text)["valid_period"] == {"start": start, "end": end}


def test_duration_arithmetic() -> None:
    import datetime as dt

    assert add_duration(dt.date(2024, 1, 1), 2, "year") == dt.date(2025, 12, 31)
    assert add_duration(dt.date(2024, 2, 29), 1, "year") == dt.date(2025, 2, 28)  # no 29 Feb: month end
    assert add_duration(dt.date(2023, 3, 1), 1, "year") == dt.date(2024, 2, 29)
    assert add_duration(dt.date(2024, 1, 1), 30, "day") == dt.date(2024, 1, 30)
    assert add_duration(dt.date(2024, 1, 1), 2, "week") == dt.date(2024, 1, 14)


def test_duration_from_signing_uses_the_signing_date_with_lower_confidence() -> None:
    text = "本合同有效期为三年，自双方签字盖章之日起生效。\n甲方（盖章）：\n签订日期：2024年3月5日"
    result = analyze(text)
    (period,) = entities(result, "valid_period")
    assert period["normalized"] == {"start": "2024-03-05", "end": "2027-03-04"}
    (signing,) = entities(result, "signing_date")
    assert period["confidence"] < signing["confidence"]
    assert period["confidence"] <= 0.7
    english = (
        "This Agreement takes effect on the date of signing and remains in force for one (1) year.\n"
        "Signed on 2 May 2024."
    )
    assert normalized(english)["valid_period"] == {"start": "2024-05-02", "end": "2025-05-01"}


def test_duration_without_any_start_gives_no_period() -> None:
    result = analyze("本合同有效期为两年。")
    assert entities(result, "valid_period") == []
    assert "valid_period: not found" in result["warnings"]


def test_other_periods_do_not_pass_for_the_term() -> None:
    text = (
        "试用期自2024年1月1日起至2024年3月31日止。\n质保期自2024年1月1日至2025年1月1日。\n"
        "付款期限：2024年1月1日至2024年1月31日。\nThe warranty period runs from 1 May 2024 to 30 April 2025."
    )
    assert "valid_period" not in normalized(text)
    survive = "The obligations survive for a period of five (5) years after termination. Signed on 1 May 2024."
    assert "valid_period" not in normalized(survive)


@pytest.mark.parametrize(
    "text",
    ["本合同自2024年2月30日起至2025年2月28日止有效。", "有效期：2024年13月1日至2025年1月1日"],
)
def test_invalid_dates_give_no_entity_and_a_warning(text: str) -> None:
    result = analyze(text)
    assert entities(result, "valid_period") == []
    assert any("invalid date" in w for w in result["warnings"]), result["warnings"]


# ---- signing date -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("签订日期：2024年3月5日", "2024-03-05"),
        ("签署日期：2024-03-05", "2024-03-05"),
        ("签约日期：2024/3/5", "2024-03-05"),
        ("签订时间：二〇二四年三月五日", "2024-03-05"),
        ("本合同于2024年3月5日在北京市海淀区签订。", "2024-03-05"),
        ("甲方（盖章）：北京某某有限公司\n日期：2024年3月5日", "2024-03-05"),
        ("Signed on 5 March 2024.", "2024-03-05"),
        ("Dated: March 5, 2024", "2024-03-05"),
        ("Date of signature: 2024-03-05", "2024-03-05"),
        ("This Agreement is made on the 5th day of March, 2024 between A and B.", "2024-03-05"),
        ("This Agreement is made as of March 5, 2024.", "2024-03-05"),
        ("IN WITNESS WHEREOF the parties have signed.\nBy: ____\nDate: 5 March 2024", "2024-03-05"),
    ],
)  # fmt: skip
def test_signing_dates(text: str, date: str) -> None:
    assert normalized(text)["signing_date"] == {"date": date}


def test_other_dates_are_not_signing_dates() -> None:
    assert "signing_date" not in normalized(
        "交货日期：2024年4月1日\n付款日期：2024年5月1日\nDelivery date: 1 June 2024"
    )


# ---- amounts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "amount"),
    [
        ("壹拾贰万叁仟肆佰伍拾陆元柒角捌分", "123456.78"),
        ("壹拾万元整", "100000.00"),
        ("伍佰万元整", "5000000.00"),
        ("壹仟零伍元整", "1005.00"),
        ("贰亿叁仟万元整", "230000000.00"),
        ("玖万玖仟玖佰玖拾玖元玖角玖分", "99999.99"),
        ("壹拾万零伍佰元整", "100500.00"),
        ("叁仟元伍角", "3000.50"),
        ("捌拾元零伍分", "80.05"),
    ],
)
def test_chinese_uppercase_amounts(words: str, amount: str) -> None:
    assert normalized(f"合同总价：人民币{words}")["amount"] == {"amount": amount, "currency": "CNY"}


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("合同总金额：¥100,000.00", "100000.00", "CNY"),
        ("合同金额：人民币100万元", "1000000.00", "CNY"),
        ("合同总价为RMB 1.5万元", "15000.00", "CNY"),
        ("合同价款：50000元", "50000.00", "CNY"),
        ("Total price: USD 5,000.00", "5000.00", "USD"),
        ("The contract price is US$5,000.", "5000.00", "USD"),
        ("The total amount is $5,000 (five thousand US dollars).", "5000.00", "USD"),
        ("Contract value: EUR 1.234,56", "1234.56", "EUR"),
        ("Contract value: EUR 1,234.56", "1234.56", "EUR"),
        ("The purchase price is GBP 2.5 million.", "2500000.00", "GBP"),
        ("Total consideration: HKD 88,000", "88000.00", "HKD"),
        ("Total price: JPY 1,200,000", "1200000.00", "JPY"),
        ("合同总价：5,000,000日元", "5000000.00", "JPY"),
        ("合同总价款为人民币（大写）壹拾万元整（¥100,000.00）", "100000.00", "CNY"),
        ("合同总价：¥100,000.00（人民币壹拾万元整）", "100000.00", "CNY"),
    ],
)
def test_amount_formats(text: str, amount: str, currency: str) -> None:
    assert normalized(text)["amount"] == {"amount": amount, "currency": currency}


def test_the_total_wins_over_deposits_penalties_and_unit_prices() -> None:
    text = (
        "单价：人民币1,000元/台。\n定金为人民币50,000元。\n合同总价为人民币300,000元。\n"
        "违约金为合同总价的20%，即人民币60,000元。\n每月服务费人民币9,000元。"
    )
    result = analyze(text)
    (amount,) = entities(result, "amount")
    assert amount["normalized"] == {"amount": "300000.00", "currency": "CNY"}
    assert amount["confidence"] >= 0.9
    assert entities(analyze("押金为人民币10,000元，违约金为人民币5,000元。"), "amount") == []


def test_words_and_figures_that_disagree_report_the_words_and_warn() -> None:
    result = analyze("合同总价：人民币壹拾万元整（¥10,000.00）")
    (amount,) = entities(result, "amount")
    assert amount["normalized"]["amount"] == "100000.00"
    assert amount["confidence"] <= 0.6
    assert any("differs" in w for w in result["warnings"])


# ---- contract type -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("采购合同", "purchase"), ("购销合同", "purchase"), ("设备采购协议", "purchase"), ("物资采购合同", "purchase"),
        ("销售合同", "sales"), ("产品销售协议", "sales"), ("买卖合同", "sales"),
        ("技术服务合同", "service"), ("服务协议", "service"), ("委托服务合同", "service"), ("咨询服务合同", "service"),
        ("房屋租赁合同", "lease"), ("租赁协议", "lease"), ("设备租赁合同", "lease"),
        ("劳动合同", "employment"), ("聘用合同", "employment"), ("雇佣协议", "employment"),
        ("保密协议", "nda"), ("保密合同", "nda"), ("竞业限制及保密协议", "nda"),
        ("借款合同", "loan"), ("贷款合同", "loan"),
        ("许可协议", "license"), ("软件许可合同", "license"), ("商标许可使用合同", "license"),
        ("建设工程施工合同", "construction"), ("工程承包合同", "construction"),
        ("代理协议", "agency"), ("委托代理合同", "agency"), ("独家代理协议", "agency"), ("销售代理协议", "agency"),
        ("战略合作协议", "other"),
        ("Purchase Agreement", "purchase"), ("Purchase Order Agreement", "purchase"), ("Supply Agreement", "purchase"),
        ("Sales Agreement", "sales"), ("Sale of Goods Agreement", "sales"), ("Sales Contract", "sales"),
        ("Service Agreement", "service"), ("Services Agreement", "service"), ("Master Services Agreement", "service"),
        ("Consulting Agreement", "service"),
        ("Lease Agreement", "lease"), ("Tenancy Agreement", "lease"), ("Equipment Lease", "lease"),
        ("Employment Agreement", "employment"), ("Contract of Employment", "employment"),
        ("Offer of Employment", "employment"),
        ("Non-Disclosure Agreement", "nda"), ("Confidentiality Agreement", "nda"), ("NDA", "nda"),
        ("Mutual NDA", "nda"),
        ("Loan Agreement", "loan"), ("Credit Agreement", "loan"), ("Promissory Note", "loan"),
        ("License Agreement", "license"), ("Licence Agreement", "license"), ("Software License Agreement", "license"),
        ("Construction Contract", "construction"), ("Works Contract", "construction"), ("EPC Contract", "construction"),
        ("Agency Agreement", "agency"), ("Distribution Agreement", "agency"),
        ("Shareholders Agreement", "other"),
    ],
)  # fmt: skip
def test_contract_type_titles(title: str, slug: str) -> None:
    text = f"{title.upper() if title.isascii() else title}\n\n甲方：北京某某有限公司\n本合同一式两份。"
    kind = normalized(text)["contract_type"]
    assert kind["type"] == slug
    assert kind["label"].lower() == title.lower()


def test_title_wins_over_body_mentions_and_body_is_the_fallback() -> None:
    text = "软件许可合同\n甲方：A有限公司\n本合同项下的技术服务，参照双方另行签订的技术服务合同执行。技术服务合同另计。"
    assert normalized(text)["contract_type"] == {"type": "license", "label": "软件许可合同"}
    (kind,) = entities(analyze(text), "contract_type")
    assert kind["confidence"] >= 0.9
    body_only = "甲方：北京某某有限公司\n乙方：上海某某有限公司\n鉴于甲方拟租用乙方房屋，双方就本租赁合同达成如下条款。"
    (kind,) = entities(analyze(body_only), "contract_type")
    assert kind["normalized"] == {"type": "lease", "label": "租赁合同"}
    assert kind["confidence"] < 0.8


def test_classify_decisions() -> None:
    assert classify("Supply Agreement") == "purchase"  # the customer buying
    assert classify("Distribution Agreement") == "agency"
    assert classify("经销协议") == "agency"
    assert classify("合作协议") is None


# ---- contract number ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("合同编号：HT-2024-0012", "HT-2024-0012"),
        ("合同编号: HT-2024- 0012  签订地点：北京", "HT-2024-0012"),
        ("合同号：CG2024/031", "CG2024/031"),
        ("编号.京(2024)采购字第0012号", "京(2024)采购字第0012号"),
        ("合同编号 ＨＴ－２０２４－００１２", "HT-2024-0012"),
        ("合同编号：No. HT2024-001", "HT2024-001"),
        ("Contract No.: ABC/2024/001", "ABC/2024/001"),
        ("Agreement No. SA-2024-17, dated 1 May 2024", "SA-2024-17"),
        ("Ref.: LON/2024/88", "LON/2024/88"),
        ("Contract Number: MSA-2024-001.", "MSA-2024-001"),
    ],
)
def test_contract_numbers(text: str, number: str) -> None:
    assert normalized(text)["contract_number"] == {"number": number}


def test_identity_numbers_are_not_contract_numbers() -> None:
    text = "身份证号码：110101199001011234\n统一社会信用代码：91110000MA01XXXX\nNo. 5 Road, Nov 2024"
    assert "contract_number" not in normalized(text)


# ---- parties ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parties"),
    [
        ("甲方（买方）：北京某某科技有限公司\n乙方（卖方）：上海某某贸易有限公司",
         {"party_a": "北京某某科技有限公司", "party_b": "上海某某贸易有限公司"}),
        ("出租方：王五\n承租方：深圳市某某（集团）有限公司",
         {"party_a": "王五", "party_b": "深圳市某某（集团）有限公司"}),
        ("承租方（乙方）：深圳市某某有限公司\n出租方（甲方）：王五",
         {"party_a": "王五", "party_b": "深圳市某某有限公司"}),
        ("委托方：A某某有限公司\n受托方：B某某研究院", {"party_a": "A某某有限公司", "party_b": "B某某研究院"}),
        ("卖方：上海某某贸易有限公司\n买方：北京某某科技有限公司",
         {"party_a": "上海某某贸易有限公司", "party_b": "北京某某科技有限公司"}),
        ("用人单位：杭州某某网络有限公司\n劳动者：赵六", {"party_a": "杭州某某网络有限公司", "party_b": "赵六"}),
        ("许可方：某某软件股份有限公司\n被许可方：某某银行股份有限公司",
         {"party_a": "某某软件股份有限公司", "party_b": "某某银行股份有限公司"}),
        ("借款人：李四\n贷款人：某某小额贷款有限公司", {"party_a": "李四", "party_b": "某某小额贷款有限公司"}),
        ("甲方名称：北京某某有限公司  法定代表人：张三  地址：北京市\n乙方单位名称：天津某某有限公司",
         {"party_a": "北京某某有限公司", "party_b": "天津某某有限公司"}),
        ("甲方：\n北京某某科技有限公司\n乙方：上海某某有限公司（盖章）",
         {"party_a": "北京某某科技有限公司", "party_b": "上海某某有限公司"}),
        ("本合同由北京和信科技有限公司（以下简称“甲方”）与上海某某贸易有限公司（以下简称“乙方”）签订。",
         {"party_a": "北京和信科技有限公司", "party_b": "上海某某贸易有限公司"}),
        ("Party A: Shenzhen Example Technology Co., Ltd.\nAddress: Shenzhen\nParty B: John Smith",
         {"party_a": "Shenzhen Example Technology Co., Ltd.", "party_b": "John Smith"}),
        ("BETWEEN:\n(1) ACME LIMITED, a company incorporated in England (company no. 123) whose registered office "
         "is at 1 Main St (\"Buyer\"); and\n(2) BETA GMBH of Berlin (\"Seller\").",
         {"party_a": "ACME LIMITED", "party_b": "BETA GMBH"}),
        ("This Agreement is made between ACME Trading Co., Ltd. (the \"Buyer\") and Beta Solutions LLC "
         "(the \"Seller\").", {"party_a": "ACME Trading Co., Ltd.", "party_b": "Beta Solutions LLC"}),
        ("Buyer: Global Imports Inc.\nSeller: Sino Export Ltd., Address: Room 1",
         {"party_a": "Global Imports Inc.", "party_b": "Sino Export Ltd."}),
        ("by and between ACME Inc., a Delaware corporation, with offices at 123 Main St (\"Company\"), and John "
         "Smith, an individual residing at 5 Elm St (\"Consultant\").",
         {"party_a": "ACME Inc.", "party_b": "John Smith"}),
        ("BETWEEN\n(1) Alpha Holdings Ltd of 1 High Street; and\n(2) Omega Partners LLP of 2 Low Street.",
         {"party_a": "Alpha Holdings Ltd", "party_b": "Omega Partners LLP"}),
    ],
)  # fmt: skip
def test_parties(text: str, parties: dict[str, str]) -> None:
    assert normalized(text)["parties"] == parties


def test_body_sentences_and_signature_blanks_are_not_parties() -> None:
    text = (
        "甲方应当于本合同签订后五日内支付。\n乙方有权解除合同。\n甲方（盖章）：\n乙方（签字）：________\n"
        "Buyer: ________"
    )
    assert "parties" not in normalized(text)


# ---- OCR noise ----------------------------------------------------------------------------------------------

_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def ocr_noise(text: str, seed: int) -> str:
    """What PP-OCR does to a clean page: spaces inside CJK runs and numbers, full-width forms, 0→O and
    1→l inside digit runs, 日→曰/目, a missing or '.' colon, line breaks inside long lines."""
    rnd = random.Random(seed)  # noqa: S311 - seeded test noise, not a secret
    out: list[str] = []
    column = 0
    for i, clean in enumerate(text):
        prev = text[i - 1] if i else ""
        roll = rnd.random()
        char = clean
        if clean == "0" and prev.isdigit() and roll < 0.15:
            char = "O"
        elif clean == "1" and prev.isdigit() and roll < 0.08:
            char = "l"
        elif clean == "日" and roll < 0.3:
            char = rnd.choice("曰目")
        elif clean in ":,()" and roll < 0.5:
            char = {":": "：", ",": "，", "(": "（", ")": "）"}[clean]
        elif clean == "：" and roll < 0.2:
            char = rnd.choice([".", ""])
        elif clean.isascii() and clean.isalnum() and roll < 0.05:
            char = _FULL_WIDTH[clean]
        out.append(char)
        column = 0 if char == "\n" else column + 1
        if "\u4e00" <= char <= "\u9fff" and rnd.random() < 0.3:
            out.append(" ")
        if char.isdigit() and rnd.random() < 0.08:
            out.append(" ")
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if column > 30 and "\u4e00" <= char <= "\u9fff" and "\u4e00" <= nxt <= "\u9fff" and rnd.random() < 0.05:
            out.append("\n")  # a wrapped paragraph line
            column = 0
    return "".join(out)


@pytest.mark.parametrize("seed", range(40))
def test_noisy_ocr_of_the_chinese_contract_reads_the_same(seed: int) -> None:
    noisy = ocr_noise(ZH_PURCHASE, seed)
    got = normalized(noisy)
    assert got == ZH_PURCHASE_EXPECTED, noisy


@pytest.mark.parametrize("seed", range(20))
def test_noisy_ocr_of_the_english_contract_reads_the_same(seed: int) -> None:
    noisy = ocr_noise(EN_SERVICES, seed)
    assert normalized(noisy) == EN_SERVICES_EXPECTED, noisy


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("签订日期：2024 年 1 月 1 日", "signing_date", {"date": "2024-01-01"}),
        ("签订日期：２０２４年１月１日", "signing_date", {"date": "2024-01-01"}),
        ("签订日期：2O24年1O月l5曰", "signing_date", {"date": "2024-10-15"}),
        ("签订日期：2024年3月5目", "signing_date", {"date": "2024-03-05"}),
        ("签订日期.2024年3月5日", "signing_date", {"date": "2024-03-05"}),
        ("签订日期2024年3月5日", "signing_date", {"date": "2024-03-05"}),
        ("签 订 日 期 ： 2024 . 03 . 05", "signing_date", {"date": "2024-03-05"}),
        ("合同总价：人民币 100, 000.00 元", "amount", {"amount": "100000.00", "currency": "CNY"}),
        ("合同总价（大写）：壹 拾 万 元 整", "amount", {"amount": "100000.00", "currency": "CNY"}),
        ("双方确认本合同项下全部设备及安装调试服务的合同总价款为人民\n币壹拾万元整。", "amount",
         {"amount": "100000.00", "currency": "CNY"}),
        ("合 同 编 号 ： ＨＴ－２０２４－００１２", "contract_number", {"number": "HT-2024-0012"}),
        ("合同编号.HT-2O24-OO12", "contract_number", {"number": "HT-2024-0012"}),
        ("本合同有效期自2024年1月1日起至2025年\n12月31日止。", "valid_period",
         {"start": "2024-01-01", "end": "2025-12-31"}),
        ("本合同有效期自２０２４年１月１日起至２０２５年１２月３１日止", "valid_period",
         {"start": "2024-01-01", "end": "2025-12-31"}),
        ("有 效 期 为 两 年 ， 自 2024 年 1 月 1 日 起", "valid_period", {"start": "2024-01-01", "end": "2025-12-31"}),
        ("甲 方 （ 买 方 ） ： 北 京 某 某 科 技 有 限 公 司", "parties", {"party_a": "北京某某科技有限公司"}),
        ("甲方北京某某科技有限公司\n乙方上海某某贸易有限公司", "parties",
         {"party_a": "北京某某科技有限公司", "party_b": "上海某某贸易有限公司"}),
        ("甲方:北京某某科技有限公司法定代表人:张三地址:北京", "parties", {"party_a": "北京某某科技有限公司"}),
        ("Contract No. : HT-2024- 0012\r\n", "contract_number", {"number": "HT-2024-0012"}),
        ("Total price:  USD  5, 000.00", "amount", {"amount": "5000.00", "currency": "USD"}),
    ],
)  # fmt: skip
def test_specific_ocr_noise(text: str, field: str, value: dict[str, str]) -> None:
    assert normalized(text)[field] == value


def test_fold_keeps_a_map_to_the_original() -> None:
    text = "甲 方 ： ＨＴ－２O２４\r\n2O24 年\u200b1 月"
    folded = fold(text)
    assert folded.text == "甲方:HT-2024\n2024年1月"
    assert len(folded.origin) == len(folded.text) + 1
    for i, char in enumerate(folded.text):
        assert folded.origin[i] < len(text)
        if char not in "0日\n":
            assert unicodedata_fold(text[folded.origin[i]]) == char
    assert folded.repaired(0, len(folded.text))  # the O→0 guesses are recorded
    start, end = folded.span(folded.text.index("HT"), folded.text.index("HT") + 7)
    assert text[start:end] == "ＨＴ－２O２４"


def unicodedata_fold(char: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", char)


def test_repaired_spans_lower_the_confidence() -> None:
    (clean,) = entities(analyze("签订日期：2024年10月15日"), "signing_date")
    (repaired,) = entities(analyze("签订日期：2O24年1O月15日"), "signing_date")
    assert repaired["normalized"] == clean["normalized"]
    assert repaired["confidence"] < clean["confidence"]


def test_offsets_index_the_original_text_for_every_contract() -> None:
    for text in [ZH_PURCHASE, EN_SERVICES, *(t for t, _ in CONTRACTS.values())]:
        for seed in (1, 2):
            noisy = ocr_noise(text, seed)
            result = analyze(noisy)
            assert result["entities"]
            assert_offsets(noisy, result)


def test_pages_are_separated_by_form_feeds() -> None:
    text = ZH_PURCHASE.replace("第三条 合同期限", "\f第三条 合同期限")
    assert normalized(text) == ZH_PURCHASE_EXPECTED


# ---- requests, languages, limits -------------------------------------------------------------------------------


def test_field_selection() -> None:
    result = analyze(ZH_PURCHASE, fields=["contract_type", "valid_period"])
    assert {e["field"] for e in result["entities"]} == {"contract_type", "valid_period"}
    assert analyze(ZH_PURCHASE, fields=["AMOUNT "])["entities"][0]["field"] == "amount"
    assert {e["field"] for e in analyze(ZH_PURCHASE, fields=[])["entities"]} == set(SUPPORTED_FIELDS)
    assert {e["field"] for e in analyze(ZH_PURCHASE, fields=None)["entities"]} == set(SUPPORTED_FIELDS)


def test_unknown_fields_raise_naming_them_and_the_supported_ones() -> None:
    with pytest.raises(UnknownField) as info:
        analyze(ZH_PURCHASE, fields=["parties", "penalty", "governing_law"])
    message = str(info.value)
    assert "penalty" in message
    assert "governing_law" in message
    assert all(field in message for field in SUPPORTED_FIELDS)
    assert info.value.unknown == ("penalty", "governing_law")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ContractRequestError):
        analyze(ZH_PURCHASE, fields="parties")  # a string, not a list
    with pytest.raises(ContractRequestError, match="unsupported language"):
        analyze(ZH_PURCHASE, language="fr")


@pytest.mark.parametrize("text", ["", "   ", "\n\f\n", "\u3000\t"])
def test_empty_text_is_a_warning_not_an_error(text: str) -> None:
    result = analyze(text)
    assert result["entities"] == []
    assert result["warnings"] == ["empty text: nothing to analyse"]
    assert result["language"] == "unknown"


def test_language_detection_and_hint() -> None:
    assert analyze(ZH_PURCHASE)["language"] == "zh"
    assert analyze(EN_SERVICES)["language"] == "en"
    assert analyze(ZH_PURCHASE + "\n" + EN_SERVICES)["language"] == "mixed"
    assert analyze(EN_SERVICES, language="zh")["language"] == "zh"  # the caller's statement is reported
    assert analyze(EN_SERVICES, language="auto")["language"] == "en"


@pytest.mark.parametrize(
    "text",
    [
        "ДОГОВОР ПОСТАВКИ № 15\nг. Москва 5 марта 2024 г.\nПоставщик: ООО «Ромашка»\nСумма договора: 100 000 рублей.",
        "عقد بيع\nالطرف الأول: شركة المثال\nالتاريخ: 2024-03-05\nقيمة العقد 5000 دولار",
        "CONTRAT DE PRESTATION DE SERVICES\nLe présent contrat est conclu entre la société Alpha et la société Beta "
        "pour une durée de deux ans à compter du 1er mars 2024. Le prix total est fixé à EUR 12.000,00.",
    ],
)
def test_foreign_language_is_unknown_with_a_warning(text: str) -> None:
    result = analyze(text)
    assert result["language"] == "unknown"
    assert any("language not recognised" in w for w in result["warnings"])
    assert_offsets(text, result)


def ten_pages() -> str:
    clause = (
        "第{n}条 其他约定\n双方应当按照本合同的约定全面履行各自的义务。任何一方未经对方书面同意，不得将本合同项下的"
        "权利义务转让给第三方。甲方应于2024年{m}月{d}日前支付货款人民币{n},000.00元，乙方收到款项后五个工作日内开具"
        "增值税专用发票。因不可抗力导致合同无法履行的，双方互不承担违约责任。\n"
    )
    pages = [ZH_PURCHASE]
    n = 5
    while sum(map(len, pages)) < 20_000:
        pages.append(clause.format(n=n, m=n % 12 + 1, d=n % 28 + 1))
        n += 1
        if n % 10 == 0:
            pages.append("\f")
    return "".join(pages)


def test_ten_pages_are_analysed_whole() -> None:
    text = ten_pages()
    result = analyze(text)
    assert normalized(text)["valid_period"] == ZH_PURCHASE_EXPECTED["valid_period"]
    assert result["entities"]
    assert_offsets(text, result)


# Catastrophic backtracking in a pattern would take minutes on these; linear matching takes well
# under a second. The timeout catches the first without timing the second (speed is a bench's job).
@pytest.mark.timeout(60)
def test_pathological_input_does_not_backtrack_catastrophically() -> None:
    rnd = random.Random(7)  # noqa: S311 - seeded test data, not a secret
    alphabet = (
        "甲方乙方：:（）()年月日号至起止 0123456789OolI,.-/¥$元万壹拾佰仟整合同编号No.有效期为两年\n\f\"'以下简称"
    )
    garbage = "".join(rnd.choice(alphabet) for _ in range(200_000))
    repeats = "1" * 50_000 + "年" * 50_000 + " " * 50_000 + "甲方：" * 10_000 + "(" * 20_000
    for text in (garbage, repeats):
        assert_offsets(text, analyze(text))


def test_params() -> None:
    assert parse_params(None).fields == SUPPORTED_FIELDS
    assert parse_params(b"").language is None
    request = parse_params(json.dumps({"entities_to_extract": ["valid_period", "contract_type"], "language": "zh"}))
    assert request.fields == ("contract_type", "valid_period")
    assert request.language == "zh"
    for bad, message in [
        (b"{nope", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"fields": []}', "unknown key"),
        (b'{"entities_to_extract": "parties"}', "list of field names"),
        (b'{"entities_to_extract": ["parties", "x"]}', "supported: contract_type"),
        (b'{"language": "de"}', "unsupported language"),
        (b"\xff\xfe", "not valid JSON"),
    ]:
        with pytest.raises(ContractRequestError, match=message):
            parse_params(bad)


# ---- the Triton model: config, warm-up file, request handling (with a stand-in for pb_utils) ---------------


def test_config_declares_what_the_lifecycle_manager_reads() -> None:
    config = read_config(MODEL_DIR)
    params = ModelParams(config)
    assert params.variant() == "rules"
    assert params.get_list("hearth.variants") == ("rules",)
    assert params.get("hearth.default_variant") == "rules"
    assert params.get_int("hearth.memory_mb.rules", 0) > 0
    assert params.get_bool("hearth.evictable", False) is True
    assert params.get("hearth.warmup") == "model_warmup"
    assert config["backend"] == "python"
    assert config.get("max_batch_size", 0) == 0
    assert config["instance_group"] == [{"kind": "KIND_CPU", "count": 1}]
    inputs = {i["name"]: i for i in config["input"]}
    assert inputs["TEXT"]["data_type"] == "TYPE_STRING"
    assert inputs["PARAMS"]["optional"] is True
    assert [o["name"] for o in config["output"]] == ["RESULT"]


def test_warmup_file_is_one_length_prefixed_utf8_contract() -> None:
    (warmup,) = read_config(MODEL_DIR)["model_warmup"]
    text_input = warmup["inputs"]["TEXT"]
    assert text_input["data_type"] == "TYPE_STRING"
    assert [int(d) for d in text_input["dims"]] == [1]
    raw = (MODEL_DIR / "warmup" / text_input["input_data_file"]).read_bytes()
    (length,) = struct.unpack_from("<I", raw)
    assert len(raw) == 4 + length  # exactly one element
    text = raw[4:].decode("utf-8")
    got = normalized(text)
    assert set(got) == set(SUPPORTED_FIELDS)  # a real contract: every field is in it


class _FakeTritonError(Exception):
    INVALID_ARG = "INVALID_ARG"
    INTERNAL = "INTERNAL"

    def __init__(self, message: str, code: str = "INTERNAL") -> None:
        super().__init__(message)
        self.text = message
        self.code = code


class _FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name = name
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _FakeResponse:
    def __init__(self, output_tensors: list[_FakeTensor] | None = None, error: _FakeTritonError | None = None) -> None:
        self.outputs = output_tensors or []
        self.error = error


@pytest.fixture(scope="module")
def triton_model() -> Any:
    """legal_doc_analyzer/1/model.py, initialised against a stand-in ``triton_python_backend_utils``."""
    fake = types.ModuleType("triton_python_backend_utils")
    fake.TritonError = _FakeTritonError  # type: ignore[attr-defined]
    fake.Tensor = _FakeTensor  # type: ignore[attr-defined]
    fake.InferenceResponse = _FakeResponse  # type: ignore[attr-defined]
    fake.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    fake.Logger = types.SimpleNamespace(log_info=lambda _m: None, log_error=lambda _m: None)  # type: ignore[attr-defined]
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = fake
    try:
        spec = importlib.util.spec_from_file_location("legal_doc_analyzer_model", MODEL_DIR / "1" / "model.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        config = json.dumps(read_config(MODEL_DIR))
        model.initialize(
            {"model_config": config, "model_version": "1", "model_instance_name": "legal_doc_analyzer_0_0"}
        )
        yield model
    finally:
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved


def _request(text: bytes | None, params: bytes | None = None) -> dict[str, _FakeTensor]:
    request = {}
    if text is not None:
        request["TEXT"] = _FakeTensor("TEXT", np.array([text], dtype=np.object_))
    if params is not None:
        request["PARAMS"] = _FakeTensor("PARAMS", np.array([params], dtype=np.object_))
    return request


def test_model_answers_json_with_model_version_and_timings(triton_model: Any) -> None:
    params = json.dumps({"entities_to_extract": ["contract_type", "valid_period"], "language": "zh"}).encode()
    (response,) = triton_model.execute([_request(ZH_PURCHASE.encode("utf-8"), params)])
    assert response.error is None
    (tensor,) = response.outputs
    assert tensor.name == "RESULT"
    result = json.loads(tensor.as_numpy()[0].decode("utf-8"))
    assert result["model"] == "legal_doc_analyzer"
    assert result["version"] == "1"
    assert set(result["timings_ms"]) == {"parse", "analyze", "total"}
    assert result["language"] == "zh"
    assert {e["field"]: e["normalized"] for e in result["entities"]} == {
        "contract_type": ZH_PURCHASE_EXPECTED["contract_type"],
        "valid_period": ZH_PURCHASE_EXPECTED["valid_period"],
    }
    (everything,) = triton_model.execute([_request(EN_SERVICES.encode("utf-8"))])
    assert len(json.loads(everything.outputs[0].as_numpy()[0])["entities"]) == 7


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request(b"text", b'{"entities_to_extract": ["penalty"]}'), "supported: contract_type, valid_period"),
        (_request(b"text", b"{not json"), "PARAMS is not valid JSON"),
        (_request(b"text", b'{"language": "klingon"}'), "unsupported language"),
        (_request(b"\xff\xfe broken"), "TEXT is not valid UTF-8"),
        (_request(None), "input TEXT is required"),
    ],
)
def test_model_reports_bad_requests_as_invalid_arg(triton_model: Any, request_: Any, message: str) -> None:
    good = _request("签订日期：2024年3月5日".encode())
    responses = triton_model.execute([request_, good])
    assert responses[0].error is not None
    assert responses[0].error.code == "INVALID_ARG"
    assert message in responses[0].error.text
    assert responses[1].error is None  # the other request of the batch is answered


# ---- layouts and documents seen in real contract sets ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parties"),
    [
        ("服务合同\n合同编号：FW/2021/706\n甲方 乙方\n武汉华晟食品有限公司 西安海纳咨询有限公司\n"
         "武汉市江汉区高新大道30号 西安市未央区科技园路114号\n法定代表人：姚欣涛 法定代表人：江宇玉\n本合同一式两份。",
         {"party_a": "武汉华晟食品有限公司", "party_b": "西安海纳咨询有限公司"}),
        ("劳动合同书\n用人单位（甲方） 劳动者（乙方）\n苏州泰和机械设备有限公司 卢德军\n"
         "苏州市吴中区建国路292号10号楼1501室 武汉市江汉区文化路33号\n本合同为固定期限劳动合同。",
         {"party_a": "苏州泰和机械设备有限公司", "party_b": "卢德军"}),
        ("本合同一式两份。\n甲方（盖章）： 乙方（盖章）：\n武汉 华晟食品有限公司  西安海纳 咨询有限公司",
         {"party_a": "武汉华晟食品有限公司", "party_b": "西安海纳咨询有限公司"}),
        ("SALES CONTRACT\nSeller Buyer\nLakeside Foods LLC Quayside Trading Limited\n57 Market Street 149 King Street",
         {"party_a": "Lakeside Foods LLC", "party_b": "Quayside Trading Limited"}),
        ("Technology License Agreement\nLicensor Licensee\n"
         "Changsha Antai Software Co., Ltd. Hangzhou Boyuan Trading Co., Ltd.\n238 Park Lane 31 Canal Street",
         {"party_a": "Changsha Antai Software Co., Ltd.", "party_b": "Hangzhou Boyuan Trading Co., Ltd."}),
        ("EMPLOYMENT AGREEMENT\nBETWEEN:\n(1) Atlas Technology Pte. Ltd., a company incorporated in Singapore (the "
         "\"Employer\"); and\n(2 ) James Adams, residing at Flat 35, Leeds (the \"Employee\").",
         {"party_a": "Atlas Technology Pte. Ltd.", "party_b": "James Adams"}),
    ],
)  # fmt: skip
def test_party_tables_and_signature_tables(text: str, parties: dict[str, str]) -> None:
    assert normalized(text)["parties"] == parties


@pytest.mark.parametrize(
    "text",
    [
        "货物销售发票\n发票号码：38255423 开票日期：2025-07-18\n购买方名称：弘毅（深圳）能源股份有限公司\n"
        "销售方名称：华晟（广州）置业有限公司\n价税合计：¥174,403.27",
        "COMMERCIAL INVOICE\nHangzhou Jincheng Marketing Co., Ltd.\nInvoice No.: INV-2020-53469 Invoice Date: 20 April "
        "2020\nBill to: Lakeside Foods LLC\nTotal amount due: USD 12,000.00",
        "南京远航建设工程有限责任公司\n南京市鼓楼区和平路309号\n催款函\n合肥永安软件有限公司：\n贵司与我司于二〇二三年八月二十五日"
        "签订的采购合同（合同编号：HT-20230825-48）约定，贵司应于货物验收合格后三十日内支付货款。截至二〇二四年三月十二日，"
        "贵司尚欠我司货款¥398,230.00。请贵司于收到本函之日起七日内付清上述款项。",
        "Harbor Marketing GmbH\n14 Victoria Avenue, Singapore\n18th November 2021\nDear Richard Thompson,\n"
        "Re: Notice of "
        "Holiday Closure\nPlease note that our offices and warehouse will be closed from 18th November 2021 to 21st "
        "November 2021 inclusive. Orders received during the closure will be processed on the next working day.",
    ],
)
def test_invoices_letters_and_reports_are_not_contracts(text: str) -> None:
    result = analyze(text)
    assert result["entities"] == []
    assert any(w.startswith("not a contract") for w in result["warnings"]), result["warnings"]


def test_a_short_snippet_is_analysed_whatever_it_is() -> None:
    assert normalized("签订日期：2024年3月5日") == {"signing_date": {"date": "2024-03-05"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The cue before the amount in English words still counts.
        ("The total rent payable for the Term is Two Million One Hundred Eighty-Nine Thousand Four Hundred "
         "Eighty-Four United States Dollars (USD 2,189,484.00).", {"amount": "2189484.00", "currency": "USD"}),
        # A share of the total is not the total; a tax note in brackets is no share.
        ("The Buyer shall pay an advance of thirty per cent (30%) of the contract price, being CNY 5,027.40.", None),
        ("剩余货款中合同总价的5%即13,630.00元作为质量保证金。", None),
        ("合同总价（含13%增值税）为人民币113,000.00元。", {"amount": "113000.00", "currency": "CNY"}),
        # Periodic amounts, targets and advance payments are not totals.
        ("The monthly service fee is RMB 1,500.00, payable monthly in arrears.", None),
        ("乙方月工资为人民币8,000元，年度技术支持服务费为¥230,900.00。", None),
        ("The Agent shall achieve sales of not less than HKD 900,000.00 in the Territory.", None),
        ("The Owner shall pay an advance payment of USD 147,175.20 against an advance payment guarantee.", None),
        ("服务费总额为人民币（大写）壹佰零柒\n万壹仟元整（小写：¥1,071,000.00）。",
         {"amount": "1071000.00", "currency": "CNY"}),
    ],
)  # fmt: skip
def test_the_total_and_what_is_not_one(text: str, expected: dict[str, str] | None) -> None:
    assert normalized(text).get("amount") == expected


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("签订日期.2025.07.13", "signing_date", {"date": "2025-07-13"}),
        ("目期.2024.0 2.12", "signing_date", {"date": "2024-02-12"}),
        ("项目期限：2024年1月1日至2024年12月31日", "valid_period", {"start": "2024-01-01", "end": "2024-12-31"}),
        ("This Agreement is made on 21 st March 2021 between A Ltd and B Ltd.", "signing_date", {"date": "2021-03-21"}),
        ("Date: 1lth March 2022", "signing_date", {"date": "2022-03-11"}),
        ("The Works shall be carried out commencing on 1 October 2 02 l and ending on 31\nMay 2022.", "valid_period",
         {"start": "2021-10-01", "end": "2022-05-31"}),
        ("The Date for Commencement is 2022-11-01 and the Date for Completion is 2023-04-30.", "valid_period",
         {"start": "2022-11-01", "end": "2023-04-30"}),
        ("计划开工目期：2024年4月1曰。\n计划竣工曰期.2025年1月31日。", "valid_period",
         {"start": "2024-04-01", "end": "2025-01-31"}),
        ("This contract is a Sales Representative Agreement.\nSALES REPRESENTATIVE AGREEMENT", "contract_type",
         {"type": "agency", "label": "SALES REPRESENTATIVE AGREEMENT"}),
    ],
)  # fmt: skip
def test_more_ocr_and_wording_variants(text: str, field: str, value: dict[str, str]) -> None:
    assert normalized(text)[field] == value


# What PP-OCR's Chinese recogniser makes of English pages: most spaces gone, tables read cell by cell.
GLUED_EN = """TENANCYAGREEMENT
ContractNo.:LA2101866
PartyA:AtlasInvestmentGmbH
Registered address:27CommerceDrive,Munich
PartyB:XiamenLianchuangTechnology Co.,Ltd.
Registered address:26KingStreet,Xiamen,China
WHEREAsTheLessoris theownerof thePremises andhasagreed tolet them to theLessee;
NOW,THEREFORE,thepartiesagreeasfollows:
2.TERM
2.1ThePremises areletfrom1February2021until31January2022(the
"Term").
3.RENT
3.1Themonthlyrent isHKD67,367.00,exclusiveofmanagementfeesand utilities,payable quarterlyin advance.
3.2Thetotal rentpayablefor theTerm isHKD808,404.00.
4.DEPOSIT
Onsigning,thesseeshallpayasecuritydepositofHKD202,101.00,tob refundedwithoutinterest.
This Agreement is made on September24,2020betweenthe parties.
"""


def test_glued_english_from_ocr() -> None:
    assert normalized(GLUED_EN) == {
        "contract_type": {"type": "lease", "label": "TENANCYAGREEMENT"},
        "valid_period": {"start": "2021-02-01", "end": "2022-01-31"},
        "parties": {"party_a": "Atlas Investment GmbH", "party_b": "Xiamen Lianchuang Technology Co., Ltd."},
        "amount": {"amount": "808404.00", "currency": "HKD"},
        "contract_number": {"number": "LA2101866"},
        "signing_date": {"date": "2020-09-24"},
    }


def test_tables_read_cell_by_cell() -> None:
    text = (
        "PURCHASE AGREEMENT\nAgreement No.:PA1901853\nPurchaser\nSupplier\nHighland Technology Limited\n"
        "Newhaven Electronics GmbH\n114ParkLane,Austin\nthis Agreement"
    )
    assert normalized(text)["parties"] == {
        "party_a": "Highland Technology Limited",
        "party_b": "Newhaven Electronics GmbH",
    }
    zh = "服务合同\n甲方（盖章）：\n乙方（盖章）：\n武汉华晟食品有限公司\n西安海纳咨询有限公司\n本合同一式两份"
    assert normalized(zh)["parties"] == {"party_a": "武汉华晟食品有限公司", "party_b": "西安海纳咨询有限公司"}


def test_chinese_look_alikes_of_party_labels() -> None:
    text = "申方：北京某某科技有限公司\n已方：上海某某贸易有限公司\n本合同一式两份，申方、乙方各执一份。"
    assert normalized(text)["parties"] == {"party_a": "北京某某科技有限公司", "party_b": "上海某某贸易有限公司"}


def test_token_soup_never_raises() -> None:
    vocabulary = [
        "甲方", "乙方：", "Party A:", "PartyB:", "Buyer", "Seller:", "(the \"Buyer\")", "（以下简称“甲方”）",
        "BETWEEN:", "(1)", "(2 )", "有限公司", "Co.,Ltd.", "GmbH", "合同编号：", "No.", "HT-2024-0012",
        "2024年2月30日", "2024.1.1", "March 5, 2024", "5th day of", "至", "to", "until", "有效期为", "两年",
        "for a term of", "two (2) years", "人民币", "壹拾万元整", "¥100,000.00", "USD", "5,000", "EUR 1.234,56",
        "总价", "定金", "30%", "of the contract price", "签订日期：", "Signed on", "\n", "\f", " ", "\t", "：",
        "（", "）", "目期", "申方", "l", "O", "PURCHASEAGREEMENT",
    ]  # fmt: skip
    rnd = random.Random(11)  # noqa: S311 - seeded test data, not a secret
    for _ in range(300):
        text = "".join(rnd.choice(vocabulary) for _ in range(rnd.randint(1, 80)))
        assert_offsets(text, analyze(text))
