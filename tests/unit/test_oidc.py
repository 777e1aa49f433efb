"""OIDC token verification against a local identity provider (``tests/idp.py``, real HTTP on 127.0.0.1).

The IdP is outside Hearth, so a small one in the test stands in for it; the same verifier runs in
the real gateway in ``tests/integration/test_oidc.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import certifi
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from litestar.testing import TestClient

from services.gateway.app import create_app
from services.gateway.auth import AccessGuard, load_enforcer
from services.gateway.documents.handlers import DocumentServices
from services.gateway.governance.handlers import GovernanceServices
from services.gateway.settings import OidcSettings
from services.gateway.telemetry.handlers import TelemetryClient
from shared.errors import Unauthorized, Unavailable
from shared.identity.apikeys import ApiKeyStore, KeyInfo, Principal
from shared.identity.audit import AuditEntry, AuditLog
from shared.identity.oidc import OidcConfig, OidcVerifier, claim, looks_like_jwt
from tests.idp import LocalIdp

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class Clock:
    """The verifier's monotonic clock, moved by hand: TTLs and the refresh rate limit without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[LocalIdp]:
    with LocalIdp() as server:
        server.add_key("rsa")
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(idp: LocalIdp, clock: Clock | None = None, **config: Any) -> OidcVerifier:
    settings: dict[str, Any] = {"issuer": idp.issuer, "audience": (idp.audience,), **config}
    return OidcVerifier(OidcConfig(**settings), clock=clock or Clock())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A compact JWS put together by hand: for what PyJWT refuses to produce (alg none, HMAC with a public key)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


async def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    return caught.value.detail


# ---- good tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
async def test_a_good_token_gives_a_principal_of_its_tenant_and_role(idp: LocalIdp, kind: Any) -> None:
    kid = idp.add_key(kind)
    verifier = make(idp)
    token = idp.token(kid, sub="u-42", preferred_username="alice", hearth_tenant="acme", roles=["user"])
    principal = await verifier.verify(token)
    assert principal.tenant == "acme"
    assert principal.role == "user"
    assert principal.name == "alice"
    assert principal.prefix == "oidc:u-42"
    assert principal.clearance == "public"  # no clearance claim: the least
    assert principal.key_id == uuid.uuid5(uuid.NAMESPACE_URL, f"{idp.issuer}#u-42")
    # The keys came from the discovered JWKS, fetched once.
    assert idp.requests["/.well-known/openid-configuration"] == 1
    assert idp.requests["/jwks"] == 1
    await verifier.verify(idp.token(kid))
    assert idp.requests["/jwks"] == 1
    await verifier.aclose()


async def test_a_configured_jwks_url_skips_discovery(idp: LocalIdp) -> None:
    verifier = make(idp, jwks_url=f"{idp.issuer}/jwks")
    assert (await verifier.verify(idp.token())).role == "user"
    assert idp.requests["/.well-known/openid-configuration"] == 0
    await verifier.aclose()


async def test_clock_skew_within_the_leeway_is_accepted(idp: LocalIdp) -> None:
    verifier = make(idp, leeway_s=30)
    now = int(time.time())
    assert await verifier.verify(idp.token(exp=now - 10, iat=now - 300))
    assert await verifier.verify(idp.token(nbf=now + 10, iat=now + 10))
    await verifier.aclose()


# ---- refused tokens ------------------------------------------------------------------------


async def test_time_issuer_and_audience_are_checked(idp: LocalIdp) -> None:
    verifier = make(idp, leeway_s=5)
    now = int(time.time())
    assert await refused(verifier, idp.token(exp=now - 60, iat=now - 400)) == "token expired"
    assert "not yet valid" in await refused(verifier, idp.token(nbf=now + 60))
    assert "not yet valid" in await refused(verifier, idp.token(iat=now + 60))
    assert await refused(verifier, idp.token(iss="https://evil.example")) == "token is from another issuer"
    assert await refused(verifier, idp.token(aud="another-app")) == "token is for another audience"
    for missing in ("exp", "iat", "sub", "aud", "iss"):
        assert await refused(verifier, idp.token(**{missing: None})) == f"token lacks the {missing!r} claim"
    await verifier.aclose()


async def test_a_token_signed_by_another_key_is_refused(idp: LocalIdp) -> None:
    verifier = make(idp)
    published = idp.published[0]
    rogue = idp.add_key("rsa", publish=False)
    # The rogue key's signature under the published key's id: the signature does not verify.
    forged = idp.token(rogue, headers={"kid": published})
    assert await refused(verifier, forged) == "token signature does not verify"
    # Under its own id: not in the JWKS.
    assert await refused(verifier, idp.token(rogue)) == "token signed by an unknown key"
    await verifier.aclose()


async def test_alg_none_and_hmac_with_the_public_key_are_refused(idp: LocalIdp) -> None:
    verifier = make(idp, algorithms=("RS256", "ES256"))
    kid = idp.published[0]
    claims = idp.claims()
    none = unsigned({"alg": "none", "typ": "JWT", "kid": kid}, claims)
    assert looks_like_jwt(none)
    assert await refused(verifier, none) == "token algorithm 'none' is not accepted"
    # The classic confusion: HS256 "signed" with the RSA public key the JWKS publishes.
    public_pem = (
        idp.keys[kid][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hs256 = unsigned(
        {"alg": "HS256", "typ": "JWT", "kid": kid},
        claims,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    assert await refused(verifier, hs256) == "token algorithm 'HS256' is not accepted"
    # RS256 named in the header but an EC key's id: the key does not fit the algorithm.
    ec_kid = idp.add_key("ec")
    signature = idp.token(ec_kid).rsplit(".", 1)[1]
    relabelled = unsigned({"alg": "RS256", "kid": ec_kid}, claims).rstrip(".") + "." + signature
    assert await refused(verifier, relabelled) == "token signed by an unknown key"
    assert await refused(verifier, "a.b.c") == "malformed token"
    await verifier.aclose()


def test_symmetric_and_unknown_algorithms_cannot_be_configured(idp: LocalIdp) -> None:
    for alg in ("HS256", "none", "RS1"):
        with pytest.raises(ValueError, match="algorithms"):
            OidcConfig(issuer=idp.issuer, audience=("x",), algorithms=(alg,)).check()


async def test_a_token_without_kid_uses_the_one_fitting_key(idp: LocalIdp) -> None:
    verifier = make(idp)
    kid = idp.published[0]
    key = idp.keys[kid][0]
    assert (await verifier.verify(jwt.encode(idp.claims(), key, algorithm="RS256"))).tenant == "acme"
    idp.add_key("rsa")
    verifier = make(idp)
    detail = await refused(verifier, jwt.encode(idp.claims(), key, algorithm="RS256"))
    assert detail == "token names no kid and no single key fits"
    await verifier.aclose()


# ---- key rotation and the refresh rate limit -----------------------------------------------


async def test_an_unknown_kid_refetches_the_jwks_once_per_interval(idp: LocalIdp, clock: Clock) -> None:
    verifier = make(idp, clock, refresh_interval_s=30, jwks_ttl_s=300)
    assert await verifier.verify(idp.token())
    assert verifier.keys.fetches == 1
    clock.now += 31
    # The IdP rotates: a new key is published, tokens signed with it arrive.
    rotated = idp.add_key("rsa")
    assert (await verifier.verify(idp.token(rotated))).tenant == "acme"
    assert verifier.keys.fetches == 2
    # A flood of made-up key ids within the interval costs the IdP nothing more.
    rogue = idp.add_key("rsa", publish=False)
    for _ in range(50):
        forged = idp.token(rogue, headers={"kid": uuid.uuid4().hex})
        assert await refused(verifier, forged) == "token signed by an unknown key"
    assert verifier.keys.fetches == 2
    assert idp.requests["/jwks"] == 2
    # A key published within the interval is found once the interval is over.
    late = idp.add_key("ec")
    assert await refused(verifier, idp.token(late)) == "token signed by an unknown key"
    clock.now += 31
    assert (await verifier.verify(idp.token(late))).role == "user"
    assert verifier.keys.fetches == 3
    await verifier.aclose()


async def test_a_withdrawn_key_stops_working_after_the_ttl(idp: LocalIdp, clock: Clock) -> None:
    verifier = make(idp, clock, refresh_interval_s=10, jwks_ttl_s=60)
    old = idp.published[0]
    assert await verifier.verify(idp.token(old))
    idp.published.remove(old)
    idp.add_key("rsa")
    assert await verifier.verify(idp.token(old))  # still cached
    clock.now += 61
    assert await refused(verifier, idp.token(old)) == "token signed by an unknown key"
    await verifier.aclose()


async def test_an_unreachable_idp_is_a_503_and_not_retried_within_the_interval(idp: LocalIdp, clock: Clock) -> None:
    verifier = make(idp, clock, refresh_interval_s=30)
    token = idp.token()
    idp.failing = True
    with pytest.raises(Unavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status == 503
    assert "500" in caught.value.detail
    with pytest.raises(Unavailable) as again:
        await verifier.verify(token)
    assert again.value.extra["retry_after_s"] == 30
    assert sum(idp.requests.values()) == 1  # the second was not sent
    idp.failing = False
    clock.now += 31
    assert await verifier.verify(token)
    await verifier.aclose()


async def test_keys_held_keep_working_while_a_refresh_fails(idp: LocalIdp, clock: Clock) -> None:
    verifier = make(idp, clock, refresh_interval_s=5, jwks_ttl_s=60)
    assert await verifier.verify(idp.token())
    idp.failing = True
    clock.now += 61
    assert await verifier.verify(idp.token())
    assert idp.requests["/jwks"] == 2  # the refresh was tried
    await verifier.aclose()


async def test_no_idp_listening_is_a_503() -> None:
    with LocalIdp() as gone:
        issuer = gone.issuer
    verifier = OidcVerifier(OidcConfig(issuer=issuer, audience=("x",), timeout_s=2))
    with pytest.raises(Unavailable, match="unreachable"):
        await verifier.verify("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln")
    await verifier.aclose()


async def test_a_discovery_document_of_another_issuer_is_refused(idp: LocalIdp) -> None:
    idp.announced_issuer = "https://idp.example/realms/other"
    verifier = make(idp)
    with pytest.raises(Unavailable, match="another issuer"):
        await verifier.verify(idp.token())
    await verifier.aclose()


# ---- claims to tenant, role, clearance -----------------------------------------------------


async def test_the_tenant_claim_is_required_and_must_be_a_tenant(idp: LocalIdp) -> None:
    verifier = make(idp)
    assert "lacks the tenant claim 'hearth_tenant'" in await refused(verifier, idp.token(hearth_tenant=None))
    for bad in ("*", "", "a b", 7, ["acme"]):
        assert "is not a tenant name" in await refused(verifier, idp.token(hearth_tenant=bad))
    org = make(idp, tenant_claim="org.id")
    assert (await org.verify(idp.token(org={"id": "globex"}))).tenant == "globex"
    await verifier.aclose()
    await org.aclose()


async def test_roles_are_limited_to_the_allowed_ones_first_listed_wins(idp: LocalIdp) -> None:
    verifier = make(idp)  # tenant_admin, user: no admin from the IdP by default
    assert (await verifier.verify(idp.token(roles=["user", "tenant_admin"]))).role == "tenant_admin"
    assert (await verifier.verify(idp.token(roles=["admin", "user"]))).role == "user"
    assert (await verifier.verify(idp.token(roles="offline_access user"))).role == "user"
    assert "grants none of the roles" in await refused(verifier, idp.token(roles=["admin"]))
    assert "grants none of the roles" in await refused(verifier, idp.token(roles=None))
    assert "grants none of the roles" in await refused(verifier, idp.token(roles={"user": True}))
    admins = make(idp, roles=("admin", "user"))
    assert (await admins.verify(idp.token(roles=["user", "admin"]))).role == "admin"
    await verifier.aclose()
    await admins.aclose()


async def test_roles_from_a_dotted_path_or_a_namespaced_claim(idp: LocalIdp) -> None:
    keycloak = make(idp, roles_claim="realm_access.roles")
    token = idp.token(roles=None, realm_access={"roles": ["offline_access", "user"]})
    assert (await keycloak.verify(token)).role == "user"
    assert "grants none" in await refused(keycloak, idp.token(roles=["user"]))  # the top-level one is not read
    namespaced = make(idp, roles_claim="https://hearth.example/roles")
    namespaced_roles: dict[str, Any] = {"https://hearth.example/roles": ["user"]}
    assert (await namespaced.verify(idp.token(**namespaced_roles))).role == "user"
    assert claim({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert claim({"a": {"b": 1}}, "a.b.c") is None
    await keycloak.aclose()
    await namespaced.aclose()


async def test_clearance_defaults_to_public_and_is_capped(idp: LocalIdp) -> None:
    verifier = make(idp)  # max confidential
    assert (await verifier.verify(idp.token(hearth_clearance="internal"))).clearance == "internal"
    assert (await verifier.verify(idp.token(hearth_clearance="secret"))).clearance == "confidential"
    assert "is not one of" in await refused(verifier, idp.token(hearth_clearance="top"))
    lenient = make(idp, default_clearance="internal", max_clearance="secret")
    assert (await lenient.verify(idp.token())).clearance == "internal"
    assert (await lenient.verify(idp.token(hearth_clearance="secret"))).clearance == "secret"
    await verifier.aclose()
    await lenient.aclose()


def test_only_jwt_shaped_credentials_go_to_the_verifier() -> None:
    assert not looks_like_jwt("hearth_abcdefghijkl_" + "x" * 43)
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
    assert looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")


def test_settings_name_the_variable_and_refuse_unsafe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OidcSettings().config() is None
    monkeypatch.setenv("HEARTH_OIDC_ISSUER", "https://idp.example/realms/acme")
    monkeypatch.setenv("HEARTH_OIDC_AUDIENCE", "hearth, hearth-api")
    monkeypatch.setenv("HEARTH_OIDC_ROLES_CLAIM", "realm_access.roles")
    config = OidcSettings().config()
    assert config is not None
    assert config.audience == ("hearth", "hearth-api")
    assert config.roles == ("tenant_admin", "user")
    monkeypatch.setenv("HEARTH_OIDC_CA_FILE", certifi.where())
    assert OidcVerifier(OidcSettings().config()).config.ca_file == certifi.where()  # type: ignore[arg-type]
    for variable, value, named in (
        ("HEARTH_OIDC_ISSUER", "http://idp.example", "HEARTH_OIDC_ISSUER"),
        ("HEARTH_OIDC_ALGORITHMS", "RS256,HS256", "HEARTH_OIDC_ALGORITHMS"),
        ("HEARTH_OIDC_ROLES", "user,Bad Role", "HEARTH_OIDC_ROLES"),
        ("HEARTH_OIDC_DEFAULT_CLEARANCE", "secret", "HEARTH_OIDC_DEFAULT_CLEARANCE"),
        ("HEARTH_OIDC_AUDIENCE", "", "HEARTH_OIDC_AUDIENCE"),
        ("HEARTH_OIDC_CA_FILE", "/nonexistent/ca.pem", "HEARTH_OIDC_CA_FILE"),
    ):
        with monkeypatch.context() as env:
            env.setenv(variable, value)
            with pytest.raises(ValueError, match=named):
                OidcSettings()


# ---- the guard -----------------------------------------------------------------------------


class Keys(ApiKeyStore):
    def __init__(self) -> None:
        self.verified: list[str] = []

    async def verify(self, key: str) -> Principal:
        self.verified.append(key)
        raise Unauthorized("malformed API key")

    async def list(self, *, tenant: str | None = None) -> list[KeyInfo]:
        return []


def _client(oidc: OidcVerifier | None) -> tuple[Keys, AuditLog, TestClient[Any]]:
    keys, audit = Keys(), AuditLog(None, queue_size=100)  # type: ignore[arg-type]
    app = create_app(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        AccessGuard(keys, load_enforcer(), audit=audit, oidc=oidc),
        workflow_services=None,  # type: ignore[arg-type]
        document_services=DocumentServices(store=None, pipeline=None, blobs=None, classifier=None),  # type: ignore[arg-type]
        telemetry=TelemetryClient(None),  # type: ignore[arg-type]
        governance=GovernanceServices(keys=keys, audit=audit),
    )
    return keys, audit, TestClient(app)


def _queued(audit: AuditLog) -> list[AuditEntry]:
    entries = []
    while audit.pending():
        entries.append(audit._queue.get_nowait())
    return entries


def test_the_guard_verifies_jwts_as_oidc_tokens_and_audits_refusals(idp: LocalIdp) -> None:
    keys, audit, client = _client(make(idp, roles=("admin", "user")))
    user, admin = idp.token(sub="u-1"), idp.token(sub="a-1", roles=["admin"])
    expired = idp.token(exp=int(time.time()) - 3600)
    with client:
        assert client.get("/v1/keys", headers={"Authorization": f"Bearer {user}"}).status_code == 403
        assert client.get("/v1/keys", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        refused = client.get("/v1/keys", headers={"Authorization": f"Bearer {expired}"})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "token expired"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/v1/keys", headers={"X-API-Key": "hearth_abcdefghijkl_x"}).status_code == 401
    assert keys.verified == ["hearth_abcdefghijkl_x"]  # a JWT never reaches the key store
    denied, allowed, failed, bad_key = _queued(audit)
    assert (denied.decision, denied.principal, denied.tenant, denied.role) == ("deny", "oidc:u-1", "acme", "user")
    assert (allowed.decision, allowed.principal, allowed.role) == ("allow", "oidc:a-1", "admin")
    assert (failed.decision, failed.principal, failed.reason) == ("deny", None, "OIDC token: token expired")
    assert bad_key.reason == "malformed API key"
    for entry in (denied, allowed, failed):
        assert all(token not in str(entry) for token in (user, admin, expired))


def test_without_oidc_a_jwt_is_just_an_invalid_key(idp: LocalIdp) -> None:
    keys, audit, client = _client(None)
    token = idp.token()
    with client:
        response = client.get("/v1/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "malformed API key"
    assert keys.verified == [token]
    assert idp.requests.total() == 0
    assert _queued(audit)[0].reason == "malformed API key"


def test_an_unreachable_idp_is_a_503_problem_at_the_gateway(idp: LocalIdp) -> None:
    _, audit, client = _client(make(idp))
    idp.failing = True
    with client:
        response = client.get("/v1/keys", headers={"Authorization": f"Bearer {idp.token()}"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Retry-After" in response.headers
    assert _queued(audit)[0].reason.startswith("OIDC token: the identity provider answered 500")
