"""The cold tier's format: compressed, then sealed; verified on every read; rewrapped without rewriting data.

The keyring here is a local stand-in for OpenBao transit (wrapping is a table lookup); the real
one runs in ``tests/integration/test_lifecycle.py``.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from shared.blobstore import BlobRef
from shared.coldstore import ColdStore
from shared.crypto import DataKey, SealHeader, TransitKeyring
from shared.errors import NotFound, PermanentFailure

pytestmark = pytest.mark.unit


class LocalKeyring:
    """Data keys wrapped as ``vault:v<N>:<index>``; ``rotate`` adds a version."""

    def __init__(self) -> None:
        self.version = 1
        self.keys: dict[str, bytes] = {}

    async def new_data_key(self, tenant: str) -> DataKey:
        plaintext = os.urandom(32)
        wrapped = f"vault:v{self.version}:{len(self.keys)}"
        self.keys[wrapped.split(":")[2]] = plaintext
        return DataKey(key_name=f"hearth-tenant-{tenant}", plaintext=plaintext, wrapped=wrapped)

    async def unwrap(self, header: SealHeader) -> bytes:
        return self.keys[header.wrapped_key.split(":")[2]]

    async def rewrap(self, header: SealHeader) -> SealHeader:
        return header.rewrapped(f"vault:v{self.version}:{header.wrapped_key.split(':')[2]}")


def _ref(data: bytes, key: str = "uploads/a.pdf") -> BlobRef:
    return BlobRef(bucket="hearth-blobs", key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def _chunks(data: bytes, size: int = 50_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(store: ColdStore, ref: BlobRef) -> bytes:
    out = bytearray()
    async for piece in store.open(ref):
        out += piece
    return bytes(out)


@pytest.fixture
def keyring() -> LocalKeyring:
    return LocalKeyring()


@pytest.fixture
def store(tmp_path: Path, keyring: LocalKeyring) -> ColdStore:
    return ColdStore(tmp_path / "cold", cast(TransitKeyring, keyring))


def _text() -> bytes:
    """About 1.5 MB of words from a 2000-word vocabulary: compresses well, but to more than one record."""
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    vocabulary = [
        "".join(rng.choice("合同甲方乙方价款期限交付设备签订日期条款abcdefgh") for _ in range(4)) for _ in range(2000)
    ]
    return " ".join(["CG-2024-0315", *(rng.choice(vocabulary) for _ in range(120_000))]).encode()


TEXT = _text()


async def test_a_cold_copy_is_smaller_sealed_and_reads_back_exactly(store: ColdStore) -> None:
    ref = _ref(TEXT)
    manifest = await store.archive(ref, _chunks(TEXT), tenant="acme")
    stored = store.data_path(ref.bucket, ref.key).read_bytes()
    assert manifest.records > 1
    assert manifest.stored_size == len(stored) < len(TEXT) // 2
    assert "合同".encode() not in stored
    assert b"CG-2024" not in stored
    assert manifest.encryption is not None
    assert manifest.tenant == "acme"
    assert await _read(store, ref) == TEXT
    assert (await store.verify(ref)).sha256 == ref.sha256


async def test_empty_and_tiny_blobs_round_trip(store: ColdStore) -> None:
    for data in (b"", b"x"):
        ref = _ref(data, key=f"k{len(data)}")
        await store.archive(ref, _chunks(data), tenant="acme")
        assert await _read(store, ref) == data


async def test_altered_reordered_or_cut_records_are_refused(store: ColdStore) -> None:
    ref = _ref(TEXT)
    await store.archive(ref, _chunks(TEXT), tenant="acme")
    path = store.data_path(ref.bucket, ref.key)
    original = path.read_bytes()
    flipped = bytearray(original)
    flipped[100] ^= 1
    path.write_bytes(bytes(flipped))
    with pytest.raises(PermanentFailure) as err:
        await _read(store, ref)
    assert err.value.code == "seal-tampered"
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(PermanentFailure):
        await _read(store, ref)


async def test_a_reference_to_other_content_is_refused_before_reading(store: ColdStore) -> None:
    ref = _ref(TEXT)
    await store.archive(ref, _chunks(TEXT), tenant="acme")
    other = ref.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(PermanentFailure) as err:
        await _read(store, other)
    assert err.value.code == "blob-mismatch"
    with pytest.raises(NotFound):
        await _read(store, _ref(b"nothing", key="absent"))


async def test_archiving_content_that_does_not_match_the_reference_leaves_nothing(store: ColdStore) -> None:
    ref = _ref(TEXT)
    with pytest.raises(PermanentFailure):
        await store.archive(ref, _chunks(TEXT[:-1] + b"?"), tenant="acme")
    assert await store.manifest(ref.bucket, ref.key) is None
    assert not store.data_path(ref.bucket, ref.key).exists()
    assert not list(store.data_path(ref.bucket, ref.key).parent.glob("*.tmp"))


async def test_rewrap_changes_only_the_manifest_and_reads_on(store: ColdStore, keyring: LocalKeyring) -> None:
    ref = _ref(TEXT)
    before = await store.archive(ref, _chunks(TEXT), tenant="acme")
    data = store.data_path(ref.bucket, ref.key).read_bytes()
    assert not await store.rewrap(ref.bucket, ref.key)  # on the newest version already
    keyring.version = 2
    assert await store.rewrap(ref.bucket, ref.key)
    after = await store.manifest(ref.bucket, ref.key)
    assert after is not None
    assert after.header() is not None
    assert cast(Any, after.header()).key_version == 2
    assert cast(Any, before.header()).key_version == 1
    assert store.data_path(ref.bucket, ref.key).read_bytes() == data
    assert await _read(store, ref) == TEXT
    assert [m.key for m in store.manifests()] == [ref.key]
    assert await store.delete(ref.bucket, ref.key)
    assert not await store.delete(ref.bucket, ref.key)
    assert list(store.manifests()) == []


async def test_without_a_keyring_copies_are_compressed_only(tmp_path: Path) -> None:
    store = ColdStore(tmp_path, None)
    ref = _ref(TEXT)
    manifest = await store.archive(ref, _chunks(TEXT), tenant="acme")
    assert manifest.encryption is None
    assert await _read(store, ref) == TEXT
