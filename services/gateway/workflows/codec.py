"""``/v1/codec``: Temporal's remote codec protocol, so the Temporal UI shows decrypted payloads.

Workflow payloads are encrypted by every client and worker (``shared.crypto.payload_codec``);
Temporal and its database hold only ``binary/encrypted`` ones. The UI (``temporal server start-dev
--ui-codec-endpoint <gateway>/v1/codec``) POSTs ``{"payloads": [...]}`` (protobuf JSON: base64
metadata values and data) to ``/decode`` (and ``/encode`` for what an operator sends from the UI),
with an ``X-Namespace`` header. Both are admin-only through the guard and Casbin, as every route.

The browser cannot send an API key header from the UI, so an admin opens a *codec session*:
``POST /v1/codec/session`` with the key (the dashboard does it at sign-in) sets an HttpOnly,
SameSite=Strict cookie scoped to ``/v1/codec``, holding that key; the guard accepts it on these
routes only, so revocation, expiry and role checks apply as for the header. The UI must be told to
send it (its codec setting "Include cross-origin credentials"), and CORS here admits the Temporal
UI's origin only, with credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from google.protobuf import json_format
from litestar import Controller, Request, Response, delete, post
from litestar.di import Provide
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from services.gateway.auth import CODEC_SESSION_COOKIE as SESSION_COOKIE
from services.gateway.auth import presented_key
from shared.crypto.payload_codec import CODEC_PATH, EnvelopePayloadCodec
from shared.errors import BadRequest, PermanentFailure

SESSION_MAX_AGE_S: Final = 8 * 3600
_CORS_HEADERS: Final = "content-type, x-namespace, authorization"


class CodecServices:
    """What the codec routes need: the gateway's payload codec and the platform's namespace."""

    def __init__(self, codec: EnvelopePayloadCodec, namespace: str) -> None:
        self.codec = codec
        self.namespace = namespace


def dependencies(services: CodecServices) -> dict[str, Provide]:
    return {"codec_services": Provide(lambda: services, use_cache=True, sync_to_thread=False)}


def _payloads(body: bytes, request: Request[Any, Any, Any], services: CodecServices) -> Payloads:
    namespace = request.headers.get("x-namespace")
    if namespace and namespace != services.namespace:
        raise BadRequest(f"this codec serves the namespace {services.namespace!r}, not {namespace!r}")
    message = Payloads()
    try:
        json_format.Parse(body or b"{}", message)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not Payloads as protobuf JSON: {exc}", code="invalid-payloads") from None
    return message


def _reply(payloads: Iterable[Any]) -> Response[bytes]:
    body = json_format.MessageToDict(Payloads(payloads=list(payloads)))
    return Response(content=json.dumps(body).encode(), media_type="application/json")


class CodecController(Controller):
    path = CODEC_PATH
    tags = ["workflows"]

    @post(
        "/decode",
        status_code=200,
        summary="Decrypt workflow payloads (Temporal remote codec protocol; admin)",
        description='Body and answer: `{"payloads": [{"metadata": {...}, "data": "<base64>"}]}`. '
        "Payloads that are not `binary/encrypted` come back as they are; altered ones get a 400.",
    )
    async def decode(self, request: Request[Any, Any, Any], codec_services: CodecServices) -> Response[bytes]:
        payloads = _payloads(await request.body(), request, codec_services)
        try:
            decoded = await codec_services.codec.decode(payloads.payloads)
        except PermanentFailure as exc:  # tampered, foreign or shredded: the protocol's decoder error (400)
            raise BadRequest(exc.detail, code=exc.code) from None
        return _reply(decoded)

    @post(
        "/encode",
        status_code=200,
        summary="Encrypt payloads the way workers do (Temporal remote codec protocol; admin)",
    )
    async def encode(self, request: Request[Any, Any, Any], codec_services: CodecServices) -> Response[bytes]:
        payloads = _payloads(await request.body(), request, codec_services)
        return _reply(await codec_services.codec.encode(payloads.payloads))

    @post(
        "/session",
        status_code=204,
        summary="Open a codec session for the Temporal UI: an HttpOnly cookie for /v1/codec (admin)",
        description="The presented key goes into a `SameSite=Strict`, `HttpOnly` cookie sent only to "
        "`/v1/codec`, for 8 hours or until the key is revoked or expires.",
    )
    async def open_session(self, request: Request[Any, Any, Any]) -> Response[None]:
        response: Response[None] = Response(content=None, status_code=204)
        response.set_cookie(
            SESSION_COOKIE,
            presented_key(request) or "",
            max_age=SESSION_MAX_AGE_S,
            path=CODEC_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @delete("/session", status_code=204, summary="Close the codec session (the cookie is dropped)")
    async def close_session(self) -> Response[None]:
        response: Response[None] = Response(content=None, status_code=204)
        response.delete_cookie(SESSION_COOKIE, path=CODEC_PATH)
        return response


def codec_cors(origins: Iterable[str]) -> Any:
    """ASGI middleware factory: CORS for ``/v1/codec`` and the given origins only, with credentials.

    Preflights from an allowed origin are answered here (browsers send no credentials with them,
    so the guard would refuse); answers to other origins carry no CORS headers and stay unreadable.
    Every other path is passed through untouched.
    """
    allowed = frozenset(o.rstrip("/") for o in origins if o)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def cors(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not str(scope.get("path", "")).startswith(CODEC_PATH + "/"):
                await app(scope, receive, send)
                return
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin-1")
            granted = origin in allowed
            extra = [
                (b"vary", b"Origin"),
                *(
                    [(b"access-control-allow-origin", origin.encode()), (b"access-control-allow-credentials", b"true")]
                    if granted
                    else []
                ),
            ]
            if scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers:
                status = 204 if granted else 403
                preflight = [
                    *extra,
                    (b"access-control-allow-methods", b"POST, DELETE"),
                    (b"access-control-allow-headers", _CORS_HEADERS.encode()),
                    (b"access-control-max-age", b"600"),
                    (b"content-length", b"0"),
                ]
                answer = preflight if granted else extra
                await send({"type": "http.response.start", "status": status, "headers": answer})
                await send({"type": "http.response.body", "body": b""})
                return

            async def send_with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                await send(message)

            await app(scope, receive, send_with_cors)

        return cors

    return middleware
