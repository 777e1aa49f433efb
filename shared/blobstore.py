"""Claim-check blob store on the JetStream object store: large payloads go here, events carry a ``BlobRef``.

Why not nats-py's ``ObjectStore.put/get`` as is: ``put`` only reads a synchronous reader (in a
thread) and cannot enforce a size limit before the data is stored, and ``get`` collects the whole
object in memory (``bytes +=`` per chunk) or writes it to a file. So this module writes and reads
the object store's own wire format (ADR-20: chunks on ``$O.<bucket>.C.<nuid>``, a roll-up meta
record on ``$O.<bucket>.M.<base64url(name)>``) itself, which gives:

* ``put`` from bytes, a binary file or an async iterator, chunk by chunk with a window of
  pipelined acks, refusing with ``TooLarge`` as soon as the limit is crossed and purging every
  chunk already sent (nothing is left behind, the meta record is never written);
* ``open`` as an async iterator of chunks, memory bounded by the chunk size;
* a SHA-256 check on every read against the ``BlobRef`` (``PermanentFailure`` on mismatch).

Objects stay readable by the ``nats object`` CLI and nats-py, and nats-py's meta helpers are
reused for lookups and deletes. Encryption at rest is applied by the governance layer before
``put`` (envelope encryption), not here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import BinaryIO, Final

import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import (
    OBJ_CHUNKS_PRE_TEMPLATE,
    OBJ_DIGEST_TYPE,
    OBJ_META_PRE_TEMPLATE,
    OBJ_STREAM_TEMPLATE,
    ObjectStore,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidInput, NotFound, PermanentFailure, TooLarge, Unavailable
from shared.logging import get_logger
from shared.settings import HearthSettings, get_settings

log = get_logger(__name__)

DEFAULT_BUCKET: Final = "hearth-blobs"
CHUNK_SIZE: Final = 128 * 1024
BUCKET_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
KEY_PATTERN: Final = r"^[-/_=.a-zA-Z0-9]+$"
_ACK_WINDOW: Final = 16
_ROLLUP_HEADERS: Final = {"Nats-Rollup": "sub"}

BlobSource = bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]
"""What ``BlobStore.put`` reads: bytes, a binary file object, or an async iterator of byte chunks."""


class BlobRef(BaseModel):
    """A reference to a stored blob; events carry this instead of the bytes (claim check)."""

    model_config = ConfigDict(frozen=True)

    bucket: str = Field(pattern=BUCKET_PATTERN, description="Object store bucket holding the blob.")
    key: str = Field(pattern=KEY_PATTERN, max_length=1024, description="Object name inside the bucket.")
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the content, checked on every read.")
    content_type: str = Field(default="application/octet-stream", max_length=255, description="Media type.")


def _digest_field(digest: bytes) -> str:
    return OBJ_DIGEST_TYPE + base64.urlsafe_b64encode(digest).decode()


def _hex_from_digest_field(value: str | None) -> str | None:
    if not value or not value.upper().startswith(OBJ_DIGEST_TYPE.upper()):
        return None
    return base64.urlsafe_b64decode(value[len(OBJ_DIGEST_TYPE) :]).hex()


async def rechunk(source: BlobSource, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Yield ``source`` as chunks of exactly ``chunk_size`` bytes (the last one may be shorter)."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    if isinstance(source, io.BytesIO):
        view = source.getbuffer()[source.tell() :]
        try:
            for start in range(0, len(view), chunk_size):
                yield bytes(view[start : start + chunk_size])
        finally:
            view.release()
        return
    if isinstance(source, AsyncIterable):
        buffer = bytearray()
        async for piece in source:
            buffer += piece
            while len(buffer) >= chunk_size:
                yield bytes(buffer[:chunk_size])
                del buffer[:chunk_size]
        if buffer:
            yield bytes(buffer)
        return
    while chunk := await asyncio.to_thread(source.read, chunk_size):
        yield chunk


class BlobStore:
    """Streams blobs into and out of one object-store bucket; see the module docstring."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str = DEFAULT_BUCKET,
        max_bytes: int,
        chunk_size: int = CHUNK_SIZE,
        timeout: float = 10.0,
    ) -> None:
        self._js = js
        self.bucket = bucket
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.timeout = timeout
        self._stream = OBJ_STREAM_TEMPLATE.format(bucket=bucket)
        self._meta = ObjectStore(name=bucket, stream=self._stream, js=js)

    @classmethod
    async def create(
        cls,
        js: JetStreamContext,
        settings: HearthSettings | None = None,
        *,
        bucket: str = DEFAULT_BUCKET,
        description: str = "Hearth claim-check blobs",
    ) -> BlobStore:
        """Open ``bucket``, creating it (file storage) when it does not exist yet."""
        settings = settings or get_settings()
        try:
            await js.object_store(bucket)
        except BucketNotFoundError:
            config = api.ObjectStoreConfig(description=description, storage=api.StorageType.FILE)
            try:
                await js.create_object_store(bucket, config=config)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                raise Unavailable(f"cannot create blob bucket {bucket!r}: {exc!r}") from exc
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"JetStream did not answer for blob bucket {bucket!r}: {exc!r}") from exc
        return cls(js, bucket=bucket, max_bytes=settings.blob_max_bytes)

    # ---- write ---------------------------------------------------------------------------
    async def put(
        self,
        source: BlobSource,
        content_type: str = "application/octet-stream",
        key: str | None = None,
    ) -> BlobRef:
        """Store ``source`` and return its reference.

        ``key`` defaults to a fresh UUID; putting to an existing key replaces it (the old
        chunks are purged once the new meta record is stored, so a reader holding the old
        ``BlobRef`` gets ``PermanentFailure`` instead of wrong data). More than
        ``max_bytes`` raises ``TooLarge`` and leaves nothing stored.
        """
        key = key or uuid.uuid4().hex
        try:
            ref_probe = BlobRef(bucket=self.bucket, key=key, size=0, sha256="0" * 64, content_type=content_type)
        except ValidationError as exc:
            reasons = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)]
            raise InvalidInput("invalid blob key or content type", extra={"errors": reasons}) from None
        if isinstance(source, bytes | bytearray | memoryview) and len(source) > self.max_bytes:
            raise self._too_large(len(source))
        nuid = uuid.uuid4().hex
        chunk_subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=nuid)
        digest = hashlib.sha256()
        total = chunks = 0
        pending: list[asyncio.Future[api.PubAck]] = []
        try:
            async for chunk in rechunk(source, self.chunk_size):
                total += len(chunk)
                if total > self.max_bytes:
                    raise self._too_large(total)
                digest.update(chunk)
                pending.append(await self._js.publish_async(chunk_subject, chunk))
                chunks += 1
                if len(pending) >= _ACK_WINDOW:
                    await self._await_ack(pending.pop(0))
            for fut in pending:
                await self._await_ack(fut)
            pending.clear()
            previous = await self._existing(key)
            info = api.ObjectInfo(
                name=key,
                bucket=self.bucket,
                nuid=nuid,
                size=total,
                chunks=chunks,
                digest=_digest_field(digest.digest()),
                mtime=datetime.now(UTC).isoformat(),
                headers={"Content-Type": [content_type]},
                options=api.ObjectMetaOptions(max_chunk_size=self.chunk_size),
            )
            try:
                await self._js.publish(
                    self._meta_subject(key),
                    json.dumps(info.as_dict()).encode(),
                    timeout=self.timeout,
                    headers=dict(_ROLLUP_HEADERS),
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                raise Unavailable(f"blob bucket {self.bucket!r} did not store the meta record: {exc!r}") from exc
        except BaseException:
            await asyncio.shield(self._discard(pending, chunk_subject))
            raise
        if previous is not None and previous.nuid != nuid and not previous.deleted:
            await self._purge(OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=previous.nuid))
        return ref_probe.model_copy(update={"size": total, "sha256": digest.hexdigest()})

    # ---- read ----------------------------------------------------------------------------
    async def stat(self, key: str) -> BlobRef:
        """The reference of the blob stored under ``key`` (``NotFound`` if there is none)."""
        return self._ref_from_info(key, await self._existing(key))

    async def get(self, ref: BlobRef) -> bytes:
        """The whole blob, verified against ``ref.sha256``."""
        buffer = bytearray()
        async for chunk in self.open(ref):
            buffer += chunk
        return bytes(buffer)

    async def open(self, ref: BlobRef) -> AsyncIterator[bytes]:
        """Stream the blob chunk by chunk.

        The SHA-256 is checked when the last chunk has been read: a mismatch raises
        ``PermanentFailure`` from the iterator, so treat streamed data as unverified until the
        iteration ends without error.
        """
        if ref.bucket != self.bucket:
            raise InvalidInput(f"blob {ref.key!r} belongs to bucket {ref.bucket!r}, not {self.bucket!r}")
        info = await self._existing(ref.key)
        current = self._ref_from_info(ref.key, info)
        if info is None or current.sha256 != ref.sha256 or current.size != ref.size:
            raise PermanentFailure(f"blob {ref.key!r} changed since the reference was made", code="blob-mismatch")
        if ref.size == 0:
            return
        async for chunk in self._read_chunks(ref, info.nuid):
            yield chunk

    async def _read_chunks(self, ref: BlobRef, nuid: str) -> AsyncIterator[bytes]:
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=nuid)
        try:
            sub = await self._js.subscribe(subject, stream=self._stream, ordered_consumer=True)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"cannot read blob {ref.key!r}: {exc!r}") from exc
        digest = hashlib.sha256()
        total = 0
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.timeout)
                except nats.errors.TimeoutError:
                    raise Unavailable(f"reading blob {ref.key!r} stalled after {total} bytes") from None
                digest.update(msg.data)
                total += len(msg.data)
                if total > ref.size:
                    break
                yield msg.data
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        if total != ref.size or digest.hexdigest() != ref.sha256:
            raise PermanentFailure(f"blob {ref.key!r} is corrupt (SHA-256 mismatch)", code="blob-corrupt")

    # ---- delete --------------------------------------------------------------------------
    async def delete(self, ref: BlobRef | str) -> None:
        """Delete a blob (its chunks are purged); ``NotFound`` if it does not exist."""
        key = ref if isinstance(ref, str) else ref.key
        try:
            await self._meta.delete(key)
        except NotFoundError:
            raise NotFound(f"no blob {key!r} in bucket {self.bucket!r}") from None
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"cannot delete blob {key!r}: {exc!r}") from exc

    # ---- helpers -------------------------------------------------------------------------
    def _ref_from_info(self, key: str, info: api.ObjectInfo | None) -> BlobRef:
        if info is None or info.deleted:
            raise NotFound(f"no blob {key!r} in bucket {self.bucket!r}")
        sha = _hex_from_digest_field(info.digest)
        if sha is None:
            raise PermanentFailure(f"blob {key!r} has no SHA-256 digest", code="blob-corrupt")
        headers = info.headers or {}
        content_type = (headers.get("Content-Type") or ["application/octet-stream"])[0]
        return BlobRef(bucket=self.bucket, key=key, size=info.size or 0, sha256=sha, content_type=content_type)

    def _meta_subject(self, key: str) -> str:
        return OBJ_META_PRE_TEMPLATE.format(bucket=self.bucket, obj=base64.urlsafe_b64encode(key.encode()).decode())

    async def _existing(self, key: str) -> api.ObjectInfo | None:
        try:
            return await self._meta.get_info(key, show_deleted=True)
        except NotFoundError:
            return None
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"JetStream did not answer for blob {key!r}: {exc!r}") from exc

    async def _await_ack(self, fut: asyncio.Future[api.PubAck]) -> None:
        try:
            await asyncio.wait_for(fut, self.timeout)
        except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"blob bucket {self.bucket!r} did not acknowledge a chunk: {exc!r}") from exc

    async def _discard(self, pending: list[asyncio.Future[api.PubAck]], chunk_subject: str) -> None:
        """Remove a refused or failed upload: chunks still in flight first land, then all are purged."""
        if pending:
            # Cancelling would not unsend them: a chunk acked after the purge would stay behind.
            await asyncio.wait(pending, timeout=self.timeout)
        await self._purge(chunk_subject)

    async def _purge(self, chunk_subject: str) -> None:
        try:
            await self._js.purge_stream(self._stream, subject=chunk_subject)
        except Exception:  # the caller's original error matters more than a failed cleanup
            log.exception("blob chunk purge failed", bucket=self.bucket, subject=chunk_subject)

    def _too_large(self, size: int) -> TooLarge:
        return TooLarge(
            f"blob exceeds the limit of {self.max_bytes} bytes (HEARTH_BLOB_MAX_BYTES); got at least {size}",
            extra={"limit": self.max_bytes},
        )
