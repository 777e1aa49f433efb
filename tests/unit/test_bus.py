"""Bus rules that apply before anything is sent, and the stream configuration it provisions."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js import api
from nats.js.errors import APIError
from pydantic import BaseModel

from shared.bus import HEADER_ALLOWANCE, Bus, _config_drift, map_api_error
from shared.errors import Conflict, InvalidInput, PermanentFailure, TooLarge, Unavailable
from shared.events import CATALOG, DEADLETTER_TYPE, Envelope
from shared.events.catalog import DEADLETTER_MAX_AGE_S
from shared.settings import load_settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class Note(BaseModel):
    text: str


class _NoNetwork:
    """Stands in for nats.aio.client.Client: these checks must refuse before any I/O."""

    def jetstream(self) -> Any:
        return self

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing should be sent")


def _bus() -> Bus:
    catalog = CATALOG.copy()
    catalog.register_event("hearth.notes.note_taken.v1", Note, "A note.")
    return Bus(_NoNetwork(), settings=load_settings(event_inline_max_bytes=1024), catalog=catalog)  # type: ignore[arg-type]


async def test_publish_refuses_oversized_events_with_a_hint() -> None:
    env = Envelope.new("hearth.notes.note_taken.v1", Note(text="x" * 2000), source="hearth/test")
    with pytest.raises(TooLarge) as info:
        await _bus().publish(env)
    assert "blob store" in info.value.detail
    assert info.value.extra["limit"] == 1024


async def test_publish_refuses_invalid_data_unknown_types_and_wrong_subjects() -> None:
    bus = _bus()
    with pytest.raises(InvalidInput):
        await bus.publish(Envelope(type="hearth.notes.note_taken.v1", source="s", data={"text": 1}))
    with pytest.raises(InvalidInput):
        await bus.publish(Envelope(type="hearth.notes.unknown.v1", source="s", data={}))
    with pytest.raises(InvalidInput):
        await bus.publish(
            Envelope.new("hearth.notes.note_taken.v1", Note(text="x"), source="s"), subject="hearth.notes.other.v1"
        )


def test_stream_configuration() -> None:
    bus = _bus()
    notes = bus.stream_config(bus.catalog.get_stream("HEARTH_NOTES"))
    assert notes.subjects == ["hearth.notes.>"]
    assert notes.storage == api.StorageType.FILE
    assert notes.discard == api.DiscardPolicy.OLD
    assert notes.retention == api.RetentionPolicy.LIMITS
    assert notes.duplicate_window == 120.0
    assert notes.max_msg_size == 1024 + HEADER_ALLOWANCE
    dead = bus.stream_config(bus.catalog.get_stream(bus.catalog.get_event_type(DEADLETTER_TYPE).stream))
    assert dead.max_age == DEADLETTER_MAX_AGE_S
    assert dead.max_msg_size == -1


def test_config_drift() -> None:
    bus = _bus()
    wanted = bus.stream_config(bus.catalog.get_stream("HEARTH_NOTES"))
    live = api.StreamConfig.from_response(wanted.as_dict())  # what the server echoes back
    assert _config_drift(live, wanted) == set()
    live.max_age = 60.0
    live.subjects = ["hearth.notes.>", "extra.>"]
    assert _config_drift(live, wanted) == {"max_age", "subjects"}


@pytest.mark.parametrize(
    ("code", "err_code", "expected"),
    [(400, 10054, TooLarge), (400, 10060, PermanentFailure), (503, 10008, Unavailable), (409, 10058, Conflict)],
)
def testmap_api_error_mapping(code: int, err_code: int, expected: type[Exception]) -> None:
    assert isinstance(map_api_error(APIError(code=code, err_code=err_code, description="x"), "doing"), expected)
