"""The programs in examples/ run against the real stack, so they never rot."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import nats
import pytest

from shared.blobstore import BlobRef, BlobStore
from shared.natsauth import connect_options
from shared.settings import REPO_ROOT, HearthSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def run_example(env: dict[str, str], name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / name), *args],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_lob_publisher_claim_check_and_safe_retry(
    stack: HearthSettings, stack_environment: dict[str, str], tmp_path: Path
) -> None:
    document = tmp_path / "contract.txt"
    document.write_bytes("采购合同 PO-1042\n".encode() * 20000)  # ~460 KB: over the inline limit
    event_id = str(uuid.uuid4())
    args = (str(document), "--source-system", "erp", "--external-id", "PO-1042", "--event-id", event_id)
    first = run_example(stack_environment, "publish_document.py", *args)
    retry = run_example(stack_environment, "publish_document.py", *args)
    assert "duplicate=False" in first
    assert "duplicate=True" in retry
    seq = int(first.split(" seq ")[1].split()[0])

    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    try:
        js = nc.jetstream()
        stored = await js.get_msg("HEARTH_INGEST", seq)
        envelope = json.loads(stored.data)
        assert envelope["id"] == event_id
        assert envelope["type"] == "hearth.ingest.document.v1"
        assert envelope["subject"] == "PO-1042"
        ref = BlobRef.model_validate(envelope["data"]["blob"])
        blobs = await BlobStore.create(js, stack)
        assert await blobs.get(ref) == document.read_bytes()
        await blobs.delete(ref)
    finally:
        await nc.close()


def test_rest_client_reads_platform_health(stack_environment: dict[str, str]) -> None:
    out = run_example(stack_environment, "rest_health.py")
    assert out.startswith("platform: ok")
    assert "triton" in out


def test_capability_call_returns_typed_result(stack_environment: dict[str, str]) -> None:
    out = json.loads(run_example(stack_environment, "call_capability.py", "ocr.health"))
    assert out["service"] == "ocr"
    assert out["status"] == "ok"
