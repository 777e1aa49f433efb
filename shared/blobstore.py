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
reused for lookups and deletes.

Encryption at rest (envelope encryption, ``shared.crypto``): with a ``TransitKeyring`` (the
default of ``BlobStore.create``) every object gets its own data key under its tenant's transit key
and each chunk is sealed with AES-256-GCM. The meta record then carries the ``SealHeader``
(``Hearth-Encryption``: wrapped data key, key version, nonce prefix, algorithm) and the
plaintext's size and SHA-256 (``Hearth-Content-Size``/``-Sha256``: what the ``BlobRef`` carries),
while its own ``size``/``digest`` describe the stored ciphertext, so nats-py's own reader still
checks what it reads. A meta record without ``Hearth-Encryption`` is a plaintext object (written
before encryption, or by a store without a keyring) and reads as before. ``rewrap`` re-wraps an
object's data key under the newest version of its tenant key after a rotation, rewriting the meta
record only.

The cold tier (``shared.coldstore``): the governance service moves blobs nobody read for a while
to compressed, sealed copies outside JetStream and deletes them here. ``open`` (and so ``get``) of
such a blob finds no meta record, restores the cold copy into the bucket (same key, same
``BlobRef``, a fresh data key), removes the cold copy and reads on: callers never see the tier.
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

from shared.coldstore import ColdStore
from shared.crypto import TAG_BYTES, SealHeader, TransitKeyring, open_chunk, seal_chunk
from shared.errors import Conflict, InvalidInput, NotFound, PermanentFailure, TooLarge, Unavailable
from shared.logging import get_logger
from shared.settings import HearthSettings, get_settings

log = get_logger(__name__)

DEFAULT_BUCKET: Final = "hearth-blobs"
CHUNK_SIZE: Final = 128 * 1024
BUCKET_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
KEY_PATTERN: Final = r"^[-/_=.a-zA-Z0-9]+$"
_ACK_WINDOW: Final = 16
_ROLLUP_HEADERS: Final = {"Nats-Rollup": "sub"}
DEFAULT_TENANT: Final = "default"
ENCRYPTION_HEADER: Final = "Hearth-Encryption"
CONTENT_SIZE_HEADER: Final = "Hearth-Content-Size"
CONTENT_SHA256_HEADER: Final = "Hearth-Content-Sha256"

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


def _seal_header(key: str, info: api.ObjectInfo) -> SealHeader | None:
    """The object's encryption header; ``None`` for a plaintext object."""
    values = (info.headers or {}).get(ENCRYPTION_HEADER)
    if not values:
        return None
    try:
        return SealHeader.from_json(values[0])
    except PermanentFailure as exc:
        raise PermanentFailure(f"blob {key!r}: {exc.detail}", code="blob-corrupt") from None


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


class _Upload:
    """The chunks of one ``put``: sealed when there is a data key, pipelined, counted and hashed."""

    def __init__(self, store: BlobStore, subject: str, seal: tuple[bytes, SealHeader] | None) -> None:
        self.store = store
        self.subject = subject
        self.seal = seal
        self.digest = hashlib.sha256()  # of the plaintext: the BlobRef's
        self.stored_digest = hashlib.sha256()  # of what is stored: the meta record's
        self.total = self.stored = self.chunks = 0
        self.pending: list[asyncio.Future[api.PubAck]] = []

    async def send_all(self, source: BlobSource) -> None:
        # Sealed chunks grow by the GCM tag: plaintext chunks are that much smaller, so stored
        # chunks stay within max_chunk_size. A sealed chunk must know whether it is the last, so
        # one chunk is held back until the next arrives.
        store = self.store
        held: bytes | None = None
        async for chunk in rechunk(source, store.chunk_size - (TAG_BYTES if self.seal else 0)):
            self.total += len(chunk)
            if self.total > store.max_bytes:
                raise store._too_large(self.total)
            self.digest.update(chunk)
            if held is not None:
                await self._send(held, final=False)
            held = chunk
        if held is not None:
            await self._send(held, final=True)
        for fut in self.pending:
            await store._await_ack(fut)
        self.pending.clear()

    async def _send(self, chunk: bytes, *, final: bool) -> None:
        if self.seal is not None:
            chunk = seal_chunk(self.seal[0], self.seal[1], self.chunks, chunk, final=final)
        self.stored_digest.update(chunk)
        self.stored += len(chunk)
        self.pending.append(await self.store._js.publish_async(self.subject, chunk))
        self.chunks += 1
        if len(self.pending) >= _ACK_WINDOW:
            await self.store._await_ack(self.pending.pop(0))


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
        keyring: TransitKeyring | None = None,
        cold: ColdStore | None = None,
    ) -> None:
        self._js = js
        self.keyring = keyring
        self.cold = cold
        """Where blobs moved to the cold tier are restored from; ``None``: no cold tier."""
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
        service: str | None = "gateway",
    ) -> BlobStore:
        """Open ``bucket``, creating it (file storage) when it does not exist yet.

        New blobs are encrypted with ``service``'s AppRole keyring (``secrets/approle-<service>.json``);
        ``service=None`` gives a store that writes plaintext and reads only plaintext blobs
        (setup, which has no data to store), and so does a missing credentials file (logged as a
        warning: the compose stack does not provision AppRoles yet).
        """
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
        keyring = None
        if service and settings.secret_path(f"approle-{service}.json").exists():
            keyring = TransitKeyring.from_settings(settings, service)
        elif service:
            # The native launcher always writes it; the compose stack does not provision AppRoles yet.
            log.warning(
                "blob encryption is OFF: no OpenBao AppRole credentials",
                missing=str(settings.secret_path(f"approle-{service}.json")),
            )
        cold = ColdStore.from_settings(settings, keyring)
        return cls(js, bucket=bucket, max_bytes=settings.blob_max_bytes, keyring=keyring, cold=cold)

    # ---- write ---------------------------------------------------------------------------
    async def put(
        self,
        source: BlobSource,
        content_type: str = "application/octet-stream",
        key: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> BlobRef:
        """Store ``source`` and return its reference.

        With a keyring the blob is encrypted under ``tenant``'s key (see the module docstring);
        the returned ``BlobRef`` always describes the plaintext.

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
        seal: tuple[bytes, SealHeader] | None = None
        if self.keyring is not None:
            data_key = await self.keyring.new_data_key(tenant)
            seal = data_key.plaintext, data_key.header()
        upload = _Upload(self, OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=nuid), seal)
        try:
            await upload.send_all(source)
            previous = await self._existing(key)
            headers: dict[str, list[str]] = {"Content-Type": [content_type]}
            if seal is not None:
                headers[ENCRYPTION_HEADER] = [seal[1].to_json()]
                headers[CONTENT_SIZE_HEADER] = [str(upload.total)]
                headers[CONTENT_SHA256_HEADER] = [upload.digest.hexdigest()]
            info = api.ObjectInfo(
                name=key,
                bucket=self.bucket,
                nuid=nuid,
                size=upload.stored,
                chunks=upload.chunks,
                digest=_digest_field(upload.stored_digest.digest()),
                mtime=datetime.now(UTC).isoformat(),
                headers=headers,
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
            await asyncio.shield(self._discard(upload.pending, upload.subject))
            raise
        if previous is not None and previous.nuid != nuid and not previous.deleted:
            await self._purge(OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=previous.nuid))
        return ref_probe.model_copy(update={"size": upload.total, "sha256": upload.digest.hexdigest()})

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
        if (info is None or info.deleted) and self.cold is not None:
            info = await self._restore(ref)
        current = self._ref_from_info(ref.key, info)
        if info is None or current.sha256 != ref.sha256 or current.size != ref.size:
            raise PermanentFailure(f"blob {ref.key!r} changed since the reference was made", code="blob-mismatch")
        if ref.size == 0:
            return
        header = _seal_header(ref.key, info)
        if header is None:
            async for chunk in self._read_chunks(ref.key, info.nuid, ref.size, ref.sha256):
                yield chunk
            return
        if self.keyring is None:
            raise PermanentFailure(
                f"blob {ref.key!r} is encrypted and this store has no keyring", code="blob-encrypted"
            )
        data_key = await self.keyring.unwrap(header)
        stored_sha = _hex_from_digest_field(info.digest) or ""
        digest = hashlib.sha256()
        total = index = 0
        last = (info.chunks or 0) - 1
        async for sealed in self._read_chunks(ref.key, info.nuid, info.size or 0, stored_sha):
            # GCM authenticates each chunk before it is handed out (and its place: index, last).
            chunk = open_chunk(data_key, header, index, sealed, final=index == last)
            index += 1
            digest.update(chunk)
            total += len(chunk)
            yield chunk
        if index != last + 1 or total != ref.size or digest.hexdigest() != ref.sha256:
            raise PermanentFailure(f"blob {ref.key!r} is corrupt (SHA-256 mismatch)", code="blob-corrupt")

    async def rewrap(self, ref: BlobRef | str) -> bool:
        """Re-wrap an encrypted blob's data key with the newest version of its tenant key.

        After a key rotation, so old key versions can be retired; only the meta record is
        rewritten (same chunks, same data key). Returns whether anything changed (``False`` for
        a plaintext blob or one already on the newest version). ``Conflict`` if the blob was
        replaced meanwhile.
        """
        key = ref if isinstance(ref, str) else ref.key
        if self.keyring is None:
            return False
        subject = self._meta_subject(key)
        try:
            msg = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            raise NotFound(f"no blob {key!r} in bucket {self.bucket!r}") from None
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"JetStream did not answer for blob {key!r}: {exc!r}") from exc
        info = api.ObjectInfo.from_response(json.loads(msg.data or b"{}"))
        self._ref_from_info(key, info)
        header = _seal_header(key, info)
        if header is None:
            return False
        fresh = await self.keyring.rewrap(header)
        if fresh.key_version == header.key_version:
            return False
        info.headers = {**(info.headers or {}), ENCRYPTION_HEADER: [fresh.to_json()]}
        try:
            # Only if the meta record is still the one read: a concurrent put must not be undone.
            await self._js.publish(
                subject,
                json.dumps(info.as_dict()).encode(),
                timeout=self.timeout,
                headers={**_ROLLUP_HEADERS, "Nats-Expected-Last-Subject-Sequence": str(msg.seq)},
            )
        except nats.js.errors.BadRequestError as exc:
            raise Conflict(f"blob {key!r} changed while its key was rewrapped; rewrap it again") from exc
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"blob bucket {self.bucket!r} did not store the rewrapped meta record: {exc!r}") from exc
        return True

    async def _restore(self, ref: BlobRef) -> api.ObjectInfo | None:
        """Bring ``ref`` back from the cold tier (the hot copy is missing); its meta record, or ``None``."""
        if self.cold is None:
            return None
        manifest = await self.cold.manifest(self.bucket, ref.key)
        if manifest is None:
            return None
        try:
            await self.put(self.cold.open(ref), manifest.content_type, key=ref.key, tenant=manifest.tenant)
        except (NotFound, FileNotFoundError):
            # Another reader restored it (and removed the cold copy) while this one started.
            return await self._existing(ref.key)
        await self.cold.delete(self.bucket, ref.key)
        log.info("blob restored from the cold tier", bucket=self.bucket, key=ref.key, size=ref.size)
        return await self._existing(ref.key)

    async def _read_chunks(self, key: str, nuid: str, size: int, sha256: str) -> AsyncIterator[bytes]:
        """The stored chunks, checked against the stored ``size`` and ``sha256`` at the end."""
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=nuid)
        try:
            sub = await self._js.subscribe(subject, stream=self._stream, ordered_consumer=True)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"cannot read blob {key!r}: {exc!r}") from exc
        digest = hashlib.sha256()
        total = 0
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.timeout)
                except nats.errors.TimeoutError:
                    raise Unavailable(f"reading blob {key!r} stalled after {total} bytes") from None
                digest.update(msg.data)
                total += len(msg.data)
                if total > size:
                    break
                yield msg.data
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        if total != size or digest.hexdigest() != sha256:
            raise PermanentFailure(f"blob {key!r} is corrupt (SHA-256 mismatch)", code="blob-corrupt")

    async def stored_at(self, key: str) -> datetime | None:
        """When the hot copy of ``key`` was written; ``None`` when the bucket holds none."""
        info = await self._existing(key)
        if info is None or info.deleted:
            return None
        try:
            written = datetime.fromisoformat(info.mtime) if info.mtime else datetime.fromtimestamp(0, UTC)
        except ValueError:
            return datetime.fromtimestamp(0, UTC)
        return written if written.tzinfo else written.replace(tzinfo=UTC)

    async def sealed(self) -> list[tuple[str, SealHeader | None]]:
        """Every blob of the bucket with its encryption header (``None``: plaintext); deleted ones left out."""
        # Not nats-py's ObjectStore.list: it looks the stream up by subject (STREAM.NAMES), which
        # the services' NATS permissions do not grant; the stream is known here.
        subject = OBJ_META_PRE_TEMPLATE.format(bucket=self.bucket, obj=">")
        found: list[tuple[str, SealHeader | None]] = []
        try:
            await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return found
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise Unavailable(f"cannot list blob bucket {self.bucket!r}: {exc!r}") from exc
        sub = await self._js.subscribe(
            subject, stream=self._stream, ordered_consumer=True, deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.timeout)
                except nats.errors.TimeoutError:
                    raise Unavailable(f"listing blob bucket {self.bucket!r} stalled") from None
                info = api.ObjectInfo.from_response(json.loads(msg.data or b"{}"))
                if info.name and not info.deleted:
                    found.append((info.name, _seal_header(info.name, info)))
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

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
        headers = info.headers or {}
        size = info.size or 0
        sha = _hex_from_digest_field(info.digest)
        if ENCRYPTION_HEADER in headers:  # the ref describes the plaintext, the meta record the ciphertext
            try:
                size = int(headers[CONTENT_SIZE_HEADER][0])
                sha = str(headers[CONTENT_SHA256_HEADER][0])
            except (KeyError, IndexError, ValueError):
                raise PermanentFailure(
                    f"encrypted blob {key!r} has no plaintext size or digest", code="blob-corrupt"
                ) from None
        if sha is None:
            raise PermanentFailure(f"blob {key!r} has no SHA-256 digest", code="blob-corrupt")
        content_type = (headers.get("Content-Type") or ["application/octet-stream"])[0]
        return BlobRef(bucket=self.bucket, key=key, size=size, sha256=sha, content_type=content_type)

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
