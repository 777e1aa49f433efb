"""OpenTelemetry tracing: one SDK tracer provider per process, W3C trace context in NATS headers.

``setup_tracing`` installs the SDK provider with the service's ``service.name`` resource; span
exporters are pluggable. Every service exports its finished spans to the telemetry service over
NATS (``NatsSpanExporter``, core NATS on ``SPANS_SUBJECT``: fire-and-forget, so a telemetry outage
costs traces, never requests), and to an OTLP collector when ``HEARTH_OTLP_ENDPOINT`` is set.
Without ``setup_tracing`` the OpenTelemetry API is a no-op: context still propagates through
headers, but no spans are recorded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, TraceIdRatioBased

if TYPE_CHECKING:
    from temporalio.contrib.opentelemetry import TracingInterceptor

SPANS_SUBJECT: Final = "hearth.telemetry.spans"
"""Core NATS subject finished spans are published on (a JSON list of ``span_record`` dicts)."""

MAX_ATTRIBUTE_CHARS: Final = 512

_lock = threading.Lock()
_installed: dict[str, TracerProvider] = {}


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads NATS headers case-insensitively: other clients may send ``Traceparent``."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == lowered), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


class _HeaderSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[key] = value


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


INFERENCE_ROOT_SUFFIX: Final = "/infer"
INFERENCE_ROOT_PREFIX: Final = "infer "
PRESAMPLED: Final = "hearth.presampled"
"""Span attribute: the caller already kept this inference trace at the ratio (the gateway does)."""


class HearthSampler(Sampler):
    """Every trace is kept except plain inference traffic, of which ``inference_ratio`` is kept.

    A trace that starts at ``POST /v1/models/{name}/infer`` or at the ``hearth.infer`` endpoint
    without a caller's trace is a single model call, thousands per second on a busy gateway, and
    span recording is the largest part of what telemetry costs per request. Its figures are in
    the metrics whatever the sampling; the traces are for finding the slow ones. Documents,
    workflows, OCR and everything else are traced in full. A span with a parent follows the
    parent's decision, so a trace is always whole.
    """

    def __init__(self, inference_ratio: float = 1.0) -> None:
        self._ratio = TraceIdRatioBased(inference_ratio)
        self._inference_ratio = inference_ratio

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            decision = Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP
            return SamplingResult(decision, attributes, parent.trace_state)
        if attributes and attributes.get(PRESAMPLED):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        if name.endswith(INFERENCE_ROOT_SUFFIX) or name.startswith(INFERENCE_ROOT_PREFIX):
            return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return f"HearthSampler(inference_ratio={self._inference_ratio})"


def setup_tracing(
    service: str,
    *,
    version: str | None = None,
    exporters: Iterable[SpanExporter] = (),
    processors: Iterable[SpanProcessor] = (),
    sampler: Sampler | None = None,
) -> TracerProvider:
    """Install (once per process) the SDK tracer provider for ``service`` and return it.

    Each exporter gets a ``BatchSpanProcessor``; ``processors`` are added as given. A second call
    returns the provider already installed and only adds the new exporters/processors, because
    OpenTelemetry allows one global provider per process.
    """
    with _lock:
        provider = _installed.get("provider")
        if provider is None:
            attributes: dict[str, str] = {SERVICE_NAME: service}
            if version:
                attributes[SERVICE_VERSION] = version
            provider = _installed["provider"] = TracerProvider(
                resource=Resource.create(attributes), sampler=sampler or HearthSampler()
            )
            trace.set_tracer_provider(provider)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def get_tracer(name: str) -> trace.Tracer:
    """The tracer for an instrumentation scope; pass ``__name__``."""
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Write the current trace context (``traceparent``, ``tracestate``, baggage) into ``headers``.

    Mutates and returns ``headers`` (a new dict when ``None``); without an active span it adds
    nothing.
    """
    carrier: dict[str, str] = {} if headers is None else headers
    propagate.inject(carrier, setter=_SETTER)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by message headers (an empty context when there is none)."""
    return propagate.extract(headers or {}, getter=_GETTER)


def trace_id_hex(context: Context | None = None) -> str | None:
    """The 32-hex-digit trace id of the span in ``context`` (default: current), if any."""
    span_context = trace.get_current_span(context).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def temporal_tracing_interceptor() -> TracingInterceptor:
    """The Temporal interceptor that carries trace context through workflow and activity headers.

    Pass it in ``interceptors=[...]`` of ``temporalio.client.Client.connect`` (it then applies to
    the client and to workers built on that client).
    """
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return TracingInterceptor()


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as the telemetry service stores it (times in unix seconds)."""
    context = span.get_span_context()
    parent = span.parent
    attributes = {k: _attribute(v) for k, v in (span.attributes or {}).items()}
    return {
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "service": str(span.resource.attributes.get(SERVICE_NAME, "unknown")),
        "kind": span.kind.name.lower(),
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or span.start_time or 0) / 1e9,
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description,
        "attributes": attributes,
    }


def _attribute(value: object) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value[:MAX_ATTRIBUTE_CHARS] if isinstance(value, str) else value
    return str(value)[:MAX_ATTRIBUTE_CHARS]


class NatsSpanExporter(SpanExporter):
    """Publishes finished spans to the telemetry service; called on the batch processor's thread."""

    def __init__(self, publish: Any, loop: asyncio.AbstractEventLoop, subject: str = SPANS_SUBJECT) -> None:
        self._publish = publish  # nats.aio.client.Client.publish
        self._loop = loop
        self._subject = subject

    def export(self, spans: Any) -> SpanExportResult:
        records = [span_record(s) for s in spans]
        if not records or self._loop.is_closed():
            return SpanExportResult.SUCCESS
        data = json.dumps(records, separators=(",", ":")).encode()
        try:
            asyncio.run_coroutine_threadsafe(self._publish(self._subject, data), self._loop)
        except RuntimeError:  # the loop stopped between the check and the call: shutting down
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the NATS connection belongs to the service."""


def otlp_exporter(endpoint: str) -> SpanExporter:
    """The OTLP/gRPC exporter towards a collector (``HEARTH_OTLP_ENDPOINT``)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
