"""The telemetry scraper's parser against prometheus_client's own exposition and odd input."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from services.telemetry.scrape import Target, parse
from shared.metrics import LATENCY_BUCKETS, LatencyHistogram

pytestmark = pytest.mark.unit


def test_counters_gauges_and_histograms_of_a_real_exposition() -> None:
    registry = CollectorRegistry()
    requests = Counter("hearth_model_requests", "r", ["model", "outcome"], registry=registry)
    loaded = Gauge("hearth_model_loaded", "l", ["model"], registry=registry)
    latency = LatencyHistogram("lat_seconds", "l", ["model"], buckets=LATENCY_BUCKETS, registry=registry)
    requests.labels('o"cr\\x', "ok").inc(3)
    loaded.labels("ocr").set(1)
    for value in (0.001, 0.002, 0.5, 200.0):
        latency.labels("ocr").observe(value)
    scrape = parse(generate_latest(registry).decode(), Target("gateway", "http://x"), ts=10.0)
    scalars = {(s.name, s.labels.get("model")): s for s in scrape.scalars}
    counter = scalars[("hearth_model_requests_total", 'o"cr\\x')]
    assert (counter.kind, counter.value, counter.labels["job"]) == ("counter", 3.0, "gateway")
    assert scalars[("hearth_model_loaded", "ocr")].kind == "gauge"
    assert not any(name.endswith("_created") for name, _ in scalars)
    (histogram,) = scrape.histograms
    assert histogram.name == "lat_seconds"
    assert histogram.labels == {"model": "ocr", "job": "gateway"}
    assert histogram.bounds == (*LATENCY_BUCKETS, float("inf"))
    assert histogram.counts[-1] == histogram.count == 4
    assert histogram.counts[-2] == 3  # 200 s is beyond the last finite bound
    assert histogram.sum == pytest.approx(200.503)


def test_keep_prefixes_drop_other_families_and_untyped_lines_are_gauges() -> None:
    text = '# TYPE nv_inference_count counter\nnv_inference_count{model="a",version="1"} 7\nother 1\n'
    scrape = parse(text, Target("triton", "http://x", keep=("nv_inference_",)), ts=1.0)
    assert [(s.name, s.kind, s.value) for s in scrape.scalars] == [("nv_inference_count", "counter", 7.0)]
    loose = parse('free_form{a="b"} 2.5 1700000000000\n', Target("t", "http://x"), ts=1.0)
    assert [(s.name, s.kind, s.labels) for s in loose.scalars] == [("free_form", "gauge", {"a": "b", "job": "t"})]


def test_an_unreadable_line_is_an_error_not_a_silent_gap() -> None:
    with pytest.raises(ValueError, match="unreadable metrics line"):
        parse("{oops} 1\n", Target("t", "http://x"), ts=1.0)
