"""The cold tier: blobs nobody read for a while, compressed and sealed, in a directory (a bucket later).

Hot blobs are already sealed (``shared.blobstore``), and ciphertext does not compress. So a blob
moving here is read back to plaintext (verified against its ``BlobRef``), compressed (zlib: the
standard library's; zstd is not a dependency), and sealed again under its tenant's key with a
fresh data key, in 128 KiB records (AES-256-GCM, the chunk index and a last-record flag
authenticated, as for hot blobs). Compressing before sealing means the stored size says
something about the content's compressibility; the hot tier's ciphertext already shows the exact
size, so this adds little.

Layout, per blob (``<root>/<bucket>/<sha256(key)[:2]>/<sha256(key)>``):

* ``.hcold``: the records, each ``u32 length ‖ sealed record``;
* ``.json``: the manifest (``ColdManifest``): key, plaintext size and SHA-256 (what the
  ``BlobRef`` says), content type, tenant, the ``SealHeader`` of the data key, the compressed
  and stored sizes and the stored file's SHA-256. Written last (temp file, fsync, rename), so a
  manifest always describes a complete data file; a data file without one is an interrupted
  move and is overwritten by the next.

A tenant's key being destroyed (crypto-shredding) makes its cold copies unreadable as well, and a
key rotation rewraps their data keys like those of hot blobs (``rewrap``), rewriting the manifest
only. Without a keyring (the compose stack today) cold copies are compressed, not sealed, like
the hot blobs of such a stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.crypto import SealHeader, TransitKeyring, open_chunk, seal_chunk
from shared.errors import NotFound, PermanentFailure
from shared.logging import get_logger
from shared.settings import HearthSettings

if TYPE_CHECKING:
    from shared.blobstore import BlobRef

log = get_logger(__name__)

MANIFEST_VERSION: Final = 1
COMPRESSION: Final = "zlib"
RECORD_SIZE: Final = 128 * 1024
_LENGTH: Final = struct.Struct(">I")
_LEVEL: Final = 6


class ColdSettings(BaseSettings):
    """Where the cold tier lives (``HEARTH_COLD_*``)."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_COLD_", env_file=".env", extra="ignore")

    dir: Path | None = Field(None, description="The cold tier's directory; default $HEARTH_HOME/data/cold.")


class ColdManifest(BaseModel):
    """What is known about one cold copy; nothing in it is secret (the data key is wrapped)."""

    version: int = MANIFEST_VERSION
    bucket: str
    key: str
    size: int = Field(description="Plaintext bytes (the BlobRef's size).")
    sha256: str = Field(description="Plaintext SHA-256 (the BlobRef's).")
    content_type: str
    tenant: str
    compression: str = COMPRESSION
    compressed_size: int
    records: int
    stored_size: int = Field(description="Bytes of the .hcold file.")
    stored_sha256: str
    encryption: str | None = Field(None, description="SealHeader JSON; None: compressed only (no keyring).")
    archived_at: datetime

    def header(self) -> SealHeader | None:
        return SealHeader.from_json(self.encryption) if self.encryption else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _read_record(src: BinaryIO) -> bytes | None:
    head = src.read(_LENGTH.size)
    if not head:
        return None
    if len(head) != _LENGTH.size:
        raise PermanentFailure("cold copy is truncated", code="cold-corrupt")
    (length,) = _LENGTH.unpack(head)
    body = src.read(length)
    if len(body) != length:
        raise PermanentFailure("cold copy is truncated", code="cold-corrupt")
    return body


class _Writer:
    """Compresses, seals and writes the records of one cold copy, holding one back to flag the last."""

    def __init__(self, out: BinaryIO, seal: tuple[bytes, SealHeader] | None) -> None:
        self.out = out
        self.seal = seal
        self.compressor = zlib.compressobj(_LEVEL)
        self.pending = bytearray()
        self.held: bytes | None = None
        self.records = self.compressed = self.stored = 0
        self.stored_digest = hashlib.sha256()

    def feed(self, plaintext: bytes) -> None:
        self.pending += self.compressor.compress(plaintext)
        self._drain(final=False)

    def finish(self) -> None:
        self.pending += self.compressor.flush()
        self._drain(final=True)
        if self.held is not None:
            self._emit(self.held, final=True)
        elif self.records == 0:
            self._emit(b"", final=True)

    def _drain(self, *, final: bool) -> None:
        while len(self.pending) >= RECORD_SIZE or (final and self.pending):
            piece = bytes(self.pending[:RECORD_SIZE])
            del self.pending[:RECORD_SIZE]
            if self.held is not None:
                self._emit(self.held, final=False)
            self.held = piece

    def _emit(self, piece: bytes, *, final: bool) -> None:
        self.compressed += len(piece)
        if self.seal is not None:
            piece = seal_chunk(self.seal[0], self.seal[1], self.records, piece, final=final)
        record = _LENGTH.pack(len(piece)) + piece
        self.out.write(record)
        self.stored_digest.update(record)
        self.stored += len(record)
        self.records += 1


class ColdStore:
    """Cold copies of blobs under one directory; see the module docstring."""

    def __init__(self, root: Path, keyring: TransitKeyring | None) -> None:
        self.root = root
        self.keyring = keyring

    @classmethod
    def from_settings(cls, settings: HearthSettings, keyring: TransitKeyring | None) -> ColdStore:
        root = ColdSettings().dir or settings.data_dir("cold")
        return cls(root, keyring)

    # ---- paths ---------------------------------------------------------------------------
    def _base(self, bucket: str, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()
        return self.root / bucket / name[:2] / name

    def data_path(self, bucket: str, key: str) -> Path:
        """The records file of a blob's cold copy (it may not exist)."""
        return self._base(bucket, key).with_suffix(".hcold")

    def manifest_path(self, bucket: str, key: str) -> Path:
        return self._base(bucket, key).with_suffix(".json")

    # ---- read ----------------------------------------------------------------------------
    def _manifest_sync(self, bucket: str, key: str) -> ColdManifest | None:
        try:
            raw = self.manifest_path(bucket, key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = ColdManifest.model_validate_json(raw)
        except ValidationError:
            raise PermanentFailure(f"cold manifest of {key!r} is corrupt", code="cold-corrupt") from None
        if manifest.key != key or manifest.bucket != bucket:
            raise PermanentFailure(f"cold manifest of {key!r} names another blob", code="cold-corrupt")
        return manifest

    async def manifest(self, bucket: str, key: str) -> ColdManifest | None:
        """The manifest of ``key``'s cold copy, or ``None`` when it has none."""
        return await asyncio.to_thread(self._manifest_sync, bucket, key)

    async def open(self, ref: BlobRef) -> AsyncIterator[bytes]:
        """The plaintext of a cold copy, streamed; verified against ``ref`` when the last piece is out.

        ``NotFound`` without a cold copy; ``PermanentFailure`` when it does not match ``ref`` or
        fails authentication (``seal-tampered``) or its checksums.
        """
        manifest = await self.manifest(ref.bucket, ref.key)
        if manifest is None:
            raise NotFound(f"no cold copy of blob {ref.key!r}")
        if manifest.sha256 != ref.sha256 or manifest.size != ref.size:
            raise PermanentFailure(f"cold copy of {ref.key!r} is of another version of the blob", code="blob-mismatch")
        header = manifest.header()
        key: bytes | None = None
        if header is not None:
            if self.keyring is None:
                raise PermanentFailure(
                    f"cold copy of {ref.key!r} is sealed and there is no keyring", code="blob-encrypted"
                )
            key = await self.keyring.unwrap(header)
        src = await asyncio.to_thread(self.data_path(ref.bucket, ref.key).open, "rb")
        inflater = zlib.decompressobj()
        digest, stored = hashlib.sha256(), hashlib.sha256()
        total = index = 0
        try:
            while True:
                record = await asyncio.to_thread(_read_record, src)
                if record is None:
                    break
                stored.update(_LENGTH.pack(len(record)) + record)
                piece = record
                if key is not None and header is not None:
                    piece = open_chunk(key, header, index, record, final=index == manifest.records - 1)
                index += 1
                out = inflater.decompress(piece)
                if out:
                    digest.update(out)
                    total += len(out)
                    yield out
            tail = inflater.flush()
            if tail:
                digest.update(tail)
                total += len(tail)
                yield tail
        except zlib.error:
            raise PermanentFailure(f"cold copy of {ref.key!r} does not decompress", code="cold-corrupt") from None
        finally:
            src.close()
        if (
            index != manifest.records
            or stored.hexdigest() != manifest.stored_sha256
            or total != ref.size
            or digest.hexdigest() != ref.sha256
        ):
            raise PermanentFailure(f"cold copy of {ref.key!r} is corrupt (checksum mismatch)", code="cold-corrupt")

    async def verify(self, ref: BlobRef) -> ColdManifest:
        """Read the whole cold copy back and check it; its manifest."""
        async for _ in self.open(ref):
            pass
        manifest = await self.manifest(ref.bucket, ref.key)
        if manifest is None:
            raise NotFound(f"cold copy of {ref.key!r} vanished while it was verified")
        return manifest

    # ---- write ---------------------------------------------------------------------------
    async def archive(self, ref: BlobRef, source: AsyncIterable[bytes], *, tenant: str) -> ColdManifest:
        """Write the cold copy of ``ref`` from its plaintext ``source`` (sealed under ``tenant``'s key).

        Replaces an earlier cold copy of the same key. The plaintext must match ``ref``
        (``PermanentFailure`` otherwise, and nothing is left behind).
        """
        seal: tuple[bytes, SealHeader] | None = None
        if self.keyring is not None:
            data_key = await self.keyring.new_data_key(tenant)
            seal = data_key.plaintext, data_key.header()
        data_path = self.data_path(ref.bucket, ref.key)
        await asyncio.to_thread(data_path.parent.mkdir, parents=True, exist_ok=True)
        tmp = data_path.with_suffix(".hcold.tmp")
        out = await asyncio.to_thread(tmp.open, "wb")
        writer = _Writer(out, seal)
        digest, total = hashlib.sha256(), 0
        try:
            async for piece in source:
                digest.update(piece)
                total += len(piece)
                await asyncio.to_thread(writer.feed, piece)
            await asyncio.to_thread(writer.finish)
            if total != ref.size or digest.hexdigest() != ref.sha256:
                raise PermanentFailure(
                    f"blob {ref.key!r} did not read back as its reference says", code="blob-mismatch"
                )
            await asyncio.to_thread(out.flush)
            await asyncio.to_thread(os.fsync, out.fileno())
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
        out.close()
        manifest = ColdManifest(
            bucket=ref.bucket,
            key=ref.key,
            size=ref.size,
            sha256=ref.sha256,
            content_type=ref.content_type,
            tenant=tenant,
            compressed_size=writer.compressed,
            records=writer.records,
            stored_size=writer.stored,
            stored_sha256=writer.stored_digest.hexdigest(),
            encryption=seal[1].to_json() if seal else None,
            archived_at=datetime.now(UTC),
        )
        await asyncio.to_thread(tmp.replace, data_path)
        await asyncio.to_thread(
            _write_atomic, self.manifest_path(ref.bucket, ref.key), manifest.model_dump_json().encode()
        )
        return manifest

    async def delete(self, bucket: str, key: str) -> bool:
        """Remove a cold copy (manifest first, so no manifest ever names a missing file); whether one existed."""

        def remove() -> bool:
            had = self.manifest_path(bucket, key).exists()
            self.manifest_path(bucket, key).unlink(missing_ok=True)
            self.data_path(bucket, key).unlink(missing_ok=True)
            return had

        return await asyncio.to_thread(remove)

    async def rewrap(self, bucket: str, key: str) -> bool:
        """Re-wrap a cold copy's data key under its tenant key's newest version; whether it changed."""
        manifest = await self.manifest(bucket, key)
        header = manifest.header() if manifest else None
        if manifest is None or header is None or self.keyring is None:
            return False
        fresh = await self.keyring.rewrap(header)
        if fresh.key_version == header.key_version:
            return False
        updated = manifest.model_copy(update={"encryption": fresh.to_json()})
        await asyncio.to_thread(_write_atomic, self.manifest_path(bucket, key), updated.model_dump_json().encode())
        return True

    def manifests(self) -> Iterator[ColdManifest]:
        """Every cold copy's manifest (blocking; walk it in a thread)."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob("*/*/*.json")):
            try:
                yield ColdManifest.model_validate_json(path.read_bytes())
            except (ValidationError, json.JSONDecodeError, OSError):
                log.warning("unreadable cold manifest skipped", path=str(path))
