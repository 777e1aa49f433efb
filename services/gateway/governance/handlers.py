"""``/v1/keys`` (API key lifecycle) and ``/v1/audit`` (the access decisions and key events).

Admin only in the shipped policy (no ``user`` line: deny by default). The tenant of a new key is
the body's, because creating keys for tenants is what an admin does; every other request's tenant
comes from its own verified key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from pydantic import BaseModel, Field, field_validator

from services.gateway.requests import json_body, principal_of, validated
from shared.durations import parse_duration
from shared.errors import InvalidInput
from shared.identity.apikeys import ApiKeyStore, CreatedKey, KeyInfo
from shared.identity.audit import EVENTS, AuditLog, AuditRecord, ChainReport, since_of
from shared.identity.authz import Sensitivity
from shared.identity.policies import PolicyAdmin

PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9]{12}$")


@dataclass(frozen=True)
class GovernanceServices:
    keys: ApiKeyStore
    audit: AuditLog
    policies: PolicyAdmin | None = None
    """The ``/v1/authz`` admin API's logic; without it (file-only policies) those routes are absent."""


def dependencies(services: GovernanceServices) -> dict[str, Provide]:
    provided = {
        "api_keys": Provide(lambda: services.keys, use_cache=True, sync_to_thread=False),
        "audit_log": Provide(lambda: services.audit, use_cache=True, sync_to_thread=False),
    }
    # None without database policies: key rotation then has no assignments to carry over.
    provided["policy_admin"] = Provide(lambda: services.policies, use_cache=True, sync_to_thread=False)
    return provided


def _duration(value: str | None) -> float | None:
    return None if value is None else parse_duration(value)


class _Expiry(BaseModel):
    expires_at: datetime | None = Field(None, description="When the key stops working (ISO 8601).")
    expires_in: str | None = Field(None, description="Or a lifetime from now: 30d, 12h, ...")

    @field_validator("expires_in")
    @classmethod
    def _lifetime(cls, value: str | None) -> str | None:
        seconds = _duration(value)
        if seconds is not None and seconds <= 0:
            raise ValueError("expires_in must be positive")
        return value

    def expiry(self) -> datetime | None:
        if self.expires_at is not None and self.expires_in is not None:
            raise InvalidInput("give expires_at or expires_in, not both")
        if self.expires_in is not None:
            return datetime.now(UTC) + timedelta(seconds=parse_duration(self.expires_in))
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            return self.expires_at.replace(tzinfo=UTC)
        return self.expires_at


class CreateKey(_Expiry):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "user"] = "user"
    tenant: str = Field("default", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    clearance: Sensitivity | None = Field(
        None, description="The most sensitive documents it may read: public, internal (default), confidential, secret."
    )


class RotateKey(_Expiry):
    grace: str = Field("24h", description="How long the old key keeps working: 0s to 30d.")

    @field_validator("grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        parse_duration(value)
        return value


class NewKey(BaseModel):
    """A created or rotated key: ``key`` is shown this once and never again."""

    key: str
    prefix: str
    name: str
    role: str
    tenant: str
    expires_at: datetime | None
    clearance: str = "internal"

    @classmethod
    def of(cls, created: CreatedKey) -> NewKey:
        p = created.principal
        return cls(
            key=created.key,
            prefix=created.prefix,
            name=p.name,
            role=p.role,
            tenant=p.tenant,
            expires_at=created.expires_at,
            clearance=p.clearance,
        )


def _prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.match(prefix):
        raise InvalidInput(f"{prefix!r} is not a key prefix (12 letters and digits)")
    return prefix


class KeysController(Controller):
    path = "/v1/keys"
    tags = ["governance"]

    @get("/", summary="API keys (never their secrets), with state and last use")
    async def list_keys(self, api_keys: ApiKeyStore, tenant: str | None = None) -> list[KeyInfo]:
        return await api_keys.list(tenant=tenant)

    @post("/", summary="Create a key for a tenant; the key is in this answer only", status_code=201)
    async def create_key(self, request: Request[Any, Any, Any], api_keys: ApiKeyStore) -> NewKey:
        body = validated(CreateKey, await json_body(request))
        # Only when asked: the store's own default (internal) otherwise.
        clearance = {"clearance": body.clearance} if body.clearance is not None else {}
        created = await api_keys.create(
            body.name, body.role, tenant=body.tenant, expires_at=body.expiry(), actor=principal_of(request), **clearance
        )
        return NewKey.of(created)

    @post(
        "/{prefix:str}/rotate",
        summary="A replacement key (same name, role, tenant); the old one works for the grace period",
        description="Without expires_at/expires_in the replacement gets the old key's lifetime from now.",
        status_code=201,
    )
    async def rotate_key(
        self, request: Request[Any, Any, Any], api_keys: ApiKeyStore, policy_admin: PolicyAdmin | None, prefix: str
    ) -> NewKey:
        body = validated(RotateKey, await json_body(request))
        expiry = body.expiry()
        created = await api_keys.rotate(
            _prefix(prefix),
            grace_s=parse_duration(body.grace),
            expires_at=expiry if body.expires_at or body.expires_in else "inherit",
            actor=principal_of(request),
        )
        if policy_admin is not None:  # the replacement has the roles the old key was assigned
            await policy_admin.carry_over(principal_of(request), prefix, created.prefix)
        return NewKey.of(created)

    @delete("/{prefix:str}", summary="Revoke a key at once")
    async def revoke_key(self, request: Request[Any, Any, Any], api_keys: ApiKeyStore, prefix: str) -> None:
        await api_keys.revoke(_prefix(prefix), actor=principal_of(request))


@get(
    "/v1/audit",
    tags=["governance"],
    summary="Audit log, newest first: access decisions and key events",
    description="`since`: ISO 8601 time or a duration back from now (1h); `principal`: a key prefix; "
    "`decision`: allow or deny; `event`: access, key.created, key.rotated, key.revoked, authz.changed (a policy, "
    "assignment or role changed), data.read / data.write (a decision on one document), data.search (the "
    "sensitivities a list, search or question was allowed).",
)
async def audit(
    *,
    audit_log: AuditLog,
    since: str | None = None,
    principal: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    event: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> list[AuditRecord]:
    if event is not None and event not in EVENTS:
        raise InvalidInput(f"event must be one of {', '.join(EVENTS)}")
    try:
        when = since_of(since) if since else None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return await audit_log.read(since=when, principal=principal, decision=decision, event=event, limit=limit)


@get(
    "/v1/audit/verify",
    tags=["governance"],
    summary="Check the audit log's hash chain: the first entry altered or deleted, if any",
    description="Recomputes every entry's hash in order. `ok: false` names the first broken entry and why; "
    "`head_hash` is the chain's latest hash (keep it elsewhere to notice a truncated tail later).",
)
async def audit_verify(audit_log: AuditLog) -> ChainReport:
    return await audit_log.verify()
