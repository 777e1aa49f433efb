"""Authentication (API keys) and authorisation (Casbin) for every route.

One global guard: a route opts out only with ``opt={"public": True}`` (health, API schema).
Everything else needs a valid key and a Casbin allow for (role, path, method); deny by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import casbin
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from shared.errors import Forbidden, Unauthorized
from shared.identity.apikeys import ApiKeyStore, Principal
from shared.settings import REPO_ROOT

CASBIN_DIR = REPO_ROOT / "infra" / "casbin"
PUBLIC_PREFIXES = ("/schema",)
"""The API documents and their assets; everything else is checked route by route."""


def load_enforcer(directory: Path = CASBIN_DIR) -> casbin.Enforcer:
    return casbin.Enforcer(str(directory / "model.conf"), str(directory / "policy.csv"))


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


class AccessGuard:
    """Litestar guard: authenticate, then ask Casbin. Sets ``connection.state.principal``."""

    def __init__(self, keys: ApiKeyStore, enforcer: casbin.Enforcer, decision_cache_size: int = 4096) -> None:
        self._keys = keys
        self._enforcer = enforcer
        # Policies are static within a process today, and Casbin's matcher (keyMatch2 + regex)
        # costs more than the rest of a cached authentication: decisions are memoised.
        self._decisions: dict[tuple[str, str, str], bool] = {}
        self._decision_cache_size = decision_cache_size

    def allowed(self, role: str, path: str, method: str) -> bool:
        key = (role, path, method)
        decision = self._decisions.get(key)
        if decision is None:
            decision = bool(self._enforcer.enforce(role, path, method))
            if len(self._decisions) >= self._decision_cache_size:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if handler.opt.get("public") or connection.url.path.startswith(PUBLIC_PREFIXES):
            return
        key = presented_key(connection)
        if not key:
            raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
        principal: Principal = await self._keys.verify(key)
        path, method = connection.url.path, connection.scope.get("method", "GET")
        if not self.allowed(principal.role, path, method):
            raise Forbidden(f"role {principal.role!r} may not {method} {path}")
        connection.state.principal = principal
