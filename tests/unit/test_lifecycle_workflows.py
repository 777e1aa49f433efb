"""The lifecycle workflows' control flow: paging, one activity per document, failures recorded, continue-as-new.

Runs the workflows on Temporal's dev server (the ``temporal`` binary of the venv, no stack) with
stand-in activities under the real activity names; what the activities do to blobs, rows and keys
is ``tests/integration/test_lifecycle.py``'s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.governance import workflows
from services.governance.workflows import KeyRotation, LifecycleRetention, LifecycleTiering
from shared.capabilities import DATA_CONVERTER
from shared.lifecycle import (
    Archived,
    Assessed,
    DocumentIds,
    DocumentTask,
    KeyStatus,
    KeyStatuses,
    LifecycleRun,
    LifecycleSummary,
    Purged,
    Reconciled,
    Rewrapped,
    Rotated,
    TenantBatch,
    TenantList,
)
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

TEMPORAL = REPO_ROOT / ".venv" / "bin" / "temporal"
HAVE_TEMPORAL = TEMPORAL.exists()


class Fake:
    """Documents per tenant; ``broken`` ids fail their activity for good."""

    def __init__(self) -> None:
        self.docs = {"acme": [f"a{i:02}" for i in range(7)], "beta": ["b00"], "gamma": []}
        self.broken = {"a03"}
        self.moved: list[str] = []
        self.selects: list[tuple[str, str]] = []
        self.rotated: list[str] = []

    @activity.defn(name="lifecycle.tenants")
    async def tenants(self, inp: LifecycleRun) -> TenantList:
        return TenantList(tenants=[t for t in sorted(self.docs) if not inp.tenants or t in inp.tenants])

    @activity.defn(name="lifecycle.reconcile")
    async def reconcile(self, inp: TenantBatch) -> Reconciled:
        return Reconciled(tenant=inp.tenant, checked=1, restored=1 if inp.tenant == "acme" else 0)

    @activity.defn(name="lifecycle.select_idle")
    async def select_idle(self, inp: TenantBatch) -> DocumentIds:
        self.selects.append((inp.tenant, inp.after))
        return DocumentIds(ids=[d for d in self.docs[inp.tenant] if d > inp.after][: inp.limit])

    @activity.defn(name="lifecycle.archive")
    async def archive(self, inp: DocumentTask) -> Archived:
        if inp.document_id in self.broken:
            raise ApplicationError("blob missing from both tiers", non_retryable=True)
        self.moved.append(inp.document_id)
        return Archived(document_id=inp.document_id, moved=True, files=2)

    @activity.defn(name="lifecycle.assess")
    async def assess(self, inp: TenantBatch) -> Assessed:
        return Assessed(tenant=inp.tenant, changed=len(self.docs[inp.tenant]))

    @activity.defn(name="lifecycle.select_due")
    async def select_due(self, inp: TenantBatch) -> DocumentIds:
        return await self.select_idle(inp)

    @activity.defn(name="lifecycle.purge")
    async def purge(self, inp: DocumentTask) -> Purged:
        return Purged(document_id=inp.document_id, purged=inp.document_id != "a05")  # a05: held meanwhile

    @activity.defn(name="keys.status")
    async def key_status(self, inp: LifecycleRun) -> KeyStatuses:
        return KeyStatuses(keys=[KeyStatus(tenant="acme", version=3, due=True), KeyStatus(tenant="beta", version=1)])

    @activity.defn(name="keys.rotate")
    async def rotate(self, inp: KeyStatus) -> Rotated:
        self.rotated.append(inp.tenant)
        return Rotated(tenant=inp.tenant, version=inp.version + 1)

    @activity.defn(name="keys.rewrap")
    async def rewrap(self, inp: LifecycleRun) -> Rewrapped:
        return Rewrapped(blobs=4, cold=2, rows=3, checked=10)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    if not HAVE_TEMPORAL:
        pytest.skip("no temporal binary in the venv (make setup)")
    async with await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER, dev_server_existing_path=str(TEMPORAL)
    ) as started:
        yield started


async def _run(
    env: WorkflowEnvironment, fake: Fake, workflow: type, inp: LifecycleRun, runs: list[int] | None = None
) -> LifecycleSummary:
    """The workflow's result; ``runs`` gets the number of runs it took (continue-as-new)."""
    queue = f"lifecycle-{uuid.uuid4().hex}"
    activities = [getattr(fake, name) for name in ("tenants", "reconcile", "select_idle", "archive", "assess")]
    activities += [fake.select_due, fake.purge, fake.key_status, fake.rotate, fake.rewrap]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[LifecycleTiering, LifecycleRetention, KeyRotation],
        activities=activities,
        workflow_runner=UnsandboxedWorkflowRunner(),  # so the history limit below can be lowered
    ):
        handle = await env.client.start_workflow(
            workflow.run, inp, id=f"wf-{uuid.uuid4().hex}", task_queue=queue, result_type=LifecycleSummary
        )
        result: LifecycleSummary = await handle.result()
        if runs is not None:  # visibility catches up with the runs shortly after they close
            count = 0
            for _ in range(50):
                count = len([r async for r in env.client.list_workflows(f"WorkflowId = '{handle.id}'")])
                if count > 1:
                    break
                await asyncio.sleep(0.1)
            runs.append(count)
    return result


async def test_tiering_pages_through_every_tenant_and_records_what_failed(env: WorkflowEnvironment) -> None:
    fake = Fake()
    summary = await _run(env, fake, LifecycleTiering, LifecycleRun(batch=3))
    assert summary.workflow == "lifecycle_tiering"
    assert summary.tenants == 3
    assert summary.archived == 7  # 8 documents, one broken
    assert sorted(fake.moved) == sorted(d for d in ["b00", *fake.docs["acme"]] if d != "a03")
    assert len(summary.failed) == 1
    assert summary.failed[0].startswith("a03: ")
    assert summary.restored == 1
    # Pages of 3 after the last id seen; a short page ends the tenant.
    assert fake.selects == [("acme", ""), ("acme", "a02"), ("acme", "a05"), ("beta", ""), ("gamma", "")]


async def test_a_run_can_be_limited_to_some_tenants(env: WorkflowEnvironment) -> None:
    fake = Fake()
    summary = await _run(env, fake, LifecycleTiering, LifecycleRun(batch=50, tenants=["beta"]))
    assert (summary.tenants, summary.archived, fake.moved) == (1, 1, ["b00"])


async def test_retention_assesses_then_purges_and_counts_only_real_purges(env: WorkflowEnvironment) -> None:
    fake = Fake()
    summary = await _run(env, fake, LifecycleRetention, LifecycleRun(batch=4))
    assert summary.assessed == 8
    assert summary.purged == 7  # a05 was held when its turn came
    assert summary.failed == []


async def test_a_long_run_continues_as_new_and_keeps_its_place_and_counts(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows, "_HISTORY_LIMIT", 20)
    fake = Fake()
    fake.broken = set()
    runs: list[int] = []
    summary = await _run(env, fake, LifecycleTiering, LifecycleRun(batch=2), runs)
    assert runs[0] > 1, "the run never continued as new"
    assert summary.archived == 8
    assert sorted(fake.moved) == sorted(["b00", *fake.docs["acme"]])  # each exactly once
    assert summary.tenants == 3


async def test_key_rotation_rotates_due_tenants_only_and_always_rewraps(env: WorkflowEnvironment) -> None:
    fake = Fake()
    summary = await _run(env, fake, KeyRotation, LifecycleRun())
    assert fake.rotated == ["acme"]
    assert [(r.tenant, r.version) for r in summary.rotated] == [("acme", 4)]
    assert summary.rewrapped == Rewrapped(blobs=4, cold=2, rows=3, checked=10)
