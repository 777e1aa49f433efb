"""The model's ``PARAMS`` tensor: ``{"entities_to_extract": [...], "language": "zh"}``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .fields import SUPPORTED_FIELDS, ContractRequestError, resolve_fields, resolve_language

_KEYS = ("entities_to_extract", "language")


@dataclass(frozen=True)
class Request:
    fields: tuple[str, ...] = SUPPORTED_FIELDS
    language: str | None = None


def parse_params(raw: bytes | str | None) -> Request:
    """``PARAMS`` parsed and checked; absent or empty means all fields, language detected.

    Raises :class:`~.fields.ContractRequestError` (or its :class:`~.fields.UnknownField`) naming the problem.
    """
    if raw is None or not raw.strip():
        return Request()
    try:
        given = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractRequestError(f"PARAMS is not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise ContractRequestError(f"PARAMS must be a JSON object, not {type(given).__name__}")
    unknown = sorted(set(given) - set(_KEYS))
    if unknown:
        raise ContractRequestError(f"PARAMS has unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    fields = given.get("entities_to_extract")
    if fields is not None and not isinstance(fields, list):
        raise ContractRequestError(f"PARAMS.entities_to_extract must be a list of field names, not {fields!r}")
    return Request(resolve_fields(fields), resolve_language(given.get("language")))
