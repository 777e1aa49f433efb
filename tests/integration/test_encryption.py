"""Encryption at rest of blobs on the real stack: OpenBao transit keys, JetStream on disk, shredding."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.blobstore import ENCRYPTION_HEADER, BlobStore
from shared.bus import Bus
from shared.crypto import KeyAdmin, KeyDestroyed, SealHeader, TransitKeyring
from shared.errors import PermanentFailure
from shared.settings import HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MB = 1024 * 1024


@pytest.fixture
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(stack, name="test-encryption")
    yield bus
    await bus.close()


@pytest.fixture
async def bucket(bus: Bus) -> AsyncIterator[str]:
    name = f"test-enc-{uuid.uuid4().hex[:12]}"
    await BlobStore.create(bus.js, bus.settings, bucket=name, service=None)
    yield name
    await bus.js.delete_object_store(name)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _store(bus: Bus, bucket: str, service: str | None = "gateway") -> BlobStore:
    """A store with a fresh keyring (no cached data keys), as another process would have."""
    keyring = TransitKeyring.from_settings(bus.settings, service) if service else None
    return BlobStore(bus.js, bucket=bucket, max_bytes=64 * MB, keyring=keyring)


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


async def _header(bus: Bus, bucket: str, key: str) -> SealHeader:
    info = await (await bus.js.object_store(bucket)).get_info(key)
    return SealHeader.from_json((info.headers or {})[ENCRYPTION_HEADER][0])


async def test_a_blob_is_not_in_plaintext_on_disk_and_reads_back_identical(bus: Bus, bucket: str, tenant: str) -> None:
    marker = f"HEARTH-ENC-MARKER-{uuid.uuid4().hex}".encode()
    control = f"HEARTH-PLAIN-MARKER-{uuid.uuid4().hex}".encode()
    data = b"".join(marker + b" clause %d; " % i for i in range(20_000))  # ~1 MB, many chunks
    store = _store(bus, bucket)
    ref = await store.put(data, "text/plain", key="contract.txt", tenant=tenant)
    assert ref.size == len(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.stat(ref.key) == ref
    assert await _store(bus, bucket).get(ref) == data

    # The positive control: a plaintext blob's marker shows up in the same store directory,
    # so the scan below would find an unencrypted one.
    await _store(bus, bucket, service=None).put(control * 100, key="control")
    nats_dir = bus.settings.data_dir("nats")
    for _ in range(100):
        if _files_containing(nats_dir, control):
            break
        await asyncio.sleep(0.1)
    assert _files_containing(nats_dir, control), f"the plaintext control never reached {nats_dir}"
    assert _files_containing(nats_dir, marker) == []

    header = await _header(bus, bucket, ref.key)
    assert header.key_name == f"hearth-tenant-{tenant}"
    assert header.key_version == 1
    assert header.wrapped_key.startswith("vault:v1:")
    # nats-py still reads and digest-checks the object as stored: ciphertext.
    raw = await (await bus.js.object_store(bucket)).get(ref.key)
    assert marker not in raw.data
    assert raw.info.size == len(data) + raw.info.chunks * 16


async def test_plaintext_blobs_written_before_encryption_stay_readable(bus: Bus, bucket: str) -> None:
    data = b"written before encryption " * 10_000
    ref = await _store(bus, bucket, service=None).put(data, key="legacy")
    encrypted_store = _store(bus, bucket)
    assert await encrypted_store.stat("legacy") == ref
    assert await encrypted_store.get(ref) == data
    assert await encrypted_store.rewrap(ref) is False  # nothing to rewrap


async def test_key_rotation_and_rewrap_keep_data_readable(bus: Bus, bucket: str, tenant: str) -> None:
    data = b"rotate me " * 50_000
    store = _store(bus, bucket)
    ref = await store.put(data, key="doc", tenant=tenant)
    admin = KeyAdmin.from_settings(bus.settings)
    assert await admin.rotate(tenant) == 2

    assert await _store(bus, bucket).get(ref) == data  # still wrapped by v1: readable throughout
    assert (await _header(bus, bucket, "doc")).key_version == 1
    assert await store.rewrap(ref) is True
    assert (await _header(bus, bucket, "doc")).key_version == 2
    assert await store.rewrap(ref) is False  # already on the newest version
    assert await _store(bus, bucket).stat("doc") == ref
    assert await _store(bus, bucket).get(ref) == data

    newer = await store.put(b"after the rotation", key="newer", tenant=tenant)
    assert (await _header(bus, bucket, "newer")).key_version == 2
    assert await _store(bus, bucket).get(newer) == b"after the rotation"


async def test_deleting_the_tenant_key_shreds_its_blobs(bus: Bus, bucket: str, tenant: str) -> None:
    other = f"t-{uuid.uuid4().hex[:10]}"
    store = _store(bus, bucket)
    ref = await store.put(b"to be forgotten " * 1000, key="shredded", tenant=tenant)
    kept = await store.put(b"another tenant's data", key="kept", tenant=other)

    # A service may not destroy keys: that is the keyadmin role's alone.
    service_creds = json.loads(bus.settings.read_secret("approle-gateway.json"))
    as_service = KeyAdmin(bus.settings.openbao_url, service_creds["role_id"], service_creds["secret_id"])
    with pytest.raises(PermanentFailure) as refused:
        await as_service.shred(tenant)
    assert refused.value.code == "transit-refused"

    await KeyAdmin.from_settings(bus.settings).shred(tenant)
    assert store.keyring is not None
    store.keyring.forget()  # this process's cache would serve the data key for cache_ttl
    for reader in (store, _store(bus, bucket)):
        with pytest.raises(KeyDestroyed) as gone:
            await reader.get(ref)
        assert gone.value.code == "key-destroyed"
        assert "crypto-shredded" in gone.value.detail
    with pytest.raises(KeyDestroyed):
        await store.rewrap(ref)
    assert await _store(bus, bucket).get(kept) == b"another tenant's data"
