"""Tenant keys as the rotation schedule sees them: which exist, how old their newest version is, rotate.

The governance service logs in with its own AppRole, whose token carries ``hearth-service`` (data
keys, decrypt, rewrap) and ``hearth-governance`` (``infra/openbao/hearth-governance.hcl``: list
and read the transit keys, rotate tenant keys; never configure or delete one, never rotate the
payload key). Crypto-shredding stays with the ``keyadmin`` AppRole alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.crypto.columns import KeyHeader
from shared.crypto.sealing import NONCE_PREFIX_BYTES, SealHeader
from shared.crypto.transit import KEY_PREFIX, KeyAdmin, KeyDestroyed, TransitKeyring, tenant_key_name
from shared.settings import HearthSettings

SERVICE_ROLE = "governance"


def _created(value: Any) -> datetime | None:
    """A key version's creation time as transit reports it (unix seconds, RFC 3339, or an object)."""
    if isinstance(value, dict):
        value = value.get("creation_time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


class TenantKeys(KeyAdmin):
    """``KeyAdmin`` logged in as the governance service (rotation only; ``shred`` is refused by policy)."""

    @classmethod
    def for_service(cls, settings: HearthSettings) -> TenantKeys:
        role_id, secret_id = cls._credentials(settings, SERVICE_ROLE)
        return cls(settings.openbao_url, role_id, secret_id)

    async def tenants(self) -> list[str]:
        """Every tenant that has a transit key."""
        resp = await self._call("GET", f"{self.mount}/keys?list=true")
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            raise self._fail("list the transit keys", resp)
        names = resp.json()["data"].get("keys") or []
        return sorted(n[len(KEY_PREFIX) :] for n in names if isinstance(n, str) and n.startswith(KEY_PREFIX))

    async def newest(self, tenant: str) -> tuple[int, datetime | None]:
        """(newest version, when it was made) of the tenant's key; ``KeyDestroyed`` without one."""
        name = tenant_key_name(tenant)
        resp = await self._call("GET", f"{self.mount}/keys/{name}")
        if resp.status_code == 404:
            raise KeyDestroyed(f"the encryption key {name} does not exist")
        if resp.status_code != 200:
            raise self._fail(f"read the key {name}", resp)
        data = resp.json()["data"]
        version = int(data["latest_version"])
        return version, _created((data.get("keys") or {}).get(str(version)))


async def rewrap_row_key(keyring: TransitKeyring, stored: str, newest: int) -> str | None:
    """A column data key header (``shared.crypto.columns``) rewrapped to ``newest``; ``None`` when it is already."""
    header = KeyHeader.from_json(stored)
    if header.key_version >= newest:
        return None
    # TransitKeyring.rewrap works on a blob's header; only its wrapped key matters to transit.
    probe = SealHeader(key_name=header.key_name, wrapped_key=header.wrapped_key, nonce_prefix=bytes(NONCE_PREFIX_BYTES))
    fresh = await keyring.rewrap(probe)
    return KeyHeader(key_name=header.key_name, wrapped_key=fresh.wrapped_key).to_json()
