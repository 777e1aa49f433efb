"""The audit relay's pure parts: rows as the stream carries them, batches bounded in bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.events.audit import AuditedEntry, AuditEntries
from shared.identity.audit import COLUMNS
from shared.identity.audit_relay import audited, batches


def _row(n: int, reason: str = "ok") -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(COLUMNS)
    row.update(
        id=n,
        at=datetime(2026, 12, 1, tzinfo=UTC),
        event="access",
        decision="allow",
        reason=reason,
        prev_hash=bytes([n - 1]) * 32,
        hash=bytes([n]) * 32,
    )
    return row


def test_a_row_carries_its_chain_hashes_in_hex() -> None:
    entry = audited(_row(7))
    assert entry.id == 7
    assert entry.prev_hash == "06" * 32
    assert entry.hash == "07" * 32


def test_batches_keep_order_and_stay_under_the_limit() -> None:
    entries = [audited(_row(n)) for n in range(101, 201)]  # ids of one length: entries of one size
    size = len(entries[0].model_dump_json()) + 1
    out = batches(entries, max_bytes=size * 30)
    assert [len(b) for b in out] == [30, 30, 30, 10]
    assert [e.id for b in out for e in b] == list(range(101, 201))
    for batch in out:
        assert len(AuditEntries(entries=batch).model_dump_json()) <= size * 30 + 20


def test_an_entry_bigger_than_the_limit_still_travels_alone() -> None:
    big = audited(_row(1, reason="x" * 5000))
    small = audited(_row(2))
    assert batches([small, big, small], max_bytes=1000) == [[small], [big], [small]]


def test_hashes_must_be_hex_sha256() -> None:
    values = audited(_row(1)).model_dump()
    with pytest.raises(ValidationError):
        AuditedEntry.model_validate({**values, "hash": "07" * 31})
