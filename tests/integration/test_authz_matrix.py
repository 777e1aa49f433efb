"""The authorisation matrix (``tests/authz_matrix.py``) on the real stack, route by route and tenant by tenant.

Every entry is called as every kind of principal: no key, a malformed key, a well-formed unknown
key, a user and a tenant admin of tenant A, the platform admin, and a user and a tenant admin of
tenant B; each must get what the entry says (401, the guard's 403, another tenant's 404, or the
entry's answers). Tenant A holds one document at each sensitivity, read by a key of each
clearance; tenant B's key (cleared for secret) must find nothing of tenant A's through the
document routes, lists, search, Q&A and runs.
One set of keys and documents for the module; calls run concurrently, and none changes what
another sees (see the matrix's choice of requests).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.identity.authz import LEVELS, clears
from shared.settings import HearthSettings
from tests.authz_matrix import DOCUMENT, MARKER, MATRIX, MISSING, RUN, TENANT_B, Call, Route, coverage, resolve, url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONCURRENCY = 8
PROPAGATION_S = 5.0


@dataclass
class Caller:
    name: str
    http: httpx.AsyncClient
    role: str | None
    """Its role in the matrix (``tenant_admin`` for a user key given that role); None: no valid key."""
    key_role: str | None = None
    """The role on the key itself, as the guard's refusal names it."""
    tenant: str | None = None


@dataclass
class World:
    a: str
    b: str
    marker_a: str
    marker_b: str
    vault_code: str
    """A word only tenant A's documents hold."""
    docs: dict[str, str]
    """Tenant A's documents by sensitivity."""
    doc_b: str
    runs: dict[str, str]
    """Tenant A's document runs, by document id."""
    callers: dict[str, Caller]
    readers: dict[str, Caller]
    """Keys of tenant A by clearance."""

    @property
    def values(self) -> dict[str, str]:
        internal = self.docs["internal"]
        return {DOCUMENT: internal, RUN: self.runs[internal], MARKER: self.marker_a, TENANT_B: self.b}


def _word() -> str:
    """A fresh lowercase word (letters only: one token for the full-text index)."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s"
        await asyncio.sleep(0.1)


async def _submit(http: httpx.AsyncClient, text: str, sensitivity: str) -> tuple[str, str]:
    resp = await http.post(
        "/v1/documents", json={"text": text, "filename": f"{sensitivity}.txt", "sensitivity": sensitivity}
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"]), str(resp.json()["run_id"])


async def _processed(http: httpx.AsyncClient, doc_id: str) -> None:
    deadline = time.monotonic() + 240
    while (doc := (await http.get(f"/v1/documents/{doc_id}")).json())["status"] == "processing":
        assert time.monotonic() < deadline, doc
        await asyncio.sleep(0.5)
    assert doc["status"] == "processed", doc


@pytest.fixture(scope="module")
async def world(stack: HearthSettings) -> AsyncIterator[World]:
    engine = postgres_engine(stack, pool_size=2)
    keys = ApiKeyStore(engine)
    a, b = f"matrix-a-{uuid.uuid4().hex[:8]}", f"matrix-b-{uuid.uuid4().hex[:8]}"
    clients: list[httpx.AsyncClient] = []

    def client(key: str | None) -> httpx.AsyncClient:
        # One client per principal: a cookie one of them is given (the codec session) stays its own.
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        http = httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60)
        clients.append(http)
        return http

    async def key(tenant: str, clearance: str, name: str) -> tuple[str, str]:
        created = await keys.create(f"test-matrix-{name}", "user", tenant=tenant, clearance=clearance)
        return created.key, created.prefix

    admin = Caller("admin", client(stack.read_secret("admin-api-key")), "admin", "admin", "default")
    readers = {c: Caller(f"a-{c}", client((await key(a, c, c))[0]), "user", "user", a) for c in LEVELS}
    ta_key, ta_prefix = await key(a, "internal", "tenant-admin")
    tb_key, tb_prefix = await key(b, "secret", "tenant-admin-b")
    b_key, _ = await key(b, "secret", "b")
    callers = {
        "anonymous": Caller("anonymous", client(None), None),
        "malformed": Caller("malformed", client("not-a-key"), None),
        "unknown": Caller("unknown", client("hearth_MatrixNoKey1_" + "x" * 40), None),
        "user_a": readers["internal"],
        "tenant_admin_a": Caller("tenant_admin_a", client(ta_key), "tenant_admin", "user", a),
        "admin": admin,
        "user_b": Caller("user_b", client(b_key), "user", "user", b),
        "tenant_admin_b": Caller("tenant_admin_b", client(tb_key), "tenant_admin", "user", b),
    }
    assignments = [
        {"member": f"key:{prefix}", "role": "tenant_admin", "domain": tenant}
        for prefix, tenant in ((ta_prefix, a), (tb_prefix, b))
    ]
    # Something in tenant B's domain for a tenant admin of A not to see: a policy and an assignment.
    b_policy = {"role": "matrix_reader", "domain": b, "resource": "/v1/documents", "methods": "GET"}
    b_assignment = {"member": "matrix_reader", "role": "user", "domain": b}
    try:
        for path, body in [
            *[("/v1/authz/assignments", assignment) for assignment in assignments],
            ("/v1/authz/policies", b_policy),
            ("/v1/authz/assignments", b_assignment),
        ]:
            resp = await admin.http.post(path, json=body)
            assert resp.status_code == 201, resp.text

        async def tenant_admins_ready() -> bool:
            answers = [await callers[n].http.get("/v1/authz/roles") for n in ("tenant_admin_a", "tenant_admin_b")]
            return all(r.status_code == 200 for r in answers)

        await _until(tenant_admins_ready, PROPAGATION_S)

        marker_a, marker_b, vault_code = _word(), _word(), _word()
        writer, user_b = readers["secret"].http, callers["user_b"].http
        submitted = await asyncio.gather(
            *[
                _submit(writer, f"The {marker_a} vault code is {vault_code}. This note is {level}.", level)
                for level in LEVELS
            ],
            _submit(user_b, f"The {marker_b} warehouse opens at nine in the morning.", "internal"),
        )
        *ours, (doc_b, _) = submitted
        await asyncio.gather(*[_processed(writer, d) for d, _ in ours], _processed(user_b, doc_b))
        yield World(
            a=a,
            b=b,
            marker_a=marker_a,
            marker_b=marker_b,
            vault_code=vault_code,
            docs={level: d for level, (d, _) in zip(LEVELS, ours, strict=True)},
            doc_b=doc_b,
            runs=dict(ours),
            callers=callers,
            readers=readers,
        )
    finally:
        for path, params in [
            ("/v1/authz/assignments", b_assignment),
            ("/v1/authz/policies", b_policy),
            *[("/v1/authz/assignments", assignment) for assignment in assignments],
        ]:
            await admin.http.delete(path, params=params)
        for http in clients:
            await http.aclose()
        await engine.dispose()


# ---- the matrix -------------------------------------------------------------------------------


def _problem(resp: httpx.Response) -> dict[str, Any]:
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return {}
    body: dict[str, Any] = resp.json()
    return body


def _expected(route: Route, caller: Caller, world: World) -> tuple[frozenset[int], str | None]:
    """The statuses ``caller`` must get on ``route``, and the problem code that answer must have (if any)."""
    if route.least == "open":
        return route.answers, None
    if caller.role is None:
        return frozenset({401}), "unauthorized"
    if not route.allows(caller.role):
        return frozenset({403}), "forbidden"
    if route.tenancy == "own" and caller.tenant != world.a and caller.role != "admin":
        return frozenset({404}), route.hidden
    return route.answers, route.code


async def _send(caller: Caller, route: Route, call: Call, values: Mapping[str, str]) -> httpx.Response:
    return await caller.http.request(
        route.method,
        url(route, call, values),
        params=resolve(dict(call.query), values),
        json=resolve(call.json, values),
    )


async def _check(route: Route, caller: Caller, world: World, gate: asyncio.Semaphore) -> str | None:
    statuses, code = _expected(route, caller, world)
    async with gate:
        resp = await _send(caller, route, route.call, world.values)
    problem = _problem(resp)
    wrong = resp.status_code not in statuses
    if code is not None and not wrong:
        wrong = not str(problem.get("type", "")).endswith(f"/{code}")
        if code == "forbidden":  # the guard's refusal, not a refusal the route made itself
            wrong = wrong or not str(problem.get("detail", "")).startswith(f"role {caller.key_role!r} may not")
    if not wrong:
        return None
    return (
        f"{caller.name:>15} {route.method} {route.template}: expected {sorted(statuses)} {code or ''}, "
        f"got {resp.status_code} {resp.text[:160]}"
    )


async def test_the_matrix_has_an_entry_for_every_route_of_the_live_api(stack: HearthSettings) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        resp = await http.get("/schema/openapi.json")
    assert resp.status_code == 200
    missing, stale = coverage(resp.json())
    assert missing == [], f"routes without an entry in tests/authz_matrix.py (decide who may call them): {missing}"
    assert stale == [], f"entries in tests/authz_matrix.py whose route is not served: {stale}"


async def test_every_route_answers_every_principal_as_the_matrix_says(world: World) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    results = await asyncio.gather(
        *[_check(route, caller, world, gate) for route in MATRIX for caller in world.callers.values()]
    )
    wrong = [r for r in results if r is not None]
    assert wrong == [], "\n" + "\n".join(wrong)


async def test_a_tenant_admin_reads_and_changes_no_other_tenants_domain(world: World) -> None:
    tenant_admin, admin = world.callers["tenant_admin_a"], world.callers["admin"]
    for route in [r for r in MATRIX if r.tenancy == "domain"]:
        assert route.foreign is not None
        resp = await _send(tenant_admin, route, route.foreign, world.values)
        if route.method == "GET":
            assert resp.status_code == 200, (route.template, resp.text)
            assert world.b not in resp.text, (route.template, resp.text)
            # The same read by the platform admin shows tenant B's rules: the probe can see them.
            assert world.b in (await _send(admin, route, route.foreign, world.values)).text, route.template
        else:
            assert resp.status_code == 403, (route.method, route.template, resp.text)
            assert "own tenant's domain" in _problem(resp)["detail"], resp.text


# ---- clearance and sensitivity ----------------------------------------------------------------


async def _reads(reader: Caller, world: World) -> list[str]:
    """What ``reader`` (a key of tenant A) gets wrong of tenant A's documents at each sensitivity."""
    http, clearance, wrong = reader.http, reader.name.removeprefix("a-"), []
    allowed = {world.docs[s] for s in LEVELS if clears(clearance, s)}
    for sensitivity, doc_id in world.docs.items():
        readable = clears(clearance, sensitivity)
        got, patched, submitted = await asyncio.gather(
            http.get(f"/v1/documents/{doc_id}"),
            http.patch(f"/v1/documents/{doc_id}", json={"sensitivity": sensitivity}),
            http.post("/v1/documents", json={"text": "matrix", "workflow": MISSING, "sensitivity": sensitivity}),
        )
        outcome = (
            got.status_code,
            got.json().get("sensitivity") if readable else _problem(got).get("type", "").rsplit("/", 1)[-1],
            patched.status_code,
            submitted.status_code,
            _problem(submitted).get("type", "").rsplit("/", 1)[-1],
        )
        want = (
            (200, sensitivity, 200, 404, "unknown-workflow")
            if readable
            else (404, "unknown-document", 404, 403, "insufficient-clearance")
        )
        if outcome != want:
            wrong.append(f"{clearance} on {sensitivity}: {outcome} != {want}")
    listed = {d["id"] for d in (await http.get("/v1/documents", params={"limit": 200})).json()}
    hits = {h["document_id"] for h in (await http.get("/v1/search", params={"q": world.marker_a})).json()["hits"]}
    # Asking for a level does not widen what is searched: the secret one, and only with the clearance for it.
    wanted = await http.get("/v1/search", params={"q": world.marker_a, "sensitivity": "secret"})
    beyond = {h["document_id"] for h in wanted.json()["hits"]}
    question = {"question": f"What is the {world.marker_a} vault code?", "mode": "extractive"}
    cited = {c["document_id"] for c in (await http.post("/v1/ask", json=question)).json()["citations"]}
    for what, found, ok in [
        ("listed", listed, listed == allowed),
        ("found", hits, hits == allowed),
        ("found asking for secret", beyond, beyond == allowed & {world.docs["secret"]}),
        ("cited", cited, cited <= allowed),
    ]:
        if not ok:
            wrong.append(f"{clearance} {what} {sorted(found)}, allowed {sorted(allowed)}")
    return wrong


async def test_a_key_reads_changes_submits_and_finds_exactly_what_its_clearance_allows(world: World) -> None:
    results = await asyncio.gather(*[_reads(reader, world) for reader in world.readers.values()])
    wrong = [line for lines in results for line in lines]
    assert wrong == [], "\n" + "\n".join(wrong)
    # A tenant admin (cleared for internal) holds or releases only what it may read: above that, as if missing.
    tenant_admin = world.callers["tenant_admin_a"].http
    for sensitivity, doc_id in world.docs.items():
        released = await tenant_admin.put(f"/v1/documents/{doc_id}/legal-hold", json={"hold": False})
        want = (200, None) if clears("internal", sensitivity) else (404, "unknown-document")
        got = (released.status_code, _problem(released).get("type", "/").rsplit("/", 1)[-1] or None)
        assert got == want, (sensitivity, released.text)
    # The platform admin (cleared for secret) reads every tenant's documents at every level.
    admin = world.callers["admin"].http
    for doc_id in world.docs.values():
        assert (await admin.get(f"/v1/documents/{doc_id}")).status_code == 200
    found = (await admin.get("/v1/search", params={"q": world.marker_a, "limit": 50})).json()["hits"]
    assert set(world.docs.values()) <= {h["document_id"] for h in found}


# ---- tenants ----------------------------------------------------------------------------------


def _content(body: dict[str, Any]) -> str:
    """What a search or an answer found, without the query it echoes."""
    return json.dumps({k: v for k, v in body.items() if k not in ("query", "question")}, ensure_ascii=False)


async def test_another_tenant_finds_nothing_of_tenant_a_through_documents_search_answers_or_runs(
    world: World,
) -> None:
    stranger = world.callers["user_b"].http  # cleared for secret: only the tenant keeps it out
    ours = set(world.docs.values())
    unknown = await stranger.get(f"/v1/documents/{uuid.uuid4()}")
    for doc_id in ours:
        for resp in (
            await stranger.get(f"/v1/documents/{doc_id}"),
            await stranger.patch(f"/v1/documents/{doc_id}", json={"sensitivity": "secret"}),
        ):
            assert resp.status_code == 404, resp.text
            assert _problem(resp)["type"] == _problem(unknown)["type"]  # as if it did not exist
            assert world.vault_code not in resp.text

    listed = await stranger.get("/v1/documents", params={"limit": 200})
    assert [d["id"] for d in listed.json()] == [world.doc_b]
    assert world.marker_a not in listed.text

    own = (await stranger.get("/v1/search", params={"q": world.marker_b})).json()
    assert [h["document_id"] for h in own["hits"]] == [world.doc_b]  # search works for it
    theirs = (await stranger.get("/v1/search", params={"q": f"{world.marker_a} vault code"})).json()
    assert not ours & {h["document_id"] for h in theirs["hits"]}
    assert world.marker_a not in _content(theirs)
    assert world.vault_code not in _content(theirs)
    for mode in ("extractive", "auto"):
        question = {"question": f"What is the {world.marker_a} vault code?", "mode": mode}
        answer = await stranger.post("/v1/ask", json=question)
        assert answer.status_code == 200, answer.text
        assert not ours & {c["document_id"] for c in answer.json()["citations"]}
        assert world.vault_code not in answer.text
        if answer.json()["mode"] == "extractive":  # a generated answer may repeat the question's words
            assert world.marker_a not in _content(answer.json())

    run_ids = set(world.runs.values())
    for params in ({"tenant": world.a}, {"document_id": world.docs["secret"]}, {"workflow": "document_processing"}):
        runs = await stranger.get("/v1/runs", params=params)
        assert runs.status_code == 200, runs.text
        assert not run_ids & {r["id"] for r in runs.json()}, params
    for run_id in run_ids:
        resp = await stranger.get(f"/v1/runs/{run_id}")
        assert (resp.status_code, _problem(resp)["type"].rsplit("/", 1)[-1]) == (404, "unknown-run")
    # The tenant's own key does see them: the probes above could have found something.
    owner = world.readers["secret"].http
    assert run_ids <= {r["id"] for r in (await owner.get("/v1/runs", params={"limit": 500})).json()}

    # And the other way round.
    reader = world.readers["secret"].http
    assert (await reader.get(f"/v1/documents/{world.doc_b}")).status_code == 404
    # (the semantic half ranks its own tenant's documents for any query: none may be tenant B's)
    found = (await reader.get("/v1/search", params={"q": world.marker_b})).json()
    assert world.doc_b not in {h["document_id"] for h in found["hits"]}
    assert world.marker_b not in _content(found)
