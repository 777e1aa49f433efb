"""Events of document processing (``hearth.document.*``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.events.catalog import register_event


class DocumentProcessed(BaseModel):
    """A submitted document was processed, or could not be (``hearth.document.processed.v1``)."""

    document_id: str
    status: Literal["processed", "failed"]
    source_system: str
    external_id: str | None = None
    filename: str | None = None
    run_id: str = Field(description="The workflow run that processed it.")
    workflow: str
    doc_class: str | None = Field(default=None, description="The document's class (contract, invoice, ...).")
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    page_count: int | None = None
    entities: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Field -> normalised values found, for fields of a closed vocabulary only (contract_type): "
        "values taken from the document's text (parties, numbers, amounts, dates) stay out of the stream, which "
        "is not encrypted; they are in the API.",
    )
    entity_counts: dict[str, int] = Field(default_factory=dict, description="Field -> how many entities were found.")
    warnings: list[str] = Field(default_factory=list)
    reason: dict[str, Any] | None = Field(default=None, description="Why processing failed (failed only).")


register_event(
    "hearth.document.processed.v1",
    DocumentProcessed,
    "A document was processed (class, tags, entities summary) or failed, with the reason.",
)
