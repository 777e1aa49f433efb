"""OIDC access tokens (JWTs) from an external identity provider, mapped to a ``Principal``.

Optional, beside the API keys: configured by an issuer and an audience (``HEARTH_OIDC_*``). The
signing keys come from the issuer's JWKS (its URL given, or discovered from
``<issuer>/.well-known/openid-configuration``), cached for ``jwks_ttl_s`` and fetched again when a
token names an unknown ``kid`` (key rotation), but no more often than ``refresh_interval_s``: a flood
of tokens with made-up key ids costs the identity provider one request per interval, not one each.
When a refresh fails the keys already held keep working; with none held the token gets a 503.

Only asymmetric algorithms are accepted, each bound to the key type it needs, so neither ``none``
nor an HMAC "signed" with the public key can pass. ``exp``, ``iat``, ``iss``, ``aud`` and ``sub``
are required, ``nbf`` checked when present, all with ``leeway_s``. The token must name its tenant;
its roles are limited to ``roles`` (``admin`` only when listed), its clearance capped at
``max_clearance`` and ``default_clearance`` (``public``: least privilege) when it names none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt
import structlog

from shared.errors import Unauthorized, Unavailable
from shared.identity.apikeys import Principal
from shared.identity.authz import ANY_DOMAIN, LEVELS, check_domain, check_role, clears

log = structlog.get_logger("oidc")

ASYMMETRIC: Final[tuple[str, ...]] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""Every algorithm a token may be signed with: public-key signatures only."""
_EC_CURVES: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_JWT_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_MAX_DOCUMENT_BYTES: Final = 1024 * 1024
_MAX_SUB: Final = 255
SUBJECT_PREFIX: Final = "oidc:"
"""An OIDC principal's ``prefix`` (what the audit log records) is ``oidc:<sub>``."""


def looks_like_jwt(credential: str) -> bool:
    """Three base64url parts joined by dots (a JWS compact serialisation); API keys never are."""
    return len(credential) < 16384 and _JWT_SHAPE.match(credential) is not None


def _secure_url(url: str, variable: str) -> str:
    """``https``, or ``http`` to a loopback address only: plain HTTP elsewhere would let anyone on
    the path swap the signing keys."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return url
    raise ValueError(f"{variable}: {url!r} must be an https URL (http only to a loopback address)")


@dataclass(frozen=True)
class OidcConfig:
    """How tokens of one issuer are verified and mapped; ``check`` raises ``ValueError`` naming the field."""

    issuer: str
    audience: tuple[str, ...]
    jwks_url: str = ""
    """Empty: discovered from the issuer's ``/.well-known/openid-configuration``."""
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: float = 30.0
    tenant_claim: str = "hearth_tenant"
    roles_claim: str = "roles"
    """A claim name, or a dotted path into nested claims (``realm_access.roles`` for Keycloak)."""
    clearance_claim: str = "hearth_clearance"
    default_clearance: str = "public"
    max_clearance: str = "confidential"
    roles: tuple[str, ...] = ("tenant_admin", "user")
    """The roles a token may carry, most privileged first: a token's role is the first it holds."""
    jwks_ttl_s: float = 300.0
    refresh_interval_s: float = 30.0
    timeout_s: float = 5.0
    ca_file: str = ""

    def check(self) -> OidcConfig:
        self._check_sources()
        self._check_mapping()
        for name, seconds, least in (
            ("leeway_s", self.leeway_s, 0.0),
            ("refresh_interval_s", self.refresh_interval_s, 0.0),
            ("jwks_ttl_s", self.jwks_ttl_s, 1e-3),
            ("timeout_s", self.timeout_s, 1e-3),
        ):
            if seconds < least:
                raise ValueError(f"{name}: {seconds} is too small")
        return self

    def _check_sources(self) -> None:
        _secure_url(self.issuer, "issuer")
        if self.jwks_url:
            _secure_url(self.jwks_url, "jwks_url")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ValueError(f"ca_file: {self.ca_file} is not a file")
        if not self.audience or not all(a.strip() for a in self.audience):
            raise ValueError("audience: the token audience (the client id Hearth is registered as) is required")
        if not self.algorithms:
            raise ValueError("algorithms: at least one is needed")
        for alg in self.algorithms:
            if alg not in ASYMMETRIC:
                raise ValueError(f"algorithms: {alg!r} is not accepted; choose from {', '.join(ASYMMETRIC)}")

    def _check_mapping(self) -> None:
        if not self.roles:
            raise ValueError("roles: at least one role must be allowed")
        for role in self.roles:
            try:
                check_role(role)
            except ValueError as exc:
                raise ValueError(f"roles: {exc}") from None
        for name, level in (("default_clearance", self.default_clearance), ("max_clearance", self.max_clearance)):
            if level not in LEVELS:
                raise ValueError(f"{name}: {level!r} is not one of {', '.join(LEVELS)}")
        if not clears(self.max_clearance, self.default_clearance):
            raise ValueError("default_clearance: above max_clearance")
        for name, claim in (
            ("tenant_claim", self.tenant_claim),
            ("roles_claim", self.roles_claim),
            ("clearance_claim", self.clearance_claim),
        ):
            if not claim.strip():
                raise ValueError(f"{name}: a claim name is required")


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, else by dotted path into nested objects (``realm_access.roles``); ``None`` if absent.

    The literal name comes first: namespaced claims (``https://example.com/roles``) contain dots.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _key_fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether ``jwk`` may verify a signature of ``alg``: its declared use, algorithm and key type agree."""
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return False
    kty = jwk.get("kty")
    if alg.startswith(("RS", "PS")):
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
    return alg == "EdDSA" and kty == "OKP" and jwk.get("crv") in ("Ed25519", "Ed448")


class JwksCache:
    """The issuer's signing keys: fetched lazily, kept ``jwks_ttl_s``, refreshed for an unknown ``kid``."""

    def __init__(
        self, config: OidcConfig, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._jwks_url = config.jwks_url
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """JWKS requests made (tests and the rate limit's accounting)."""

    async def _document(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider is unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise Unavailable(f"the identity provider answered {response.status_code} for {url}")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise Unavailable(f"the identity provider's document at {url} is too large")
        try:
            document = json.loads(response.content)
        except ValueError:
            raise Unavailable(f"the identity provider's document at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise Unavailable(f"the identity provider's document at {url} is not a JSON object")
        return document

    async def _discover(self) -> str:
        issuer = self._config.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._document(url)
        # OpenID Connect Discovery 1.0 §4.3: the document must name the very issuer it was fetched for.
        if document.get("issuer") != issuer:
            raise Unavailable(f"the discovery document at {url} names another issuer: check HEARTH_OIDC_ISSUER")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise Unavailable(f"the discovery document at {url} has no jwks_uri")
        try:
            return _secure_url(jwks_uri, "jwks_uri")
        except ValueError as exc:
            raise Unavailable(f"the discovery document at {url}: {exc}") from None

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        if not self._jwks_url:
            self._jwks_url = await self._discover()
        self.fetches += 1
        document = await self._document(self._jwks_url)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise Unavailable(f"the JWKS at {self._jwks_url} has no keys list")
        self._keys = [k for k in keys if isinstance(k, dict) and k.get("kty") != "oct"]
        self._fetched_at = self._clock()
        log.info("oidc signing keys fetched", url=self._jwks_url, keys=len(self._keys))

    def _throttled(self) -> bool:
        return self._attempted_at is not None and self._clock() - self._attempted_at < self._config.refresh_interval_s

    async def _refresh(self, *, seen: float | None) -> None:
        """Fetch again unless another task did since ``seen``, or the last attempt is too recent."""
        async with self._lock:
            if self._attempted_at != seen or self._throttled():
                if self._keys is None:
                    retry = max(1, round(self._config.refresh_interval_s))
                    raise Unavailable(
                        "the identity provider's signing keys could not be fetched; retrying shortly",
                        extra={"retry_after_s": retry},
                    )
                return
            try:
                await self._fetch()
            except Unavailable as exc:
                if self._keys is None:
                    log.warning("oidc signing keys could not be fetched", reason=exc.detail)
                    raise
                log.warning("oidc signing keys refresh failed; keeping the keys held", reason=exc.detail)

    async def find(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        """The key for a token's ``kid`` and ``alg``; ``None`` when even a fresh JWKS has none."""
        if self._keys is None or self._clock() - self._fetched_at >= self._config.jwks_ttl_s:
            await self._refresh(seen=self._attempted_at)
        found = self._pick(kid, alg)
        if found is None and not self._throttled():
            await self._refresh(seen=self._attempted_at)
            found = self._pick(kid, alg)
        return found

    def _pick(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        fitting = [k for k in self._keys or () if _key_fits(k, alg)]
        if kid is not None:
            return next((k for k in fitting if k.get("kid") == kid), None)
        return fitting[0] if len(fitting) == 1 else None


_TOKEN_ERRORS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid (nbf or iat in the future)"),
    (jwt.InvalidAudienceError, "token is for another audience"),
    (jwt.InvalidIssuerError, "token is from another issuer"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.InvalidAlgorithmError, "token algorithm does not match its key"),
    (jwt.InvalidKeyError, "the signing key is unusable"),
    (jwt.PyJWKError, "the signing key is unusable"),
)


def _token_error(exc: jwt.PyJWTError) -> str:
    """The 401's detail for a token PyJWT refused; fixed texts, never anything taken from the token."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the {exc.claim!r} claim"
    for kind, detail in _TOKEN_ERRORS:
        if isinstance(exc, kind):
            return detail
    return f"invalid token ({type(exc).__name__})"


class OidcVerifier:
    """Verifies a bearer JWT of the configured issuer and maps it to a ``Principal``."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config.check()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=config.timeout_s,
            follow_redirects=False,
            verify=ssl.create_default_context(cafile=config.ca_file) if config.ca_file else True,
        )
        self.keys = JwksCache(config, self._http, clock=clock)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``Unauthorized`` naming why not; ``Unavailable`` without keys."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            raise Unauthorized(f"token algorithm {str(alg)[:16]!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("token kid is not a string")
        jwk = await self.keys.find(kid, alg)
        if jwk is None:
            raise Unauthorized(
                "token signed by an unknown key" if kid is not None else "token names no kid and no single key fits"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwt.PyJWK(jwk, algorithm=alg),
                algorithms=[alg],
                audience=list(self.config.audience),
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(_token_error(exc)) from None
        return self.principal(claims)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal verified ``claims`` describe: tenant, one allowed role, a capped clearance."""
        config = self.config
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= _MAX_SUB or not sub.isprintable():
            raise Unauthorized("token sub must be a printable string of 1-255 characters")
        tenant = claim(claims, config.tenant_claim)
        if tenant is None:
            raise Unauthorized(f"token lacks the tenant claim {config.tenant_claim!r}")
        try:
            if not isinstance(tenant, str) or check_domain(tenant) == ANY_DOMAIN:
                raise ValueError(tenant)
        except ValueError:
            raise Unauthorized(f"token tenant claim {config.tenant_claim!r} is not a tenant name") from None
        role = self._role(claim(claims, config.roles_claim))
        clearance = self._clearance(claim(claims, config.clearance_claim))
        username = claims.get("preferred_username")
        name = username[:200] if isinstance(username, str) and username.strip() else sub
        return Principal(
            key_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{config.issuer}#{sub}"),
            name=name,
            role=role,
            tenant=tenant,
            prefix=SUBJECT_PREFIX + sub,
            clearance=clearance,
        )

    def _role(self, value: Any) -> str:
        held: Sequence[Any]
        if isinstance(value, str):
            held = value.replace(",", " ").split()
        elif isinstance(value, list):
            held = value
        else:
            held = []
        for role in self.config.roles:
            if role in held:
                return role
        raise Unauthorized(
            f"token grants none of the roles Hearth accepts from the identity provider "
            f"(claim {self.config.roles_claim!r}; accepted: {', '.join(self.config.roles)})"
        )

    def _clearance(self, value: Any) -> str:
        if value is None:
            return self.config.default_clearance
        if value not in LEVELS:
            raise Unauthorized(
                f"token clearance claim {self.config.clearance_claim!r} is not one of {', '.join(LEVELS)}"
            )
        return str(value) if clears(self.config.max_clearance, value) else self.config.max_clearance
