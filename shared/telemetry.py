"""The telemetry service's capabilities: what the gateway asks and what it gets back.

``telemetry.overview`` (the dashboard's snapshot), ``telemetry.series`` (a function of a series
over time), ``telemetry.alerts`` / ``telemetry.silence`` / ``telemetry.unsilence``, and
``telemetry.trace`` (a trace's spans, by trace id or by the workflow run it belongs to).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

SeriesFunction = Literal["rate", "increase", "quantile", "gauge"]


class OverviewRequest(BaseModel):
    window_s: float = Field(300.0, gt=0, le=86400, description="Window of the rates and percentiles.")


class ComponentView(BaseModel):
    name: str
    kind: Literal["service", "infrastructure"]
    status: str
    detail: str | None = None


class ModelView(BaseModel):
    name: str
    state: str
    version: str | None = None
    variant: str | None = None
    device: str | None = None
    memory_mb: float | None = None
    requests: float | None = Field(None, description="Requests in the window.")
    errors: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    queue_ms: float | None = Field(None, description="Triton: mean time a request waited for an instance.")
    compute_ms: float | None = Field(None, description="Triton: mean compute (inference) time per request.")
    batch_size: float | None = Field(None, description="Triton: mean requests per model execution.")


class RouteView(BaseModel):
    route: str = Field(description="Route template, e.g. /v1/models/{name}/infer.")
    method: str
    requests: float
    errors: float = Field(description="5xx answers in the window.")
    p95_ms: float | None = None


class WorkflowView(BaseModel):
    workflow: str
    runs: float
    failed: float
    success_rate: float | None
    p95_s: float | None = None


class HostView(BaseModel):
    cpu_percent: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    disk_used_bytes: float | None = None
    disk_total_bytes: float | None = None
    network_rx_bytes_per_s: float | None = None
    network_tx_bytes_per_s: float | None = None


class GpuView(BaseModel):
    status: Literal["absent", "present"]
    reason: str | None = None
    devices: list[dict[str, Any]] = Field(default_factory=list)


class AlertView(BaseModel):
    id: str
    fingerprint: str
    alertname: str
    severity: str
    state: Literal["pending", "firing", "resolved"]
    labels: dict[str, str]
    summary: str
    value: float | None = None
    started_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    silenced: bool = False


class RunView(BaseModel):
    workflow_id: str
    workflow: str
    status: str
    started_at: float
    duration_ms: float
    failed_step: str | None = None
    trace_id: str | None = None


class Overview(BaseModel):
    generated_at: float
    window_s: float
    components: list[ComponentView]
    models: list[ModelView]
    routes: list[RouteView] = Field(default_factory=list, description="Gateway routes with requests in the window.")
    workflows: list[WorkflowView]
    host: HostView
    gpu: GpuView
    alerts: list[AlertView]
    recent_runs: list[RunView]
    scrape_errors: dict[str, str] = Field(default_factory=dict, description="Targets whose last scrape failed.")


class SeriesRequest(BaseModel):
    metric: str = Field(min_length=1, max_length=200, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    fn: SeriesFunction = "rate"
    q: float = Field(0.95, gt=0, lt=1)
    window_s: float = Field(60.0, gt=0, le=7 * 86400)
    by: list[str] = Field(default_factory=list, max_length=8)
    labels: dict[str, str] = Field(default_factory=dict, description="Exact label matches.")
    since_s: float = Field(3600.0, gt=0, le=7 * 86400, description="How far back from now.")
    step_s: float = Field(30.0, gt=0)
    agg: Literal["avg", "max", "min", "last"] = "avg"


class SeriesPoints(BaseModel):
    group: dict[str, str]
    values: list[tuple[float, float]]


class SeriesResult(BaseModel):
    metric: str
    fn: SeriesFunction
    points: list[SeriesPoints]


class AlertsRequest(BaseModel):
    state: Literal["pending", "firing", "resolved"] | None = None
    limit: int = Field(200, ge=1, le=1000)


class MatcherView(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=256)


class SilenceRequest(BaseModel):
    matchers: list[MatcherView] = Field(min_length=1, max_length=20)
    duration_s: float = Field(3600.0, gt=0, le=90 * 86400)
    comment: str = Field("", max_length=1000)
    created_by: str = Field("", max_length=200, description="Set by the gateway from the credential.")


class SilenceView(BaseModel):
    id: str
    matchers: list[MatcherView]
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    active: bool


class UnsilenceRequest(BaseModel):
    id: str = Field(min_length=1, max_length=100)


class AlertList(BaseModel):
    alerts: list[AlertView]
    silences: list[SilenceView]
    rules: int = Field(description="Rules in force.")
    rule_errors: list[str] = Field(
        default_factory=list, description="Why the rule files as they are now were refused (the previous rules run)."
    )


class TraceRequest(BaseModel):
    trace_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    workflow_id: str | None = Field(None, max_length=500)


class SpanView(BaseModel):
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start: float
    end: float
    duration_ms: float
    status: str
    status_message: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Trace(BaseModel):
    trace_id: str
    spans: list[SpanView]
