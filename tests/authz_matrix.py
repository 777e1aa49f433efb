"""The gateway's declared authorisation matrix: for every route of its OpenAPI document, who may call it.

One entry per route template and method: the least role that may call it (roles include the ones
below them: ``admin`` ⊇ ``tenant_admin`` ⊇ ``user``; ``open`` needs no key), whose data it touches
(``tenancy``), whether documents' sensitivity is checked against the key's clearance, and one
request that an allowed caller makes with the statuses it must get. That request is chosen so the
answer proves the access decision without changing what later cases see: a missing model,
workflow, key prefix or role (404), an invalid body (400), a finished run (409).

``tests/unit/test_authz_matrix.py`` checks it against the routes the app declares and the shipped
policy (``infra/casbin/policy.csv``); ``tests/integration/test_authz_matrix.py`` makes every call as
every kind of principal on the real stack. A route in the API without an entry here, or an entry
whose route is gone, fails both: no route ships without someone deciding who may use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Least = Literal["open", "user", "tenant_admin", "admin"]
Tenancy = Literal["global", "own", "scoped", "domain"]
"""What of a tenant's a route touches.

``global``: nothing of a tenant's (models, workflow definitions, the platform's keys and audit).
``own``: one object of a tenant, named in the path; another tenant's key (not the platform admin)
gets ``hidden`` — the same 404 as for a missing one, so it learns nothing of its existence.
``scoped``: lists, search and answers over the caller's own tenant (the platform admin: every one).
``domain``: the access-control admin API; a tenant admin reads and changes its own domain only
(``foreign``: the same call aimed at another tenant's domain).
"""

ROLES: Final = ("user", "tenant_admin", "admin")
"""The shipped roles, lowest first; each may do what the ones before it may."""

DOCUMENT: Final = "@document"
"""Placeholder: the id of tenant A's ``internal`` document (made by the integration test)."""
RUN: Final = "@run"
"""Placeholder: the id of that document's processing run."""
MARKER: Final = "@marker"
"""Placeholder: the word every tenant-A document holds."""
TENANT_B: Final = "@tenant-b"
"""Placeholder: another tenant than the caller's."""
MISSING: Final = "matrix_missing"
"""A name no model, workflow or role has."""
MISSING_PREFIX: Final = "MatrixNoKey0"
"""A well-formed key prefix (12 letters and digits) no key has."""


@dataclass(frozen=True)
class Call:
    """One request: path parameters, query, JSON body (placeholders resolved by the caller)."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    """As in the OpenAPI document: ``/v1/documents/{document_id}``."""
    least: Least
    answers: frozenset[int]
    """What an allowed caller gets for ``call`` (the owner, for ``own`` routes)."""
    call: Call = field(default_factory=Call)
    code: str | None = None
    """The problem code of that answer, where an error is the expected answer and its code tells it apart."""
    tenancy: Tenancy = "global"
    sensitivity: bool = False
    """Documents are read or written only with a clearance at least their sensitivity."""
    hidden: str | None = None
    """``own``: the problem code another tenant's key gets, with 404."""
    foreign: Call | None = None
    """``domain``: ``call`` aimed at another tenant's domain (403 for a change, nothing of it in a read)."""

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.template

    def allows(self, role: str) -> bool:
        """Whether the route policy lets ``role`` call it (``open``: every caller, with a key or not)."""
        return self.least == "open" or ROLES.index(role) >= ROLES.index(self.least)

    def params(self) -> set[str]:
        return set(re.findall(r"{(\w+)}", self.template))


def resolve(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with every placeholder string (``@document``...) replaced by its value in ``values``."""
    if isinstance(value, str):
        return values.get(value, value)
    if isinstance(value, Mapping):
        return {k: resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    return value


def url(route: Route, call: Call, values: Mapping[str, str]) -> str:
    """The path of ``call`` on ``route``, its parameters filled (placeholders resolved)."""
    path = route.template
    for name, value in call.path.items():
        path = path.replace("{" + name + "}", str(resolve(value, values)))
    return path


def _r(method: str, template: str, least: Least, *answers: int, tenancy: Tenancy = "global", **kw: Any) -> Route:
    return Route(method, template, least, frozenset(answers), tenancy=tenancy, **kw)


_MODEL = Call(path={"name": "chinese_ocr_v3"})
_NO_MODEL = Call(path={"name": MISSING})
_WORKFLOW = Call(path={"name": "document_processing"})
_NO_WORKFLOW = Call(path={"name": MISSING})
_RUN = {"run_id": RUN}
_POLICY_QUERY = {"role": MISSING, "resource": "/v1/ocr", "methods": "POST"}
_ASSIGNMENT_QUERY = {"member": MISSING, "role": "user"}

MATRIX: Final[tuple[Route, ...]] = (
    # -- open: health and the API documents
    _r("GET", "/v1/health", "open", 200),
    _r("GET", "/v1/health/live", "open", 200),
    _r("GET", "/schema/asyncapi.json", "open", 200),
    # -- models: users read and run them; control is the admin's (missing model: 404 past the guard)
    _r("GET", "/v1/models", "user", 200),
    _r("GET", "/v1/models/{name}", "user", 200, call=_MODEL),
    _r("POST", "/v1/models/{name}/infer", "user", 404, call=Call(path={"name": MISSING}, json={"inputs": []})),
    _r("POST", "/v1/models/{name}/load", "admin", 404, call=_NO_MODEL),
    _r("POST", "/v1/models/{name}/unload", "admin", 404, call=_NO_MODEL),
    _r("POST", "/v1/models/{name}/rollback", "admin", 409, call=_NO_MODEL),  # nothing to roll back to
    _r("POST", "/v1/models/{name}/canary", "admin", 404, call=Call(path={"name": MISSING}, json={"version": "2"})),
    _r("GET", "/v1/devices", "admin", 200),
    _r("POST", "/v1/ocr", "user", 400),  # no file
    # -- workflow definitions: global; runs are the tenant's
    _r("GET", "/v1/workflows", "user", 200),
    _r("GET", "/v1/workflows/{name}", "user", 200, call=_WORKFLOW),
    _r("GET", "/v1/workflows/{name}/versions", "user", 200, call=_WORKFLOW),
    _r("POST", "/v1/workflows/{name}/rollback", "admin", 404, call=Call(path={"name": MISSING}, json={"version": 1})),
    _r("POST", "/v1/workflows/{name}/runs", "user", 404, call=_NO_WORKFLOW, tenancy="scoped"),
    _r("GET", "/v1/runs", "user", 200, tenancy="scoped"),
    _r("GET", "/v1/runs/{run_id}", "user", 200, call=Call(path=_RUN), tenancy="own", hidden="unknown-run"),
    # The trace is recorded by the telemetry service; 404 until its spans are in.
    _r("GET", "/v1/runs/{run_id}/trace", "user", 200, 404, call=Call(path=_RUN), tenancy="own", hidden="unknown-run"),
    _r(
        "POST",
        "/v1/runs/{run_id}/review",
        "user",
        409,  # the run waits for no review
        call=Call(path=_RUN, json={"decision": "approve"}),
        tenancy="own",
        hidden="unknown-run",
    ),
    _r(
        "POST",
        "/v1/runs/{run_id}/cancel",
        "user",
        409,  # the run has finished
        call=Call(path=_RUN, json={}),
        tenancy="own",
        hidden="unknown-run",
    ),
    # -- documents, search, Q&A: the tenant's, within the key's clearance
    _r(
        "POST",
        "/v1/documents",
        "user",
        404,  # an unknown workflow: refused after the clearance decision, before anything is stored
        call=Call(json={"text": "matrix", "workflow": MISSING, "sensitivity": "internal"}),
        tenancy="scoped",
        sensitivity=True,
    ),
    _r("GET", "/v1/documents", "user", 200, tenancy="scoped", sensitivity=True),
    _r(
        "GET",
        "/v1/documents/{document_id}",
        "user",
        200,
        call=Call(path={"document_id": DOCUMENT}),
        tenancy="own",
        sensitivity=True,
        hidden="unknown-document",
    ),
    _r(
        "PATCH",
        "/v1/documents/{document_id}",
        "user",
        200,
        call=Call(path={"document_id": DOCUMENT}, json={"sensitivity": "internal"}),  # the level it has: no change
        tenancy="own",
        sensitivity=True,
        hidden="unknown-document",
    ),
    _r(
        "GET",
        "/v1/documents/{document_id}/file",
        "user",
        404,
        code="no-file",  # the document was submitted as inline text
        call=Call(path={"document_id": DOCUMENT}),
        tenancy="own",
        sensitivity=True,
        hidden="unknown-document",
    ),
    # Legal holds: releasing a hold the document does not have changes nothing.
    _r(
        "PUT",
        "/v1/documents/{document_id}/legal-hold",
        "tenant_admin",
        200,
        call=Call(path={"document_id": DOCUMENT}, json={"hold": False}),
        tenancy="own",
        sensitivity=True,
        hidden="unknown-document",
    ),
    _r(
        "DELETE",
        "/v1/documents/{document_id}/legal-hold",
        "tenant_admin",
        200,
        call=Call(path={"document_id": DOCUMENT}),
        tenancy="own",
        sensitivity=True,
        hidden="unknown-document",
    ),
    _r("GET", "/v1/governance/lifecycle", "tenant_admin", 200, tenancy="scoped"),
    _r("GET", "/v1/search", "user", 200, call=Call(query={"q": MARKER}), tenancy="scoped", sensitivity=True),
    _r(
        "POST",
        "/v1/ask",
        "user",
        200,
        call=Call(json={"question": f"What is {MARKER}?", "mode": "extractive"}),
        tenancy="scoped",
        sensitivity=True,
    ),
    # -- monitoring: the admin's in the shipped policy
    _r("GET", "/v1/telemetry/overview", "admin", 200),
    _r("GET", "/v1/telemetry/series", "admin", 400),  # no metric
    _r("GET", "/v1/traces/{trace_id}", "admin", 404, call=Call(path={"trace_id": "0" * 31 + "1"})),
    _r("GET", "/v1/alerts", "admin", 200),
    _r("POST", "/v1/alerts/silences", "admin", 400, call=Call(json={})),
    _r("DELETE", "/v1/alerts/silences/{silence_id}", "admin", 404, call=Call(path={"silence_id": MISSING})),
    # -- API keys and the audit log: the platform admin's
    _r("GET", "/v1/keys", "admin", 200),
    _r("POST", "/v1/keys", "admin", 400, call=Call(json={})),
    _r("DELETE", "/v1/keys/{prefix}", "admin", 404, call=Call(path={"prefix": MISSING_PREFIX})),
    _r("POST", "/v1/keys/{prefix}/rotate", "admin", 404, call=Call(path={"prefix": MISSING_PREFIX}, json={})),
    _r("GET", "/v1/audit", "admin", 200, call=Call(query={"limit": "1"})),
    _r("GET", "/v1/audit/verify", "admin", 200),
    # -- access control: tenant admins, in their own domain
    _r("GET", "/v1/authz/policies", "tenant_admin", 200, tenancy="domain", foreign=Call(query={"domain": TENANT_B})),
    _r(
        "POST",
        "/v1/authz/policies",
        "tenant_admin",
        400,
        call=Call(json={}),
        tenancy="domain",
        foreign=Call(json={"role": MISSING, "resource": "/v1/ocr", "methods": "POST", "domain": TENANT_B}),
    ),
    _r(
        "DELETE",
        "/v1/authz/policies",
        "tenant_admin",
        404,
        call=Call(query=_POLICY_QUERY),
        tenancy="domain",
        foreign=Call(query={**_POLICY_QUERY, "domain": TENANT_B}),
    ),
    _r("GET", "/v1/authz/roles", "tenant_admin", 200, tenancy="domain", foreign=Call(query={"domain": TENANT_B})),
    _r(
        "POST",
        "/v1/authz/roles",
        "tenant_admin",
        400,
        call=Call(json={}),
        tenancy="domain",
        foreign=Call(
            json={"name": MISSING, "domain": TENANT_B, "permissions": [{"resource": "/v1/ocr", "methods": "POST"}]}
        ),
    ),
    _r(
        "DELETE",
        "/v1/authz/roles/{name}",
        "tenant_admin",
        404,
        call=Call(path={"name": MISSING}),
        tenancy="domain",
        foreign=Call(path={"name": MISSING}, query={"domain": TENANT_B}),
    ),
    _r("GET", "/v1/authz/assignments", "tenant_admin", 200, tenancy="domain", foreign=Call(query={"domain": TENANT_B})),
    _r(
        "POST",
        "/v1/authz/assignments",
        "tenant_admin",
        400,
        call=Call(json={}),
        tenancy="domain",
        foreign=Call(json={**_ASSIGNMENT_QUERY, "domain": TENANT_B}),
    ),
    _r(
        "DELETE",
        "/v1/authz/assignments",
        "tenant_admin",
        404,
        call=Call(query=_ASSIGNMENT_QUERY),
        tenancy="domain",
        foreign=Call(query={**_ASSIGNMENT_QUERY, "domain": TENANT_B}),
    ),
    # -- the Temporal UI's payload codec: decrypted workflow payloads, the admin's only
    _r("POST", "/v1/codec/session", "admin", 204),
    _r("DELETE", "/v1/codec/session", "admin", 204),
    _r("POST", "/v1/codec/decode", "admin", 200, call=Call(json={})),
    _r("POST", "/v1/codec/encode", "admin", 200, call=Call(json={})),
)

BY_KEY: Final = {route.key: route for route in MATRIX}

HTTP_METHODS: Final = frozenset({"get", "post", "put", "patch", "delete"})


def spec_routes(openapi: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, template) of every operation in an OpenAPI document."""
    return {
        (method.upper(), path)
        for path, item in openapi.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def coverage(openapi: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(routes of ``openapi`` without an entry, entries without a route), each sorted."""
    declared, served = set(BY_KEY), spec_routes(openapi)
    return sorted(served - declared), sorted(declared - served)
