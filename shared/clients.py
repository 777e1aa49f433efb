"""Clients of the platform's servers, built from settings in one place.

Services get them from their composition root; nothing else constructs connections.
"""

from __future__ import annotations

import json

import hvac
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client as TemporalClient

from shared.errors import Unavailable
from shared.settings import HearthSettings


async def temporal_client(settings: HearthSettings) -> TemporalClient:
    """A Temporal client on the platform namespace: pydantic payloads, trace context in headers.

    Workers built on this client inherit both, so activities receive typed models.
    """
    from shared.capabilities import DATA_CONVERTER
    from shared.tracing import temporal_tracing_interceptor

    try:
        return await TemporalClient.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=DATA_CONVERTER,
            interceptors=[temporal_tracing_interceptor()],
        )
    except RuntimeError as exc:
        raise Unavailable(f"Temporal at {settings.temporal_address} is unreachable: {exc}") from exc


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
