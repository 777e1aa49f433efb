"""``hearth up | down | status``: the stack's lifecycle on top of supervisord.

Start order: every infrastructure component (tier 0) starts at once and must pass its readiness
probe; then first-start bootstrap (OpenBao init, database role and migrations, JetStream
streams); then every Hearth service (tier 1), each ready when it answers its health request over
NATS. A failure stops with one message naming the component, the cause and the log to read.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from shared import tls
from shared.health import ComponentHealth, infra_probes, probe_services
from shared.launcher import bootstrap
from shared.launcher.components import Component, MissingBinary, build_components
from shared.launcher.configs import nats_conf, openbao_hcl, supervisord_conf
from shared.launcher.supervisor import ProcessInfo, Supervisor, SupervisorError, log_path
from shared.settings import SERVICES, HearthSettings, SettingsError
from shared.tls import http_verify


class LaunchError(RuntimeError):
    """A user-facing failure of ``hearth up|down``: one message with cause and fix."""


@dataclass
class ComponentStatus:
    name: str
    kind: str  # "infra" | "service"
    state: str
    pid: int | None
    uptime_s: float | None
    health: ComponentHealth
    ports: dict[str, int] = field(default_factory=dict)
    log: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "pid": self.pid,
            "uptime_s": None if self.uptime_s is None else round(self.uptime_s, 1),
            "status": self.health.status,
            "version": self.health.version,
            "url": self.health.url,
            "latency_ms": self.health.latency_ms,
            "detail": self.health.detail,
            "ports": self.ports,
            "log": self.log,
        }


async def probe_all(settings: HearthSettings) -> dict[str, ComponentHealth]:
    infra = await asyncio.gather(*(probe(settings) for probe in infra_probes(settings).values()))
    services = await probe_services(settings, list(SERVICES))
    return {**{h.name: h for h in infra}, **services}


# ---- preflight ---------------------------------------------------------------------------------


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({proc.name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def check_ports(settings: HearthSettings, components: list[Component]) -> None:
    """Every port must be free before a first start; names the setting to change if not."""
    for comp in components:
        for label, port in comp.ports.items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((settings.bind_host, port))
                except OSError:
                    var = _port_variable(comp.name, label)
                    raise LaunchError(
                        f"port {port} ({comp.name} {label}) on {settings.bind_host} is in use{_port_owner(port)}. "
                        f"Stop that process, or choose other ports with {var}=<port> or HEARTH_PORT_OFFSET=<n>."
                    ) from None


def _port_variable(component: str, label: str) -> str:
    names = {
        ("nats", "client"): "NATS_PORT",
        ("nats", "monitor"): "NATS_MONITOR_PORT",
        ("postgres", "sql"): "POSTGRES_PORT",
        ("openbao", "api"): "OPENBAO_PORT",
        ("openbao", "cluster"): "OPENBAO_CLUSTER_PORT",
        ("temporal", "grpc"): "TEMPORAL_PORT",
        ("temporal", "ui"): "TEMPORAL_UI_PORT",
        ("temporal", "http"): "TEMPORAL_HTTP_PORT",
        ("temporal", "metrics"): "TEMPORAL_METRICS_PORT",
        ("triton", "http"): "TRITON_HTTP_PORT",
        ("triton", "grpc"): "TRITON_GRPC_PORT",
        ("triton", "metrics"): "TRITON_METRICS_PORT",
        ("gateway", "http"): "GATEWAY_PORT",
    }
    if label == "metrics" and (component, label) not in names:
        return "HEARTH_METRICS_PORT"
    return "HEARTH_" + names.get((component, label), f"{component}_{label}_PORT".upper())


# ---- up / down / status ------------------------------------------------------------------------


Reporter = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _render(settings: HearthSettings, components: list[Component]) -> None:
    run = settings.run_dir
    for name, text in (
        ("nats.conf", nats_conf(settings)),
        ("openbao.hcl", openbao_hcl(settings)),
        ("supervisord.conf", supervisord_conf(settings, components)),
    ):
        path = run / name
        bootstrap.write_secret(path, text)  # 0600: supervisord.conf holds the Triton admin key


async def _wait_ready(
    sup: Supervisor,
    settings: HearthSettings,
    names: list[str],
    probe: Callable[[list[str]], Awaitable[dict[str, ComponentHealth]]],
    timeout: float,
) -> dict[str, ComponentHealth]:
    deadline = time.monotonic() + timeout
    pending = list(names)
    last: dict[str, ComponentHealth] = {}
    while pending:
        results = await probe(pending)
        last.update(results)
        pending = [n for n in pending if results[n].status != "ok"]
        if not pending:
            break
        for name in pending:
            info = sup.info(name)
            if info.state in ("FATAL", "EXITED", "STOPPED"):
                raise LaunchError(_failure_message(settings, name, f"its process is {info.state}", info))
        if time.monotonic() > deadline:
            name = pending[0]
            raise LaunchError(
                _failure_message(
                    settings, name, f"not healthy after {timeout:.0f}s ({last[name].detail})", sup.info(name)
                )
            )
        await asyncio.sleep(0.25)
    return last


def _failure_message(settings: HearthSettings, name: str, cause: str, info: ProcessInfo | None) -> str:
    path = log_path(settings, name)
    tail = ""
    if path.exists():
        lines = path.read_text(errors="replace").splitlines()[-8:]
        tail = "\n    " + "\n    ".join(lines) if lines else ""
    state = f" [{info.state}: {info.description}]" if info else ""
    return f"{name} failed to start: {cause}{state}.\n  Log: {path}{tail}\n  Fix the cause, then run `hearth up` again."


async def _probe_infra(
    settings: HearthSettings, names: list[str], *, before_bootstrap: bool
) -> dict[str, ComponentHealth]:
    async def one(name: str) -> ComponentHealth:
        if before_bootstrap and name == "openbao":
            return await _probe_openbao_listening(settings)
        if before_bootstrap and name == "postgres":
            return await _probe_postgres_socket(settings)
        return await infra_probes(settings)[name](settings)

    results = await asyncio.gather(*(one(n) for n in names))
    return {r.name: r for r in results}


async def _probe_openbao_listening(settings: HearthSettings) -> ComponentHealth:
    """Before init, any answer from /sys/seal-status means the server is up."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=2, verify=http_verify(settings)) as client:
            resp = await client.get(f"{settings.openbao_url}/v1/sys/seal-status")
        return ComponentHealth(name="openbao", status="ok" if resp.status_code == 200 else "down")
    except httpx.HTTPError as exc:
        return ComponentHealth(name="openbao", status="down", detail=str(exc) or type(exc).__name__)


async def _probe_postgres_socket(settings: HearthSettings) -> ComponentHealth:
    import asyncpg

    from shared.launcher.components import postgres_socket_dir

    try:
        conn = await asyncpg.connect(
            host=str(postgres_socket_dir(settings)),
            port=settings.postgres_server_port,
            user="postgres",
            database="postgres",
            timeout=2,
        )
        await conn.close()
        return ComponentHealth(name="postgres", status="ok")
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return ComponentHealth(name="postgres", status="down", detail=str(exc) or type(exc).__name__)


def _prepare(settings: HearthSettings, sup: Supervisor, report: Reporter) -> list[Component]:
    """Preflight before touching the state dir (binaries, then on a first start free ports); state."""
    try:
        components = build_components(settings)
        running = sup.daemon_pid() is not None
        if not running:
            check_ports(settings, components)
        for done in bootstrap.prepare_state(settings):
            report(done)
            if running and "server certificate" in done:
                report("the running stack still serves the previous one: `hearth tls rotate` loads it now")
        return build_components(settings)  # again: now with the secrets it references
    except (MissingBinary, bootstrap.StateError, SettingsError) as exc:
        raise LaunchError(str(exc)) from None
    except PermissionError as exc:
        raise LaunchError(
            f"cannot write the state directory {settings.home}: {exc}. Set HEARTH_HOME to a writable path."
        ) from None


def up(settings: HearthSettings, report: Reporter = _quiet) -> float:
    """Start (or complete) the stack and wait until every component is healthy; returns seconds."""
    started = time.monotonic()
    sup = Supervisor(settings)
    running = sup.daemon_pid()
    components = _prepare(settings, sup, report)
    if running is None:
        _render(settings, components)
        sup.start_daemon()
        report(f"supervisord started (state dir {settings.home})")
    else:
        report(f"Hearth is already running under supervisord pid {running}: checking every component")
        nats_conf_path = settings.run_dir / "nats.conf"
        previous = nats_conf_path.read_text() if nats_conf_path.exists() else ""
        _render(settings, components)
        sup.reload_config()
        # Only on a change: a reload re-checks the credentials of every connected client.
        if nats_conf_path.read_text() != previous:
            from shared.natsauth import signal_reload  # the event catalog: only when it is needed

            if signal_reload(settings):
                report("nats-server reloaded its users and permissions")
    return asyncio.run(_start_tiers(settings, sup, components, report, started))


def up_infrastructure(settings: HearthSettings, report: Reporter = _quiet) -> None:
    """Start supervisord and the infrastructure tier only, before any bootstrap (``hearth restore``
    puts the archived state into them, then ``up`` completes the stack)."""
    sup = Supervisor(settings)
    if sup.daemon_pid() is not None:
        raise LaunchError(f"Hearth is already running for {settings.home}: stop it first (`hearth down`)")
    components = _prepare(settings, sup, report)
    _render(settings, components)
    sup.start_daemon()
    infra = [c.name for c in components if c.tier == 0]
    for name in infra:
        sup.start(name)
    asyncio.run(
        _wait_ready(
            sup,
            settings,
            infra,
            lambda n: _probe_infra(settings, n, before_bootstrap=True),
            settings.startup_timeout_s,
        )
    )
    report(f"infrastructure up: {', '.join(infra)} (state dir {settings.home})")


async def _start_tiers(
    settings: HearthSettings, sup: Supervisor, components: list[Component], report: Reporter, started: float
) -> float:
    infra = [c.name for c in components if c.tier == 0]
    services = [c.name for c in components if c.tier == 1]
    for name in infra:
        sup.start(name)
    await _wait_ready(
        sup, settings, infra, lambda n: _probe_infra(settings, n, before_bootstrap=True), settings.startup_timeout_s
    )
    report(f"infrastructure up: {', '.join(infra)} ({time.monotonic() - started:.1f}s)")
    try:
        await asyncio.gather(
            bootstrap.bootstrap_openbao(settings),
            bootstrap.bootstrap_postgres(settings),
            bootstrap.bootstrap_nats(settings),
        )
    except bootstrap.StateError as exc:
        raise LaunchError(str(exc)) from None
    await _wait_ready(
        sup, settings, infra, lambda n: _probe_infra(settings, n, before_bootstrap=False), settings.startup_timeout_s
    )
    report(
        f"bootstrap done: OpenBao unsealed, database migrated, streams provisioned ({time.monotonic() - started:.1f}s)"
    )
    for name in services:
        sup.start(name)
    await _wait_ready(sup, settings, services, lambda n: probe_services(settings, n), settings.startup_timeout_s)
    elapsed = time.monotonic() - started
    report(f"services up: {', '.join(services)} ({elapsed:.1f}s)")
    return elapsed


def down(settings: HearthSettings, report: Reporter = _quiet) -> bool:
    """Stop services, then infrastructure, then supervisord. False if nothing was running."""
    sup = Supervisor(settings)
    if sup.daemon_pid() is None:
        return False
    infos = sup.all_info()
    order = [*reversed(SERVICES), "triton", "temporal-tls", "temporal", "openbao", "postgres-tls", "postgres", "nats"]
    for name in order:
        if name in infos and infos[name].state in ("RUNNING", "STARTING", "BACKOFF"):
            sup.stop(name)
            report(f"stopped {name}")
    try:
        sup.shutdown()
    except SupervisorError as exc:
        raise LaunchError(str(exc)) from None
    return True


def rotate_tls(settings: HearthSettings, report: Reporter = _quiet, *, new_ca: bool = False) -> None:
    """Issue a new server certificate (with ``new_ca`` a new local CA first) and make the stack serve it.

    NATS, OpenBao and the TLS proxies reload it on SIGHUP without dropping a connection;
    the Hearth processes load it at start, so they restart one at a time.
    """
    if not settings.tls:
        raise LaunchError("HEARTH_TLS is false: the stack serves no certificate")
    try:
        if new_ca:
            tls.rotate_ca(settings)
            report(f"new local CA {settings.tls_ca_path}: clients outside the stack must trust it again")
        else:
            tls.ensure_certificates(settings, force=True)
    except tls.TlsError as exc:
        raise LaunchError(str(exc)) from None
    info = tls.describe(settings.tls_cert_path)
    report(f"new server certificate {settings.tls_cert_path}, valid until {info.not_after:%Y-%m-%d}")
    sup = Supervisor(settings)
    if sup.daemon_pid() is None:
        report("the stack is not running: the next `hearth up` serves it")
        return
    running = {name for name, i in sup.all_info().items() if i.state == "RUNNING"}
    for name in ("nats", "openbao", "postgres-tls", "temporal-tls"):
        if name in running:
            sup.signal(name, "HUP")
            report(f"{name} reloaded its certificate")
    for name in SERVICES:
        if name in running:
            sup.stop(name)
            sup.start(name)
            asyncio.run(
                _wait_ready(sup, settings, [name], lambda n: probe_services(settings, n), settings.startup_timeout_s)
            )
            report(f"{name} restarted")


def status(settings: HearthSettings) -> list[ComponentStatus]:
    """Every component with supervisor state, pid, uptime and a live health probe."""
    sup = Supervisor(settings)
    daemon = sup.daemon_pid()
    infos = sup.all_info() if daemon else {}
    try:
        components = build_components(settings)
    except (MissingBinary, SettingsError) as exc:
        raise LaunchError(str(exc)) from None
    health = asyncio.run(probe_all(settings)) if daemon else {}
    out = []
    for comp in components:
        info = infos.get(comp.name)
        h = health.get(comp.name) or ComponentHealth(name=comp.name, status="down", detail="not running")
        if h.url is None or comp.name == "gateway":
            h.url = comp.url
        out.append(
            ComponentStatus(
                name=comp.name,
                kind="infra" if comp.tier == 0 else "service",
                state=info.state if info else "STOPPED",
                pid=info.pid if info else None,
                uptime_s=info.uptime_s if info else None,
                health=h,
                ports=comp.ports,
                log=str(log_path(settings, comp.name)),
            )
        )
    return out


def urls(settings: HearthSettings) -> dict[str, str]:
    """What a user opens after ``hearth up``."""
    return {
        "Gateway API": settings.gateway_url,
        "API docs (OpenAPI)": f"{settings.gateway_url}/schema",
        "Health": f"{settings.gateway_url}/v1/health",
        "Temporal UI": settings.temporal_ui_url,
        "NATS": settings.nats_url,
        "NATS monitoring": settings.nats_monitor_url,
        "OpenBao": settings.openbao_url,
        "PostgreSQL": f"postgresql://{settings.postgres_user}@{settings.bind_host}:{settings.postgres_port}/{settings.postgres_db}"
        + ("?sslmode=verify-full" if settings.tls else ""),
        "Triton (private)": settings.triton_http_url,
        "Admin API key": f"{settings.secret_path('admin-api-key')} (send as `Authorization: Bearer <key>`)",
        **(
            {"TLS CA": f"{settings.tls_ca_path} (trust it in your clients; `hearth tls status`)"}
            if settings.tls
            else {}
        ),
    }
