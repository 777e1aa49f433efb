"""Direct health probes of the infrastructure components.

The launcher uses them as readiness checks and the gateway's ``GET /v1/health`` reports them; one
implementation, so "healthy" means the same thing in both places. Every probe is bounded by a
timeout and never raises: a failure is a ``ComponentHealth`` with status ``down`` and the reason.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, Field

from shared.settings import HearthSettings, SettingsError
from shared.tls import client_context, http_verify, postgres_connect_args, temporal_tls

Status = Literal["ok", "degraded", "down"]


class ComponentHealth(BaseModel):
    """Health of one component as seen by a probe."""

    name: str
    status: Status
    version: str | None = None
    latency_ms: float | None = None
    url: str | None = None
    detail: str | None = None
    extra: dict[str, object] = Field(default_factory=dict)


class Probe(Protocol):
    def __call__(self, settings: HearthSettings, clients: ProbeClients | None = None) -> Awaitable[ComponentHealth]: ...


@dataclass
class ProbeClients:
    """Connections a long-lived prober (the gateway) reuses; without them each probe opens its own."""

    http: httpx.AsyncClient
    temporal: Any = None  # temporalio ServiceClient, connected on first use

    @classmethod
    def for_settings(cls, settings: HearthSettings) -> ProbeClients:
        return cls(http=httpx.AsyncClient(timeout=5.0, verify=http_verify(settings)))

    async def aclose(self) -> None:
        await self.http.aclose()


@asynccontextmanager
async def _http(
    settings: HearthSettings, clients: ProbeClients | None, timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    if clients is not None:
        yield clients.http
        return
    async with httpx.AsyncClient(timeout=timeout, verify=http_verify(settings)) as client:
        yield client


async def _timed(
    name: str, url: str, timeout: float, check: Callable[[], Awaitable[ComponentHealth]]
) -> ComponentHealth:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # a probe reports, it never raises
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout:.1f}s"
        result = ComponentHealth(name=name, status="down", detail=reason)
    result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    result.url = url
    return result


async def probe_nats(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """NATS is healthy when its monitoring endpoint reports JetStream healthy."""
    url = settings.nats_url

    async def check() -> ComponentHealth:
        async with _http(settings, clients, timeout) as client:
            health = await client.get(f"{settings.nats_monitor_url}/healthz", params={"js-enabled-only": "true"})
            varz = (await client.get(f"{settings.nats_monitor_url}/varz")).json()
        status: Status = "ok" if health.status_code == 200 else "down"
        detail = None if status == "ok" else health.text.strip()[:200]
        return ComponentHealth(name="nats", status=status, version=varz.get("version"), detail=detail)

    return await _timed("nats", url, timeout, check)


async def probe_temporal(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 5.0
) -> ComponentHealth:
    """Temporal is healthy when its frontend answers the gRPC health check."""
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
    from temporalio.service import ConnectConfig, ServiceClient

    async def check() -> ComponentHealth:
        client = clients.temporal if clients is not None else None
        if client is None:
            config = ConnectConfig(target_host=settings.temporal_address, tls=temporal_tls(settings))
            client = await ServiceClient.connect(config)
            if clients is not None:
                clients.temporal = client
        healthy = await client.check_health()
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        return ComponentHealth(
            name="temporal",
            status="ok" if healthy else "down",
            version=info.server_version or None,
            extra={"ui": settings.temporal_ui_url},
        )

    return await _timed("temporal", settings.temporal_address, timeout, check)


async def probe_openbao(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """OpenBao is healthy when initialised, unsealed and active (``/v1/sys/health`` answers 200)."""

    async def check() -> ComponentHealth:
        async with _http(settings, clients, timeout) as client:
            resp = await client.get(f"{settings.openbao_url}/v1/sys/health")
        body = resp.json()
        if resp.status_code == 200:
            return ComponentHealth(name="openbao", status="ok", version=body.get("version"))
        reason = {501: "not initialised", 503: "sealed", 429: "standby"}.get(resp.status_code, resp.text[:200])
        return ComponentHealth(name="openbao", status="down", version=body.get("version"), detail=reason)

    return await _timed("openbao", settings.openbao_url, timeout, check)


async def probe_postgres(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """PostgreSQL is healthy when the service role can log in and run a query."""
    import asyncpg

    url = f"postgresql://{settings.postgres_client_host}:{settings.postgres_port}/{settings.postgres_db}"

    async def check() -> ComponentHealth:
        conn = await asyncpg.connect(
            host=settings.postgres_client_host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            password=settings.read_secret("postgres-password"),
            database=settings.postgres_db,
            timeout=timeout,
            **postgres_connect_args(settings),
        )
        try:
            version = await conn.fetchval("SHOW server_version")
            extensions = await conn.fetch("SELECT extname, extversion FROM pg_extension ORDER BY extname")
        finally:
            await conn.close()
        return ComponentHealth(
            name="postgres",
            status="ok",
            version=str(version),
            extra={"extensions": {r["extname"]: r["extversion"] for r in extensions}},
        )

    return await _timed("postgres", url, timeout, check)


async def probe_triton(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """Triton is healthy when ``/v2/health/ready`` answers 200."""

    async def check() -> ComponentHealth:
        async with _http(settings, clients, timeout) as client:
            ready = await client.get(f"{settings.triton_http_url}/v2/health/ready")
            meta = (await client.get(f"{settings.triton_http_url}/v2")).json()
        status: Status = "ok" if ready.status_code == 200 else "down"
        return ComponentHealth(
            name="triton",
            status=status,
            version=meta.get("version"),
            detail=None if status == "ok" else f"ready endpoint answered {ready.status_code}",
        )

    return await _timed("triton", settings.triton_http_url, timeout, check)


async def probe_postgres_tls(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """The TLS proxy is healthy when it accepts PostgreSQL's ``SSLRequest`` and a verified handshake."""
    host, port = settings.postgres_client_host, settings.postgres_port

    async def check() -> ComponentHealth:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!II", 8, 80877103))  # SSLRequest
            await writer.drain()
            answer = await reader.readexactly(1)
            if answer != b"S":
                return ComponentHealth(name="postgres-tls", status="down", detail=f"SSLRequest answered {answer!r}")
            await writer.start_tls(client_context(settings), server_hostname=host)  # type: ignore[arg-type]
            protocol = writer.get_extra_info("ssl_object").version()
        finally:
            writer.close()
        return ComponentHealth(name="postgres-tls", status="ok", version=protocol)  # e.g. TLSv1.3

    return await _timed("postgres-tls", f"postgresql://{host}:{port}", timeout, check)


async def probe_temporal_tls(
    settings: HearthSettings, clients: ProbeClients | None = None, timeout: float = 3.0
) -> ComponentHealth:
    """The Temporal TLS proxy is healthy when a verified handshake offers ALPN ``h2``."""
    host, _, port = settings.temporal_address.rpartition(":")

    async def check() -> ComponentHealth:
        context = ssl.create_default_context(cafile=str(settings.tls_ca_path))
        context.set_alpn_protocols(["h2"])
        _, writer = await asyncio.open_connection(host, int(port), ssl=context)
        try:
            tls = writer.get_extra_info("ssl_object")
            alpn, protocol = tls.selected_alpn_protocol(), tls.version()
        finally:
            writer.close()
        if alpn != "h2":
            return ComponentHealth(name="temporal-tls", status="down", detail=f"ALPN {alpn!r}, not h2")
        return ComponentHealth(name="temporal-tls", status="ok", version=protocol)

    return await _timed("temporal-tls", settings.temporal_address, timeout, check)


def infra_probes(settings: HearthSettings) -> dict[str, Probe]:
    """The probes of this stack's infrastructure: ``INFRA_PROBES``, and with TLS the two TLS proxies.

    Temporal's is probed through ``probe_temporal`` itself (its clients reach it only that way).
    """
    if not settings.tls:
        return dict(INFRA_PROBES)
    return {**INFRA_PROBES, "postgres-tls": probe_postgres_tls, "temporal-tls": probe_temporal_tls}


INFRA_PROBES: dict[str, Probe] = {
    "nats": probe_nats,
    "temporal": probe_temporal,
    "openbao": probe_openbao,
    "postgres": probe_postgres,
    "triton": probe_triton,
}
"""Probes of the infrastructure components, by component name."""


async def probe_service(nc: NatsClient, name: str, timeout: float = 3.0) -> ComponentHealth:
    """Ask one service for its health on ``hearth.svc.<name>.health``."""
    subject = f"hearth.svc.{name}.health"
    started = time.perf_counter()
    try:
        msg = await nc.request(subject, b"{}", timeout=timeout)
        body = json.loads(msg.data)
    except NoRespondersError:
        return ComponentHealth(name=name, status="down", detail="not running (no responders)", url=subject)
    except NatsTimeoutError:
        return ComponentHealth(name=name, status="down", detail=f"no answer within {timeout:.1f}s", url=subject)
    except (NatsError, ValueError, OSError) as exc:
        return ComponentHealth(name=name, status="down", detail=str(exc) or type(exc).__name__, url=subject)
    latency = round((time.perf_counter() - started) * 1000, 2)
    if not body.get("ok"):
        detail = str(body.get("error", {}).get("detail", "unhealthy"))
        return ComponentHealth(name=name, status="down", detail=detail, latency_ms=latency, url=subject)
    result = body.get("result", {})
    return ComponentHealth(
        name=name,
        status=result.get("status", "ok"),
        version=result.get("version"),
        latency_ms=latency,
        url=subject,
        extra={k: v for k, v in result.items() if k not in ("status", "version", "service")},
    )


async def probe_services(
    settings: HearthSettings, names: list[str], timeout: float = 3.0
) -> dict[str, ComponentHealth]:
    """Health of several services, asked over one short-lived NATS connection."""
    import nats

    from shared.natsauth import connect_options

    try:
        nc = await nats.connect(
            settings.nats_url,
            connect_timeout=2,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            **connect_options(settings),
        )
    except (NatsError, OSError, SettingsError) as exc:
        return {n: ComponentHealth(name=n, status="down", detail=f"NATS unreachable: {exc}") for n in names}
    try:
        results = await asyncio.gather(*(probe_service(nc, n, timeout) for n in names))
    finally:
        await nc.close()
    return {h.name: h for h in results}
