"""Request-rate forecast per model: an EWMA per hour of the week, to pre-load before a usual peak.

Each model keeps 168 slots (hour of week). When an hour ends, its request count updates that
slot: ``rate = alpha * count + (1 - alpha) * rate``. The forecast for the coming hour is its
slot's rate; a model forecast above ``preload_threshold`` requests per hour that is not loaded
is loaded ahead of time (the seed's load prediction from history).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SLOTS = 24 * 7


def slot_of(when: datetime) -> int:
    when = when.astimezone(UTC)
    return when.weekday() * 24 + when.hour


@dataclass
class ModelRate:
    slots: list[float] = field(default_factory=lambda: [0.0] * SLOTS)
    current_slot: int | None = None
    current_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """The state to persist (the slots and the hour being counted)."""
        return {"slots": list(self.slots), "current_slot": self.current_slot, "current_count": self.current_count}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRate:
        slots = [float(x) for x in data.get("slots") or []]
        if len(slots) != SLOTS:
            slots = [0.0] * SLOTS  # another layout: start learning again rather than misread it
        current = data.get("current_slot")
        return cls(
            slots=slots,
            current_slot=int(current) if current is not None and 0 <= int(current) < SLOTS else None,
            current_count=int(data.get("current_count") or 0),
        )


@dataclass
class RateForecaster:
    alpha: float = 0.3
    preload_threshold: float = 30.0  # requests per hour
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    models: dict[str, ModelRate] = field(default_factory=dict)

    def _roll(self, rate: ModelRate, slot: int) -> None:
        if rate.current_slot is not None and rate.current_slot != slot:
            old = rate.slots[rate.current_slot]
            rate.slots[rate.current_slot] = self.alpha * rate.current_count + (1 - self.alpha) * old
            rate.current_count = 0
        rate.current_slot = slot

    def record(self, model: str, count: int = 1) -> None:
        rate = self.models.setdefault(model, ModelRate())
        self._roll(rate, slot_of(self.now()))
        rate.current_count += count

    def forecast(self, model: str, at: datetime | None = None) -> float:
        """Expected requests in the hour starting at ``at`` (default: the next hour)."""
        rate = self.models.get(model)
        if rate is None:
            return 0.0
        self._roll(rate, slot_of(self.now()))
        when = at or (self.now() + timedelta(hours=1))
        return rate.slots[slot_of(when)]

    def to_preload(self, loaded: set[str]) -> list[str]:
        """Models not loaded whose next-hour forecast exceeds the threshold, busiest first."""
        ranked = sorted(((self.forecast(m), m) for m in self.models if m not in loaded), reverse=True)
        return [m for f, m in ranked if f >= self.preload_threshold]
