"""One error taxonomy for every transport.

Services raise these; each transport maps them once: the gateway to RFC 9457 problem details,
JetStream consumers to ack / nak-with-delay / term + dead letter, Temporal activities to retryable
or non-retryable ``ApplicationError``. Anything else is a bug: logged with its stack trace and
treated as retryable, so no accepted work is dropped because of it.
"""

from __future__ import annotations

from typing import Any


class HearthError(Exception):
    """Base of every expected error. ``code`` is a stable machine-readable slug."""

    status: int = 500
    retryable: bool = False
    code: str = "error"
    title: str = "Error"

    def __init__(self, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description carried in error replies and dead-letter records."""
        return {
            "kind": type(self).__name__,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "status": self.status,
            "retryable": self.retryable,
            **({"extra": self.extra} if self.extra else {}),
        }


class InvalidInput(HearthError):
    """The caller sent something malformed; repeating it will fail the same way."""

    status = 422
    code = "invalid-input"
    title = "Invalid input"


class BadRequest(InvalidInput):
    """Malformed at the protocol level (e.g. a tensor of the wrong shape): HTTP 400."""

    status = 400
    code = "bad-request"
    title = "Bad request"


class NotFound(HearthError):
    status = 404
    code = "not-found"
    title = "Not found"


class Forbidden(HearthError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Unauthorized(HearthError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Conflict(HearthError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TooLarge(HearthError):
    status = 413
    code = "too-large"
    title = "Payload too large"


class Unavailable(HearthError):
    """A dependency is down or overloaded; the same call may succeed later."""

    status = 503
    retryable = True
    code = "unavailable"
    title = "Service unavailable"


class PermanentFailure(HearthError):
    """The work cannot succeed (e.g. a corrupt document); retrying is pointless."""

    status = 500
    code = "permanent-failure"
    title = "Processing failed"


_BY_KIND: dict[str, type[HearthError]] = {
    cls.__name__: cls
    for cls in (
        HearthError,
        InvalidInput,
        BadRequest,
        NotFound,
        Forbidden,
        Unauthorized,
        Conflict,
        TooLarge,
        Unavailable,
        PermanentFailure,
    )
}


def error_from_dict(data: dict[str, Any]) -> HearthError:
    """Rebuild an error sent by another process (see ``HearthError.to_dict``)."""
    cls = _BY_KIND.get(str(data.get("kind")), HearthError)
    return cls(str(data.get("detail", "unknown error")), code=data.get("code"), extra=data.get("extra"))
