"""Spans reach an OTLP collector when ``HEARTH_OTLP_ENDPOINT`` is set: a real gRPC receiver here."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from shared.tracing import otlp_exporter

pytestmark = pytest.mark.unit


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_are_exported_over_otlp_grpc() -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        # A provider of its own: the process-wide one belongs to whichever test installed it first.
        provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
        exporter = otlp_exporter(f"http://127.0.0.1:{port}")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer(__name__).start_as_current_span("POST /v1/documents"):
            pass
        provider.shutdown()
    finally:
        server.stop(grace=None)
    spans = [
        (span.name, {kv.key: kv.value.string_value for kv in rs.resource.attributes}["service.name"])
        for request in collector.requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert spans == [("POST /v1/documents", "otlp-test")]
