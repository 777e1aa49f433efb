"""Recorded workflow histories for the replay test (``tests/unit/test_replay.py``)."""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import Client as TemporalClient

HISTORIES = Path(__file__).resolve().parents[1] / "data" / "histories"


def record_history(name: str, history_json: str) -> None:
    """With HEARTH_RECORD_HISTORIES=1, keep the history for the replay test (tests/unit/test_replay.py)."""
    if os.environ.get("HEARTH_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history_json)


async def replay(temporal: TemporalClient, run_id: str, name: str) -> None:
    """The run's history replays on the current interpreter (and is kept when recording)."""
    from temporalio.worker import Replayer

    from shared.capabilities import DATA_CONVERTER
    from workflows.interpreter import Interpreter

    history = await temporal.get_workflow_handle(run_id).fetch_history()
    await Replayer(workflows=[Interpreter], data_converter=DATA_CONVERTER).replay_workflow(history)
    record_history(name, history.to_json())
