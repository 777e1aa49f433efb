"""The lifecycle's Temporal schedules, made or brought up to date at every start of the service.

``hearth-lifecycle-tiering``, ``hearth-lifecycle-retention`` and ``hearth-key-rotation`` each
start their workflow on ``hearth-governance`` at the policy file's interval, one run at a time
(a run still going when the next is due makes it skip). They show in the Temporal UI under
Schedules; an operator may pause one there, and a restart keeps it paused.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from services.governance.config import LifecycleConfig
from shared.lifecycle import (
    RETENTION_WORKFLOW,
    ROTATION_WORKFLOW,
    SCHEDULES,
    TASK_QUEUE,
    TIERING_WORKFLOW,
    LifecycleRun,
)
from shared.logging import get_logger

log = get_logger(__name__)


def schedule_for(schedule_id: str, config: LifecycleConfig, *, batch: int) -> Schedule:
    """The schedule ``schedule_id`` as the policy file wants it."""
    workflow = SCHEDULES[schedule_id]
    every = {
        TIERING_WORKFLOW: config.schedules.tiering,
        RETENTION_WORKFLOW: config.schedules.retention,
        ROTATION_WORKFLOW: config.schedules.key_rotation,
    }[workflow]
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            LifecycleRun(batch=batch),
            id=f"{schedule_id}-run",
            task_queue=TASK_QUEUE,
            execution_timeout=timedelta(days=1),
            static_summary=f"{workflow} (schedule {schedule_id})",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedules(client: Client, config: LifecycleConfig, *, batch: int) -> list[str]:
    """Create each schedule, or update it to the file's interval and action (its paused state kept)."""
    for schedule_id in SCHEDULES:
        wanted = schedule_for(schedule_id, config, batch=batch)
        try:
            await client.create_schedule(schedule_id, wanted)
            log.info("lifecycle schedule created", schedule=schedule_id)
        except ScheduleAlreadyRunningError:

            def keep_state(current: ScheduleUpdateInput, wanted: Schedule = wanted) -> ScheduleUpdate:
                wanted.state = current.description.schedule.state
                return ScheduleUpdate(schedule=wanted)

            await client.get_schedule_handle(schedule_id).update(keep_state)
            log.info("lifecycle schedule updated", schedule=schedule_id)
    return list(SCHEDULES)
