"""Scraping Prometheus endpoints: the targets of a stack and the text format parsed into series.

Counters and gauges are kept under their sample names (``hearth_model_requests_total``,
``nv_inference_count``); a histogram becomes one cumulative bucket vector per label set. Every
series gets the label ``job`` (the target). Infrastructure targets export hundreds of families
the platform does not chart; a target's ``keep`` prefixes choose what is stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import SERVICES, HearthSettings

Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    job: str
    url: str
    token: str | None = None
    keep: tuple[str, ...] = ()
    """Family name prefixes stored; empty keeps everything."""

    def keeps(self, family: str) -> bool:
        return not self.keep or family.startswith(self.keep)


@dataclass(frozen=True, slots=True)
class Scalar:
    name: str
    labels: Labels
    kind: str  # counter | gauge
    value: float


@dataclass(frozen=True, slots=True)
class HistogramSample:
    name: str
    labels: Labels
    bounds: tuple[float, ...]
    counts: tuple[float, ...]  # cumulative, one per bound (the last bound is +Inf)
    sum: float
    count: float


@dataclass(slots=True)
class Scrape:
    job: str
    ts: float
    scalars: list[Scalar] = field(default_factory=list)
    histograms: list[HistogramSample] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0


SERVICE_KEEP = ("hearth_", "process_")
TRITON_KEEP = ("nv_inference_", "nv_gpu_", "nv_cpu_", "nv_energy_")
TEMPORAL_KEEP = ("service_requests", "service_errors", "service_latency", "workflow_", "persistence_errors")


def stack_targets(settings: HearthSettings) -> list[Target]:
    """Every metrics endpoint of the single-box stack."""
    token = settings.read_secret("metrics-token") if settings.secret_path("metrics-token").exists() else None
    host = settings.bind_host
    targets = [Target(s, settings.service_metrics_url(s), token, SERVICE_KEEP) for s in SERVICES]
    triton_host = settings.triton_host or host
    targets.append(Target("triton", f"http://{triton_host}:{settings.triton_metrics_port}/metrics", keep=TRITON_KEEP))
    temporal_host = settings.temporal_host or host
    targets.append(
        Target("temporal", f"http://{temporal_host}:{settings.temporal_metrics_port}/metrics", keep=TEMPORAL_KEEP)
    )
    return targets


def parse(text: str, target: Target, ts: float) -> Scrape:
    """The Prometheus text format as series of ``target``; ``_created`` samples are dropped."""
    scrape = Scrape(job=target.job, ts=ts)
    for family in text_string_to_metric_families(text):
        if not target.keeps(family.name):
            continue
        if family.type == "histogram":
            scrape.histograms.extend(_histograms(family.name, family.samples, target.job))
            continue
        kind = "counter" if family.type == "counter" else "gauge"
        for sample in family.samples:
            if sample.name.endswith("_created") or math.isnan(sample.value):
                continue
            sample_kind = "counter" if sample.name.endswith(("_sum", "_count")) else kind
            labels = {**sample.labels, "job": target.job}
            scrape.scalars.append(Scalar(sample.name, labels, sample_kind, float(sample.value)))
    return scrape


def _histograms(name: str, samples: Iterable[object], job: str) -> list[HistogramSample]:
    buckets: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    sums: dict[tuple[tuple[str, str], ...], float] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for sample in samples:
        sample_name: str = sample.name  # type: ignore[attr-defined]
        labels: dict[str, str] = dict(sample.labels)  # type: ignore[attr-defined]
        value = float(sample.value)  # type: ignore[attr-defined]
        le = labels.pop("le", None)
        key = tuple(sorted({**labels, "job": job}.items()))
        if sample_name.endswith("_bucket") and le is not None:
            buckets.setdefault(key, {})[float(le)] = value
        elif sample_name.endswith("_sum"):
            sums[key] = value
        elif sample_name.endswith("_count"):
            counts[key] = value
    result = []
    for key, by_bound in buckets.items():
        bounds = tuple(sorted(by_bound))
        cumulative = tuple(by_bound[b] for b in bounds)
        total = counts.get(key, cumulative[-1] if cumulative else 0.0)
        result.append(HistogramSample(name, dict(key), bounds, cumulative, sums.get(key, 0.0), total))
    return result


async def scrape(client: httpx.AsyncClient, target: Target, timeout_s: float) -> Scrape:
    """One scrape; a failure is reported in ``Scrape.error`` (with the ``up`` series at 0), never raised."""
    ts = time.time()
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    try:
        response = await client.get(target.url, headers=headers, timeout=timeout_s)
        response.raise_for_status()
        result = parse(response.text, target, ts)
    except (httpx.HTTPError, ValueError) as exc:
        result = Scrape(job=target.job, ts=ts, error=f"{type(exc).__name__}: {exc}"[:300])
    result.duration_s = time.perf_counter() - started
    result.scalars.append(Scalar("up", {"job": target.job}, "gauge", 0.0 if result.error else 1.0))
    result.scalars.append(Scalar("scrape_duration_seconds", {"job": target.job}, "gauge", result.duration_s))
    return result
