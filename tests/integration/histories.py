"""Recorded workflow histories for the replay test (``tests/unit/test_replay.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec

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
    # The live history is encrypted: replay it with the client's codec. The recorded one is kept
    # decrypted, so the unit replay test needs no OpenBao (and proves legacy plaintext histories).
    await Replayer(workflows=[Interpreter], data_converter=temporal.data_converter).replay_workflow(history)
    if os.environ.get("HEARTH_RECORD_HISTORIES") == "1":
        codec = temporal.data_converter.payload_codec
        if codec is not None:
            await history_decoded(history, codec)
        await Replayer(workflows=[Interpreter], data_converter=DATA_CONVERTER).replay_workflow(history)
        record_history(name, history.to_json())


async def history_decoded(history: WorkflowHistory, codec: PayloadCodec) -> None:
    """Decrypt every payload of ``history`` in place (what the UI shows through the codec endpoint)."""
    for event in history.events:
        await _decode_message(event, codec)


async def _decode_message(message: Message, codec: PayloadCodec) -> None:
    from temporalio.api.common.v1 import Payload, Payloads

    if isinstance(message, Payloads):
        decoded = await codec.decode(list(message.payloads))
        del message.payloads[:]
        message.payloads.extend(decoded)
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items: list[Any] = list(value.values()) if field.message_type.fields_by_name["value"].message_type else []
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                [decoded] = await codec.decode([item])
                item.CopyFrom(decoded)
            elif isinstance(item, Message):
                await _decode_message(item, codec)
