"""Structured logging: JSON lines with service and trace ids, and no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared.logging import REDACTED, configure_logging, get_logger, is_secret_key, redact

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_service_level_and_trace_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ocr", "INFO")
    log = get_logger("hearth.test")
    log.info("outside a span", doc="d1")
    with TracerProvider().get_tracer("t").start_as_current_span("work") as span:
        log.warning("inside a span")
        logging.getLogger("nats.aio").error("from the standard library")
    log.debug("filtered out")

    outside, inside, stdlib = _lines(capsys.readouterr().out)
    assert outside["service"] == "ocr"
    assert outside["event"] == "outside a span"
    assert outside["level"] == "info"
    assert outside["doc"] == "d1"
    assert "trace_id" not in outside
    ctx = span.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert stdlib["logger"] == "nats.aio"
    assert stdlib["service"] == "ocr"
    assert stdlib["trace_id"] == inside["trace_id"]


@pytest.mark.usefixtures("restore_logging")
def test_secrets_never_reach_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("governance")
    get_logger("t").info(
        "login",
        password="hunter2",
        secret_id="abc",
        headers={"Authorization": "Bearer eyJhbGciOi", "X-Vault-Token": "hvs.CAESIJ3aaaaaaaaaaaaaaaaaaaaaaaa"},
        note="got token hvs.CAESIJ3bbbbbbbbbbbbbbbbbbbbbbbb from bao",
        max_tokens=512,
    )
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "eyJhbGciOi" not in out
    assert "CAESIJ3" not in out
    record = _lines(out)[0]
    assert record["password"] == REDACTED
    assert record["max_tokens"] == 512


@pytest.mark.usefixtures("restore_logging")
def test_exceptions_are_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("media")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("t").exception("failed")
    record = _lines(capsys.readouterr().out)[0]
    assert "RuntimeError: boom" in str(record["exception"])


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("clientSecret", True),
        ("access_token", True),
        ("X-Vault-Token", True),
        ("api_key", True),
        ("Authorization", True),
        ("max_tokens", False),
        ("tokens_used", False),
        ("document_id", False),
        ("key", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_nested() -> None:
    assert redact({"a": [{"token": "x"}, "Bearer abc.def"], "b": 1}) == {"a": [{"token": REDACTED}, REDACTED], "b": 1}


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("x", "LOUD")
