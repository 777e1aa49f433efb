"""Blob store pieces that need no server: chunking and references."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.blobstore import BlobRef, BlobSource, _digest_field, _hex_from_digest_field, rechunk

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

DATA = bytes(range(256)) * 41  # 10_496 bytes: not a multiple of the chunk size


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _collect(source: BlobSource, chunk: int = 1000) -> list[bytes]:
    return [piece async for piece in rechunk(source, chunk)]


def _check(chunks: list[bytes]) -> None:
    assert b"".join(chunks) == DATA
    assert all(len(c) == 1000 for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= 1000


@pytest.mark.parametrize("piece", [1, 7, 999, 1000, 1001, 50_000])
async def test_rechunk_async_iterators(piece: int) -> None:
    _check(await _collect(_pieces(DATA, piece)))


async def test_rechunk_bytes_like_and_files(tmp_path: Path) -> None:
    _check(await _collect(DATA))
    _check(await _collect(bytearray(DATA)))
    _check(await _collect(memoryview(DATA)))
    buffer = io.BytesIO(b"skip" + DATA)
    buffer.seek(4)
    _check(await _collect(buffer))
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    with path.open("rb") as handle:
        _check(await _collect(handle))


async def test_rechunk_empty() -> None:
    assert await _collect(b"") == []
    assert await _collect(_pieces(b"", 10)) == []


def test_digest_field_round_trip() -> None:
    digest = bytes.fromhex("ab" * 32)
    assert _digest_field(digest).startswith("SHA-256=")
    assert _hex_from_digest_field(_digest_field(digest)) == "ab" * 32
    assert _hex_from_digest_field(None) is None
    assert _hex_from_digest_field("MD5=xyz") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"bucket": "bad bucket"},
        {"key": "has space"},
        {"size": -1},
        {"sha256": "XYZ"},
    ],
)
def test_blobref_validation(fields: dict[str, object]) -> None:
    valid: dict[str, object] = {"bucket": "hearth-blobs", "key": "a/b.pdf", "size": 1, "sha256": "0" * 64}
    BlobRef.model_validate(valid)
    with pytest.raises(ValidationError):
        BlobRef.model_validate({**valid, **fields})
