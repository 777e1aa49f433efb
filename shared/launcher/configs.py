"""Configuration files the launcher renders into ``$HEARTH_HOME/run`` before each start.

They are regenerated from settings every time, so changing a ``HEARTH_*`` variable and running
``hearth up`` again is enough; data never lives in these files.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.launcher.components import Component
from shared.settings import REPO_ROOT, HearthSettings


def _q(value: str | Path) -> str:
    """A double-quoted string for HCL / NATS config (both accept JSON string syntax)."""
    return json.dumps(str(value))


def nats_conf(settings: HearthSettings) -> str:
    """The server config; with ``HEARTH_NATS_AUTH`` (the default) every client needs a user.

    Users and their permissions come from ``shared.natsauth`` (a SIGHUP, ``natsauth.reload``,
    applies changes without a restart).
    """
    from shared.natsauth import authorization_conf  # imports the event catalog: only when rendering

    store = settings.data_dir("nats")
    authorization = authorization_conf(settings) if settings.nats_auth else ""
    monitor = "https" if settings.tls else "http"
    tls = ""
    if settings.tls:
        # With a tls block every client connection must be TLS (no allow_non_tls); the block also
        # serves the https monitoring port.
        tls = f"""tls {{
  cert_file: {_q(settings.tls_cert_path)}
  key_file: {_q(settings.tls_key_path)}
  min_version: "1.2"
  timeout: 2
}}
"""
    return f"""# Rendered by `hearth up` from HEARTH_* settings; edits are overwritten.
server_name: hearth
listen: {settings.bind_host}:{settings.nats_port}
{monitor}: {settings.bind_host}:{settings.nats_monitor_port}
{tls}pid_file: {_q(settings.run_dir / "nats.pid")}
# Page images for OCR travel as lossless PNG (a noisy A4 scan is about 1 MB); events stay under
# HEARTH_EVENT_INLINE_MAX_BYTES regardless.
max_payload: 4MB
jetstream {{
  store_dir: {_q(store)}
  # Default JetStream acknowledges before the write reaches the disk, so an OS crash loses
  # acknowledged messages (found by Jepsen). A single box has no replicas to cover for that:
  # fsync every write.
  sync_interval: always
}}
{authorization}"""


def openbao_hcl(settings: HearthSettings) -> str:
    host = settings.bind_host
    if settings.tls:
        tls = (
            f"tls_cert_file   = {_q(settings.tls_cert_path)}\n"
            f"  tls_key_file    = {_q(settings.tls_key_path)}\n"
            '  tls_min_version = "tls12"'
        )
        scheme = "https"
    else:
        tls, scheme = "tls_disable     = true", "http"
    return f"""# Rendered by `hearth up` from HEARTH_* settings; edits are overwritten.
# Server mode with integrated (raft) storage: OpenBao 2.x has no `file` backend, and dev mode
# loses its keys (and so every encrypted byte) on restart.
storage "raft" {{
  path    = {_q(settings.data_dir("openbao"))}
  node_id = "hearth-1"
}}

listener "tcp" {{
  address         = "{host}:{settings.openbao_port}"
  cluster_address = "{host}:{settings.openbao_cluster_port}"
  {tls}
}}

# Single-box default: auto-unseal from a 32-byte key kept 0600 in the state directory, so a
# restart by the supervisor comes back unsealed. Production: replace with an HSM/KMS or transit
# seal, or remove this block and unseal by hand with the recovery keys (see README).
seal "static" {{
  current_key_id = "hearth-1"
  current_key    = {_q("file://" + str(settings.secret_path("openbao-unseal.key")))}
}}

api_addr      = "{scheme}://{host}:{settings.openbao_port}"
# Raft traffic between nodes is always TLS (OpenBao's own cluster certificates).
cluster_addr  = "https://{host}:{settings.openbao_cluster_port}"
disable_mlock = true
ui            = false
log_level     = "warn"
"""


def _supervisor_env(env: dict[str, str]) -> str:
    # supervisor interpolates %(name)s in values, so a literal % must be doubled; values are
    # quoted because they may contain commas.
    parts = []
    for key, value in sorted(env.items()):
        escaped = value.replace("%", "%%").replace('"', '\\"')
        parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


def _supervisor_command(command: list[str]) -> str:
    out = []
    for raw in command:
        arg = raw.replace("%", "%%")
        out.append(json.dumps(arg) if any(c in arg for c in " \"'") else arg)
    return " ".join(out)


def supervisord_conf(settings: HearthSettings, components: list[Component]) -> str:
    run, logs = settings.run_dir, settings.log_dir
    base_env = settings.child_environment()
    lines = [
        "; Rendered by `hearth up`; edits are overwritten. Contains a secret: mode 0600.",
        "[unix_http_server]",
        f"file={run / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={logs / 'supervisord.log'}",
        "logfile_maxbytes=10MB",
        "logfile_backups=3",
        f"pidfile={run / 'supervisord.pid'}",
        f"childlogdir={logs}",
        f"identifier=hearth:{settings.home}",
        f"directory={settings.home}",
        "loglevel=info",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run / 'supervisor.sock'}",
        "",
    ]
    for comp in components:
        env = {**base_env, **comp.env}
        lines += [
            f"[program:{comp.name}]",
            f"command={_supervisor_command(comp.command)}",
            # `hearth up` starts tiers in dependency order with readiness checks, so nothing
            # starts on its own; after that supervisor restarts crashes with growing back-off.
            "autostart=false",
            "autorestart=true",
            "startsecs=2",
            "startretries=20",
            f"stopsignal={comp.stop_signal}",
            f"stopwaitsecs={comp.stop_wait_s}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={logs / (comp.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=5",
            f"priority={100 + comp.tier * 100}",
            f"directory={settings.home if comp.tier == 0 else REPO_ROOT}",
            f"environment={_supervisor_env(env)}",
        ]
        if comp.user:
            lines.append(f"user={comp.user}")
        lines.append("")
    return "\n".join(lines)
