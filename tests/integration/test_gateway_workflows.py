"""The gateway's workflow routes on the real stack: definitions, versions, runs, reviews, tenancy.

Runs of the shipped ``document_review`` are started over REST with keys of the ``user`` role in
tenants of their own, then followed through ``GET /v1/runs/{id}`` until the worker has moved them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.blobstore import BlobRef, BlobStore
from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.natsauth import connect_options
from shared.settings import HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WORKFLOW = "document_review"
FINISHED = ("completed", "failed", "cancelled", "terminated", "timed_out")
PROBLEM = "application/problem+json"

Client = Callable[..., Awaitable[httpx.AsyncClient]]


def document(title: str = "Suply contract", external_id: str | None = None) -> dict[str, Any]:
    """``input.document`` as the shipped definition reads it (its review shows ``metadata``)."""
    return {
        "filename": "contract.pdf",
        "source_system": "crm",
        "external_id": external_id or uuid.uuid4().hex[:12],
        "metadata": {"title": title, "category": "legal"},
    }


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture
async def client(stack: HearthSettings, engine: AsyncEngine) -> AsyncIterator[Client]:
    """``await client(role, tenant)``: an HTTP client holding a fresh key (``admin`` uses the bootstrap key)."""
    keys = ApiKeyStore(engine)
    prefixes: list[str] = []
    clients: list[httpx.AsyncClient] = []

    async def make(role: str = "user", tenant: str | None = None) -> httpx.AsyncClient:
        if role == "admin" and tenant is None:
            key = stack.read_secret("admin-api-key")
        else:
            created = await keys.create(
                f"test-{role}-{uuid.uuid4().hex[:6]}", role, tenant=tenant or f"t-{uuid.uuid4().hex[:8]}"
            )
            prefixes.append(created.prefix)
            key = created.key
        http = httpx.AsyncClient(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()
    for prefix in prefixes:
        await keys.revoke(prefix)


async def start(http: httpx.AsyncClient, body: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    resp = await http.post(f"/v1/workflows/{WORKFLOW}/runs", json=body or {"input": {"document": document()}}, **kwargs)
    assert resp.status_code == 201, resp.text
    started: dict[str, Any] = resp.json()
    return started


async def wait_for(
    http: httpx.AsyncClient, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await http.get(f"/v1/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        detail: dict[str, Any] = resp.json()
        if until(detail):
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {detail['status']} after {timeout}s: {detail}")
        await asyncio.sleep(0.25)


async def waiting(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    return await wait_for(http, run_id, lambda d: d["status"] == "waiting_review" or d["status"] in FINISHED)


async def finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    return await wait_for(http, run_id, lambda d: d["status"] in FINISHED)


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = resp.json()
    assert problem["status"] == status
    if code is not None:
        assert problem["type"].endswith(f"/{code}"), problem
    return problem


async def record(engine: AsyncEngine, collection: str, run_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT data FROM workflow_records WHERE collection = :c AND workflow_id = :w"),
                {"c": collection, "w": run_id},
            )
        ).one()
    data: dict[str, Any] = row.data
    return data


async def test_definitions_are_listed_with_versions_triggers_and_steps(client: Client) -> None:
    http = await client()
    resp = await http.get("/v1/workflows")
    assert resp.status_code == 200, resp.text
    catalog = resp.json()
    by_name = {w["name"]: w for w in catalog["workflows"]}
    review = by_name[WORKFLOW]
    assert review["active_version"] >= 1
    assert len(review["hash"]) == 64
    assert review["file"] == "workflows/document_review.yaml"
    assert [t["subject"] for t in review["triggers"]] == ["hearth.ingest.document.v1"]
    assert [(s["id"], s["type"]) for s in review["steps"]] == [
        ("intake", "store"),
        ("review", "human_review"),
        ("decision", "store"),
    ]
    assert all(r["file"] != review["file"] for r in catalog["refused"])

    one = (await http.get(f"/v1/workflows/{WORKFLOW}")).json()
    assert (one["version"], one["active_version"], one["hash"]) == (
        review["active_version"],
        review["active_version"],
        review["hash"],
    )
    assert one["snapshot"]["name"] == WORKFLOW
    assert [s["id"] for s in one["snapshot"]["steps"]] == ["intake", "review", "decision"]

    versions = (await http.get(f"/v1/workflows/{WORKFLOW}/versions")).json()
    assert len(versions) >= 1
    assert [v["version"] for v in versions] == sorted((v["version"] for v in versions), reverse=True)
    assert [v["version"] for v in versions if v["active"]] == [review["active_version"]]
    first = versions[-1]
    assert first["version"] == 1
    assert "+++ v1" in first["diff"]
    assert "+name: document_review" in first["diff"]


async def test_unknown_names_and_bad_filters_are_problems(client: Client) -> None:
    http = await client()
    assert_problem(await http.get("/v1/workflows/no_such_workflow"), 404, "unknown-workflow")
    assert_problem(await http.get("/v1/workflows/no_such_workflow/versions"), 404, "unknown-workflow")
    assert_problem(await http.post("/v1/workflows/no_such_workflow/runs", json={"input": {}}), 404, "unknown-workflow")
    assert_problem(
        await http.post(f"/v1/workflows/{WORKFLOW}/runs", json={"input": {}, "version": 9999}),
        404,
        "unknown-workflow-version",
    )
    assert_problem(await http.get(f"/v1/runs/{WORKFLOW}-{uuid.uuid4()}"), 404, "unknown-run")
    problem = assert_problem(await http.get("/v1/runs", params={"status": "sleeping"}), 422)
    assert "sleeping" in problem["detail"]
    assert_problem(await http.get("/v1/runs", params={"limit": 0}), 400)
    assert_problem(await http.get("/v1/runs", params={"limit": 501}), 400)
    assert_problem(await http.get("/v1/runs", params={"since": "last tuesday"}), 400)
    bad_body = assert_problem(await http.post(f"/v1/workflows/{WORKFLOW}/runs", json={"input": [1]}), 400)
    assert bad_body["errors"][0]["key"] == "input"
    assert_problem(await http.post(f"/v1/workflows/{WORKFLOW}/runs", json={"inputs": {}}), 400)


async def test_a_run_waits_for_review_then_completes_with_the_corrected_values(
    client: Client, engine: AsyncEngine
) -> None:
    http = await client()
    started = await start(http, {"input": {"document": document("Suply contract")}})
    assert started["workflow"] == WORKFLOW
    assert started["duplicate"] is False
    run_id = started["id"]

    detail = await waiting(http, run_id)
    assert detail["status"] == "waiting_review", detail
    review = detail["progress"]["review"]
    assert review["step_id"] == "review"
    assert review["values"] == {"title": "Suply contract", "category": "legal"}
    assert review["fields"] == ["title", "category"]

    not_correctable = await http.post(
        f"/v1/runs/{run_id}/review", json={"decision": "approve", "values": {"amount": 3}}
    )
    assert_problem(not_correctable, 422, "unknown-review-field")
    resp = await http.post(
        f"/v1/runs/{run_id}/review", json={"decision": "approve", "values": {"title": "Supply contract"}}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["id"] == run_id

    done = await finished(http, run_id)
    assert done["status"] == "completed", done
    outcome = done["outputs"]["review"]
    assert outcome["decision"] == "approve"
    assert outcome["values"] == {"title": "Supply contract", "category": "legal"}
    assert outcome["corrected"] == ["title"]
    assert outcome["reviewer"].startswith("test-user-")  # the key's name when the body names no reviewer
    assert done["outputs"]["decision"]["collection"] == "review_decisions"
    stored = await record(engine, "review_decisions", run_id)
    assert stored["decision"] == "approve"
    assert stored["values"]["title"] == "Supply contract"

    late = await http.post(f"/v1/runs/{run_id}/review", json={"decision": "reject"})
    assert_problem(late, 409, "no-review-pending")


async def test_an_idempotency_key_makes_a_repeat_return_the_first_run(client: Client) -> None:
    http = await client()
    key = f"order-{uuid.uuid4().hex[:8]}.v1_a"
    body = {"input": {"document": document()}}
    first = await http.post(f"/v1/workflows/{WORKFLOW}/runs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert first.json()["id"] == f"{WORKFLOW}-{key}"
    assert first.headers["location"] == f"/v1/runs/{WORKFLOW}-{key}"
    again = await http.post(f"/v1/workflows/{WORKFLOW}/runs", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["duplicate"] is True
    # Another tenant's key of the same name is refused without saying whose run holds it.
    other = await client()
    taken = await other.post(f"/v1/workflows/{WORKFLOW}/runs", json=body, headers={"Idempotency-Key": key})
    assert_problem(taken, 409, "idempotency-key-taken")
    for bad in ("has space", "x" * 201, "slash/es"):
        resp = await http.post(f"/v1/workflows/{WORKFLOW}/runs", json=body, headers={"Idempotency-Key": bad})
        assert_problem(resp, 400)
    await http.post(f"/v1/runs/{first.json()['id']}/cancel")


async def test_an_uploaded_file_goes_to_the_blob_store_and_its_ref_into_the_input(
    stack: HearthSettings, client: Client, engine: AsyncEngine
) -> None:
    http = await client()
    content = b"%PDF-1.4 a contract " + uuid.uuid4().bytes
    described = document("Lease")
    del described["filename"]
    resp = await http.post(
        f"/v1/workflows/{WORKFLOW}/runs",
        files={"file": ("lease.pdf", content, "application/pdf")},
        data={"input": json.dumps({"document": described, "note": "upload"}), "document_id": "lease-7"},
    )
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    detail = await waiting(http, run_id)
    assert detail["status"] == "waiting_review", detail
    assert detail["document_id"] == "lease-7"
    assert detail["progress"]["review"]["title"] == "Review lease.pdf from crm"

    intake = await record(engine, "review_intake", run_id)  # the first step stores the run's input
    assert intake["note"] == "upload"
    doc = intake["document"]
    assert (doc["filename"], doc["content_type"], doc["metadata"]) == (
        "lease.pdf",
        "application/pdf",
        described["metadata"],
    )
    ref = BlobRef.model_validate(doc["blob"])
    assert ref.size == len(content)
    assert ref.sha256 == hashlib.sha256(content).hexdigest()
    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    try:
        blobs = await BlobStore.create(nc.jetstream(), stack, bucket=ref.bucket)
        assert await blobs.get(ref) == content
    finally:
        await nc.close()

    assert_problem(
        await http.post(f"/v1/workflows/{WORKFLOW}/runs", files={"file": ("empty.pdf", b"", "application/pdf")}), 400
    )
    assert_problem(
        await http.post(
            f"/v1/workflows/{WORKFLOW}/runs",
            files={"file": ("x.pdf", content, "application/pdf")},
            data={"input": '{"document": {"blob": "mine"}}'},
        ),
        400,
    )
    assert_problem(
        await http.post(
            f"/v1/workflows/{WORKFLOW}/runs", files={"file": ("x.pdf", content)}, data={"input": "not json"}
        ),
        400,
    )
    await http.post(f"/v1/runs/{run_id}/cancel")


async def test_an_upload_over_the_limit_is_413(client: Client) -> None:
    http = await client()
    too_big = b"\0" * (34 * 1024 * 1024)
    resp = await http.post(
        f"/v1/workflows/{WORKFLOW}/runs", files={"file": ("big.pdf", too_big, "application/pdf")}, timeout=120
    )
    assert_problem(resp, 413)


async def test_a_cancelled_run_ends_cancelled_and_can_no_longer_be_reviewed(client: Client) -> None:
    http = await client()
    run_id = (await start(http))["id"]
    assert (await waiting(http, run_id))["status"] == "waiting_review"
    resp = await http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "sent by mistake"})
    assert resp.status_code == 202, resp.text
    done = await finished(http, run_id)
    assert done["status"] == "cancelled", done
    assert done["error"]["detail"] == "sent by mistake"
    assert done["error"]["extra"]["by"].startswith("test-user-")  # the key's name, not the body's
    assert_problem(await http.post(f"/v1/runs/{run_id}/review", json={"decision": "approve"}), 409)
    assert_problem(await http.post(f"/v1/runs/{run_id}/cancel"), 409, "run-finished")


async def test_a_tenant_never_sees_another_tenants_runs(client: Client) -> None:
    tenant_a, tenant_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    alice, bob = await client(tenant=tenant_a), await client(tenant=tenant_b)
    admin = await client("admin")
    mine = (await start(alice))["id"]
    theirs = (await start(bob))["id"]
    assert (await waiting(bob, theirs))["tenant"] == tenant_b

    for resp in (
        await alice.get(f"/v1/runs/{theirs}"),
        await alice.post(f"/v1/runs/{theirs}/review", json={"decision": "approve"}),
        await alice.post(f"/v1/runs/{theirs}/cancel"),
    ):
        assert_problem(resp, 404, "unknown-run")
    assert (await bob.get(f"/v1/runs/{theirs}")).json()["status"] == "waiting_review"  # untouched

    async def listed(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 30
        while True:  # the visibility store catches up with a new run within moments
            resp = await http.get("/v1/runs", params={"workflow": WORKFLOW, **params})
            assert resp.status_code == 200, resp.text
            runs: list[dict[str, Any]] = resp.json()
            if runs or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(0.5)

    for params in ({}, {"tenant": tenant_b}):  # a non-admin's `tenant` is ignored
        seen = await listed(alice, **params)
        assert [r["id"] for r in seen] == [mine]
        assert {r["tenant"] for r in seen} == {tenant_a}
    assert [r["id"] for r in await listed(admin, tenant=tenant_b)] == [theirs]
    assert (await admin.get(f"/v1/runs/{theirs}")).status_code == 200
    assert [r["id"] for r in await listed(bob, status="waiting_review")] == [theirs]
    for params in ({"status": "completed"}, {"since": "2100-01-01T00:00:00Z"}, {"until": "2000-01-01T00:00:00"}):
        resp = await bob.get("/v1/runs", params={"workflow": WORKFLOW, **params})
        assert resp.status_code == 200, resp.text
        assert resp.json() == [], params

    for http, run_id in ((alice, mine), (bob, theirs)):
        assert (await http.post(f"/v1/runs/{run_id}/cancel")).status_code == 202


async def test_only_admins_roll_back_and_only_to_versions_that_exist(client: Client) -> None:
    user, admin = await client(), await client("admin")
    assert_problem(await user.post(f"/v1/workflows/{WORKFLOW}/rollback", json={"version": 1}), 403)
    assert_problem(await admin.post(f"/v1/workflows/{WORKFLOW}/rollback", json={"version": 9999}), 404)
    assert_problem(await admin.post("/v1/workflows/no_such_workflow/rollback", json={"version": 1}), 404)
    assert_problem(await admin.post(f"/v1/workflows/{WORKFLOW}/rollback", json={"version": 0}), 400)
    active = (await admin.get(f"/v1/workflows/{WORKFLOW}")).json()["active_version"]
    same = await admin.post(f"/v1/workflows/{WORKFLOW}/rollback", json={"version": active})
    assert same.status_code == 200, same.text
    assert (same.json()["version"], same.json()["active_version"]) == (active, active)
