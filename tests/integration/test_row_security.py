"""Row-level security on the real database: a request's transactions see only its tenant's rows,
whatever the query says; analysts' roles (``hearth db role``) read their tenants' rows and nothing
else."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clients import postgres_engine
from shared.db.tenancy import ALL_TENANTS, apply_row_security, tenant_context
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    apply_row_security(db)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def tenants(stack: HearthSettings, engine: AsyncEngine) -> dict[str, str]:
    """Two tenants with a processed document each: tenant -> document id."""
    keys, docs = ApiKeyStore(engine), {}
    for tenant in (f"rls-a-{uuid.uuid4().hex[:6]}", f"rls-b-{uuid.uuid4().hex[:6]}"):
        key = (await keys.create(f"rls-{tenant}", "user", tenant=tenant)).key
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http:
            resp = await http.post("/v1/documents", json={"text": f"Memo of {tenant}", "filename": "memo.txt"})
            assert resp.status_code == 202, resp.text
            doc_id = resp.json()["id"]
            deadline = time.monotonic() + 240
            while (await http.get(f"/v1/documents/{doc_id}")).json()["status"] == "processing":
                assert time.monotonic() < deadline, f"{doc_id} still processing"
                await asyncio.sleep(0.5)
        docs[tenant] = doc_id
    return docs


async def _tenants_seen(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT DISTINCT tenant FROM {table}"))  # noqa: S608 - test's own table names
        return {row.tenant for row in rows}


async def test_a_request_scoped_query_without_a_tenant_filter_sees_only_its_tenant(
    engine: AsyncEngine, tenants: dict[str, str]
) -> None:
    a, b = list(tenants)
    for table in ("raw_docs", "processed_docs", "api_keys"):
        with tenant_context(a):
            assert await _tenants_seen(engine, table) == {a}, table
        with tenant_context(ALL_TENANTS):
            assert {a, b} <= await _tenants_seen(engine, table), table
        assert {a, b} <= await _tenants_seen(engine, table), table  # not a request: every tenant
    with tenant_context(b):
        async with engine.connect() as conn:
            missing = await conn.execute(text("SELECT id FROM raw_docs WHERE id = :id"), {"id": tenants[a]})
            assert missing.first() is None


async def test_a_request_cannot_write_a_row_for_another_tenant(engine: AsyncEngine, tenants: dict[str, str]) -> None:
    a, b = list(tenants)
    with tenant_context(a), pytest.raises(DBAPIError, match="row-level security"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE raw_docs SET tenant = :b WHERE id = :id"), {"b": b, "id": tenants[a]})
    with tenant_context(a):
        async with engine.begin() as conn:
            moved = await conn.execute(
                text("UPDATE raw_docs SET updated_at = now() WHERE id = :id"), {"id": tenants[b]}
            )
            assert moved.rowcount == 0  # invisible, so untouched


async def _analyst(stack: HearthSettings, name: str, password: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=stack.postgres_port, user=name, password=password, database=stack.postgres_db
    )


async def test_an_analyst_role_reads_its_tenants_rows_and_nothing_else(
    stack: HearthSettings, stack_environment: dict[str, str], tenants: dict[str, str]
) -> None:
    a, b = list(tenants)
    name = f"analyst_{uuid.uuid4().hex[:6]}"
    made = json.loads(
        hearth_cli(
            stack_environment, "db", "role", "create", name, "--tenant", a, "--table", "processed_docs",
            "--table", "raw_docs", "--json",
        ).stdout
    )  # fmt: skip
    assert made["tenants"] == [a]
    assert sorted(made["tables"]) == ["processed_docs", "raw_docs"]
    conn = await _analyst(stack, name, made["password"])
    try:
        assert {r["tenant"] for r in await conn.fetch("SELECT tenant FROM processed_docs")} == {a}
        assert {r["id"] for r in await conn.fetch("SELECT id FROM raw_docs")} == {tenants[a]}
        await conn.execute("SET hearth.tenant = '*'")  # the service role's setting means nothing to it
        assert {r["tenant"] for r in await conn.fetch("SELECT tenant FROM raw_docs")} == {a}
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO raw_docs (id, tenant) VALUES ('x', $1)", a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT prefix FROM api_keys")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE raw_docs DISABLE ROW LEVEL SECURITY")
    finally:
        await conn.close()
    listed = json.loads(hearth_cli(stack_environment, "db", "role", "list", "--json").stdout)
    assert {"name": name, "tenants": [a], "tables": ["processed_docs", "raw_docs"]} in listed
    assert b not in json.dumps(listed)
    hearth_cli(stack_environment, "db", "role", "drop", name)
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await _analyst(stack, name, made["password"])


def test_bad_role_requests_are_refused_with_the_reason(stack_environment: dict[str, str]) -> None:
    cases = [
        (["--tenant", "*"], "wildcards"),
        (["--tenant", "acme", "--table", "api_keys"], "choose from"),
        (["--tenant", "acme", "--table", "secrets"], "choose from"),
    ]
    for extra, reason in cases:
        refused = hearth_cli(stack_environment, "db", "role", "create", "analyst_bad", *extra, check=False)
        assert refused.returncode == 1, refused.stdout
        assert reason in " ".join(refused.stderr.split())
    reserved = hearth_cli(stack_environment, "db", "role", "create", "hearth", "--tenant", "acme", check=False)
    assert "reserved" in reserved.stderr
    unknown = hearth_cli(stack_environment, "db", "role", "drop", "postgres", check=False)
    assert unknown.returncode == 1
    assert "no analyst role" in unknown.stderr
