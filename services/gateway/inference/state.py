"""The gateway's per-model state in PostgreSQL (table ``model_state``), so a restart keeps it.

Kept: the version a rollback returns to, the variant and device last loaded, request and error
counts, last use, cold start and the request-rate forecast. Not kept: a canary's measurements.
Only the fact that a canary was running is stored, so that the next start cancels it (the
baseline keeps serving) instead of letting Triton serve the canary version to everyone.

Writes are write-behind: ``ModelService.flush`` runs from the gateway's sweeper and right after a
version change, never on a request's path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.inference.forecast import ModelRate

FORMAT = 1  # of the ``state`` document; readers skip what they do not know


@dataclass(frozen=True)
class CanaryMarker:
    """A canary that was running when the state was written (its counts are not kept)."""

    baseline_version: str
    canary_version: str
    share: float


@dataclass
class PersistedModel:
    """What survives a gateway restart of one model."""

    previous_version: str | None = None
    variant: str | None = None
    device: str | None = None
    requests: int = 0
    errors: int = 0
    last_used: datetime | None = None
    cold_start_ms: float | None = None
    rate: ModelRate | None = None
    canary: CanaryMarker | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer gateway wrote, kept as they are

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out |= {
            "format": FORMAT,
            "previous_version": self.previous_version,
            "variant": self.variant,
            "device": self.device,
            "requests": self.requests,
            "errors": self.errors,
            "last_used": self.last_used.isoformat() if self.last_used else None,
            "cold_start_ms": self.cold_start_ms,
            "rate": self.rate.to_json() if self.rate else None,
            "canary": (
                {
                    "baseline_version": self.canary.baseline_version,
                    "canary_version": self.canary.canary_version,
                    "share": self.canary.share,
                }
                if self.canary
                else None
            ),
        }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PersistedModel:
        known = {
            "format",
            "previous_version",
            "variant",
            "device",
            "requests",
            "errors",
            "last_used",
            "cold_start_ms",
            "rate",
            "canary",
        }
        canary = data.get("canary")
        last_used = data.get("last_used")
        cold = data.get("cold_start_ms")
        return cls(
            previous_version=_opt_str(data.get("previous_version")),
            variant=_opt_str(data.get("variant")),
            device=_opt_str(data.get("device")),
            requests=int(data.get("requests") or 0),
            errors=int(data.get("errors") or 0),
            last_used=datetime.fromisoformat(last_used) if last_used else None,
            cold_start_ms=float(cold) if cold is not None else None,
            rate=ModelRate.from_json(data["rate"]) if data.get("rate") else None,
            canary=(
                CanaryMarker(str(canary["baseline_version"]), str(canary["canary_version"]), float(canary["share"]))
                if canary
                else None
            ),
            extra={k: v for k, v in data.items() if k not in known},
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class ModelStateStore:
    """Rows of ``model_state``: one JSON document per model."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self) -> dict[str, PersistedModel]:
        """Every model's stored state (read once, at start-up)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text("SELECT model, state FROM model_state"))).all()
        out: dict[str, PersistedModel] = {}
        for row in rows:
            state = row.state if isinstance(row.state, dict) else json.loads(row.state)
            out[row.model] = PersistedModel.from_json(state)
        return out

    async def save(self, models: dict[str, PersistedModel]) -> None:
        """Upsert the given models' state (the caller passes only what changed)."""
        if not models:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO model_state (model, state, updated_at) VALUES (:m, CAST(:s AS jsonb), now()) "
                    "ON CONFLICT (model) DO UPDATE SET state = EXCLUDED.state, updated_at = now()"
                ),
                [{"m": name, "s": json.dumps(model.to_json())} for name, model in models.items()],
            )
