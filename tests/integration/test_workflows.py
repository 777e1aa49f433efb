"""The workflow engine on the real stack: Temporal dev server, NATS, PostgreSQL, Triton, the worker.

Definitions come from ``tests/data/workflows/engine.yaml`` (added to the test stack) and the
shipped ``workflows/*.yaml``. Runs are started through ``RunService`` (the gateway's routes are
tested in ``test_gateway_workflows.py``); outcomes are read back from Temporal, PostgreSQL rows
and the events in JetStream.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client as TemporalClient

from shared.bus import Bus
from shared.capabilities import call_capability
from shared.clients import postgres_engine, temporal_client
from shared.errors import NotFound
from shared.events.envelope import Envelope
from shared.health import probe_services
from shared.natsauth import connect_options
from shared.settings import HearthSettings
from shared.workflow import (
    CancelRequest,
    EventPublished,
    RecordStored,
    ReviewDecision,
    StepContext,
    StoreRecord,
)
from shared.workflow import PublishEvent as PublishParams
from tests.integration.histories import replay
from workflows.runs import RunDetail, RunFilter, RunService
from workflows.versions import DefinitionStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FINISHED = ("completed", "failed", "cancelled", "terminated", "timed_out")


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def temporal(stack: HearthSettings) -> TemporalClient:
    return await temporal_client(stack)


@pytest.fixture(scope="module")
async def runs(temporal: TemporalClient, engine: AsyncEngine) -> RunService:
    return RunService(temporal, DefinitionStore(engine))


@pytest.fixture(scope="module")
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    async with await Bus.connect(stack, name="test-workflows") as connected:
        yield connected


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def wait_status(
    runs: RunService, run_id: str, until: Callable[[RunDetail], bool], timeout: float = 60.0
) -> RunDetail:
    deadline = time.monotonic() + timeout
    detail = await runs.describe(run_id)
    while not until(detail):
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {detail.status} after {timeout}s: {detail.model_dump_json()}")
        await asyncio.sleep(0.2)
        detail = await runs.describe(run_id)
    return detail


async def finished(runs: RunService, run_id: str, timeout: float = 60.0) -> RunDetail:
    return await wait_status(runs, run_id, lambda d: d.status in FINISHED, timeout)


async def wait_triggered(
    runs: RunService, run_id: str, until: Callable[[RunDetail], bool], timeout: float = 60.0
) -> RunDetail:
    """``wait_status`` for a run a trigger starts: it may not exist yet when the wait begins."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await wait_status(runs, run_id, until, timeout)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def records(engine: AsyncEngine, collection: str, tag_value: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT data, workflow_id, step_id FROM workflow_records "
                    "WHERE collection = :c AND data->>'tag' = :t ORDER BY id"
                ),
                {"c": collection, "t": tag_value},
            )
        ).all()
    return [{"data": r.data, "workflow_id": r.workflow_id, "step_id": r.step_id} for r in rows]


async def stored_events(stack: HearthSettings, run_id: str, subject: str = "hearth.workflow.>") -> list[Envelope]:
    """The events JetStream kept for one run (duplicates dropped by the server do not appear)."""
    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    try:
        js = nc.jetstream()
        stream = "HEARTH_WORKFLOW" if subject.startswith("hearth.workflow") else "HEARTH_INGEST"
        sub = await js.pull_subscribe(
            subject, stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30)
        )
        out: list[Envelope] = []
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's, depending on the path
                break
            for msg in msgs:
                envelope = Envelope.from_json(msg.data)
                if envelope.correlationid == run_id:
                    out.append(envelope)
        return out
    finally:
        await nc.close()


async def worker_back(stack: HearthSettings, killed_pid: int, timeout: float = 80.0) -> None:
    """Wait until supervisor has restarted the workflow worker and it answers its health request.

    The review's progress query needs a worker: delivered before the new one polls, it fails (on a
    loaded box the restart, with its AppRole login, payload key and Temporal connect, took > 30 s).
    """
    deadline = time.monotonic() + timeout
    while True:
        pid = supervisorctl(stack, "pid", "workflows").strip()
        if pid.isdigit() and int(pid) not in (0, killed_pid):
            health = await probe_services(stack, ["workflows"])
            if health["workflows"].status == "ok":
                return
        assert time.monotonic() < deadline, f"the workflow worker is not back after {timeout:.0f}s"
        await asyncio.sleep(1)


def supervisorctl(stack: HearthSettings, *args: str) -> str:
    ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.run_dir / "supervisord.conf"), *args]
    return subprocess.run(ctl, capture_output=True, text=True, timeout=60, check=False).stdout


def skip_on_external_stack() -> None:
    if os.environ.get("HEARTH_TEST_STACK") == "external":
        pytest.skip("stops processes of the stack")


# ---- sequences, outputs, events ----------------------------------------------------------------


async def test_a_pipeline_passes_outputs_along_and_reports_each_step(
    stack: HearthSettings, runs: RunService, engine: AsyncEngine, temporal: TemporalClient
) -> None:
    t = tag()
    started = await runs.start("t_pipeline", {"x": [[1, 2, 3, 4]], "tag": t})
    detail = await finished(runs, started.id)
    assert detail.status == "completed", detail.error
    assert detail.outputs is not None
    assert detail.outputs["double"]["outputs"]["Y"] == [2.0, 4.0, 6.0, 8.0]
    assert [s.status for s in detail.progress.steps] == ["completed"] * 3  # type: ignore[union-attr]
    rows = await records(engine, "t_pipeline", t)
    assert [r["data"]["y"] for r in rows] == [[2.0, 4.0, 6.0, 8.0]]
    assert rows[0]["workflow_id"] == started.id
    assert rows[0]["step_id"] == "keep"

    events = await stored_events(stack, started.id)
    kinds = sorted(e.type for e in events)
    assert kinds == ["hearth.workflow.completed.v1"] + ["hearth.workflow.step.completed.v1"] * 3
    done = next(e for e in events if e.type == "hearth.workflow.completed.v1")
    assert done.data["definition_hash"] == started.definition_hash
    assert done.data["outputs"]["keep"]["record_id"] == detail.outputs["keep"]["record_id"]
    step_ids = [e.data["step_id"] for e in sorted(events, key=lambda e: e.time) if "step_id" in e.data]
    assert step_ids == ["double", "keep", "announce"]
    published = list(await stored_events(stack, started.id, "hearth.ingest.document.v1"))
    assert len(published) == 1
    assert published[0].data["metadata"] == {"record": detail.outputs["keep"]["record_id"]}
    assert published[0].id == detail.outputs["announce"]["event_id"]
    await replay(temporal, started.id, "t_pipeline")


async def test_parallel_members_run_and_when_conditions_choose_steps(
    runs: RunService, engine: AsyncEngine, temporal: TemporalClient
) -> None:
    t = tag()
    started = await runs.start("t_branches", {"tag": t})
    detail = await finished(runs, started.id)
    assert detail.status == "completed", detail.error
    by_id = {s.id: s for s in detail.progress.steps}  # type: ignore[union-attr]
    assert by_id["left"].status == by_id["right"].status == "completed"
    assert by_id["big"].status == "completed"
    assert by_id["small"].status == "skipped"
    assert "false" in (by_id["small"].reason or "")
    assert [r["data"]["which"] for r in await records(engine, "t_branches", t)] == ["big"]
    await replay(temporal, started.id, "t_branches")


async def test_a_failed_step_with_continue_lets_later_steps_see_its_error(
    runs: RunService, engine: AsyncEngine
) -> None:
    t = tag()
    detail = await finished(runs, (await runs.start("t_continue", {"tag": t})).id, timeout=120)
    assert detail.status == "completed", detail.error
    by_id = {s.id: s for s in detail.progress.steps}  # type: ignore[union-attr]
    assert by_id["bad"].status == "failed"
    assert by_id["bad"].error is not None
    rows = await records(engine, "t_continue", t)
    assert [r["data"]["error"] for r in rows] == [by_id["bad"].error["code"]]


# ---- failures, retries, compensation, recovery --------------------------------------------------


async def test_a_step_that_keeps_failing_is_retried_then_compensated_and_the_run_fails(
    stack: HearthSettings, runs: RunService, engine: AsyncEngine, temporal: TemporalClient
) -> None:
    skip_on_external_stack()
    t = tag()
    supervisorctl(stack, "stop", "gateway")  # the inference plane is down: `infer` fails, retryably
    try:
        started = await runs.start("t_failing", {"tag": t})
        detail = await finished(runs, started.id)
    finally:
        supervisorctl(stack, "start", "gateway")
    assert detail.status == "failed"
    assert detail.error is not None
    assert detail.error["code"] == "unavailable"
    by_id = {s.id: s for s in detail.progress.steps}  # type: ignore[union-attr]
    assert by_id["flaky"].status == "compensated"
    assert by_id["flaky"].attempts == 3
    assert by_id["never"].status == "pending"
    assert [r["data"]["failed"] for r in await records(engine, "t_failing_undo", t)] == ["unavailable"]
    assert [r["data"]["n"] for r in await records(engine, "t_failing", t)] == [1]

    history = await temporal.get_workflow_handle(started.id).fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert 3 in attempts  # the third attempt of `flaky` ran (retries as declared)
    failed = [e for e in await stored_events(stack, started.id) if e.type == "hearth.workflow.failed.v1"]
    assert len(failed) == 1
    assert failed[0].data["failed_step"] == "flaky"
    assert failed[0].data["compensated"] == ["undo"]
    assert failed[0].data["reason"]["code"] == "unavailable"
    await replay(temporal, started.id, "t_failing")


async def test_a_run_waits_out_a_dependency_that_is_down_and_completes_when_it_returns(
    stack: HearthSettings, runs: RunService
) -> None:
    skip_on_external_stack()
    supervisorctl(stack, "stop", "gateway")
    try:
        started = await runs.start("t_recovers", {})
        await asyncio.sleep(3)
        assert (await runs.describe(started.id)).status == "running"
    finally:
        supervisorctl(stack, "start", "gateway")
    detail = await finished(runs, started.id)
    assert detail.status == "completed", detail.error
    assert detail.outputs["flaky"]["outputs"]["Y"] == [2.0, 4.0, 6.0, 8.0]  # type: ignore[index]


async def test_killing_the_worker_mid_run_neither_loses_the_run_nor_repeats_its_effects(
    stack: HearthSettings, runs: RunService, engine: AsyncEngine
) -> None:
    skip_on_external_stack()
    t = tag()
    # Not t_review: its 4 s deadline is shorter than a worker restart (AppRole login, payload key,
    # Temporal connect), and the review below is delivered only once the restarted worker answers.
    started = await runs.start("t_review_patient", {"tag": t, "amount": 10})
    await wait_status(runs, started.id, lambda d: d.status == "waiting_review")
    pid = int(supervisorctl(stack, "pid", "workflows").strip())
    os.kill(pid, signal.SIGKILL)  # supervisor restarts it; the run lives in Temporal
    await worker_back(stack, pid)
    await runs.review(started.id, ReviewDecision(decision="approve", values={"amount": 12}, reviewer="kim"))
    detail = await finished(runs, started.id, timeout=90)
    assert detail.status == "completed", detail.error
    review = detail.outputs["review"]  # type: ignore[index]
    assert review["decision"] == "approve"
    assert review["values"] == {"amount": 12, "currency": "CNY"}
    assert review["corrected"] == ["amount"]
    assert review["reviewer"] == "kim"
    assert len(await records(engine, "t_review", t)) == 1
    events = await stored_events(stack, started.id)
    assert sorted(e.type for e in events).count("hearth.workflow.completed.v1") == 1
    assert [e.data["step_id"] for e in events if e.type == "hearth.workflow.step.completed.v1"].count("after") == 1


async def test_platform_steps_have_their_effect_once_per_step_key(bus: Bus, engine: AsyncEngine) -> None:
    t = tag()
    ctx = StepContext(workflow="manual", workflow_id=f"manual-{t}", step_id="keep", key=f"manual-{t}/keep")
    store = StoreRecord(collection="t_idempotent", data={"tag": t}, context=ctx)
    first = await call_capability(bus, "workflows.store", store, RecordStored)
    again = await call_capability(bus, "workflows.store", store, RecordStored)
    assert first.created is True
    assert again.created is False
    assert again.record_id == first.record_id
    assert len(await records(engine, "t_idempotent", t)) == 1

    publish = PublishParams(
        event="hearth.ingest.document.v1", data={"text": t, "source_system": "idempotency-test"}, context=ctx
    )
    sent = await call_capability(bus, "workflows.publish", publish, EventPublished)
    resent = await call_capability(bus, "workflows.publish", publish, EventPublished)
    assert sent.event_id == resent.event_id
    assert (sent.duplicate, resent.duplicate) == (False, True)


# ---- human review --------------------------------------------------------------------------------


async def test_an_undecided_review_escalates_then_the_deadline_decides(
    stack: HearthSettings, runs: RunService, engine: AsyncEngine, temporal: TemporalClient
) -> None:
    t = tag()
    started = await runs.start("t_review", {"tag": t, "amount": 5})
    waiting = await wait_status(runs, started.id, lambda d: d.status == "waiting_review")
    assert waiting.progress is not None
    assert waiting.progress.review is not None
    assert waiting.progress.review.title == f"Check {t}"
    assert waiting.progress.review.values == {"amount": 5, "currency": "CNY"}
    detail = await finished(runs, started.id, timeout=30)
    assert detail.status == "completed", detail.error
    review = detail.outputs["review"]  # type: ignore[index]
    assert (review["decision"], review["timed_out"], review["escalated"]) == ("reject", True, True)
    kinds = [e.type for e in await stored_events(stack, started.id)]
    assert kinds.count("hearth.workflow.review.requested.v1") == 1
    assert kinds.count("hearth.workflow.review.escalated.v1") == 1
    await replay(temporal, started.id, "t_review_timeout")


async def test_a_rejection_can_fail_the_run_and_reviews_are_checked(runs: RunService, temporal: TemporalClient) -> None:
    started = await runs.start("t_review_strict", {})
    await wait_status(runs, started.id, lambda d: d.status == "waiting_review")
    from shared.errors import Conflict

    with pytest.raises(Conflict):
        await runs.review(started.id, ReviewDecision(decision="approve", step_id="never"))
    await runs.review(started.id, ReviewDecision(decision="reject", reviewer="lee", comment="wrong party"))
    detail = await finished(runs, started.id)
    assert detail.status == "failed"
    assert detail.error is not None
    assert detail.error["code"] == "rejected"
    assert "lee" in detail.error["detail"]
    with pytest.raises(Conflict):
        await runs.review(started.id, ReviewDecision(decision="approve"))
    await replay(temporal, started.id, "t_review_rejected")


async def test_a_cancelled_run_stops_and_reports_why(
    stack: HearthSettings, runs: RunService, temporal: TemporalClient
) -> None:
    started = await runs.start("t_review_strict", {})
    await wait_status(runs, started.id, lambda d: d.status == "waiting_review")
    await runs.cancel(started.id, CancelRequest(reason="duplicate upload", by="ops"))
    detail = await finished(runs, started.id)
    assert detail.status == "cancelled"
    failed = [e for e in await stored_events(stack, started.id) if e.type == "hearth.workflow.failed.v1"]
    assert [e.data["reason"]["code"] for e in failed] == ["cancelled"]
    assert failed[0].data["reason"]["detail"] == "duplicate upload"
    await replay(temporal, started.id, "t_review_cancelled")


async def test_the_shipped_document_review_runs_from_an_ingest_event_to_a_stored_decision(
    bus: Bus, runs: RunService, engine: AsyncEngine, temporal: TemporalClient
) -> None:
    t = tag()
    event = Envelope(
        source="test/erp",
        type="hearth.ingest.document.v1",
        data={
            "text": "contract",
            "filename": f"{t}.pdf",
            "source_system": "erp",
            "external_id": f"po-{t}",
            "metadata": {"review": "required", "title": "Lease", "category": "contract"},
        },
    )
    await bus.publish(event)
    run_id = f"document_review-{event.id}"
    waiting = await wait_triggered(runs, run_id, lambda d: d.status == "waiting_review")
    assert waiting.progress is not None
    assert waiting.progress.review is not None
    assert waiting.progress.review.title == f"Review {t}.pdf from erp"
    assert waiting.document_id == f"po-{t}"
    await runs.review(run_id, ReviewDecision(decision="approve", values={"title": "Office lease"}, reviewer="ann"))
    detail = await finished(runs, run_id)
    assert detail.status == "completed", detail.error
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT data FROM workflow_records WHERE collection = 'review_decisions' AND workflow_id = :w"),
                {"w": run_id},
            )
        ).scalar_one()
    assert stored["decision"] == "approve"
    assert stored["values"]["title"] == "Office lease"
    assert stored["external_id"] == f"po-{t}"
    await replay(temporal, run_id, "document_review")


# ---- triggers, idempotent starts, listing --------------------------------------------------------


async def test_an_event_starts_one_run_however_often_it_is_published(
    stack: HearthSettings, bus: Bus, runs: RunService, engine: AsyncEngine
) -> None:
    t = tag()
    event = Envelope(
        source="test/lob",
        type="hearth.ingest.document.v1",
        data={"text": t, "source_system": "trigger-test", "external_id": f"ext-{t}"},
    )
    ignored = Envelope(
        source="test/lob", type="hearth.ingest.document.v1", data={"text": t, "source_system": "another-system"}
    )
    await bus.publish(event)
    await bus.publish(ignored)
    await bus.publish(event)  # within the duplicate window: dropped by JetStream
    # the same event again under a new message id, as a confused publisher would: same run id
    await bus.js.publish(event.type, event.to_json(), headers={"Nats-Msg-Id": f"again-{t}"})
    run_id = f"t_triggered-{event.id}"
    detail = await wait_triggered(runs, run_id, lambda d: d.status in FINISHED)
    assert detail.status == "completed", detail.error
    assert detail.document_id == f"ext-{t}"
    await asyncio.sleep(2)  # let the re-sent copy reach the trigger
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM workflow_records WHERE collection = 't_triggered' AND data->>'text' = :t"),
                {"t": t},
            )
        ).scalar_one()
    assert count == 1
    listed = await runs.list(RunFilter(workflow="t_triggered", document_id=f"ext-{t}"))
    assert [r.id for r in listed] == [run_id]
    assert listed[0].status == "completed"


async def test_a_trigger_durable_created_before_keeps_its_place_and_starts(bus: Bus) -> None:
    """An existing durable (created by an earlier version with another deliver policy) is reused."""
    from shared.events.consumer import EventConsumer

    durable = f"wf-upgrade-{tag()}"
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject="hearth.ingest.document.v1",
        ack_policy=AckPolicy.EXPLICIT,
    )
    await bus.js.add_consumer("HEARTH_INGEST", config)

    async def ignore(_envelope: Envelope, _data: Any) -> None:
        return None

    consumer = EventConsumer(
        bus,
        durable=durable,
        filter_subject="hearth.ingest.document.v1",
        handler=ignore,
        deliver_policy=DeliverPolicy.NEW,
    )
    await consumer.start()
    try:
        assert consumer.deliver_policy == DeliverPolicy.ALL
    finally:
        await consumer.stop()
        await bus.js.delete_consumer("HEARTH_INGEST", durable)


async def test_starting_a_run_id_twice_returns_the_first_run(runs: RunService) -> None:
    run_id = f"t_branches-{tag()}"
    first = await runs.start("t_branches", {"tag": "x"}, run_id=run_id)
    second = await runs.start("t_branches", {"tag": "y"}, run_id=run_id)
    assert (first.duplicate, second.duplicate) == (False, True)
    await finished(runs, run_id)
    assert [r.id for r in await runs.list(RunFilter(workflow="t_branches")) if r.id == run_id] == [run_id]


async def test_runs_are_listed_by_status_and_a_finished_run_keeps_its_outputs(runs: RunService) -> None:
    started = await runs.start("t_branches", {"tag": tag()})
    await finished(runs, started.id)
    completed = await runs.list(RunFilter(workflow="t_branches", status="completed"), limit=500)
    assert started.id in {r.id for r in completed}
    assert started.id not in {r.id for r in await runs.list(RunFilter(workflow="t_branches", status="failed"))}


# ---- definitions and versions ---------------------------------------------------------------------


async def test_a_run_keeps_its_snapshot_and_versions_can_be_rolled_back(
    stack: HearthSettings, runs: RunService, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A changed definition becomes a new version; running runs keep theirs; rollback restores one."""
    from workflows.definitions import LoadContext, load_directory

    store = DefinitionStore(engine)
    name = f"t_versioned_{tag()}"
    path = tmp_path / "versioned.yaml"

    def write(review_title: str) -> None:
        path.write_text(
            f"workflows:\n  {name}:\n    steps:\n      - review:\n          type: human_review\n"
            f"          title: {review_title}\n          timeout: 1h\n"
        )

    write("first")
    await store.sync(load_directory(tmp_path, LoadContext(models=set())))
    started = await runs.start(name, {})
    write("second")
    active = await store.sync(load_directory(tmp_path, LoadContext(models=set())))
    assert active[name] == 2
    waiting = await wait_status(runs, started.id, lambda d: d.status == "waiting_review")
    assert waiting.progress.review.title == "first"  # type: ignore[union-attr]
    assert waiting.definition_version == 1
    repeated = await runs.start(name, {}, run_id=started.id)  # the existing run's version, not the active one
    assert (repeated.duplicate, repeated.version, repeated.definition_hash) == (True, 1, started.definition_hash)
    versions = await store.versions(name)
    assert [v["version"] for v in versions] == [2, 1]
    diff = versions[0]["diff"].splitlines()
    assert any(line.startswith("-") and "title: first" in line for line in diff)
    assert any(line.startswith("+") and "title: second" in line for line in diff)
    await store.rollback(name, 1, by="test")
    again = await runs.start(name, {})
    assert again.version == 1
    pinned = await runs.start(name, {}, version=2)
    assert pinned.version == 2
    assert (await store.sync(load_directory(tmp_path, LoadContext(models=set()))))[name] == 1  # file unchanged
    for run_id in (started.id, again.id, pinned.id):
        await runs.cancel(run_id, CancelRequest(reason="test over"))


def test_the_worker_runs_one_trigger_consumer_per_declared_trigger(stack: HearthSettings) -> None:
    log = (stack.log_dir / "workflows.log").read_text()
    started = [json.loads(line) for line in log.splitlines() if line.startswith("{") and "trigger started" in line]
    assert {e["workflow"] for e in started} >= {"document_review", "t_triggered"}
