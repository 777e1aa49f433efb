"""Authentication (API keys, OIDC tokens) and authorisation (Casbin) for every route.

One global guard: a route opts out only with ``opt={"public": True}`` (health, API schema).
Everything else needs a valid key and a Casbin allow for (the key's role or the key, its tenant,
path, method); deny by default. The tenant is the verified key's, never a parameter. With an OIDC
issuer configured, a credential shaped like a JWT is verified as that issuer's access token
(``shared.identity.oidc``) and gives the same kind of principal; without one it is refused as a
malformed key. Each decision,
allowed or denied, goes to the audit log (queued, written in batches by ``run``); so do the data
decisions routes make through ``audit_data``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import casbin
import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from opentelemetry import trace
from sqlalchemy.exc import SQLAlchemyError

from services.gateway.requests import tenant_scope
from shared.crypto.payload_codec import CODEC_PATH
from shared.db.tenancy import ALL_TENANTS, set_request_tenant
from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.identity.apikeys import ApiKeyStore, Principal, parse_prefix
from shared.identity.audit import AuditEntry, AuditLog
from shared.identity.authz import Authorizer, DataObject, load_enforcer, subjects_of
from shared.identity.oidc import OidcVerifier, looks_like_jwt

__all__ = ["AccessGuard", "load_enforcer"]

PUBLIC_PREFIXES = ("/schema",)
"""The API documents and their assets; everything else is checked route by route."""

CODEC_SESSION_COOKIE = "hearth_codec"
"""The cookie of a codec session (``POST /v1/codec/session``): an admin's key for the Temporal UI."""

log = structlog.get_logger("gateway.auth")


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    key = connection.headers.get("x-api-key")
    if key is None and connection.url.path.startswith(CODEC_PATH + "/"):
        # The Temporal UI cannot send a header: a codec session's cookie, on the codec routes only
        # (services/gateway/workflows/codec.py); it is verified like any key.
        key = connection.cookies.get(CODEC_SESSION_COOKIE)
    return key


def key_prefix(key: str) -> str | None:
    """The prefix of a presented key for the audit log (an identifier, not a secret), if well formed."""
    try:
        return parse_prefix(key)
    except Unauthorized:
        return None


def trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class AccessGuard:
    """Litestar guard: authenticate, then ask Casbin. Sets ``connection.state.principal``."""

    def __init__(
        self,
        keys: ApiKeyStore,
        enforcer: casbin.CoreEnforcer | Authorizer,
        decision_cache_size: int = 4096,
        *,
        audit: AuditLog | None = None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._keys = keys
        self._oidc = oidc
        # Decisions are memoised in the Authorizer, which drops them when the policy changes.
        self.authorizer = (
            enforcer if isinstance(enforcer, Authorizer) else Authorizer(enforcer, cache_size=decision_cache_size)
        )
        self._audit = audit

    def allowed(self, principal: Principal, path: str, method: str, template: str | None = None) -> bool:
        return self.authorizer.allowed(subjects_of(principal), principal.tenant, path, method, template=template)

    def permits(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        principal: Principal,
        obj: DataObject,
        action: str,
    ) -> bool:
        """The data decision on ``obj`` (tenant, clearance, sensitivity), audited either way."""
        allowed = self.authorizer.permits(principal, obj, action)
        if allowed:
            reason = f"clearance {principal.clearance} >= {obj.sensitivity}"
        elif obj.tenant != principal.tenant and not self.authorizer.permits(
            principal, DataObject(obj.kind, principal.tenant, obj.sensitivity), action
        ):
            reason = f"clearance {principal.clearance} < {obj.sensitivity}, and another tenant's"
        elif obj.tenant != principal.tenant:
            reason = "another tenant's"
        else:
            reason = f"clearance {principal.clearance} < {obj.sensitivity}"
        self.audit_data(connection, principal, f"data.{action}", allowed, reason, subject=f"{obj.kind}:{obj.id}")
        return allowed

    def audit_data(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        principal: Principal,
        event: str,
        allowed: bool,
        reason: str,
        *,
        subject: str | None = None,
    ) -> None:
        """Record a decision on data (a read, a write, a search's allowed levels)."""
        self._record(
            connection, "allow" if allowed else "deny", reason, principal=principal, event=event, subject=subject
        )

    def _record(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        decision: str,
        reason: str,
        *,
        prefix: str | None = None,
        principal: Principal | None = None,
        event: str = "access",
        subject: str | None = None,
    ) -> None:
        if self._audit is None:
            return
        request_id = connection.headers.get("x-request-id")
        self._audit.record(
            AuditEntry(
                event=event,
                decision="allow" if decision == "allow" else "deny",
                reason=reason,
                principal=principal.prefix if principal else prefix,
                tenant=principal.tenant if principal else None,
                role=principal.role if principal else None,
                method=connection.scope.get("method", "GET"),
                # The template, not the raw path: ids in paths are data, and the audit rows stay groupable.
                route=connection.scope.get("path_template") or connection.url.path,
                subject=subject,
                request_id=request_id[:128] if request_id else None,
                trace_id=trace_id(),
            )
        )

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if handler.opt.get("public") or connection.url.path.startswith(PUBLIC_PREFIXES):
            return
        key = presented_key(connection)
        if not key:
            self._record(connection, "deny", "no API key")
            raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
        principal = await self._authenticate(connection, key)
        path, method = connection.url.path, connection.scope.get("method", "GET")
        if not self.allowed(principal, path, method, connection.scope.get("path_template")):
            self._record(connection, "deny", f"no policy lets role {principal.role!r} {method}", principal=principal)
            raise Forbidden(f"role {principal.role!r} may not {method} {path}")
        self._record(connection, "allow", "policy", principal=principal)
        connection.state.principal = principal
        # Row-level security: this request's transactions see its tenant's rows only (shared.db.tenancy).
        set_request_tenant(tenant_scope(principal) or ALL_TENANTS)

    async def _authenticate(self, connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Principal:
        """The principal of a presented key or token; a refusal is audited (never with the credential)."""
        if self._oidc is not None and looks_like_jwt(key):
            try:
                return await self._oidc.verify(key)
            except (Unauthorized, Unavailable) as exc:
                # No principal: the token's own claims are unverified, so none of them is recorded.
                self._record(connection, "deny", f"OIDC token: {exc.detail}")
                raise
        try:
            return await self._keys.verify(key)
        except Unauthorized as exc:
            self._record(connection, "deny", exc.detail, prefix=key_prefix(key))
            raise

    async def flush(self) -> None:
        """Write the queued audit entries and the keys' last-used times."""
        if self._audit is not None:
            await self._audit.flush()
        await self._keys.flush_last_used()

    async def run(self, interval_s: float = 1.0) -> None:
        """The write-behind loop, until cancelled; a last flush on the way out."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except (SQLAlchemyError, OSError) as exc:  # the database is away: keep the entries, retry
                    log.warning("audit/last-used write failed; retrying", error=str(exc))
        finally:
            try:
                await asyncio.shield(self.flush())
            except (SQLAlchemyError, OSError) as exc:
                log.warning("last audit/last-used write failed", error=str(exc))
