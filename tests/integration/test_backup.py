"""``hearth backup`` / ``hearth restore``: a document survives the round trip into a new, empty
state dir, with its text, its run in Temporal and its encrypted original, on a second real stack."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.blobstore import BlobRef, BlobStore
from shared.bus import Bus
from shared.launcher.components import postgres_socket_dir
from shared.settings import HearthSettings
from tests.data.generate import default_samples
from tests.integration.conftest import TEST_PORT_OFFSET, hearth_cli, stack_env, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

# The restored stack runs beside the test stack: ports that never meet the test stack's.
RESTORE_OFFSET = TEST_PORT_OFFSET - 7000 if TEST_PORT_OFFSET >= 8000 else TEST_PORT_OFFSET + 2500
PASSPHRASE = "a passphrase long enough for scrypt"


def _flat(text: str) -> str:
    """The CLI's message with rich's line wrapping undone."""
    return " ".join(text.split())


def _headers(settings: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.read_secret('admin-api-key')}"}


def _processed(settings: HearthSettings, doc_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = httpx.get(f"{settings.gateway_url}/v1/documents/{doc_id}", headers=_headers(settings), timeout=30)
        body: dict[str, Any] = doc.json()
        if body.get("status") in ("processed", "failed") or time.monotonic() > deadline:
            assert body.get("status") == "processed", body
            return body
        time.sleep(1)


async def _original(settings: HearthSettings, doc_id: str) -> bytes:
    conn = await asyncpg.connect(
        host=str(postgres_socket_dir(settings)),
        port=settings.postgres_server_port,
        user="postgres",
        database=settings.postgres_db,
    )
    try:
        ref = await conn.fetchval("SELECT blob::text FROM raw_docs WHERE id = $1", doc_id)
    finally:
        await conn.close()
    bus = await Bus.connect(settings, name="test-backup")
    try:
        store = await BlobStore.create(bus.js, settings, service="gateway")
        return await store.get(BlobRef.model_validate_json(ref))
    finally:
        await bus.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hearth-test-backup-"))
    (path / "passphrase").write_text(PASSPHRASE + "\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def document(stack: HearthSettings) -> tuple[str, bytes, dict[str, Any]]:
    sample = next(s for s in default_samples() if s.condition == "clean" and s.format == "png")
    resp = httpx.post(
        f"{stack.gateway_url}/v1/documents",
        headers=_headers(stack),
        files={"file": ("contract.png", sample.data, "image/png")},
        data={"source_system": "backup-test"},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    doc_id = resp.json()["id"]
    return doc_id, sample.data, _processed(stack, doc_id)


@pytest.fixture(scope="module")
def archive(stack_environment: dict[str, str], document: tuple[str, bytes, dict[str, Any]], workdir: Path) -> Path:
    out = workdir / "stack.hbk"
    result = hearth_cli(
        stack_environment, "backup", "create", "--out", str(out), "--passphrase-file", str(workdir / "passphrase")
    )
    assert "backup written" in result.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    return out


def test_the_archive_verifies_and_holds_no_plaintext(
    stack_environment: dict[str, str], archive: Path, workdir: Path, document: tuple[str, bytes, dict[str, Any]]
) -> None:
    result = hearth_cli(
        stack_environment, "backup", "verify", str(archive), "--passphrase-file", str(workdir / "passphrase")
    )
    assert result.stdout.startswith("ok ")
    data = archive.read_bytes()
    _, _, processed = document
    assert processed["text"].split()[0].encode() not in data
    assert b"root_token" not in data


def test_a_wrong_passphrase_and_an_altered_archive_are_refused(
    stack_environment: dict[str, str], archive: Path, workdir: Path
) -> None:
    wrong = workdir / "wrong"
    wrong.write_text("not the passphrase it was made with\n")
    refused = hearth_cli(
        stack_environment, "backup", "verify", str(archive), "--passphrase-file", str(wrong), check=False
    )
    assert refused.returncode == 1
    assert "wrong passphrase" in _flat(refused.stderr)
    altered = workdir / "altered.hbk"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    altered.write_bytes(bytes(data))
    broken = hearth_cli(
        stack_environment,
        "backup",
        "verify",
        str(altered),
        "--passphrase-file",
        str(workdir / "passphrase"),
        check=False,
    )
    assert broken.returncode == 1
    assert "does not authenticate" in _flat(broken.stderr)


def test_restore_refuses_a_state_dir_that_holds_a_stack(
    stack_environment: dict[str, str], archive: Path, workdir: Path
) -> None:
    refused = hearth_cli(
        stack_environment, "restore", str(archive), "--passphrase-file", str(workdir / "passphrase"), check=False
    )
    assert refused.returncode == 1
    assert "restore goes into a stopped, empty state dir" in _flat(refused.stderr)


def test_restore_brings_back_a_working_stack(
    stack: HearthSettings, archive: Path, workdir: Path, document: tuple[str, bytes, dict[str, Any]]
) -> None:
    doc_id, original, processed = document
    home = workdir / "restored"
    env = stack_env(home, RESTORE_OFFSET)
    try:
        result = hearth_cli(
            env, "restore", str(archive), "--passphrase-file", str(workdir / "passphrase"), timeout=1200
        )
        assert "Hearth is up" in result.stdout, result.stdout
        restored = stack_settings(env)
        again = httpx.get(f"{restored.gateway_url}/v1/documents/{doc_id}", headers=_headers(restored), timeout=30)
        assert again.status_code == 200, again.text
        assert again.json() == processed  # text, pages, entities, class, provenance: all of it
        runs = httpx.get(f"{restored.gateway_url}/v1/runs", headers=_headers(restored), timeout=30).json()
        assert any(run.get("document_id") == doc_id and run["status"] == "completed" for run in runs)
        blob = asyncio.run(_original(restored, doc_id))
        assert hashlib.sha256(blob).hexdigest() == hashlib.sha256(original).hexdigest()
        # The restored stack works, not only remembers: a new document is processed on it.
        fresh = httpx.post(
            f"{restored.gateway_url}/v1/documents",
            headers=_headers(restored),
            json={"text": "合同编号 HT-2030-0001 甲方 北京某某科技有限公司"},
            timeout=60,
        )
        assert fresh.status_code == 202, fresh.text
        _processed(restored, fresh.json()["id"])
    finally:
        hearth_cli(env, "down", timeout=180, check=False)
