"""Encrypted transport on the running stack: every listener serves the stack's certificate and
refuses plain text; the ones that cannot do TLS listen on loopback only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from urllib.parse import urlsplit

import asyncpg
import httpx
import nats
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from shared.natsauth import connect_options
from shared.settings import SERVICES, HearthSettings
from shared.tls import client_context, postgres_connect_args, temporal_tls
from tests.integration.conftest import hearth_cli


def _served_der(stack: HearthSettings, host: str, port: int) -> bytes:
    """The certificate a TLS listener presents (verified against the stack's CA on the way)."""
    pem = ssl.get_server_certificate((host, port), ca_certs=str(stack.tls_ca_path), timeout=10)
    return ssl.PEM_cert_to_DER_cert(pem)


def _stack_der(stack: HearthSettings) -> bytes:
    return x509.load_pem_x509_certificate(stack.tls_cert_path.read_bytes()).public_bytes(Encoding.DER)


def _https_listeners(stack: HearthSettings) -> dict[str, str]:
    listeners = {
        "gateway": f"{stack.gateway_url}/v1/health",
        "openbao": f"{stack.openbao_url}/v1/sys/health",
        "nats monitoring": f"{stack.nats_monitor_url}/healthz",
        "temporal ui": stack.temporal_ui_url,
    }
    listeners |= {f"{s} metrics": stack.service_metrics_url(s) for s in SERVICES}
    return listeners


def test_every_https_listener_serves_the_stack_certificate_and_refuses_plain_http(stack: HearthSettings) -> None:
    expected = _stack_der(stack)
    context = client_context(stack)
    assert context is not None
    for name, url in _https_listeners(stack).items():
        parts = urlsplit(url)
        assert parts.scheme == "https", name
        assert parts.hostname is not None
        assert parts.port is not None
        assert _served_der(stack, parts.hostname, parts.port) == expected, name
        # Verified: the stack's CA, and the host name (an IP here) in the certificate.
        assert httpx.get(url, verify=context, timeout=10).status_code in (200, 401), name
        plain = urlsplit(url)._replace(scheme="http").geturl()
        try:
            resp = httpx.get(plain, timeout=10)
        except httpx.HTTPError:
            continue  # the TLS listener dropped the plain-text request
        # OpenBao and Go's servers answer a plain request on a TLS port with a 400 and nothing else.
        assert resp.status_code == 400, (name, resp.status_code, resp.text[:200])


def test_a_client_that_does_not_trust_the_stack_ca_is_refused_the_handshake(stack: HearthSettings) -> None:
    with (
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        httpx.Client(verify=ssl.create_default_context(cafile=_certifi())) as client,
    ):
        client.get(f"{stack.gateway_url}/v1/health", timeout=10)


def _certifi() -> str:
    import certifi

    return certifi.where()


async def test_nats_requires_tls_and_the_services_connect_verified(stack: HearthSettings) -> None:
    parts = urlsplit(stack.nats_url)
    assert parts.scheme == "tls"
    assert parts.hostname is not None
    assert parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
    assert info["tls_required"] is True
    writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')  # carrying on in plain text
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert b"PONG" not in answer
    assert answer == b"" or b"-ERR" in answer
    with pytest.raises((ssl.SSLCertVerificationError, nats.errors.NoServersError, OSError)):
        await nats.connect(
            stack.nats_url,
            **{**connect_options(stack), "tls": ssl.create_default_context(cafile=_certifi())},
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
        )
    nc = await nats.connect(stack.nats_url, **connect_options(stack), allow_reconnect=False)
    try:
        assert nc.connected_server_version.major >= 2
        # nats-py keeps the TLS-upgraded stream on its transport; nothing public says so.
        writer = nc._transport._io_writer  # type: ignore[union-attr]
        assert writer.get_extra_info("ssl_object") is not None
    finally:
        await nc.close()


async def test_postgresql_takes_tls_connections_only(stack: HearthSettings) -> None:
    login = {
        "host": stack.postgres_client_host,
        "port": stack.postgres_port,
        "user": stack.postgres_user,
        "password": stack.read_secret("postgres-password"),
        "database": stack.postgres_db,
        "timeout": 15,
    }
    with pytest.raises(asyncpg.PostgresError, match="TLS connections only"):
        await asyncpg.connect(**login, ssl="disable")
    conn = await asyncpg.connect(**login, **postgres_connect_args(stack))
    try:
        assert conn.get_settings().server_version  # a real session behind the proxy
        assert await conn.fetchval("SELECT current_user") == stack.postgres_user
        assert conn._transport.get_extra_info("ssl_object") is not None
    finally:
        await conn.close()
    # PostgreSQL's own listener (its build has no TLS) is on loopback, behind the proxy.
    assert stack.postgres_server_host == "127.0.0.1"
    assert stack.postgres_server_port != stack.postgres_port


async def test_temporal_clients_reach_the_frontend_over_tls_only(stack: HearthSettings) -> None:
    from temporalio.client import Client

    client = await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace, tls=temporal_tls(stack))
    assert await client.service_client.check_health()
    with pytest.raises(RuntimeError):  # a plain-text gRPC client never gets past the handshake
        await asyncio.wait_for(
            Client.connect(stack.temporal_address, namespace=stack.temporal_namespace, tls=False), 20
        )
    assert stack.temporal_server_port != stack.temporal_port  # the dev server's own port: loopback, below


def test_what_cannot_do_tls_listens_on_loopback_only(stack: HearthSettings) -> None:
    plain_ports = {
        stack.temporal_server_port,
        stack.temporal_ui_server_port,
        stack.temporal_http_port,
        stack.triton_http_port,
        stack.triton_grpc_port,
        stack.triton_metrics_port,
        stack.postgres_server_port,
    }
    seen = {
        c.laddr.port: c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in plain_ports
    }
    assert set(seen) >= {stack.temporal_server_port, stack.triton_http_port, stack.postgres_server_port}, seen
    for port, host in seen.items():
        assert host.removeprefix("::ffff:") in ("127.0.0.1", "::1"), (port, host)


def test_the_cli_trusts_the_stack_ca_without_any_flag(stack: HearthSettings, stack_environment: dict[str, str]) -> None:
    def hearth(*args: str) -> str:
        return hearth_cli(stack_environment, *args, timeout=120).stdout

    hearth("models", "list")  # through the gateway, over HTTPS verified against the stack's CA
    digest = hashlib.sha256(_stack_der(stack)).hexdigest()
    assert ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)) in hearth("tls", "status")
