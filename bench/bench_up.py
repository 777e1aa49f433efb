"""`hearth up` time to all-healthy: first start on an empty state dir, then a restart (down/up).

Target: < 60 s after `make setup` on 2 cores. Uses its own state dir and ports
(HEARTH_BENCH_PORT_OFFSET, default 40000) so it runs beside a dev stack.

    .venv/bin/python bench/bench_up.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def hearth(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        raise SystemExit(f"hearth {' '.join(args)} failed")
    return elapsed


def main() -> None:
    offset = os.environ.get("HEARTH_BENCH_PORT_OFFSET", "40000")
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env.update({"HEARTH_HOME": home, "HEARTH_PORT_OFFSET": offset})
        try:
            first = hearth(env, "up")
            down = hearth(env, "down")
            second = hearth(env, "up")
        finally:
            subprocess.run(
                [sys.executable, "-m", "shared.cli", "down"], cwd=REPO, env=env, capture_output=True, check=False
            )
    cores = os.cpu_count()
    print(f"hearth up, first start (empty state dir): {first:6.1f} s   (target < 60 s, {cores} cores)")
    print(f"hearth down:                               {down:6.1f} s")
    print(f"hearth up, restart with data:              {second:6.1f} s   (target < 60 s)")


if __name__ == "__main__":
    main()
