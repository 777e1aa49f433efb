"""Managing access control: route policies, role assignments and roles, per tenant domain.

Who may change what: the platform admin (a key with the ``admin`` role) any domain, ``*``
included; anyone else the routes let in (a ``tenant_admin``) only its own tenant's domain, and
only grants it holds itself — a policy whose every method on the resource it may use, a role
whose every permission it has — so no tenant admin can hand out more than it has. A key can be
given roles only in its own tenant (or ``*``, by the platform admin).

Every change is saved through the enforcer (``casbin_rule``), audited (``authz.changed``), and
announced with ``hearth.authz.policy_changed.v1`` so every other enforcer reloads; this
process's own memo is dropped at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import casbin
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.errors import BadRequest, Conflict, Forbidden, HearthError, NotFound
from shared.events.authz import PolicyChange, PolicyChanged
from shared.identity.apikeys import ApiKeyStore, Principal
from shared.identity.audit import AuditEntry, append
from shared.identity.authz import (
    ANY_DOMAIN,
    Assignment,
    Authorizer,
    Policy,
    Role,
    assignments_of,
    check_domain,
    check_member,
    check_methods,
    check_resource,
    check_role,
    key_subject,
    methods_of,
    policies_of,
    roles_of,
    subjects_of,
    visible,
)

log = structlog.get_logger("authz.admin")

Announce = Callable[[PolicyChanged], Awaitable[None]]


def _checked(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@dataclass(frozen=True)
class Permission:
    resource: str
    methods: str


class PolicyAdmin:
    """The admin API's logic over one ``Authorizer`` whose enforcer saves to the database."""

    def __init__(
        self,
        authorizer: Authorizer,
        *,
        engine: AsyncEngine,
        keys: ApiKeyStore,
        announce: Announce,
    ) -> None:
        self._authorizer = authorizer
        self._engine = engine
        self._keys = keys
        self._announce = announce

    @property
    def _enforcer(self) -> casbin.AsyncEnforcer:
        enforcer: casbin.AsyncEnforcer = self._authorizer.enforcer
        return enforcer

    # ---- who may manage which domain ----------------------------------------------------------

    @staticmethod
    def platform(actor: Principal) -> bool:
        return actor.role == "admin"

    def scope(self, actor: Principal) -> str | None:
        """The one domain ``actor`` may see and change (``None``: every domain)."""
        return None if self.platform(actor) else actor.tenant

    def domain_for(self, actor: Principal, domain: str | None) -> str:
        """The domain a change is made in: the one asked for if ``actor`` may manage it; by default its own."""
        if domain is None:
            return ANY_DOMAIN if self.platform(actor) else actor.tenant
        domain = _checked(check_domain, domain)
        if not self.platform(actor) and domain != actor.tenant:
            raise Forbidden(f"a tenant admin manages its own tenant's domain ({actor.tenant!r}) only, not {domain!r}")
        return domain

    def _holds(self, actor: Principal, resource: str, methods: str) -> bool:
        subjects = subjects_of(actor)
        return all(self._authorizer.allowed(subjects, actor.tenant, resource, m) for m in methods_of(methods))

    def _may_grant(self, actor: Principal, permissions: Sequence[Policy | Permission]) -> None:
        if self.platform(actor):
            return
        for p in permissions:
            if not self._holds(actor, p.resource, p.methods):
                raise Forbidden(f"you may not grant {p.methods} {p.resource}: you do not hold it yourself")

    # ---- reading ----------------------------------------------------------------------------

    def policies(self, actor: Principal, *, domain: str | None = None, role: str | None = None) -> list[Policy]:
        scope = self.scope(actor)
        return [
            p
            for p in policies_of(self._enforcer.get_named_policy("p"))
            if visible(p.domain, scope) and (domain is None or p.domain == domain) and (role is None or p.role == role)
        ]

    def assignments(
        self, actor: Principal, *, domain: str | None = None, member: str | None = None
    ) -> list[Assignment]:
        scope = self.scope(actor)
        return [
            a
            for a in assignments_of(self._enforcer.get_named_grouping_policy("g"))
            if visible(a.domain, scope)
            and (domain is None or a.domain == domain)
            and (member is None or a.member == member)
        ]

    def roles(self, actor: Principal, *, domain: str | None = None) -> list[Role]:
        return roles_of(self.policies(actor, domain=domain), self.assignments(actor, domain=domain))

    # ---- changing ---------------------------------------------------------------------------

    async def add_policy(self, actor: Principal, policy: Policy) -> Policy:
        policy = self._valid_policy(actor, policy)
        self._may_grant(actor, [policy])
        if not await self._save(self._enforcer.add_named_policy("p", policy.rule())):
            raise Conflict(f"that policy exists already: {', '.join(policy.rule())}", code="policy-exists")
        await self._changed(actor, "policy.added", policy.domain, [["p", *policy.rule()]])
        return policy

    async def remove_policy(self, actor: Principal, policy: Policy) -> None:
        policy = self._valid_policy(actor, policy)
        if not await self._save(self._enforcer.remove_named_policy("p", policy.rule())):
            raise NotFound(f"no such policy: {', '.join(policy.rule())}", code="unknown-policy")
        await self._changed(actor, "policy.removed", policy.domain, [["p", *policy.rule()]])

    async def assign(self, actor: Principal, assignment: Assignment) -> Assignment:
        assignment = await self._valid_assignment(actor, assignment)
        if not self.platform(actor):
            granted = await self._grants(assignment.role, assignment.domain)
            if not granted:
                raise NotFound(f"role {assignment.role!r} grants nothing in {assignment.domain!r}", code="unknown-role")
            self._may_grant(actor, [Permission(r[2], r[3]) for r in granted])
        if not await self._save(self._enforcer.add_named_grouping_policy("g", assignment.rule())):
            raise Conflict(f"{assignment.member} has role {assignment.role!r} in {assignment.domain!r} already")
        await self._changed(actor, "assignment.added", assignment.domain, [["g", *assignment.rule()]])
        return assignment

    async def unassign(self, actor: Principal, assignment: Assignment) -> None:
        assignment = await self._valid_assignment(actor, assignment)
        if not await self._save(self._enforcer.remove_named_grouping_policy("g", assignment.rule())):
            raise NotFound(
                f"{assignment.member} has no role {assignment.role!r} in {assignment.domain!r}",
                code="unknown-assignment",
            )
        await self._changed(actor, "assignment.removed", assignment.domain, [["g", *assignment.rule()]])

    async def add_role(
        self,
        actor: Principal,
        name: str,
        *,
        domain: str | None,
        permissions: Sequence[Permission],
        inherits: Sequence[str] = (),
    ) -> Role:
        """A new role: its permissions (route policies) and the roles it includes, in one change."""
        name = _checked(check_role, name)
        domain = self.domain_for(actor, domain)
        if not permissions and not inherits:
            raise BadRequest("a role needs at least one permission or a role it includes")
        if self.roles(actor, domain=domain) and any(r.name == name for r in self.roles(actor, domain=domain)):
            raise Conflict(f"role {name!r} exists in {domain!r} already", code="role-exists")
        policies = [self._valid_policy(actor, Policy(name, domain, p.resource, p.methods)) for p in permissions]
        links = [Assignment(name, _checked(check_role, parent), domain) for parent in inherits]
        self._may_grant(actor, policies)
        for link in links:
            if not self.platform(actor):
                granted = await self._grants(link.role, domain)
                self._may_grant(actor, [Permission(r[2], r[3]) for r in granted])
        if policies:
            await self._save(self._enforcer.add_named_policies("p", [p.rule() for p in policies]))
        if links:
            await self._save(self._enforcer.add_named_grouping_policies("g", [a.rule() for a in links]))
        rules = [["p", *p.rule()] for p in policies] + [["g", *a.rule()] for a in links]
        await self._changed(actor, "role.added", domain, rules)
        return Role(name, domain, policies, [a.role for a in links])

    async def remove_role(self, actor: Principal, name: str, *, domain: str | None) -> None:
        """Remove a role from a domain: its policies, what it includes, and every assignment of it."""
        name = _checked(check_role, name)
        domain = self.domain_for(actor, domain)
        policies = [p for p in self.policies(actor, domain=domain) if p.role == name]
        links = [a for a in self.assignments(actor, domain=domain) if name in (a.member, a.role)]
        if not policies and not links:
            raise NotFound(f"no role {name!r} in {domain!r}", code="unknown-role")
        # One rule at a time: the adapter's bulk remove matches each column against any of the
        # rules' values, which could remove rules that were not asked for.
        for p in policies:
            await self._save(self._enforcer.remove_named_policy("p", p.rule()))
        for a in links:
            await self._save(self._enforcer.remove_named_grouping_policy("g", a.rule()))
        rules = [["p", *p.rule()] for p in policies] + [["g", *a.rule()] for a in links]
        await self._changed(actor, "role.removed", domain, rules)

    async def carry_over(self, actor: Principal | None, old_prefix: str, new_prefix: str) -> list[Assignment]:
        """Give a rotated key's replacement the roles assigned to the old key (the old one keeps them
        until it expires: it still works for its grace period)."""
        old, new = key_subject(old_prefix), key_subject(new_prefix)
        carried = [
            Assignment(new, a.role, a.domain)
            for a in assignments_of(self._enforcer.get_named_grouping_policy("g"))
            if a.member == old
        ]
        if not carried:
            return []
        await self._save(self._enforcer.add_named_grouping_policies("g", [a.rule() for a in carried]))
        by = actor or Principal(uuid.UUID(int=0), "rotation", "admin", ANY_DOMAIN)
        for domain in sorted({a.domain for a in carried}):
            rules = [["g", *a.rule()] for a in carried if a.domain == domain]
            await self._changed(by, "assignment.added", domain, rules)
        return carried

    # ---- helpers ----------------------------------------------------------------------------

    async def _grants(self, role: str, domain: str) -> list[list[str]]:
        """Every route policy ``role`` has in ``domain``, its included roles' too (``*`` ones among them)."""
        granted: list[list[str]] = await self._enforcer.get_implicit_permissions_for_user(role, domain)
        return granted

    def _valid_policy(self, actor: Principal, policy: Policy) -> Policy:
        return Policy(
            role=_checked(check_role, policy.role),
            domain=self.domain_for(actor, policy.domain or None),
            resource=_checked(check_resource, policy.resource),
            methods=_checked(check_methods, policy.methods),
        )

    async def _valid_assignment(self, actor: Principal, assignment: Assignment) -> Assignment:
        member = _checked(check_member, assignment.member)
        domain = self.domain_for(actor, assignment.domain or None)
        if member.startswith("key:"):
            tenant = await self._keys.tenant_of(member[4:])
            if tenant is None:
                raise NotFound(f"no API key with prefix {member[4:]!r}", code="unknown-key")
            if domain not in (tenant, ANY_DOMAIN):
                raise BadRequest(
                    f"{member} belongs to tenant {tenant!r}: its roles are assigned in {tenant!r}"
                    + (" (or * by the platform admin)" if self.platform(actor) else "")
                )
        return Assignment(member, _checked(check_role, assignment.role), domain)

    @staticmethod
    async def _save(result: Awaitable[Any]) -> bool:
        try:
            return bool(await result)
        except IntegrityError:  # another gateway stored the same rule a moment ago
            raise Conflict("that rule was stored by someone else meanwhile", code="policy-exists") from None

    async def _changed(self, actor: Principal, change: PolicyChange, domain: str, rules: list[list[str]]) -> None:
        self._authorizer.invalidate()
        async with self._engine.begin() as conn:
            await append(
                conn,
                [
                    AuditEntry(
                        event="authz.changed",
                        decision="allow",
                        reason=f"{change}: " + "; ".join(", ".join(r) for r in rules),
                        principal=actor.prefix or None,
                        tenant=domain,
                        role=actor.role,
                    )
                ],
            )
        try:
            await self._announce(PolicyChanged(change=change, domain=domain, rules=rules, by=actor.prefix or None))
        except HearthError as exc:  # stored and audited; the others catch up at their periodic reload
            log.warning("policy change not announced; other enforcers reload on their resync", reason=exc.detail)
