"""The local PKI (``shared.tls``) and PostgreSQL's TLS proxy, against real sockets on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from shared import tls
from shared.launcher.tls_proxy import GSSENC_REQUEST, SSL_REQUEST, DirectTlsProxy, PostgresTlsProxy
from shared.settings import HearthSettings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> HearthSettings:
    return load_settings(home=tmp_path / "home", _env_file=None)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_first_start_makes_a_ca_and_a_server_certificate_for_every_name(settings: HearthSettings) -> None:
    done = tls.ensure_certificates(settings)
    assert len(done) == 2
    assert "created the local CA" in done[0]
    ca, server = _cert(settings.tls_ca_path), _cert(settings.tls_cert_path)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", socket.gethostname()} <= set(names.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "::1"} <= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert settings.tls_ca_key_path.stat().st_mode & 0o777 == 0o600
    assert settings.tls_key_path.stat().st_mode & 0o777 == 0o600
    assert settings.tls_key_path.parent == settings.secrets_dir  # keys beside the other secrets
    assert tls.ensure_certificates(settings) == []  # every later start: nothing to do


def test_the_server_certificate_is_reissued_when_due_or_when_a_name_is_missing(settings: HearthSettings) -> None:
    tls.ensure_certificates(settings)
    dns, ips = tls.server_names(settings)
    later = dt.datetime.now(dt.UTC) + tls.SERVER_LIFETIME - tls.RENEW_BEFORE + dt.timedelta(days=1)
    assert (tls.renewal_reason(settings.tls_cert_path, settings.tls_ca_path, dns, ips, now=later) or "").startswith(
        "expires"
    )
    moved = settings.model_copy(update={"bind_host": "10.1.2.3", "nats_host": "bus.internal"})
    first = _cert(settings.tls_cert_path).serial_number
    done = tls.ensure_certificates(moved)
    assert done == [f"issued the server certificate {settings.tls_cert_path} (does not cover 10.1.2.3, bus.internal)"]
    assert _cert(settings.tls_cert_path).serial_number != first
    forced = tls.ensure_certificates(moved, force=True)
    assert "rotation asked for" in forced[0]


def test_a_new_ca_invalidates_the_old_server_certificate(settings: HearthSettings) -> None:
    tls.ensure_certificates(settings)
    old_ca = _cert(settings.tls_ca_path).fingerprint(hashes.SHA256())
    tls.rotate_ca(settings)
    ca, server = _cert(settings.tls_ca_path), _cert(settings.tls_cert_path)
    assert ca.fingerprint(hashes.SHA256()) != old_ca
    server.verify_directly_issued_by(ca)
    other = settings.model_copy(update={"home": settings.home.parent / "other"})
    tls.ensure_certificates(other)
    dns, ips = tls.server_names(settings)
    assert tls.renewal_reason(other.tls_cert_path, settings.tls_ca_path, dns, ips) == "not signed by the current CA"


def test_your_own_ca_issues_the_certificate_and_is_never_replaced(settings: HearthSettings, tmp_path: Path) -> None:
    tls.create_ca(tmp_path / "corp-ca.pem", tmp_path / "corp-ca.key", common_name="Corp CA")
    own = settings.model_copy(
        update={"tls_ca_file": tmp_path / "corp-ca.pem", "tls_ca_key_file": tmp_path / "corp-ca.key"}
    )
    done = tls.ensure_certificates(own)
    assert len(done) == 1
    assert not (settings.tls_dir / "ca.pem").exists()
    assert "Corp CA" in tls.describe(own.tls_cert_path).issuer
    with pytest.raises(tls.TlsError, match="your own"):
        tls.rotate_ca(own)


def test_your_own_certificate_is_used_as_is_and_must_come_whole(settings: HearthSettings, tmp_path: Path) -> None:
    tls.ensure_certificates(settings)
    own = settings.model_copy(
        update={
            "tls_cert_file": settings.tls_cert_path,
            "tls_key_file": settings.tls_key_path,
            "tls_ca_file": settings.tls_ca_path,
        }
    )
    before = settings.tls_cert_path.read_bytes()
    assert tls.ensure_certificates(own, force=True) == []
    assert settings.tls_cert_path.read_bytes() == before
    half = settings.model_copy(update={"tls_cert_file": settings.tls_cert_path, "tls_key_file": tmp_path / "none.key"})
    with pytest.raises(tls.TlsError, match="go together"):
        tls.ensure_certificates(half)


def test_clients_verify_the_ca_and_the_host_name(settings: HearthSettings) -> None:
    with pytest.raises(tls.TlsError, match=r"tls/ca\.pem is missing"):
        tls.client_context(settings)
    tls.ensure_certificates(settings)
    context = tls.client_context(settings)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert tls.client_context(settings) is context  # built once per CA file
    plain = settings.model_copy(update={"tls": False})
    assert tls.client_context(plain) is None
    assert tls.http_verify(plain) is True
    assert tls.postgres_connect_args(plain) == {}


# ---- the PostgreSQL TLS proxy -------------------------------------------------------------------


class _Upstream:
    """Stands in for PostgreSQL's loopback listener: records what arrives and echoes it back."""

    def __init__(self) -> None:
        self.received = bytearray()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += data
            writer.write(data)
            await writer.drain()
        writer.close()


async def _proxy(settings: HearthSettings) -> tuple[PostgresTlsProxy, _Upstream, asyncio.Server, asyncio.Server]:
    tls.ensure_certificates(settings)
    upstream = _Upstream()
    up_server = await asyncio.start_server(upstream.handle, "127.0.0.1", settings.postgres_internal_port)
    proxy = PostgresTlsProxy(settings)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", settings.postgres_port)
    return proxy, upstream, server, up_server


async def _tls_client(
    settings: HearthSettings, *, gss_first: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.postgres_port)
    if gss_first:
        writer.write(struct.pack("!II", 8, GSSENC_REQUEST))
        assert await reader.readexactly(1) == b"N"
    writer.write(struct.pack("!II", 8, SSL_REQUEST))
    assert await reader.readexactly(1) == b"S"
    await writer.start_tls(tls.client_context(settings), server_hostname="127.0.0.1")  # type: ignore[arg-type]
    return reader, writer


@pytest.fixture
def proxy_settings(settings: HearthSettings) -> HearthSettings:
    return settings.model_copy(update={"postgres_port": _free_port(), "postgres_internal_port": _free_port()})


async def test_the_proxy_relays_only_after_a_verified_handshake(proxy_settings: HearthSettings) -> None:
    _, upstream, server, up_server = await _proxy(proxy_settings)
    async with server, up_server:
        reader, writer = await _tls_client(proxy_settings, gss_first=True)
        startup = b"\x00\x00\x00\x08\x00\x03\x00\x00"
        writer.write(startup)
        assert await reader.readexactly(len(startup)) == startup
        assert bytes(upstream.received) == startup  # the negotiation itself never reaches PostgreSQL
        writer.close()


async def test_a_plain_text_client_is_refused_like_postgresql_refuses(proxy_settings: HearthSettings) -> None:
    _, upstream, server, up_server = await _proxy(proxy_settings)
    async with server, up_server:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_settings.postgres_port)
        writer.write(struct.pack("!II", 8, 196608))  # a StartupMessage, protocol 3.0, no SSLRequest
        answer = await reader.read(1024)
        assert answer[:1] == b"E"
        assert b"C28000\0" in answer
        assert b"TLS connections only" in answer
        assert await reader.read(1) == b""  # and disconnected
        assert upstream.received == b""


async def test_sighup_reload_serves_the_rotated_certificate(proxy_settings: HearthSettings) -> None:
    proxy, _, server, up_server = await _proxy(proxy_settings)
    async with server, up_server:

        async def served() -> bytes:
            _, writer = await _tls_client(proxy_settings)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return bytes(der)

        before = await served()
        tls.ensure_certificates(proxy_settings, force=True)
        assert await served() == before  # loaded at start, until told
        proxy.reload()
        after = await served()
        assert after != before
        assert after == _cert(proxy_settings.tls_cert_path).public_bytes(Encoding.DER)


async def test_the_grpc_proxy_offers_h2_and_refuses_plain_text(proxy_settings: HearthSettings) -> None:
    tls.ensure_certificates(proxy_settings)
    settings = proxy_settings.model_copy(update={"temporal_port": _free_port(), "temporal_internal_port": _free_port()})
    upstream = _Upstream()
    up_server = await asyncio.start_server(upstream.handle, "127.0.0.1", settings.temporal_internal_port)
    relay = DirectTlsProxy(settings, "temporal-tls", settings.temporal_internal_port, ["h2"])
    server = await asyncio.start_server(relay.handle, "127.0.0.1", settings.temporal_port, ssl=relay.context)
    async with server, up_server:
        context = ssl.create_default_context(cafile=str(settings.tls_ca_path))
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.temporal_port, ssl=context)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert await reader.readexactly(24) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.temporal_port)
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # a plain-text gRPC client's preface
        assert await reader.read(1024) == b""  # the handshake fails: closed, nothing relayed
        assert bytes(upstream.received) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # the TLS client's only
