"""TLS of the stack's connections: a local CA and a server certificate, and the client contexts that trust them.

On a single box ``hearth up`` makes a private CA (ten years) on the first start and issues one server
certificate from it for every name the box answers to (``localhost``, the host name, the loopback
addresses, ``HEARTH_BIND_HOST`` and the ``HEARTH_*_HOST`` names). NATS, PostgreSQL, OpenBao and the
gateway serve it; every Hearth client verifies it, host name included, against the CA.

The server certificate is reissued at ``hearth up`` when it expires within ``RENEW_BEFORE`` or no
longer covers the box's names, and at once by ``hearth tls rotate`` (README "Transport
encryption"). Bring your own: ``HEARTH_TLS_CA_FILE`` + ``HEARTH_TLS_CA_KEY_FILE`` make Hearth
issue from your CA; ``HEARTH_TLS_CERT_FILE`` + ``HEARTH_TLS_KEY_FILE`` (with ``HEARTH_TLS_CA_FILE``
for clients) use your certificate as is and issue nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.files import write_atomically
from shared.settings import HearthSettings, SettingsError

if TYPE_CHECKING:
    from temporalio.service import TLSConfig

CA_LIFETIME: Final = dt.timedelta(days=3650)
SERVER_LIFETIME: Final = dt.timedelta(days=397)
"""The longest lifetime browsers accept for a server certificate."""
RENEW_BEFORE: Final = dt.timedelta(days=30)
_WILDCARDS: Final = {"0.0.0.0", "::", ""}  # noqa: S104 - names of wildcard binds, not a bind


def _drop_start_tls_eof_warning(record: logging.LogRecord) -> bool:
    # asyncio's stream protocol still takes a connection upgraded by start_tls() for plain text and
    # warns when it ends; nothing is lost. asyncpg (PostgreSQL's SSLRequest), the PostgreSQL TLS
    # proxy and its probe all upgrade this way, so without this every connection logs a warning.
    return not record.getMessage().startswith("returning true from eof_received() has no effect when using ssl")


logging.getLogger("asyncio").addFilter(_drop_start_tls_eof_warning)


class TlsError(SettingsError):
    """A certificate or key is missing, unreadable or does not fit; the message names the file."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What ``hearth tls status`` shows of one certificate."""

    path: Path
    subject: str
    issuer: str
    not_after: dt.datetime
    names: tuple[str, ...]
    sha256: str


def server_names(settings: HearthSettings) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses the server certificate must cover."""
    dns = {"localhost", socket.gethostname()}
    ips = {"127.0.0.1", "::1"}
    hosts = [settings.bind_host, settings.nats_host, settings.postgres_host, settings.openbao_host]
    hosts += [settings.gateway_host, settings.temporal_host, settings.triton_host]
    for host in hosts:
        if not host or host in _WILDCARDS:
            continue
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.add(host)
    return sorted(dns), sorted(ips)


# ---- issuing ------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_ca(cert_path: Path, key_path: Path, *, common_name: str = "Hearth local CA") -> None:
    """A new self-signed CA: the certificate 0644 at ``cert_path``, its key 0600 at ``key_path``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hearth"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomically(key_path, _key_pem(key), 0o600)
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"cannot load the CA {cert_path} with key {key_path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise TlsError(f"{key_path} holds a {type(key).__name__}, which cannot sign certificates here")
    return cert, key


def issue_server_certificate(
    ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path, *, dns: list[str], ips: list[str]
) -> None:
    """A server certificate for ``dns`` and ``ips`` signed by the CA; a new key each time."""
    ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else ips[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    # Key first: a certificate on disk without its key would break the next start.
    write_atomically(key_path, _key_pem(key), 0o600)
    write_atomically(
        cert_path,
        cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM),
        0o644,
    )


def renewal_reason(
    cert_path: Path, ca_cert_path: Path, dns: list[str], ips: list[str], *, now: dt.datetime | None = None
) -> str | None:
    """Why the server certificate must be issued again, or ``None`` when it is good."""
    if not cert_path.exists():
        return "no server certificate yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        return f"unreadable certificate ({exc})"
    if cert.issuer != ca.subject:
        return "issued by another CA"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the current CA"
    if cert.not_valid_after_utc - (now or _now()) < RENEW_BEFORE:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    missing = sorted(set(dns + ips) - set(_names(cert)))
    return f"does not cover {', '.join(missing)}" if missing else None


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName)) + tuple(
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    )


def ensure_certificates(settings: HearthSettings, *, force: bool = False) -> list[str]:
    """Make the CA and server certificate that are missing or due; returns what was done, for the log."""
    if not settings.tls:
        return []
    if settings.tls_cert_file or settings.tls_key_file:
        for path in (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file):
            if path is None or not Path(path).is_file():
                raise TlsError(
                    "HEARTH_TLS_CERT_FILE, HEARTH_TLS_KEY_FILE and HEARTH_TLS_CA_FILE go together "
                    f"(bring your own certificate); {path or 'one of them'} is missing"
                )
        return []
    done = []
    ca_cert, ca_key = settings.tls_ca_path, settings.tls_ca_key_path
    if not ca_cert.exists():
        if settings.tls_ca_file:
            raise TlsError(f"HEARTH_TLS_CA_FILE {ca_cert} does not exist")
        create_ca(ca_cert, ca_key)
        done.append(f"created the local CA {ca_cert}")
    elif not ca_key.exists():
        raise TlsError(f"the CA key {ca_key} is missing: restore it, or set HEARTH_TLS_CA_KEY_FILE")
    dns, ips = server_names(settings)
    reason = "rotation asked for" if force else renewal_reason(settings.tls_cert_path, ca_cert, dns, ips)
    if reason:
        issue_server_certificate(ca_cert, ca_key, settings.tls_cert_path, settings.tls_key_path, dns=dns, ips=ips)
        done.append(f"issued the server certificate {settings.tls_cert_path} ({reason})")
    return done


def rotate_ca(settings: HearthSettings) -> None:
    """A new local CA (and so a new server certificate); clients must trust the new ``ca.pem``."""
    if settings.tls_ca_file:
        raise TlsError("the CA is your own (HEARTH_TLS_CA_FILE): rotate it where it is issued")
    create_ca(settings.tls_ca_path, settings.tls_ca_key_path)
    ensure_certificates(settings, force=True)


def describe(path: Path) -> CertificateInfo:
    """Subject, issuer, expiry, names and fingerprint of the first certificate in ``path``."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = _names(cert)
    return CertificateInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        names=names,
        sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


# ---- client side --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _context(cafile: str, mtime_ns: int) -> ssl.SSLContext:
    # Keyed on the file's mtime: a rotated CA is picked up by the next connection.
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(settings: HearthSettings) -> ssl.SSLContext | None:
    """A context that verifies the stack's servers (CA and host name); ``None`` with ``HEARTH_TLS=false``."""
    if not settings.tls:
        return None
    path = settings.tls_ca_path
    try:
        return _context(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise TlsError(f"the CA certificate {path} is missing: run `hearth up` to make it") from None
    except ssl.SSLError as exc:
        raise TlsError(f"the CA certificate {path} cannot be loaded: {exc}") from None


def http_verify(settings: HearthSettings) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for the stack's HTTPS endpoints (the system CAs when TLS is off)."""
    return client_context(settings) or True


def server_context(settings: HearthSettings) -> ssl.SSLContext:
    """The context a Hearth server (the metrics endpoints) serves the server certificate with."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_path, settings.tls_key_path)
    return context


def postgres_connect_args(settings: HearthSettings) -> dict[str, ssl.SSLContext]:
    """asyncpg keyword arguments for a TCP connection to the stack's PostgreSQL (verified TLS)."""
    context = client_context(settings)
    return {"ssl": context} if context is not None else {}


def temporal_tls(settings: HearthSettings) -> TLSConfig | bool:
    """temporalio's ``tls=``: the stack's CA for the frontend's proxy; ``False`` with TLS off."""
    from temporalio.service import TLSConfig

    if not settings.tls:
        return False
    try:
        return TLSConfig(server_root_ca_cert=settings.tls_ca_path.read_bytes())
    except FileNotFoundError:
        raise TlsError(f"the CA certificate {settings.tls_ca_path} is missing: run `hearth up` to make it") from None
