"""OCR on Triton: the recogniser's dynamic batching, and the whole pipeline against bare RapidOCR.

1. ``ocr_rec`` throughput (lines/s) at concurrency 1, 8 and 32, each request one line crop
   ([1, 3, 48, 640]), with the dynamic batcher on (config.pbtxt) and off (the same config loaded
   with ``dynamic_batching`` removed by a load override). Target: >= 2x at concurrency 32.
2. ``chinese_ocr_v3`` images/s on the generated test pages, against ``rapidocr_onnxruntime.RapidOCR``
   (the same ONNX models, in-process, in the Triton venv) on the same images in the same run.

It prints figures and asserts nothing. Runs against the stack described by ``HEARTH_*``::

    python -m bench.bench_ocr_batching [--seconds 6] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from shared.settings import REPO_ROOT, HearthSettings, load_settings
from tests.data.generate import default_samples, line_images
from tests.integration.kserve import Triton, TritonError

REC, OCR = "ocr_rec", "chinese_ocr_v3"
CONCURRENCY = (1, 8, 32)

BARE_RAPIDOCR = """
import json, sys, time
from pathlib import Path
from rapidocr_onnxruntime import RapidOCR
images = [p.read_bytes() for p in sorted(Path(sys.argv[1]).glob("*.*")) if p.suffix != ".json"]
rounds = int(sys.argv[2])
engine = RapidOCR()
for image in images:
    engine(image)
started = time.perf_counter()
for _ in range(rounds):
    for image in images:
        engine(image)
elapsed = time.perf_counter() - started
print(json.dumps({"images": len(images) * rounds, "seconds": elapsed}))
"""


def rec_line(image: Image.Image, width: int = 640) -> np.ndarray:
    """A rendered line as ocr_rec input: height 48, [-1, 1], right-padded to ``width``."""
    rgb = image.convert("RGB")
    resized = rgb.resize((min(width, round(48 * rgb.width / rgb.height)), 48), Image.Resampling.BILINEAR)
    out = np.zeros((1, 3, 48, width), dtype=np.float32)
    out[0, :, :, : resized.width] = (np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


async def closed_loop(triton: Triton, lines: list[np.ndarray], concurrency: int, seconds: float) -> float:
    """Requests/s of ``concurrency`` clients each sending one line after another for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        index = offset
        while time.perf_counter() < deadline:
            await triton.infer(REC, {"LINES": lines[index % len(lines)]}, ["TEXT", "CONFIDENCE"])
            done += 1
            index += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def bench_batching(triton: Triton, seconds: float) -> None:
    from io import BytesIO

    lines = [rec_line(Image.open(BytesIO(s.data))) for s in line_images(count=16)]
    results: dict[bool, dict[int, float]] = {}
    for batching in (False, True):
        await triton.load_variant(REC, "fp32", dynamic_batching=batching)
        await closed_loop(triton, lines, 8, 1.0)  # warm
        results[batching] = {}
        for concurrency in CONCURRENCY:
            results[batching][concurrency] = await closed_loop(triton, lines, concurrency, seconds)
    print("ocr_rec, one line [1,3,48,640] per request (lines/s):")
    print(f"  {'concurrency':>11} {'batching off':>13} {'batching on':>12} {'speed-up':>9}")
    for concurrency in CONCURRENCY:
        off, on = results[False][concurrency], results[True][concurrency]
        print(f"  {concurrency:11d} {off:13.1f} {on:12.1f} {on / off:8.2f}x")


async def triton_images_per_s(triton: Triton, images: list[bytes], rounds: int, concurrency: int) -> float:
    queue = [image for _ in range(rounds) for image in images]
    position = 0

    async def client() -> None:
        nonlocal position
        while position < len(queue):
            image = queue[position]
            position += 1
            await triton.ocr(image)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(queue) / (time.perf_counter() - started)


def bare_images_per_s(settings: HearthSettings, images: list[bytes], rounds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for index, image in enumerate(images):
            (Path(tmp) / f"{index:03d}.img").write_bytes(image)
        out = subprocess.run(
            [str(settings.triton_venv / "bin" / "python"), "-c", BARE_RAPIDOCR, tmp, str(rounds)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            timeout=1800,
        )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return float(figures["images"]) / float(figures["seconds"])


async def bench_pipeline(settings: HearthSettings, triton: Triton, rounds: int) -> None:
    images = [sample.data for sample in default_samples()]
    await triton.load_from_repository(REC)
    await triton.load_from_repository(OCR)
    for image in images:
        await triton.ocr(image)
    via_triton = {c: await triton_images_per_s(triton, images, rounds, c) for c in (1, 2, 4)}
    bare = bare_images_per_s(settings, images, rounds)
    print(f"\nchinese_ocr_v3 vs bare RapidOCR, {len(images)} generated pages x {rounds} rounds (images/s):")
    print(f"  bare RapidOCR (one process, sequential): {bare:6.2f}")
    for concurrency, rate in via_triton.items():
        print(f"  Triton, {concurrency} concurrent request(s):        {rate:6.2f}  ({rate / bare:.0%} of bare)")


async def run(settings: HearthSettings, seconds: float, rounds: int) -> None:
    async with Triton.from_settings(settings) as triton:
        was_ready = {model: await triton.ready(model) for model in (REC, OCR)}
        try:
            await triton.load_from_repository(REC)
            await bench_batching(triton, seconds)
            await bench_pipeline(settings, triton, rounds)
        finally:
            try:
                await triton.load_from_repository(REC)
                for model in (OCR, REC):
                    if not was_ready[model] and await triton.ready(model):
                        await triton.unload(model)
            except TritonError as exc:
                print(f"could not restore the models' state: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each ocr_rec point")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the test pages for the pipeline")
    args = parser.parse_args()
    asyncio.run(run(load_settings(), args.seconds, args.rounds))


if __name__ == "__main__":
    main()
