"""The data lifecycle on the real stack: tiering, transparent restore, key rotation, retention, legal hold.

The test stack gives tenants named ``lifecycle-*`` a policy with everything due at once
(``tests/data/governance/retention.yaml``: idle 0 s, retention 0 s, key age 0 s); this module
uses one such tenant, triggers the governance service's real Temporal schedules
(``handle.trigger()``) and waits for the runs they start. The tests run in order, each on what
the one before left.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fpdf import FPDF
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError
from temporalio.worker import Replayer

from services.governance.keys import TenantKeys
from services.governance.workflows import WORKFLOWS
from shared.blobstore import BlobRef, BlobStore
from shared.bus import Bus
from shared.clients import postgres_engine, temporal_client
from shared.coldstore import ColdStore
from shared.crypto import KeyAdmin, TransitKeyring
from shared.crypto.columns import KeyHeader
from shared.errors import NotFound, PermanentFailure
from shared.identity.apikeys import ApiKeyStore
from shared.lifecycle import SCHEDULES
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli
from tests.integration.documents import processed

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

TENANT = f"lifecycle-{uuid.uuid4().hex[:8]}"
State = dict[str, Any]


def _pdf(marker: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    for line in (f"Service agreement {marker}", "The supplier maintains the machines.", f"Reference {marker}."):
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    async with await Bus.connect(stack, name="test-lifecycle") as connected:
        yield connected


@pytest.fixture(scope="module")
async def temporal(stack: HearthSettings) -> Client:
    return await temporal_client(stack)


@pytest.fixture(scope="module")
def hot(stack: HearthSettings, bus: Bus) -> BlobStore:
    """The bucket without a cold tier: looking at it never restores anything."""
    return BlobStore(bus.js, max_bytes=stack.blob_max_bytes, keyring=TransitKeyring.from_settings(stack, "gateway"))


@pytest.fixture(scope="module")
def cold(stack: HearthSettings) -> ColdStore:
    return ColdStore(stack.data_dir("cold"), TransitKeyring.from_settings(stack, "gateway"))


@pytest.fixture(scope="module")
async def http(stack: HearthSettings, engine: AsyncEngine) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A user key, a tenant admin key and a public-clearance key of the tenant, and the platform admin."""
    keys = ApiKeyStore(engine)
    user = await keys.create("lifecycle-user", "user", tenant=TENANT)
    lead = await keys.create("lifecycle-lead", "user", tenant=TENANT)
    guest = await keys.create("lifecycle-guest", "user", tenant=TENANT, clearance="public")
    admin_key = stack.read_secret("admin-api-key")
    clients = {
        name: httpx.AsyncClient(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        for name, key in (("user", user.key), ("lead", lead.key), ("guest", guest.key), ("admin", admin_key))
    }
    assigned = await clients["admin"].post(
        "/v1/authz/assignments", json={"member": f"key:{lead.prefix}", "role": "tenant_admin", "domain": TENANT}
    )
    assert assigned.status_code == 201, assigned.text
    yield clients
    for client in clients.values():
        await client.aclose()


@pytest.fixture(scope="module")
async def docs(http: dict[str, httpx.AsyncClient], engine: AsyncEngine) -> State:
    """Three processed PDFs of the tenant: ``expired``, ``held`` and ``other``, with their files' refs."""
    state: State = {}
    for name in ("expired", "held", "other"):
        marker = f"zq{uuid.uuid4().hex[:10]}"
        data = _pdf(marker)
        resp = await http["user"].post("/v1/documents", files={"file": (f"{name}.pdf", data, "application/pdf")})
        assert resp.status_code == 202, resp.text
        state[name] = {"id": resp.json()["id"], "data": data, "marker": marker}
    for entry in state.values():
        doc = await processed(http["user"], entry["id"], 600)
        assert doc["status"] == "processed", doc
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT r.blob, p.ocr_result FROM raw_docs r JOIN processed_docs p ON p.doc_id = r.id "
                        "WHERE r.id = :id"
                    ),
                    {"id": entry["id"]},
                )
            ).one()
        entry["refs"] = [BlobRef.model_validate(v) for v in row if v is not None]
        assert len(entry["refs"]) == 2  # the original and the OCR result
    return state


async def _run_schedule(temporal: Client, schedule_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Trigger a schedule now and wait for the run it starts; that run's result."""
    handle = temporal.get_schedule_handle(schedule_id)
    deadline = time.monotonic() + timeout
    while True:  # the governance service makes its schedules at start
        try:
            described = await handle.describe()
            break
        except RPCError:
            assert time.monotonic() < deadline, f"schedule {schedule_id} was never created"
            await asyncio.sleep(1)

    def runs(d: Any) -> set[str]:
        recent = {getattr(a.action, "workflow_id", "") for a in d.info.recent_actions}
        return recent | {r.workflow_id for r in d.info.running_actions}

    seen = runs(described)
    await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    while True:
        started = runs(await handle.describe()) - seen
        if started:
            break
        assert time.monotonic() < deadline, f"schedule {schedule_id} started no run"
        await asyncio.sleep(0.5)
    run = temporal.get_workflow_handle(started.pop())
    result: dict[str, Any] = await run.result()
    assert result["workflow"] == SCHEDULES[schedule_id]
    # The run's history replays on the current workflow code (determinism, sandbox included).
    replayer = Replayer(workflows=WORKFLOWS, data_converter=temporal.data_converter)
    await replayer.replay_workflow(await run.fetch_history())
    return result


async def _tier(engine: AsyncEngine, doc_id: str) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT tier FROM raw_docs WHERE id = :id"), {"id": doc_id})).scalar_one())


async def _audit(engine: AsyncEngine, event: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT subject, reason, principal FROM audit_log WHERE tenant = :t AND event = :e ORDER BY id"),
            {"t": TENANT, "e": event},
        )
        return [dict(r._mapping) for r in rows]


async def _absent(store: BlobStore, key: str) -> bool:
    try:
        await store.stat(key)
    except NotFound:
        return True
    return False


async def test_a_legal_hold_is_for_tenant_admins_and_needs_a_reason(
    http: dict[str, httpx.AsyncClient], docs: State, engine: AsyncEngine
) -> None:
    held = docs["held"]["id"]
    refused = await http["user"].put(f"/v1/documents/{held}/legal-hold", json={"hold": True, "reason": "case 17"})
    assert refused.status_code == 403, refused.text
    no_reason = await http["lead"].put(f"/v1/documents/{held}/legal-hold", json={"hold": True})
    assert no_reason.status_code in (400, 422), no_reason.text
    resp = await http["lead"].put(f"/v1/documents/{held}/legal-hold", json={"hold": True, "reason": "case 17"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["legal_hold"] is True
    assert resp.json()["reason"] == "case 17"
    assert (
        await http["admin"].put(f"/v1/documents/{uuid.uuid4()}/legal-hold", json={"reason": "x"})
    ).status_code == 404
    entries = await _audit(engine, "lifecycle.legal_hold")
    assert [e["subject"] for e in entries] == [f"document:{held}"]
    assert "case 17" in entries[0]["reason"]


async def test_tiering_moves_idle_files_to_the_cold_tier_sealed(
    temporal: Client, docs: State, hot: BlobStore, cold: ColdStore, engine: AsyncEngine
) -> None:
    result = await _run_schedule(temporal, "hearth-lifecycle-tiering")
    assert result["failed"] == [], result
    assert result["archived"] >= 3
    for entry in docs.values():
        assert await _tier(engine, entry["id"]) == "cold"
        for ref in entry["refs"]:
            assert await _absent(hot, ref.key), f"hot copy of {ref.key} still there"
            stored = cold.data_path(ref.bucket, ref.key).read_bytes()
            assert stored
            assert b"%PDF" not in stored
            assert entry["marker"].encode() not in stored
            manifest = await cold.manifest(ref.bucket, ref.key)
            assert manifest is not None
            assert manifest.tenant == TENANT
            assert manifest.encryption
    archived = {e["subject"] for e in await _audit(engine, "lifecycle.archived")}
    assert archived >= {f"document:{e['id']}" for e in docs.values()}


async def test_reading_a_cold_document_restores_it_transparently(
    http: dict[str, httpx.AsyncClient], docs: State, hot: BlobStore, cold: ColdStore, engine: AsyncEngine
) -> None:
    entry = docs["expired"]
    original = entry["refs"][0]
    resp = await http["user"].get(f"/v1/documents/{entry['id']}/file")
    assert resp.status_code == 200, resp.text
    assert resp.content == entry["data"]
    assert resp.headers["x-content-sha256"] == hashlib.sha256(entry["data"]).hexdigest()
    assert await hot.stat(original.key) == original  # back in the bucket, same reference
    assert await cold.manifest(original.bucket, original.key) is None
    assert await _tier(engine, entry["id"]) == "hot"
    assert f"document:{entry['id']}" in {e["subject"] for e in await _audit(engine, "lifecycle.restored")}


async def test_the_lifecycle_report_counts_tiers_holds_and_schedules(
    stack_environment: dict[str, str], http: dict[str, httpx.AsyncClient], docs: State
) -> None:
    resp = await http["lead"].get("/v1/governance/lifecycle")
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert [t["tenant"] for t in report["tenants"]] == [TENANT]  # a tenant admin sees its own tenant only
    mine = report["tenants"][0]
    assert (mine["hot"]["documents"], mine["cold"]["documents"], mine["legal_hold"]) == (1, 2, 1)
    assert mine["cold"]["stored_bytes"] > 0
    assert mine["cold"]["bytes"] > 0
    assert [h["id"] for h in report["legal_holds"]] == [docs["held"]["id"]]
    assert {s["id"] for s in report["schedules"]} == set(SCHEDULES)
    assert all(s["next_run"] for s in report["schedules"]), report["schedules"]
    assert (await http["user"].get("/v1/governance/lifecycle")).status_code == 403
    admin = (await http["admin"].get("/v1/governance/lifecycle")).json()
    assert TENANT in {t["tenant"] for t in admin["tenants"]}
    cli = hearth_cli(stack_environment, "governance", "lifecycle")
    assert "hearth-lifecycle-tiering" in cli.stdout


async def test_key_rotation_rewraps_every_stored_key_and_old_data_still_reads(
    *,
    stack: HearthSettings,
    temporal: Client,
    http: dict[str, httpx.AsyncClient],
    docs: State,
    hot: BlobStore,
    cold: ColdStore,
    engine: AsyncEngine,
) -> None:
    admin = KeyAdmin.from_settings(stack)
    before = await admin.latest_version(TENANT)
    result = await _run_schedule(temporal, "hearth-key-rotation")
    after = await admin.latest_version(TENANT)
    assert after == before + 1
    assert {"tenant": TENANT, "version": after} in result["rotated"]
    # Hot: the original read back (restored under the old version); cold: the five copies still there.
    assert result["rewrapped"]["blobs"] >= 1, result
    assert result["rewrapped"]["cold"] >= 5, result
    headers = dict(await hot.sealed())
    for ref in docs["expired"]["refs"][:1]:
        header = headers[ref.key]
        assert header is not None
        assert header.key_version == after
    for name in ("held", "other"):
        for ref in docs[name]["refs"]:
            manifest = await cold.manifest(ref.bucket, ref.key)
            assert manifest is not None
            assert manifest.header() is not None
            assert manifest.header().key_version == after  # type: ignore[union-attr]
    async with engine.connect() as conn:
        row_keys = [
            r[0]
            for r in await conn.execute(
                text("SELECT data_key FROM raw_docs WHERE tenant = :t AND data_key IS NOT NULL"), {"t": TENANT}
            )
        ]
    assert all(KeyHeader.from_json(k).key_version == after for k in row_keys)
    # Data written under the old version reads on: a rewrapped hot blob, a rewrapped cold copy.
    for name in ("expired", "other"):
        resp = await http["user"].get(f"/v1/documents/{docs[name]['id']}/file")
        assert resp.status_code == 200, name
        assert resp.content == docs[name]["data"], name
    doc = await http["user"].get(f"/v1/documents/{docs['other']['id']}")
    assert doc.status_code == 200
    assert docs["other"]["marker"] in doc.json()["text"]
    assert await _audit(engine, "lifecycle.key_rotated")


async def test_the_governance_approle_rotates_but_cannot_shred_or_touch_the_payload_key(stack: HearthSettings) -> None:
    keys = TenantKeys.for_service(stack)
    assert TENANT in await keys.tenants()
    with pytest.raises(PermanentFailure) as refused:
        await keys.shred(TENANT)
    assert refused.value.code == "transit-refused"
    with pytest.raises(PermanentFailure):
        await keys.rotate_payload_key()
    assert (await KeyAdmin.from_settings(stack).latest_version(TENANT)) >= 2  # the key is still there


async def test_retention_purges_due_documents_but_never_held_ones(
    *,
    temporal: Client,
    http: dict[str, httpx.AsyncClient],
    docs: State,
    hot: BlobStore,
    cold: ColdStore,
    engine: AsyncEngine,
) -> None:
    for name in ("expired", "other"):  # the control: found before the purge
        found = (await http["user"].get("/v1/search", params={"q": docs[name]["marker"]})).json()
        assert docs[name]["id"] in {hit["document_id"] for hit in found["hits"]}, found
    result = await _run_schedule(temporal, "hearth-lifecycle-retention")
    assert result["failed"] == [], result
    assert result["purged"] >= 2
    for name in ("expired", "other"):
        entry = docs[name]
        gone = await http["user"].get(f"/v1/documents/{entry['id']}")
        assert gone.status_code == 410, gone.text
        tombstone = gone.json()["tombstone"]
        assert tombstone["sha256"] == hashlib.sha256(entry["data"]).hexdigest()
        assert tombstone["retention_class"]
        assert tombstone["purged_at"]
        assert (await http["user"].get(f"/v1/documents/{entry['id']}/file")).status_code == 410
        # Above one's clearance (the documents are internal) not even the tombstone is told.
        for path in (f"/v1/documents/{entry['id']}", f"/v1/documents/{entry['id']}/file"):
            hidden = await http["guest"].get(path)
            assert hidden.status_code == 404, hidden.text
            assert "tombstone" not in hidden.text
        for ref in entry["refs"]:
            assert await _absent(hot, ref.key)
            assert await cold.manifest(ref.bucket, ref.key) is None
            assert not cold.data_path(ref.bucket, ref.key).exists()
        found = (await http["user"].get("/v1/search", params={"q": entry["marker"]})).json()
        assert entry["id"] not in {hit["document_id"] for hit in found["hits"]}
        async with engine.connect() as conn:
            left = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM doc_chunks WHERE doc_id = :id) + "
                        "(SELECT count(*) FROM processed_docs WHERE doc_id = :id)"
                    ),
                    {"id": entry["id"]},
                )
            ).scalar_one()
        assert left == 0
    listed = {d["id"] for d in (await http["user"].get("/v1/documents")).json()}
    assert docs["held"]["id"] in listed
    assert docs["expired"]["id"] not in listed
    kept = await http["user"].get(f"/v1/documents/{docs['held']['id']}/file")
    assert kept.status_code == 200
    assert kept.content == docs["held"]["data"]
    purged = {e["subject"]: e["reason"] for e in await _audit(engine, "lifecycle.purged")}
    assert set(purged) == {f"document:{docs['expired']['id']}", f"document:{docs['other']['id']}"}
    assert all("past retention" in reason for reason in purged.values())
    verify = (await http["admin"].get("/v1/audit/verify")).json()
    assert verify["ok"], verify


async def test_released_hold_lets_retention_purge_it(
    temporal: Client, http: dict[str, httpx.AsyncClient], docs: State, engine: AsyncEngine
) -> None:
    held = docs["held"]["id"]
    released = await http["lead"].delete(f"/v1/documents/{held}/legal-hold")
    assert released.status_code == 200
    assert released.json()["legal_hold"] is False
    await _run_schedule(temporal, "hearth-lifecycle-retention")
    assert (await http["user"].get(f"/v1/documents/{held}")).status_code == 410
    again = await http["lead"].put(f"/v1/documents/{held}/legal-hold", json={"reason": "too late"})
    assert again.status_code == 410
    assert [e["reason"] for e in await _audit(engine, "lifecycle.legal_hold")] == [
        "legal hold set: case 17",
        "legal hold released",
    ]
