"""Integration fixtures: one real Hearth stack per test run, started by the same launcher users run.

The stack gets its own state dir (a pytest temp dir) and its own ports (``HEARTH_PORT_OFFSET``,
default 20000 for tests), so it runs beside a developer's stack. ``HEARTH_TEST_STACK=external``
runs the suite against an already running stack described by the ``HEARTH_*`` environment.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT, HearthSettings, load_settings
from shared.tls import create_ca

TEST_PORT_OFFSET = int(os.environ.get("HEARTH_TEST_PORT_OFFSET", "20000"))


def hearth_cli(
    env: dict[str, str], *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real ``hearth`` CLI (``python -m shared.cli``) against the test stack."""
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"hearth {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


TEST_MODELS = REPO_ROOT / "tests" / "data" / "triton_models"
TEST_WORKFLOWS = REPO_ROOT / "tests" / "data" / "workflows"
TEST_ALERTS = REPO_ROOT / "tests" / "data" / "alerts"
TEST_LIFECYCLE = REPO_ROOT / "tests" / "data" / "governance" / "retention.yaml"
TEST_IDLE_TTL_S = 30
WEBHOOK_PORT = 9599
"""Plus the port offset: where the test stack's telemetry POSTs alerts (the alert test listens)."""
OIDC_PORT = 9598
"""Plus the port offset: the OIDC test's identity provider (``tests/idp.py``), whose tokens the gateway accepts."""
OIDC_AUDIENCE = "hearth-test"


@functools.cache
def test_ca() -> tuple[Path, Path]:
    """One CA for every stack of the run, made on first use: certificate and key.

    Each stack issues its server certificate from it (HEARTH_TLS_CA_FILE + HEARTH_TLS_CA_KEY_FILE,
    the bring-your-own-CA path), and the tests' own clients trust it through ``SSL_CERT_FILE``
    (httpx, and ``ssl.create_default_context`` under nats-py and asyncpg, read it).
    """
    if os.environ.get("HEARTH_TEST_STACK") == "external":
        ca = load_settings().tls_ca_path
        os.environ["SSL_CERT_FILE"] = str(ca)
        return ca, Path(os.devnull)
    root = Path(tempfile.mkdtemp(prefix="hearth-test-ca-"))
    atexit.register(shutil.rmtree, root, True)
    cert, key = root / "ca.pem", root / "ca.key"
    create_ca(cert, key, common_name="Hearth test CA")
    os.environ["SSL_CERT_FILE"] = str(cert)
    return cert, key


test_ca()  # before any test module makes a client


def stack_env(home: Path, offset: int = TEST_PORT_OFFSET) -> dict[str, str]:
    ca_cert, ca_key = test_ca()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        {
            "HEARTH_HOME": str(home),
            "HEARTH_TLS_CA_FILE": str(ca_cert),
            "HEARTH_TLS_CA_KEY_FILE": str(ca_key),
            "HEARTH_PORT_OFFSET": str(offset),
            "HEARTH_ENVIRONMENT": "test",
            # A loaded 2-core box takes more than the default 120 s to bring the tier up.
            "HEARTH_STARTUP_TIMEOUT_S": "300",
            # The tests' tiny models beside the platform's, a budget they can exceed, a short idle TTL.
            "HEARTH_TRITON_EXTRA_MODEL_REPOSITORIES": str(TEST_MODELS),
            # The engine tests' workflows beside the shipped ones.
            "HEARTH_WORKFLOW_EXTRA_DEFINITIONS": str(TEST_WORKFLOWS),
            "HEARTH_GATEWAY_MODEL_MEMORY_BUDGET_MB": "140",
            "HEARTH_GATEWAY_MODEL_IDLE_TTL_S": str(TEST_IDLE_TTL_S),
            "HEARTH_GATEWAY_LIFECYCLE_SWEEP_S": "2",
            # The OCR tests drive these in Triton directly, unseen by the gateway's idle clock; the
            # document tests use the other two on every document (with the tiny budget, unpinned
            # they would evict each other on every request).
            "HEARTH_GATEWAY_PINNED_MODELS": "ocr_rec,chinese_ocr_v3,legal_doc_analyzer,use_multilingual_v3",
            # Telemetry on a test's time scale: a scrape and an alert evaluation every second, and
            # the tests' alert rules beside the shipped ones.
            "HEARTH_TELEMETRY_SCRAPE_INTERVAL_S": "1",
            "HEARTH_TELEMETRY_ALERT_INTERVAL_S": "1",
            "HEARTH_TELEMETRY_ALERT_EXTRA_RULES": str(TEST_ALERTS),
            # Tenants lifecycle-* have everything due now (tiering, retention, key rotation).
            "HEARTH_GOVERNANCE_RETENTION_EXTRA": str(TEST_LIFECYCLE),
            "HEARTH_TELEMETRY_WEBHOOKS": f"http://127.0.0.1:{offset + WEBHOOK_PORT}/alerts",
            # OIDC beside the API keys; the IdP runs in tests/integration/test_oidc.py (fetched lazily).
            "HEARTH_OIDC_ISSUER": f"http://127.0.0.1:{offset + OIDC_PORT}",
            "HEARTH_OIDC_AUDIENCE": OIDC_AUDIENCE,
            "HEARTH_OIDC_REFRESH_INTERVAL_S": "1",
        }
    )
    return env


@pytest.fixture(scope="session")
def stack_environment() -> Iterator[dict[str, str]]:
    """Environment (``HEARTH_*``) of the running test stack."""
    if os.environ.get("HEARTH_TEST_STACK") == "external":
        yield dict(os.environ)
        return
    # Not under pytest's basetemp: another pytest session on the box resets that tree to 0700,
    # which locks the PostgreSQL OS user out of a running stack's data (and prunes old basetemps).
    home = Path(tempfile.mkdtemp(prefix="hearth-test-stack-"))
    env = stack_env(home)
    result = hearth_cli(env, "up", timeout=400, check=False)
    if result.returncode != 0:
        hearth_cli(env, "down", check=False)
        pytest.fail(
            f"test stack did not start (state kept in {home}):\n{result.stdout}\n{result.stderr}", pytrace=False
        )
    try:
        yield env
    finally:
        hearth_cli(env, "down", timeout=180, check=False)
        if not os.environ.get("HEARTH_TEST_KEEP_STACK"):
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_environment: dict[str, str]) -> HearthSettings:
    """Settings of the running test stack (real NATS, Temporal, OpenBao, PostgreSQL, Triton, services)."""
    return stack_settings(stack_environment)


def stack_settings(env: dict[str, str]) -> HearthSettings:
    """The settings of the stack that ``env`` (from ``stack_env``) runs: its home, ports and CA."""
    overrides: dict[str, object] = {}
    for name in ("home", "tls_ca_file", "tls_ca_key_file"):
        value = env.get(f"HEARTH_{name.upper()}")
        if value:
            overrides[name] = Path(value)
    offset = env.get("HEARTH_PORT_OFFSET")
    if offset is not None:
        overrides["port_offset"] = int(offset)
    return load_settings(**overrides)
