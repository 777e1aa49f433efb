"""Policy checks of docker-compose.yml, the Dockerfile and .dockerignore.

infra/compose/validate.sh checks that Compose can load the file; these tests check what Compose
accepts but Hearth does not: floating image tags, ports beyond the gateway's and the Temporal
UI's, root users, missing healthchecks, secrets in the file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import REPO_ROOT, SERVICES, service_module

pytestmark = pytest.mark.unit

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PUBLISHED = {"gateway": "127.0.0.1:8080:8080", "temporal-ui": "127.0.0.1:8233:8080"}
ROOT_JOBS = {"volumes-init"}  # chown of fresh volumes: CAP_CHOWN only, no network
WRITABLE_ROOT_FS: set[str] = set()  # services whose image must write to its own file system
SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves the file's anchors and `<<` merge keys, as Compose does.
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def image_tag(image: str) -> str | None:
    """The tag of ``repo[:tag][@digest]``, or None when there is none."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def port_bindings(service: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(host ip, published, target) of every port of a service, short or long syntax."""
    result: list[tuple[str | None, str, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            result.append((port.get("host_ip"), str(port.get("published", "")), str(port["target"])))
            continue
        parts = str(port).rsplit(":", 2)
        if len(parts) == 3:
            result.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            result.append((None, parts[0], parts[1]))
        else:
            result.append((None, "", parts[0]))
    return result


# ---- images ---------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a build-only service gets an unpinned name)"
        assert "$" not in image, f"{name}: image {image!r} depends on a variable"
        tag = image_tag(image)
        assert tag is not None, f"{name}: image {image!r} has no tag (means :latest)"
        assert tag != "latest", f"{name}: image {image!r} uses :latest"
        assert re.search(r"\d+\.\d+", tag), f"{name}: tag {tag!r} names no version (floating)"


def test_project_image_is_tagged_with_the_project_version(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = {name: s for name, s in services.items() if "build" in s}
    assert set(built) >= set(SERVICES)
    for name, service in built.items():
        assert service["image"] == f"hearth:{version}", name


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "Dockerfile: ARG PYTHON_IMAGE=<image> missing"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base.group(1)), base.group(1)
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2, "Dockerfile: not multi-stage"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users, "Dockerfile: no USER"
    user = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), users[-1]).split(":")[0]
    assert user not in {"root", "0"}, users[-1]
    assert "$" not in user, users[-1]
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
    installs = [line for line in re.findall(r"^RUN (.*)$", text, re.MULTILINE) if "pip install" in line]
    assert installs, "Dockerfile: no pip install"
    assert not any("[" in line for line in installs), f"extras (dev deps?) installed: {installs}"


def test_dockerignore_keeps_state_secrets_and_vcs_out() -> None:
    entries = {line.strip().rstrip("/") for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    for required in (".git", "var", ".venv", ".venv-*", ".env", "test-output"):
        assert required in entries, f".dockerignore lacks {required}"


# ---- ports and networks -------------------------------------------------------------------------


def test_only_gateway_and_temporal_ui_publish_ports_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    publishing = {name for name, s in services.items() if s.get("ports")}
    assert publishing == set(PUBLISHED)
    for name, expected in PUBLISHED.items():
        host_ip, published, target = expected.split(":")
        assert port_bindings(services[name]) == [(host_ip, published, target)], name
    for name, service in services.items():
        assert service.get("network_mode") in (None, "none"), f"{name}: network_mode {service['network_mode']}"


def test_backend_network_has_no_route_out(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    assert compose["networks"]["backend"].get("internal") is True
    for name, service in services.items():
        if service.get("network_mode") == "none":
            continue
        networks = service.get("networks", [])
        names = set(networks) if isinstance(networks, (list, dict)) else set()
        extra = names - {"backend"}
        assert not extra or name in PUBLISHED, f"{name} joins {extra} without publishing a port"


# ---- services ---------------------------------------------------------------------------------------


def test_every_hearth_service_has_a_compose_service(services: dict[str, dict[str, Any]]) -> None:
    folders = {
        p.name
        for p in (REPO_ROOT / "services").iterdir()
        if p.is_dir() and ((p / "__init__.py").exists() or (p / "__main__.py").exists())
    }
    for name in sorted(set(SERVICES) | folders):
        assert name in services, f"services/{name} has no compose service"
        service = services[name]
        assert service.get("command") == ["python", "-m", service_module(name)], name
        assert service["environment"]["HEARTH_SERVICE"] == name


def test_project_services_reach_components_by_host_name(services: dict[str, dict[str, Any]]) -> None:
    hosts = {
        "HEARTH_NATS_HOST": "nats",
        "HEARTH_TEMPORAL_HOST": "temporal",
        "HEARTH_OPENBAO_HOST": "openbao",
        "HEARTH_POSTGRES_HOST": "postgres",
        "HEARTH_TRITON_HOST": "${HEARTH_COMPOSE_TRITON:-triton}",
    }
    for name in SERVICES:
        env = services[name]["environment"]
        for var, value in hosts.items():
            assert env.get(var) == value, f"{name}: {var}"
        host = value_default(env["HEARTH_TRITON_HOST"])
        assert host in services, f"{name}: HEARTH_TRITON_HOST default {host!r} is no service"


def value_default(value: str) -> str:
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match.group(1) if match else value


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if is_one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check, f"{name}: no healthcheck"
        assert check.get("test"), f"{name}: healthcheck without test"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        if name == "gateway":
            assert any("/v1/health/live" in part for part in test)
        else:
            assert test == ["CMD", "python", "-m", "shared.healthcheck", name]


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    started_is_enough = {("openbao-init", "openbao")}  # it initialises the server that is unhealthy until then
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert not services[dep].get("profiles"), f"{name} depends on {dep}, which only runs in a profile"
            wanted = "service_completed_successfully" if is_one_shot(services[dep]) else "service_healthy"
            if (name, dep) in started_is_enough:
                wanted = "service_started"
            assert spec.get("condition") == wanted, f"{name} -> {dep}: {spec.get('condition')}"


def test_least_privilege(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert "ALL" in service.get("cap_drop", []), name
        assert not service.get("privileged"), name
        user = str(service.get("user", ""))
        if name in ROOT_JOBS:
            assert is_one_shot(service), name
            assert service.get("network_mode") == "none", name
            assert set(service.get("cap_add", [])) <= {"CHOWN"}, name
            continue
        assert user, f"{name} runs as the image's default user"
        assert user.split(":", maxsplit=1)[0] not in {"0", "root"}, f"{name} runs as {user}"
        assert not service.get("cap_add"), f"{name} adds capabilities"
        assert service.get("read_only") is (name not in WRITABLE_ROOT_FS), f"{name}: read_only"


def test_data_lives_in_named_volumes_and_bind_mounts_are_read_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in services.items():
        for mount in service.get("volumes", []):
            assert isinstance(mount, str), f"{name}: use the short volume syntax"
            source, _, rest = mount.partition(":")
            if source.startswith((".", "/")):
                assert rest.endswith(":ro"), f"{name}: bind mount {mount} is writable"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_no_secret_values_in_the_file(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for var, value in env.items():
            if SECRET_WORDS.search(var):
                assert var.endswith("_FILE"), f"{name}: {var} holds a secret value"
                assert str(value).startswith("/run/secrets/"), f"{name}: {var}"
    for secret, spec in compose.get("secrets", {}).items():
        assert set(spec) == {"file"}, f"secret {secret}: only file-based secrets"
        assert spec["file"].startswith("${HEARTH_COMPOSE_SECRETS:-./var/"), f"secret {secret} outside var/"


# ---- component configuration ------------------------------------------------------------------------


def test_nats_runs_jetstream_with_fsync_always(services: dict[str, dict[str, Any]]) -> None:
    conf = (REPO_ROOT / "infra/compose/nats/nats.conf").read_text()
    active = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    assert re.search(r"^\s*jetstream\s*\{", active, re.MULTILINE)
    assert re.search(r"^\s*sync_interval\s*:\s*always\s*$", active, re.MULTILINE)
    nats = services["nats"]
    assert image_tag(nats["image"]).endswith("-alpine")  # type: ignore[union-attr]
    assert "./infra/compose/nats/nats.conf:/etc/nats/hearth.conf:ro" in nats["volumes"]
    assert nats["command"][-1] == "/etc/nats/hearth.conf"
    assert "/healthz" in " ".join(nats["healthcheck"]["test"])


def test_openbao_uses_raft_and_static_auto_unseal(services: dict[str, dict[str, Any]]) -> None:
    hcl = (REPO_ROOT / "infra/compose/openbao/openbao.hcl").read_text()
    assert 'storage "raft"' in hcl
    assert 'seal "static"' in hcl
    assert 'current_key    = "file:///run/secrets/openbao-seal-key"' in hcl
    assert "openbao-seal-key" in services["openbao"]["secrets"]
    init = (REPO_ROOT / "infra/compose/openbao/init.sh").read_text()
    assert "-recovery-shares=1 -recovery-threshold=1" in init
    # Only the init job mounts its volume (recovery key and root token).
    holders = [n for n, s in services.items() if any(v.startswith("openbao-init:") for v in s.get("volumes", []))]
    assert sorted(holders) == ["openbao-init", "volumes-init"]


def test_triton_variants(services: dict[str, dict[str, Any]]) -> None:
    cpu, gpu = services["triton"], services["triton-gpu"]
    assert "profiles" not in cpu
    assert "deploy" not in cpu
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["capabilities"] == ["gpu"]
    for variant in (cpu, gpu):
        command = " ".join(variant["command"])
        assert "--model-repository=/opt/hearth/triton/model_repository" in command
        assert "--model-control-mode=explicit" in command
        restricted = "model-repository,model-config,shared-memory,statistics,trace:hearth-admin="
        assert f'--http-restricted-api="{restricted}' in command
        assert f'--grpc-restricted-protocol="{restricted}' in command
        assert "./infra/triton:/opt/hearth/triton:ro" in variant["volumes"]
        assert "v2/health/ready" in " ".join(variant["healthcheck"]["test"])


def test_compose_files_referenced_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./infra/compose/"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source} missing"


def test_validate_script_is_executable() -> None:
    script = Path(REPO_ROOT / "infra/compose/validate.sh")
    assert script.stat().st_mode & 0o111
