"""Canary release: a share of a model's traffic goes to a new version, which is promoted or rolled
back automatically on its error rate and latency against the version serving now.

Both versions are loaded side by side (``version_policy: specific [old, new]``); the gateway picks
the version per request. Once the canary has ``min_requests`` answers the verdict is taken:
rolled back if its error rate exceeds the baseline's by more than ``max_error_rate_delta`` or its
median latency exceeds ``max_latency_ratio`` times the baseline's and is more than
``latency_slack_ms`` slower (a millisecond model's medians over a few dozen answers jitter by more
than half on a busy host, which is noise, not a regression), promoted otherwise.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

# "cancelled": the gateway restarted while the canary ran; its baseline serves (not persisted).
Verdict = Literal["running", "promoted", "rolled_back", "cancelled"]


class CanaryRequest(BaseModel):
    """``POST /v1/models/{name}/canary``."""

    version: str = Field(pattern=r"^\d+$", description="The new version to try.")
    share: float = Field(0.1, gt=0, lt=1, description="Share of requests sent to it.")
    min_requests: int = Field(50, ge=5, description="Canary answers needed before a verdict.")
    max_error_rate_delta: float = Field(0.02, ge=0, le=1, description="Tolerated extra error rate.")
    max_latency_ratio: float = Field(1.5, ge=1, description="Tolerated median latency vs the baseline.")
    latency_slack_ms: float = Field(
        2.0, ge=0, description="Median latency differences below this are never read as a regression."
    )


@dataclass
class _Arm:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def record(self, ok: bool, latency_ms: float) -> None:
        self.requests += 1
        if ok:
            self.latencies_ms.append(latency_ms)
            del self.latencies_ms[:-1000]  # a bounded window
        else:
            self.errors += 1

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p50_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None


class CanaryState(BaseModel):
    """A canary as ``GET /v1/models`` reports it."""

    baseline_version: str
    canary_version: str
    share: float
    status: Verdict
    reason: str | None = None
    baseline_requests: int
    baseline_error_rate: float
    baseline_p50_ms: float | None
    canary_requests: int
    canary_error_rate: float
    canary_p50_ms: float | None


@dataclass
class Canary:
    baseline_version: str
    request: CanaryRequest
    rng: random.Random = field(default_factory=random.Random)
    baseline: _Arm = field(default_factory=_Arm)
    canary: _Arm = field(default_factory=_Arm)
    status: Verdict = "running"
    reason: str | None = None

    @property
    def canary_version(self) -> str:
        return self.request.version

    def pick(self) -> str:
        """The version this request goes to."""
        return self.canary_version if self.rng.random() < self.request.share else self.baseline_version

    def record(self, version: str, ok: bool, latency_ms: float) -> None:
        (self.canary if version == self.canary_version else self.baseline).record(ok, latency_ms)

    def verdict(self) -> Verdict:
        """Decide once the canary has enough answers; ``running`` until then."""
        if self.status != "running" or self.canary.requests < self.request.min_requests:
            return self.status
        delta = self.canary.error_rate - self.baseline.error_rate
        if delta > self.request.max_error_rate_delta:
            self.status = "rolled_back"
            self.reason = (
                f"error rate {self.canary.error_rate:.1%} vs {self.baseline.error_rate:.1%} "
                f"(tolerance {self.request.max_error_rate_delta:.1%})"
            )
            return self.status
        c50, b50 = self.canary.p50_ms, self.baseline.p50_ms
        if (
            c50 is not None
            and b50 is not None
            and c50 > self.request.max_latency_ratio * b50
            and c50 - b50 > self.request.latency_slack_ms
        ):
            self.status = "rolled_back"
            self.reason = (
                f"median latency {c50:.1f} ms vs {b50:.1f} ms "
                f"(tolerance x{self.request.max_latency_ratio}, +{self.request.latency_slack_ms:g} ms)"
            )
            return self.status
        self.status = "promoted"
        self.reason = f"{self.canary.requests} answers, error rate {self.canary.error_rate:.1%}, p50 {c50} ms"
        return self.status

    def state(self) -> CanaryState:
        return CanaryState(
            baseline_version=self.baseline_version,
            canary_version=self.canary_version,
            share=self.request.share,
            status=self.status,
            reason=self.reason,
            baseline_requests=self.baseline.requests,
            baseline_error_rate=round(self.baseline.error_rate, 4),
            baseline_p50_ms=self.baseline.p50_ms,
            canary_requests=self.canary.requests,
            canary_error_rate=round(self.canary.error_rate, 4),
            canary_p50_ms=self.canary.p50_ms,
        )
