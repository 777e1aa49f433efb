"""The fields ``analyze`` extracts, request validation, and the errors a caller can cause."""

from __future__ import annotations

from collections.abc import Sequence

SUPPORTED_FIELDS = ("contract_type", "valid_period", "parties", "amount", "contract_number", "signing_date")
LANGUAGES = ("zh", "en", "mixed", "unknown")


class ContractRequestError(ValueError):
    """The request itself is wrong (unknown field, bad language, bad PARAMS): a client error."""


class UnknownField(ContractRequestError):
    """Fields outside :data:`SUPPORTED_FIELDS` were asked for; the message names them and the supported ones."""

    def __init__(self, unknown: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        super().__init__(f"unknown field(s) {', '.join(self.unknown)} (supported: {', '.join(SUPPORTED_FIELDS)})")


def resolve_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """The requested fields in :data:`SUPPORTED_FIELDS` order; ``None`` or an empty list mean all."""
    if fields is None:
        return SUPPORTED_FIELDS
    if isinstance(fields, str | bytes):
        raise ContractRequestError(f"fields must be a list of names, not the string {fields!r}")
    wanted: set[str] = set()
    unknown: list[str] = []
    for name in fields:
        key = name.strip().lower() if isinstance(name, str) else None
        if key in SUPPORTED_FIELDS:
            wanted.add(key)
        elif repr(name) not in unknown:
            unknown.append(name if isinstance(name, str) else repr(name))
    if unknown:
        raise UnknownField(unknown)
    return tuple(f for f in SUPPORTED_FIELDS if f in wanted) if wanted else SUPPORTED_FIELDS


def resolve_language(language: str | None) -> str | None:
    """``None``/``"auto"``/empty: detect; ``zh``, ``en``, ``mixed``: the caller's statement of the language."""
    if language is None:
        return None
    if not isinstance(language, str):
        raise ContractRequestError(f"language must be a string, not {language!r}")
    value = language.strip().lower()
    if value in {"", "auto"}:
        return None
    aliases = {"zh-cn": "zh", "zh-hans": "zh", "zh-tw": "zh", "chinese": "zh", "cn": "zh", "english": "en"}
    value = aliases.get(value, value)
    if value not in {"zh", "en", "mixed"}:
        raise ContractRequestError(f"unsupported language {language!r} (supported: zh, en, mixed, auto)")
    return value
