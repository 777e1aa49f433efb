"""The event catalog: registration rules, stream layout, payload validation."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shared.blobstore import BlobRef
from shared.errors import InvalidInput, NotFound
from shared.events import CATALOG, DEADLETTER_TYPE, Catalog, DocumentSubmitted, Envelope, deadletter_subject
from shared.events.catalog import DEADLETTER_MAX_AGE_S, DEFAULT_MAX_AGE_S, subject_matches

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class Thing(BaseModel):
    value: int


class Other(BaseModel):
    value: str


def _ref() -> BlobRef:
    return BlobRef(bucket="hearth-blobs", key="k1", size=3, sha256="a" * 64, content_type="application/pdf")


def test_foundation_events_and_streams() -> None:
    ingest = CATALOG.get_event_type("hearth.ingest.document.v1")
    assert ingest.data_model is DocumentSubmitted
    assert ingest.stream == "HEARTH_INGEST"
    assert ingest.subject == "hearth.ingest.document.v1"

    dead = CATALOG.get_event_type(DEADLETTER_TYPE)
    assert dead.subject == "hearth.deadletter.>"
    assert dead.stream == "HEARTH_DEADLETTER"

    streams = {s.name: s for s in CATALOG.streams()}
    assert streams["HEARTH_INGEST"].subjects == ("hearth.ingest.>",)
    assert streams["HEARTH_INGEST"].max_age_s == DEFAULT_MAX_AGE_S
    assert streams["HEARTH_INGEST"].inline_limited
    assert streams["HEARTH_DEADLETTER"].subjects == ("hearth.deadletter.>",)
    assert streams["HEARTH_DEADLETTER"].max_age_s == DEADLETTER_MAX_AGE_S
    assert not streams["HEARTH_DEADLETTER"].inline_limited


@pytest.mark.parametrize(
    "subject", ["hearth.svc.ocr.extract", "hearth.infer.chinese_ocr_v3", "hearth.svc.gateway.health"]
)
def test_no_stream_captures_request_reply_subjects(subject: str) -> None:
    for spec in CATALOG.streams():
        assert not any(subject_matches(pattern, subject) for pattern in spec.subjects), spec.name


@pytest.mark.parametrize("type_", ["hearth.svc.thing.v1", "hearth.infer.result.v1"])
def test_request_reply_domains_are_refused(type_: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        Catalog().register_event(type_, Thing, "x")


def test_bad_type_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="hearth"):
        Catalog().register_event("hearth.thing.v1", Thing, "x")


def test_reregistration_is_idempotent_but_a_new_schema_is_refused() -> None:
    catalog = Catalog()
    first = catalog.register_event("hearth.shop.order_placed.v1", Thing, "An order.")
    assert catalog.register_event("hearth.shop.order_placed.v1", Thing, "An order.") == first
    with pytest.raises(ValueError, match="already registered"):
        catalog.register_event("hearth.shop.order_placed.v1", Other, "An order.")
    assert [s.name for s in catalog.streams()] == ["HEARTH_SHOP"]


def test_copy_is_independent() -> None:
    catalog = CATALOG.copy()
    catalog.register_event("hearth.copytest.thing.v1", Thing, "x")
    with pytest.raises(NotFound):
        CATALOG.get_event_type("hearth.copytest.thing.v1")
    assert catalog.get_event_type("hearth.ingest.document.v1").data_model is DocumentSubmitted


def test_validate_data_returns_the_model() -> None:
    env = Envelope.new(
        "hearth.ingest.document.v1",
        DocumentSubmitted(blob=_ref(), source_system="erp", filename="a.pdf"),
        source="erp",
    )
    data = CATALOG.validate_data(env)
    assert isinstance(data, DocumentSubmitted)
    assert data.blob == _ref()


def test_validate_data_reports_pydantic_reasons() -> None:
    env = Envelope(type="hearth.ingest.document.v1", source="erp", data={"source_system": "erp"})
    with pytest.raises(InvalidInput) as info:
        CATALOG.validate_data(env)
    assert info.value.code == "invalid-event-data"
    assert "either blob or text is required" in str(info.value.extra["errors"])


def test_validate_data_refuses_unknown_types() -> None:
    env = Envelope(type="hearth.nowhere.thing.v1", source="x")
    with pytest.raises(InvalidInput) as info:
        CATALOG.validate_data(env)
    assert info.value.code == "unknown-event-type"


def test_document_submitted_accepts_inline_text() -> None:
    doc = DocumentSubmitted(text="hello", source_system="crm", metadata={"k": 1})
    assert doc.blob is None


def test_check_subject() -> None:
    dead = CATALOG.get_event_type(DEADLETTER_TYPE)
    CATALOG.check_subject(dead, "hearth.deadletter.ingest.document.v1")
    with pytest.raises(InvalidInput):
        CATALOG.check_subject(dead, "hearth.ingest.document.v1")


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("hearth.ingest.>", "hearth.ingest.document.v1", True),
        ("hearth.ingest.>", "hearth.ingest", False),
        ("hearth.*.document.v1", "hearth.ingest.document.v1", True),
        ("hearth.*.document.v1", "hearth.ingest.other.v1", False),
        ("hearth.ingest.document.v1", "hearth.ingest.document.v1", True),
        ("hearth.ingest.document.v1", "hearth.ingest.document.v1.x", False),
        (">", "anything.at.all", True),
    ],
)
def test_subject_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


def test_deadletter_subject() -> None:
    assert deadletter_subject("hearth.ingest.document.v1") == "hearth.deadletter.ingest.document.v1"
    assert subject_matches("hearth.deadletter.>", deadletter_subject("hearth.x.y.v1"))


def test_stream_for_subject() -> None:
    assert CATALOG.stream_for_subject("hearth.ingest.>").name == "HEARTH_INGEST"
    with pytest.raises(NotFound):
        CATALOG.stream_for_subject("hearth.unknowndomain.x.v1")
    with pytest.raises(InvalidInput):
        CATALOG.stream_for_subject("hearth.*.x.v1")
