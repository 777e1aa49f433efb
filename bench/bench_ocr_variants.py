"""OCR model variants: cold-start load time, measured memory, warm latency and CER, per variant.

For each variant (fp32, int8) of ``ocr_rec`` + ``chinese_ocr_v3``: unload both, load them with a
config override selecting the variant (timed: the cold start, warm-up included), run the
generated test set through ``chinese_ocr_v3`` (warm latency, character error rate), and measure
memory as Hearth's lifecycle manager does: the resident set (RSS) of each model's python-backend
stub processes, plus what the Triton server process itself grew by. After the unload, the server
memory that was not given back is printed.

Memory is read from /proc, so it must run on the host of Triton. Runs against the stack described
by ``HEARTH_*``::

    python -m bench.bench_ocr_variants [--rounds 3] [--update-config]

``--update-config`` writes the measured memory (rounded up to 10 MB) into each model's
``hearth.memory_mb.<variant>`` parameter.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import HearthSettings, load_settings
from tests.data.generate import default_samples
from tests.data.textmetrics import cer
from tests.integration.kserve import MODEL_REPOSITORY, Triton, TritonError, triton_pid

REC, OCR = "ocr_rec", "chinese_ocr_v3"
MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stub_pids(server: int, model: str) -> list[int]:
    """Python-backend stubs of ``model``: children of the server whose argv names its model.py."""
    marker = f"/{model}/".encode()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server and argv[0].endswith(b"triton_python_backend_stub") and len(argv) > 1 and marker in argv[1]:
            out.append(int(proc.name))
    return out


def model_rss(server: int, model: str) -> int:
    return sum(rss_bytes(pid) for pid in stub_pids(server, model))


@dataclass
class VariantReport:
    variant: str
    load_s: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    server_growth_mb: float = 0.0
    server_kept_mb: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    cer: dict[str, float] = field(default_factory=dict)


async def measure(triton: Triton, server: int, variant: str, rounds: int) -> VariantReport:
    report = VariantReport(variant)
    for model in (OCR, REC):
        if await triton.ready(model):
            await triton.unload(model)
            await triton.wait_state(model, "UNAVAILABLE")
    server_before = rss_bytes(server)
    for model in (REC, OCR):
        started = time.perf_counter()
        await triton.load_variant(model, variant)
        report.load_s[model] = time.perf_counter() - started
    samples = default_samples()
    for _ in range(rounds):
        for sample in samples:
            started = time.perf_counter()
            result = await triton.ocr(sample.data)
            report.latency_ms.append((time.perf_counter() - started) * 1000)
            report.cer[sample.name] = cer(sample.lines, [line["text"] for line in result["lines"]])
    # After traffic, not just after load: steady state is what a budget must hold.
    report.server_growth_mb = max(0, rss_bytes(server) - server_before) / MB
    for model in (REC, OCR):
        report.memory_mb[model] = model_rss(server, model) / MB
    for model in (OCR, REC):
        await triton.unload(model)
        await triton.wait_state(model, "UNAVAILABLE")
    await asyncio.sleep(1.0)
    report.server_kept_mb = max(0, rss_bytes(server) - server_before) / MB
    return report


def declared_mb(report: VariantReport, model: str) -> int:
    """Memory to declare: the model's stubs plus its share of the server's growth, up to 10 MB."""
    share = report.server_growth_mb / 2
    return int(math.ceil((report.memory_mb[model] + share) / 10.0) * 10)


def update_config(model: str, variant: str, value: int) -> None:
    path = MODEL_REPOSITORY / model / "config.pbtxt"
    key = re.escape(f"hearth.memory_mb.{variant}")
    text, count = re.subn(
        rf'(key: "{key}" value: {{ string_value: ")[^"]*(" }})', rf"\g<1>{value}\g<2>", path.read_text()
    )
    if count != 1:
        raise SystemExit(f"{path}: no single hearth.memory_mb.{variant} parameter to update")
    path.write_text(text)


async def run(settings: HearthSettings, variants: list[str], rounds: int, update: bool) -> None:
    server = triton_pid(settings)
    if server is None:
        raise SystemExit(f"no tritonserver with --http-port={settings.triton_http_port} on this host")
    reports = []
    async with Triton.from_settings(settings) as triton:
        try:
            for variant in variants:
                reports.append(await measure(triton, server, variant, rounds))
        finally:
            for model in (REC, OCR):
                try:
                    await triton.load_from_repository(model)
                except TritonError as exc:
                    print(f"could not reload {model}: {exc}")
    print(f"{'variant':8} {'model':15} {'cold load s':>11} {'stub RSS MB':>12} {'declare MB':>10}")
    for report in reports:
        for model in (REC, OCR):
            print(
                f"{report.variant:8} {model:15} {report.load_s[model]:11.2f} "
                f"{report.memory_mb[model]:12.1f} {declared_mb(report, model):10d}"
            )
    print()
    print(f"{'variant':8} {'server +MB':>10} {'kept after unload MB':>21} {'p50 ms':>8} {'mean CER':>9}  CER per image")
    for report in reports:
        per_image = " ".join(f"{name}={value:.3f}" for name, value in report.cer.items())
        print(
            f"{report.variant:8} {report.server_growth_mb:10.1f} {report.server_kept_mb:21.1f} "
            f"{statistics.median(report.latency_ms):8.0f} {statistics.mean(report.cer.values()):9.4f}  {per_image}"
        )
    if update:
        for report in reports:
            for model in (REC, OCR):
                update_config(model, report.variant, declared_mb(report, model))
        print("\nupdated hearth.memory_mb.<variant> in the model configs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="fp32,int8", help="comma-separated variants to measure")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the test set per variant")
    parser.add_argument("--update-config", action="store_true", help="write measured memory into the configs")
    args = parser.parse_args()
    asyncio.run(run(load_settings(), args.variants.split(","), args.rounds, args.update_config))


if __name__ == "__main__":
    main()
