"""Errors → RFC 9457 problem details, mapped once for the whole API."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from shared.errors import HearthError

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("gateway.errors")


def _problem(
    request: Request[Any, Any, Any], status: int, title: str, detail: str, code: str, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"https://hearth.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON)


def hearth_error_handler(request: Request[Any, Any, Any], exc: HearthError) -> Response[dict[str, Any]]:
    response = _problem(request, exc.status, exc.title, exc.detail, exc.code, **exc.extra)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hearth"'
    elif exc.status == 503:
        response.headers["Retry-After"] = str(exc.extra.get("retry_after_s", 5))
    return response


def validation_error_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return _problem(request, exc.status_code, "Invalid request", exc.detail, "invalid-request", errors=exc.extra or [])


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "http-error"
    )
    return _problem(request, exc.status_code, exc.detail or "HTTP error", exc.detail, code)


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # Only the unexpected gets a stack trace in the log; the client never sees one.
    log.exception("unhandled error", path=request.url.path)
    return _problem(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal error",
        "an unexpected error occurred; see the gateway log",
        "internal-error",
    )


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    HearthError: hearth_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
