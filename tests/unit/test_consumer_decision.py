"""What a consumer does with each delivery: the pure decision and the dead-letter record."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from nats.aio.msg import Msg

from shared.errors import InvalidInput, NotFound, PermanentFailure, Unavailable
from shared.events.consumer import Action, dead_letter_record, decide, describe_error, overdue_error

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

BACKOFF = (1.0, 5.0, 30.0)


def test_success_is_acked() -> None:
    assert decide(None, num_delivered=4, max_deliver=5, backoff=BACKOFF).action is Action.ACK


@pytest.mark.parametrize("error", [InvalidInput("bad"), PermanentFailure("corrupt"), NotFound("gone")])
@pytest.mark.parametrize("delivery", [1, 5])
def test_non_retryable_errors_are_dead_lettered_at_once(error: Exception, delivery: int) -> None:
    decision = decide(error, num_delivered=delivery, max_deliver=5, backoff=BACKOFF)
    assert decision.action is Action.DEAD_LETTER
    assert decision.reason is not None
    assert decision.reason["kind"] == type(error).__name__
    assert decision.reason["detail"] == str(error)


@pytest.mark.parametrize(
    ("delivery", "delay"),
    [(1, 1.0), (2, 5.0), (3, 30.0), (4, 30.0)],
)
@pytest.mark.parametrize("error", [Unavailable("down"), RuntimeError("bug"), KeyError("x")])
def test_retryable_and_unexpected_errors_are_nakked_with_backoff(error: Exception, delivery: int, delay: float) -> None:
    decision = decide(error, num_delivered=delivery, max_deliver=5, backoff=BACKOFF)
    assert decision.action is Action.NAK
    assert decision.delay == delay


def test_without_backoff_the_nak_has_no_delay() -> None:
    decision = decide(RuntimeError("x"), num_delivered=1, max_deliver=3, backoff=())
    assert decision.action is Action.NAK
    assert decision.delay is None


@pytest.mark.parametrize("error", [Unavailable("db down"), RuntimeError("boom")])
def test_last_delivery_failing_is_dead_lettered_with_the_last_error(error: Exception) -> None:
    decision = decide(error, num_delivered=5, max_deliver=5, backoff=BACKOFF)
    assert decision.action is Action.DEAD_LETTER
    assert decision.reason is not None
    assert decision.reason["code"] == "max-deliveries-exceeded"
    assert decision.reason["extra"]["last_error"]["kind"] == type(error).__name__
    assert str(error) in decision.reason["detail"]


def test_overdue_deliveries() -> None:
    assert overdue_error(5, 5) is None
    err = overdue_error(6, 5)
    assert isinstance(err, PermanentFailure)
    assert err.code == "max-deliveries-exceeded"
    assert decide(err, num_delivered=6, max_deliver=5).action is Action.DEAD_LETTER


def test_describe_error_for_the_unexpected() -> None:
    described = describe_error(ValueError("x" * 5000))
    assert described["kind"] == "ValueError"
    assert described["retryable"] is True
    assert len(described["detail"]) == 2000
    assert describe_error(InvalidInput("bad")) == InvalidInput("bad").to_dict()


def _js_msg(data: bytes, *, delivered: int = 3, seq: int = 42) -> Msg:
    reply = f"$JS.ACK.HEARTH_SHOP.orders.{delivered}.{seq}.7.1700000000000000000.0"
    headers = {"traceparent": "t"}
    return Msg(_client=None, subject="hearth.shop.order_placed.v1", reply=reply, data=data, headers=headers)  # type: ignore[arg-type]


def test_dead_letter_record_keeps_a_json_original() -> None:
    raw = json.dumps({"id": "e1", "type": "hearth.shop.order_placed.v1", "data": {}}).encode()
    record = dead_letter_record(
        _js_msg(raw), consumer="orders", deliveries=3, reason={"kind": "X"}, max_payload=1024 * 1024
    )
    assert record.original_subject == "hearth.shop.order_placed.v1"
    assert record.original_stream == "HEARTH_SHOP"
    assert record.original_sequence == 42
    assert record.original_envelope == {"id": "e1", "type": "hearth.shop.order_placed.v1", "data": {}}
    assert record.original_base64 is None
    assert record.original_headers == {"traceparent": "t"}
    assert record.original_sha256 == hashlib.sha256(raw).hexdigest()
    assert record.original_size == len(raw)
    assert record.consumer == "orders"
    assert record.deliveries == 3
    assert not record.original_truncated


def test_dead_letter_record_base64_for_non_json() -> None:
    raw = b"\xff\x00 not json"
    record = dead_letter_record(_js_msg(raw), consumer="c", deliveries=1, reason={}, max_payload=1024 * 1024)
    assert record.original_envelope is None
    assert record.original_base64 is not None
    assert base64.b64decode(record.original_base64) == raw


def test_dead_letter_record_truncates_what_cannot_fit() -> None:
    raw = b"x" * 200_000
    record = dead_letter_record(_js_msg(raw), consumer="c", deliveries=1, reason={}, max_payload=128 * 1024)
    assert record.original_truncated
    assert record.original_base64 is None
    assert record.original_envelope is None
    assert record.original_size == 200_000
