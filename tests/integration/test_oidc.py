"""OIDC access tokens at the real gateway: the test stack's gateway trusts the IdP run here.

The identity provider is outside Hearth, so ``tests/idp.py`` stands in for it (a real HTTP server
on the port ``stack_env`` names in ``HEARTH_OIDC_ISSUER``); the gateway discovers and fetches its
keys over HTTP like it would Keycloak's. Everything on Hearth's side is the real stack: Casbin
policies in PostgreSQL, the documents' tenant checks, the audit log.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.settings import HearthSettings
from tests.idp import LocalIdp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def idp(stack_environment: dict[str, str]) -> Iterator[LocalIdp]:
    issuer = stack_environment.get("HEARTH_OIDC_ISSUER", "")
    parts = urlsplit(issuer)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        pytest.skip("the stack's gateway trusts no local OIDC issuer (HEARTH_OIDC_ISSUER)")
    with LocalIdp(parts.port, audience=stack_environment["HEARTH_OIDC_AUDIENCE"].split(",")[0]) as server:
        assert server.issuer == issuer
        server.add_key("rsa")
        yield server


@pytest.fixture
async def gateway(stack: HearthSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        yield http


@pytest.fixture
async def admin(stack: HearthSettings) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tenant() -> str:
    return f"oidc-{uuid.uuid4().hex[:8]}"


async def audited(
    admin: httpx.AsyncClient, until: Callable[[list[dict[str, Any]]], bool], **params: Any
) -> list[dict[str, Any]]:
    """Audit entries matching ``params`` once ``until`` holds for them (the write-behind batches every second)."""
    deadline = time.monotonic() + 15
    while not until(entries := (await admin.get("/v1/audit", params={"since": "10m", "limit": 500, **params})).json()):
        assert time.monotonic() < deadline, (params, entries)
        await asyncio.sleep(0.5)
    return list(entries)


async def test_a_user_token_may_use_user_routes_but_not_admin_ones(
    idp: LocalIdp, gateway: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    sub = f"user-{uuid.uuid4().hex[:8]}"
    tenant_ = tenant()
    token = idp.token(sub=sub, hearth_tenant=tenant_, roles=["user"])
    workflows = await gateway.get("/v1/workflows", headers=bearer(token))
    assert workflows.status_code == 200, workflows.text
    documents = await gateway.get("/v1/documents", headers=bearer(token))
    assert documents.status_code == 200, documents.text
    assert documents.json() == []  # a fresh tenant
    keys = await gateway.get("/v1/keys", headers=bearer(token))
    assert keys.status_code == 403, keys.text
    assert keys.headers["content-type"].startswith("application/problem+json")
    # admin in the token is not taken: the stack allows the default roles only (tenant_admin, user).
    elevated = await gateway.get("/v1/keys", headers=bearer(idp.token(roles=["admin"])))
    assert elevated.status_code == 401
    assert "grants none of the roles" in elevated.json()["detail"]

    expected = {("allow", "/v1/workflows", "user", tenant_), ("deny", "/v1/keys", "user", tenant_)}
    await audited(
        admin,
        lambda entries: expected <= {(e["decision"], e["route"], e["role"], e["tenant"]) for e in entries},
        principal=f"oidc:{sub}",
    )


async def test_bad_tokens_are_401_and_audited_without_the_token(
    idp: LocalIdp, gateway: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    now = int(time.time())
    rogue = idp.add_key("rsa", publish=False)
    cases = {
        "token expired": idp.token(exp=now - 3600, iat=now - 7200),
        "token is for another audience": idp.token(aud="another-app"),
        "token is from another issuer": idp.token(iss="https://idp.example"),
        "token signature does not verify": idp.token(rogue, headers={"kid": idp.published[0]}),
        "token lacks the tenant claim 'hearth_tenant'": idp.token(hearth_tenant=None),
    }
    for detail, token in cases.items():
        response = await gateway.get("/v1/workflows", headers=bearer(token))
        assert response.status_code == 401, (detail, response.text)
        assert response.json()["detail"] == detail
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expected = {f"OIDC token: {detail}" for detail in cases}
    entries = await audited(admin, lambda entries: expected <= {e["reason"] for e in entries}, decision="deny")
    assert all(e["principal"] is None for e in entries if e["reason"] in expected)
    text = str(entries)
    assert not any(token in text for token in cases.values())


async def test_a_rotated_key_is_fetched_on_its_first_token(idp: LocalIdp, gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/v1/workflows", headers=bearer(idp.token()))).status_code == 200
    fetched = idp.requests["/jwks"]
    rotated = idp.add_key("ec")
    await asyncio.sleep(1.2)  # HEARTH_OIDC_REFRESH_INTERVAL_S=1 in the test stack
    response = await gateway.get("/v1/workflows", headers=bearer(idp.token(rotated)))
    assert response.status_code == 200, response.text
    assert idp.requests["/jwks"] == fetched + 1
    # Made-up key ids in a burst: at most one more fetch within the interval.
    bogus = [idp.token(rotated, headers={"kid": uuid.uuid4().hex}) for _ in range(20)]
    statuses = await asyncio.gather(*(gateway.get("/v1/workflows", headers=bearer(t)) for t in bogus))
    assert {s.status_code for s in statuses} == {401}
    assert idp.requests["/jwks"] <= fetched + 2


async def test_the_tenant_of_the_token_isolates_documents(idp: LocalIdp, gateway: httpx.AsyncClient) -> None:
    own, other = tenant(), tenant()
    owner = bearer(idp.token(hearth_tenant=own, hearth_clearance="internal"))
    stranger = bearer(idp.token(hearth_tenant=other, hearth_clearance="confidential"))
    submitted = await gateway.post(
        "/v1/documents", json={"text": "OIDC tenant isolation check.", "filename": "oidc.txt"}, headers=owner
    )
    assert submitted.status_code == 202, submitted.text
    doc_id = submitted.json()["id"]
    assert (await gateway.get(f"/v1/documents/{doc_id}", headers=owner)).status_code == 200
    assert (await gateway.get(f"/v1/documents/{doc_id}", headers=stranger)).status_code == 404
    assert doc_id in {d["id"] for d in (await gateway.get("/v1/documents", headers=owner)).json()}
    assert (await gateway.get("/v1/documents", headers=stranger)).json() == []
    # The default clearance of a token without the claim is public: the internal document is hidden too.
    unclaimed = bearer(idp.token(hearth_tenant=own))
    assert (await gateway.get(f"/v1/documents/{doc_id}", headers=unclaimed)).status_code == 404
