"""Recorded histories replay on the current interpreter, so a change that would break running
workflows (a non-deterministic edit of ``workflows/interpreter.py``) fails here, without a server.

The histories in ``tests/data/histories/`` come from real runs of the integration suite; record
them again with ``HEARTH_RECORD_HISTORIES=1 make test`` after a deliberate, patched change.
Every shipped definition (``workflows/*.yaml``) has at least one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from shared.capabilities import DATA_CONVERTER
from workflows.definitions import DEFINITIONS_DIR, LoadContext, load_directory
from workflows.interpreter import Interpreter

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

HISTORIES = Path(__file__).resolve().parents[1] / "data" / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def read(path: Path) -> str:
    return path.read_text()


def test_every_shipped_workflow_has_a_recorded_history() -> None:
    shipped = set(load_directory(DEFINITIONS_DIR, LoadContext(models=None)).definitions)
    assert shipped, "no shipped definitions found"
    assert shipped <= {p.stem for p in RECORDED}


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_a_recorded_history_replays_without_non_determinism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, read(path))
    replayer = Replayer(workflows=[Interpreter], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
