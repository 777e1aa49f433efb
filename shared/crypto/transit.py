"""OpenBao (Vault API) transit as the key service of envelope encryption.

``TransitKeyring`` is what services use: it logs in with the service's AppRole (credentials in
``secrets/approle-<service>.json``, written by setup; never the root token), renews its token
before it expires and logs in again when renewal is refused, and calls only ``datakey``,
``decrypt`` and ``rewrap`` on ``hearth-tenant-*`` keys — plus ``encrypt``, through which a tenant's
key is created on its first use — which is all the ``hearth-service`` policy grants
(``infra/openbao/``). Unwrapped data
keys are cached briefly (bounded, short TTL) so reading the many chunks of one object, or a burst
of reads, does not call OpenBao each time.

``KeyAdmin`` holds the operations no service may do: rotating a tenant key and destroying it
(crypto-shredding). It logs in with the ``keyadmin`` AppRole (policy ``hearth-keyadmin``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import ssl
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import httpx

from shared.crypto.sealing import NONCE_PREFIX_BYTES, SealHeader, seal_object, split_sealed, unseal_object
from shared.errors import InvalidInput, PermanentFailure, Unavailable
from shared.logging import get_logger
from shared.settings import HearthSettings
from shared.tls import client_context

log = get_logger(__name__)

KEY_PREFIX: Final = "hearth-tenant-"
KEY_TYPE: Final = "aes256-gcm96"
PAYLOAD_KEY: Final = "hearth-payloads"
"""The platform key wrapping the data keys of Temporal workflow payloads (made at setup, never by a service)."""
KEYADMIN_ROLE: Final = "keyadmin"
"""The AppRole (``secrets/approle-keyadmin.json``) of key rotation and shredding."""
_TENANT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_MISSING: Final = "encryption key not found"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Built once: a client loading the CA bundle for every transit call cost ~100 ms on a busy box.
    return httpx.create_ssl_context()


def tenant_key_name(tenant: str) -> str:
    """The transit key of ``tenant``'s data: ``hearth-tenant-<tenant>``."""
    if not _TENANT.match(tenant):
        raise InvalidInput(f"invalid tenant {tenant!r} for an encryption key")
    return KEY_PREFIX + tenant


class KeyDestroyed(PermanentFailure):
    """The transit key that wrapped a data key no longer exists: the data is crypto-shredded."""

    code = "key-destroyed"
    title = "Encryption key destroyed"


@dataclass(frozen=True)
class DataKey:
    """A fresh data key: the plaintext for this process only, the wrapped form to store."""

    key_name: str
    plaintext: bytes
    wrapped: str

    def header(self) -> SealHeader:
        """A new header for one object sealed with this key (fresh random nonce prefix)."""
        return SealHeader(key_name=self.key_name, wrapped_key=self.wrapped, nonce_prefix=os.urandom(NONCE_PREFIX_BYTES))


class _BaoSession:
    """An AppRole login to OpenBao: token kept, renewed at two thirds of its TTL, re-login if refused."""

    def __init__(
        self,
        url: str,
        role_id: str,
        secret_id: str,
        *,
        mount: str = "transit",
        timeout: float = 10.0,
        verify: ssl.SSLContext | None = None,
    ):
        self.url = url.rstrip("/")
        self._verify = verify
        self.mount = mount
        self.timeout = timeout
        self._role_id = role_id
        self._secret_id = secret_id
        self._token: str | None = None
        self._renew_at = 0.0
        self._renewable = False
        self._lock = asyncio.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def _credentials(settings: HearthSettings, role: str) -> tuple[str, str]:
        creds = json.loads(settings.read_secret(f"approle-{role}.json"))
        return creds["role_id"], creds["secret_id"]

    async def _login(self, client: httpx.AsyncClient) -> None:
        resp = await client.post(
            f"{self.url}/v1/auth/approle/login", json={"role_id": self._role_id, "secret_id": self._secret_id}
        )
        if resp.status_code != 200:
            raise Unavailable(f"OpenBao AppRole login failed ({resp.status_code}): {resp.text[:200]}")
        self._accept(resp.json()["auth"])

    def _accept(self, auth: dict[str, Any]) -> None:
        self._token = auth["client_token"]
        lease = float(auth.get("lease_duration") or 0)
        self._renewable = bool(auth.get("renewable"))
        self._renew_at = time.monotonic() + (lease * 2 / 3 if lease else float("inf"))

    async def _ensure_token(self, client: httpx.AsyncClient) -> str:
        async with self._lock:
            if self._token is not None and time.monotonic() >= self._renew_at:
                renewed = False
                if self._renewable:
                    resp = await client.post(
                        f"{self.url}/v1/auth/token/renew-self", headers={"X-Vault-Token": self._token}
                    )
                    if resp.status_code == 200:
                        auth = resp.json()["auth"]
                        renewed = float(auth.get("lease_duration") or 0) > 0
                        if renewed:
                            self._accept(auth)
                if not renewed:  # past its max TTL or revoked: a fresh login
                    self._token = None
            if self._token is None:
                await self._login(client)
            if self._token is None:
                raise Unavailable("OpenBao login returned no token")
            return self._token

    def _client(self) -> httpx.AsyncClient:
        # One pooled client per event loop: a client per call paid a TCP and TLS handshake on
        # every transit call (bench_ingestion_encryption: two thirds of encryption's cost).
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(timeout=self.timeout, verify=self._verify or _ssl_context())
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this event loop's connections (others close with their loop)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One request with the session token; a 403 from an expired token gets one fresh login.

        A pooled connection the server closed meanwhile is retried once on a new one.
        """
        client = self._client()
        try:
            for attempt in (1, 2):
                token = await self._ensure_token(client)
                resp = await self._send(client, method, path, body, token)
                if resp.status_code == 403 and attempt == 1:
                    self._token = None
                    continue
                return resp
        except httpx.HTTPError as exc:
            raise Unavailable(f"OpenBao at {self.url} is unreachable: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, token: str
    ) -> httpx.Response:
        url, headers = f"{self.url}/v1/{path}", {"X-Vault-Token": token}
        try:
            return await client.request(method, url, json=body, headers=headers)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:  # a pooled connection closed meanwhile
            log.info("OpenBao connection dropped; retrying on a new one", error=repr(exc))
            return await client.request(method, url, json=body, headers=headers)

    @staticmethod
    def _errors(resp: httpx.Response) -> str:
        try:
            return "; ".join(resp.json().get("errors") or []) or resp.text[:200]
        except ValueError:
            return resp.text[:200]

    def _fail(self, what: str, resp: httpx.Response) -> Exception:
        reason = self._errors(resp)
        if resp.status_code >= 500 or resp.status_code == 429:
            return Unavailable(f"OpenBao could not {what} ({resp.status_code}): {reason}")
        return PermanentFailure(f"OpenBao refused to {what} ({resp.status_code}): {reason}", code="transit-refused")


class TransitKeyring(_BaoSession):
    """Data keys under tenant keys, their unwrapping (cached briefly) and rewrapping; see the module docstring."""

    def __init__(
        self,
        url: str,
        role_id: str,
        secret_id: str,
        *,
        mount: str = "transit",
        timeout: float = 10.0,
        cache_ttl: float = 30.0,
        cache_size: int = 1024,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(url, role_id, secret_id, mount=mount, timeout=timeout, verify=verify)
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: HearthSettings, service: str) -> TransitKeyring:
        """The keyring of ``service``, logged in with its AppRole on first use."""
        role_id, secret_id = cls._credentials(settings, service)
        return cls(settings.openbao_url, role_id, secret_id, verify=client_context(settings))

    async def new_data_key(self, tenant: str) -> DataKey:
        """A fresh AES-256 data key wrapped by the tenant's key (the key is created on first use)."""
        name = tenant_key_name(tenant)
        path = f"{self.mount}/datakey/plaintext/{name}"
        resp = await self._call("POST", path, {"bits": 256})
        if resp.status_code == 400 and _KEY_MISSING in self._errors(resp):
            await self._create_key(name)
            resp = await self._call("POST", path, {"bits": 256})
        if resp.status_code != 200:
            raise self._fail(f"issue a data key under {name}", resp)
        data = resp.json()["data"]
        key = DataKey(key_name=name, plaintext=base64.b64decode(data["plaintext"]), wrapped=data["ciphertext"])
        self._remember(name, key.wrapped, key.plaintext)
        return key

    async def payload_data_key(self) -> DataKey:
        """A fresh data key under the platform's payload key (``hearth-payloads``); not cached here.

        The payload codec (``shared.crypto.payload_codec``) keeps its own bounded caches. The key
        is made at setup; a service cannot create it (its policy grants only datakey and decrypt).
        """
        resp = await self._call("POST", f"{self.mount}/datakey/plaintext/{PAYLOAD_KEY}", {"bits": 256})
        if resp.status_code == 400 and _KEY_MISSING in self._errors(resp):
            raise Unavailable(f"the transit key {PAYLOAD_KEY} does not exist: run `hearth up` to set it up")
        if resp.status_code != 200:
            raise self._fail(f"issue a data key under {PAYLOAD_KEY}", resp)
        data = resp.json()["data"]
        return DataKey(key_name=PAYLOAD_KEY, plaintext=base64.b64decode(data["plaintext"]), wrapped=data["ciphertext"])

    async def unwrap_payload_key(self, wrapped: str) -> bytes:
        """The plaintext of a data key wrapped by ``hearth-payloads`` (any version of it still kept)."""
        resp = await self._call("POST", f"{self.mount}/decrypt/{PAYLOAD_KEY}", {"ciphertext": wrapped})
        if resp.status_code == 400 and _KEY_MISSING in self._errors(resp):
            raise KeyDestroyed(f"the encryption key {PAYLOAD_KEY} no longer exists")
        if resp.status_code != 200:
            raise self._fail(f"unwrap a data key of {PAYLOAD_KEY}", resp)
        return base64.b64decode(resp.json()["data"]["plaintext"])

    async def _create_key(self, name: str) -> None:
        # Through `encrypt`, which creates a missing key (upsert) for a token with `create` on
        # that path: the policy then needs no rights on transit/keys/, where rotate and config
        # live. Concurrent first uses are fine: the second finds the key.
        resp = await self._call("POST", f"{self.mount}/encrypt/{name}", {"plaintext": "AA==", "type": KEY_TYPE})
        if resp.status_code != 200:
            raise self._fail(f"create the key {name}", resp)
        log.info("tenant key ready", key=name)

    async def unwrap(self, header: SealHeader) -> bytes:
        """The plaintext data key of ``header`` (``KeyDestroyed`` if its tenant key was deleted)."""
        return await self.unwrap_key(header.key_name, header.wrapped_key)

    async def unwrap_key(self, key_name: str, wrapped: str) -> bytes:
        """The plaintext of a data key ``new_data_key`` returned wrapped by ``key_name`` (cached briefly)."""
        cache_key = (key_name, wrapped)
        hit = self._cache.get(cache_key)
        if hit is not None:
            if hit[0] > time.monotonic():
                self._cache.move_to_end(cache_key)
                return hit[1]
            del self._cache[cache_key]
        if not key_name.startswith(KEY_PREFIX):
            raise PermanentFailure(f"{key_name!r} is not a Hearth tenant key", code="seal-header-invalid")
        resp = await self._call("POST", f"{self.mount}/decrypt/{key_name}", {"ciphertext": wrapped})
        if resp.status_code == 400 and _KEY_MISSING in self._errors(resp):
            raise KeyDestroyed(
                f"the encryption key {key_name} no longer exists: the data it protected was "
                "crypto-shredded and cannot be recovered"
            )
        if resp.status_code != 200:
            raise self._fail(f"unwrap a data key of {key_name}", resp)
        plaintext = base64.b64decode(resp.json()["data"]["plaintext"])
        self._remember(key_name, wrapped, plaintext)
        return plaintext

    async def rewrap(self, header: SealHeader) -> SealHeader:
        """``header`` with its data key wrapped by the newest version of its tenant key (after ``rotate``)."""
        resp = await self._call("POST", f"{self.mount}/rewrap/{header.key_name}", {"ciphertext": header.wrapped_key})
        if resp.status_code == 400 and _KEY_MISSING in self._errors(resp):
            raise KeyDestroyed(f"the encryption key {header.key_name} no longer exists")
        if resp.status_code != 200:
            raise self._fail(f"rewrap a data key of {header.key_name}", resp)
        return header.rewrapped(resp.json()["data"]["ciphertext"])

    async def seal(self, tenant: str, plaintext: bytes) -> bytes:
        """``plaintext`` as one self-contained sealed value (``shared.crypto.sealing.seal_object``)."""
        key = await self.new_data_key(tenant)
        return seal_object(key.plaintext, key.header(), plaintext)

    async def unseal(self, value: bytes) -> bytes:
        """The plaintext of a ``seal`` value; a value that is not sealed is returned as it is."""
        parts = split_sealed(value)
        if parts is None:
            return value
        header, body = parts
        return unseal_object(await self.unwrap(header), header, body)

    def forget(self) -> None:
        """Drop every cached data key (the cache otherwise keeps each for ``cache_ttl`` seconds)."""
        self._cache.clear()

    def _remember(self, name: str, wrapped: str, plaintext: bytes) -> None:
        if self.cache_ttl <= 0 or self.cache_size <= 0:
            return
        self._cache[(name, wrapped)] = (time.monotonic() + self.cache_ttl, plaintext)
        self._cache.move_to_end((name, wrapped))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


class KeyAdmin(_BaoSession):
    """Rotation and destruction of tenant keys (AppRole ``keyadmin``, policy ``hearth-keyadmin``)."""

    @classmethod
    def from_settings(cls, settings: HearthSettings) -> KeyAdmin:
        role_id, secret_id = cls._credentials(settings, KEYADMIN_ROLE)
        return cls(settings.openbao_url, role_id, secret_id, verify=client_context(settings))

    async def latest_version(self, tenant: str) -> int:
        """The newest version of the tenant's key (``KeyDestroyed`` if it does not exist)."""
        name = tenant_key_name(tenant)
        resp = await self._call("GET", f"{self.mount}/keys/{name}")
        if resp.status_code == 404:
            raise KeyDestroyed(f"the encryption key {name} does not exist")
        if resp.status_code != 200:
            raise self._fail(f"read the key {name}", resp)
        return int(resp.json()["data"]["latest_version"])

    async def rotate(self, tenant: str) -> int:
        """A new version of the tenant's key for new data keys; older versions still decrypt. Returns it."""
        name = tenant_key_name(tenant)
        resp = await self._call("POST", f"{self.mount}/keys/{name}/rotate")
        if resp.status_code not in (200, 204):
            raise self._fail(f"rotate the key {name}", resp)
        log.info("tenant key rotated", key=name)
        return await self.latest_version(tenant)

    async def rotate_payload_key(self) -> int:
        """A new version of ``hearth-payloads`` for new payload data keys; histories stay readable. Returns it."""
        resp = await self._call("POST", f"{self.mount}/keys/{PAYLOAD_KEY}/rotate")
        if resp.status_code not in (200, 204):
            raise self._fail(f"rotate the key {PAYLOAD_KEY}", resp)
        resp = await self._call("GET", f"{self.mount}/keys/{PAYLOAD_KEY}")
        if resp.status_code != 200:
            raise self._fail(f"read the key {PAYLOAD_KEY}", resp)
        log.info("payload key rotated", key=PAYLOAD_KEY)
        return int(resp.json()["data"]["latest_version"])

    async def shred(self, tenant: str) -> None:
        """Destroy the tenant's key: everything encrypted under it becomes unrecoverable (irreversible).

        Keys are created with deletion not allowed, so this is deliberately two steps: allow
        deletion, then delete. Processes that unwrapped a data key in the last ``cache_ttl``
        seconds may still hold it in memory until it expires there.
        """
        name = tenant_key_name(tenant)
        resp = await self._call("POST", f"{self.mount}/keys/{name}/config", {"deletion_allowed": True})
        if resp.status_code not in (200, 204):
            raise self._fail(f"allow deletion of the key {name}", resp)
        resp = await self._call("DELETE", f"{self.mount}/keys/{name}")
        if resp.status_code not in (200, 204):
            raise self._fail(f"delete the key {name}", resp)
        log.warning("tenant key destroyed (crypto-shredded)", key=name)
