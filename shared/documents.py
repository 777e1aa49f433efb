"""Messages of document intelligence: what the OCR and NLP capabilities take and return.

The seed's ``document_processing`` workflow runs ``ocr_extraction`` (``ocr.extract`` on
``hearth-ocr``) then ``nlp_analysis`` (``nlp.analyze`` on ``hearth-nlp``). The steps name no
inputs: the OCR step reads the run's document (``StepContext.document``), the NLP step the OCR
step's output (``StepContext.previous``). Both also take explicit inputs, for other workflows and
for direct NATS calls (``hearth.svc.ocr.extract``, ``hearth.svc.nlp.analyze``).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.blobstore import BlobRef
from shared.workflow import StepContext

CONTRACT_FIELDS: Final = ("contract_type", "valid_period", "parties", "amount", "contract_number", "signing_date")
"""Entities ``legal_doc_analyzer`` extracts (its own copy is checked against this by a unit test)."""

PAGE_BREAK: Final = "\f"
"""Pages of a document's text are joined with a form feed; lines with a newline."""

OutputFormat = Literal["json", "text", "markdown"]
PageSource = Literal["text_layer", "ocr", "inline"]


class DocumentSource(BaseModel):
    """A document to read: a blob (uploads, ingest events) or inline text.

    Accepts what REST uploads put in a run's ``input.document`` and the data of
    ``hearth.ingest.document.v1`` alike; other keys are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    blob: BlobRef | None = None
    text: str | None = None
    filename: str | None = None
    content_type: str | None = None


class ExtractText(BaseModel):
    """``ocr_extraction`` step / ``ocr.extract``: the text of a PDF or image, page by page."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(default="chinese_ocr_v3", description="The OCR model of the Triton repository.")
    output_format: OutputFormat = Field(
        default="json", description="json: pages, lines, boxes; text: plain text; markdown: headings and paragraphs."
    )
    document: DocumentSource | None = Field(default=None, description="What to read; the run's document when omitted.")
    dpi: int | None = Field(default=None, ge=50, le=600, description="Rasterising DPI for scanned PDF pages.")
    max_pages: int = Field(default=1000, ge=1, le=10000, description="Pages read at most; later ones are reported.")
    concurrency: int = Field(default=2, ge=1, le=32, description="Pages OCR'd at the same time.")
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0, description="Lines less certain are dropped.")
    context: StepContext | None = None


class Line(BaseModel):
    """One text box of a page: text, box (page units, clockwise from top-left), confidence, order.

    Boxes side by side (table cells, a gap in a line) share a ``row``; the page's text has one line
    per row, its boxes joined by a space.
    """

    text: str
    box: list[list[float]]
    confidence: float
    order: int
    row: int = 0


class Page(BaseModel):
    number: int = Field(description="1-based page number.")
    source: PageSource
    width: float
    height: float
    text: str
    lines: list[Line] = Field(default_factory=list)
    rotation: int = Field(default=0, description="Degrees the page was turned before reading (0, 90, 180, 270).")
    skew: float = Field(default=0.0, description="Estimated skew of the text lines, degrees.")
    confidence: float | None = Field(default=None, description="Mean line confidence (OCR pages).")
    warnings: list[str] = Field(default_factory=list)


class ExtractedDocument(BaseModel):
    """The whole result, kept in the blob store (``TextExtracted.result``)."""

    pages: list[Page]
    text: str
    markdown: str | None = None
    model: str | None = None
    model_version: str | None = None
    warnings: list[str] = Field(default_factory=list)


class TextExtracted(BaseModel):
    """What ``ocr.extract`` returns: a summary inline, everything in ``result`` (a blob).

    ``content`` is the document in the requested format (json: the pages' text; the lines and
    boxes are in the blob) cut at ``INLINE_TEXT_LIMIT`` characters so workflow histories stay small.
    """

    model_config = ConfigDict(protected_namespaces=())

    format: OutputFormat
    result: BlobRef = Field(description="The ExtractedDocument as JSON.")
    content: str
    content_truncated: bool = False
    page_count: int
    pages_read: int
    sources: dict[str, int] = Field(description="Pages per source: text_layer, ocr, inline.")
    chars: int
    confidence: float | None = None
    model: str | None = None
    model_version: str | None = None
    filename: str | None = None
    content_type: str | None = None
    warnings: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)


INLINE_TEXT_LIMIT: Final = 32_000


class AnalyzeText(BaseModel):
    """``nlp_analysis`` step / ``nlp.analyze``: entities, class and tags of a document's text."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(default="legal_doc_analyzer", description="The entity model of the Triton repository.")
    entities_to_extract: list[str] | None = Field(default=None, description="Fields to extract; all when omitted.")
    text: str | None = Field(default=None, description="The text; the previous step's result when omitted.")
    source: BlobRef | None = Field(default=None, description="An ExtractedDocument blob (an OCR step's `result`).")
    language: Literal["zh", "en"] | None = None
    context: StepContext | None = None

    @field_validator("entities_to_extract")
    @classmethod
    def _known_fields(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [name for name in value if name not in CONTRACT_FIELDS]
        if unknown:
            raise ValueError(f"unknown entities {unknown}; supported: {', '.join(CONTRACT_FIELDS)}")
        if not value:
            raise ValueError(f"name at least one entity, or omit the list for all: {', '.join(CONTRACT_FIELDS)}")
        return list(dict.fromkeys(value))


class Span(BaseModel):
    """Where a value was read: page (1-based) and character offsets in that page's text."""

    page: int
    start: int
    end: int


class Entity(BaseModel):
    field: str
    value: str = Field(description="The text as it appears in the document.")
    normalized: dict[str, Any]
    confidence: float
    span: Span | None = None


class Classification(BaseModel):
    label: str
    confidence: float
    method: Literal["rules", "learned", "user"] = Field(
        default="rules", description="rules; learned from the tenant's corrections; user: a person set it."
    )


class TextAnalyzed(BaseModel):
    """What ``nlp.analyze`` returns."""

    model_config = ConfigDict(protected_namespaces=())

    language: str
    entities: dict[str, list[Entity]] = Field(description="By field; a field found nowhere has an empty list.")
    classification: Classification
    tags: list[str] = Field(default_factory=list)
    model: str
    model_version: str | None = None
    warnings: list[str] = Field(default_factory=list)
