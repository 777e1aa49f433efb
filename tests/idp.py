"""A small OIDC identity provider for the tests: signing keys, a JWKS and a discovery document over HTTP.

It stands in for the external IdP (Keycloak, Entra ID, ...), which is outside Hearth: a real HTTP
server on 127.0.0.1 in a thread, serving ``/.well-known/openid-configuration`` and ``/jwks``, and
signing tokens with PyJWT. Keys can be added, published or withdrawn (rotation); every request is
counted, and ``failing`` makes it answer 500.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

KeyKind = Literal["rsa", "ec", "ed25519"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
ALGORITHM = {"rsa": "RS256", "ec": "ES256", "ed25519": "EdDSA"}


def new_key(kind: KeyKind) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class LocalIdp:
    """The IdP: ``issuer`` is ``http://127.0.0.1:<port>``; ``token(...)`` signs one with a published key."""

    def __init__(self, port: int = 0, *, audience: str = "hearth-test") -> None:
        self.audience = audience
        self.keys: dict[str, tuple[PrivateKey, str]] = {}
        self.published: list[str] = []
        self.requests: Counter[str] = Counter()
        self.failing = False
        self.announced_issuer: str | None = None
        """The issuer the discovery document names, when not this one (a misconfigured IdP)."""
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.requests[self.path] += 1
                if idp.failing:
                    self.send_error(500)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": idp.announced_issuer or idp.issuer, "jwks_uri": f"{idp.issuer}/jwks"}
                elif self.path == "/jwks":
                    body = idp.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LocalIdp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_key(self, kind: KeyKind = "rsa", *, publish: bool = True) -> str:
        kid = f"{kind}-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = (new_key(kind), ALGORITHM[kind])
        if publish:
            self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.keys[kid][0], kid, self.keys[kid][1]) for kid in self.published]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"user-{uuid.uuid4().hex[:8]}",
            "iat": now,
            "exp": now + 300,
            "hearth_tenant": "acme",
            "roles": ["user"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, kid: str | None = None, *, alg: str | None = None, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A token signed with key ``kid`` (default: the first published); ``claims`` override (None: drop)."""
        kid = kid or self.published[0]
        key, key_alg = self.keys[kid]
        return jwt.encode(self.claims(**claims), key, algorithm=alg or key_alg, headers={"kid": kid, **(headers or {})})
