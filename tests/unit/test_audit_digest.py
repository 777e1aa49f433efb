"""The audit chain's digest: stable, and sensitive to every column and to the previous link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.identity.audit import GENESIS, AuditEntry, entry_digest

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def row(**changes: object) -> dict[str, object]:
    entry = AuditEntry(event="access", decision="allow", reason="policy", principal="hk_abc", at=AT)
    return {**entry.__dict__, **changes}


def test_the_digest_is_stable_and_time_zone_neutral() -> None:
    same_instant = AT.astimezone(timezone(timedelta(hours=8)))
    assert entry_digest(GENESIS, row()) == entry_digest(GENESIS, row(at=same_instant))
    assert len(entry_digest(GENESIS, row())) == 32


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "policy "},
        {"decision": "deny"},
        {"principal": None},
        {"route": "/v1/keys"},
        {"at": AT + timedelta(microseconds=1)},
    ],
)
def test_any_change_to_an_entry_changes_its_digest(change: dict[str, object]) -> None:
    assert entry_digest(GENESIS, row(**change)) != entry_digest(GENESIS, row())


def test_the_digest_depends_on_the_previous_link() -> None:
    assert entry_digest(b"\x01" * 32, row()) != entry_digest(GENESIS, row())
