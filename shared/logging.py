"""Structured logging: one JSON object per line on stdout, the same shape in every Hearth process.

Every record carries ``service``, ``level``, ``logger`` and a UTC ``timestamp``; while an
OpenTelemetry span is active it also carries ``trace_id`` and ``span_id``, so a log line can be
joined to its trace. Records from libraries that use the standard ``logging`` module (nats-py,
FastStream, temporalio) go through the same processors, so the output is uniform.

Secrets are never logged: values under keys that name a secret (password, token, secret_id …)
are replaced by ``[redacted]`` and bearer / Vault tokens inside strings are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

import structlog
from opentelemetry import trace

REDACTED: Final = "[redacted]"

# A key is secret when one of its words (split on "_", "-", ".") is, or ends with, one of these;
# "max_tokens" stays visible, "access_token", "X-Vault-Token" and "clientSecret" do not.
_SECRET_WORDS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "apikey",
    "unseal",
    "plaintext",
    "datakey",
)
_SECRET_COMPOUNDS: Final = ("api_key", "private_key", "secret_id", "api-key", "private-key")
_SECRET_VALUE_PATTERNS: Final = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    # Vault / OpenBao service, batch and recovery tokens.
    re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}"),
    re.compile(r"\b[sbr]\.[A-Za-z0-9]{24}\b"),  # legacy (pre-1.10) token format
)
_KEY_SPLIT: Final = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH: Final = 6

_LEVELS: Final = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def is_secret_key(key: str) -> bool:
    """True when a mapping key names something that must never reach a log."""
    lowered = key.lower()
    if any(compound in lowered for compound in _SECRET_COMPOUNDS):
        return True
    return any(word.endswith(_SECRET_WORDS) for word in _KEY_SPLIT.split(lowered) if word)


def redact(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secret-named keys replaced and token-looking substrings masked."""
    if _depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        for pattern in _SECRET_VALUE_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, _depth + 1) for v in value]
    return value


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if is_secret_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = redact(value)
    return event_dict


def _add_trace_ids(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _service_adder(service: str) -> structlog.types.Processor:
    def add_service(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and standard-library logging to stdout, one record per line.

    ``json=False`` renders coloured key/value lines for a developer's terminal. Calling it again
    replaces the previous configuration (tests, or a CLI that learns the service late).
    """
    level_name = level.upper()
    if level_name not in _LEVELS:
        raise ValueError(f"log level {level!r} is not one of {sorted(_LEVELS)}")

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _service_adder(service),
        _add_trace_ids,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # ExtraAdder keeps the `extra={...}` fields libraries attach (FastStream: subject, message_id).
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level_name)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; pass ``__name__``. Bind request-scoped fields with ``.bind(...)``."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
