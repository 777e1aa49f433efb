"""API keys: ``hearth_<prefix>_<secret>``, shown once, stored argon2-hashed.

The prefix (12 characters) identifies the row, so verification hashes once instead of scanning;
the whole key is what argon2 verifies. Keys are random 256-bit secrets, so a short in-process
cache of successful verifications (keyed by the SHA-256 of the presented key) keeps argon2's
deliberate cost off the hot path; revocation and expiry are re-checked when an entry expires
(and an entry never outlives its key's expiry).

Lifecycle: keys belong to a tenant and may expire; ``rotate`` issues a replacement with the same
name, role, tenant and clearance and lets the old key work for a grace period (its ``expires_at`` is cut to
the end of it); ``revoke`` ends a key at once. The last-used time is write-behind: ``verify`` notes
it in memory and ``flush_last_used`` writes them in one statement, off the request path. Every
lifecycle change appends its ``audit_log`` entry in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.errors import Conflict, InvalidInput, NotFound, Unauthorized
from shared.identity.audit import AuditEntry, append
from shared.identity.authz import DEFAULT_CLEARANCE, LEVELS

KEY_PREFIX = "hearth"
_PREFIX_LEN = 12
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ROLES = ("admin", "user")
DEFAULT_GRACE_S = 24 * 3600.0
"""How long a rotated key keeps working beside its replacement, unless the rotation says otherwise."""
MAX_GRACE_S = 30 * 86400.0
KeyState = Literal["active", "rotated", "expired", "revoked"]

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a verified credential."""

    key_id: uuid.UUID
    name: str
    role: str
    tenant: str
    prefix: str = ""
    clearance: str = DEFAULT_CLEARANCE
    """The most sensitive data it may read: public, internal, confidential or secret."""


@dataclass(frozen=True)
class CreatedKey:
    principal: Principal
    key: str  # shown once; only its hash is stored
    prefix: str
    expires_at: datetime | None


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    prefix = _random(_PREFIX_LEN)
    return f"{KEY_PREFIX}_{prefix}_{_random(43)}", prefix


def key_state(
    now: datetime, *, expires_at: datetime | None, revoked_at: datetime | None, rotated_at: datetime | None
) -> KeyState:
    """Where a key stands at ``now``: ``rotated`` is a rotated key still within its grace period."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "rotated" if rotated_at is not None else "active"


def refusal(
    now: datetime, *, expires_at: datetime | None, revoked_at: datetime | None, rotated_at: datetime | None
) -> str | None:
    """Why a correctly signed key is refused at ``now`` (the 401's detail), or ``None`` when it is valid."""
    state = key_state(now, expires_at=expires_at, revoked_at=revoked_at, rotated_at=rotated_at)
    if state == "revoked":
        return "API key revoked"
    if state == "expired" and expires_at is not None:
        when = expires_at.astimezone(UTC).isoformat(timespec="seconds")
        if rotated_at is not None:
            return f"API key was rotated and its grace period ended at {when}: use its replacement"
        return f"API key expired at {when}"
    return None


def rotated_lifetime(now: datetime, *, created_at: datetime, expires_at: datetime | None) -> datetime | None:
    """A replacement's expiry when none is asked for: the old key's lifetime, counted from ``now``."""
    return None if expires_at is None else now + (expires_at - created_at)


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: everything but the secret and its hash."""

    prefix: str
    name: str
    role: str
    tenant: str
    state: KeyState
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None
    replaced_by: str | None
    """Prefix of the key that replaced this one, when rotated."""
    last_used_at: datetime | None
    clearance: str = DEFAULT_CLEARANCE


def parse_prefix(key: str) -> str:
    """The prefix of a well-formed key; ``Unauthorized`` for anything else."""
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != _PREFIX_LEN:
        raise Unauthorized("malformed API key")
    return parts[1]


class ApiKeyStore:
    """API keys in PostgreSQL (table ``api_keys``)."""

    def __init__(self, engine: AsyncEngine, cache_ttl_s: float = 30.0) -> None:
        self._engine = engine
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._used: dict[uuid.UUID, datetime] = {}

    async def _insert(
        self,
        conn: AsyncConnection,
        *,
        name: str,
        role: str,
        tenant: str,
        expires_at: datetime | None,
        clearance: str = DEFAULT_CLEARANCE,
    ) -> CreatedKey:
        key, prefix = new_key()
        digest = await asyncio.to_thread(_hasher.hash, key)
        key_id = uuid.uuid4()
        await conn.execute(
            text(
                "INSERT INTO api_keys (id, prefix, hash, name, role, tenant, expires_at, clearance) "
                "VALUES (:id, :prefix, :hash, :name, :role, :tenant, :expires_at, :clearance)"
            ),
            {
                "id": key_id,
                "prefix": prefix,
                "hash": digest,
                "name": name,
                "role": role,
                "tenant": tenant,
                "expires_at": expires_at,
                "clearance": clearance,
            },
        )
        return CreatedKey(Principal(key_id, name, role, tenant, prefix, clearance), key, prefix, expires_at)

    async def create(
        self,
        name: str,
        role: str,
        *,
        tenant: str = "default",
        expires_at: datetime | None = None,
        actor: Principal | None = None,
        clearance: str = DEFAULT_CLEARANCE,
    ) -> CreatedKey:
        """Create a key; the returned ``key`` is the only time the secret is visible.

        ``clearance``: the most sensitive documents it may read (public, internal, confidential, secret).
        """
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not name.strip():
            raise InvalidInput("a key needs a name")
        if not tenant.strip():
            raise InvalidInput("a key needs a tenant")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidInput("expires_at is in the past")
        if clearance not in LEVELS:
            raise InvalidInput(f"unknown clearance {clearance!r}; clearances: {', '.join(LEVELS)}")
        async with self._engine.begin() as conn:
            created = await self._insert(
                conn, name=name, role=role, tenant=tenant, expires_at=expires_at, clearance=clearance
            )
            reason = f"{role} key {name!r}, clearance {clearance}"
            await append(conn, [_key_event("key.created", actor, created.principal, reason)])
        return created

    async def verify(self, key: str) -> Principal:
        """The principal of a valid key; ``Unauthorized`` naming why (unknown, revoked, expired) otherwise."""
        fingerprint = hashlib.sha256(key.encode()).digest()
        cached = self._cache.get(fingerprint)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            self._used[cached[1].key_id] = datetime.now(UTC)
            return cached[1]
        prefix = parse_prefix(key)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, hash, name, role, tenant, clearance, expires_at, revoked_at, rotated_at "
                        "FROM api_keys WHERE prefix = :p"
                    ),
                    {"p": prefix},
                )
            ).first()
        if row is None:
            raise Unauthorized("unknown API key")
        try:
            await asyncio.to_thread(_hasher.verify, row.hash, key)
        except (VerificationError, InvalidHashError):
            raise Unauthorized("invalid API key") from None
        wall = datetime.now(UTC)
        reason = refusal(wall, expires_at=row.expires_at, revoked_at=row.revoked_at, rotated_at=row.rotated_at)
        if reason is not None:
            raise Unauthorized(reason)
        principal = Principal(row.id, row.name, row.role, row.tenant, prefix, row.clearance)
        ttl = self._cache_ttl_s
        if row.expires_at is not None:
            ttl = min(ttl, (row.expires_at - wall).total_seconds())
        self._cache[fingerprint] = (now + ttl, principal)
        self._used[row.id] = wall
        return principal

    async def flush_last_used(self) -> int:
        """Write the last-used times noted since the previous flush; how many keys were updated."""
        used, self._used = self._used, {}
        if not used:
            return 0
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, :at), :at) WHERE id = :id"
                    ),
                    [{"id": key_id, "at": at} for key_id, at in used.items()],
                )
        except BaseException:
            for key_id, at in used.items():  # kept for the next round, unless a newer use was noted
                self._used.setdefault(key_id, at)
            raise
        return len(used)

    async def rotate(
        self,
        prefix: str,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        expires_at: datetime | Literal["inherit"] | None = "inherit",
        actor: Principal | None = None,
    ) -> CreatedKey:
        """A replacement for the active key ``prefix`` (same name, role, tenant); the old one works ``grace_s`` more.

        ``expires_at="inherit"`` gives the replacement the old key's lifetime, counted from now.
        """
        if not 0 <= grace_s <= MAX_GRACE_S:
            raise InvalidInput(f"the grace period must be between 0s and {MAX_GRACE_S / 86400:.0f}d")
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            old = (
                await conn.execute(
                    text(
                        "SELECT id, name, role, tenant, clearance, created_at, expires_at, revoked_at, rotated_at "
                        "FROM api_keys WHERE prefix = :p FOR UPDATE"
                    ),
                    {"p": prefix},
                )
            ).first()
            if old is None:
                raise NotFound(f"no API key with prefix {prefix!r}")
            state = key_state(now, expires_at=old.expires_at, revoked_at=old.revoked_at, rotated_at=old.rotated_at)
            if state != "active":
                raise Conflict(f"API key {prefix!r} is {state}: only an active key can be rotated")
            if expires_at == "inherit":
                expires_at = rotated_lifetime(now, created_at=old.created_at, expires_at=old.expires_at)
            created = await self._insert(
                conn,
                name=old.name,
                role=old.role,
                tenant=old.tenant,
                expires_at=expires_at,
                clearance=old.clearance,
            )
            grace_end = now + timedelta(seconds=grace_s)
            if old.expires_at is not None:
                grace_end = min(grace_end, old.expires_at)
            await conn.execute(
                text("UPDATE api_keys SET rotated_at = :now, replaced_by = :new, expires_at = :end WHERE id = :id"),
                {"now": now, "new": created.principal.key_id, "end": grace_end, "id": old.id},
            )
            subject = Principal(old.id, old.name, old.role, old.tenant, prefix)
            reason = f"replaced by {created.prefix}; valid until {grace_end.isoformat(timespec='seconds')}"
            await append(conn, [_key_event("key.rotated", actor, subject, reason)])
        self._cache.clear()
        return created

    async def revoke(self, prefix: str, *, actor: Principal | None = None) -> None:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE api_keys SET revoked_at = now() WHERE prefix = :p AND revoked_at IS NULL "
                        "RETURNING id, name, role, tenant"
                    ),
                    {"p": prefix},
                )
            ).first()
            if row is None:
                raise NotFound(f"no active API key with prefix {prefix!r}")
            subject = Principal(row.id, row.name, row.role, row.tenant, prefix)
            await append(conn, [_key_event("key.revoked", actor, subject, "revoked")])
        self._cache.clear()

    async def list(self, *, tenant: str | None = None) -> list[KeyInfo]:
        """Every key (of ``tenant`` when given), oldest first; never a secret or a hash."""
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT k.prefix, k.name, k.role, k.tenant, k.created_at, k.expires_at, k.revoked_at, "
                        "k.rotated_at, k.last_used_at, k.clearance, r.prefix AS replaced_by FROM api_keys k "
                        "LEFT JOIN api_keys r ON r.id = k.replaced_by "
                        "WHERE CAST(:tenant AS text) IS NULL OR k.tenant = :tenant ORDER BY k.created_at, k.prefix"
                    ),
                    {"tenant": tenant},
                )
            ).all()
        return [
            KeyInfo(
                prefix=r.prefix,
                name=r.name,
                role=r.role,
                tenant=r.tenant,
                state=key_state(now, expires_at=r.expires_at, revoked_at=r.revoked_at, rotated_at=r.rotated_at),
                created_at=r.created_at,
                expires_at=r.expires_at,
                revoked_at=r.revoked_at,
                rotated_at=r.rotated_at,
                replaced_by=r.replaced_by,
                last_used_at=r.last_used_at,
                clearance=r.clearance,
            )
            for r in rows
        ]

    async def tenant_of(self, prefix: str) -> str | None:
        """The tenant of the key ``prefix`` (any state), or ``None`` when there is no such key."""
        async with self._engine.connect() as conn:
            tenant = (
                await conn.execute(text("SELECT tenant FROM api_keys WHERE prefix = :p"), {"p": prefix})
            ).scalar_one_or_none()
        return None if tenant is None else str(tenant)

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one())


def _key_event(event: str, actor: Principal | None, subject: Principal, reason: str) -> AuditEntry:
    return AuditEntry(
        event=event,
        decision="allow",
        reason=reason,
        principal=actor.prefix if actor else None,
        tenant=subject.tenant,
        role=actor.role if actor else None,
        subject=subject.prefix,
    )
