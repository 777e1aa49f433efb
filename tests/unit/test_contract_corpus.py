"""The generated contract corpus (tests/data/contracts.py) and its scoring (tests/data/docmetrics.py)."""

from __future__ import annotations

import json
import random
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from tests.data import contracts as corpus
from tests.data.contracts import (
    CLASSES,
    CONTRACT_TYPES,
    DEFAULT_COUNT,
    DEFAULT_SEED,
    KINDS,
    LANGUAGES,
    LAYOUTS,
    LONG_PAGES,
    MIN_PT,
    PAGE_W,
    TITLES,
    Built,
    Manifest,
    Page,
    Plan,
    Registry,
    amount_surfaces,
    build_document,
    date_surfaces,
    fmt_amount,
    fmt_date,
    generate_corpus,
    load_manifest,
    plan_corpus,
    term_end,
    text_width,
    wrap,
    zh_upper_amount,
)
from tests.data.docmetrics import (
    FIELDS,
    MICRO,
    classification_accuracy,
    entity_scores,
    format_table,
    recall_at_k,
    truth_entities,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]


def folded(text: str) -> str:
    """NFKC without whitespace: how page text is compared (lines wrap anywhere)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace())


@dataclass(frozen=True)
class Quick:
    out: Path
    manifest: Manifest
    seconds: float


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Quick:
    out = tmp_path_factory.mktemp("quick")
    started = time.perf_counter()
    manifest = generate_corpus(out, quick=True)
    return Quick(out, manifest, time.perf_counter() - started)


@dataclass(frozen=True)
class Laid:
    plan: Plan
    built: Built
    pages: list[Page]
    style: corpus.Style

    @property
    def text(self) -> str:
        return folded("".join(page.text for page in self.pages))


@pytest.fixture(scope="module")
def laid_out() -> list[Laid]:
    """The default corpus (and the long document), written and laid out but not rendered."""
    registry = Registry()
    docs = []
    for index, plan in enumerate(plan_corpus(DEFAULT_SEED, DEFAULT_COUNT, long=True)):
        rng = random.Random(f"{DEFAULT_SEED}:{index}")  # noqa: S311 - the generator's own seeding
        built, style, pages = build_document(plan, rng, registry)
        docs.append(Laid(plan, built, pages, style))
    return docs


def _contracts(docs: list[Laid]) -> list[Laid]:
    return [d for d in docs if d.plan.cls == "contract"]


# -- the quick corpus, rendered -----------------------------------------------------------------


def test_quick_corpus_covers_everything(quick: Quick) -> None:
    # How long --quick takes is not a pass/fail here (no timed assertions in tests): a busy
    # 2-core box took 31 s for what an idle one does in 10.
    docs = quick.manifest["documents"]
    assert 10 <= len(docs) <= 14
    assert {d["class"] for d in docs} == set(CLASSES)
    assert {d["language"] for d in docs} == set(LANGUAGES)
    files = [f for d in docs for f in d["files"]]
    assert {f["kind"] for f in files} == set(KINDS)
    assert {f["clean"] for f in files if f["kind"] != "pdf_text"} == {True, False}
    rotations = {f["rotation"] for f in files}
    assert {90, 180} & rotations, rotations
    assert all(0.5 <= abs(f["skew"]) <= 3.0 for f in files if not f["clean"])
    assert all(f["clean"] and f["rotation"] == 0 and f["skew"] == 0 for f in files if f["kind"] == "pdf_text")


def test_manifest_on_disk_is_what_was_returned(quick: Quick) -> None:
    assert load_manifest(quick.out) == json.loads(json.dumps(quick.manifest))
    for doc in quick.manifest["documents"]:
        assert set(doc) >= {"id", "class", "language", "tags", "fields", "pages", "files", "questions"}
        assert doc["tags"]
        assert all(isinstance(t, str) for t in doc["tags"])
        for file in doc["files"]:
            assert (quick.out / file["path"]).is_file()
            assert set(file) >= {"path", "kind", "clean", "rotation", "skew"}
    ids = [d["id"] for d in quick.manifest["documents"]]
    assert len(set(ids)) == len(ids)


def test_pdf_text_layer_reads_back_as_the_truth(quick: Quick) -> None:
    checked = 0
    for doc in quick.manifest["documents"]:
        for file in doc["files"]:
            if file["kind"] != "pdf_text":
                continue
            pdf = pdfium.PdfDocument(quick.out / file["path"])
            try:
                assert len(pdf) == len(doc["pages"])
                for index, truth in enumerate(doc["pages"]):
                    text = pdf[index].get_textpage().get_text_range()
                    assert folded(text) == folded(truth), f"{file['path']} page {index + 1}"
                    checked += 1
            finally:
                pdf.close()
    assert checked >= 5


def test_scans_have_no_text_layer_and_the_right_page_count(quick: Quick) -> None:
    kinds = Counter()
    for doc in quick.manifest["documents"]:
        for file in doc["files"]:
            path = quick.out / file["path"]
            if file["kind"] == "pdf_scan":
                pdf = pdfium.PdfDocument(path)
                try:
                    assert len(pdf) == len(doc["pages"])
                    assert all(not pdf[i].get_textpage().get_text_range().strip() for i in range(len(pdf)))
                finally:
                    pdf.close()
            elif file["kind"] == "tiff":
                with Image.open(path) as image:
                    assert image.n_frames == len(doc["pages"]) == len(file["pages"])
            elif file["kind"] in ("png", "jpeg"):
                assert len(file["pages"]) == 1
                with Image.open(path) as image:
                    assert image.format == ("PNG" if file["kind"] == "png" else "JPEG")
                    width, height = sorted(image.size)
                    dpi = file["dpi"]
                    assert (width, height) == (round(PAGE_W * dpi / 72), round(corpus.PAGE_H * dpi / 72))
                    assert (
                        image.size[0] > image.size[1]
                        if file["rotation"] in (90, 270)
                        else image.size[0] < image.size[1]
                    )
            kinds[file["kind"]] += 1
    assert set(kinds) == set(KINDS)
    # every page of a document is in some file
    for doc in quick.manifest["documents"]:
        covered = {p for f in doc["files"] for p in f["pages"]}
        assert covered == set(range(len(doc["pages"])))


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = generate_corpus(tmp_path / "a", count=5, quick=True)
    second = generate_corpus(tmp_path / "b", count=5, quick=True)
    assert first == second
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    kinds = {f["kind"] for d in first["documents"] for f in d["files"]}
    assert {"pdf_text", "pdf_scan"} <= kinds
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = generate_corpus(tmp_path / "c", seed=DEFAULT_SEED + 1, count=1, quick=True)
    assert other["documents"][0]["pages"] != first["documents"][0]["pages"]


# -- ground truth, over the default corpus laid out ----------------------------------------------


def test_default_plan_covers_types_layouts_and_absences(laid_out: list[Laid]) -> None:
    contracts = _contracts(laid_out)
    assert Counter(d.plan.cls for d in laid_out)["contract"] >= 0.6 * DEFAULT_COUNT
    assert {d.plan.ctype for d in contracts} == set(CONTRACT_TYPES)
    for lang in LANGUAGES:
        assert {d.plan.layout for d in contracts if d.plan.lang == lang} == set(LAYOUTS)
        assert {d.plan.ctype for d in contracts if d.plan.lang == lang} == set(CONTRACT_TYPES)
    for name in ("valid_period", "amount", "contract_number", "signing_date"):
        missing = [d for d in contracts if name not in d.built.fields]
        assert 0 < len(missing) < len(contracts) / 2, name
    assert all({"contract_type", "parties"} <= set(d.built.fields) for d in contracts)
    assert all(not d.built.fields for d in laid_out if d.plan.cls != "contract")
    short = [len(d.pages) for d in contracts if not d.plan.long]
    assert min(short) >= 1
    assert max(short) <= 4
    assert Counter(short)[1] < len(short) / 2
    assert next(len(d.pages) for d in laid_out if d.plan.long) >= LONG_PAGES


def test_field_values_are_printed_on_the_pages(laid_out: list[Laid]) -> None:
    for doc in _contracts(laid_out):
        text, fields, lang = doc.text, doc.built.fields, doc.plan.lang
        where = f"{doc.plan.ctype}/{lang}/{doc.plan.layout}"
        for name, surfaces in doc.built.surface.items():
            for surface in surfaces:
                assert folded(surface) in text, f"{where}: {name} {surface!r}"
        assert doc.built.title.casefold() in {t.casefold() for t in TITLES[fields["contract_type"]["type"]][lang]}
        for party in fields["parties"]:
            assert folded(party["name"]) in text, where
        assert [p["role"] for p in fields["parties"]][:2] == ["party_a", "party_b"]
        if "contract_number" in fields:
            assert folded(fields["contract_number"]["number"]) in text, where
        if "signing_date" in fields:
            day = date.fromisoformat(fields["signing_date"]["date"])
            assert any(folded(s) in text for s in date_surfaces(day, lang)), where
        if "valid_period" in fields:
            start = date.fromisoformat(fields["valid_period"]["start"])
            end = date.fromisoformat(fields["valid_period"]["end"])
            assert start < end
            assert any(folded(s) in text for s in date_surfaces(start, lang)), where
            printed_end = any(folded(s) in text for s in date_surfaces(end, lang))
            # a term given as a duration prints no end date: the end is start + duration - 1 day
            assert printed_end or len(doc.built.surface["valid_period"]) == 2, where
        if "amount" in fields:
            value = Decimal(fields["amount"]["amount"])
            assert fields["amount"]["amount"] == f"{value:.2f}"
            assert fields["amount"]["currency"] in corpus.CURRENCIES
            assert any(folded(s) in text for s in amount_surfaces(value)), where


def test_distractors_are_printed_and_are_not_the_truth(laid_out: list[Laid]) -> None:
    with_amount_distractors = 0
    for doc in _contracts(laid_out):
        for distractor in doc.built.distractors:
            assert folded(distractor["text"]) in doc.text, distractor
        amounts = [d for d in doc.built.distractors if d["field"] == "amount"]
        if amounts and "amount" in doc.built.fields:
            with_amount_distractors += 1
            total = fmt_amount(
                Decimal(doc.built.fields["amount"]["amount"]), doc.built.fields["amount"]["currency"], "yen"
            )
            assert all(folded(d["text"]) != folded(total) for d in amounts)
    assert with_amount_distractors >= 10
    kinds = {d["kind"] for doc in laid_out for d in doc.built.distractors}
    assert {"deposit", "penalty", "unit_price", "advance_payment"} <= kinds


def test_questions_have_exactly_one_relevant_document(laid_out: list[Laid]) -> None:
    contracts = _contracts(laid_out)
    for doc in contracts:
        assert 1 <= len(doc.built.questions) <= 2
        keys = [p["name"] for p in doc.built.fields["parties"]]
        keys += [doc.built.fields.get("contract_number", {}).get("number", ""), doc.built.extra.get("premises", "")]
        for question, answer, field in doc.built.questions:
            named = [k for k in keys if k and folded(k) in folded(question)]
            assert named, question
            relevant = [d for d in laid_out if all(folded(k) in d.text for k in named)]
            assert relevant == [doc], question
            if field == "valid_period" and len(doc.built.surface["valid_period"]) == 2:
                continue  # a term given as a duration: its end date is derived, not printed
            assert folded(answer) in doc.text, (question, answer)
    names = [folded(p["name"]) for d in contracts for p in d.built.fields["parties"]]
    assert len(names) == len(set(names))


def test_layout_keeps_text_readable_and_inside_the_page(laid_out: list[Laid]) -> None:
    for doc in laid_out:
        family = doc.style.family
        for page in doc.pages:
            assert page.lines
            for run in page.runs:
                assert run.size >= MIN_PT
                assert run.x >= 0, run
                assert run.x + text_width(run.text, family, run.size) <= PAGE_W - 30, run
            assert "\n".join(page.lines) == page.text
        for ch in {c for page in doc.pages for c in page.text}:
            assert ord(ch) in corpus.font_charset(family) or ch.isspace(), ch


def test_wrap_breaks_words_whole_and_cjk_anywhere() -> None:
    english = "The Supplier warrants that the Goods are new and free from defects in design and workmanship."
    lines = wrap(english, 200, "sans", 12)
    assert len(lines) > 1
    assert " ".join(lines) == english
    assert all(text_width(line, "sans", 12) <= 200 for line in lines)
    chinese = (
        "甲方应于收到乙方开具的合法有效发票后三十日内支付合同总价款¥100,000.00，"
        "逾期付款的，每逾期一日按万分之五支付违约金。"
    )
    lines = wrap(chinese, 150, "serif", 12)
    assert "".join(lines) == chinese
    assert any("¥100,000.00" in line for line in lines)  # numbers are not split
    assert not any(line.startswith(("，", "。")) for line in lines)


def test_formats_of_dates_and_amounts() -> None:
    day = date(2024, 1, 1)
    assert fmt_date(day, "zh", "hanzi") == "二〇二四年一月一日"
    assert fmt_date(date(2024, 12, 31), "zh", "hanzi") == "二〇二四年十二月三十一日"
    assert fmt_date(day, "zh", "dot") == "2024.01.01"
    assert fmt_date(day, "en", "mdy") == "January 1, 2024"
    assert fmt_date(date(2024, 3, 1), "en", "dmy") == "1 March 2024"
    assert term_end(day, 24) == date(2025, 12, 31)
    assert term_end(date(2024, 3, 15), 12) == date(2025, 3, 14)
    assert zh_upper_amount(Decimal("100000")) == "壹拾万元整"
    assert zh_upper_amount(Decimal("1050000")) == "壹佰零伍万元整"
    assert zh_upper_amount(Decimal("10005.50")) == "壹万零伍元伍角"
    assert zh_upper_amount(Decimal("1291819.39")) == "壹佰贰拾玖万壹仟捌佰壹拾玖元叁角玖分"
    assert zh_upper_amount(Decimal("3000.07")) == "叁仟元零柒分"
    assert fmt_amount(Decimal("100000"), "CNY", "upper") == "人民币壹拾万元整（¥100,000.00）"
    assert fmt_amount(Decimal("1000000"), "CNY", "wan") == "人民币100万元"
    assert fmt_amount(Decimal("5000"), "USD", "usd_short") == "US$5,000"
    assert fmt_amount(Decimal("5000"), "USD", "usd") == "USD 5,000.00"


# -- scoring ------------------------------------------------------------------------------------

TRUTH = {
    "doc-1": {
        "contract_type": {"type": "purchase"},
        "valid_period": {"start": "2024-01-01", "end": "2025-12-31"},
        "parties": [
            {"role": "party_a", "name": "Acme Industrial Co., Ltd."},
            {"role": "party_b", "name": "华信（北京）科技有限公司"},
        ],
        "amount": {"amount": "100000.00", "currency": "CNY"},
        "contract_number": {"number": "HT-2024-0012"},
        "signing_date": {"date": "2023-12-20"},
    },
    "doc-2": {"contract_type": {"type": "nda"}, "parties": [{"role": "party_a", "name": "Northwind Components Ltd."}]},
}


def _perfect() -> dict[str, list[dict[str, object]]]:
    return {doc: truth_entities(fields) for doc, fields in TRUTH.items()}


def test_scores_perfect_predictions() -> None:
    scores = entity_scores(_perfect(), TRUTH)
    assert set(scores) == {*FIELDS, MICRO}
    assert all(s["f1"] == 1.0 and s["fp"] == 0 and s["fn"] == 0 for s in scores.values())
    assert scores["parties"]["tp"] == 3
    assert scores[MICRO]["tp"] == 9


def test_scores_missing_extra_and_wrong_values() -> None:
    predicted = _perfect()
    predicted["doc-1"] = [e for e in predicted["doc-1"] if e["field"] != "amount"]  # missing
    predicted["doc-2"].append({"field": "amount", "normalized": {"amount": "5000", "currency": "USD"}})  # extra
    predicted["doc-1"] = [
        {"field": "signing_date", "normalized": {"date": "2023-12-21"}} if e["field"] == "signing_date" else e
        for e in predicted["doc-1"]
    ]  # wrong
    scores = entity_scores(predicted, TRUTH)
    assert scores["amount"] == {"tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert (scores["signing_date"]["tp"], scores["signing_date"]["fp"], scores["signing_date"]["fn"]) == (0, 1, 1)
    assert scores["contract_type"]["f1"] == 1.0
    assert (scores[MICRO]["tp"], scores[MICRO]["fp"], scores[MICRO]["fn"]) == (7, 2, 2)

    only_missing = entity_scores({"doc-1": []}, {"doc-1": {"amount": TRUTH["doc-1"]["amount"]}}, fields=["amount"])
    assert (only_missing["amount"]["precision"], only_missing["amount"]["recall"]) == (1.0, 0.0)
    duplicate = _perfect()
    duplicate["doc-2"].append({"field": "contract_type", "normalized": {"type": "nda"}})
    assert entity_scores(duplicate, TRUTH)["contract_type"]["fp"] == 1
    unknown_doc = entity_scores({"doc-9": [{"field": "amount", "normalized": {"amount": "1", "currency": "CNY"}}]}, {})
    assert unknown_doc["amount"]["fp"] == 1


def test_scores_normalise_names_numbers_and_amounts() -> None:
    predicted = {
        "doc-1": [
            {"field": "contract_type", "normalized": {"type": "Purchase"}, "value": "采购合同", "confidence": 0.9},
            {"field": "valid_period", "normalized": {"start": "2024-01-01", "end": "2025-12-31"}, "spans": [[1, 2]]},
            # one entity for both parties, in the other order, with full-width brackets and odd spacing
            {
                "field": "parties",
                "normalized": [
                    {"role": "party_b", "name": "华信(北京)科技有限公司", "label": "乙方"},
                    {"role": "party_a", "name": "ACME  Industrial Co.,Ltd."},
                ],
            },
            {"field": "amount", "normalized": {"amount": "100000", "currency": "cny"}},
            {"field": "contract_number", "normalized": {"number": " ht-2024-0012 "}},
            {"field": "signing_date", "normalized": {"date": "2023-12-20"}},
        ],
        "doc-2": [
            {"field": "contract_type", "normalized": {"type": "nda"}},
            {"field": "parties", "normalized": {"role": "party_a", "name": "Northwind Components Ltd."}},
        ],
    }
    scores = entity_scores(predicted, TRUTH)
    assert all(s["f1"] == 1.0 for s in scores.values()), format_table(scores)

    # hyphens are part of a number, roles are part of a party, dates must be real dates
    wrong = {
        "doc-1": [
            {"field": "contract_number", "normalized": {"number": "HT20240012"}},
            {"field": "parties", "normalized": [{"role": "party_b", "name": "Acme Industrial Co., Ltd."}]},
            {"field": "signing_date", "normalized": {"date": "20/12/2023"}},
            {"field": "amount", "normalized": {"amount": "100000.00", "currency": "USD"}},
        ]
    }
    scores = entity_scores(wrong, {"doc-1": TRUTH["doc-1"]})
    for name in ("contract_number", "parties", "signing_date", "amount"):
        assert (scores[name]["tp"], scores[name]["fp"]) == (0, 1), name


def test_scores_accept_truth_as_entities_and_the_corpus_scores_itself(laid_out: list[Laid]) -> None:
    as_lists = {doc: truth_entities(fields) for doc, fields in TRUTH.items()}
    assert entity_scores(_perfect(), as_lists) == entity_scores(_perfect(), TRUTH)
    truth = {f"doc-{i}": d.built.fields for i, d in enumerate(laid_out)}
    predicted = {doc: truth_entities(fields) for doc, fields in truth.items()}
    scores = entity_scores(predicted, truth)
    assert scores[MICRO]["f1"] == 1.0
    assert scores[MICRO]["tp"] > 200
    assert entity_scores({}, truth)[MICRO]["recall"] == 0.0


def test_classification_accuracy() -> None:
    truth = {"a": "contract", "b": "invoice", "c": "letter", "d": "report"}
    assert classification_accuracy(truth, truth) == 1.0
    assert classification_accuracy({"a": "contract", "b": "contract", "c": "letter"}, truth) == 0.5
    assert classification_accuracy({}, {}) == 1.0


def test_recall_at_k() -> None:
    ranked = {"q1": ["d3", "d1", "d9"], "q2": ["d5", "d6", "d7", "d8", "d9", "d2"], "q3": []}
    relevant = {"q1": ["d1"], "q2": ["d2"], "q3": ["d4"]}
    assert recall_at_k(ranked, relevant, k=5) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, k=6) == pytest.approx(2 / 3)
    assert recall_at_k([["d1", "d2"], ["d3"]], [{"d1", "d2"}, ["d4"]], k=1) == pytest.approx(0.25)
    assert recall_at_k({}, {"q": ["d1"]}) == 0.0
    with pytest.raises(ValueError, match="one ranking per question"):
        recall_at_k([["d1"]], [["d1"], ["d2"]])


def test_format_table_aligns_columns() -> None:
    table = format_table(
        entity_scores(_perfect(), TRUTH), ["tp", "fp", "fn", "precision", "recall", "f1"], title="field"
    )
    lines = table.splitlines()
    assert lines[0].split() == ["field", "tp", "fp", "fn", "precision", "recall", "f1"]
    assert len(lines) == 2 + len(FIELDS) + 1
    assert any(line.startswith("parties ") and line.endswith("1.000") for line in lines)
    assert len({len(line) for line in lines[1:]}) == 1  # every row as wide as the rule


def test_cli_writes_files_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus.main(["--out", str(tmp_path), "--count", "2", "--seed", "7"])
    manifest = load_manifest(tmp_path / "manifest.json")
    assert manifest["seed"] == 7
    assert len(manifest["documents"]) == 2
    assert all((tmp_path / f["path"]).is_file() for d in manifest["documents"] for f in d["files"])
    assert "2 documents" in capsys.readouterr().out
