"""Scraping Prometheus endpoints: the targets of a stack and the text format parsed into series.

Counters and gauges are kept under their sample names (``hearth_model_requests_total``,
``nv_inference_count``); a histogram becomes one cumulative bucket vector per label set. Every
series gets the label ``job`` (the target). Infrastructure targets export hundreds of families
the platform does not chart; a target's ``keep`` prefixes choose what is stored.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import httpx

from shared.settings import SERVICES, HearthSettings

Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    job: str
    url: str
    token: str | None = None
    keep: tuple[str, ...] = ()
    """Family name prefixes stored; empty keeps everything."""
    every_s: float = 0.0
    """Scraped at most this often (0: every round)."""

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
    host = settings.plaintext_bind_host  # Triton's and Temporal's metrics have no TLS: loopback only
    targets = [Target(s, settings.service_metrics_url(s), token, SERVICE_KEEP) for s in SERVICES]
    triton_host = settings.triton_host or host
    targets.append(Target("triton", f"http://{triton_host}:{settings.triton_metrics_port}/metrics", keep=TRITON_KEEP))
    temporal_host = settings.temporal_host or host
    targets.append(
        # Temporal renders 3 MB of text per scrape: every 30 s is plenty for its server figures.
        Target(
            "temporal",
            f"http://{temporal_host}:{settings.temporal_metrics_port}/metrics",
            keep=TEMPORAL_KEEP,
            every_s=30.0,
        )
    )
    return targets


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")

HistogramKey = tuple[str, tuple[tuple[str, str], ...]]


_ESCAPE = re.compile(r"\\[\\\"n]")


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda e: _UNESCAPE[e.group(0)], value) if "\\" in value else value


def _labels(text: str | None) -> dict[str, str]:
    return {m.group(1): _unescape(m.group(2)) for m in _LABEL.finditer(text)} if text else {}


def _family(name: str, types: dict[str, str]) -> tuple[str, str]:
    """The family a sample belongs to and the family's type (``untyped`` when undeclared)."""
    if name in types:
        return name, types[name]
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)], types[name[: -len(suffix)]]
    return name, "untyped"


class _Histograms:
    """Collects ``_bucket`` / ``_sum`` / ``_count`` samples into one cumulative vector per label set."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.buckets: dict[HistogramKey, dict[float, float]] = {}
        self.sums: dict[HistogramKey, float] = {}
        self.counts: dict[HistogramKey, float] = {}

    def add(self, family: str, name: str, labels: dict[str, str], value: float) -> None:
        le = labels.pop("le", None)
        key = (family, tuple(sorted({**labels, "job": self.job}.items())))
        if name.endswith("_bucket") and le is not None:
            self.buckets.setdefault(key, {})[float(le)] = value
        elif name.endswith("_sum"):
            self.sums[key] = value
        elif name.endswith("_count"):
            self.counts[key] = value

    def samples(self) -> list[HistogramSample]:
        result = []
        for key, by_bound in self.buckets.items():
            bounds = tuple(sorted(by_bound))
            cumulative = tuple(by_bound[b] for b in bounds)
            total = self.counts.get(key, cumulative[-1] if cumulative else 0.0)
            result.append(HistogramSample(key[0], dict(key[1]), bounds, cumulative, self.sums.get(key, 0.0), total))
        return result


def parse(text: str, target: Target, ts: float) -> Scrape:
    """The Prometheus text format as series of ``target``; ``_created`` samples are dropped.

    A line-level parser rather than prometheus_client's: Temporal's 3 MB exposition took 3.5 s
    through that one, and families a target does not keep are skipped before their labels are read.
    """
    scrape = Scrape(job=target.job, ts=ts)
    types: dict[str, str] = {}
    histograms = _Histograms(target.job)
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        if not line or (target.keep and not line.startswith(target.keep)):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"unreadable metrics line: {line[:120]!r}")
        name, label_text, raw = match.groups()
        value = float(raw)
        if name.endswith("_created") or math.isnan(value):
            continue
        family, kind = _family(name, types)
        if kind == "histogram":
            histograms.add(family, name, _labels(label_text), value)
            continue
        scalar_kind = "counter" if kind == "counter" or name.endswith(("_sum", "_count")) else "gauge"
        scrape.scalars.append(Scalar(name, {**_labels(label_text), "job": target.job}, scalar_kind, value))
    scrape.histograms = histograms.samples()
    return scrape


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
