"""Envelope encryption of Temporal payloads: what Temporal stores of a workflow is ciphertext.

``EnvelopePayloadCodec`` is a ``temporalio.converter.PayloadCodec`` on the same scheme as blobs
(``shared.crypto``): a data key from OpenBao transit ``datakey`` under the platform key
``hearth-payloads``, AES-256-GCM locally, the wrapped key beside the ciphertext. Each payload
becomes one with

* metadata ``encoding: binary/encrypted``, ``encryption-key-id: hearth-payloads``,
  ``encryption-key-version: <N>`` and ``encryption-wrapped-key: vault:v<N>:…`` (what decrypting
  needs; nothing in it is secret), ``encryption-format: 1``;
* data ``nonce (12 random bytes) ‖ AES-256-GCM(serialized original Payload) ‖ tag``, with the
  associated data ``hearth-payload/v1 ‖ wrapped key``, so ciphertext cannot be paired with another
  payload's key metadata without the tag failing.

A workflow step encodes and decodes a handful of payloads, so calling transit for each would
dominate its cost: one data key encrypts up to ``max_uses`` payloads or for ``max_age_s`` seconds
(whichever ends first; random 96-bit nonces keep far below GCM's limit per key), and unwrapped keys
are kept in a bounded LRU for ``unwrap_ttl_s``. ``bench/bench_payload_codec.py`` measures it.

Payloads without ``binary/encrypted`` (histories written before encryption) decode unchanged.
Rotating ``hearth-payloads`` (``KeyAdmin.rotate_payload_key``) gives new data keys the new version;
transit keeps the older versions, so every history stays readable.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from shared.crypto.transit import PAYLOAD_KEY, DataKey
from shared.errors import PermanentFailure

ENCODING: Final = b"binary/encrypted"
FORMAT: Final = b"1"
KEY_ID: Final = "encryption-key-id"
KEY_VERSION: Final = "encryption-key-version"
WRAPPED_KEY: Final = "encryption-wrapped-key"
FORMAT_KEY: Final = "encryption-format"
NONCE_BYTES: Final = 12
_AAD_PREFIX: Final = b"hearth-payload/v1"
CODEC_PATH: Final = "/v1/codec"
"""Where the gateway serves Temporal's remote codec protocol (``/encode`` and ``/decode`` below it)."""


class PayloadKeys(Protocol):
    """The transit operations the codec needs (``shared.crypto.TransitKeyring`` implements them)."""

    async def payload_data_key(self) -> DataKey:
        """A fresh data key wrapped by ``hearth-payloads``."""
        ...

    async def unwrap_payload_key(self, wrapped: str) -> bytes:
        """The plaintext of a data key ``payload_data_key`` returned wrapped."""
        ...


@dataclass
class CodecStats:
    """Counters of the codec's transit calls and cache use (for the bench and tests)."""

    encoded: int = 0
    decoded: int = 0
    data_keys_issued: int = 0
    unwrap_calls: int = 0
    unwrap_cache_hits: int = 0


def _tampered(reason: str) -> PermanentFailure:
    return PermanentFailure(f"encrypted payload rejected: {reason}", code="seal-tampered")


def _aad(wrapped: bytes) -> bytes:
    return _AAD_PREFIX + wrapped


def _key_version(wrapped: bytes) -> int:
    parts = wrapped.split(b":", 2)
    if len(parts) != 3 or parts[0] != b"vault" or not parts[1].startswith(b"v") or not parts[1][1:].isdigit():
        raise _tampered("the wrapped key is not a transit ciphertext")
    return int(parts[1][1:])


class EnvelopePayloadCodec(PayloadCodec):
    """AES-256-GCM per payload under short-lived transit data keys; see the module docstring."""

    def __init__(
        self,
        keys: PayloadKeys,
        *,
        max_uses: int = 10_000,
        max_age_s: float = 300.0,
        unwrap_cache_size: int = 256,
        unwrap_ttl_s: float = 600.0,
    ) -> None:
        if max_uses < 1 or max_age_s <= 0:
            raise ValueError("a data key must be used for at least one payload and a positive time")
        self._keys = keys
        self.max_uses = max_uses
        self.max_age_s = max_age_s
        self.unwrap_cache_size = unwrap_cache_size
        self.unwrap_ttl_s = unwrap_ttl_s
        self._current: DataKey | None = None
        self._current_expires = 0.0
        self._current_uses = 0
        self._refresh = asyncio.Lock()
        self._unwrapped: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self.stats = CodecStats()

    async def ready(self) -> None:
        """Fetch the first data key now, so a process learns at start-up that OpenBao is not there."""
        await self._data_key()

    def forget(self) -> None:
        """Drop the current data key and every unwrapped one (a key rotation takes effect at once)."""
        self._current = None
        self._unwrapped.clear()

    def _usable(self) -> DataKey | None:
        spent = self._current_uses >= self.max_uses or time.monotonic() >= self._current_expires
        return None if spent else self._current

    async def _data_key(self) -> DataKey:
        key = self._usable()
        if key is None:
            async with self._refresh:  # one transit call when many encodes find the key spent
                key = self._usable()
                if key is None:
                    key = await self._keys.payload_data_key()
                    self.stats.data_keys_issued += 1
                    self._current, self._current_uses = key, 0
                    self._current_expires = time.monotonic() + self.max_age_s
                    self._remember(key.wrapped.encode(), key.plaintext)
        self._current_uses += 1
        return key

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each payload sealed whole (its metadata too) into a ``binary/encrypted`` one."""
        result = []
        for payload in payloads:
            key = await self._data_key()
            wrapped = key.wrapped.encode()
            nonce = os.urandom(NONCE_BYTES)
            sealed = AESGCM(key.plaintext).encrypt(nonce, payload.SerializeToString(), _aad(wrapped))
            result.append(
                Payload(
                    metadata={
                        "encoding": ENCODING,
                        FORMAT_KEY: FORMAT,
                        KEY_ID: PAYLOAD_KEY.encode(),
                        KEY_VERSION: str(_key_version(wrapped)).encode(),
                        WRAPPED_KEY: wrapped,
                    },
                    data=nonce + sealed,
                )
            )
        self.stats.encoded += len(result)
        return result

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """The original payloads; ones that are not ``binary/encrypted`` are passed through as they are.

        ``PermanentFailure`` (``seal-tampered``) when a payload was altered or its key metadata
        does not belong to it; ``KeyDestroyed`` if ``hearth-payloads`` was deleted.
        """
        result = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                result.append(payload)
                continue
            if payload.metadata.get(FORMAT_KEY) != FORMAT:
                raise _tampered(f"unsupported format {payload.metadata.get(FORMAT_KEY)!r}")
            if payload.metadata.get(KEY_ID) != PAYLOAD_KEY.encode():
                raise _tampered(f"unknown key {payload.metadata.get(KEY_ID)!r}")
            wrapped = payload.metadata.get(WRAPPED_KEY, b"")
            _key_version(wrapped)
            if len(payload.data) < NONCE_BYTES + 16:
                raise _tampered("truncated")
            key = await self._unwrap(wrapped)
            try:
                plain = AESGCM(key).decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], _aad(wrapped))
            except InvalidTag:
                raise _tampered("authentication failed (altered data or key metadata)") from None
            inner = Payload()
            try:
                inner.ParseFromString(plain)
            except DecodeError:
                raise _tampered("the decrypted bytes are not a payload") from None
            result.append(inner)
        self.stats.decoded += len(result)
        return result

    async def _unwrap(self, wrapped: bytes) -> bytes:
        hit = self._unwrapped.get(wrapped)
        if hit is not None:
            if hit[0] > time.monotonic():
                self._unwrapped.move_to_end(wrapped)
                self.stats.unwrap_cache_hits += 1
                return hit[1]
            del self._unwrapped[wrapped]
        self.stats.unwrap_calls += 1
        plaintext = await self._keys.unwrap_payload_key(wrapped.decode("ascii", "replace"))
        self._remember(wrapped, plaintext)
        return plaintext

    def _remember(self, wrapped: bytes, plaintext: bytes) -> None:
        if self.unwrap_cache_size <= 0 or self.unwrap_ttl_s <= 0:
            return
        self._unwrapped[wrapped] = (time.monotonic() + self.unwrap_ttl_s, plaintext)
        self._unwrapped.move_to_end(wrapped)
        while len(self._unwrapped) > self.unwrap_cache_size:
            self._unwrapped.popitem(last=False)

    @property
    def cached_keys(self) -> int:
        """How many unwrapped data keys the LRU holds now."""
        return len(self._unwrapped)
