"""AES-256-GCM with a per-object data key, and the versioned header stored beside the ciphertext.

Format version 1. The header (``SealHeader``, compact JSON) carries what decrypting needs and
nothing secret: the algorithm, the transit key's name and version, the wrapped data key
(``vault:v<N>:…``, only transit can unwrap it) and an 8-byte random nonce prefix. Data is sealed in
chunks (one for a small object): chunk ``i`` uses the nonce ``prefix ‖ i`` (4 bytes, big-endian) —
unique because every object has its own data key and its own prefix — and the associated data
``hearth-seal/v1 ‖ i ‖ final`` so chunks cannot be reordered, dropped or cut off at a chunk
boundary without the GCM tag failing. Each sealed chunk is ciphertext ‖ 16-byte tag.

A self-contained sealed object (``seal_object``; for values that have no other place for the
header, e.g. a database column later) is ``MAGIC ‖ u16 header length ‖ header ‖ chunk 0``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import PermanentFailure

FORMAT_VERSION: Final = 1
ALGORITHM: Final = "AES-256-GCM"
NONCE_PREFIX_BYTES: Final = 8
TAG_BYTES: Final = 16
KEY_BYTES: Final = 32
MAX_CHUNKS: Final = 2**32
MAGIC: Final = b"HSEAL\x01"
_AAD_PREFIX: Final = b"hearth-seal/v1"
_WRAPPED_PATTERN: Final = re.compile(r"^vault:v(\d+):[A-Za-z0-9+/=]+$")


def _invalid(reason: str) -> PermanentFailure:
    return PermanentFailure(f"invalid encryption header: {reason}", code="seal-header-invalid")


@dataclass(frozen=True)
class SealHeader:
    """What is stored with a sealed object so it can be decrypted (nothing in it is secret)."""

    key_name: str
    """The transit key that wrapped the data key (``hearth-tenant-<tenant>``)."""
    wrapped_key: str
    """The data key as transit returned it wrapped: ``vault:v<key_version>:<base64>``."""
    nonce_prefix: bytes
    """8 random bytes; chunk ``i``'s nonce is this followed by ``i`` as 4 bytes."""
    version: int = FORMAT_VERSION
    algorithm: str = ALGORITHM

    @property
    def key_version(self) -> int:
        """Version of the transit key the data key is wrapped with (rises with rotate + rewrap)."""
        match = _WRAPPED_PATTERN.match(self.wrapped_key)
        if match is None:
            raise _invalid("the wrapped key is not a transit ciphertext")
        return int(match.group(1))

    def rewrapped(self, wrapped_key: str) -> SealHeader:
        """The same header with the data key wrapped anew (same data key, newer key version)."""
        return replace(self, wrapped_key=wrapped_key)

    def to_json(self) -> str:
        """The header as compact JSON (``v``, ``alg``, ``key``, ``kv``, ``wk``, ``np``)."""
        return json.dumps(
            {
                "v": self.version,
                "alg": self.algorithm,
                "key": self.key_name,
                "kv": self.key_version,
                "wk": self.wrapped_key,
                "np": base64.b64encode(self.nonce_prefix).decode(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> SealHeader:
        """Parse and validate a header; ``PermanentFailure`` (``seal-header-invalid``) when it is not one."""
        try:
            raw: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise _invalid("not JSON") from None
        if not isinstance(raw, dict):
            raise _invalid("not an object")
        if raw.get("v") != FORMAT_VERSION:
            raise _invalid(f"unsupported format version {raw.get('v')!r} (this build reads {FORMAT_VERSION})")
        if raw.get("alg") != ALGORITHM:
            raise _invalid(f"unsupported algorithm {raw.get('alg')!r}")
        key, wrapped, prefix = raw.get("key"), raw.get("wk"), raw.get("np")
        if not isinstance(key, str) or not key or not isinstance(wrapped, str) or not isinstance(prefix, str):
            raise _invalid("key, wk and np must be strings")
        try:
            nonce_prefix = base64.b64decode(prefix, validate=True)
        except ValueError:
            raise _invalid("np is not base64") from None
        if len(nonce_prefix) != NONCE_PREFIX_BYTES:
            raise _invalid(f"np must be {NONCE_PREFIX_BYTES} bytes")
        header = cls(key_name=key, wrapped_key=wrapped, nonce_prefix=nonce_prefix)
        if raw.get("kv") != header.key_version:
            raise _invalid("kv does not match the wrapped key's version")
        return header


def _nonce(header: SealHeader, index: int) -> bytes:
    if not 0 <= index < MAX_CHUNKS:
        raise ValueError(f"chunk index {index} out of range")
    return header.nonce_prefix + index.to_bytes(4, "big")


def _aad(index: int, final: bool) -> bytes:
    return _AAD_PREFIX + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _cipher(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise ValueError(f"an AES-256 key has {KEY_BYTES} bytes, not {len(key)}")
    return AESGCM(key)


def seal_chunk(key: bytes, header: SealHeader, index: int, plaintext: bytes, *, final: bool) -> bytes:
    """Encrypt chunk ``index`` of an object (``final`` for its last one); returns ciphertext ‖ tag."""
    return _cipher(key).encrypt(_nonce(header, index), plaintext, _aad(index, final))


def open_chunk(key: bytes, header: SealHeader, index: int, sealed: bytes, *, final: bool) -> bytes:
    """Decrypt and authenticate chunk ``index``.

    ``PermanentFailure`` (code ``seal-tampered``) when the tag does not verify: the chunk was
    altered, moved, cut off, or the key is not the one it was sealed with.
    """
    try:
        return _cipher(key).decrypt(_nonce(header, index), sealed, _aad(index, final))
    except InvalidTag:
        raise PermanentFailure(
            f"encrypted chunk {index} failed authentication (altered, reordered or truncated data)",
            code="seal-tampered",
        ) from None


def seal_object(key: bytes, header: SealHeader, plaintext: bytes) -> bytes:
    """A self-contained sealed value: ``MAGIC ‖ u16 header length ‖ header JSON ‖ sealed chunk 0``."""
    head = header.to_json().encode()
    return MAGIC + len(head).to_bytes(2, "big") + head + seal_chunk(key, header, 0, plaintext, final=True)


def split_sealed(blob: bytes) -> tuple[SealHeader, bytes] | None:
    """Header and sealed body of a ``seal_object`` value; ``None`` when ``blob`` is not sealed."""
    if not blob.startswith(MAGIC):
        return None
    start = len(MAGIC) + 2
    if len(blob) < start:
        raise _invalid("truncated")
    size = int.from_bytes(blob[len(MAGIC) : start], "big")
    if len(blob) < start + size + TAG_BYTES:
        raise _invalid("truncated")
    return SealHeader.from_json(blob[start : start + size]), blob[start + size :]


def unseal_object(key: bytes, header: SealHeader, body: bytes) -> bytes:
    """The plaintext of a ``seal_object`` value split by ``split_sealed``."""
    return open_chunk(key, header, 0, body, final=True)
