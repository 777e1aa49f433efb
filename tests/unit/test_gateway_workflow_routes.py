"""The workflow routes' own logic, in memory: refused files, tenancy of run lists and lookups.

The behaviours against the real stack are in ``tests/integration/test_gateway_workflows.py``;
here the app is built by ``create_app`` with doubles for the store, the run service and the keys.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from services.gateway.app import create_app
from services.gateway.auth import AccessGuard, load_enforcer
from services.gateway.documents.handlers import DocumentServices
from services.gateway.telemetry.handlers import TelemetryClient
from services.gateway.workflows.handlers import WorkflowServices
from shared.errors import NotFound, Unauthorized
from shared.identity.apikeys import Principal
from workflows.definitions import DefinitionError, Loaded, Problem, parse_text
from workflows.runs import RunDetail, RunFilter, RunService, RunSummary
from workflows.versions import DefinitionStore, DefinitionVersion

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

YAML = """\
workflows:
  kept:
    triggers:
      - event: hearth.ingest.document.v1
    steps:
      - first: {type: store, collection: kept, data: {a: 1}}
      - parallel:
          - left: {type: store, collection: kept, data: {b: 1}}
          - right: {type: store, collection: kept, data: {c: 1}}
"""
KEYS = {
    "alice": Principal(uuid.uuid4(), "alice", "user", "tenant-a"),
    "root": Principal(uuid.uuid4(), "root", "admin", "default"),
}


class Keys:
    async def verify(self, key: str) -> Principal:
        if key not in KEYS:
            raise Unauthorized("invalid API key")
        return KEYS[key]


class Store(DefinitionStore):
    # Subclasses of the real services: Litestar checks the type of each injected dependency.
    def __init__(self) -> None:
        (definition,) = parse_text(YAML, "workflows/kept.yaml")
        self.row = DefinitionVersion(
            name="kept",
            version=3,
            hash=definition.hash,
            definition=definition.snapshot(),
            canonical=definition.canonical_yaml(),
            file="workflows/kept.yaml",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    async def names(self) -> dict[str, int]:
        return {"kept": 3}

    async def get(self, name: str, version: int | None = None) -> DefinitionVersion:
        if name != "kept" or version not in (None, 3):
            raise NotFound(f"no workflow definition {name!r}", code="unknown-workflow")
        return self.row


class Runs(RunService):
    def __init__(self) -> None:
        self.filters: list[RunFilter] = []

    async def list(self, flt: RunFilter, limit: int = 50) -> list[RunSummary]:
        self.filters.append(flt)
        return []

    async def _detail(self, run_id: str) -> RunDetail:
        return RunDetail(id=run_id, workflow="kept", status="running", tenant="tenant-b", started_at=None)


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def client(runs: Runs) -> TestClient[Any]:
    refused = DefinitionError([Problem("workflows/kept.yaml", 7, "unknown step type 'nope'")])
    services = WorkflowServices(
        definitions=Store(),
        runs=runs,
        blobs=None,  # type: ignore[arg-type]
        read_files=lambda: Loaded(errors={"workflows/kept.yaml": refused}),
    )
    app = create_app(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        AccessGuard(Keys(), load_enforcer()),  # type: ignore[arg-type]
        workflow_services=services,
        document_services=DocumentServices(store=None, pipeline=None, blobs=None, classifier=None),  # type: ignore[arg-type]
        telemetry=TelemetryClient(None),  # type: ignore[arg-type]
    )
    return TestClient(app)


def test_a_refused_file_is_listed_with_its_problems_and_the_definitions_it_keeps(client: TestClient[Any]) -> None:
    with client:
        resp = client.get("/v1/workflows", headers={"X-API-Key": "alice"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    (kept,) = body["workflows"]
    assert (kept["name"], kept["active_version"], kept["file"]) == ("kept", 3, "workflows/kept.yaml")
    assert [t["subject"] for t in kept["triggers"]] == ["hearth.ingest.document.v1"]
    assert [(s["id"], s["group"]) for s in kept["steps"]] == [
        ("first", None),
        ("left", "parallel_2"),
        ("right", "parallel_2"),
    ]
    assert body["refused"] == [
        {
            "file": "workflows/kept.yaml",
            "problems": [{"file": "workflows/kept.yaml", "line": 7, "reason": "unknown step type 'nope'"}],
            "workflows": ["kept"],
        }
    ]


def test_a_user_lists_only_their_tenant_and_an_admin_any(client: TestClient[Any], runs: Runs) -> None:
    with client:
        assert client.get("/v1/runs?tenant=tenant-b", headers={"X-API-Key": "alice"}).status_code == 200
        assert client.get("/v1/runs?tenant=tenant-b", headers={"X-API-Key": "root"}).status_code == 200
        assert client.get("/v1/runs", headers={"X-API-Key": "root"}).status_code == 200
    assert [f.tenant for f in runs.filters] == ["tenant-a", "tenant-b", None]


def test_another_tenants_run_is_not_found_for_a_user_but_shown_to_an_admin(client: TestClient[Any]) -> None:
    with client:
        hidden = client.get("/v1/runs/kept-1", headers={"X-API-Key": "alice"})
        shown = client.get("/v1/runs/kept-1", headers={"X-API-Key": "root"})
    assert hidden.status_code == 404
    assert hidden.json()["type"].endswith("/unknown-run")
    assert shown.status_code == 200
    assert shown.json()["tenant"] == "tenant-b"


def test_naive_times_are_read_as_utc(client: TestClient[Any], runs: Runs) -> None:
    with client:
        resp = client.get("/v1/runs?since=2026-03-01T08:00:00", headers={"X-API-Key": "alice"})
    assert resp.status_code == 200, resp.text
    assert runs.filters[-1].since == datetime(2026, 3, 1, 8, tzinfo=UTC)


def test_the_infer_route_documents_its_json_and_binary_bodies(client: TestClient[Any]) -> None:
    with client:
        resp = client.get("/schema/openapi.json")
    assert resp.status_code == 200
    body = resp.json()["paths"]["/v1/models/{name}/infer"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "application/octet-stream"}
    header = body["content"]["application/json"]["schema"]
    assert header["required"] == ["inputs"]
    assert set(header["properties"]["inputs"]["items"]["properties"]) >= {"name", "shape", "datatype", "data"}
