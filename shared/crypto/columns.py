"""Column encryption: database values sealed under per-row data keys, and a blind index for search.

Same envelope scheme as blobs (``shared.crypto``): a row (a document) gets one data key from
transit ``datakey`` under its tenant's key; only the wrapped key is stored, in the row, as a
``KeyHeader`` (JSON: format, algorithm, key name and version, wrapped key). Each value of the row
is then sealed locally with AES-256-GCM (``seal_value``): ``FORMAT ‖ 12-byte random nonce ‖
ciphertext ‖ tag``, with the associated data ``hearth-column/v1 ‖ row ‖ column``, so a value
cannot be moved to another row or column without the tag failing. Random nonces (not counters)
because a row's values are rewritten when a document is processed again under the same key.

Search cannot run over ciphertext, so the lexical index is *blind*: each term is replaced by a
keyed hash (``TermHasher``: HMAC-SHA256 under the tenant's index key, truncated to 120 bits,
base32), and queries are hashed the same way; equality (and ranking by term frequency and
proximity) still works, the words do not appear. The index key is itself a transit data key of
the tenant, kept wrapped in ``tenant_index_keys`` and unwrapped once per ``index_ttl_s`` (hashing
a document's terms makes no OpenBao call). Deterministic hashes do show which chunks share a
term and how often a term occurs: that is the price of searching without the plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.crypto.sealing import ALGORITHM, KEY_BYTES
from shared.crypto.transit import TransitKeyring
from shared.errors import PermanentFailure

FORMAT: Final = b"\x01"
NONCE_BYTES: Final = 12
HASH_BYTES: Final = 15
_AAD_PREFIX: Final = b"hearth-column/v1"
_INDEX_DOMAIN: Final = b"hearth-index/v1"


def _invalid(reason: str) -> PermanentFailure:
    return PermanentFailure(f"invalid column key header: {reason}", code="seal-header-invalid")


@dataclass(frozen=True)
class KeyHeader:
    """A row's data key as stored: wrapped by the tenant's transit key (nothing in it is secret)."""

    key_name: str
    wrapped_key: str

    @property
    def key_version(self) -> int:
        """The transit key version that wrapped the data key (``vault:v<N>:…``)."""
        parts = self.wrapped_key.split(":", 2)
        if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v") or not parts[1][1:].isdigit():
            raise _invalid("the wrapped key is not a transit ciphertext")
        return int(parts[1][1:])

    def to_json(self) -> str:
        """Compact JSON: ``v`` (format), ``alg``, ``key``, ``kv`` (key version), ``wk`` (wrapped key)."""
        body = {"v": 1, "alg": ALGORITHM, "key": self.key_name, "kv": self.key_version, "wk": self.wrapped_key}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, value: str) -> KeyHeader:
        """Parse and check a stored header; ``PermanentFailure`` (``seal-header-invalid``) when it is not one."""
        try:
            raw: Any = json.loads(value)
        except ValueError:
            raise _invalid("not JSON") from None
        if not isinstance(raw, dict) or raw.get("v") != 1 or raw.get("alg") != ALGORITHM:
            raise _invalid("unsupported format or algorithm")
        key, wrapped = raw.get("key"), raw.get("wk")
        if not isinstance(key, str) or not isinstance(wrapped, str):
            raise _invalid("key and wk must be strings")
        header = cls(key_name=key, wrapped_key=wrapped)
        if raw.get("kv") != header.key_version:
            raise _invalid("kv does not match the wrapped key's version")
        return header


def _aad(row: str, column: str) -> bytes:
    return _AAD_PREFIX + b"\x00" + row.encode() + b"\x00" + column.encode()


def _cipher(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise ValueError(f"an AES-256 key has {KEY_BYTES} bytes, not {len(key)}")
    return AESGCM(key)


def seal_value(key: bytes, row: str, column: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed for ``column`` of ``row`` (the row's data key ``key``)."""
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT + nonce + _cipher(key).encrypt(nonce, plaintext, _aad(row, column))


def open_value(key: bytes, row: str, column: str, sealed: bytes) -> bytes:
    """The plaintext of a ``seal_value`` value; ``PermanentFailure`` ``seal-tampered`` when it does not verify
    (altered, or sealed for another row or column, or under another key)."""
    if sealed[:1] != FORMAT or len(sealed) < 1 + NONCE_BYTES + 16:
        raise PermanentFailure(f"sealed value of {column} is not in a known format", code="seal-header-invalid")
    try:
        return _cipher(key).decrypt(sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :], _aad(row, column))
    except InvalidTag:
        raise PermanentFailure(
            f"sealed value of {column} failed authentication (altered, or not this row's)", code="seal-tampered"
        ) from None


def seal_json(key: bytes, row: str, column: str, value: Any) -> bytes:
    """``value`` as compact JSON, sealed (``seal_value``)."""
    return seal_value(key, row, column, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def open_json(key: bytes, row: str, column: str, sealed: bytes) -> Any:
    """The value of a ``seal_json`` value."""
    return json.loads(open_value(key, row, column, sealed))


class TermHasher:
    """Index terms as keyed hashes (``key``), or as themselves when column encryption is off (``None``)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    @property
    def blind(self) -> bool:
        """True when terms are hashed."""
        return self._key is not None

    def _hash(self, kind: bytes, value: str) -> str:
        if self._key is None:
            return value
        digest = hmac.new(self._key, _INDEX_DOMAIN + b"\x00" + kind + b"\x00" + value.encode(), hashlib.sha256)
        return base64.b32encode(digest.digest()[:HASH_BYTES]).decode().lower()

    def term(self, word: str) -> str:
        """A (normalised) search or classifier term."""
        return self._hash(b"term", word)

    def entity(self, field: str, key: str, value: str) -> str:
        """An entity's normalised value: ``field``'s ``key`` is ``value`` (the entity filter)."""
        return self._hash(b"entity", f"{field}\x00{key}\x00{value}") if self._key else f"{field}:{key}={value}"


class ColumnKeys:
    """Data keys of rows and index keys of tenants, from transit; ``keyring=None``: encryption off."""

    def __init__(self, engine: AsyncEngine, keyring: TransitKeyring | None, *, index_ttl_s: float = 600.0) -> None:
        self._engine = engine
        self.keyring = keyring
        self.index_ttl_s = index_ttl_s
        self._hashers: dict[str, tuple[float, TermHasher]] = {}

    @property
    def enabled(self) -> bool:
        """True when values are sealed and the index is blind."""
        return self.keyring is not None

    async def new_row_key(self, tenant: str) -> tuple[KeyHeader, bytes]:
        """A fresh data key under ``tenant``'s transit key: (what to store, the plaintext key)."""
        if self.keyring is None:
            raise PermanentFailure("column encryption is off: no data keys", code="encryption-off")
        key = await self.keyring.new_data_key(tenant)
        return KeyHeader(key_name=key.key_name, wrapped_key=key.wrapped), key.plaintext

    async def row_key(self, header: KeyHeader) -> bytes:
        """The plaintext data key of a stored header (transit ``decrypt``, cached by the keyring)."""
        if self.keyring is None:
            raise PermanentFailure("sealed values need OpenBao, and this process has no keyring", code="encryption-off")
        return await self.keyring.unwrap_key(header.key_name, header.wrapped_key)

    async def hasher(self, tenant: str) -> TermHasher:
        """The tenant's term hasher; its index key is made on the tenant's first use."""
        if self.keyring is None:
            return TermHasher(None)
        hit = self._hashers.get(tenant)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        stored = await self._stored_index_key(tenant)
        if stored is None:
            header, _ = await self.new_row_key(tenant)
            async with self._engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO tenant_index_keys (tenant, data_key) VALUES (:t, :k) "
                        "ON CONFLICT (tenant) DO NOTHING"
                    ),
                    {"t": tenant, "k": header.to_json()},
                )
            stored = await self._stored_index_key(tenant)  # the winner's, when two made one at once
            if stored is None:
                raise PermanentFailure(f"the index key of {tenant!r} was not stored", code="index-key-missing")
        hasher = TermHasher(await self.row_key(KeyHeader.from_json(stored)))
        self._hashers[tenant] = (time.monotonic() + self.index_ttl_s, hasher)
        return hasher

    async def hashers(self) -> list[TermHasher]:
        """Every tenant's hasher (a query over all tenants, an admin's, hashes its terms for each)."""
        if self.keyring is None:
            return [TermHasher(None)]
        async with self._engine.connect() as conn:
            tenants = [r[0] for r in await conn.execute(text("SELECT tenant FROM tenant_index_keys ORDER BY tenant"))]
        return [await self.hasher(t) for t in tenants]

    async def _stored_index_key(self, tenant: str) -> str | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(text("SELECT data_key FROM tenant_index_keys WHERE tenant = :t"), {"t": tenant})
            ).scalar_one_or_none()
        return str(value) if value is not None else None
