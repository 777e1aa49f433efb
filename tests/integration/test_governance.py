"""API key lifecycle and the audit log on the real stack: expiry, rotation, revocation, listing, audit."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.clients import postgres_engine
from shared.identity.audit import AuditEntry, append
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gateway(stack: HearthSettings) -> httpx.Client:
    admin = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    return httpx.Client(base_url=stack.gateway_url, headers=admin, timeout=30)


@pytest.fixture
def new_key(gateway: httpx.Client) -> Callable[..., dict[str, Any]]:
    def create(**body: Any) -> dict[str, Any]:
        resp = gateway.post("/v1/keys", json={"name": f"test-{uuid.uuid4().hex[:6]}", **body})
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    return create


def _get(stack: HearthSettings, key: str, path: str = "/v1/models", **headers: str) -> httpx.Response:
    return httpx.get(f"{stack.gateway_url}{path}", headers={"Authorization": f"Bearer {key}", **headers}, timeout=30)


def _listed(gateway: httpx.Client, prefix: str) -> dict[str, Any]:
    (entry,) = [k for k in gateway.get("/v1/keys").json() if k["prefix"] == prefix]
    return dict(entry)


def _sleep_past(iso: str) -> None:
    time.sleep(max(0.0, datetime.fromisoformat(iso).timestamp() - time.time()) + 0.5)


def _eventually(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_a_key_is_refused_after_it_expires(stack: HearthSettings, new_key: Callable[..., dict[str, Any]]) -> None:
    created = new_key(role="user", tenant="tenant-exp", expires_in="10s")
    assert created["tenant"] == "tenant-exp"
    assert _get(stack, created["key"]).status_code == 200  # and now cached: the cache must not outlive it
    _sleep_past(created["expires_at"])
    refused = _get(stack, created["key"])
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"].startswith("API key expired at")


def test_rotation_keeps_the_old_key_for_the_grace_period_then_refuses_it(
    stack: HearthSettings, gateway: httpx.Client, new_key: Callable[..., dict[str, Any]]
) -> None:
    old = new_key(role="user", tenant="tenant-rot")
    assert _get(stack, old["key"]).status_code == 200  # cached in the gateway: rotation must still cut it
    resp = gateway.post(f"/v1/keys/{old['prefix']}/rotate", json={"grace": "10s"})
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert (new["name"], new["role"], new["tenant"]) == (old["name"], "user", "tenant-rot")
    assert new["prefix"] != old["prefix"]
    assert _get(stack, old["key"]).status_code == 200
    assert _get(stack, new["key"]).status_code == 200
    assert _listed(gateway, old["prefix"])["state"] == "rotated"
    again = gateway.post(f"/v1/keys/{old['prefix']}/rotate", json={})
    assert again.status_code == 409
    _sleep_past(_listed(gateway, old["prefix"])["expires_at"])  # the end of the grace period
    refused = _get(stack, old["key"])
    assert refused.status_code == 401
    assert "rotated" in refused.json()["detail"]
    assert _get(stack, new["key"]).status_code == 200
    listed = _listed(gateway, old["prefix"])
    assert (listed["state"], listed["replaced_by"]) == ("expired", new["prefix"])


def test_a_revoked_key_is_refused_at_once(
    stack: HearthSettings, gateway: httpx.Client, new_key: Callable[..., dict[str, Any]]
) -> None:
    created = new_key(role="user")
    assert _get(stack, created["key"]).status_code == 200
    assert gateway.delete(f"/v1/keys/{created['prefix']}").status_code == 204
    refused = _get(stack, created["key"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == "API key revoked"
    assert gateway.delete(f"/v1/keys/{created['prefix']}").status_code == 404
    assert _listed(gateway, created["prefix"])["state"] == "revoked"


def test_listing_shows_no_secret_and_notes_the_last_use(
    stack: HearthSettings, gateway: httpx.Client, new_key: Callable[..., dict[str, Any]]
) -> None:
    created = new_key(role="user", tenant="tenant-list")
    assert _get(stack, created["key"]).status_code == 200
    resp = gateway.get("/v1/keys", params={"tenant": "tenant-list"})
    assert resp.status_code == 200
    assert created["key"] not in resp.text
    assert "$argon2" not in resp.text
    assert all(k["tenant"] == "tenant-list" for k in resp.json())
    assert all("key" not in k and "hash" not in k for k in resp.json())
    # Written behind (about once a second), not on the request's path.
    assert _eventually(lambda: _listed(gateway, created["prefix"])["last_used_at"])


def test_a_user_key_cannot_manage_keys_or_read_the_audit(
    stack: HearthSettings, new_key: Callable[..., dict[str, Any]]
) -> None:
    user = {"Authorization": f"Bearer {new_key(role='user')['key']}"}
    with httpx.Client(base_url=stack.gateway_url, headers=user, timeout=30) as client:
        assert client.get("/v1/keys").status_code == 403
        assert client.post("/v1/keys", json={"name": "escalate", "role": "admin"}).status_code == 403
        assert client.post("/v1/keys/abcdefghijkl/rotate").status_code == 403
        assert client.delete("/v1/keys/abcdefghijkl").status_code == 403
        assert client.get("/v1/audit").status_code == 403


def test_allowed_and_denied_requests_and_key_events_are_audited(
    stack: HearthSettings, gateway: httpx.Client, new_key: Callable[..., dict[str, Any]]
) -> None:
    created = new_key(role="user", tenant="tenant-audit")
    prefix, run = created["prefix"], uuid.uuid4().hex
    assert _get(stack, created["key"], "/v1/models", **{"X-Request-ID": f"ok-{run}"}).status_code == 200
    assert _get(stack, created["key"], "/v1/keys", **{"X-Request-ID": f"no-{run}"}).status_code == 403

    def rows() -> list[dict[str, Any]]:
        found = gateway.get("/v1/audit", params={"principal": prefix, "since": "10m"}).json()
        return found if {r["request_id"] for r in found} >= {f"ok-{run}", f"no-{run}"} else []

    entries = _eventually(rows)
    assert entries, "the audit entries of both requests did not appear"
    by_request = {r["request_id"]: r for r in entries}
    allowed, denied = by_request[f"ok-{run}"], by_request[f"no-{run}"]
    assert (allowed["decision"], allowed["method"], allowed["route"]) == ("allow", "GET", "/v1/models")
    assert (allowed["tenant"], allowed["role"], allowed["event"]) == ("tenant-audit", "user", "access")
    assert allowed["trace_id"]
    assert (denied["decision"], denied["route"]) == ("deny", "/v1/keys")
    assert "may" in denied["reason"] or "policy" in denied["reason"]
    only_denied = gateway.get("/v1/audit", params={"principal": prefix, "decision": "deny"}).json()
    assert {r["decision"] for r in only_denied} == {"deny"}

    events = gateway.get("/v1/audit", params={"event": "key.created", "since": "10m"}).json()
    assert any(e["subject"] == prefix and e["tenant"] == "tenant-audit" for e in events)
    assert created["key"] not in gateway.get("/v1/audit", params={"limit": 1000}).text

    unauthenticated = httpx.get(f"{stack.gateway_url}/v1/models", headers={"X-Request-ID": f"anon-{run}"}, timeout=30)
    assert unauthenticated.status_code == 401

    def anon() -> list[dict[str, Any]]:
        found = gateway.get("/v1/audit", params={"decision": "deny", "since": "10m", "limit": 1000}).json()
        return [r for r in found if r["request_id"] == f"anon-{run}"]

    (refused,) = _eventually(anon)
    assert (refused["principal"], refused["reason"]) == (None, "no API key")


async def test_the_audit_table_is_append_only(stack: HearthSettings) -> None:
    engine = postgres_engine(stack, pool_size=1)
    try:
        async with engine.begin() as conn:  # at least one row for the row triggers to refuse changing
            await append(conn, [AuditEntry(event="access", decision="deny", reason="test")])
        with pytest.raises(DBAPIError, match="null value"):  # a row outside the hash chain is refused
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO audit_log (at, event, decision, reason) VALUES (now(), 'access', 'deny', 'test')")
                )
        for statement in ("UPDATE audit_log SET decision = 'allow'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.mark.timeout(400)  # eight CLI processes, each importing the CLI
def test_cli_creates_lists_and_revokes_keys(stack_environment: dict[str, str], stack: HearthSettings) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    tenant = f"tenant-{name}"  # a fresh tenant: the listings below see this test's keys only
    out = hearth_cli(stack_environment, "keys", "create", name, "--tenant", tenant, "--expires-in", "1d", "--json")
    created = json.loads(out.stdout)
    assert (created["name"], created["tenant"], created["role"]) == (name, tenant, "user")
    assert _get(stack, created["key"]).status_code == 200
    plain = hearth_cli(stack_environment, "keys", "create", f"{name}-plain")
    assert plain.stdout.strip().splitlines()[-1].startswith("hearth_")  # the key alone on the last line

    listed = json.loads(hearth_cli(stack_environment, "keys", "list", "--tenant", tenant, "--json").stdout)
    assert [k["name"] for k in listed] == [name]
    table = hearth_cli(stack_environment, "keys", "list").stdout
    assert created["prefix"] in table
    assert created["key"] not in table

    hearth_cli(stack_environment, "keys", "revoke", created["prefix"])
    assert _get(stack, created["key"]).status_code == 401
    active = json.loads(hearth_cli(stack_environment, "keys", "list", "--tenant", tenant, "--json").stdout)
    assert active == []
    every = json.loads(hearth_cli(stack_environment, "keys", "list", "--tenant", tenant, "--all", "--json").stdout)
    assert [k["state"] for k in every] == ["revoked"]
    missing = hearth_cli(stack_environment, "keys", "revoke", created["prefix"], check=False)
    assert missing.returncode == 1
    assert "no active API key" in missing.stderr
