"""``hearth backup`` and ``hearth restore``: the whole state of a stack in one encrypted archive.

What an archive holds, each part taken with its component's own consistent-copy mechanism while
the stack runs:

- PostgreSQL: ``pg_dump -Fc`` of the platform database (one snapshot transaction) and
  ``pg_dumpall --globals-only`` (the roles, analysts' included);
- Temporal: its SQLite database through SQLite's online backup API;
- OpenBao: a raft snapshot (the transit keys every blob's data key is wrapped under);
- JetStream: every message of the streams that hold state rather than traffic: the blob buckets
  (``OBJ_*``: blobs are sealed already, and are copied as they are) and the dead letters. Events
  in flight on the other streams are not state: what they started is in Temporal or PostgreSQL.
  The audit stream is a copy of the audit table that the relay rebuilds from the restored table
  (a copy taken after the dump would hold entries the dump lacks, and read as deleted ones);
- the state directory's secrets (OpenBao's unseal key and root token, service credentials, the
  TLS keys), its ``tls/`` certificates (so clients keep trusting the restored CA) and the models
  the user added to Triton;
- the cold tier's copies of blobs (``shared.coldstore``), after the streams.

Order matters: the database is dumped first, blobs last, so every blob the dump refers to is in
the archive (blobs are written before the rows that name them). ``hearth restore`` puts this
into an *empty* state directory: files first, then the infrastructure tier alone, then OpenBao's
snapshot, the database, the streams; then the normal ``up`` starts every service on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import httpx

from shared.launcher import bootstrap, stack
from shared.launcher.archive import ArchiveError, DecryptingReader, EncryptingWriter
from shared.launcher.components import postgres_bin_dir, postgres_socket_dir
from shared.launcher.supervisor import Supervisor
from shared.settings import HearthSettings
from shared.tls import http_verify

Reporter = Callable[[str], None]
FORMAT: Final = 1
DEADLETTER_STREAM: Final = "HEARTH_DEADLETTER"
_RECORD = struct.Struct(">II")  # meta length, data length
# OpenBao's init file is written back only after the snapshot is in: a fresh OpenBao is first
# initialised with a throwaway root token, and the snapshot brings the archived one back.
_HELD_BACK_SECRETS: Final = ("openbao-init.json",)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass
class Manifest:
    format: int
    created_at: str
    home: str
    alembic_revision: str | None
    streams: dict[str, int] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {bytes, sha256}

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def _quiet(_: str) -> None:
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


def _run(command: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result


def _pg(settings: HearthSettings, tool: str, *args: str) -> list[str]:
    """A PostgreSQL client command over the state dir's socket, as the superuser (trust, 0700 dir)."""
    socket_dir = str(postgres_socket_dir(settings))
    return [
        str(postgres_bin_dir() / tool),
        "-h",
        socket_dir,
        "-p",
        str(settings.postgres_server_port),
        "-U",
        "postgres",
        *args,
    ]


async def _backup_token(client: httpx.AsyncClient, settings: HearthSettings) -> str:
    """A token of the ``backup`` AppRole (policy ``hearth-backup``: the raft snapshot, nothing else)."""
    path = settings.secret_path("approle-backup.json")
    if not path.exists():
        raise BackupError(f"{path} is missing: run `hearth up` once with this version to create the backup AppRole")
    login = await client.post(f"{settings.openbao_url}/v1/auth/approle/login", json=json.loads(path.read_text()))
    if login.status_code != 200:
        raise BackupError(f"OpenBao refused the backup AppRole's login: {login.status_code} {login.text[:300]}")
    return str(login.json()["auth"]["client_token"])


# ---- create -----------------------------------------------------------------------------------


def _dump_postgres(settings: HearthSettings, into: Path) -> str | None:
    into.mkdir()
    _run(_pg(settings, "pg_dump", "-Fc", "-d", settings.postgres_db, "-f", str(into / "hearth.dump")), "pg_dump")
    _run(_pg(settings, "pg_dumpall", "--globals-only", "-f", str(into / "globals.sql")), "pg_dumpall")
    revision = _run(
        _pg(settings, "psql", "-X", "-At", "-d", settings.postgres_db, "-c", "SELECT version_num FROM alembic_version"),
        "reading the schema revision",
    )
    return revision.stdout.strip() or None


def _copy_temporal(settings: HearthSettings, into: Path) -> None:
    source = settings.data_dir("temporal") / "temporal.db"
    if not source.exists():
        raise BackupError(f"Temporal's database {source} is missing: is this stack's state dir complete?")
    into.mkdir()
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(into / "temporal.db") as dst:
        src.backup(dst)


async def _snapshot_openbao(settings: HearthSettings, into: Path) -> None:
    url = f"{settings.openbao_url}/v1/sys/storage/raft/snapshot"
    async with httpx.AsyncClient(timeout=300, verify=http_verify(settings)) as client:
        headers = {"X-Vault-Token": await _backup_token(client, settings)}
        try:
            async with client.stream("GET", url, headers=headers) as r:
                if r.status_code != 200:
                    body = (await r.aread())[:300]
                    raise BackupError(f"OpenBao refused the raft snapshot: {r.status_code} {body!r}")
                with (into / "raft.snap").open("wb") as f:
                    async for block in r.aiter_bytes():
                        f.write(block)
        finally:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(f"{settings.openbao_url}/v1/auth/token/revoke-self", headers=headers)


def _stateful_streams(names: list[str]) -> list[str]:
    return sorted(n for n in names if n.startswith("OBJ_") or n == DEADLETTER_STREAM)


async def _dump_streams(settings: HearthSettings, into: Path) -> dict[str, int]:
    """Every message of the stateful streams, in sequence order: subject, headers and body as stored."""
    from nats.js.errors import NotFoundError

    from shared.bus import Bus

    counts: dict[str, int] = {}
    bus = await Bus.connect(settings, name="hearth-backup")
    try:
        names = [info.config.name for info in await bus.js.streams_info() if info.config.name]
        for name in _stateful_streams(names):
            state = (await bus.js.stream_info(name)).state
            count = 0
            with (into / f"{name}.msgs").open("wb") as f:
                for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                    try:
                        msg = await bus.js.get_msg(name, seq)
                    except NotFoundError:  # deleted or purged (a replaced blob's chunks)
                        continue
                    meta = json.dumps({"subject": msg.subject, "headers": msg.headers or {}}).encode()
                    data = msg.data or b""
                    f.write(_RECORD.pack(len(meta), len(data)) + meta + data)
                    count += 1
            counts[name] = count
    finally:
        await bus.close()
    return counts


def _copy_tree(source: Path, into: Path) -> None:
    if source.exists():
        shutil.copytree(source, into, symlinks=False)
    else:
        into.mkdir()


def _copy_cold(settings: HearthSettings, into: Path) -> None:
    """The cold tier's copies (``shared.coldstore``), taken after the streams, so a file moved meanwhile
    is in one or the other. A copy restored (and removed) while this runs is skipped: its blob is in
    the bucket again. A manifest is removed before its data, and copied after it."""
    from shared.coldstore import ColdStore

    root = ColdStore.from_settings(settings, None).root
    into.mkdir()
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        target = into / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(path, target)


def create_backup(settings: HearthSettings, out: Path, passphrase: bytes, report: Reporter = _quiet) -> Manifest:
    """Write one encrypted archive of the running stack's state to ``out`` (0600, atomically)."""
    if Supervisor(settings).daemon_pid() is None:
        raise BackupError(f"no Hearth stack is running for {settings.home}: `hearth up` first (backups are taken live)")
    settings.home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=settings.home, prefix=".backup-") as work_dir:
        work = Path(work_dir)
        revision = _dump_postgres(settings, work / "postgres")
        report(f"PostgreSQL dumped (schema revision {revision})")
        _copy_temporal(settings, work / "temporal")
        report("Temporal database copied")
        (work / "openbao").mkdir()
        asyncio.run(_snapshot_openbao(settings, work / "openbao"))
        report("OpenBao raft snapshot taken")
        (work / "jetstream").mkdir()
        counts = asyncio.run(_dump_streams(settings, work / "jetstream"))
        report("JetStream: " + ", ".join(f"{name} {n} messages" for name, n in counts.items()))
        _copy_tree(settings.secrets_dir, work / "secrets")
        _copy_tree(settings.tls_dir, work / "tls")  # the CA clients trust; its key is in secrets/
        _copy_tree(settings.triton_user_model_repository, work / "triton-models")
        _copy_cold(settings, work / "cold")
        manifest = Manifest(
            format=FORMAT,
            created_at=datetime.now(UTC).isoformat(),
            home=str(settings.home),
            alembic_revision=revision,
            streams=counts,
        )
        for path in _files(work):
            manifest.members[path.relative_to(work).as_posix()] = {
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
        (work / "manifest.json").write_bytes(manifest.to_json())
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            sealed = EncryptingWriter(raw, passphrase)
            with tarfile.open(fileobj=sealed, mode="w|") as tar:  # type: ignore[call-overload]
                tar.add(work / "manifest.json", arcname="manifest.json")
                for name in manifest.members:
                    tar.add(work / name, arcname=name)
            sealed.close()
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(out)
    total = sum(m["bytes"] for m in manifest.members.values())
    elapsed = time.monotonic() - started
    report(f"archive {out} written: {len(manifest.members)} files, {total / 1e6:.1f} MB in {elapsed:.1f}s")
    return manifest


# ---- read and verify --------------------------------------------------------------------------


def extract(archive: Path, passphrase: bytes, into: Path) -> Manifest:
    """Decrypt and unpack ``archive`` into ``into``, checking every member against the manifest."""
    try:
        with archive.open("rb") as raw:
            reader = DecryptingReader(raw, passphrase)
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if not member.isfile():
                        raise BackupError(f"unexpected entry {member.name!r} in the archive")
                    tar.extract(member, into, filter="data")
            reader.read()  # to the final record: a truncated archive fails here even if the tar looked whole
    except ArchiveError as exc:
        raise BackupError(str(exc)) from None
    except tarfile.TarError as exc:
        raise BackupError(f"the archive's contents are not a valid tar stream: {exc}") from None
    manifest_path = into / "manifest.json"
    if not manifest_path.exists():
        raise BackupError("the archive has no manifest.json")
    manifest = Manifest(**json.loads(manifest_path.read_bytes()))
    if manifest.format != FORMAT:
        raise BackupError(f"archive format {manifest.format} is not the one this Hearth reads ({FORMAT})")
    present = {p.relative_to(into).as_posix() for p in _files(into)} - {"manifest.json"}
    if present != set(manifest.members):
        missing, extra = set(manifest.members) - present, present - set(manifest.members)
        raise BackupError(f"the archive does not match its manifest (missing {sorted(missing)}, extra {sorted(extra)})")
    for name, member in manifest.members.items():
        if _sha256(into / name) != member["sha256"]:
            raise BackupError(f"{name} does not match its checksum in the manifest")
    return manifest


def verify_backup(archive: Path, passphrase: bytes, scratch: Path | None = None) -> Manifest:
    """Decrypt and check every member without restoring anything."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".verify-") as work:
        return extract(archive, passphrase, Path(work))


# ---- restore ----------------------------------------------------------------------------------


def _require_empty(settings: HearthSettings) -> None:
    if Supervisor(settings).daemon_pid() is not None:
        raise BackupError(
            f"a Hearth stack is running for {settings.home}: restore goes into a stopped, empty state dir"
        )
    holding = [
        path
        for path in (
            settings.data_dir("postgres") / "PG_VERSION",
            settings.data_dir("temporal") / "temporal.db",
            settings.secret_path("openbao-init.json"),
        )
        if path.exists()
    ]
    bao = settings.data_dir("openbao")
    if bao.exists() and any(bao.iterdir()):
        holding.append(bao)
    if holding:
        raise BackupError(
            f"the state dir {settings.home} already holds a stack ({', '.join(map(str, holding))}): restore into an "
            "empty one (set HEARTH_HOME), never over live data"
        )


def _place_files(settings: HearthSettings, work: Path) -> None:
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.secrets_dir, 0o700)
    for path in _files(work / "secrets"):
        if path.name not in _HELD_BACK_SECRETS:
            bootstrap.write_secret(
                settings.secret_path(path.relative_to(work / "secrets").as_posix()), path.read_bytes()
            )
    if (work / "tls").exists():  # archives made before TLS have none: `hearth up` makes a new CA
        shutil.copytree(work / "tls", settings.tls_dir, dirs_exist_ok=True)
    temporal = settings.data_dir("temporal")
    temporal.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "temporal" / "temporal.db", temporal / "temporal.db")
    models = work / "triton-models"  # only files travel in the archive: absent when there were none
    if models.exists():
        shutil.copytree(models, settings.triton_user_model_repository, dirs_exist_ok=True)
    cold = work / "cold"  # archives made before the cold tier have none
    if cold.exists():
        from shared.coldstore import ColdStore

        shutil.copytree(cold, ColdStore.from_settings(settings, None).root, dirs_exist_ok=True)


async def _wait_active(client: httpx.AsyncClient, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while (await client.get(f"{url}/v1/sys/health")).status_code != 200:
        if time.monotonic() > deadline:
            raise BackupError(f"OpenBao at {url} did not become active within {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def _restore_openbao(settings: HearthSettings, work: Path) -> None:
    url = settings.openbao_url
    archived_init = (work / "secrets" / "openbao-init.json").read_bytes()
    async with httpx.AsyncClient(timeout=300, verify=http_verify(settings)) as client:
        init = await client.post(f"{url}/v1/sys/init", json={"recovery_shares": 1, "recovery_threshold": 1})
        if init.status_code != 200:
            raise BackupError(f"could not initialise the new OpenBao: {init.status_code} {init.text[:300]}")
        await _wait_active(client, url)
        throwaway = {"X-Vault-Token": init.json()["root_token"]}
        snapshot = (work / "openbao" / "raft.snap").read_bytes()
        restored = await client.post(f"{url}/v1/sys/storage/raft/snapshot-force", headers=throwaway, content=snapshot)
        if restored.status_code not in (200, 204):
            raise BackupError(f"OpenBao refused the snapshot: {restored.status_code} {restored.text[:300]}")
        await _wait_active(client, url)
        token = {"X-Vault-Token": json.loads(archived_init)["root_token"]}
        check = await client.get(f"{url}/v1/auth/token/lookup-self", headers=token)
        if check.status_code != 200:
            raise BackupError(f"after the snapshot, the archived root token is refused ({check.status_code})")
    bootstrap.write_secret(settings.secret_path("openbao-init.json"), archived_init)


def _restore_postgres(settings: HearthSettings, work: Path) -> None:
    globals_sql = _pg(settings, "psql", "-X", "-q", "-d", "postgres", "-f", str(work / "postgres" / "globals.sql"))
    result = subprocess.run(globals_sql, capture_output=True, text=True, check=False, cwd="/")
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line and "already exists" not in line]
    if result.returncode != 0 or errors:
        raise BackupError(f"restoring the database roles failed: {' '.join(errors)[-2000:] or result.stderr[-2000:]}")
    _run(
        _pg(
            settings,
            "pg_restore",
            "--create",
            "--exit-on-error",
            "-d",
            "postgres",
            str(work / "postgres" / "hearth.dump"),
        ),
        "pg_restore",
    )


async def _restore_streams(settings: HearthSettings, work: Path) -> dict[str, int]:
    from shared.bus import Bus

    await bootstrap.bootstrap_nats(settings)  # the streams and buckets, empty
    counts: dict[str, int] = {}
    bus = await Bus.connect(settings, name="hearth-restore")
    try:
        for path in sorted((work / "jetstream").glob("*.msgs")):
            stream = path.stem
            count = 0
            with path.open("rb") as f:
                for meta, data in _records(f):
                    headers = {k: v for k, v in meta["headers"].items() if not k.startswith("Nats-Expected")}
                    await bus.js.publish(meta["subject"], data, stream=stream, headers=headers or None)
                    count += 1
            counts[stream] = count
    finally:
        await bus.close()
    return counts


def _records(f: BinaryIO) -> Iterator[tuple[dict[str, Any], bytes]]:
    while header := f.read(_RECORD.size):
        meta_len, data_len = _RECORD.unpack(header)
        meta = json.loads(f.read(meta_len))
        yield meta, f.read(data_len)


def restore_backup(settings: HearthSettings, archive: Path, passphrase: bytes, report: Reporter = _quiet) -> Manifest:
    """Bring an archive back as a working stack in an empty state dir, then start it."""
    _require_empty(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.home, prefix=".restore-") as work_dir:
        work = Path(work_dir)
        manifest = extract(archive, passphrase, work)  # nothing is placed before the whole archive checks out
        report(f"archive of {manifest.created_at} verified: {len(manifest.members)} files")
        try:
            _place_files(settings, work)
            stack.up_infrastructure(settings, report)
            asyncio.run(_restore_openbao(settings, work))
            report("OpenBao restored from its snapshot")
            _restore_postgres(settings, work)
            report(f"PostgreSQL restored (schema revision {manifest.alembic_revision})")
            counts = asyncio.run(_restore_streams(settings, work))
            report("JetStream: " + ", ".join(f"{name} {n} messages" for name, n in counts.items()))
        except (BackupError, stack.LaunchError, OSError) as exc:
            raise BackupError(
                f"{exc}\nThe state dir {settings.home} is partly restored: `hearth down`, remove it, and run "
                "`hearth restore` again."
            ) from None
    stack.up(settings, report)
    return manifest


def passphrase_from(path: Path | None) -> bytes:
    """The archive passphrase: a file's first line, else ``HEARTH_BACKUP_PASSPHRASE``."""
    if path is not None:
        value = next(iter(path.read_text().splitlines()), "")
    else:
        value = os.environ.get("HEARTH_BACKUP_PASSPHRASE", "")
    if not value:
        raise BackupError("no passphrase: pass --passphrase-file FILE or set HEARTH_BACKUP_PASSPHRASE")
    return value.encode()


__all__ = ["BackupError", "Manifest", "create_backup", "extract", "passphrase_from", "restore_backup", "verify_backup"]
