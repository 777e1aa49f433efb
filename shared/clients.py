"""Clients of the platform's servers, built from settings in one place.

Services get them from their composition root; nothing else constructs connections.
"""

from __future__ import annotations

import json

import hvac
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client as TemporalClient

from shared.crypto.payload_codec import EnvelopePayloadCodec
from shared.crypto.transit import TransitKeyring
from shared.errors import HearthError, Unavailable
from shared.logging import get_logger
from shared.settings import HearthSettings
from shared.tls import postgres_connect_args, temporal_tls

log = get_logger(__name__)


async def temporal_client(settings: HearthSettings, *, service: str = "gateway") -> TemporalClient:
    """A Temporal client on the platform namespace: pydantic payloads, encrypted; trace context in headers.

    Workers built on this client inherit all of it, so activities receive typed models and what
    Temporal stores of a run is ciphertext (``shared.crypto.payload_codec``), sealed on the AppRole
    of ``service`` (tests and benches act as the gateway). ``Unavailable`` when OpenBao or Temporal
    cannot be reached, naming which.
    """
    return await connect_temporal(settings, await payload_codec(settings, service))


async def connect_temporal(settings: HearthSettings, codec: EnvelopePayloadCodec | None) -> TemporalClient:
    """``temporal_client`` with the caller's codec (a service's composition root builds it; ``None``: plaintext)."""
    from shared.capabilities import DATA_CONVERTER, encrypted_data_converter
    from shared.tracing import temporal_tracing_interceptor

    try:
        return await TemporalClient.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=encrypted_data_converter(codec) if codec is not None else DATA_CONVERTER,
            interceptors=[temporal_tracing_interceptor()],
            tls=temporal_tls(settings),
        )
    except RuntimeError as exc:
        raise Unavailable(f"Temporal at {settings.temporal_address} is unreachable: {exc}") from exc


async def payload_codec(settings: HearthSettings, service: str) -> EnvelopePayloadCodec | None:
    """The payload codec of ``service`` (its AppRole), with its first data key already fetched.

    Fetching it here makes a process fail at start-up, with a message naming OpenBao, rather than
    on its first workflow task. ``None`` (payloads in plaintext, logged as a warning) only where no
    AppRole was provisioned, i.e. the compose stack today; ``prod`` refuses that.
    """
    credentials = settings.secret_path(f"approle-{service}.json")
    if not credentials.exists():
        if settings.environment == "prod":
            raise Unavailable(f"workflow payload encryption needs the OpenBao AppRole of {service} ({credentials})")
        # The native launcher always writes it; the compose stack does not provision AppRoles yet.
        log.warning("workflow payload encryption is OFF: no OpenBao AppRole credentials", service=service)
        return None
    codec = EnvelopePayloadCodec(TransitKeyring.from_settings(settings, service))
    try:
        await codec.ready()
    except HearthError as exc:
        raise Unavailable(
            f"workflow payload encryption needs OpenBao at {settings.openbao_url} (AppRole {service}): {exc.detail}"
        ) from exc
    return codec


def postgres_engine(settings: HearthSettings, *, pool_size: int = 5) -> AsyncEngine:
    """An async SQLAlchemy engine (asyncpg) for the service role."""
    return create_async_engine(
        settings.postgres_dsn(), pool_size=pool_size, pool_pre_ping=True, connect_args=postgres_connect_args(settings)
    )


def vault_client(settings: HearthSettings, service: str) -> hvac.Client:
    """An OpenBao client logged in with the service's AppRole (never the root token)."""
    creds = json.loads(settings.read_secret(f"approle-{service}.json"))
    client = hvac.Client(
        url=settings.openbao_url, timeout=10, verify=str(settings.tls_ca_path) if settings.tls else True
    )
    try:
        client.auth.approle.login(role_id=creds["role_id"], secret_id=creds["secret_id"])
    except Exception as exc:  # hvac raises requests and its own errors alike
        raise Unavailable(f"OpenBao login for {service} failed at {settings.openbao_url}: {exc}") from exc
    return client
