"""The one generic workflow: it runs a definition snapshot, step by step, durably.

Every YAML workflow runs as this Temporal workflow (type ``hearth.interpreter``). Its input
carries the definition as it was when the run started (``RunInput.definition``), so editing a
file never changes a running workflow, and the snapshot's hash is recorded in the run's events.

Determinism: the code below only evaluates expressions (pure), schedules activities and timers,
and reads ``workflow.now()``. Anything that does I/O is an activity: service capabilities on
their task queues, and the engine's own event publishing as local activities of this worker.
Changes here must keep old histories replaying (``tests/unit/test_replay.py`` checks committed
histories); guard a behaviour change with ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState

with workflow.unsafe.imports_passed_through():
    from shared.capabilities import error_from_application_error
    from shared.workflow import (
        EMIT_ACTIVITY,
        INTERPRETER_WORKFLOW,
        CancelRequest,
        EmitEvent,
        HumanReviewParams,
        ReviewDecision,
        ReviewOutcome,
        ReviewRequest,
        RunInput,
        RunProgress,
        RunResult,
        RunStatus,
        StepContext,
        StepProgress,
    )
    from workflows.definitions import Definition, GroupSpec, StepSpec, definition_from_snapshot
    from workflows.expressions import ExpressionError, compile_expression, render

STATUS_KEY = SearchAttributeKey.for_keyword("HearthStatus")
WORKFLOW_KEY = SearchAttributeKey.for_keyword("HearthWorkflow")
TENANT_KEY = SearchAttributeKey.for_keyword("HearthTenant")
DOCUMENT_KEY = SearchAttributeKey.for_keyword("HearthDocumentId")

_EMIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_EVENT_OUTPUT_LIMIT = 64 * 1024


class StepFailed(Exception):
    """A step failed and its ``on_failure`` says the run fails with it."""

    def __init__(self, step_id: str, error: dict[str, Any], compensated: list[str] | None = None) -> None:
        super().__init__(error.get("detail", "step failed"))
        self.step_id = step_id
        self.error = error
        self.compensated = compensated or []


class RunCancelled(Exception):
    def __init__(self, request: CancelRequest) -> None:
        super().__init__(request.reason)
        self.request = request


def _document_of(run_input: dict[str, Any]) -> dict[str, Any] | None:
    document = run_input.get("document")
    return document if isinstance(document, dict) else None


def _error(code: str, detail: str, *, kind: str = "PermanentFailure", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "code": code, "title": "Step failed", "detail": detail, "status": 500}
    out["retryable"] = False
    if extra:
        out["extra"] = extra
    return out


def _activity_error(exc: ActivityError) -> dict[str, Any]:
    hearth = error_from_application_error(exc)
    if hearth is not None:
        return hearth.to_dict()
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return _error("cancelled", "the step was cancelled", kind="Cancelled")
    detail = str(cause) if cause is not None else str(exc)
    return _error("activity-failed", f"{type(cause).__name__ if cause else 'ActivityError'}: {detail}")


def _fits(value: Any) -> bool:
    # A cheap upper bound on the JSON size without serialising twice: repr is close to JSON.
    return len(repr(value)) <= _EVENT_OUTPUT_LIMIT


@workflow.defn(name=INTERPRETER_WORKFLOW)
class Interpreter:
    """Runs ``RunInput.definition``; queries: ``progress``; signals: ``review``, ``cancel``."""

    def __init__(self) -> None:
        self._input: RunInput | None = None
        self._definition: Definition | None = None
        self._status: RunStatus = "running"
        self._steps: dict[str, StepProgress] = {}
        self._outputs: dict[str, Any] = {}
        self._previous: Any = None
        """Output of the last sequence item that produced one (a group's: its members' by id)."""
        self._review: ReviewRequest | None = None
        self._decisions: dict[str, ReviewDecision] = {}
        self._decided_at: dict[str, datetime] = {}
        self._cancel: CancelRequest | None = None
        self._inflight: list[workflow.ActivityHandle[Any]] = []
        self._error: dict[str, Any] | None = None

    # ---- queries and signals ------------------------------------------------------------------
    @workflow.query
    def progress(self) -> RunProgress:
        inp = self._input
        if inp is None:  # a query that arrives before the first workflow task ran
            return RunProgress(
                workflow="", workflow_id=workflow.info().workflow_id, definition_hash="", tenant="", status="running"
            )
        return RunProgress(
            workflow=inp.workflow,
            workflow_id=workflow.info().workflow_id,
            definition_hash=inp.definition_hash,
            definition_version=inp.definition_version,
            tenant=inp.tenant,
            status=self._status,
            current=[s.id for s in self._steps.values() if s.status in ("running", "waiting_review")],
            steps=list(self._steps.values()),
            review=self._review,
            outputs=self._outputs,
            error=self._error,
        )

    @workflow.signal
    def review(self, decision: ReviewDecision) -> None:
        step_id = decision.step_id or (self._review.step_id if self._review else None)
        if step_id is None:  # names no step and none is waiting: it cannot be meant for a later one
            workflow.logger.warning("review signal ignored: no review is waiting and it names no step")
            return
        self._decisions[step_id] = decision
        self._decided_at[step_id] = workflow.now()

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        if self._cancel is None:
            self._cancel = request
            for handle in self._inflight:
                handle.cancel()

    # ---- the run ------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        self._input = inp
        self._definition = definition = definition_from_snapshot(inp.definition)
        for step in definition.all_steps():
            self._steps[step.id] = StepProgress(id=step.id, type=step.type)
        started = workflow.now()
        try:
            await self._run_items(definition.steps)
        except (StepFailed, RunCancelled) as exc:
            reason = await self._finish_failed(exc, started)
            raise ApplicationError(
                str(reason.get("detail", "the run failed")), reason, type=str(reason.get("code")), non_retryable=True
            ) from None
        except asyncio.CancelledError:  # cancelled through Temporal itself (UI, CLI): report, stay cancelled
            await self._finish_failed(RunCancelled(CancelRequest(reason="cancelled through Temporal")), started)
            raise
        self._status = "completed"
        workflow.upsert_search_attributes([STATUS_KEY.value_set("completed")])
        outputs = self._outputs if _fits(self._outputs) else None
        await self._emit(
            "hearth.workflow.completed.v1",
            "completed",
            {"duration_ms": self._ms_since(started), "outputs": outputs, "outputs_truncated": outputs is None},
        )
        return RunResult(workflow=inp.workflow, outputs=self._outputs, steps=list(self._steps.values()))

    async def _finish_failed(self, exc: StepFailed | RunCancelled, started: Any) -> dict[str, Any]:
        if isinstance(exc, RunCancelled):
            self._status = "cancelled"
            reason = _error("cancelled", exc.request.reason, kind="Cancelled", by=exc.request.by)
            failed_step, compensated = None, []
        else:
            self._status = "failed"
            reason, failed_step, compensated = exc.error, exc.step_id, exc.compensated
        self._error = reason
        workflow.upsert_search_attributes([STATUS_KEY.value_set(self._status)])
        await self._emit(
            "hearth.workflow.failed.v1",
            "failed",
            {
                "duration_ms": self._ms_since(started),
                "failed_step": failed_step,
                "reason": reason,
                "compensated": compensated,
            },
        )
        return reason

    async def _run_items(self, items: list[StepSpec | GroupSpec]) -> None:
        for item in items:
            self._check_cancel()
            if isinstance(item, GroupSpec):
                try:
                    run_group = item.when is None or self._condition(item.when)
                except ExpressionError as exc:
                    raise StepFailed(item.id, _error("bad-expression", f"`when` of {item.id}: {exc}")) from None
                if not run_group:
                    for step in item.parallel:
                        self._skip(step, f"the group's condition `{item.when}` is false")
                    continue
                results = await asyncio.gather(*(self._run_step(s) for s in item.parallel), return_exceptions=True)
                for result in results:  # every member finishes; the first failure then fails the run
                    if isinstance(result, BaseException):
                        raise result
                produced = {s.id: self._outputs[s.id] for s in item.parallel if s.id in self._outputs}
                if produced:
                    self._previous = produced
            else:
                await self._run_step(item)
                if item.id in self._outputs:
                    self._previous = self._outputs[item.id]

    def _check_cancel(self) -> None:
        if self._cancel is not None:
            raise RunCancelled(self._cancel)

    def _context(self) -> dict[str, Any]:
        inp = self._input
        if inp is None:
            raise RuntimeError("no run input")
        steps = {
            sid: {"status": s.status, "output": self._outputs.get(sid), "error": s.error}
            for sid, s in self._steps.items()
        }
        run = {
            "workflow": inp.workflow,
            "id": workflow.info().workflow_id,
            "tenant": inp.tenant,
            "document_id": inp.document_id,
        }
        return {"input": inp.input, "steps": steps, "run": run}

    def _condition(self, source: str) -> bool:
        """A ``when`` against the run so far; ``ExpressionError`` when it cannot be evaluated."""
        return bool(compile_expression(source).evaluate(self._context()))

    def _skip(self, step: StepSpec, reason: str) -> None:
        progress = self._steps.setdefault(step.id, StepProgress(id=step.id, type=step.type))
        progress.status = "skipped"
        progress.reason = reason

    async def _run_step(self, step: StepSpec, *, compensation: bool = False) -> None:
        progress = self._steps.setdefault(step.id, StepProgress(id=step.id, type=step.type))
        self._check_cancel()
        try:
            if step.when is not None:
                try:
                    run_it = self._condition(step.when)
                except ExpressionError as exc:
                    progress.started_at = workflow.now()
                    raise _Failure(_error("bad-expression", f"`when` of {step.id}: {exc}")) from None
                if not run_it:
                    self._skip(step, f"`{step.when}` is false")
                    return
            progress.status = "running"
            progress.started_at = workflow.now()
            try:
                params = render(step.params, self._context())
            except ExpressionError as exc:
                raise _Failure(_error("bad-expression", f"parameters of {step.id}: {exc}")) from None
            if step.kind == "review":
                output = await self._human_review(step, params, progress)
            else:
                output = await self._activity(step, params, progress)
        except _Failure as failure:
            await self._failed(step, progress, failure.error, compensation=compensation)
            return
        progress.status = "completed"
        progress.finished_at = workflow.now()
        progress.duration_ms = self._ms_since(progress.started_at)
        self._outputs[step.id] = output
        await self._step_event(step, progress, output=output)

    async def _failed(
        self, step: StepSpec, progress: StepProgress, error: dict[str, Any], *, compensation: bool
    ) -> None:
        progress.status = "failed"
        progress.error = error
        progress.finished_at = workflow.now()
        progress.duration_ms = self._ms_since(progress.started_at)
        if error.get("code") == "cancelled" and self._cancel is not None:
            raise RunCancelled(self._cancel)
        if compensation:  # a failing compensation is recorded; the original failure is what counts
            return
        compensated: list[str] = []
        for comp in step.compensate:
            await self._run_step(comp, compensation=True)
            compensated.append(comp.id)
        if step.compensate:
            progress.status = "compensated" if step.on_failure == "fail" else "failed"
        await self._step_event(step, progress, error=error)
        if step.on_failure == "fail":
            raise StepFailed(step.id, error, compensated)

    async def _activity(self, step: StepSpec, params: dict[str, Any], progress: StepProgress) -> Any:
        inp = self._input
        if inp is None or step.activity is None:
            raise RuntimeError(f"step {step.id} has no activity")
        if step.takes_context:
            info = workflow.info()
            params = {
                **params,
                "context": StepContext(
                    workflow=inp.workflow,
                    workflow_id=info.workflow_id,
                    step_id=step.id,
                    tenant=inp.tenant,
                    key=f"{info.workflow_id}/{step.id}",
                    document=_document_of(inp.input) if "document" in step.receives else None,
                    previous=self._previous if "previous" in step.receives else None,
                ).model_dump(mode="json"),
            }
        retry = step.retry
        handle = workflow.start_activity(
            step.activity,
            params,
            task_queue=step.task_queue,
            activity_id=step.id,
            start_to_close_timeout=timedelta(seconds=step.timeout_s),
            heartbeat_timeout=timedelta(seconds=step.heartbeat_timeout_s) if step.heartbeat_timeout_s else None,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=retry.backoff),
                backoff_coefficient=retry.backoff_coefficient,
                maximum_interval=timedelta(seconds=max(retry.max_backoff, retry.backoff)),
                maximum_attempts=retry.attempts,
            ),
            result_type=dict,
        )
        self._inflight.append(handle)
        try:
            return await handle
        except ActivityError as exc:
            if exc.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
                progress.attempts = retry.attempts
            raise _Failure(_activity_error(exc)) from None
        finally:
            self._inflight.remove(handle)

    async def _human_review(self, step: StepSpec, params: dict[str, Any], progress: StepProgress) -> Any:
        inp = self._input
        if inp is None:
            raise RuntimeError("no run input")
        try:
            spec = HumanReviewParams.model_validate(params)
        except ValueError as exc:
            raise _Failure(_error("invalid-parameters", f"human_review {step.id}: {exc}")) from None
        now = workflow.now()
        deadline = now + timedelta(seconds=step.timeout_s)
        escalate_at = now + timedelta(seconds=spec.escalate_after) if spec.escalate_after else None
        review = self._review = ReviewRequest(
            step_id=step.id,
            title=spec.title,
            instructions=spec.instructions,
            values=spec.values,
            fields=spec.fields,
            requested_at=now,
            deadline=deadline,
            escalate_at=escalate_at,
            escalate_to=spec.escalate_to,
        )
        progress.status = "waiting_review"
        self._status = "waiting_review"
        workflow.upsert_search_attributes([STATUS_KEY.value_set("waiting_review")])
        await self._emit(
            "hearth.workflow.review.requested.v1",
            f"review.requested/{step.id}",
            {"step_id": step.id, "title": spec.title, "deadline": deadline.isoformat(), "values": spec.values},
        )
        try:
            decision = await self._await_decision(step.id, escalate_at, deadline, spec)
            escalated = review.escalated
        finally:
            self._review = None
            self._status = "running"
            workflow.upsert_search_attributes([STATUS_KEY.value_set("running")])
        timed_out = decision is None
        if decision is None:
            if spec.on_timeout == "fail":
                raise _Failure(_error("review-timeout", f"no review of {step.id} before {deadline.isoformat()}"))
            decision = ReviewDecision(decision=spec.on_timeout, comment="decided by the deadline (on_timeout)")
        allowed = set(spec.fields) if spec.fields else set(decision.values)
        corrections = {k: v for k, v in decision.values.items() if k in allowed}
        outcome = ReviewOutcome(
            decision=decision.decision,
            values={**spec.values, **corrections},
            corrected=sorted(k for k, v in corrections.items() if spec.values.get(k) != v),
            reviewer=decision.reviewer,
            comment=decision.comment,
            escalated=escalated,
            timed_out=timed_out,
        )
        if outcome.decision == "reject" and spec.on_reject == "fail":
            raise _Failure(
                _error(
                    "rejected",
                    f"{step.id} was rejected" + (f" by {decision.reviewer}" if decision.reviewer else ""),
                    kind="Rejected",
                    review=outcome.model_dump(mode="json"),
                )
            )
        return outcome.model_dump(mode="json")

    async def _await_decision(
        self, step_id: str, escalate_at: Any, deadline: Any, spec: HumanReviewParams
    ) -> ReviewDecision | None:
        def decided() -> bool:
            return step_id in self._decisions or self._cancel is not None

        def decided_before(moment: datetime) -> bool:
            return step_id in self._decided_at and self._decided_at[step_id] < moment

        # The escalation timer and a decision can land in one workflow task, and they were seen
        # resolving in one order when a restarted worker first ran the task and in the other
        # when the history was replayed (a query had arrived meanwhile). So nothing here depends
        # on how a wait ended: a review is escalated unless it was decided *before* escalate_at,
        # by workflow time, which is the same in both.
        if escalate_at is not None and escalate_at < deadline:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(decided, timeout=escalate_at - workflow.now())
            if not decided_before(escalate_at):
                if self._review is not None:
                    self._review.escalated = True
                await self._emit(
                    "hearth.workflow.review.escalated.v1",
                    f"review.escalated/{step_id}",
                    {
                        "step_id": step_id,
                        "title": spec.title,
                        "escalate_to": spec.escalate_to,
                        "deadline": deadline.isoformat(),
                    },
                )
        if not decided():
            remaining = deadline - workflow.now()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(decided, timeout=max(remaining, timedelta(milliseconds=1)))
        self._check_cancel()
        if not decided():
            return None
        return self._decisions.pop(step_id)

    # ---- events -------------------------------------------------------------------------------
    async def _step_event(
        self, step: StepSpec, progress: StepProgress, *, output: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        fits = output is None or _fits(output)
        await self._emit(
            "hearth.workflow.step.completed.v1",
            f"step/{step.id}",
            {
                "step_id": step.id,
                "step_type": step.type,
                "outcome": "failed" if error else "completed",
                "started_at": (progress.started_at or workflow.now()).isoformat(),
                "finished_at": (progress.finished_at or workflow.now()).isoformat(),
                "duration_ms": progress.duration_ms or 0.0,
                "output": output if fits and isinstance(output, dict) else None,
                "output_truncated": not fits,
                "error": error,
            },
        )

    async def _emit(self, event_type: str, key: str, data: dict[str, Any]) -> None:
        """Publish an engine event from a local activity of this worker, awaited in place.

        A local activity costs one JetStream publish inside the current workflow task, where a
        regular activity per event cost a round trip through the server and a workflow task of
        its own (``bench/bench_workflows.py``). An event that cannot be published for a reason
        that will not go away is logged and dropped: events report a run, they never fail it.
        """
        inp = self._input
        if inp is None:
            return
        info = workflow.info()
        base = {
            "workflow": inp.workflow,
            "workflow_id": info.workflow_id,
            "run_id": info.run_id,
            "definition_hash": inp.definition_hash,
            "definition_version": inp.definition_version,
            "document_id": inp.document_id,
        }
        try:
            await workflow.execute_local_activity(
                EMIT_ACTIVITY,
                EmitEvent(
                    type=event_type,
                    key=f"{info.workflow_id}/{info.run_id}/{key}",
                    tenant=inp.tenant,
                    correlation_id=info.workflow_id,
                    data={**base, **data},
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_EMIT_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.warning("event %s not published: %s", event_type, _activity_error(exc).get("detail"))

    @staticmethod
    def _ms_since(start: Any) -> float:
        if start is None:
            return 0.0
        return round((workflow.now() - start).total_seconds() * 1000, 3)


class _Failure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("detail"))
        self.error = error
