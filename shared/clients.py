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
from shared.settings import HearthSettings


async def temporal_client(
    settings: HearthSettings, *, service: str = "gateway", codec: EnvelopePayloadCodec | None = None
) -> TemporalClient:
    """A Temporal client on the platform namespace: pydantic payloads, encrypted; trace context in headers.

    Workers built on this client inherit both, so activities receive typed models and everything
    Temporal stores of a run is ciphertext (``shared.crypto.payload_codec``). ``codec`` is the
    caller's (a service builds it in its composition root); without one, a codec is made on the
    AppRole of ``service`` (tests and benches act as the gateway). ``Unavailable`` when OpenBao or
    Temporal cannot be reached, naming which.
    """
    from shared.capabilities import encrypted_data_converter
    from shared.tracing import temporal_tracing_interceptor

    if codec is None:
        codec = await payload_codec(settings, service)
    try:
        return await TemporalClient.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=encrypted_data_converter(codec),
            interceptors=[temporal_tracing_interceptor()],
        )
    except RuntimeError as exc:
        raise Unavailable(f"Temporal at {settings.temporal_address} is unreachable: {exc}") from exc


async def payload_codec(settings: HearthSettings, service: str) -> EnvelopePayloadCodec:
    """The payload codec of ``service`` (its AppRole), with its first data key already fetched.

    Fetching it here makes a process fail at start-up, with a message naming OpenBao, rather
    than on its first workflow task.
    """
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
    return create_async_engine(settings.postgres_dsn(), pool_size=pool_size, pool_pre_ping=True)


def vault_client(settings: HearthSettings, service: str) -> hvac.Client:
    """An OpenBao client logged in with the service's AppRole (never the root token)."""
    creds = json.loads(settings.read_secret(f"approle-{service}.json"))
    client = hvac.Client(url=settings.openbao_url, timeout=10)
    try:
        client.auth.approle.login(role_id=creds["role_id"], secret_id=creds["secret_id"])
    except Exception as exc:  # hvac raises requests and its own errors alike
        raise Unavailable(f"OpenBao login for {service} failed at {settings.openbao_url}: {exc}") from exc
    return client
