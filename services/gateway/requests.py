"""Request helpers every route module uses: the caller, its tenant scope, bodies, uploads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

import structlog
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.exceptions import ValidationException
from pydantic import BaseModel, ValidationError

from shared.blobstore import CHUNK_SIZE, BlobRef, BlobStore
from shared.errors import BadRequest, HearthError
from shared.identity.apikeys import Principal
from shared.workflow import DocumentUpload

log = structlog.get_logger("gateway")

_M = TypeVar("_M", bound=BaseModel)

IDEMPOTENCY_KEY: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def check_idempotency_key(key: str | None) -> str | None:
    """The ``Idempotency-Key`` header as given; a 400 when it is not 1-200 of A-Z a-z 0-9 . _ -."""
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise BadRequest("Idempotency-Key must be 1 to 200 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
    return key


def validated(model: type[_M], data: Any) -> _M:
    """``data`` (a dict, or JSON bytes) as ``model``; a 400 problem naming each wrong field otherwise."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"key": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "source": "body"}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ValidationException("the request body is invalid", extra=errors) from None


async def json_body(request: Request[Any, Any, Any]) -> bytes:
    """The request body, or ``{}`` when it is empty (routes whose fields all have defaults)."""
    body = await request.body()
    return body if body.strip() else b"{}"


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal  # set by AccessGuard on every non-public route
    return principal


def is_admin(principal: Principal) -> bool:
    return principal.role == "admin"


def tenant_scope(principal: Principal) -> str | None:
    """The tenant whose runs a key may see: its own, or any (``None``) for an admin."""
    return None if is_admin(principal) else principal.tenant


async def store_upload(blobs: BlobStore, upload: UploadFile, tenant: str) -> DocumentUpload:
    """Stream an upload into the blob store, encrypted under ``tenant``'s key."""
    first = await upload.read(CHUNK_SIZE)
    if not first:
        raise BadRequest("the upload is empty: send the document in the `file` field")

    async def chunks() -> AsyncIterator[bytes]:
        chunk = first
        while chunk:
            yield chunk
            chunk = await upload.read(CHUNK_SIZE)

    content_type = upload.content_type or "application/octet-stream"
    blob = await blobs.put(chunks(), content_type=content_type, tenant=tenant)
    return DocumentUpload(blob=blob, filename=upload.filename or None, content_type=content_type)


async def discard_blob(blobs: BlobStore, blob: BlobRef) -> None:
    try:
        await blobs.delete(blob)
    except HearthError as exc:  # a stray blob costs space, not correctness
        log.warning("could not delete an unused upload", blob=blob.key, reason=exc.detail)
