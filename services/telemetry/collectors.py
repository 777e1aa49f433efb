"""What the telemetry service measures itself and exposes on its own /metrics endpoint.

The host and its processes (psutil), GPUs (NVML), NATS (its monitoring port's JSON) and the
workflow engine (its ``hearth.workflow.*`` events) become Prometheus series of the telemetry
process. It then scrapes itself like every other target, so the store, the alert rules, the
dashboard and an external Prometheus all see one set of names.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.events.envelope import Envelope
from shared.events.workflow import WorkflowCompleted, WorkflowFailed, WorkflowStepCompleted
from shared.gpus import GpuReading, read_gpus
from shared.metrics import LatencyHistogram, geometric_buckets

# Workflow runs take seconds to hours: coarser than request latencies, same x1.1 precision.
RUN_BUCKETS = geometric_buckets(0.01, 86400.0, 1.1)

WORKFLOW_RUNS = Counter("hearth_workflow_runs", "Workflow runs finished, by outcome.", ["workflow", "outcome"])
WORKFLOW_RUN_DURATION = LatencyHistogram(
    "hearth_workflow_run_duration_seconds", "Duration of finished workflow runs.", ["workflow"], buckets=RUN_BUCKETS
)
WORKFLOW_STEPS = Counter(
    "hearth_workflow_steps", "Workflow steps finished, by outcome.", ["workflow", "step", "outcome"]
)
WORKFLOW_STEP_DURATION = LatencyHistogram(
    "hearth_workflow_step_duration_seconds", "Duration of workflow steps.", ["workflow", "step"], buckets=RUN_BUCKETS
)
NATS_PENDING = Gauge(
    "hearth_nats_consumer_pending", "Messages not yet delivered to a consumer.", ["stream", "consumer"]
)
NATS_ACK_PENDING = Gauge(
    "hearth_nats_consumer_ack_pending", "Messages delivered and not yet acknowledged.", ["stream", "consumer"]
)
NATS_REDELIVERED = Gauge(
    "hearth_nats_consumer_redelivered", "Messages redelivered at least once, now pending.", ["stream", "consumer"]
)
NATS_CONNECTIONS = Gauge("hearth_nats_connections", "Client connections to NATS.")


@dataclass(slots=True)
class RecentRun:
    workflow_id: str
    workflow: str
    status: str
    started_at: float
    duration_ms: float
    failed_step: str | None = None


@dataclass
class WorkflowRecorder:
    """Turns workflow events into series; a redelivered event (same id) is counted once."""

    recent: deque[RecentRun] = field(default_factory=lambda: deque(maxlen=50))
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True

    async def on_step(self, envelope: Envelope, data: WorkflowStepCompleted) -> None:
        if self._first_time(envelope.id):
            WORKFLOW_STEPS.labels(data.workflow, data.step_id, data.outcome).inc()
            WORKFLOW_STEP_DURATION.labels(data.workflow, data.step_id).observe(data.duration_ms / 1000)

    async def on_run(self, envelope: Envelope, data: WorkflowCompleted | WorkflowFailed) -> None:
        if not self._first_time(envelope.id):
            return
        outcome = "completed" if isinstance(data, WorkflowCompleted) else "failed"
        WORKFLOW_RUNS.labels(data.workflow, outcome).inc()
        WORKFLOW_RUN_DURATION.labels(data.workflow).observe(data.duration_ms / 1000)
        finished = envelope.time.timestamp()
        failed_step = data.failed_step if isinstance(data, WorkflowFailed) else None
        self.recent.appendleft(
            RecentRun(
                data.workflow_id,
                data.workflow,
                outcome,
                finished - data.duration_ms / 1000,
                data.duration_ms,
                failed_step,
            )
        )


async def poll_nats(client: httpx.AsyncClient, monitor_url: str) -> None:
    """Consumer backlogs and connections from NATS monitoring (``/jsz``, ``/varz``) into the gauges."""
    jsz = (await client.get(f"{monitor_url}/jsz", params={"consumers": "true"})).json()
    varz = (await client.get(f"{monitor_url}/varz")).json()
    NATS_CONNECTIONS.set(varz.get("connections", 0))
    NATS_PENDING.clear()
    NATS_ACK_PENDING.clear()
    NATS_REDELIVERED.clear()
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            for consumer in stream.get("consumer_detail", []) or []:
                labels = (stream["name"], consumer["name"])
                NATS_PENDING.labels(*labels).set(consumer.get("num_pending", 0))
                NATS_ACK_PENDING.labels(*labels).set(consumer.get("num_ack_pending", 0))
                NATS_REDELIVERED.labels(*labels).set(consumer.get("num_redelivered", 0))
    _NATS_TOTALS.update(in_msgs=float(varz.get("in_msgs", 0)), out_msgs=float(varz.get("out_msgs", 0)))


_NATS_TOTALS: dict[str, float] = {}

_PROCESS_NAMES = (
    ("triton_python_backend_stub", "triton"),
    ("tritonserver", "triton"),
    ("nats-server", "nats"),
    ("postgres", "postgres"),
    ("temporal", "temporal"),
    ("bao", "openbao"),
)


def process_label(proc: psutil.Process) -> str | None:
    """The stack component a process belongs to (``None``: not one of the stack's)."""
    try:
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if "-m" in cmdline:
        module = cmdline[cmdline.index("-m") + 1] if cmdline.index("-m") + 1 < len(cmdline) else ""
        if module == "workflows":
            return "workflows"
        if module.startswith("services."):
            return module.removeprefix("services.")
    program = Path(cmdline[0]).name if cmdline else ""
    for marker, label in _PROCESS_NAMES:
        if program.startswith(marker):
            return label
    return None


class HostCollector(Collector):
    """Host, per-process and GPU series, read when the endpoint is scraped (on its thread)."""

    def __init__(self, disk_path: Path, root_pid: int | None) -> None:
        self.disk_path = disk_path
        self.root_pid = root_pid  # supervisord: its descendants are the stack
        self._procs: dict[int, psutil.Process] = {}
        self.gpu = GpuReading(False, "not read yet")
        psutil.cpu_percent(interval=None)  # primes the counter: the first real read covers a scrape interval

    def _stack_processes(self) -> Iterator[tuple[str, psutil.Process]]:
        try:
            root = psutil.Process(self.root_pid) if self.root_pid else psutil.Process()
            members = [root, *root.children(recursive=True)] if self.root_pid else [root]
        except psutil.Error:
            return
        alive = set()
        for proc in members:
            label = process_label(proc)
            if label is None:
                continue
            alive.add(proc.pid)
            known = self._procs.setdefault(proc.pid, proc)
            if known.create_time() != proc.create_time():  # pid reused
                known = self._procs[proc.pid] = proc
            yield label, known
        for pid in set(self._procs) - alive:
            del self._procs[pid]

    def collect(self) -> Iterator[Any]:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.disk_path))
        net = psutil.net_io_counters()
        yield GaugeMetricFamily("hearth_host_cpu_percent", "Host CPU use, all cores.", value=psutil.cpu_percent(None))
        mem = GaugeMetricFamily("hearth_host_memory_bytes", "Host memory.", labels=["kind"])
        mem.add_metric(["used"], float(memory.total - memory.available))
        mem.add_metric(["total"], float(memory.total))
        yield mem
        dsk = GaugeMetricFamily("hearth_host_disk_bytes", "Disk holding the state directory.", labels=["kind"])
        dsk.add_metric(["used"], float(disk.used))
        dsk.add_metric(["total"], float(disk.total))
        yield dsk
        network = CounterMetricFamily("hearth_host_network_bytes", "Host network traffic.", labels=["direction"])
        network.add_metric(["rx"], float(net.bytes_recv))
        network.add_metric(["tx"], float(net.bytes_sent))
        yield network
        cpu = GaugeMetricFamily("hearth_process_cpu_percent", "CPU use of a stack component.", labels=["process"])
        rss = GaugeMetricFamily("hearth_process_resident_bytes", "Resident memory of a component.", labels=["process"])
        per_cpu: dict[str, float] = {}
        per_rss: dict[str, float] = {}
        for label, proc in self._stack_processes():
            try:
                per_cpu[label] = per_cpu.get(label, 0.0) + proc.cpu_percent(None)
                per_rss[label] = per_rss.get(label, 0.0) + float(proc.memory_info().rss)
            except psutil.Error:
                continue
        for label in sorted(per_cpu):
            cpu.add_metric([label], per_cpu[label])
            rss.add_metric([label], per_rss[label])
        yield cpu
        yield rss
        if _NATS_TOTALS:
            for key in ("in_msgs", "out_msgs"):
                yield CounterMetricFamily(f"hearth_nats_{key}", f"NATS messages ({key}).", value=_NATS_TOTALS[key])
        yield from self._gpu_families()

    def _gpu_families(self) -> Iterator[Any]:
        self.gpu = read_gpus()
        if not self.gpu.present:
            return  # absent, not zero: no GPU series at all
        families = {
            "utilization_percent": GaugeMetricFamily("hearth_gpu_utilization_percent", "GPU use.", labels=["gpu"]),
            "power_watts": GaugeMetricFamily("hearth_gpu_power_watts", "GPU power draw.", labels=["gpu"]),
            "temperature_celsius": GaugeMetricFamily(
                "hearth_gpu_temperature_celsius", "GPU temperature.", labels=["gpu"]
            ),
        }
        memory = GaugeMetricFamily("hearth_gpu_memory_bytes", "GPU memory.", labels=["gpu", "kind"])
        for sample in self.gpu.gpus:
            gpu = str(sample.index)
            for key, family in families.items():
                value = getattr(sample, key)
                if value is not None:  # a field this board does not report is absent, not zero
                    family.add_metric([gpu], value)
            memory.add_metric([gpu, "used"], sample.memory_used_bytes)
            memory.add_metric([gpu, "total"], sample.memory_total_bytes)
        yield from families.values()
        yield memory
