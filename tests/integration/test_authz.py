"""Access control on the real stack: policies in PostgreSQL, the NATS watcher, tenant admins, sensitivity.

A second enforcer in this test process (over the stack's database and NATS, as another gateway or
service holds one) shows that a change made through the API reaches every enforcer within a
second, not only the gateway that made it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Bus
from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore, CreatedKey
from shared.identity.authz import Authorizer, PolicyWatcher, database_enforcer
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli
from tests.integration.documents import processed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PROPAGATION_S = 1.0


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture
async def admin(stack: HearthSettings) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as http:
        yield http


MakeKey = Callable[..., Awaitable[tuple[CreatedKey, httpx.AsyncClient]]]


@pytest.fixture
async def new_key(stack: HearthSettings, engine: AsyncEngine) -> AsyncIterator[MakeKey]:
    keys = ApiKeyStore(engine)
    clients: list[httpx.AsyncClient] = []

    async def make(
        tenant: str, *, role: str = "user", clearance: str = "internal"
    ) -> tuple[CreatedKey, httpx.AsyncClient]:
        created = await keys.create(f"test-authz-{uuid.uuid4().hex[:6]}", role, tenant=tenant, clearance=clearance)
        http = httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"Authorization": f"Bearer {created.key}"}, timeout=60
        )
        clients.append(http)
        return created, http

    yield make
    for http in clients:
        await http.aclose()


def tenant() -> str:
    return f"authz-{uuid.uuid4().hex[:8]}"


async def until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until ``check`` holds; fails when it does not within ``within``."""
    started = time.monotonic()
    while not await check():
        elapsed = time.monotonic() - started
        assert elapsed < within, f"not within {within}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_policy_change_through_the_api_reaches_every_enforcer_within_a_second(
    stack: HearthSettings, engine: AsyncEngine, admin: httpx.AsyncClient, new_key: MakeKey
) -> None:
    t = tenant()
    _, user = await new_key(t)
    bus = await Bus.connect(stack, name="test-authz-watcher")
    other = Authorizer(await database_enforcer(engine))  # another process's enforcer
    watcher = PolicyWatcher(bus.nc, other)
    await watcher.start()
    try:
        assert (await user.get("/v1/audit")).status_code == 403
        assert not other.allowed(("user",), t, "/v1/audit", "GET")  # and memoised as a deny

        policy = {"role": "user", "domain": t, "resource": "/v1/audit", "methods": "GET"}
        resp = await admin.post("/v1/authz/policies", json=policy)
        assert resp.status_code == 201, resp.text
        assert resp.json() == policy

        async def gateway_allows() -> bool:
            return (await user.get("/v1/audit", params={"limit": 1})).status_code == 200

        async def other_allows() -> bool:
            return other.allowed(("user",), t, "/v1/audit", "GET")

        await until(gateway_allows, PROPAGATION_S)
        await until(other_allows, PROPAGATION_S)
        # Only that tenant's users: the policy's domain is that tenant.
        _, elsewhere = await new_key(tenant())
        assert (await elsewhere.get("/v1/audit")).status_code == 403

        resp = await admin.delete("/v1/authz/policies", params=policy)
        assert resp.status_code == 204, resp.text

        async def gateway_denies() -> bool:
            return (await user.get("/v1/audit", params={"limit": 1})).status_code == 403

        async def other_denies() -> bool:
            return not other.allowed(("user",), t, "/v1/audit", "GET")

        await until(gateway_denies, PROPAGATION_S)
        await until(other_denies, PROPAGATION_S)
        again = await admin.delete("/v1/authz/policies", params=policy)
        assert again.status_code == 404
        assert again.headers["content-type"].startswith("application/problem+json")
    finally:
        await watcher.stop()
        await bus.close()


async def test_a_role_assigned_to_a_key_holds_in_its_tenant_and_is_audited(
    admin: httpx.AsyncClient, new_key: MakeKey
) -> None:
    t = tenant()
    key, user = await new_key(t)
    member = f"key:{key.prefix}"
    assert (await user.get("/v1/authz/roles")).status_code == 403
    resp = await admin.post("/v1/authz/assignments", json={"member": member, "role": "tenant_admin", "domain": t})
    assert resp.status_code == 201, resp.text
    await until(lambda: _status(user, "/v1/authz/roles", 200), PROPAGATION_S)
    listed = (await admin.get("/v1/authz/assignments", params={"member": member})).json()
    assert listed == [{"member": member, "role": "tenant_admin", "domain": t}]
    changes = (await admin.get("/v1/audit", params={"event": "authz.changed", "limit": 20})).json()
    assert any(member in c["reason"] and c["reason"].startswith("assignment.added") for c in changes)
    # A key's roles are assigned in its own tenant only.
    wrong = await admin.post("/v1/authz/assignments", json={"member": member, "role": "user", "domain": tenant()})
    assert wrong.status_code == 400
    assert "belongs to tenant" in wrong.json()["detail"]
    unknown = await admin.post(
        "/v1/authz/assignments", json={"member": "key:AAAAAAAAAAAA", "role": "user", "domain": t}
    )
    assert unknown.status_code == 404
    # A rotated key's replacement keeps the roles the old one was given.
    rotated = await admin.post(f"/v1/keys/{key.prefix}/rotate", json={"grace": "0s"})
    assert rotated.status_code == 201, rotated.text
    replacement = rotated.json()
    carried = (await admin.get("/v1/authz/assignments", params={"member": f"key:{replacement['prefix']}"})).json()
    assert carried == [{"member": f"key:{replacement['prefix']}", "role": "tenant_admin", "domain": t}]
    headers = {"Authorization": f"Bearer {replacement['key']}"}
    assert (await admin.get("/v1/authz/roles", headers=headers)).status_code == 200
    resp = await admin.delete("/v1/authz/assignments", params={"member": member, "role": "tenant_admin", "domain": t})
    assert resp.status_code == 204
    assert (await admin.get("/v1/authz/assignments", params={"member": member})).json() == []


async def _status(http: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await http.get(path)).status_code == status


async def test_a_tenant_admin_manages_only_its_own_domain_and_only_what_it_holds(
    admin: httpx.AsyncClient, new_key: MakeKey
) -> None:
    mine, theirs = tenant(), tenant()
    key, tenant_admin = await new_key(mine)
    colleague, _ = await new_key(mine)
    outsider, _ = await new_key(theirs)
    resp = await admin.post(
        "/v1/authz/assignments", json={"member": f"key:{key.prefix}", "role": "tenant_admin", "domain": mine}
    )
    assert resp.status_code == 201, resp.text
    await until(lambda: _status(tenant_admin, "/v1/authz/policies", 200), PROPAGATION_S)

    # Its own domain by default, another's refused whatever the body says.
    policy = {"role": "auditor", "resource": "/v1/documents", "methods": "GET"}
    resp = await tenant_admin.post("/v1/authz/policies", json=policy)
    assert resp.status_code == 201, resp.text
    assert resp.json()["domain"] == mine
    refused = await tenant_admin.post("/v1/authz/policies", json={**policy, "domain": theirs})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    platform = await tenant_admin.post("/v1/authz/policies", json={**policy, "domain": "*"})
    assert platform.status_code == 403
    # No grant beyond what it holds: API keys are the platform admin's.
    beyond = await tenant_admin.post("/v1/authz/policies", json={**policy, "resource": "/v1/keys"})
    assert beyond.status_code == 403
    assert "do not hold" in beyond.json()["detail"]
    escalate = await tenant_admin.post(
        "/v1/authz/assignments", json={"member": f"key:{colleague.prefix}", "role": "admin"}
    )
    assert escalate.status_code == 403
    # A role of its own, given to a colleague of its tenant but not to another tenant's key.
    role = await tenant_admin.post(
        "/v1/authz/roles",
        json={"name": "auditor", "permissions": [{"resource": "/v1/workflows", "methods": "GET"}], "inherits": []},
    )
    assert role.status_code == 409  # auditor exists already (the policy above)
    role = await tenant_admin.post(
        "/v1/authz/roles",
        json={"name": "reviewer", "permissions": [{"resource": "/v1/runs/:id/review", "methods": "POST"}]},
    )
    assert role.status_code == 201, role.text
    assert role.json()["domain"] == mine
    given = await tenant_admin.post(
        "/v1/authz/assignments", json={"member": f"key:{colleague.prefix}", "role": "reviewer"}
    )
    assert given.status_code == 201, given.text
    foreign = await tenant_admin.post(
        "/v1/authz/assignments", json={"member": f"key:{outsider.prefix}", "role": "reviewer"}
    )
    # Another tenant's key is invisible to it (row-level security on api_keys): not even its tenant is told.
    assert foreign.status_code == 404, foreign.text
    assert theirs not in foreign.text
    # It sees its domain and the platform-wide rules, never another tenant's.
    await admin.post(
        "/v1/authz/policies", json={"role": "auditor", "domain": theirs, "resource": "/v1/ocr", "methods": "POST"}
    )
    seen = (await tenant_admin.get("/v1/authz/policies")).json()
    assert {p["domain"] for p in seen} <= {mine, "*"}
    assert {"role": "auditor", "domain": mine, "resource": "/v1/documents", "methods": "GET"} in seen
    roles = {(r["name"], r["domain"]) for r in (await tenant_admin.get("/v1/authz/roles")).json()}
    assert ("reviewer", mine) in roles
    assert ("auditor", theirs) not in roles
    resp = await tenant_admin.delete("/v1/authz/roles/reviewer")
    assert resp.status_code == 204
    assert (await tenant_admin.get("/v1/authz/assignments", params={"member": f"key:{colleague.prefix}"})).json() == []


async def test_bad_input_is_a_problem_details_answer(admin: httpx.AsyncClient) -> None:
    cases = [
        ({"role": "user", "resource": "/v1/ocr", "methods": "BREW"}, "methods"),
        ({"role": "user", "resource": "/etc/passwd", "methods": "GET"}, "resource"),
        ({"role": "Bad Role", "resource": "/v1/ocr", "methods": "GET"}, "role"),
        ({"role": "user", "resource": "/v1/ocr", "methods": "GET", "domain": "a/b"}, "domain"),
    ]
    for body, word in cases:
        resp = await admin.post("/v1/authz/policies", json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert word in resp.json()["detail"]
    missing = await admin.post("/v1/authz/policies", json={"role": "user"})
    assert missing.status_code == 400
    assert {e["key"] for e in missing.json()["errors"]} == {"resource", "methods"}
    extra = await admin.post("/v1/authz/roles", json={"name": "x", "permissions": [], "bogus": 1})
    assert extra.status_code == 400
    empty = await admin.post("/v1/authz/roles", json={"name": "nothing"})
    assert empty.status_code == 400
    assert "at least one" in empty.json()["detail"]


async def test_the_shipped_policy_was_seeded_into_the_database(admin: httpx.AsyncClient) -> None:
    policies = (await admin.get("/v1/authz/policies", params={"domain": "*"})).json()
    assert {"role": "admin", "domain": "*", "resource": "/v1/*", "methods": ".*"} in policies
    assert {"role": "user", "domain": "*", "resource": "/v1/documents/:id", "methods": "GET"} in policies
    roles = {r["name"]: r for r in (await admin.get("/v1/authz/roles", params={"domain": "*"})).json()}
    assert roles["tenant_admin"]["inherits"] == ["user"]


def test_the_cli_adds_lists_and_removes_policies(stack_environment: dict[str, str]) -> None:
    t = tenant()
    hearth_cli(stack_environment, "authz", "policies", "add", "user", "/v1/audit", "GET", "--domain", t)
    listed = hearth_cli(stack_environment, "authz", "policies", "list", "--domain", t, "--json")
    assert '"resource": "/v1/audit"' in listed.stdout
    refused = hearth_cli(stack_environment, "authz", "policies", "add", "user", "/v1/x", "BREW", check=False)
    assert refused.returncode != 0
    assert "methods" in refused.stdout + refused.stderr
    hearth_cli(stack_environment, "authz", "policies", "remove", "user", "/v1/audit", "GET", "--domain", t)
    assert hearth_cli(stack_environment, "authz", "policies", "list", "--domain", t, "--json").stdout.strip() == "[]"
    roles = hearth_cli(stack_environment, "authz", "roles", "list", "--domain", "*")
    assert "tenant_admin" in roles.stdout


# ---- sensitivity ------------------------------------------------------------------------------

MARKER = "zephyrquartz"


async def _submit(http: httpx.AsyncClient, text: str, sensitivity: str) -> str:
    body = {"text": text, "filename": f"{sensitivity}.txt", "sensitivity": sensitivity}
    resp = await http.post("/v1/documents", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def test_a_document_is_read_searched_and_cited_only_within_the_callers_clearance(
    admin: httpx.AsyncClient, new_key: MakeKey
) -> None:
    t = tenant()
    cleared_key, cleared = await new_key(t, clearance="secret")
    reader_key, reader = await new_key(t, clearance="internal")
    text = f"The {MARKER} project budget is forty thousand euros, approved by the board in March."
    public_id = await _submit(cleared, text, "public")
    secret_id = await _submit(cleared, f"Secret: {text} The {MARKER} codename stays inside.", "secret")
    assert (await processed(cleared, secret_id, 180, succeeded=True))["sensitivity"] == "secret"
    await processed(cleared, public_id, 180, succeeded=True)

    # Read: the secret one is as missing as an unknown id; the public one is there.
    hidden = await reader.get(f"/v1/documents/{secret_id}")
    unknown = await reader.get(f"/v1/documents/{uuid.uuid4()}")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["type"] == unknown.json()["type"]
    assert (await reader.get(f"/v1/documents/{public_id}")).json()["sensitivity"] == "public"
    listed = {d["id"] for d in (await reader.get("/v1/documents")).json()}
    assert listed == {public_id}
    assert {d["id"] for d in (await cleared.get("/v1/documents")).json()} == {public_id, secret_id}

    # Search and Q&A: filtered in SQL, so the secret document is never a hit or a citation.
    hits = (await reader.get("/v1/search", params={"q": MARKER})).json()["hits"]
    assert [h["document_id"] for h in hits] == [public_id]
    both = (await cleared.get("/v1/search", params={"q": MARKER})).json()["hits"]
    assert {h["document_id"] for h in both} == {public_id, secret_id}
    only_public = (await cleared.get("/v1/search", params={"q": MARKER, "sensitivity": "public"})).json()["hits"]
    assert [h["document_id"] for h in only_public] == [public_id]
    for _ in range(2):
        answer = (
            await reader.post("/v1/ask", json={"question": f"What is the {MARKER} codename?", "mode": "extractive"})
        ).json()
        assert {c["document_id"] for c in answer["citations"]} <= {public_id}, answer

    # Writes: no document above one's clearance, no change to what one may not read.
    too_high = await reader.post("/v1/documents", json={"text": "x", "sensitivity": "confidential"})
    assert too_high.status_code == 403
    assert (await reader.patch(f"/v1/documents/{public_id}", json={"sensitivity": "secret"})).status_code == 403
    assert (await reader.patch(f"/v1/documents/{secret_id}", json={"sensitivity": "public"})).status_code == 404
    bad = await cleared.patch(f"/v1/documents/{public_id}", json={"sensitivity": "top-secret"})
    assert bad.status_code == 400
    raised = await cleared.patch(f"/v1/documents/{public_id}", json={"sensitivity": "confidential"})
    assert raised.status_code == 200, raised.text
    assert raised.json()["sensitivity"] == "confidential"
    assert (await reader.get(f"/v1/documents/{public_id}")).status_code == 404
    assert (await reader.get("/v1/search", params={"q": MARKER})).json()["hits"] == []

    # Another tenant never sees them, whatever its clearance.
    _, stranger = await new_key(tenant(), clearance="secret")
    assert (await stranger.get(f"/v1/documents/{public_id}")).status_code == 404
    assert (await stranger.get("/v1/search", params={"q": MARKER})).json()["hits"] == []

    # Every decision on data is in the audit log, allow and deny.
    await asyncio.sleep(1.5)  # the audit writer's batch interval
    reads = (await admin.get("/v1/audit", params={"principal": reader_key.prefix, "limit": 200})).json()
    decided = {(e["event"], e["decision"], e["subject"]) for e in reads}
    assert ("data.read", "deny", f"document:{secret_id}") in decided
    assert ("data.read", "allow", f"document:{public_id}") in decided
    assert ("data.write", "deny", f"document:{public_id}") in decided
    searches = [e for e in reads if e["event"] == "data.search"]
    assert any("public, internal" in e["reason"] for e in searches)
    cleared_reads = (await admin.get("/v1/audit", params={"principal": cleared_key.prefix, "limit": 200})).json()
    assert any(e["event"] == "data.write" and e["decision"] == "allow" for e in cleared_reads)


async def test_a_keys_clearance_is_set_at_creation_and_listed(admin: httpx.AsyncClient, stack: HearthSettings) -> None:
    resp = await admin.post("/v1/keys", json={"name": "cleared", "tenant": tenant(), "clearance": "confidential"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["clearance"] == "confidential"
    listed = [k for k in (await admin.get("/v1/keys")).json() if k["prefix"] == resp.json()["prefix"]]
    assert listed[0]["clearance"] == "confidential"
    default = await admin.post("/v1/keys", json={"name": "plain", "tenant": tenant()})
    assert default.json()["clearance"] == "internal"
    bad = await admin.post("/v1/keys", json={"name": "bad", "clearance": "cosmic"})
    assert bad.status_code == 400
    bootstrap = [k for k in (await admin.get("/v1/keys")).json() if k["name"] == "bootstrap-admin"]
    assert bootstrap[0]["clearance"] == "secret"
