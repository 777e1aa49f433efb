"""Gateway overhead: a trivial model through the gateway (HTTP and NATS) vs direct Triton gRPC.

Same model, same input, same run, rounds interleaved. Target: <= 1 ms added at p50 and <= 15%
throughput loss. The model (Y = 2X, python backend) is uploaded into Triton through its admin API
for the run and unloaded after. Runs against the stack described by HEARTH_* (`make up`).

    .venv/bin/python bench/bench_gateway.py --n 500 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import nats
import numpy as np
import tritonclient.grpc.aio as grpcclient

from services.gateway.inference.lifecycle import repository_config
from shared.natsauth import connect_options
from shared.settings import HearthSettings, get_settings
from shared.tls import http_verify

MODEL_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "triton_models" / "double"
BODY = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


async def timed(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, n / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def upload_double(settings: HearthSettings) -> str:
    """Load a uniquely named copy of the tests' ``double`` model into Triton; returns its name."""
    name = f"bench_double_{uuid.uuid4().hex[:6]}"
    admin = {"hearth-admin": settings.read_secret("triton-admin-key")}
    config = (repository_config([MODEL_DIR.parent], MODEL_DIR.name) or {}) | {"name": name}
    files = {"file:1/model.py": base64.b64encode((MODEL_DIR / "1" / "model.py").read_bytes()).decode()}
    async with httpx.AsyncClient(timeout=120) as http:
        resp = await http.post(
            f"{settings.triton_http_url}/v2/repository/models/{name}/load",
            json={"parameters": {"config": json.dumps(config), **files}},
            headers=admin,
        )
        resp.raise_for_status()
    return name


async def remove_model(settings: HearthSettings, name: str) -> None:
    admin = {"hearth-admin": settings.read_secret("triton-admin-key")}
    async with httpx.AsyncClient(timeout=60) as http:
        await http.post(f"{settings.triton_http_url}/v2/repository/models/{name}/unload", headers=admin)


async def main(n: int, concurrency: int, rounds: int) -> None:
    settings = get_settings()
    name = await upload_double(settings)
    triton = grpcclient.InferenceServerClient(settings.triton_grpc_address)
    gateway = httpx.AsyncClient(
        base_url=settings.gateway_url,
        verify=http_verify(settings),
        headers={"Authorization": f"Bearer {settings.read_secret('admin-api-key')}"},
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=concurrency * 2),
    )
    nc = await nats.connect(settings.nats_url, **connect_options(settings))
    payload = json.dumps(BODY).encode()
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)

    async def direct() -> object:
        inp = grpcclient.InferInput("X", [1, 4], "FP32")
        inp.set_data_from_numpy(x)
        result = await triton.infer(name, [inp], outputs=[grpcclient.InferRequestedOutput("Y")])
        return result.as_numpy("Y")

    async def via_http() -> object:
        r = await gateway.post(
            f"/v1/models/{name}/infer", content=payload, headers={"content-type": "application/json"}
        )
        r.raise_for_status()
        return r.json()

    async def via_nats() -> object:
        msg = await nc.request(f"hearth.infer.{name}", payload, timeout=30)
        return json.loads(msg.data)

    variants = {"direct Triton gRPC": direct, "gateway HTTP": via_http, "gateway NATS": via_nats}
    try:
        for call in variants.values():  # warm-up: connections, first-request paths
            for _ in range(50):
                await call()
        for conc in (1, concurrency):
            lat: dict[str, list[float]] = {k: [] for k in variants}
            rate: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(rounds):
                for label, call in variants.items():
                    values, per_s = await timed(call, n // rounds, conc)
                    lat[label] += values
                    rate[label].append(per_s)
            print(f"concurrency {conc}, {n} requests per path:")
            base_p50, base_rate = pct(lat["direct Triton gRPC"], 50), statistics.mean(rate["direct Triton gRPC"])
            for label in variants:
                p50, p99, per_s = pct(lat[label], 50), pct(lat[label], 99), statistics.mean(rate[label])
                extra = ""
                if label != "direct Triton gRPC":
                    extra = f"   +{p50 - base_p50:.2f} ms at p50, throughput {100 * (per_s / base_rate - 1):+.1f}%"
                print(f"  {label:<20} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {per_s:8.0f} req/s{extra}")
        print("targets: <= 1 ms added at p50, <= 15% throughput loss")
    finally:
        await gateway.aclose()
        await nc.close()
        await triton.close()
        await remove_model(settings, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.rounds))
