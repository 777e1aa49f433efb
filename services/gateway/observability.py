"""The gateway's HTTP measurements: one server span and the route metrics per request.

A plain ASGI wrapper around the whole Litestar app rather than a Litestar middleware, so that
requests no route matched (404) and requests the guard refused (401/403) are counted too. The
route label is Litestar's path template (``/v1/models/{name}/infer``), set on the scope by its
router: raw paths would give one series per document id.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace

from shared.metrics import HTTP_DURATION, HTTP_REQUESTS
from shared.tracing import extract_context, get_tracer

_tracer = get_tracer(__name__)

UNMATCHED = "unmatched"
"""The route label of requests no route matched (so scanners cannot grow the label set)."""

NOT_MEASURED = ("/v1/health",)

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
"""Liveness probes run every few seconds; they would dominate the request rate."""


class Instrumented:
    """``Instrumented(app)`` is ``app`` with a span and the ``hearth_http_*`` series per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in NOT_MEASURED:
            await self.app(scope, receive, send)
            return
        # Only the trace context headers are decoded: a dict of every header costs on each request.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _TRACE_HEADERS}
        method = scope.get("method", "GET")
        status = 500
        started = time.perf_counter()

        async def send_measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        context = extract_context(headers) if headers else None
        with _tracer.start_as_current_span(
            f"{method} {scope['path']}", context=context, kind=trace.SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, send_measured)
            finally:
                route = _route(scope)
                if span.is_recording():
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
