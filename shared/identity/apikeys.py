"""API keys: ``hearth_<prefix>_<secret>``, shown once, stored argon2-hashed.

The prefix (12 characters) identifies the row, so verification hashes once instead of scanning;
the whole key is what argon2 verifies. Keys are random 256-bit secrets, so a short in-process
cache of successful verifications (keyed by the SHA-256 of the presented key) keeps argon2's
deliberate cost off the hot path; revocation and expiry are re-checked when an entry expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.errors import InvalidInput, NotFound, Unauthorized

KEY_PREFIX = "hearth"
_PREFIX_LEN = 12
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ROLES = ("admin", "user")

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a verified credential."""

    key_id: uuid.UUID
    name: str
    role: str
    tenant: str


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

    async def create(
        self, name: str, role: str, *, tenant: str = "default", expires_at: datetime | None = None
    ) -> CreatedKey:
        """Create a key; the returned ``key`` is the only time the secret is visible."""
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not name.strip():
            raise InvalidInput("a key needs a name")
        key, prefix = new_key()
        digest = await asyncio.to_thread(_hasher.hash, key)
        key_id = uuid.uuid4()
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, prefix, hash, name, role, tenant, expires_at) "
                    "VALUES (:id, :prefix, :hash, :name, :role, :tenant, :expires_at)"
                ),
                {
                    "id": key_id,
                    "prefix": prefix,
                    "hash": digest,
                    "name": name,
                    "role": role,
                    "tenant": tenant,
                    "expires_at": expires_at,
                },
            )
        return CreatedKey(Principal(key_id, name, role, tenant), key, prefix, expires_at)

    async def verify(self, key: str) -> Principal:
        """The principal of a valid key; ``Unauthorized`` (no detail on which check failed) otherwise."""
        fingerprint = hashlib.sha256(key.encode()).digest()
        cached = self._cache.get(fingerprint)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        prefix = parse_prefix(key)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, hash, name, role, tenant, expires_at, revoked_at FROM api_keys WHERE prefix = :p"),
                    {"p": prefix},
                )
            ).first()
        if row is None:
            raise Unauthorized("unknown API key")
        try:
            await asyncio.to_thread(_hasher.verify, row.hash, key)
        except (VerificationError, InvalidHashError):
            raise Unauthorized("invalid API key") from None
        if row.revoked_at is not None:
            raise Unauthorized("API key revoked")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise Unauthorized("API key expired")
        principal = Principal(row.id, row.name, row.role, row.tenant)
        self._cache[fingerprint] = (now + self._cache_ttl_s, principal)
        async with self._engine.begin() as conn:
            await conn.execute(text("UPDATE api_keys SET last_used_at = now() WHERE id = :id"), {"id": row.id})
        return principal

    async def revoke(self, prefix: str) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                text("UPDATE api_keys SET revoked_at = now() WHERE prefix = :p AND revoked_at IS NULL"), {"p": prefix}
            )
        if result.rowcount == 0:
            raise NotFound(f"no active API key with prefix {prefix!r}")
        self._cache.clear()

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one())
