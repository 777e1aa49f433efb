"""The claim-check blob store against a real JetStream object store (one bucket per test)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE

from shared.blobstore import CHUNK_SIZE, BlobStore
from shared.bus import Bus
from shared.errors import NotFound, PermanentFailure, TooLarge
from shared.settings import HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MB = 1024 * 1024


@pytest.fixture
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(stack, name="test-blobstore")
    yield bus
    await bus.close()


@pytest.fixture
async def store(bus: Bus) -> AsyncIterator[BlobStore]:
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    store = await BlobStore.create(bus.js, bus.settings, bucket=bucket)
    yield store
    await bus.js.delete_object_store(bucket)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _stream_state(bus: Bus, store: BlobStore) -> tuple[int, int]:
    state = (await bus.js.stream_info(OBJ_STREAM_TEMPLATE.format(bucket=store.bucket))).state
    return state.messages, state.bytes


async def test_multi_megabyte_round_trip_from_an_async_iterator(store: BlobStore) -> None:
    data = os.urandom(6 * MB + 12345)
    ref = await store.put(_pieces(data, 50_000), content_type="application/pdf", key="contracts/2024/c1.pdf")

    assert ref.bucket == store.bucket
    assert ref.key == "contracts/2024/c1.pdf"
    assert ref.size == len(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.content_type == "application/pdf"
    assert await store.stat(ref.key) == ref
    assert await store.get(ref) == data

    chunks = [chunk async for chunk in store.open(ref)]
    assert b"".join(chunks) == data
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= CHUNK_SIZE  # streamed, never held whole


async def test_round_trip_from_bytes_and_files(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * MB)
    from_bytes = await store.put(data)
    path = tmp_path / "scan.tiff"
    path.write_bytes(data)
    with path.open("rb") as handle:
        from_file = await store.put(handle, content_type="image/tiff")
    assert from_bytes.sha256 == from_file.sha256
    assert from_bytes.key != from_file.key
    assert await store.get(from_file) == data


async def test_empty_blob(store: BlobStore) -> None:
    ref = await store.put(b"", key="empty")
    assert ref.size == 0
    assert await store.get(ref) == b""


async def test_size_limit_is_refused_and_nothing_is_left(bus: Bus, store: BlobStore) -> None:
    small = BlobStore(bus.js, bucket=store.bucket, max_bytes=1 * MB)
    with pytest.raises(TooLarge) as info:
        await small.put(_pieces(os.urandom(3 * MB), 64 * 1024), key="too-big")
    assert info.value.extra["limit"] == MB
    with pytest.raises(TooLarge):
        await small.put(os.urandom(MB + 1), key="too-big-bytes")  # refused before anything is sent

    assert await _stream_state(bus, store) == (0, 0)
    with pytest.raises(NotFound):
        await store.stat("too-big")
    exact = await small.put(os.urandom(MB), key="exactly-the-limit")
    assert exact.size == MB


async def test_sha256_is_verified(bus: Bus, store: BlobStore) -> None:
    data = os.urandom(300_000)
    ref = await store.put(data, key="checked")

    forged = ref.model_copy(update={"sha256": hashlib.sha256(b"other").hexdigest()})
    with pytest.raises(PermanentFailure) as info:
        await store.get(forged)
    assert info.value.code == "blob-mismatch"

    # Corrupt the stored object: an extra chunk the meta record does not account for.
    info_meta = await store._meta.get_info(ref.key)
    await bus.js.publish(OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=store.bucket, obj=info_meta.nuid), b"tampered")
    with pytest.raises(PermanentFailure) as corrupt:
        await store.get(ref)
    assert corrupt.value.code == "blob-corrupt"


async def test_replacing_a_key_invalidates_old_references_and_purges_old_chunks(bus: Bus, store: BlobStore) -> None:
    old = await store.put(os.urandom(500_000), key="doc")
    new_data = os.urandom(10_000)
    new = await store.put(new_data, key="doc")

    with pytest.raises(PermanentFailure):
        await store.get(old)
    assert await store.get(new) == new_data
    messages, _ = await _stream_state(bus, store)
    assert messages == 2  # one chunk and one meta record: the old chunks are gone


async def test_delete(bus: Bus, store: BlobStore) -> None:
    ref = await store.put(os.urandom(200_000), key="to-delete")
    await store.delete(ref)
    with pytest.raises(NotFound):
        await store.stat(ref.key)
    with pytest.raises(NotFound):
        await store.get(ref)
    with pytest.raises(NotFound):
        await store.delete("never-existed")
    messages, _ = await _stream_state(bus, store)
    assert messages == 1  # only the deletion marker


async def test_objects_stay_readable_by_nats_py(bus: Bus, store: BlobStore) -> None:
    # A store without a keyring writes plaintext (encrypted objects: tests/integration/test_encryption.py).
    plain = BlobStore(bus.js, bucket=store.bucket, max_bytes=MB)
    data = os.urandom(400_000)
    ref = await plain.put(data, key="interop", content_type="text/csv")
    result = await (await bus.js.object_store(store.bucket)).get("interop")
    assert result.data == data
    assert result.info.headers == {"Content-Type": ["text/csv"]}
    assert ref.size == result.info.size
