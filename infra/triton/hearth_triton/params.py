"""Typed access to a model config's ``parameters`` (string values), failing with the key's name."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any


class ConfigError(ValueError):
    """A config parameter is missing or malformed; the message names it."""


class ModelParams:
    """The ``parameters`` map of a Triton model config (``args["model_config"]`` JSON or dict)."""

    def __init__(self, model_config: str | Mapping[str, Any]) -> None:
        config = json.loads(model_config) if isinstance(model_config, str) else model_config
        self.model_name = str(config.get("name", "?"))
        raw = config.get("parameters") or {}
        self._values = {key: str(value.get("string_value", "")) for key, value in raw.items()}

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._values))

    def get(self, key: str, default: str | None = None) -> str:
        value = self._values.get(key, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"model {self.model_name!r}: config parameter {key!r} is required")
        return default

    def get_int(self, key: str, default: int, *, minimum: int | None = None) -> int:
        raw = self._values.get(key, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"model {self.model_name!r}: parameter {key!r} must be an integer, not {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"model {self.model_name!r}: parameter {key!r} must be >= {minimum}, not {value}")
        return value

    def get_float(self, key: str, default: float) -> float:
        raw = self._values.get(key, "").strip()
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"model {self.model_name!r}: parameter {key!r} must be a number, not {raw!r}") from None

    def get_bool(self, key: str, default: bool) -> bool:
        raw = self._values.get(key, "").strip().lower()
        if not raw:
            return default
        if raw in {"true", "1", "yes", "on"}:
            return True
        if raw in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"model {self.model_name!r}: parameter {key!r} must be true or false, not {raw!r}")

    def get_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self._values.get(key, "").strip()
        if not raw:
            return default
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def get_ints(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        items = self.get_list(key)
        if not items:
            return default
        try:
            return tuple(int(item) for item in items)
        except ValueError:
            raise ConfigError(
                f"model {self.model_name!r}: parameter {key!r} must be comma-separated integers, not {items!r}"
            ) from None

    def variant(self) -> str:
        """The variant to load: ``variant`` (the load-time switch), else ``hearth.default_variant``.

        Raises :class:`ConfigError` for a variant the model does not declare in ``hearth.variants``.
        """
        known = self.get_list("hearth.variants", ("fp32",))
        chosen = self.get("variant", self.get("hearth.default_variant", known[0]))
        if chosen not in known:
            raise ConfigError(
                f"model {self.model_name!r}: unknown variant {chosen!r} (hearth.variants: {', '.join(known)})"
            )
        return chosen
