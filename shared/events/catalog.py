"""The event catalog: every event type Hearth publishes, its payload model and its stream.

Rules the catalog enforces:

* the NATS subject of an event is its type string, ``hearth.<domain>.<event>.v<N>``;
* one JetStream stream per domain, ``HEARTH_<DOMAIN>`` capturing ``hearth.<domain>.>``, plus
  ``HEARTH_DEADLETTER`` capturing ``hearth.deadletter.>``;
* ``hearth.svc.>`` and ``hearth.infer.>`` are request/reply subjects and are never captured by a
  stream (a stream would answer every request with a PubAck), so those domains are refused.

A later feature adds its events with one call in its own module::

    register_event("hearth.ocr.text_extracted.v1", TextExtracted, "Text was extracted from a document.")
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.blobstore import BlobRef
from shared.errors import InvalidInput, NotFound
from shared.events.envelope import Envelope, is_event_type, validation_reasons

REQUEST_REPLY_DOMAINS: Final = frozenset({"svc", "infer"})
"""Domains whose subjects are request/reply endpoints: never captured by a stream."""

DEADLETTER_DOMAIN: Final = "deadletter"
DEADLETTER_TYPE: Final = "hearth.deadletter.record.v1"

DAY: Final = 24 * 3600.0
DEFAULT_MAX_AGE_S: Final = 30 * DAY
DEADLETTER_MAX_AGE_S: Final = 90 * DAY
DEFAULT_DUPLICATE_WINDOW_S: Final = 120.0

ModelClass = type[BaseModel]
"""A payload model class (an alias: ``EventType.type`` shadows the builtin in its class body)."""


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` matches one token, a final ``>`` one or more."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, part in enumerate(p_tokens):
        if part == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or part not in ("*", s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


def domain_of(subject: str) -> str:
    """The domain token of a ``hearth.<domain>.…`` subject or type."""
    tokens = subject.split(".")
    if len(tokens) < 3 or tokens[0] != "hearth" or tokens[1] in {"*", ">"}:
        raise InvalidInput(f"{subject!r} is not a hearth.<domain>.… subject")
    return tokens[1]


def stream_name(domain: str) -> str:
    """The stream capturing a domain: ``HEARTH_<DOMAIN>``."""
    return f"HEARTH_{domain.upper()}"


def deadletter_subject(subject: str) -> str:
    """Where dead letters of ``subject`` go: ``hearth.deadletter.<subject without 'hearth.'>``."""
    return f"hearth.{DEADLETTER_DOMAIN}.{subject.removeprefix('hearth.')}"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A JetStream stream the platform provisions (see ``Bus.ensure_streams``)."""

    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float = DEFAULT_MAX_AGE_S
    duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S
    inline_limited: bool = True
    """When true the stream refuses messages bigger than the inline-event limit (plus headers)."""


@dataclass(frozen=True, slots=True)
class EventType:
    """One registered event type: its payload model, its description and its stream."""

    type: str
    data_model: ModelClass
    description: str
    stream: str
    subject: str = field(default="")
    """Subject pattern the event is published on; the type string itself unless overridden."""

    def __post_init__(self) -> None:
        if not self.subject:
            object.__setattr__(self, "subject", self.type)


class Catalog:
    """A registry of event types and streams. ``CATALOG`` is the process-wide one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[str, EventType] = {}
        self._streams: dict[str, StreamSpec] = {}

    def register_stream(self, spec: StreamSpec) -> StreamSpec:
        """Declare a stream; re-declaring the same spec is a no-op, a different one an error."""
        for subject in spec.subjects:
            if domain_of(subject) in REQUEST_REPLY_DOMAINS:
                raise ValueError(f"stream {spec.name} would capture request/reply subjects ({subject})")
        with self._lock:
            existing = self._streams.get(spec.name)
            if existing is not None and existing != spec:
                raise ValueError(f"stream {spec.name} is already declared differently: {existing}")
            self._streams[spec.name] = spec
        return spec

    def register_event(
        self,
        type: str,
        data_model: ModelClass,
        description: str,
        *,
        subject: str | None = None,
    ) -> EventType:
        """Register an event type; its domain's stream is declared on first use.

        Registering the same type with the same model again is a no-op (module reloads); with a
        different model it is an error, because one subject carries one schema.
        """
        if not is_event_type(type):
            raise ValueError(f"event type {type!r} must look like hearth.<domain>.<event>.v<N>")
        domain = domain_of(type)
        if domain in REQUEST_REPLY_DOMAINS:
            raise ValueError(f"{type!r}: hearth.{domain}.> is reserved for request/reply, not events")
        subject = subject or type
        if domain_of(subject) != domain:
            raise ValueError(f"{type!r}: subject {subject!r} is outside its domain {domain!r}")
        name = stream_name(domain)
        if name not in self._streams:
            max_age = DEADLETTER_MAX_AGE_S if domain == DEADLETTER_DOMAIN else DEFAULT_MAX_AGE_S
            self.register_stream(
                StreamSpec(
                    name=name,
                    subjects=(f"hearth.{domain}.>",),
                    description=f"Hearth {domain} events",
                    max_age_s=max_age,
                    inline_limited=domain != DEADLETTER_DOMAIN,
                )
            )
        event = EventType(type=type, data_model=data_model, description=description, stream=name, subject=subject)
        with self._lock:
            existing = self._types.get(type)
            if existing is not None and existing != event:
                raise ValueError(f"event type {type} is already registered with {existing.data_model.__name__}")
            self._types[type] = event
        return event

    def unregister(self, type: str) -> None:
        """Forget an event type (tests that register throw-away types clean up with this)."""
        with self._lock:
            self._types.pop(type, None)

    def get_event_type(self, type: str) -> EventType:
        """The registered event type; ``NotFound`` if nobody registered it."""
        try:
            return self._types[type]
        except KeyError:
            raise NotFound(f"unknown event type {type!r}", code="unknown-event-type") from None

    def validate_data(self, envelope: Envelope) -> BaseModel:
        """Validate ``envelope.data`` against its type's model; ``InvalidInput`` with the reasons."""
        try:
            event = self.get_event_type(envelope.type)
        except NotFound as exc:
            raise InvalidInput(exc.detail, code="unknown-event-type") from None
        try:
            return event.data_model.model_validate(envelope.data)
        except ValidationError as exc:
            raise InvalidInput(
                f"data of {envelope.type} (event {envelope.id}) does not match {event.data_model.__name__}",
                code="invalid-event-data",
                extra={"errors": validation_reasons(exc)},
            ) from None

    def check_subject(self, event: EventType, subject: str) -> None:
        """``InvalidInput`` unless ``subject`` is one the event type may be published on."""
        if not subject_matches(event.subject, subject):
            raise InvalidInput(f"{event.type} is published on {event.subject}, not on {subject}")

    def get_stream(self, name: str) -> StreamSpec:
        """A declared stream by name; ``NotFound`` if nobody declared it."""
        try:
            return self._streams[name]
        except KeyError:
            raise NotFound(f"no stream {name!r} is declared") from None

    def stream_for_subject(self, subject: str) -> StreamSpec:
        """The declared stream capturing ``subject`` (or a filter inside one domain)."""
        name = stream_name(domain_of(subject))
        try:
            return self._streams[name]
        except KeyError:
            raise NotFound(f"no stream is declared for {subject!r} (expected {name})") from None

    def event_types(self) -> list[EventType]:
        """Every registered event type, sorted by type."""
        return sorted(self._types.values(), key=lambda e: e.type)

    def streams(self) -> list[StreamSpec]:
        """Every declared stream, sorted by name."""
        return sorted(self._streams.values(), key=lambda s: s.name)

    def copy(self) -> Catalog:
        """An independent catalog with the same entries (tests add throw-away types to it)."""
        clone = Catalog()
        clone._types = dict(self._types)
        clone._streams = dict(self._streams)
        return clone

    def extend(self, events: Iterable[EventType]) -> Self:
        """Register already-built event types (e.g. from another catalog)."""
        for event in events:
            self.register_event(event.type, event.data_model, event.description, subject=event.subject)
        return self


CATALOG: Final = Catalog()
"""The process-wide catalog every module registers into."""


def register_event(
    type: str,
    data_model: ModelClass,
    description: str,
    *,
    subject: str | None = None,
) -> EventType:
    """Register an event type in the process-wide catalog (see ``Catalog.register_event``)."""
    return CATALOG.register_event(type, data_model, description, subject=subject)


def get_event_type(type: str) -> EventType:
    """Look an event type up in the process-wide catalog; ``NotFound`` if unknown."""
    return CATALOG.get_event_type(type)


def validate_data(envelope: Envelope) -> BaseModel:
    """Validate an envelope's data with the process-wide catalog; ``InvalidInput`` with reasons."""
    return CATALOG.validate_data(envelope)


# ---- the foundation's events ---------------------------------------------------------------


class DocumentSubmitted(BaseModel):
    """A line-of-business system hands a document to Hearth (``hearth.ingest.document.v1``).

    Small text travels inline in ``text``; anything else is put in the blob store first and
    referenced by ``blob`` (claim check). At least one of the two is required.
    """

    model_config = ConfigDict(extra="forbid")

    blob: BlobRef | None = Field(default=None, description="The document's bytes in the blob store.")
    text: str | None = Field(default=None, description="Small plain-text content carried inline.")
    filename: str | None = Field(default=None, max_length=255, description="Original file name.")
    content_type: str | None = Field(default=None, max_length=255, description="Media type of the document.")
    source_system: str = Field(min_length=1, max_length=100, description="Publishing system, e.g. 'erp'.")
    external_id: str | None = Field(default=None, max_length=200, description="The document's id in that system.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form attributes from the publisher.")

    @model_validator(mode="after")
    def _content_present(self) -> Self:
        if self.blob is None and self.text is None:
            raise ValueError("either blob or text is required")
        return self


class DeadLetterRecord(BaseModel):
    """A message a consumer gave up on (``hearth.deadletter.<original subject>``).

    The original stays in its stream until its max age, so ``original_stream`` and
    ``original_sequence`` locate it even when the copy here was truncated.
    """

    original_subject: str
    original_stream: str | None = None
    original_sequence: int | None = None
    original_envelope: dict[str, Any] | None = Field(
        default=None, description="The original message when it was a JSON object."
    )
    original_base64: str | None = Field(default=None, description="The original bytes when they were not JSON.")
    original_headers: dict[str, str] = Field(default_factory=dict)
    original_size: int
    original_sha256: str
    original_truncated: bool = Field(default=False, description="True when the original was too big to copy.")
    consumer: str = Field(description="Durable name of the consumer that gave up.")
    deliveries: int
    reason: dict[str, Any] = Field(description="The error, as HearthError.to_dict().")
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


register_event(
    "hearth.ingest.document.v1",
    DocumentSubmitted,
    "A line-of-business system submits a document (inline text or a blob reference) for processing.",
)
register_event(
    DEADLETTER_TYPE,
    DeadLetterRecord,
    "A consumer gave up on a message: the original, where it came from, and why.",
    subject=f"hearth.{DEADLETTER_DOMAIN}.>",
)
