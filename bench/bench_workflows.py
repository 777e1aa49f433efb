"""Orchestration cost of the YAML interpreter against a bare Temporal workflow, same run, same activity.

Both sides run N sequential ``store`` steps: the activity ``workflows.store`` of the running
workflow worker (a real PostgreSQL insert). Hearth's side is the interpreter workflow
(``hearth.interpreter``) running a definition snapshot, with its per-step events; the bare side
is a hand-written workflow in this process calling the same activity N times. For each run:

* per-step overhead = (workflow closed - workflow started - sum of the steps' activity
  execution times) / N, all from the run's history (server timestamps);
* end-to-end latency as the client sees it (start call to result).

Then throughput: runs of a one-step workflow started for ``--seconds`` at a fixed concurrency,
completed runs per second. It prints figures, it asserts nothing. Needs a running stack
(``make up``)::

    python -m bench.bench_workflows --steps 10 --runs 20

Target (issue): <= 30 ms orchestration overhead per step at p50 on the local dev server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from temporalio import workflow
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from shared.clients import postgres_engine, temporal_client
from shared.settings import load_settings
from shared.workflow import INTERPRETER_WORKFLOW, RunInput
from workflows.definitions import LoadContext, parse_text
from workflows.runs import TASK_QUEUE

COLLECTION = "bench_orchestration"


@workflow.defn(name="bench.bare_steps", sandboxed=False)
class BareSteps:
    """N sequential calls of the same activity the interpreter's ``store`` step calls."""

    @workflow.run
    async def run(self, args: dict[str, Any]) -> int:
        for i in range(int(args["steps"])):
            await workflow.execute_activity(
                "workflows.store",
                {"collection": COLLECTION, "key": f"{args['key']}-{i}", "data": {"i": i}},
                task_queue=TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                result_type=dict,
            )
        return int(args["steps"])


def definition(steps: int) -> dict[str, Any]:
    body = "\n".join(
        f"      - s{i}:\n          type: store\n          collection: {COLLECTION}\n          data: {{i: {i}}}"
        for i in range(steps)
    )
    (parsed,) = parse_text(f"workflows:\n  bench_steps:\n    steps:\n{body}\n", "bench", LoadContext(models=set()))
    return parsed.snapshot()


async def overhead_ms(handle: WorkflowHandle[Any, Any], steps: int) -> float:
    """Per-step orchestration overhead of a finished run, from its history."""
    history = await handle.fetch_history()
    events = history.events
    started_at = events[0].event_time.ToDatetime()
    closed_at = events[-1].event_time.ToDatetime()
    started: dict[int, Any] = {}
    busy = 0.0
    step_activities = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "workflows.store"
    }
    for e in events:
        if e.HasField("activity_task_started_event_attributes"):
            started[e.activity_task_started_event_attributes.scheduled_event_id] = e.event_time.ToDatetime()
        elif e.HasField("activity_task_completed_event_attributes"):
            scheduled = e.activity_task_completed_event_attributes.scheduled_event_id
            if scheduled in step_activities:
                busy += (e.event_time.ToDatetime() - started[scheduled]).total_seconds()
    return ((closed_at - started_at).total_seconds() - busy) / steps * 1000


async def hearth_run(client: TemporalClient, snapshot: dict[str, Any], run_id: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        INTERPRETER_WORKFLOW,
        RunInput(workflow="bench_steps", definition=snapshot, definition_hash="bench", input={}),
        id=run_id,
        task_queue=TASK_QUEUE,
        result_type=dict,
    )


BARE_QUEUE = f"bench-bare-{uuid.uuid4().hex[:8]}"


async def bare_run(client: TemporalClient, steps: int, run_id: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        BareSteps.run, {"steps": steps, "key": run_id}, id=run_id, task_queue=BARE_QUEUE, result_type=int
    )


async def latency(client: TemporalClient, steps: int, runs: int) -> None:
    snapshot = definition(steps)
    figures: dict[str, dict[str, list[float]]] = {side: {"e2e": [], "overhead": []} for side in ("bare", "hearth")}
    for i in range(runs):  # interleaved so drift on a shared box hits both alike
        for side in ("bare", "hearth"):
            run_id = f"bench-{side}-{uuid.uuid4().hex[:10]}"
            t0 = time.perf_counter()
            if side == "hearth":
                handle = await hearth_run(client, snapshot, run_id)
            else:
                handle = await bare_run(client, steps, run_id)
            await handle.result()
            figures[side]["e2e"].append((time.perf_counter() - t0) * 1000)
            figures[side]["overhead"].append(await overhead_ms(handle, steps))
        if i == 0:  # the first round warms connections and caches on both sides
            for side in figures:
                figures[side]["e2e"].clear()
                figures[side]["overhead"].clear()
    print(f"{steps} sequential store steps, {runs - 1} runs per side (after one warm-up):")
    for side, label in (("bare", "bare Temporal workflow"), ("hearth", "Hearth interpreter")):
        e2e, over = figures[side]["e2e"], figures[side]["overhead"]
        print(
            f"  {label:<24} end-to-end p50 {statistics.median(e2e):7.1f} ms  "
            f"orchestration per step p50 {statistics.median(over):6.1f} ms  "
            f"p90 {statistics.quantiles(over, n=10)[-1]:6.1f} ms"
        )
    added = statistics.median(figures["hearth"]["overhead"]) - statistics.median(figures["bare"]["overhead"])
    print(f"  interpreter adds {added:+.1f} ms per step at p50 over bare Temporal; target <= 30 ms per step")


async def throughput(client: TemporalClient, seconds: float, concurrency: int) -> None:
    snapshot = definition(1)
    print(f"one-step runs, {concurrency} in flight, {seconds:.0f} s per side:")
    for side in ("bare", "hearth"):
        done = 0
        stop_at = time.perf_counter() + seconds

        async def loop(side: str = side, stop_at: float = stop_at) -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                run_id = f"bench-tp-{side}-{uuid.uuid4().hex[:10]}"
                if side == "hearth":
                    handle = await hearth_run(client, snapshot, run_id)
                else:
                    handle = await bare_run(client, 1, run_id)
                await handle.result()
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        label = "bare Temporal workflow" if side == "bare" else "Hearth interpreter"
        print(f"  {label:<24} {done / elapsed:6.1f} runs/s completed ({done} runs)")


async def serve_bare(queue: str) -> None:
    """The bare side's worker, in its own process like the interpreter's worker."""
    client = await temporal_client(load_settings())
    async with Worker(client, task_queue=queue, workflows=[BareSteps]):
        await asyncio.Event().wait()


async def main(steps: int, runs: int, seconds: float, concurrency: int) -> None:
    settings = load_settings()
    client = await temporal_client(settings)
    engine = postgres_engine(settings, pool_size=1)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_workflows", "--serve-bare", BARE_QUEUE
    )
    try:
        await asyncio.sleep(2)  # the worker polls before the first run is started
        await latency(client, steps, runs)
        await throughput(client, seconds, concurrency)
    finally:
        worker.terminate()
        await worker.wait()
        async with engine.begin() as conn:  # leave no bench rows behind
            await conn.execute(text("DELETE FROM workflow_records WHERE collection = :c"), {"c": COLLECTION})
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve-bare", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare))
    else:
        asyncio.run(main(args.steps, args.runs, args.seconds, args.concurrency))
