"""Text for search: chunking, jieba terms, OR queries, highlights, sentences (services/gateway/documents/chunks.py)."""

from __future__ import annotations

import pytest

from services.gateway.documents import chunks
from services.gateway.documents.search import _entity_filter, _fuse, question_field
from shared.errors import BadRequest

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]


def test_chinese_is_segmented_into_words_and_their_parts() -> None:
    terms = chunks.terms("北京星河科技有限公司签订的采购合同")
    assert {"北京", "星河", "科技", "有限公司", "公司", "采购", "合同"} <= set(terms)
    assert chunks.terms("Payment DUE within 30 days") == ["payment", "due", "within", "30", "days"]
    assert chunks.terms("ＡＢＣ１２３") == ["abc123"]  # full-width folded


def test_query_terms_drop_stop_words_unless_nothing_else_is_left() -> None:
    assert chunks.query_terms("乙方的名称是什么？") == ["乙方", "名称"]
    assert chunks.query_terms("what is the term of the lease") == ["term", "lease"]
    assert chunks.query_terms("what is") == ["what", "is"]


def test_tsquery_quotes_every_term() -> None:
    assert chunks.tsquery(["合同", "o'neil", "a|b"]) == "'合同' | 'o''neil' | 'a|b'"


def test_chunks_stay_within_a_page_and_carry_their_offsets() -> None:
    pages = ["第一行\n" + "甲方应付款。" * 100, "Second page line\n\nafter a blank"]
    found = list(chunks.chunk_pages(pages, limit=120))
    assert {c.page for c in found} == {1, 2}
    for c in found:
        page = pages[c.page - 1]
        assert page[c.start : c.end] == c.text
        assert len(c.text) <= 120
    assert "".join(c.text for c in found if c.page == 1).replace("\n", "") == pages[0].replace("\n", "")
    assert [c.text for c in found if c.page == 2] == ["Second page line\n\nafter a blank"]


def test_sentences_split_at_chinese_and_english_ends() -> None:
    text = "本合同一式两份。乙方为上海远航公司；\nThe term is two years. Really?"
    parts = [text[s:e] for s, e in chunks.sentences(text)]
    assert parts == ["本合同一式两份。", "乙方为上海远航公司；", "The term is two years.", "Really?"]


def test_highlights_mark_matches_and_escape_the_rest() -> None:
    snippet = chunks.highlight("<b>甲方</b>：北京星河科技有限公司", ["星河", "公司"])
    assert snippet == "&lt;b&gt;甲方&lt;/b&gt;：北京<mark>星河</mark>科技有限<mark>公司</mark>"
    long = "x" * 300 + "目标词" + "y" * 300
    cut = chunks.highlight(long, ["目标词"], width=60)
    assert cut.startswith("…")
    assert cut.endswith("…")
    assert "<mark>目标词</mark>" in cut


def test_entity_filters_become_jsonb_containment_and_unknown_fields_are_refused() -> None:
    assert _entity_filter({}) is None
    assert _entity_filter({"contract_type": "lease"}) == '{"contract_type": [{"normalized": {"type": "lease"}}]}'
    with pytest.raises(BadRequest, match="amount"):
        _entity_filter({"amount": "5"})


def test_rank_fusion_rewards_chunks_found_both_ways() -> None:
    lexical = [{"id": 1}, {"id": 2}, {"id": 3}]
    semantic = [{"id": 3}, {"id": 4}]
    fused = _fuse(lexical, semantic)
    assert next(r["id"] for r in fused) == 3
    assert fused[0]["matched_by"] == ["text", "vector"]
    assert {r["id"] for r in fused} == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ("郑州华晟投资股份有限公司与泰和物流签订的企业借款合同总金额是多少？", "amount"),
        ("What is the total amount of the Purchase Agreement between A and B?", "amount"),
        ("两家公司之间的服务合同什么时候到期？", "valid_period"),
        ("When does the lease expire?", "valid_period"),
        ("委托代理合同是哪天签订的？", "signing_date"),
        ("On what date was the Office Lease Agreement signed?", "signing_date"),
        ("合同编号是多少？", "contract_number"),
        ("Who is the lessee?", "parties"),
        ("租金包括物业费吗？", None),
    ],
)
def test_questions_asking_for_a_contract_fact_are_recognised(question: str, field: str | None) -> None:
    assert question_field(question) == field
