"""Composition root of the workflow worker (``python -m workflows``).

One process runs the interpreter workflow and the platform step types on task queue
``hearth-workflows``, keeps ``workflows/*.yaml`` in sync with the definition versions in
PostgreSQL, and runs the trigger consumers. It answers ``hearth.svc.workflows.health`` like every
service.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from shared.capabilities import CapabilityRegistry
from shared.clients import postgres_engine
from shared.logging import get_logger
from shared.runtime import ServiceContext, run
from shared.settings import HearthSettings
from workflows.activities import PlatformSteps, emit_activity, platform_registry
from workflows.definitions import load_definitions
from workflows.interpreter import Interpreter
from workflows.runs import RunService, register_search_attributes
from workflows.triggers import Triggers
from workflows.versions import DefinitionStore

log = get_logger("workflows")

RELOAD_INTERVAL_S = 5.0


class DefinitionSync:
    """Reads the definition files, records new versions, and points the triggers at the active ones."""

    def __init__(self, settings: HearthSettings, store: DefinitionStore, triggers: Triggers) -> None:
        self._settings = settings
        self._store = store
        self._triggers = triggers
        self._reported: dict[str, str] = {}

    async def once(self) -> None:
        loaded = await asyncio.to_thread(load_definitions, self._settings)
        for file, error in loaded.errors.items():
            if self._reported.get(file) != str(error):
                log.error(
                    "workflow definition refused; its last good version stays active",
                    file=file,
                    problems=[str(p) for p in error.problems],
                )
                self._reported[file] = str(error)
        for file in [f for f in self._reported if f not in loaded.errors]:
            del self._reported[file]
        active = await self._store.sync(loaded)
        definitions = {name: (await self._store.get(name, version)).parsed() for name, version in active.items()}
        await self._triggers.apply(definitions)

    async def forever(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL_S)
            try:
                await self.once()
            except Exception:  # a database hiccup must not stop the worker; the next round retries
                log.exception("definition sync failed; retrying")


def create_registry() -> CapabilityRegistry:
    """The worker's capabilities with unbound dependencies (what the AsyncAPI document reads)."""
    return platform_registry(PlatformSteps())


def main() -> None:
    steps = PlatformSteps()
    registry = platform_registry(steps)

    async def on_start(ctx: ServiceContext, stack: AsyncExitStack) -> None:
        engine = postgres_engine(ctx.settings)
        stack.push_async_callback(engine.dispose)
        steps.bind(ctx.bus, engine)
        await register_search_attributes(ctx.temporal)
        store = DefinitionStore(engine)
        triggers = Triggers(ctx.bus, RunService(ctx.temporal, store))
        stack.push_async_callback(triggers.stop)
        sync = DefinitionSync(ctx.settings, store, triggers)
        await sync.once()
        task = asyncio.create_task(sync.forever(), name="definition-sync")

        async def _stop_sync() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(_stop_sync)

    run(registry, on_start=on_start, workflows=[Interpreter], activities=[emit_activity(steps)])
