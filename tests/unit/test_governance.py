"""API key lifecycle rules, the audit queue and the guard's audit entries, in memory.

The same behaviours against the real PostgreSQL and gateway are in
``tests/integration/test_governance.py``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from services.gateway.app import create_app
from services.gateway.auth import AccessGuard, load_enforcer
from services.gateway.documents.handlers import DocumentServices
from services.gateway.governance.handlers import GovernanceServices
from services.gateway.telemetry.handlers import TelemetryClient
from shared.errors import Unauthorized
from shared.identity.apikeys import ApiKeyStore, CreatedKey, KeyInfo, Principal, key_state, refusal, rotated_lifetime
from shared.identity.audit import AuditEntry, AuditLog, AuditRecord, since_of

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_key_states_and_why_a_key_is_refused() -> None:
    def state(**kw: Any) -> str:
        return key_state(NOW, **{"expires_at": None, "revoked_at": None, "rotated_at": None, **kw})

    assert state() == "active"
    assert state(expires_at=NOW + HOUR) == "active"
    assert state(expires_at=NOW) == "expired"
    assert state(rotated_at=NOW - HOUR, expires_at=NOW + HOUR) == "rotated"
    assert state(rotated_at=NOW - HOUR, expires_at=NOW - HOUR) == "expired"
    assert state(revoked_at=NOW - HOUR, expires_at=NOW + HOUR) == "revoked"

    none: dict[str, Any] = {"expires_at": None, "revoked_at": None, "rotated_at": None}
    assert refusal(NOW, **none) is None
    assert refusal(NOW, **{**none, "revoked_at": NOW}) == "API key revoked"
    assert refusal(NOW, **{**none, "expires_at": NOW - HOUR}) == "API key expired at 2026-12-01T11:00:00+00:00"
    rotated = refusal(NOW, **{**none, "expires_at": NOW - HOUR, "rotated_at": NOW - 2 * HOUR})
    assert rotated is not None
    assert "rotated" in rotated
    assert "replacement" in rotated
    assert refusal(NOW, **{**none, "expires_at": NOW + HOUR, "rotated_at": NOW}) is None  # in its grace period


def test_a_replacement_gets_the_old_lifetime_from_now() -> None:
    assert rotated_lifetime(NOW, created_at=NOW - 10 * HOUR, expires_at=None) is None
    assert rotated_lifetime(NOW, created_at=NOW - 10 * HOUR, expires_at=NOW + HOUR) == NOW + 11 * HOUR


def test_since_is_a_time_or_a_duration_back() -> None:
    assert since_of("1h", NOW) == NOW - HOUR
    assert since_of("2026-12-01T10:00:00+00:00", NOW) == NOW - 2 * HOUR
    assert since_of("2026-12-01T10:00:00", NOW) == NOW - 2 * HOUR  # naive means UTC
    with pytest.raises(ValueError, match="neither"):
        since_of("yesterday", NOW)


async def test_a_full_audit_queue_drops_and_counts_without_raising() -> None:
    audit = AuditLog(None, queue_size=2)  # type: ignore[arg-type]
    for _ in range(5):
        audit.record(AuditEntry(event="access", decision="allow", reason="policy"))
    assert (audit.pending(), audit.dropped) == (2, 3)


PRINCIPALS = {
    "alice": Principal(uuid.uuid4(), "alice", "user", "tenant-a", "aliceprefix1"),
    "root": Principal(uuid.uuid4(), "root", "admin", "default", "rootprefix12"),
}


class Keys(ApiKeyStore):
    # Subclasses of the real services: Litestar checks the type of each injected dependency.
    def __init__(self) -> None:
        self.created: list[tuple[str, str, str, Principal | None]] = []

    async def verify(self, key: str) -> Principal:
        if key not in PRINCIPALS:
            raise Unauthorized("unknown API key")
        return PRINCIPALS[key]

    async def list(self, *, tenant: str | None = None) -> list[KeyInfo]:
        return [
            KeyInfo("aliceprefix1", "alice", "user", "tenant-a", "active", NOW, None, None, None, None, NOW),
        ]

    async def create(
        self,
        name: str,
        role: str,
        *,
        tenant: str = "default",
        expires_at: datetime | None = None,
        actor: Principal | None = None,
    ) -> CreatedKey:
        self.created.append((name, role, tenant, actor))
        principal = Principal(uuid.uuid4(), name, role, tenant, "newprefix123")
        return CreatedKey(principal, "hearth_newprefix123_secret", "newprefix123", expires_at)


class Audit(AuditLog):
    async def read(self, **filters: Any) -> list[AuditRecord]:
        return [AuditRecord(event="access", decision="deny", reason="no API key", id=1, at=NOW)]


@pytest.fixture
def parts() -> tuple[Keys, Audit, TestClient[Any]]:
    keys, audit = Keys(), Audit(None, queue_size=100)  # type: ignore[arg-type]
    app = create_app(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        AccessGuard(keys, load_enforcer(), audit=audit),
        workflow_services=None,  # type: ignore[arg-type]
        document_services=DocumentServices(store=None, pipeline=None, blobs=None, classifier=None),  # type: ignore[arg-type]
        telemetry=TelemetryClient(None),  # type: ignore[arg-type]
        governance=GovernanceServices(keys=keys, audit=audit),
    )
    return keys, audit, TestClient(app)


def _queued(audit: AuditLog) -> list[AuditEntry]:
    entries = []
    while audit.pending():
        entries.append(audit._queue.get_nowait())
    return entries


def test_keys_routes_are_admin_only_and_every_decision_is_queued(parts: tuple[Keys, Audit, TestClient[Any]]) -> None:
    keys, audit, client = parts
    with client:
        denied = client.get("/v1/keys", headers={"X-API-Key": "alice", "X-Request-ID": "req-1"})
        assert denied.status_code == 403
        assert client.get("/v1/keys").status_code == 401
        listed = client.get("/v1/keys", headers={"X-API-Key": "root"})
        assert listed.status_code == 200, listed.text
        assert "hash" not in listed.json()[0]
        assert "key" not in listed.json()[0]
        created = client.post(
            "/v1/keys", json={"name": "svc", "tenant": "tenant-b", "expires_in": "1d"}, headers={"X-API-Key": "root"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["key"] == "hearth_newprefix123_secret"
        assert created.json()["tenant"] == "tenant-b"
        bad = client.post("/v1/keys", json={"name": "x", "expires_in": "soon"}, headers={"X-API-Key": "root"})
        assert bad.status_code == 400
        assert client.get("/v1/audit?decision=deny", headers={"X-API-Key": "root"}).json()[0]["reason"] == "no API key"
        assert client.get("/v1/audit?since=whenever", headers={"X-API-Key": "root"}).status_code == 422
    assert keys.created == [("svc", "user", "tenant-b", PRINCIPALS["root"])]
    entries = _queued(audit)
    first, second, third = entries[:3]
    assert (first.decision, first.principal, first.tenant, first.role) == ("deny", "aliceprefix1", "tenant-a", "user")
    assert (first.method, first.route, first.request_id) == ("GET", "/v1/keys", "req-1")
    assert (second.decision, second.reason, second.principal) == ("deny", "no API key", None)
    assert (third.decision, third.principal) == ("allow", "rootprefix12")
    assert all(e.event == "access" for e in entries)
    assert len(entries) == 7


def test_the_route_template_not_the_path_is_recorded(parts: tuple[Keys, Audit, TestClient[Any]]) -> None:
    _, audit, client = parts
    with client:
        client.delete("/v1/keys/aliceprefix1", headers={"X-API-Key": "alice"})
        client.get("/v1/keys", headers={"X-API-Key": "hearth_abcdefghijkl_forged"})
    denied, forged = _queued(audit)
    assert denied.route is not None
    assert "aliceprefix1" not in denied.route
    assert denied.route.startswith("/v1/keys/{prefix")
    assert (forged.decision, forged.principal, forged.reason) == ("deny", "abcdefghijkl", "unknown API key")


def test_the_governance_routes_are_in_the_api_document(parts: tuple[Keys, Audit, TestClient[Any]]) -> None:
    with parts[2] as client:
        paths = client.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/keys", "/v1/keys/{prefix}/rotate", "/v1/keys/{prefix}", "/v1/audit"} <= set(paths)
