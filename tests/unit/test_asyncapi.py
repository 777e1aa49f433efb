"""The AsyncAPI document: built by FastStream from the catalog and the capability registries."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shared.asyncapi import DEFAULT_OUT, asyncapi_document, main, render
from shared.capabilities import CapabilityRegistry

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class Extract(BaseModel):
    page: int


class Extracted(BaseModel):
    text: str


def _registry() -> CapabilityRegistry:
    registry = CapabilityRegistry(service="ocr")

    @registry.capability("ocr.extract")
    async def extract(inp: Extract) -> Extracted:
        """Extract the text of one page."""
        return Extracted(text=str(inp.page))

    return registry


def test_events_and_capabilities_are_documented() -> None:
    doc = asyncapi_document(registries=[_registry()])
    assert doc["asyncapi"] == "3.0.0"
    channels, operations = doc["channels"], doc["operations"]

    assert channels["hearth.ingest.document.v1"]["address"] == "hearth.ingest.document.v1"
    assert operations["hearth.ingest.document.v1"]["action"] == "send"
    event_schema = doc["components"]["schemas"]["DocumentSubmittedEvent"]
    assert event_schema["properties"]["type"]["const"] == "hearth.ingest.document.v1"
    assert event_schema["properties"]["data"]["$ref"] == "#/components/schemas/DocumentSubmitted"

    assert channels["ocr.extract"]["address"] == "hearth.svc.ocr.extract"
    assert channels["ocr.extract"]["bindings"]["nats"]["queue"] == "hearth.svc.ocr"
    assert operations["ocr.extract"]["action"] == "receive"
    assert operations["ocr.extract"]["reply"]["channel"] == {"$ref": "#/channels/ocr.extract.reply"}
    assert channels["ocr.extract.reply"]["address"] is None
    assert "Extract" in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["ExtractedReply"]["properties"]["result"]["anyOf"][0] == {
        "$ref": "#/components/schemas/Extracted"
    }
    assert "ocr.health" in operations


def test_the_document_is_deterministic() -> None:
    assert render(asyncapi_document(registries=[_registry()])) == render(asyncapi_document(registries=[_registry()]))


def test_committed_document_is_up_to_date() -> None:
    assert main(["--check", "--out", str(DEFAULT_OUT)]) == 0, "run `python -m shared.asyncapi` and commit the result"
