"""``/v1/telemetry``, ``/v1/traces`` and ``/v1/alerts``: what operators watch, answered by the telemetry service.

The gateway holds no telemetry itself: each route is one ``telemetry.*`` capability call over NATS
(``shared.telemetry``). These routes are operators' (admin in the shipped policy): series name
models and workflows of every tenant. A tenant's own runs have their trace at
``/v1/runs/{run_id}/trace`` (checked against the run's tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from pydantic import BaseModel

from services.gateway.requests import principal_of, validated
from shared.bus import Bus
from shared.capabilities import call_capability
from shared.durations import parse_duration
from shared.errors import InvalidInput
from shared.telemetry import (
    AlertList,
    AlertsRequest,
    Overview,
    OverviewRequest,
    SeriesRequest,
    SeriesResult,
    SilenceRequest,
    SilenceView,
    Trace,
    TraceRequest,
    UnsilenceRequest,
)

_R = TypeVar("_R", bound=BaseModel)

TIMEOUT_S = 15.0


@dataclass(frozen=True)
class TelemetryClient:
    bus: Bus

    async def call(self, capability: str, request: BaseModel, result: type[_R]) -> _R:
        return await call_capability(self.bus, capability, request, result, timeout=TIMEOUT_S)

    async def trace(self, request: TraceRequest) -> Trace:
        return await self.call("telemetry.trace", request, Trace)


def dependencies(client: TelemetryClient) -> dict[str, Provide]:
    return {"telemetry": Provide(lambda: client, use_cache=True, sync_to_thread=False)}


def _seconds(name: str, value: str) -> float:
    try:
        return parse_duration(value, bare_seconds=True)
    except ValueError as exc:
        raise InvalidInput(f"query parameter {name}: {exc}") from None


def _matchers(values: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in values or []:
        label, sep, value = item.partition("=")
        if not sep or not label:
            raise InvalidInput(f"query parameter match: {item!r} is not label=value")
        labels[label] = value
    return labels


class TelemetryController(Controller):
    path = "/v1"
    tags = ["telemetry"]

    @get("/telemetry/overview", summary="Component health, models, workflows, host, GPU, alerts and recent runs")
    async def overview(self, telemetry: TelemetryClient, window: str = "5m") -> Overview:
        request = validated(OverviewRequest, {"window_s": _seconds("window", window)})
        return await telemetry.call("telemetry.overview", request, Overview)

    @get(
        "/telemetry/series",
        summary="A series over time: rate, increase, histogram quantile or gauge aggregate, per group",
        description="`window` is each point's window, `since` how far back, `step` the spacing (durations "
        "such as 30s, 5m or plain seconds); `by` comma-separated labels to group on; `match` label=value, "
        "repeatable.",
    )
    async def series(
        self,
        *,
        telemetry: TelemetryClient,
        metric: str,
        fn: str = "rate",
        q: float = 0.95,
        window: str = "1m",
        since: str = "1h",
        step: str = "30s",
        agg: str = "avg",
        by: str = "",
        match: Annotated[list[str] | None, Parameter(required=False)] = None,
    ) -> SeriesResult:
        request = validated(
            SeriesRequest,
            {
                "metric": metric,
                "fn": fn,
                "q": q,
                "window_s": _seconds("window", window),
                "since_s": _seconds("since", since),
                "step_s": _seconds("step", step),
                "agg": agg,
                "by": [b.strip() for b in by.split(",") if b.strip()],
                "labels": _matchers(match),
            },
        )
        return await telemetry.call("telemetry.series", request, SeriesResult)

    @get("/traces/{trace_id:str}", summary="Every recorded span of a trace, in start order")
    async def trace(self, telemetry: TelemetryClient, trace_id: str) -> Trace:
        return await telemetry.trace(validated(TraceRequest, {"trace_id": trace_id}))

    @get("/alerts", summary="Alerts (pending, firing, recently resolved) and the silences")
    async def alerts(
        self,
        telemetry: TelemetryClient,
        alert_state: Annotated[str | None, Parameter(query="state", required=False)] = None,
        limit: int = 200,
    ) -> AlertList:
        request = validated(AlertsRequest, {"state": alert_state, "limit": limit})
        return await telemetry.call("telemetry.alerts", request, AlertList)

    @post(
        "/alerts/silences",
        status_code=201,
        summary="Silence alerts whose labels match, for a while: they are still evaluated and listed, not sent",
    )
    async def silence(
        self, request: Request[Any, Any, Any], telemetry: TelemetryClient, data: SilenceRequest
    ) -> SilenceView:
        silence = data.model_copy(update={"created_by": principal_of(request).name})
        return await telemetry.call("telemetry.silence", silence, SilenceView)

    @delete("/alerts/silences/{silence_id:str}", status_code=200, summary="End a silence now")
    async def unsilence(self, telemetry: TelemetryClient, silence_id: str) -> SilenceView:
        return await telemetry.call("telemetry.unsilence", validated(UnsilenceRequest, {"id": silence_id}), SilenceView)
