"""``/dashboard``: the operator page, static files served from the gateway itself (no CDN, no build).

The files are public like ``/v1/health``: the page shell holds no data. It asks for an API key and
calls ``/v1/telemetry/*``, ``/v1/alerts``, ``/v1/runs`` and ``/v1/traces`` with it, where the
guard and Casbin decide as for any other client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Response
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_DIR: Final = Path(__file__).parent / "static"

# Everything the page loads is its own file; data only ever arrives by fetch from this origin. A
# value that slipped into markup could therefore run no script even if one were ever injected.
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with the gateway's version: always revalidated, never stale.
    "Cache-Control": "no-cache",
}


def _secure(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


def dashboard_router() -> Router:
    """The page at ``/dashboard`` (``index.html``) and its script and style sheet beside it."""
    return create_static_files_router(
        path="/dashboard",
        directories=[STATIC_DIR],
        html_mode=True,
        name="dashboard",
        opt={"public": True},
        include_in_schema=False,
        after_request=_secure,
    )
