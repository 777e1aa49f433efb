"""What telemetry costs the gateway: the same requests through a gateway with telemetry on and one
with it off (``HEARTH_TELEMETRY_ENABLED=false``: no route/model measurements, no spans), same
stack, same run, rounds interleaved. Target: <= 5% throughput loss.

The bench starts two more gateway processes on free ports against the same stack, one with
telemetry on and one with it off, and stops them after. A trivial model (Y = 2X) is loaded
for the run, as in ``bench_gateway``. Runs against the stack described by HEARTH_* (`make up`).

    .venv/bin/python -m bench.bench_telemetry --n 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

from bench.bench_gateway import BODY, pct, remove_model, timed, upload_double
from shared.settings import REPO_ROOT, HearthSettings, get_settings
from shared.tls import http_verify


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(settings: HearthSettings, *, telemetry: bool) -> tuple[subprocess.Popen[bytes], str]:
    """A second gateway process on free ports against the same stack, telemetry on or off."""
    port = _free_port()
    env = {**os.environ, **settings.child_environment()}
    env.update(
        {
            "HEARTH_GATEWAY_PORT": str(port),
            "HEARTH_METRICS_PORT": str(_free_port()),
            "HEARTH_TELEMETRY_ENABLED": "true" if telemetry else "false",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, f"{'https' if settings.tls else 'http'}://{settings.bind_host}:{port}"


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=2, verify=http_verify(get_settings())) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"a bench gateway exited with {proc.returncode}")
            try:
                if (await client.get(f"{url}/v1/health/live")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("a bench gateway did not start within 90 s")


async def main(n: int, concurrency: int, rounds: int) -> None:
    settings = get_settings()
    name = await upload_double(settings)
    # Both variants are fresh processes started alike: the stack's own long-running gateway
    # measured up to 20% slower than a fresh one with the same settings, which no flag explains.
    started = {
        "telemetry on": start_gateway(settings, telemetry=True),
        "telemetry off": start_gateway(settings, telemetry=False),
    }
    headers = {"Authorization": f"Bearer {settings.read_secret('admin-api-key')}", "content-type": "application/json"}
    payload = json.dumps(BODY).encode()
    clients = {
        label: httpx.AsyncClient(base_url=url, headers=headers, timeout=30, verify=http_verify(settings))
        for label, (_, url) in started.items()
    }
    try:
        for proc, url in started.values():
            await _wait_ready(url, proc)

        def call_for(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
            async def call() -> object:
                resp = await client.post(f"/v1/models/{name}/infer", content=payload)
                resp.raise_for_status()
                return resp

            return call

        calls = {label: call_for(client) for label, client in clients.items()}
        for call in calls.values():
            await timed(call, 100, concurrency)  # warm-up
        latencies: dict[str, list[float]] = {k: [] for k in calls}
        rates: dict[str, list[float]] = {k: [] for k in calls}
        order = list(calls)
        for i in range(rounds):
            # ABBA: alternate which variant goes first, so a drift in the box's load favours neither.
            for label in order if i % 2 == 0 else order[::-1]:
                values, per_s = await timed(calls[label], n // rounds, concurrency)
                latencies[label] += values
                rates[label].append(per_s)
        print(f"gateway HTTP inference, {n} requests per variant, concurrency {concurrency}, {rounds} rounds (ABBA):")
        off = statistics.mean(rates["telemetry off"])
        for label in calls:
            per_s = statistics.mean(rates[label])
            p50, p99 = pct(latencies[label], 50), pct(latencies[label], 99)
            change = f"   throughput {100 * (per_s / off - 1):+.1f}% vs off" if label == "telemetry on" else ""
            print(f"  {label:<14} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {per_s:8.0f} req/s{change}")
        # Each round pairs the two variants back to back: the median of the paired ratios is what
        # a drifting box disturbs least, and their spread says how far to trust it.
        ratios = sorted(
            100 * (on / off_ - 1) for on, off_ in zip(rates["telemetry on"], rates["telemetry off"], strict=True)
        )
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
        print(
            f"  paired rounds: median {statistics.median(ratios):+.1f}% "
            f"(quartiles {quartiles[0]:+.1f}% .. {quartiles[2]:+.1f}%, {len(ratios)} rounds)"
        )
        print("target: <= 5% throughput loss with telemetry on")
    finally:
        for client in clients.values():
            await client.aclose()
        for proc, _ in started.values():
            proc.terminate()
            proc.wait(timeout=30)
        await remove_model(settings, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.rounds))
