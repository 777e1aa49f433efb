from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.inference.forecast import SLOTS, ModelRate, RateForecaster, slot_of

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t


def test_slots_cover_the_week() -> None:
    monday = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert slot_of(monday) == 0
    assert slot_of(monday + timedelta(days=6, hours=23)) == 167


def test_a_weekly_peak_is_learned_and_triggers_a_preload_the_hour_before() -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # Monday 09:00
    fc = RateForecaster(alpha=0.5, preload_threshold=30, now=clock)
    for _week in range(4):
        fc.record("ocr", 100)  # a busy Monday 09:00-10:00
        clock.t += timedelta(hours=1)
        fc.record("ocr", 1)  # quiet afterwards
        clock.t += timedelta(days=7) - timedelta(hours=1)
    # Monday 08:00 of the fifth week: the coming hour is the learned peak.
    clock.t = datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    assert fc.forecast("ocr") > 80
    assert fc.to_preload(loaded=set()) == ["ocr"]
    assert fc.to_preload(loaded={"ocr"}) == []
    clock.t = datetime(2026, 12, 21, 11, 0, tzinfo=UTC)
    assert fc.forecast("ocr") < 30
    assert fc.forecast("never-used") == 0.0


def test_the_learned_rates_survive_a_round_trip_through_json() -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    fc = RateForecaster(alpha=0.5, now=clock)
    fc.record("ocr", 100)
    clock.t += timedelta(hours=1)
    fc.record("ocr", 7)  # the hour being counted is kept too
    stored = json.loads(json.dumps({m: r.to_json() for m, r in fc.models.items()}))

    again = RateForecaster(alpha=0.5, now=clock, models={m: ModelRate.from_json(r) for m, r in stored.items()})
    assert again.models == fc.models
    monday_nine = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert again.forecast("ocr", at=monday_nine) == fc.forecast("ocr", at=monday_nine) == 50.0
    clock.t += timedelta(hours=1)  # the restored hour is folded in like any other
    assert again.forecast("ocr", at=monday_nine + timedelta(hours=1)) == 3.5


def test_a_stored_rate_of_another_layout_starts_afresh() -> None:
    rate = ModelRate.from_json({"slots": [1.0, 2.0], "current_slot": 500, "current_count": 3})
    assert rate.slots == [0.0] * SLOTS
    assert rate.current_slot is None
