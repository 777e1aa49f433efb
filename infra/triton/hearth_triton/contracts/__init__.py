"""Contract entity extraction from noisy OCR text, Chinese and English (the ``legal_doc_analyzer`` model).

Rules, not a trained model: OCR noise folding with an offset map (:mod:`.normalize_text`), dates
(:mod:`.dates`), amounts (:mod:`.amounts`), parties (:mod:`.parties`, jieba for word boundaries),
contract type gazetteer (:mod:`.kinds`), contract number (:mod:`.identifiers`), validity period
(:mod:`.periods`), signing date (:mod:`.signing`). Pure Python (stdlib + jieba), so it runs in the
services' venv and in Triton's. Entry point: :func:`analyze`; contract and limits in
``infra/triton/model_repository/legal_doc_analyzer/README.md``.
"""

from .extract import analyze
from .fields import SUPPORTED_FIELDS, ContractRequestError, UnknownField, resolve_fields, resolve_language
from .request import parse_params
from .segment import tokenizer

__all__ = [
    "SUPPORTED_FIELDS",
    "ContractRequestError",
    "UnknownField",
    "analyze",
    "parse_params",
    "resolve_fields",
    "resolve_language",
    "warm_up",
]


def warm_up() -> None:
    """Load jieba's dictionary and compile every pattern now (about 1 s), not on the first request."""
    tokenizer()
    analyze("甲方：北京某某科技有限公司\n乙方：张三\nParty B: ACME Ltd. 签订日期：2024年1月1日 合同金额：¥1.00")
