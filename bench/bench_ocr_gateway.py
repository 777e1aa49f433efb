"""OCR images/second through the gateway (`POST /v1/ocr`) vs bare RapidOCR on the same images.

Bare RapidOCR runs in the Triton venv (where the OCR packages live), on the same generated pages,
in the same run. Target: the gateway path reaches >= 85% of bare. Needs a running stack (HEARTH_*).

    .venv/bin/python -m bench.bench_ocr_gateway --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from shared.settings import get_settings
from shared.tls import http_verify
from tests.data.generate import default_samples

BARE = """
import json, sys, time
from pathlib import Path
from rapidocr_onnxruntime import RapidOCR
engine = RapidOCR()
paths = sorted(Path(sys.argv[1]).iterdir())
rounds = int(sys.argv[2])
for p in paths:  # warm-up
    engine(p.read_bytes())
started = time.perf_counter()
for _ in range(rounds):
    for p in paths:
        engine(p.read_bytes())
print(json.dumps({"images": rounds * len(paths), "seconds": time.perf_counter() - started}))
"""


async def through_gateway(images: list[bytes], rounds: int, concurrency: int) -> float:
    settings = get_settings()
    headers = {"Authorization": f"Bearer {settings.read_secret('admin-api-key')}"}
    async with httpx.AsyncClient(
        base_url=settings.gateway_url, headers=headers, timeout=300, verify=http_verify(settings)
    ) as client:

        async def one(data: bytes) -> None:
            resp = await client.post("/v1/ocr", files={"file": ("page.png", data, "application/octet-stream")})
            resp.raise_for_status()

        for data in images:  # warm-up (and the load on first request)
            await one(data)
        queue = [d for _ in range(rounds) for d in images]
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return rounds * len(images) / (time.perf_counter() - started)


def main(rounds: int) -> None:
    settings = get_settings()
    samples = default_samples()
    images = [s.data for s in samples]
    with tempfile.TemporaryDirectory() as tmp:
        for s in samples:
            (Path(tmp) / s.filename).write_bytes(s.data)
        out = subprocess.run(
            [str(settings.triton_venv / "bin" / "python"), "-c", BARE, tmp, str(rounds)],
            capture_output=True,
            text=True,
            check=True,
        )
    bare = json.loads(out.stdout.strip().splitlines()[-1])
    bare_rate = bare["images"] / bare["seconds"]
    print(f"{len(images)} generated pages (zh, en, mixed, rotated, noisy), {rounds} rounds")
    print(f"  bare RapidOCR (one process, sequential)   {bare_rate:6.2f} images/s")
    for concurrency in (1, 2, 4):
        rate = asyncio.run(through_gateway(images, rounds, concurrency))
        share = 100 * rate / bare_rate
        print(f"  gateway /v1/ocr, concurrency {concurrency}          {rate:6.2f} images/s  ({share:.0f}% of bare)")
    print("target: >= 85% of bare")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
