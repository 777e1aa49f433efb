"""The gateway's HTTP measurements: one server span and the route metrics per request.

A plain ASGI wrapper around the whole Litestar app rather than a Litestar middleware, so that
requests no route matched (404) and requests the guard refused (401/403) are counted too. The
route label is Litestar's path template (``/v1/models/{name}/infer``), set on the scope by its
router: raw paths would give one series per document id.
"""

from __future__ import annotations

import random
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.metrics import HTTP_DURATION, HTTP_REQUESTS
from shared.tracing import INFERENCE_ROOT_SUFFIX, PRESAMPLED, extract_context, get_tracer

_tracer = get_tracer(__name__)

UNMATCHED = "unmatched"
"""The route label of requests no route matched (so scanners cannot grow the label set)."""

NOT_MEASURED = ("/v1/health",)
"""Liveness probes run every few seconds; they would dominate the request rate."""

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def is_plain_inference(path: str) -> bool:
    """``/v1/models/{name}/infer``: the traffic ``HearthSampler`` keeps only a share of."""
    return path.startswith("/v1/models/") and path.endswith(INFERENCE_ROOT_SUFFIX)


def _unsampled_context() -> Context:
    """A context whose current span is a valid, not-sampled one: every child span drops too."""
    span_context = SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


class Instrumented:
    """``Instrumented(app)`` is ``app`` with a span and the ``hearth_http_*`` series per request.

    Plain inference requests without a caller's trace are sampled here, before OpenTelemetry is
    asked: the SDK's ``start_as_current_span`` costs about 100 us even for a span its sampler then
    drops, which was most of what telemetry cost an inference request. The requests left out
    run under a not-sampled context, so the gateway's Triton call records nothing either.
    """

    def __init__(self, app: ASGIApp, inference_ratio: float = 1.0) -> None:
        self.app = app
        self.inference_ratio = inference_ratio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in NOT_MEASURED:
            await self.app(scope, receive, send)
            return
        # Only the trace context headers are decoded: a dict of every header costs on each request.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _TRACE_HEADERS}
        method = scope.get("method", "GET")
        if not headers and is_plain_inference(scope["path"]):
            if random.random() >= self.inference_ratio:  # noqa: S311 - sampling, not secrecy
                token = otel_context.attach(_unsampled_context())
                try:
                    await self._measured(scope, receive, send, method, None)
                finally:
                    otel_context.detach(token)
                return
            attributes = {PRESAMPLED: True}
        else:
            attributes = {}
        context = extract_context(headers) if headers else None
        with _tracer.start_as_current_span(
            f"{method} {scope['path']}", context=context, kind=trace.SpanKind.SERVER, attributes=attributes
        ) as span:
            await self._measured(scope, receive, send, method, span)

    async def _measured(self, scope: Scope, receive: Receive, send: Send, method: str, span: trace.Span | None) -> None:
        status = 500
        started = time.perf_counter()

        async def send_measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            route = _route(scope)
            if span is not None and span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR, str(status))
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)


def _route(scope: Any) -> str:
    template = scope.get("path_template")
    return str(template) if template else UNMATCHED
