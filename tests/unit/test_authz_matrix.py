"""The declared authorisation matrix (``tests/authz_matrix.py``) against the app and the shipped policy.

No stack: the app is built by ``create_app`` with every optional route group on and no services
behind them (nothing is called), so its OpenAPI document and route table are the ones the gateway
serves. The same matrix is exercised request by request in ``tests/integration/test_authz_matrix.py``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from litestar import Litestar

from services.gateway.app import create_app
from services.gateway.auth import PUBLIC_PREFIXES, AccessGuard
from services.gateway.documents.handlers import DocumentServices
from services.gateway.governance.handlers import GovernanceServices
from services.gateway.governance.lifecycle import LifecycleAdmin
from services.gateway.telemetry.handlers import TelemetryClient
from services.gateway.workflows.codec import CodecServices
from shared.identity.apikeys import Principal
from shared.identity.authz import Authorizer, key_subject, load_enforcer, subjects_of
from tests.authz_matrix import BY_KEY, MATRIX, ROLES, Route, coverage

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        AccessGuard(None, load_enforcer()),  # type: ignore[arg-type]
        workflow_services=None,  # type: ignore[arg-type]
        document_services=DocumentServices(store=None, pipeline=None, blobs=None, classifier=None),  # type: ignore[arg-type]
        telemetry=TelemetryClient(None),  # type: ignore[arg-type]
        governance=GovernanceServices(keys=None, audit=None, policies=object()),  # type: ignore[arg-type]
        lifecycle=LifecycleAdmin(None, None),  # type: ignore[arg-type]
        codec=CodecServices(None, "default"),  # type: ignore[arg-type]
    )


def _handlers(app: Litestar) -> list[tuple[str, str, Any]]:
    """(METHOD, template as in OpenAPI, handler) of every HTTP route the app serves."""
    found = []
    for route in app.routes:
        template = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    found.append((method, template, handler))
    return found


def test_every_route_of_the_api_has_an_entry_and_every_entry_a_route(app: Litestar) -> None:
    missing, stale = coverage(app.openapi_schema.to_schema())
    assert missing == [], f"routes without an entry in tests/authz_matrix.py (decide who may call them): {missing}"
    assert stale == [], f"entries in tests/authz_matrix.py whose route is gone: {stale}"


def test_a_route_left_out_of_the_api_document_is_a_public_one(app: Litestar) -> None:
    # The matrix is generated from the OpenAPI document: a guarded route hidden from it would escape it.
    hidden = [
        (method, template)
        for method, template, handler in _handlers(app)
        if (method, template) not in BY_KEY and not (handler.opt.get("public") or template.startswith(PUBLIC_PREFIXES))
    ]
    assert hidden == []


def test_open_entries_are_exactly_the_routes_the_guard_lets_through_without_a_key(app: Litestar) -> None:
    for method, template, handler in _handlers(app):
        route = BY_KEY.get((method, template))
        if route is not None:
            public = bool(handler.opt.get("public")) or template.startswith(PUBLIC_PREFIXES)
            assert public is (route.least == "open"), route


def _principal(role: str, authz: Authorizer) -> Principal:
    prefix = uuid.uuid4().hex[:12]
    if role == "tenant_admin":  # a user key given the role in its tenant, as `hearth authz assign` does
        authz.enforcer.add_grouping_policy(key_subject(prefix), "tenant_admin", "acme")
        authz.invalidate()
        return Principal(uuid.uuid4(), "ta", "user", "acme", prefix, "internal")
    return Principal(uuid.uuid4(), role, role, "default" if role == "admin" else "acme", prefix, "internal")


def _path(route: Route) -> str:
    return re.sub(r"{\w+}", "x1", route.template)


@pytest.mark.parametrize("role", ROLES)
def test_the_shipped_policy_decides_every_route_as_the_matrix_says(role: str) -> None:
    authz = Authorizer(load_enforcer())
    principal = _principal(role, authz)
    wrong = [
        (route.method, route.template, route.least)
        for route in MATRIX
        if route.least != "open"
        and authz.allowed(subjects_of(principal), principal.tenant, _path(route), route.method)
        is not route.allows(role)
    ]
    assert wrong == [], f"policy.csv disagrees with tests/authz_matrix.py for role {role!r}"


def test_a_principal_with_no_role_of_the_matrix_is_denied_every_guarded_route() -> None:
    authz = Authorizer(load_enforcer())
    allowed = [r.key for r in MATRIX if r.least != "open" and authz.allowed(("auditor",), "acme", _path(r), r.method)]
    assert allowed == []


def test_every_entry_can_be_called_and_says_what_its_tenancy_needs() -> None:
    assert len(BY_KEY) == len(MATRIX), "one entry per route and method"
    for route in MATRIX:
        assert set(route.call.path) == route.params(), route
        assert route.answers, route
        assert not route.answers & {401, 403}, route
        assert (route.hidden is not None) is (route.tenancy == "own"), route
        assert (route.foreign is not None) is (route.tenancy == "domain"), route
        if route.tenancy == "own":
            assert route.least != "admin", "an admin-only route has no other tenant to hide from"
