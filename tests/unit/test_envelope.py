"""The event envelope: CloudEvents attributes, type strings, JSON round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput
from shared.events.envelope import Envelope, is_event_type

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class Sample(BaseModel):
    name: str
    count: int | None = None


def test_new_fills_cloudevents_attributes() -> None:
    env = Envelope.new("hearth.ingest.document.v1", Sample(name="a"), source="hearth/test", subject="doc-1")

    assert env.specversion == "1.0"
    assert env.datacontenttype == "application/json"
    assert env.tenant == "default"
    assert env.time.tzinfo is UTC
    assert len(env.id) == 36
    assert env.data == {"name": "a", "count": None}
    assert env.subject == "doc-1"


def test_json_round_trip_and_optional_attributes_absent() -> None:
    env = Envelope.new("hearth.ingest.document.v1", Sample(name="a"), source="hearth/test", tenant="acme")
    raw = json.loads(env.to_json())

    assert Envelope.from_json(env.to_json()) == env
    assert "subject" not in raw
    assert "correlationid" not in raw
    assert "dataschema" not in raw
    assert raw["time"].endswith("Z")
    assert raw["data"] == {"name": "a", "count": None}  # None inside data is kept


@pytest.mark.parametrize(
    "type_",
    ["hearth.ingest.document.v1", "hearth.qc_vision.defect_found.v12", "hearth.a.b.c.v1"],
)
def test_valid_type_strings(type_: str) -> None:
    assert is_event_type(type_)
    Envelope(type=type_, source="hearth/test")


@pytest.mark.parametrize(
    "type_",
    [
        "hearth.ingest.v1",
        "hearth.ingest.document",
        "Hearth.ingest.document.v1",
        "hearth.Ingest.document.v1",
        "other.ingest.document.v1",
        "hearth.ingest..v1",
        "hearth.ingest.document.v1.",
        "hearth.1ngest.document.v1",
        "hearth.ingest.document.vx",
    ],
)
def test_invalid_type_strings(type_: str) -> None:
    assert not is_event_type(type_)
    with pytest.raises(ValidationError):
        Envelope(type=type_, source="hearth/test")


def test_time_must_be_aware_and_is_normalised_to_utc() -> None:
    with pytest.raises(ValidationError):
        Envelope(type="hearth.a.b.v1", source="s", time=datetime(2024, 1, 1))
    local = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    env = Envelope(type="hearth.a.b.v1", source="s", time=local)
    assert env.time == local
    assert env.time.tzinfo is UTC


def test_unknown_extension_attributes_are_ignored() -> None:
    raw = b'{"specversion":"1.0","id":"1","source":"erp","type":"hearth.a.b.v1","tenant":"t1","data":{},"myext":"x"}'
    env = Envelope.from_json(raw)
    assert env.tenant == "t1"
    assert "myext" not in env.model_dump()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"type":"hearth.a.b.v1"}',
        b'{"specversion":"0.3","source":"s","type":"hearth.a.b.v1"}',
        b'{"source":"s","type":"hearth.a.b.v1","tenant":"bad tenant"}',
        b'{"source":"s","type":"hearth.a.b.v1","dataschema":"not a uri"}',
        b'{"source":"s","type":"hearth.a.b.v1","data":[1]}',
    ],
)
def test_from_json_refuses_malformed_envelopes_with_reasons(raw: bytes) -> None:
    with pytest.raises(InvalidInput) as info:
        Envelope.from_json(raw)
    assert info.value.code == "invalid-envelope"
    assert info.value.extra["errors"]
    assert {"loc", "msg", "type"} <= set(info.value.extra["errors"][0])


def test_envelope_is_immutable() -> None:
    env = Envelope(type="hearth.a.b.v1", source="s")
    with pytest.raises(ValidationError):
        env.tenant = "other"  # type: ignore[misc]
