"""The stack as a user runs it: `hearth up/down/status`, supervision, persistence, isolation."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import hvac
import nats
import psutil
import pytest

from shared.natsauth import connect_options
from shared.settings import SERVICES, HearthSettings
from tests.integration.conftest import hearth_cli, stack_env

pytestmark = pytest.mark.integration

INFRA = ("nats", "postgres", "postgres-tls", "openbao", "temporal", "temporal-tls", "triton")


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # Triton's gRPC listens on ::ffff:127.0.0.1
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def status_json(env: dict[str, str]) -> dict[str, object]:
    result = hearth_cli(env, "status", "--json", check=False)
    return json.loads(result.stdout)


def test_every_component_is_healthy_in_status_and_health_endpoint(
    stack: HearthSettings, stack_environment: dict[str, str]
) -> None:
    report = status_json(stack_environment)
    components = {c["name"]: c for c in report["components"]}  # type: ignore[union-attr]
    assert set(components) == {*INFRA, *SERVICES}
    for name, comp in components.items():
        assert comp["status"] == "ok", (name, comp)
        assert comp["state"] == "RUNNING", (name, comp)
        assert comp["pid"], (name, comp)
        assert comp["version"], (name, comp)
    assert report["healthy"] is True

    resp = httpx.get(f"{stack.gateway_url}/v1/health", timeout=15)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    by_name = {c["name"]: c for c in body["components"]}
    assert set(by_name) == {*INFRA, *SERVICES}
    assert by_name["postgres"]["extra"]["extensions"].keys() >= {"vector", "pg_trgm"}
    assert all(c["latency_ms"] is not None for c in body["components"])


def test_status_table_is_readable(stack_environment: dict[str, str]) -> None:
    result = hearth_cli(stack_environment, "status")
    for name in (*INFRA, *SERVICES):
        assert name in result.stdout


def test_unknown_route_is_a_problem_document(stack: HearthSettings) -> None:
    resp = httpx.get(f"{stack.gateway_url}/v1/does-not-exist", timeout=5)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == 404


def test_openapi_and_asyncapi_are_published(stack: HearthSettings) -> None:
    openapi = httpx.get(f"{stack.gateway_url}/schema/openapi.json", timeout=5).json()
    assert "/v1/health" in openapi["paths"]
    # The docs page works air-gapped: every script and style comes from the gateway itself.
    page = httpx.get(f"{stack.gateway_url}/schema", timeout=5).text
    assert "swagger-ui-bundle.js" in page
    assert not re.search(r"""(src|href)=['"]https?://""", page)
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert httpx.get(f"{stack.gateway_url}/schema/assets/{asset}", timeout=5).status_code == 200
    asyncapi = httpx.get(f"{stack.gateway_url}/schema/asyncapi.json", timeout=5).json()
    assert asyncapi["asyncapi"].startswith("3.")
    assert any("hearth.ingest.document.v1" in json.dumps(ch) for ch in asyncapi["channels"].values())


def test_a_killed_service_is_restarted_and_answers_again(
    stack: HearthSettings, stack_environment: dict[str, str]
) -> None:
    before = {c["name"]: c for c in status_json(stack_environment)["components"]}  # type: ignore[union-attr]
    old_pid = before["ocr"]["pid"]
    os.kill(int(old_pid), signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = {c["name"]: c for c in status_json(stack_environment)["components"]}  # type: ignore[union-attr]
        if now["ocr"]["pid"] not in (None, old_pid) and now["ocr"]["status"] == "ok":
            return
        time.sleep(0.5)
    pytest.fail(f"ocr was not restarted within 60s: {now['ocr']}")


def test_triton_admin_apis_need_the_gateway_key(stack: HearthSettings) -> None:
    url = f"{stack.triton_http_url}/v2/repository/index"
    refused = httpx.post(url, timeout=5)
    assert refused.status_code != 200
    assert "restricted" in refused.text.lower()
    key = stack.read_secret("triton-admin-key")
    allowed = httpx.post(url, headers={"hearth-admin": key}, timeout=5)
    assert allowed.status_code == 200


def test_nothing_listens_beyond_loopback(stack: HearthSettings, stack_environment: dict[str, str]) -> None:
    pids = {c["pid"] for c in status_json(stack_environment)["components"] if c["pid"]}  # type: ignore[union-attr]
    family = set()
    for pid in pids:
        proc = psutil.Process(int(pid))  # type: ignore[arg-type]
        for p in [proc, *proc.children(recursive=True)]:
            for conn in p.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    family.add((p.pid, conn.laddr.ip, conn.laddr.port))
    assert family, "no listening sockets found"
    exposed = [f for f in family if not _is_loopback(f[1])]
    assert not exposed, exposed


def test_second_up_reports_the_running_stack(stack_environment: dict[str, str]) -> None:
    result = hearth_cli(stack_environment, "up")
    assert "already running" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_port_in_use_is_named_with_its_fix(stack: HearthSettings, tmp_path: Path) -> None:
    # A second stack in another state dir on the same ports: refused before anything starts.
    env = stack_env(tmp_path / "second", offset=stack.nats_port - 4222)
    result = hearth_cli(env, "up", check=False)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "is in use" in out
    assert "HEARTH_PORT_OFFSET" in out
    assert "Traceback" not in out


# Offsets of the stacks that never start keep their ports below Linux's ephemeral range
# (32768-60999): a loopback connection's local port there made "port in use" win the race.
def test_missing_triton_environment_says_run_make_setup(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "h", offset=11000)
    env["HEARTH_TRITON_VENV"] = str(tmp_path / "no-such-venv")
    result = hearth_cli(env, "up", check=False)
    assert result.returncode == 1
    assert "make setup" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_corrupt_state_dir_is_refused_with_a_fix(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "data" / "openbao" / "raft").mkdir(parents=True)
    result = hearth_cli(stack_env(home, offset=12000), "up", check=False)
    assert result.returncode == 1
    assert "unseal key" in result.stderr
    assert "Restore" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
async def test_down_then_up_keeps_messages_rows_and_keys(
    stack: HearthSettings, stack_environment: dict[str, str]
) -> None:
    if os.environ.get("HEARTH_TEST_STACK") == "external":
        pytest.skip("would restart an external stack")
    tag = uuid.uuid4().hex[:12]
    stream, subject = f"T_{tag}", f"test.{tag}.kept"
    root_token = json.loads(stack.secret_path("openbao-init.json").read_text())["root_token"]

    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"test.{tag}.>"])
    ack = await js.publish(subject, b"kept across restarts", headers={"Nats-Msg-Id": tag})
    await nc.close()

    dsn = stack.postgres_dsn(driver="postgresql")
    conn = await asyncpg.connect(dsn)
    table = f"t_{tag}"  # a uuid-derived identifier, not user input
    await conn.execute(f"CREATE TABLE {table} (v text)")
    await conn.execute(f"INSERT INTO {table} VALUES ('kept')")  # noqa: S608
    await conn.close()

    vault = hvac.Client(url=stack.openbao_url, token=root_token, verify=str(stack.tls_ca_path))
    vault.secrets.transit.create_key(name=f"k-{tag}")
    ciphertext = vault.secrets.transit.encrypt_data(name=f"k-{tag}", plaintext="a2VwdA==")["data"]["ciphertext"]

    hearth_cli(stack_environment, "down", timeout=180)
    assert status_json(stack_environment)["healthy"] is False
    hearth_cli(stack_environment, "up", timeout=300)

    nc = await nats.connect(stack.nats_url, **connect_options(stack))
    msg = await nc.jetstream().get_msg(stream, ack.seq)
    assert msg.data == b"kept across restarts"
    await nc.jetstream().delete_stream(stream)
    await nc.close()

    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval(f"SELECT v FROM {table}") == "kept"  # noqa: S608
    await conn.execute(f"DROP TABLE {table}")
    await conn.close()

    vault = hvac.Client(url=stack.openbao_url, token=root_token, verify=str(stack.tls_ca_path))
    plaintext = vault.secrets.transit.decrypt_data(name=f"k-{tag}", ciphertext=ciphertext)["data"]["plaintext"]
    assert plaintext == "a2VwdA=="


def test_logs_command_shows_a_component_and_refuses_unknown_names(stack_environment: dict[str, str]) -> None:
    shown = hearth_cli(stack_environment, "logs", "gateway", "-n", "20")
    assert "service started" in shown.stdout
    refused = hearth_cli(stack_environment, "logs", "nope", check=False)
    assert refused.returncode == 1
    assert "choose one of" in refused.stderr


def test_no_secret_reaches_a_log_file(stack: HearthSettings) -> None:
    secrets = [
        stack.read_secret("postgres-password"),
        stack.read_secret("triton-admin-key"),
        json.loads(stack.read_secret("openbao-init.json"))["root_token"],
        json.loads(stack.read_secret("approle-gateway.json"))["secret_id"],
    ]
    logs = list(stack.log_dir.glob("*.log*"))
    assert logs
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret is in {path}"
    for path in [*stack.secrets_dir.iterdir(), stack.run_dir / "supervisord.conf"]:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def _wait_restarted(
    env: dict[str, str], name: str, old_pid: object, timeout: float = 90
) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = {c["name"]: c for c in status_json(env)["components"]}  # type: ignore[union-attr]
        if now[name]["pid"] not in (None, old_pid) and now[name]["status"] == "ok":
            return now
        time.sleep(0.5)
    pytest.fail(f"{name} did not come back healthy within {timeout:.0f}s: {now[name]}")


@pytest.mark.slow
def test_crashed_openbao_comes_back_unsealed_without_a_human(stack_environment: dict[str, str]) -> None:
    before = {c["name"]: c for c in status_json(stack_environment)["components"]}  # type: ignore[union-attr]
    os.kill(int(before["openbao"]["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    _wait_restarted(stack_environment, "openbao", before["openbao"]["pid"])


@pytest.mark.slow
def test_services_reconnect_after_nats_restarts(stack_environment: dict[str, str]) -> None:
    before = {c["name"]: c for c in status_json(stack_environment)["components"]}  # type: ignore[union-attr]
    os.kill(int(before["nats"]["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    _wait_restarted(stack_environment, "nats", before["nats"]["pid"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = status_json(stack_environment)
        if report["healthy"]:
            return
        time.sleep(0.5)
    pytest.fail(f"not every component recovered after a NATS restart: {report}")
