"""The sealed format (header, chunk nonces and associated data) and the keyring's data-key cache."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from shared.crypto import (
    ALGORITHM,
    FORMAT_VERSION,
    KeyDestroyed,
    SealHeader,
    TransitKeyring,
    open_chunk,
    seal_chunk,
    seal_object,
    tenant_key_name,
    unseal_object,
)
from shared.crypto.sealing import MAGIC, split_sealed
from shared.errors import InvalidInput, PermanentFailure

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
WRAPPED = "vault:v3:" + base64.b64encode(b"wrapped-data-key").decode()


def _header(**changes: object) -> SealHeader:
    fields: dict[str, object] = {"key_name": "hearth-tenant-acme", "wrapped_key": WRAPPED, "nonce_prefix": b"\x01" * 8}
    fields.update(changes)
    return SealHeader(**fields)  # type: ignore[arg-type]


def test_header_round_trips_as_compact_json() -> None:
    header = _header()
    text = header.to_json()
    assert json.loads(text) == {
        "v": FORMAT_VERSION,
        "alg": ALGORITHM,
        "key": "hearth-tenant-acme",
        "kv": 3,
        "wk": WRAPPED,
        "np": base64.b64encode(b"\x01" * 8).decode(),
    }
    assert SealHeader.from_json(text) == header
    assert header.key_version == 3
    assert header.rewrapped("vault:v4:AAAA").key_version == 4


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "unsupported format version"),
        ({"alg": "AES-128-CBC"}, "unsupported algorithm"),
        ({"kv": 1}, "kv does not match"),
        ({"np": base64.b64encode(b"short").decode()}, "np must be 8 bytes"),
        ({"np": "not base64!"}, "np is not base64"),
        ({"key": 7}, "must be strings"),
    ],
)
def test_a_malformed_header_is_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    raw = {**json.loads(_header().to_json()), **change}
    with pytest.raises(PermanentFailure) as info:
        SealHeader.from_json(json.dumps(raw))
    assert info.value.code == "seal-header-invalid"
    assert reason in info.value.detail


def test_not_json_and_not_a_transit_ciphertext_are_refused() -> None:
    with pytest.raises(PermanentFailure):
        SealHeader.from_json(b"\xff\x00")
    with pytest.raises(PermanentFailure):
        _ = _header(wrapped_key="plain-key").key_version


def test_chunks_round_trip_and_carry_a_tag() -> None:
    header = _header()
    sealed = [seal_chunk(KEY, header, i, b"chunk %d" % i, final=i == 2) for i in range(3)]
    assert [len(s) for s in sealed] == [len(b"chunk 0") + 16] * 3
    assert [open_chunk(KEY, header, i, s, final=i == 2) for i, s in enumerate(sealed)] == [
        b"chunk 0",
        b"chunk 1",
        b"chunk 2",
    ]
    assert b"chunk" not in b"".join(sealed)


def _tampered(sealed: bytes) -> bytes:
    flipped = bytearray(sealed)
    flipped[3] ^= 0x01
    return bytes(flipped)


@pytest.mark.parametrize(
    "attack",
    [
        "flipped bit",
        "flipped tag",
        "wrong key",
        "reordered",
        "truncated at a chunk boundary",
        "other nonce prefix",
    ],
)
def test_tampering_is_detected(attack: str) -> None:
    header = _header()
    first = seal_chunk(KEY, header, 0, b"first part", final=False)
    second = seal_chunk(KEY, header, 1, b"second part", final=True)
    other = _header(nonce_prefix=b"\x02" * 8)
    key, used, index, data, final = {
        "flipped bit": (KEY, header, 1, _tampered(second), True),
        "flipped tag": (KEY, header, 1, second[:-1] + bytes([second[-1] ^ 1]), True),
        "wrong key": (os.urandom(32), header, 1, second, True),
        "reordered": (KEY, header, 0, second, False),
        "truncated at a chunk boundary": (KEY, header, 0, first, True),  # chunk 0 was not sealed as the last
        "other nonce prefix": (KEY, other, 0, first, False),
    }[attack]
    with pytest.raises(PermanentFailure) as info:
        open_chunk(key, used, index, data, final=final)
    assert info.value.code == "seal-tampered"


def test_a_self_contained_sealed_value() -> None:
    header = _header()
    value = seal_object(KEY, header, b"document text")
    assert value.startswith(MAGIC)
    assert b"document text" not in value
    parts = split_sealed(value)
    assert parts is not None
    assert parts[0] == header
    assert unseal_object(KEY, *parts) == b"document text"
    assert split_sealed(b"plain old bytes") is None
    with pytest.raises(PermanentFailure):
        split_sealed(value[: len(MAGIC) + 5])
    with pytest.raises(PermanentFailure):
        unseal_object(KEY, parts[0], _tampered(parts[1]))


def test_tenant_key_names() -> None:
    assert tenant_key_name("acme") == "hearth-tenant-acme"
    for bad in ("", "../x", "a/b", "x" * 65):
        with pytest.raises(InvalidInput):
            tenant_key_name(bad)


async def test_unwrapped_keys_are_cached_briefly_and_bounded() -> None:
    # An unreachable OpenBao: a cache hit must not call it, a miss raises Unavailable.
    keyring = TransitKeyring("http://127.0.0.1:9", "role", "secret", cache_ttl=60, cache_size=2, timeout=0.5)
    headers = [_header(wrapped_key=f"vault:v1:{base64.b64encode(bytes([i]) * 8).decode()}") for i in range(3)]
    for i, header in enumerate(headers):
        keyring._remember(header.key_name, header.wrapped_key, bytes([i]) * 32)
    assert await keyring.unwrap(headers[2]) == b"\x02" * 32
    assert await keyring.unwrap(headers[1]) == b"\x01" * 32
    with pytest.raises(Exception, match="unreachable"):  # the oldest was evicted
        await keyring.unwrap(headers[0])
    keyring._cache[(headers[1].key_name, headers[1].wrapped_key)] = (time.monotonic() - 1, b"\x01" * 32)
    with pytest.raises(Exception, match="unreachable"):  # expired
        await keyring.unwrap(headers[1])
    keyring.forget()
    assert not keyring._cache


def test_key_destroyed_is_a_permanent_failure() -> None:
    assert issubclass(KeyDestroyed, PermanentFailure)
    assert KeyDestroyed("gone").code == "key-destroyed"
