"""The lifecycle workflows: tiering, retention, key rotation; each started by its Temporal schedule.

Determinism: these only call activities (``services/governance/activities.py``, by name) and
read ``workflow.info()``; the policy file, the databases and the stores are the activities'. A
document that fails (an activity gives up) is named in the run's result and the run goes on with
the next; the next scheduled run tries it again. Runs that grow long continue as new with their
place (tenant, last id) and their counts, so a history stays small however many documents there
are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from shared.lifecycle import (
        RETENTION_WORKFLOW,
        ROTATION_WORKFLOW,
        TIERING_WORKFLOW,
        Archived,
        Assessed,
        DocumentIds,
        DocumentTask,
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

T = TypeVar("T")

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=5)
_SHORT = timedelta(minutes=2)
_LONG = timedelta(hours=1)
_HEARTBEAT = timedelta(minutes=5)
_PARALLEL = 4
"""Documents moved or purged at the same time."""
_HISTORY_LIMIT = 5000
"""Events after which a run continues as new."""


async def _call(name: str, arg: Any, result: type[T], *, timeout: timedelta = _SHORT, beat: bool = False) -> T:
    done: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result,
        start_to_close_timeout=timeout,
        heartbeat_timeout=_HEARTBEAT if beat else None,
        retry_policy=_RETRY,
    )
    return done


def _why(exc: ActivityError) -> str:
    cause = exc.cause
    return str(cause) if cause is not None else str(exc)


class _PerDocument:
    """The shared loop: tenants, then pages of document ids, each document by its own activity."""

    name = ""

    async def _tenant(self, inp: LifecycleRun, summary: LifecycleSummary, tenant: str) -> None:
        raise NotImplementedError

    async def _pages(
        self,
        inp: LifecycleRun,
        summary: LifecycleSummary,
        tenant: str,
        select: str,
        each: Callable[[DocumentTask], Awaitable[None]],
    ) -> None:
        after = inp.resume_after if inp.resume_tenant == tenant else ""
        run = workflow.info().workflow_id
        while True:
            if workflow.info().get_current_history_length() > _HISTORY_LIMIT:
                workflow.continue_as_new(
                    inp.model_copy(update={"resume_tenant": tenant, "resume_after": after, "summary": summary})
                )
            page = await _call(select, TenantBatch(tenant=tenant, after=after, limit=inp.batch, run=run), DocumentIds)
            for start in range(0, len(page.ids), _PARALLEL):
                tasks = [
                    DocumentTask(tenant=tenant, document_id=i, run=run) for i in page.ids[start : start + _PARALLEL]
                ]
                await asyncio.gather(*(self._guarded(summary, each, task) for task in tasks))
            if len(page.ids) < inp.batch:
                return
            after = page.ids[-1]

    @staticmethod
    async def _guarded(
        summary: LifecycleSummary, each: Callable[[DocumentTask], Awaitable[None]], task: DocumentTask
    ) -> None:
        try:
            await each(task)
        except ActivityError as exc:
            summary.failed.append(f"{task.document_id}: {_why(exc)}")

    async def _all(self, inp: LifecycleRun) -> LifecycleSummary:
        summary = inp.summary or LifecycleSummary(workflow=self.name)
        tenants = (await _call("lifecycle.tenants", inp, TenantList)).tenants
        if inp.resume_tenant:
            tenants = [t for t in tenants if t >= inp.resume_tenant]
        for tenant in tenants:
            if not inp.resume_tenant or tenant != inp.resume_tenant:
                summary.tenants += 1
            try:
                await self._tenant(inp, summary, tenant)
            except ActivityError as exc:
                summary.failed.append(f"tenant {tenant}: {_why(exc)}")
        return summary


@workflow.defn(name=TIERING_WORKFLOW)
class LifecycleTiering(_PerDocument):
    """Documents whose files nobody read for the tenant's ``tiering.idle`` move to the cold tier."""

    name = TIERING_WORKFLOW

    @workflow.run
    async def run(self, inp: LifecycleRun) -> LifecycleSummary:
        return await self._all(inp)

    async def _tenant(self, inp: LifecycleRun, summary: LifecycleSummary, tenant: str) -> None:
        if inp.resume_tenant != tenant:  # reconciling once per tenant is enough
            batch = TenantBatch(tenant=tenant, limit=inp.batch, run=workflow.info().workflow_id)
            rec = await _call("lifecycle.reconcile", batch, Reconciled, timeout=_LONG, beat=True)
            summary.restored += rec.restored
            summary.finished += rec.finished

        async def move(task: DocumentTask) -> None:
            done = await _call("lifecycle.archive", task, Archived, timeout=_LONG)
            summary.archived += int(done.moved)

        await self._pages(inp, summary, tenant, "lifecycle.select_idle", move)


@workflow.defn(name=RETENTION_WORKFLOW)
class LifecycleRetention(_PerDocument):
    """Documents past their class's retention, and not under legal hold, are purged to a tombstone."""

    name = RETENTION_WORKFLOW

    @workflow.run
    async def run(self, inp: LifecycleRun) -> LifecycleSummary:
        return await self._all(inp)

    async def _tenant(self, inp: LifecycleRun, summary: LifecycleSummary, tenant: str) -> None:
        if inp.resume_tenant != tenant:
            batch = TenantBatch(tenant=tenant, limit=inp.batch, run=workflow.info().workflow_id)
            summary.assessed += (await _call("lifecycle.assess", batch, Assessed, timeout=_LONG)).changed

        async def purge(task: DocumentTask) -> None:
            done = await _call("lifecycle.purge", task, Purged, timeout=_LONG)
            summary.purged += int(done.purged)

        await self._pages(inp, summary, tenant, "lifecycle.select_due", purge)


@workflow.defn(name=ROTATION_WORKFLOW)
class KeyRotation:
    """Tenant keys older than ``rotation.max_age`` get a new version; then every stored data key is rewrapped.

    The rewrap runs every time, whatever was rotated: a run cut short after a rotation is
    completed by the next, and what is on the newest version already is skipped.
    """

    @workflow.run
    async def run(self, inp: LifecycleRun) -> LifecycleSummary:
        summary = LifecycleSummary(workflow=ROTATION_WORKFLOW)
        statuses = await _call("keys.status", inp, KeyStatuses)
        summary.tenants = len(statuses.keys)
        for status in statuses.keys:
            if status.due:
                try:
                    summary.rotated.append(await _call("keys.rotate", status, Rotated))
                except ActivityError as exc:
                    summary.failed.append(f"tenant {status.tenant}: {_why(exc)}")
        summary.rewrapped = await _call("keys.rewrap", inp, Rewrapped, timeout=_LONG * 6, beat=True)
        return summary


WORKFLOWS: list[type] = [LifecycleTiering, LifecycleRetention, KeyRotation]
