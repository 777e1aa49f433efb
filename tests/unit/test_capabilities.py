"""Capabilities without a network: declaration rules, the NATS reply core, the activity error mapping."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from shared.capabilities import (
    CapabilityRegistry,
    HealthCheck,
    ServiceHealth,
    capability_subject,
    error_from_application_error,
    reply_model,
    task_queue_for,
)
from shared.errors import HearthError, InvalidInput, NotFound, Unavailable, error_from_dict

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class CountWords(BaseModel):
    text: str


class WordsCounted(BaseModel):
    words: int


def make_registry() -> CapabilityRegistry:
    registry = CapabilityRegistry(service="nlp", version="9.9.9")

    @registry.capability("nlp.count_words")
    async def count_words(inp: CountWords) -> WordsCounted:
        """Count the words of a text."""
        if inp.text == "missing":
            raise NotFound("no such text")
        if inp.text == "down":
            raise Unavailable("engine down")
        if inp.text == "bug":
            raise ZeroDivisionError("secret=hunter2")
        return WordsCounted(words=len(inp.text.split()))

    return registry


def test_names_subjects_and_queues() -> None:
    registry = make_registry()
    cap = registry.get("nlp.count_words")
    assert cap.subject == "hearth.svc.nlp.count_words" == capability_subject("nlp.count_words")
    assert cap.description == "Count the words of a text."
    assert cap.input_type is CountWords
    assert cap.result_type is WordsCounted
    assert registry.queue_group == "hearth.svc.nlp"
    assert registry.task_queue == "hearth-nlp" == task_queue_for("nlp")
    assert [c.name for c in registry.capabilities()] == ["nlp.count_words", "nlp.health"]


def test_activities_are_named_like_capabilities_and_exclude_health() -> None:
    activities = make_registry().activities()
    assert len(activities) == 1
    hints = activities[0].__annotations__
    assert hints["return"] is WordsCounted


async def test_an_activity_refuses_input_that_does_not_match_without_retries() -> None:
    from temporalio.exceptions import ApplicationError

    (activity_fn,) = make_registry().activities()
    with pytest.raises(ApplicationError) as caught:
        await activity_fn({"text": 42, "unexpected": True})
    assert caught.value.non_retryable is True
    assert caught.value.type == "invalid-input"
    assert {e["loc"] for e in caught.value.details[0]["extra"]["errors"]} >= {"text"}


@pytest.mark.parametrize("name", ["ocr.extract", "nlp", "nlp.", "nlp.Count", "Nlp.count"])
def test_capability_must_be_named_after_its_service(name: str) -> None:
    registry = CapabilityRegistry(service="nlp")

    async def fn(inp: CountWords) -> WordsCounted:
        return WordsCounted(words=0)

    with pytest.raises(ValueError, match="must be named"):
        registry.register(name, fn)


def test_declaration_errors() -> None:
    registry = CapabilityRegistry(service="nlp")

    def sync(inp: CountWords) -> WordsCounted:
        return WordsCounted(words=0)

    async def two(a: CountWords, b: CountWords) -> WordsCounted:
        return WordsCounted(words=0)

    async def untyped(inp: dict) -> dict:  # type: ignore[type-arg]
        return {}

    with pytest.raises(TypeError, match="async"):
        registry.register("nlp.a", sync)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exactly one"):
        registry.register("nlp.b", two)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pydantic model"):
        registry.register("nlp.c", untyped)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="service name"):
        CapabilityRegistry(service="Bad-Name")


async def test_handle_request_ok() -> None:
    cap = make_registry().get("nlp.count_words")
    reply = json.loads(await cap.handle_request(b'{"text": "a b c"}'))
    assert reply == {"ok": True, "result": {"words": 3}}


@pytest.mark.parametrize(
    ("payload", "kind", "code"),
    [
        (b'{"text": "missing"}', "NotFound", "not-found"),
        (b'{"text": "down"}', "Unavailable", "unavailable"),
        (b'{"nope": 1}', "InvalidInput", "invalid-input"),
        (b"not json", "InvalidInput", "invalid-input"),
        (b'{"text": "bug"}', "HearthError", "internal-error"),
    ],
)
async def test_handle_request_maps_errors_to_replies(payload: bytes, kind: str, code: str) -> None:
    cap = make_registry().get("nlp.count_words")
    reply = json.loads(await cap.handle_request(payload))
    assert reply["ok"] is False
    assert reply["error"]["kind"] == kind
    assert reply["error"]["code"] == code
    assert "hunter2" not in json.dumps(reply)  # unexpected errors do not leak their message
    rebuilt = error_from_dict(reply["error"])
    assert type(rebuilt).__name__ == kind


async def test_invalid_input_reply_carries_pydantic_reasons() -> None:
    cap = make_registry().get("nlp.count_words")
    reply = json.loads(await cap.handle_request(b'{"text": 3}'))
    assert reply["error"]["extra"]["errors"][0]["loc"] == "text"


async def test_health_answers_empty_payloads() -> None:
    registry = make_registry()
    for payload in (b"", b"{}"):
        reply = reply_model(ServiceHealth).model_validate_json(await registry.get("nlp.health").handle_request(payload))
        assert reply.ok
        assert reply.result is not None
        assert reply.result.service == "nlp"
        assert reply.result.version == "9.9.9"
        assert reply.result.status == "ok"


async def test_set_health_replaces_the_answer() -> None:
    registry = make_registry()

    async def degraded() -> ServiceHealth:
        return ServiceHealth(service="nlp", status="degraded", version="1", pid=1, uptime_s=0, details={"db": "down"})

    registry.set_health(degraded)
    reply = json.loads(await registry.get("nlp.health").handle_request(HealthCheck().model_dump_json().encode()))
    assert reply["result"]["status"] == "degraded"


@pytest.mark.parametrize(
    ("text", "error_type", "non_retryable"),
    [("missing", "not-found", True), ("down", "unavailable", False)],
)
async def test_activity_error_mapping(text: str, error_type: str, non_retryable: bool) -> None:
    cap = make_registry().get("nlp.count_words")
    with pytest.raises(ApplicationError) as info:
        await cap.run_activity(CountWords(text=text))
    assert info.value.type == error_type
    assert info.value.non_retryable is non_retryable
    rebuilt = error_from_application_error(info.value)
    assert isinstance(rebuilt, HearthError)
    assert rebuilt.code == error_type


async def test_activity_success_and_unexpected_errors_pass_through() -> None:
    cap = make_registry().get("nlp.count_words")
    assert await cap.run_activity(CountWords(text="one two")) == WordsCounted(words=2)
    with pytest.raises(ZeroDivisionError):  # Temporal retries the unexpected
        await cap.run_activity(CountWords(text="bug"))


def test_error_from_application_error_ignores_foreign_errors() -> None:
    assert error_from_application_error(ApplicationError("x")) is None
    assert error_from_application_error(RuntimeError("x")) is None
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = ApplicationError("inner", InvalidInput("bad").to_dict(), type="invalid-input")
    assert isinstance(error_from_application_error(wrapped), InvalidInput)


async def test_a_long_activity_heartbeats_when_the_caller_set_a_heartbeat_timeout() -> None:
    import dataclasses
    from datetime import timedelta

    from temporalio.testing import ActivityEnvironment

    registry = CapabilityRegistry(service="nlp")

    @registry.capability("nlp.slow")
    async def slow(inp: CountWords) -> WordsCounted:
        await asyncio.sleep(0.35)
        return WordsCounted(words=1)

    (activity_fn,) = registry.activities()
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(milliseconds=300))
    assert await env.run(activity_fn, {"text": "a"}) == WordsCounted(words=1)
    assert 3 <= len(beats) <= 6  # every 100 ms while it ran

    quiet = ActivityEnvironment()
    quiet_beats: list[tuple[object, ...]] = []
    quiet.on_heartbeat = lambda *details: quiet_beats.append(details)
    await quiet.run(activity_fn, {"text": "a"})
    assert quiet_beats == []
