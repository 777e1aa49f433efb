"""The event envelope: CloudEvents 1.0 attributes (structured JSON mode) around a typed payload.

An event on JetStream is the JSON of an ``Envelope``; its NATS subject is its ``type``
(``hearth.<domain>.<event>.v<N>``). ``tenant`` and ``correlationid`` are CloudEvents extension
attributes. The W3C ``traceparent`` travels in the NATS headers, not in the envelope.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InvalidInput

TYPE_PATTERN: Final = r"^hearth\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[0-9]+$"
"""Event type strings: ``hearth.<domain>.<event>[.<more>].v<N>``, lower case."""

TENANT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_TYPE_RE = re.compile(TYPE_PATTERN)


def is_event_type(value: str) -> bool:
    """True when ``value`` is a well-formed Hearth event type string."""
    return _TYPE_RE.match(value) is not None


def _absent_if_none(value: Any) -> bool:
    return value is None


def validation_reasons(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to what a caller can act on: where, what, which kind."""
    return [
        {"loc": ".".join(str(part) for part in err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


class Envelope(BaseModel):
    """A CloudEvents 1.0 event carrying a JSON object payload in ``data``.

    Unknown extension attributes sent by other producers are ignored, so producers may add
    attributes without breaking consumers. Optional attributes are omitted from the JSON when
    unset, as CloudEvents requires.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500, pattern=r"^\S+$", examples=["hearth/ocr"])
    type: str = Field(pattern=TYPE_PATTERN, max_length=200, examples=["hearth.ingest.document.v1"])
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(default=None, max_length=500, exclude_if=_absent_if_none)
    tenant: str = Field(default="default", pattern=TENANT_PATTERN)
    correlationid: str | None = Field(default=None, max_length=200, exclude_if=_absent_if_none)
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, max_length=2000, exclude_if=_absent_if_none)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return value.astimezone(UTC)

    @field_validator("dataschema")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not _URI_SCHEME.match(value):
            raise ValueError("dataschema must be an absolute URI")
        return value

    @classmethod
    def new(
        cls,
        type: str,
        data: BaseModel,
        *,
        source: str,
        tenant: str = "default",
        subject: str | None = None,
        correlationid: str | None = None,
        dataschema: str | None = None,
    ) -> Self:
        """Build an event around a payload model (dumped in JSON mode)."""
        return cls(
            type=type,
            source=source,
            tenant=tenant,
            subject=subject,
            correlationid=correlationid,
            dataschema=dataschema,
            data=data.model_dump(mode="json"),
        )

    def to_json(self) -> bytes:
        """The structured-mode CloudEvents JSON of this event."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse an event; a malformed one raises ``InvalidInput`` with pydantic's reasons."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidInput(
                "not a valid Hearth event envelope", code="invalid-envelope", extra={"errors": validation_reasons(exc)}
            ) from None
