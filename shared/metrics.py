"""Prometheus metrics of a Hearth process: the series every service shares and their endpoint.

Each process serves the Prometheus text format at ``http://<bind_host>:<port>/metrics``
(``HearthSettings.service_metrics_port``), behind ``Authorization: Bearer <metrics-token>``
(the secret file ``secrets/metrics-token``): metrics name models, routes and tenants' workflows,
which is not for anyone on the box to read. The telemetry service and Prometheus scrape it.

Latency histograms use dense geometric buckets (``LATENCY_BUCKETS``, x1.1): a percentile
interpolated inside a bucket is then off by at most 10% and typically a few, which is what lets
the telemetry service report P95/P99 from buckets instead of keeping every observation.
"""

from __future__ import annotations

import hmac
import ssl
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app


def geometric_buckets(low: float, high: float, factor: float) -> tuple[float, ...]:
    """Bucket upper bounds ``low * factor**k`` up to the first one reaching ``high``."""
    bounds = [low]
    while bounds[-1] < high:
        bounds.append(round(bounds[-1] * factor, 6))
    return tuple(bounds)


class LatencyHistogram(Histogram):
    """A histogram finding its bucket by bisection: the stock ``observe`` scans the bounds linearly,
    about 8 us per observation over the 131 latency buckets, on every request."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar:
            super().observe(amount, exemplar)
            return
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]
        self._sum.inc(amount)
        self._buckets[bisect_left(self._upper_bounds, amount)].inc(1)


LATENCY_BUCKETS: Final = geometric_buckets(0.0005, 120.0, 1.1)
"""Seconds, 0.5 ms to 120 s (131 bounds)."""

HTTP_REQUESTS: Final = Counter(
    "hearth_http_requests", "HTTP requests answered by the gateway.", ["route", "method", "status"]
)
HTTP_DURATION: Final = LatencyHistogram(
    "hearth_http_request_duration_seconds",
    "Time to answer an HTTP request (route template).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
CAPABILITY_REQUESTS: Final = Counter(
    "hearth_capability_requests",
    "Capability calls served, by transport (nats, temporal) and outcome (ok, error).",
    ["service", "capability", "transport", "outcome"],
)
CAPABILITY_DURATION: Final = LatencyHistogram(
    "hearth_capability_duration_seconds",
    "Time a capability call took in the serving process.",
    ["service", "capability", "transport"],
    buckets=LATENCY_BUCKETS,
)
MODEL_REQUESTS: Final = Counter(
    "hearth_model_requests", "Inference requests through the gateway, by outcome (ok, error).", ["model", "outcome"]
)
MODEL_DURATION: Final = LatencyHistogram(
    "hearth_model_request_duration_seconds",
    "Inference latency through the gateway, end to end (a cold start included).",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
MODEL_LOADED: Final = Gauge(
    "hearth_model_loaded",
    "1 for each loaded model version and where it runs.",
    ["model", "version", "variant", "device"],
)
MODEL_MEMORY: Final = Gauge("hearth_model_memory_bytes", "Measured memory of a loaded model.", ["model", "device"])

HEARTH_METRICS: Final = (
    "hearth_http_requests_total",
    "hearth_http_request_duration_seconds",
    "hearth_capability_requests_total",
    "hearth_capability_duration_seconds",
    "hearth_model_requests_total",
    "hearth_model_request_duration_seconds",
    "hearth_model_loaded",
    "hearth_model_memory_bytes",
    # computed by the telemetry service (from events, NATS monitoring, the host, NVML)
    "hearth_workflow_runs_total",
    "hearth_workflow_run_duration_seconds",
    "hearth_workflow_steps_total",
    "hearth_workflow_step_duration_seconds",
    "hearth_nats_consumer_pending",
    "hearth_nats_consumer_ack_pending",
    "hearth_nats_consumer_redelivered",
    "hearth_nats_connections",
    "hearth_nats_in_msgs_total",
    "hearth_nats_out_msgs_total",
    "hearth_host_cpu_percent",
    "hearth_host_memory_bytes",
    "hearth_host_disk_bytes",
    "hearth_host_network_bytes_total",
    "hearth_process_cpu_percent",
    "hearth_process_resident_bytes",
    "hearth_gpu_utilization_percent",
    "hearth_gpu_memory_bytes",
    "hearth_gpu_power_watts",
    "hearth_gpu_temperature_celsius",
)
"""Every ``hearth_*`` series name (as exposed, counters with ``_total``); dashboards are checked against it."""


@contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the block's wall time (seconds) in ``histogram`` with ``labels``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(*labels).observe(time.perf_counter() - start)


_state = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    """Turn the process's request measurements on or off (``HEARTH_TELEMETRY_ENABLED``; benches)."""
    _state["enabled"] = enabled


def enabled() -> bool:
    return _state["enabled"]


def record_capability(service: str, capability: str, transport: str, ok: bool, seconds: float) -> None:
    if not _state["enabled"]:
        return
    CAPABILITY_REQUESTS.labels(service, capability, transport, "ok" if ok else "error").inc()
    CAPABILITY_DURATION.labels(service, capability, transport).observe(seconds)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the log; failures show in the scraper instead."""


class _ThreadingServer(WSGIServer):
    daemon_threads = True


def protected_app(token: str, registry: CollectorRegistry = DEFAULT_REGISTRY) -> Callable[..., Iterable[bytes]]:
    """The exposition WSGI app, answering 401 unless ``Authorization: Bearer <token>``."""
    inner = make_wsgi_app(registry)
    expected = f"Bearer {token}".encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        presented = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(presented, expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"a metrics token is required: Authorization: Bearer <secrets/metrics-token>\n"]
        return inner(environ, start_response)  # type: ignore[no-any-return]

    return app


class MetricsServer:
    """The process's /metrics endpoint on a daemon thread (scrapes never wait on the event loop)."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        registry: CollectorRegistry = DEFAULT_REGISTRY,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._server = make_server(
            host, port, protected_app(token, registry), server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        if tls is not None:
            # The handshake runs on accept in the server thread (as prometheus_client does).
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
