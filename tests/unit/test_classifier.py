"""The classes and tags learned from corrections (shared/classifier.py): the model's arithmetic."""

from __future__ import annotations

import pytest

from shared.classifier import MIN_TAG_DOCS, LabelCounts, NaiveBayes, TenantModel

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def counts(docs: int, *term_lists: list[str]) -> LabelCounts:
    terms: dict[str, int] = {}
    for words in term_lists:
        for word in set(words):
            terms[word] = terms.get(word, 0) + 1
    return LabelCounts(docs=docs, terms=terms)


def model() -> TenantModel:
    classes = NaiveBayes(
        {
            "purchase_order": counts(2, ["订单", "采购", "数量"], ["订单", "交货", "单价"]),
            "quote": counts(2, ["报价", "有效期", "单价"], ["报价", "报价单"]),
        }
    )
    tags = {
        "urgent": NaiveBayes(
            {"yes": counts(2, ["加急", "订单"], ["加急", "报价"]), "no": counts(2, ["订单"], ["报价"])}
        ),
        "rare": NaiveBayes({"yes": counts(1, ["稀有"]), "no": counts(3, ["订单"], ["报价"], ["交货"])}),
    }
    return TenantModel(classes=classes, tags=tags)


def test_the_class_with_the_matching_terms_wins_with_a_posterior() -> None:
    learned = model().classify(["订单", "交货", "数量"])
    assert learned is not None
    assert (learned.label, learned.method) == ("purchase_order", "learned")
    assert 0.6 <= learned.confidence <= 1.0
    assert model().classify(["报价", "报价单"]).label == "quote"  # type: ignore[union-attr]


def test_nothing_is_learned_before_two_classes_are_labelled_or_when_unsure() -> None:
    one = TenantModel(classes=NaiveBayes({"quote": counts(3, ["报价"])}), tags={})
    assert one.classify(["报价"]) is None
    assert model().classify(["完全无关的词"]) is None  # only the priors speak: 50/50, below the bar


def test_posteriors_sum_to_one_and_unknown_terms_do_not_count() -> None:
    nb = model().classes
    posterior = nb.posterior(["订单", "never-seen"])
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert nb.posterior(["订单"]) == pytest.approx(posterior)


def test_tags_need_their_own_evidence_and_enough_labelled_documents() -> None:
    assert model().tag(["加急", "订单"]) == ["urgent"]
    assert model().tag(["订单"]) == []
    assert MIN_TAG_DOCS == 2
    assert "rare" not in model().tag(["稀有"])  # one labelled document is not enough
