"""OpenTelemetry tracing: one SDK tracer provider per process, W3C trace context in NATS headers.

``setup_tracing`` installs the SDK provider with the service's ``service.name`` resource; span
exporters are pluggable (the OTLP exporter is wired in by the telemetry work, tests plug an
in-memory one). Without ``setup_tracing`` the OpenTelemetry API is a no-op: context still
propagates through headers, but no spans are recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

if TYPE_CHECKING:
    from temporalio.contrib.opentelemetry import TracingInterceptor

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


def setup_tracing(
    service: str,
    *,
    version: str | None = None,
    exporters: Iterable[SpanExporter] = (),
    processors: Iterable[SpanProcessor] = (),
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
            provider = _installed["provider"] = TracerProvider(resource=Resource.create(attributes))
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
