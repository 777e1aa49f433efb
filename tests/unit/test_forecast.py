from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.inference.forecast import RateForecaster, slot_of

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
