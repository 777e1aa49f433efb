"""``/v1/authz``: roles, role assignments and route policies, per tenant domain.

The platform admin manages every domain (``*``: every tenant); a ``tenant_admin`` only its own
tenant's, and only with grants it holds itself (``shared.identity.policies``). A change is stored,
audited, and reaches every enforcer within a second (``hearth.authz.policy_changed.v1``).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.requests import json_body, principal_of, validated
from shared.identity.authz import Assignment, Policy, Role
from shared.identity.policies import Permission, PolicyAdmin

_DOMAIN = "The tenant; * for every tenant (platform admin only). Default: yours (a tenant admin), * (the admin)."


class NewPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=63, description="The role the policy grants to.")
    domain: str | None = Field(None, max_length=100, description=_DOMAIN)
    resource: str = Field(min_length=1, max_length=200, description="A path pattern: /v1/documents/:id, /v1/runs/*.")
    methods: str = Field(min_length=1, max_length=60, description="GET, GET|POST, or .* for every method.")


class NewAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: str = Field(min_length=1, max_length=70, description="key:<prefix> (an API key) or a role.")
    role: str = Field(min_length=1, max_length=63)
    domain: str | None = Field(None, max_length=100, description=_DOMAIN)


class NewPermission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: str = Field(min_length=1, max_length=200)
    methods: str = Field(min_length=1, max_length=60)


class NewRole(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    domain: str | None = Field(None, max_length=100, description=_DOMAIN)
    permissions: list[NewPermission] = Field(default_factory=list, max_length=100)
    inherits: list[str] = Field(default_factory=list, max_length=20, description="Roles this one includes.")


class AuthzController(Controller):
    path = "/v1/authz"
    tags = ["governance"]

    @get("/policies", summary="Route policies: role, domain, resource pattern, methods")
    async def list_policies(
        self,
        request: Request[Any, Any, Any],
        policy_admin: PolicyAdmin,
        *,
        domain: str | None = None,
        role: str | None = None,
    ) -> list[Policy]:
        return policy_admin.policies(principal_of(request), domain=domain, role=role)

    @post("/policies", summary="Grant a role methods on a resource in a domain", status_code=201)
    async def add_policy(self, request: Request[Any, Any, Any], policy_admin: PolicyAdmin) -> Policy:
        body = validated(NewPolicy, await json_body(request))
        policy = Policy(body.role, body.domain or "", body.resource, body.methods)
        return await policy_admin.add_policy(principal_of(request), policy)

    @delete("/policies", summary="Remove a route policy (every field as listed)")
    async def remove_policy(
        self,
        request: Request[Any, Any, Any],
        policy_admin: PolicyAdmin,
        *,
        role: str,
        resource: str,
        methods: str,
        domain: str | None = None,
    ) -> None:
        await policy_admin.remove_policy(principal_of(request), Policy(role, domain or "", resource, methods))

    @get("/assignments", summary="Role assignments: member (key:<prefix> or a role), role, domain")
    async def list_assignments(
        self,
        request: Request[Any, Any, Any],
        policy_admin: PolicyAdmin,
        *,
        domain: str | None = None,
        member: str | None = None,
    ) -> list[Assignment]:
        return policy_admin.assignments(principal_of(request), domain=domain, member=member)

    @post("/assignments", summary="Give a key (or a role) a role in a domain", status_code=201)
    async def assign(self, request: Request[Any, Any, Any], policy_admin: PolicyAdmin) -> Assignment:
        body = validated(NewAssignment, await json_body(request))
        return await policy_admin.assign(principal_of(request), Assignment(body.member, body.role, body.domain or ""))

    @delete("/assignments", summary="Take a role from a key (or a role) in a domain")
    async def unassign(
        self,
        request: Request[Any, Any, Any],
        policy_admin: PolicyAdmin,
        *,
        member: str,
        role: str,
        domain: str | None = None,
    ) -> None:
        await policy_admin.unassign(principal_of(request), Assignment(member, role, domain or ""))

    @get("/roles", summary="Roles per domain, with their policies and the roles they include")
    async def list_roles(
        self, request: Request[Any, Any, Any], policy_admin: PolicyAdmin, domain: str | None = None
    ) -> list[Role]:
        return policy_admin.roles(principal_of(request), domain=domain)

    @post("/roles", summary="Create a role: its permissions and the roles it includes", status_code=201)
    async def add_role(self, request: Request[Any, Any, Any], policy_admin: PolicyAdmin) -> Role:
        body = validated(NewRole, await json_body(request))
        return await policy_admin.add_role(
            principal_of(request),
            body.name,
            domain=body.domain,
            permissions=[Permission(p.resource, p.methods) for p in body.permissions],
            inherits=body.inherits,
        )

    @delete("/roles/{name:str}", summary="Remove a role from a domain: its policies and every assignment of it")
    async def remove_role(
        self, request: Request[Any, Any, Any], policy_admin: PolicyAdmin, name: str, domain: str | None = None
    ) -> None:
        await policy_admin.remove_role(principal_of(request), name, domain=domain)
