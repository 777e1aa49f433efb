"""W3C trace context in NATS headers."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared.tracing import extract_context, inject_headers, trace_id_hex

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

_tracer = TracerProvider().get_tracer("test")


def test_inject_then_extract_round_trip() -> None:
    with _tracer.start_as_current_span("producer") as span:
        headers = inject_headers({"Nats-Msg-Id": "e1"})
    assert headers["Nats-Msg-Id"] == "e1"
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")

    extracted = trace.get_current_span(extract_context(headers)).get_span_context()
    assert extracted.trace_id == ctx.trace_id
    assert extracted.span_id == ctx.span_id
    assert extracted.is_remote
    assert trace_id_hex(extract_context(headers)) == f"{ctx.trace_id:032x}"


def test_extract_is_case_insensitive() -> None:
    with _tracer.start_as_current_span("producer") as span:
        headers = inject_headers()
    upper = {"Traceparent": headers["traceparent"]}
    assert (
        trace.get_current_span(extract_context(upper)).get_span_context().trace_id == span.get_span_context().trace_id
    )


def test_nothing_is_injected_without_a_span() -> None:
    assert inject_headers() == {}
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid
    assert trace_id_hex(extract_context({})) is None


def test_the_sampler_keeps_everything_but_a_share_of_plain_inference() -> None:
    from opentelemetry.sdk.trace.sampling import Decision
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from shared.tracing import HearthSampler

    none = HearthSampler(inference_ratio=0.0)
    assert none.should_sample(None, 123, "POST /v1/models/double/infer").decision == Decision.DROP
    assert none.should_sample(None, 123, "infer ocr_rec").decision == Decision.DROP
    assert none.should_sample(None, 123, "POST /v1/documents").decision == Decision.RECORD_AND_SAMPLE
    every = HearthSampler(inference_ratio=1.0)
    assert every.should_sample(None, 123, "POST /v1/models/double/infer").decision == Decision.RECORD_AND_SAMPLE
    for flags, expected in ((TraceFlags.SAMPLED, Decision.RECORD_AND_SAMPLE), (TraceFlags.DEFAULT, Decision.DROP)):
        parent = set_span_in_context(NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(flags))))
        # A child follows its parent whatever its own name: a trace is kept or dropped whole.
        assert none.should_sample(parent, 1, "infer ocr_rec").decision == expected
        assert every.should_sample(parent, 1, "POST /v1/documents").decision == expected
