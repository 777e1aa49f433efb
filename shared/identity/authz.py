"""Authorisation: Casbin with tenant domains and data attributes, policies in PostgreSQL.

The model (``infra/casbin/model.conf``) has two request types. ``r`` decides a REST request:
(subject, tenant, path, method), where the subject is the key's own role or the key itself
(``key:<prefix>``, for roles assigned to it in its tenant) and the tenant is always the verified
key's. ``r2`` decides one object: (subject, tenant, clearance, object, action); an object carries
its kind, tenant and sensitivity, and a principal reads a document only when its clearance is at
least the document's sensitivity (``public < internal < confidential < secret``).

Policies live in the ``casbin_rule`` table (``casbin-async-sqlalchemy-adapter`` on the platform's
engine), seeded from ``infra/casbin/policy.csv`` by migration 0009. Every enforcer memoises its
decisions (``Authorizer``); a policy change publishes ``hearth.authz.policy_changed.v1`` and every
enforcer that hears it (``PolicyWatcher``) reloads from the database and drops its memo, so a
change holds everywhere within a second. A periodic reload catches anything missed while NATS
was away.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import casbin
import structlog
from casbin.util import key_match

from shared.settings import REPO_ROOT

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shared.identity.apikeys import Principal

log = structlog.get_logger("authz")

CASBIN_DIR: Final = REPO_ROOT / "infra" / "casbin"
MODEL_PATH: Final = CASBIN_DIR / "model.conf"
POLICY_PATH: Final = CASBIN_DIR / "policy.csv"

Sensitivity = Literal["public", "internal", "confidential", "secret"]
LEVELS: Final[tuple[str, ...]] = get_args(Sensitivity)
"""Sensitivity levels and clearances, lowest first."""
DEFAULT_SENSITIVITY: Final = "internal"
DEFAULT_CLEARANCE: Final = "internal"
ANY_DOMAIN: Final = "*"
"""The domain of platform-wide policies and assignments: they hold in every tenant."""
POLICY_CHANGED: Final = "hearth.authz.policy_changed.v1"

_RANK: Final = {level: i for i, level in enumerate(LEVELS)}


def clears(clearance: str, sensitivity: str) -> bool:
    """True when ``clearance`` is at least ``sensitivity``; an unknown level never clears or is cleared."""
    have, need = _RANK.get(clearance), _RANK.get(sensitivity)
    return have is not None and need is not None and have >= need


def levels_up_to(clearance: str) -> tuple[str, ...]:
    """The sensitivities ``clearance`` clears, lowest first (none for an unknown clearance)."""
    return tuple(level for level in LEVELS if clears(clearance, level))


def key_subject(prefix: str) -> str:
    """The Casbin subject of an API key: roles are assigned to ``key:<prefix>``."""
    return f"key:{prefix}"


def subjects_of(principal: Principal) -> tuple[str, ...]:
    """Who a request is asked for: the key's own role, and the key (for the roles assigned to it)."""
    return (principal.role, key_subject(principal.prefix)) if principal.prefix else (principal.role,)


@dataclass(frozen=True, slots=True)
class DataObject:
    """What the data matcher (``m2``) sees of an object: kind, owning tenant, sensitivity."""

    kind: str
    tenant: str
    sensitivity: str
    id: str = ""


def configure(enforcer: casbin.CoreEnforcer) -> casbin.CoreEnforcer:
    """Register what the model needs: ``*`` domains match every tenant, and ``clears()``."""
    # Casbin logs the whole policy (every key's roles among it) at info on each load: not log material.
    logging.getLogger("casbin").setLevel(logging.WARNING)
    enforcer.add_named_domain_matching_func("g", key_match)
    enforcer.add_function("clears", clears)
    return enforcer


def load_enforcer(directory: Path = CASBIN_DIR) -> casbin.Enforcer:
    """An enforcer over the shipped files (unit tests, and tools without a database)."""
    enforcer = casbin.Enforcer(str(directory / "model.conf"), str(directory / "policy.csv"))
    configure(enforcer)
    enforcer.build_role_links()
    return enforcer


async def database_enforcer(engine: AsyncEngine, model: Path = MODEL_PATH) -> casbin.AsyncEnforcer:
    """An enforcer over ``casbin_rule`` in PostgreSQL, loaded; changes through it are saved at once."""
    from casbin_async_sqlalchemy_adapter import Adapter

    # warning=False: the table is the migrations' (0009), not the adapter's create_table.
    enforcer = casbin.AsyncEnforcer(str(model), Adapter(engine, warning=False))
    configure(enforcer)
    await enforcer.load_policy()
    return enforcer


def policy_lines(path: Path = POLICY_PATH) -> list[list[str]]:
    """The lines of a Casbin policy CSV (``[ptype, v0, ...]``), comments and blanks left out."""
    rows: list[list[str]] = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle, skipinitialspace=True):
            if row and not row[0].lstrip().startswith("#"):
                rows.append([cell.strip() for cell in row])
    return rows


class Authorizer:
    """One process's enforcer and its memo of decisions; ``reload`` after a policy change."""

    def __init__(self, enforcer: casbin.CoreEnforcer, *, cache_size: int = 4096) -> None:
        self.enforcer = enforcer
        self._cache_size = cache_size
        self._routes: dict[tuple[tuple[str, ...], str, str, str], bool] = {}
        self._data: dict[tuple[tuple[str, ...], str, str, str, str, str, str], bool] = {}
        self._templates: dict[str, bool] = {}
        self._data_context = enforcer.new_enforce_context("2")
        self.generation = 0
        """How many times the policy was reloaded (or the memo dropped) in this process."""
        self._reload_lock = asyncio.Lock()

    def _uniform(self, template: str) -> bool:
        """Every path of route ``template`` gets the same decision from every route policy: no policy
        resource has a literal where the template has a parameter (``/v1/documents/{id}`` against a
        policy on ``/v1/documents/42``), so decisions may be memoised per template, not per path."""
        uniform = self._templates.get(template)
        if uniform is None:
            segments = template.split("/")
            params = {i for i, part in enumerate(segments) if part.startswith("{")}
            uniform = ":path}" not in template  # a path parameter spans segments: positions shift
            for rule in self.enforcer.get_policy() if uniform else ():
                parts = rule[2].split("/") if len(rule) > 2 else []
                for i, part in enumerate(parts):
                    wildcard = part == "*" or part.startswith(":")
                    literal = not wildcard and "*" not in part
                    if literal and i < len(segments) and i not in params and part != segments[i]:
                        break  # a literal differs from the template's: the rule matches none of its paths
                    if ("*" in part and part != "*") or (i in params and not wildcard):
                        uniform = False
                        break
                    if part == "*":
                        break
                if not uniform:
                    break
            self._templates[template] = uniform
        return uniform

    def allowed(
        self, subjects: Sequence[str], domain: str, path: str, method: str, *, template: str | None = None
    ) -> bool:
        """May any of ``subjects`` ``method`` ``path`` in tenant ``domain``? Memoised.

        With the route's ``template`` (the guard has it), the memo is per template where that is
        sound (``_uniform``): ids in paths would otherwise make nearly every request a miss.
        """
        route = template if template is not None and self._uniform(template) else path
        key = (tuple(subjects), domain, route, method)
        decision = self._routes.get(key)
        if decision is None:
            # The matcher (keyMatch2 + regex, role links) costs more than the rest of a cached
            # authentication: decisions are memoised until the policy changes.
            decision = any(self.enforcer.enforce(s, domain, path, method) for s in subjects)
            if len(self._routes) >= self._cache_size:
                self._routes.clear()
            self._routes[key] = decision
        return decision

    def permits(self, principal: Principal, obj: DataObject, action: str) -> bool:
        """The data decision on one object for ``principal`` (clearance and tenant included). Memoised."""
        subjects = subjects_of(principal)
        key = (subjects, principal.tenant, principal.clearance, obj.kind, obj.tenant, obj.sensitivity, action)
        decision = self._data.get(key)
        if decision is None:
            ctx = self._data_context
            decision = any(
                self.enforcer.enforce(ctx, s, principal.tenant, principal.clearance, obj, action) for s in subjects
            )
            if len(self._data) >= self._cache_size:
                self._data.clear()
            self._data[key] = decision
        return decision

    def allowed_levels(self, principal: Principal, kind: str = "document", action: str = "read") -> list[str]:
        """The sensitivities of its own tenant's ``kind`` objects ``principal`` may ``action``: SQL filters."""
        return [level for level in LEVELS if self.permits(principal, DataObject(kind, principal.tenant, level), action)]

    def invalidate(self) -> None:
        self._routes.clear()
        self._data.clear()
        self._templates.clear()
        self.generation += 1

    async def reload(self) -> None:
        """Load the policy again (from its adapter) and forget every memoised decision."""
        async with self._reload_lock:
            loaded = self.enforcer.load_policy()
            if asyncio.iscoroutine(loaded):
                await loaded
            self.invalidate()


class PolicyWatcher:
    """Reloads an ``Authorizer`` when ``hearth.authz.policy_changed.v1`` is heard, and every ``resync_s``.

    A plain (core NATS) subscription, not a durable consumer: every enforcer must hear every
    change, and one that was away reloads anyway on its next resync.
    """

    def __init__(self, nc: Client, authorizer: Authorizer, *, resync_s: float = 60.0) -> None:
        self._nc = nc
        self._authorizer = authorizer
        self._resync_s = resync_s
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(POLICY_CHANGED, cb=self._on_change)
        self._task = asyncio.create_task(self._resync(), name="authz-resync")

    async def _on_change(self, msg: Msg) -> None:
        try:
            await self._authorizer.reload()
        except Exception as exc:  # the database away: keep the old policy; the resync retries
            log.warning("policy reload failed; keeping the loaded policy", error=repr(exc))
            return
        log.info("policy reloaded", generation=self._authorizer.generation, size=len(msg.data))

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self._resync_s)
            try:
                await self._authorizer.reload()
            except Exception as exc:  # as above
                log.warning("periodic policy reload failed", error=repr(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._subscription is not None:
            await self._subscription.unsubscribe()


# ---- what the admin API manages --------------------------------------------------------------

_ROLE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_MEMBER: Final = re.compile(r"^(key:[A-Za-z0-9]{12}|[a-z][a-z0-9_-]{0,62})$")
_DOMAIN: Final = re.compile(r"^(\*|[A-Za-z0-9._-]{1,100})$")
_RESOURCE: Final = re.compile(r"^/v1(/[A-Za-z0-9_:*-]+)*/?$")
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_METHODS: Final = re.compile(rf"^(\.\*|({'|'.join(METHODS)})(\|({'|'.join(METHODS)}))*)$")


def check_role(name: str) -> str:
    if not _ROLE.match(name):
        raise ValueError(f"role {name!r}: 1-63 of a-z, 0-9, '_' and '-', starting with a letter")
    return name


def check_member(name: str) -> str:
    if not _MEMBER.match(name):
        raise ValueError(f"member {name!r}: a role, or a key as key:<prefix> (12 letters and digits)")
    return name


def check_domain(name: str) -> str:
    if not _DOMAIN.match(name):
        raise ValueError(f"domain {name!r}: a tenant (A-Z a-z 0-9 . _ -) or * for every tenant")
    return name


def check_resource(path: str) -> str:
    if not _RESOURCE.match(path):
        raise ValueError(f"resource {path!r}: a path under /v1, with :name segments and a final * allowed")
    return path


def check_methods(methods: str) -> str:
    if not _METHODS.match(methods):
        raise ValueError(f"methods {methods!r}: methods joined by | (GET|POST), or .* for all")
    return methods


def methods_of(methods: str) -> tuple[str, ...]:
    """The HTTP methods a policy's method pattern names (``.*``: all of them)."""
    return METHODS if methods == ".*" else tuple(methods.split("|"))


@dataclass(frozen=True, slots=True)
class Policy:
    """A route policy: ``role`` may ``methods`` on ``resource`` in ``domain``."""

    role: str
    domain: str
    resource: str
    methods: str

    def rule(self) -> list[str]:
        return [self.role, self.domain, self.resource, self.methods]


@dataclass(frozen=True, slots=True)
class Assignment:
    """``member`` (a key or a role) has ``role`` in ``domain``."""

    member: str
    role: str
    domain: str

    def rule(self) -> list[str]:
        return [self.member, self.role, self.domain]


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    domain: str
    policies: list[Policy]
    inherits: list[str]
    """Roles this role includes (``g, <name>, <parent>, <domain>``)."""


def policies_of(rules: Iterable[Sequence[str]]) -> list[Policy]:
    return [Policy(*r[:4]) for r in rules if len(r) >= 4]


def assignments_of(rules: Iterable[Sequence[str]]) -> list[Assignment]:
    return [Assignment(*r[:3]) for r in rules if len(r) >= 3]


def roles_of(policies: Iterable[Policy], assignments: Iterable[Assignment]) -> list[Role]:
    """Every role named by a policy or an assignment, per domain, with its policies and parents."""
    found: dict[tuple[str, str], Role] = {}

    def role(name: str, domain: str) -> Role:
        return found.setdefault((name, domain), Role(name, domain, [], []))

    for p in policies:
        if not p.role.startswith("key:"):
            role(p.role, p.domain).policies.append(p)
    for a in assignments:
        role(a.role, a.domain)
        if not a.member.startswith("key:"):
            role(a.member, a.domain).inherits.append(a.role)
    return sorted(found.values(), key=lambda r: (r.domain != ANY_DOMAIN, r.domain, r.name))


def visible(domain: str, scope: str | None) -> bool:
    """Whether a rule of ``domain`` is listed for a caller limited to tenant ``scope`` (None: all)."""
    return scope is None or domain in (scope, ANY_DOMAIN)


def as_dict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)
