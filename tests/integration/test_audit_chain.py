"""The audit log's hash chain on the real database: an altered or deleted entry is found by
``hearth audit verify`` even when a superuser lifts the append-only trigger to do it; entries
cut off the end are found through their copies in the ``HEARTH_AUDIT`` stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from shared.bus import Bus
from shared.clients import postgres_engine
from shared.identity.audit import CHAIN_LOCK
from shared.identity.audit_relay import stream_head, verify_stream
from shared.launcher.components import postgres_socket_dir
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _verify(stack: HearthSettings) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    resp = httpx.get(f"{stack.gateway_url}/v1/audit/verify", headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    report: dict[str, Any] = resp.json()
    return report


@pytest.fixture
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    connected = await Bus.connect(stack, name="test-audit-chain")
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
async def superuser(stack: HearthSettings) -> AsyncIterator[asyncpg.Connection]:
    """What an intruder with the database's superuser would hold."""
    conn = await asyncpg.connect(
        host=str(postgres_socket_dir(stack)),
        port=stack.postgres_server_port,
        user="postgres",
        database=stack.postgres_db,
    )
    try:
        yield conn
    finally:
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        await conn.close()


def _some_entries(stack: HearthSettings) -> None:
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    for _ in range(5):
        httpx.get(f"{stack.gateway_url}/v1/keys", headers=headers, timeout=30)
        httpx.get(f"{stack.gateway_url}/v1/keys", timeout=30)  # denied: no key
    deadline = time.monotonic() + 30
    while _verify(stack)["entries"] < 10 and time.monotonic() < deadline:  # the writer flushes every second
        time.sleep(0.5)


def test_an_untouched_log_verifies(stack: HearthSettings, stack_environment: dict[str, str]) -> None:
    _some_entries(stack)
    report = _verify(stack)
    assert report["ok"], report
    assert report["entries"] >= 10
    out = hearth_cli(stack_environment, "audit", "verify")
    assert out.stdout.startswith("ok ")


async def test_an_altered_entry_is_found_and_named(
    stack: HearthSettings, bus: Bus, superuser: asyncpg.Connection
) -> None:
    _some_entries(stack)
    # Tamper only with entries the relay has copied: one deleted before that is missing from the
    # audit stream for good, and the stream rightly reports it even after the entry is put back.
    copied = await _relayed(bus, superuser)
    victim = await superuser.fetchrow(
        "SELECT id, reason FROM audit_log WHERE id <= $1 ORDER BY id DESC OFFSET 3 LIMIT 1", copied
    )
    await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    await superuser.execute("UPDATE audit_log SET reason = 'nothing happened' WHERE id = $1", victim["id"])
    try:
        report = _verify(stack)
        assert not report["ok"]
        assert report["first_bad_id"] == victim["id"]
        assert "altered" in report["reason"]
    finally:
        await superuser.execute("UPDATE audit_log SET reason = $2 WHERE id = $1", victim["id"], victim["reason"])
    assert _verify(stack)["ok"]


async def test_a_deleted_entry_is_found_at_the_next_one(
    stack: HearthSettings, stack_environment: dict[str, str], bus: Bus, superuser: asyncpg.Connection
) -> None:
    _some_entries(stack)
    copied = await _relayed(bus, superuser)  # as above: the stream must hold the victim before it goes
    rows = await superuser.fetch("SELECT * FROM audit_log WHERE id <= $1 ORDER BY id DESC OFFSET 3 LIMIT 2", copied)
    newer, victim = rows[0], rows[1]
    await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    await superuser.execute("DELETE FROM audit_log WHERE id = $1", victim["id"])
    try:
        report = _verify(stack)
        assert not report["ok"]
        assert report["first_bad_id"] == newer["id"]
        assert "deleted" in report["reason"]
        broken = hearth_cli(stack_environment, "audit", "verify", check=False)
        assert broken.returncode == 1
        assert f"entry {newer['id']}" in " ".join(broken.stderr.split())
    finally:
        columns = list(victim.keys())
        placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
        await superuser.execute(
            f"INSERT INTO audit_log ({', '.join(columns)}) OVERRIDING SYSTEM VALUE VALUES ({placeholders})",  # noqa: S608 - the table's own columns
            *victim.values(),
        )
    assert _verify(stack)["ok"]


async def _relayed(bus: Bus, superuser: asyncpg.Connection) -> int:
    """Wait until the relay has copied every entry in the table; the newest id."""
    deadline = time.monotonic() + 30
    while True:
        newest = await superuser.fetchval("SELECT max(id) FROM audit_log")
        head = await stream_head(bus)
        if head is not None and head.id == newest:
            return int(newest)
        assert time.monotonic() < deadline, f"relay stuck: table at {newest}, stream at {head and head.id}"
        await asyncio.sleep(0.3)


async def test_every_entry_reaches_the_audit_stream_in_order(
    stack: HearthSettings, superuser: asyncpg.Connection
) -> None:
    _some_entries(stack)
    bus = await Bus.connect(stack, name="test-audit-stream")
    try:
        newest = await _relayed(bus, superuser)
        head = await stream_head(bus)
        assert head is not None
        row = await superuser.fetchrow("SELECT hash, tenant, event FROM audit_log WHERE id = $1", newest)
        assert head.hash == bytes(row["hash"]).hex()
        assert (head.tenant, head.event) == (row["tenant"], row["event"])
    finally:
        await bus.close()
    report = _verify(stack)
    assert report["ok"], report
    assert report["stream_entries"] >= newest - 5  # the stream holds the whole log (a few may be new)


async def test_entries_cut_off_the_end_are_found_through_the_stream(
    stack: HearthSettings, superuser: asyncpg.Connection
) -> None:
    """A tail cut leaves a valid chain in the table; only the copy off the database shows it.

    Checked in process, holding the chain's lock (no audit entry may chain onto the cut log for
    good), and put back before it is released.
    """
    _some_entries(stack)
    bus = await Bus.connect(stack, name="test-audit-tail")
    engine = postgres_engine(stack, pool_size=1)
    # Every writer takes this lock first: none can chain onto the cut log while it is held.
    await superuser.execute("SELECT pg_advisory_lock($1)", CHAIN_LOCK)
    try:
        newest = await _relayed(bus, superuser)
        victims = await superuser.fetch("SELECT * FROM audit_log WHERE id > $1 ORDER BY id", newest - 2)
        await superuser.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await superuser.execute("DELETE FROM audit_log WHERE id > $1", newest - 2)
        try:
            report = await verify_stream(engine, bus)
            assert not report.ok
            assert report.first_bad_id == newest - 1
            assert "deleted" in str(report.reason)
        finally:
            for victim in victims:
                columns = list(victim.keys())
                placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
                await superuser.execute(
                    f"INSERT INTO audit_log ({', '.join(columns)}) OVERRIDING SYSTEM VALUE VALUES ({placeholders})",  # noqa: S608 - the table's own columns
                    *victim.values(),
                )
        assert (await verify_stream(engine, bus)).ok
    finally:
        await superuser.execute("SELECT pg_advisory_unlock($1)", CHAIN_LOCK)
        await engine.dispose()
        await bus.close()
    assert _verify(stack)["ok"]
