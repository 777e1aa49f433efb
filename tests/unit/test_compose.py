"""Policy checks of docker-compose.yml, the Dockerfile, .dockerignore and the observability configs.

infra/compose/validate.sh checks that Compose can load the file and that the Prometheus, Collector
and Grafana files parse (PromQL included); these tests check what those tools accept but Hearth
does not: floating image tags, ports beyond the listed ones or off loopback, root users, missing
healthchecks, secrets in the file, a Hearth service Prometheus does not scrape, a dashboard
querying a metric nobody exposes.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.metrics import HEARTH_METRICS
from shared.settings import REPO_ROOT, SERVICES, HearthSettings, service_module

pytestmark = pytest.mark.unit

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PUBLISHED = {
    "gateway": "127.0.0.1:8080:8080",
    "temporal-ui": "127.0.0.1:8233:8080",
    "grafana": "127.0.0.1:3000:3000",
    "jaeger": "127.0.0.1:16686:16686",
    "prometheus": "127.0.0.1:9090:9090",
}
# Long-running services without a healthcheck, and why; nothing may wait for their health.
NO_HEALTHCHECK = {"otel-collector": "FROM scratch: no shell nor HTTP client; Prometheus scrapes it (up)"}
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


def test_only_listed_ports_are_published_and_only_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    publishing = {name for name, s in services.items() if s.get("ports")}
    assert publishing == set(PUBLISHED)
    for name, expected in PUBLISHED.items():
        host_ip, published, target = expected.split(":")
        assert port_bindings(services[name]) == [(host_ip, published, target)], name
    for name, service in services.items():
        for host_ip, published, target in port_bindings(service):
            assert host_ip == "127.0.0.1", f"{name}: port {published}:{target} published beyond loopback"
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
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in service, f"{name}: has a healthcheck now, drop it from NO_HEALTHCHECK"
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
            assert dep not in NO_HEALTHCHECK, f"{name} waits for {dep}, which has no healthcheck"
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
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source} missing"


def test_validate_script_is_executable() -> None:
    script = Path(REPO_ROOT / "infra/compose/validate.sh")
    assert script.stat().st_mode & 0o111


# ---- observability: Prometheus, OpenTelemetry Collector, Grafana ---------------------------------

PROMETHEUS_FILE = REPO_ROOT / "infra/prometheus/prometheus.yml"
RULES_DIR = REPO_ROOT / "infra/prometheus/rules"
COLLECTOR_FILE = REPO_ROOT / "infra/otel/collector.yaml"
GRAFANA_DIR = REPO_ROOT / "infra/grafana"
METRICS_TOKEN = "/run/secrets/metrics-token"

# Keys Prometheus accepts where this config uses them (it refuses unknown keys at load; promtool is
# not available here, so a typo must fail this test instead).
PROMETHEUS_KEYS = {
    section: set(keys.split())
    for section, keys in {
        "": "global rule_files scrape_configs scrape_config_files alerting remote_write remote_read storage tracing"
        " otlp runtime",
        "global": "scrape_interval scrape_timeout evaluation_interval external_labels query_log_file scrape_protocols"
        " rule_query_offset body_size_limit sample_limit label_limit target_limit metric_name_validation_scheme",
        "scrape_config": "job_name scrape_interval scrape_timeout scrape_protocols metrics_path scheme params"
        " honor_labels honor_timestamps track_timestamps_staleness authorization basic_auth oauth2 tls_config"
        " proxy_url follow_redirects enable_http2 static_configs dns_sd_configs file_sd_configs relabel_configs"
        " metric_relabel_configs sample_limit label_limit target_limit body_size_limit",
        "authorization": "type credentials credentials_file",
        "static_config": "targets labels",
        "dns_sd_config": "names type port refresh_interval",
        "relabel_config": "source_labels separator regex modulus target_label replacement action",
        "rule_group": "name interval limit query_offset labels rules",
        "recording_rule": "record expr labels",
    }.items()
}
# Components of the Collector's core distribution (otel/opentelemetry-collector) this config may use.
COLLECTOR_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"otlp_grpc", "otlp_http", "prometheus", "debug"},
    "extensions": {"zpages"},
}
# Non-Hearth metrics a dashboard may use: Triton (nv_*), prometheus_client's process_* of every
# process, prometheus-nats-exporter (-varz: gnatsd_varz_*, -jsz: jetstream_*), and `up`.
FOREIGN_METRIC_PREFIXES = ("nv_", "process_", "gnatsd_", "jetstream_")
FOREIGN_METRICS = {"up"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def assert_keys(section: str, data: dict[str, Any], where: str) -> None:
    unknown = set(data) - PROMETHEUS_KEYS[section]
    assert not unknown, f"{where}: keys Prometheus does not know in {section or 'the top level'}: {sorted(unknown)}"


def known_metric(name: str) -> bool:
    """A series the stack exposes: a hearth_* name of shared.metrics (histograms with their
    _bucket/_sum/_count), or one of the components' own."""
    hearth = {f"{m}{suffix}" for m in HEARTH_METRICS for suffix in ("", "_bucket", "_sum", "_count")}
    return name in hearth or name in FOREIGN_METRICS or name.startswith(FOREIGN_METRIC_PREFIXES)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed).

    A scanner, not a parser (validate.sh parses every expression): strings, matchers, ranges,
    grouping clauses, variables and numbers are blanked; what remains that is not a function
    call or a keyword is a metric name.
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if re.match(r"\s*\(", text[match.end() :]) or match.group(0).lower() in PROMQL_KEYWORDS:
            continue
        names.add(match.group(0))
    return names


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_FILE)


@pytest.fixture(scope="module")
def scrape_jobs(prometheus: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert len(jobs) == len(prometheus["scrape_configs"]), "duplicate job_name"
    return jobs


def static_targets(job: dict[str, Any]) -> list[str]:
    return [target for group in job.get("static_configs", []) for target in group["targets"]]


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return load_yaml(COLLECTOR_FILE)


@pytest.fixture(scope="module")
def datasources() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for path in sorted((GRAFANA_DIR / "provisioning/datasources").glob("*.yaml")):
        data = load_yaml(path)
        assert data.get("apiVersion") == 1, path
        result.extend(data["datasources"])
    assert result, "no provisioned data source"
    return result


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    boards = {path.name: json.loads(path.read_text()) for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))}
    assert "hearth-overview.json" in boards
    return boards


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every Prometheus query of a dashboard, variables' included."""
    found = [
        (str(panel.get("title")), target["expr"])
        for panel in board.get("panels", [])
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
        if match:
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        data = load_yaml(path)
        assert set(data) == {"groups"}, path
        groups.extend(data["groups"])
    return groups


def test_prometheus_config_uses_only_known_keys(prometheus: dict[str, Any]) -> None:
    assert_keys("", prometheus, "prometheus.yml")
    assert_keys("global", prometheus["global"], "global")
    assert prometheus["global"]["scrape_interval"] == "15s"
    for job in prometheus["scrape_configs"]:
        where = f"job {job.get('job_name')}"
        assert_keys("scrape_config", job, where)
        assert job.get("static_configs") or job.get("dns_sd_configs"), f"{where}: no targets"
        for group in job.get("static_configs", []):
            assert_keys("static_config", group, where)
        for sd in job.get("dns_sd_configs", []):
            assert_keys("dns_sd_config", sd, where)
            assert sd.get("type") != "A" or "port" in sd, f"{where}: an A-record lookup needs a port"
        for relabel in job.get("relabel_configs", []) + job.get("metric_relabel_configs", []):
            assert_keys("relabel_config", relabel, where)
        if "authorization" in job:
            assert_keys("authorization", job["authorization"], where)
            assert "credentials" not in job["authorization"], f"{where}: token inline, use credentials_file"


def test_every_hearth_service_has_a_scrape_target(
    services: dict[str, dict[str, Any]], scrape_jobs: dict[str, dict[str, Any]]
) -> None:
    prometheus_secrets = {s if isinstance(s, str) else s["source"] for s in services["prometheus"]["secrets"]}
    assert "metrics-token" in prometheus_secrets
    default_base = HearthSettings.model_fields["metrics_port"].default
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        base = int(env["HEARTH_METRICS_PORT"])
        assert base == default_base, f"{name}: compose metrics ports differ from the native stack's"
        assert env.get("HEARTH_PORT_OFFSET") == "0", name
        port = base + SERVICES.index(name)
        jobs = [job for job in scrape_jobs.values() if f"{name}:{port}" in static_targets(job)]
        assert jobs, f"no Prometheus job scrapes {name}:{port}"
        for job in jobs:
            assert job["job_name"] == name, f"{name} is scraped as job {job['job_name']}"
            assert job.get("metrics_path", "/metrics") == "/metrics", name
            assert job.get("scheme", "http") == "http", name
            assert job.get("authorization") == {"type": "Bearer", "credentials_file": METRICS_TOKEN}, name
        # Served on the backend network only, with the token the endpoint checks.
        assert str(port) in [str(p).split("/")[0] for p in service.get("expose", [])], f"{name}: expose {port}"
        assert all(target != str(port) for _, _, target in port_bindings(service)), f"{name}: /metrics published"
        mounted = {s["target"] for s in service["secrets"] if isinstance(s, dict)}
        assert "/var/lib/hearth/secrets/metrics-token" in mounted, f"{name}: no metrics-token"


def test_scrape_targets_are_compose_services_on_their_ports(
    services: dict[str, dict[str, Any]], scrape_jobs: dict[str, dict[str, Any]]
) -> None:
    for job in scrape_jobs.values():
        for target in static_targets(job):
            host, _, port = target.rpartition(":")
            if host == "127.0.0.1":  # Prometheus itself
                assert job["job_name"] == "prometheus", target
                continue
            assert host in services, f"job {job['job_name']}: {host} is no compose service"
            service = services[host]
            declared = " ".join(
                [str(p) for p in service.get("expose", [])]
                + [str(v) for v in service.get("environment", {}).values()]
                + [str(c) for c in service.get("command", [])]
            )
            assert re.search(rf"(?<!\d){port}(?!\d)", declared), (
                f"job {job['job_name']}: {host} declares no port {port}"
            )
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                assert name in services, f"job {job['job_name']}: {name} is no compose service"
    triton = scrape_jobs["triton"]["dns_sd_configs"][0]
    assert set(triton["names"]) == {"triton", "triton-gpu"}
    assert triton["port"] == HearthSettings.model_fields["triton_metrics_port"].default
    assert "temporal:7244" in static_targets(scrape_jobs["temporal"])
    assert services["temporal"]["environment"]["PROMETHEUS_ENDPOINT"].endswith(":7244")


def test_nats_is_scraped_through_the_official_exporter(
    services: dict[str, dict[str, Any]], scrape_jobs: dict[str, dict[str, Any]]
) -> None:
    exporter = services["nats-exporter"]
    assert exporter["image"].startswith("natsio/prometheus-nats-exporter:")
    command = exporter["command"]
    monitor = HearthSettings.model_fields["nats_monitor_port"].default
    assert command[-1] == f"http://nats:{monitor}"
    assert "-varz" in command
    assert "-jsz=all" in command  # per-consumer pending and redeliveries
    port = next(arg.split("=", 1)[1] for arg in command if arg.startswith("-port="))
    assert static_targets(scrape_jobs["nats"]) == [f"nats-exporter:{port}"]
    conf = (REPO_ROOT / "infra/compose/nats/nats.conf").read_text()
    assert re.search(rf"^http:\s*0\.0\.0\.0:{monitor}\s*$", conf, re.MULTILINE)


def test_recording_rules_are_well_formed_and_mounted(
    prometheus: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "./infra/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    records = []
    for group in rule_groups():
        assert_keys("rule_group", group, f"rule group {group.get('name')}")
        for rule in group["rules"]:
            assert_keys("recording_rule", rule, f"rule {rule.get('record')}")
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
            unknown = {m for m in metric_names(rule["expr"]) if not known_metric(m)}
            assert not unknown, f"rule {rule['record']}: unknown metrics {sorted(unknown)}"
            records.append(rule["record"])
    assert records
    assert len(records) == len(set(records)), "duplicate recording rule"


def test_recording_rules_mirror_existing_alert_rules() -> None:
    # `- record: <name> # <alert>`: the alert of infra/alerts/ whose figure the record precomputes.
    alerts = {rule["name"] for path in (REPO_ROOT / "infra/alerts").glob("*.yaml") for rule in load_yaml(path)["rules"]}
    mirrored = [
        match.group(1)
        for path in sorted(RULES_DIR.glob("*.yml"))
        for match in re.finditer(r"^\s*- record: \S+ # (\S+)$", path.read_text(), re.MULTILINE)
    ]
    assert mirrored
    assert set(mirrored) <= alerts, f"records name alerts that do not exist: {sorted(set(mirrored) - alerts)}"


def test_services_send_otlp_to_the_collector(services: dict[str, dict[str, Any]], collector: dict[str, Any]) -> None:
    for name in SERVICES:
        assert services[name]["environment"]["HEARTH_OTLP_ENDPOINT"] == "http://otel-collector:4317", name
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    otelcol = services["otel-collector"]
    assert not otelcol.get("ports"), "the Collector is for the backend network only"
    assert otelcol.get("networks") == ["backend"]
    assert "./infra/otel/collector.yaml:/etc/otelcol/hearth.yaml:ro" in otelcol["volumes"]
    assert otelcol["command"] == ["--config=/etc/otelcol/hearth.yaml"]


def test_collector_pipelines_batch_and_reach_jaeger_and_prometheus(
    collector: dict[str, Any], services: dict[str, dict[str, Any]], scrape_jobs: dict[str, dict[str, Any]]
) -> None:
    assert set(collector) <= {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
    for kind, allowed in COLLECTOR_COMPONENTS.items():
        for component in collector.get(kind, {}):
            assert component.split("/", 1)[0] in allowed, f"{kind}.{component} is not in the core distribution"
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for signal, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in collector.get(kind, {}), f"{signal}: {kind[:-1]} {component} is not defined"
        assert "batch" in pipeline["processors"], f"{signal} pipeline does not batch"
        assert pipeline["processors"][0] == "memory_limiter", f"{signal}: memory_limiter must come first"
    for name in collector["service"].get("extensions", []):
        assert name in collector.get("extensions", {}), f"extension {name} is not defined"

    (traces_out,) = pipelines["traces"]["exporters"]
    assert traces_out.split("/", 1)[0] == "otlp_grpc"
    jaeger = collector["exporters"][traces_out]
    assert jaeger["endpoint"] == "jaeger:4317"
    assert jaeger["tls"]["insecure"] is True
    assert "jaeger" in services

    # Metrics: the prometheus exporter, scraped by Prometheus with the senders' own labels.
    (metrics_out,) = pipelines["metrics"]["exporters"]
    assert metrics_out == "prometheus"
    port = collector["exporters"]["prometheus"]["endpoint"].rpartition(":")[2]
    otlp_jobs = [job for job in scrape_jobs.values() if f"otel-collector:{port}" in static_targets(job)]
    assert len(otlp_jobs) == 1
    assert otlp_jobs[0].get("honor_labels") is True
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert f"otel-collector:{reader['port']}" in static_targets(scrape_jobs["otel-collector"])


def test_jaeger_is_all_in_one_with_otlp(services: dict[str, dict[str, Any]]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")  # v2: the all-in-one, OTLP built in
    listen = jaeger["environment"]["JAEGER_LISTEN_HOST"]
    assert listen == "0.0.0.0", "the config's default is localhost: unreachable from other containers"  # noqa: S104


def test_grafana_is_locked_down_and_provisioned(
    services: dict[str, dict[str, Any]], datasources: list[dict[str, Any]]
) -> None:
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana-admin-password"
    assert "grafana-admin-password" in grafana["secrets"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]

    by_type = {source["type"]: source for source in datasources}
    assert set(by_type) >= {"prometheus", "jaeger"}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["jsonData"]["timeInterval"] == "15s"  # the scrape interval
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    assert len({source["uid"] for source in datasources}) == len(datasources)
    assert sum(bool(source.get("isDefault")) for source in datasources) == 1

    providers = [
        p for path in (GRAFANA_DIR / "provisioning/dashboards").glob("*.yaml") for p in load_yaml(path)["providers"]
    ]
    assert providers
    mounted = {m.split(":")[1] for m in grafana["volumes"] if m.startswith("./infra/grafana/dashboards:")}
    for provider in providers:
        assert provider["type"] == "file"
        assert provider["options"]["path"] in mounted, f"provider {provider['name']} reads an unmounted path"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert any(home == f"{path}/hearth-overview.json" for path in mounted)


def test_dashboards_are_valid_grafana_json(
    dashboards: dict[str, dict[str, Any]], datasources: list[dict[str, Any]]
) -> None:
    uids = {source["uid"]: source["type"] for source in datasources}
    board_uids = [board.get("uid") for board in dashboards.values()]
    assert len(set(board_uids)) == len(board_uids), "two dashboards share a uid"
    for file, board in dashboards.items():
        assert board.get("uid"), file
        assert board.get("title"), file
        assert isinstance(board.get("schemaVersion"), int), file
        ids = [panel.get("id") for panel in board["panels"]]
        assert len(set(ids)) == len(ids), f"{file}: duplicate panel ids"
        for panel in board["panels"]:
            where = f"{file}: panel {panel.get('title')!r}"
            grid = panel.get("gridPos", {})
            assert {"x", "y", "w", "h"} <= set(grid), f"{where}: gridPos"
            assert all(isinstance(grid[k], int) for k in "xywh"), f"{where}: gridPos"
            assert grid["x"] + grid["w"] <= 24, f"{where}: wider than the grid"
            if panel["type"] == "row":
                continue
            source = panel.get("datasource")
            assert isinstance(source, dict), f"{where}: no datasource"
            assert uids.get(source.get("uid")) == source.get("type"), f"{where}: datasource {source} not provisioned"
            targets = panel.get("targets", [])
            assert targets, f"{where}: no queries"
            ref_ids = [target["refId"] for target in targets]
            assert len(set(ref_ids)) == len(ref_ids), f"{where}: duplicate refId"
            for target in targets:
                assert target.get("datasource", source) == source, f"{where}: target on another datasource"
                if source["type"] == "prometheus":
                    assert target.get("expr", "").strip(), f"{where}: target {target['refId']} without expr"
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                assert variable["datasource"].get("uid") in uids, f"{file}: variable {variable['name']}"


def test_dashboards_query_only_metrics_the_stack_exposes(
    dashboards: dict[str, dict[str, Any]], datasources: list[dict[str, Any]]
) -> None:
    exprs = [(f"{file}: {where}", expr) for file, board in dashboards.items() for where, expr in dashboard_exprs(board)]
    for source in datasources:
        for query in (source.get("jsonData") or {}).get("tracesToMetrics", {}).get("queries", []):
            exprs.append((f"datasource {source['name']}", query["query"]))
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = {name for name in names if not known_metric(name)}
        assert not unknown, f"{where}: {sorted(unknown)} is neither in shared.metrics nor a component's"


def test_overview_dashboard_covers_the_platform(dashboards: dict[str, dict[str, Any]]) -> None:
    exprs = [expr for _, expr in dashboard_exprs(dashboards["hearth-overview.json"])]
    used = set().union(*(metric_names(expr) for expr in exprs))
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            f"histogram_quantile({quantile}," in e and "hearth_model_request_duration_seconds_bucket" in e
            for e in exprs
        ), f"no model P{quantile}"
    wanted = {
        "hearth_model_requests_total", "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
        "nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count",
        "hearth_http_requests_total", "hearth_http_request_duration_seconds_bucket",
        "hearth_capability_duration_seconds_bucket", "hearth_workflow_runs_total", "hearth_nats_consumer_pending",
        "hearth_nats_consumer_redelivered", "hearth_host_cpu_percent", "hearth_host_memory_bytes",
        "hearth_host_disk_bytes", "hearth_host_network_bytes_total", "hearth_process_resident_bytes",
        "nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage", "hearth_gpu_utilization_percent",
        "hearth_gpu_memory_bytes", "hearth_gpu_power_watts", "hearth_gpu_temperature_celsius",
    }  # fmt: skip
    assert wanted <= used, f"overview lacks {sorted(wanted - used)}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (model, le) (rate(a_bucket{model=~"$model"}[$__rate_interval]))', {"a_bucket"}),
        ("rate(a_total[5m]) / on (job) group_left (x) b * 100 > bool 1e3", {"a_total", "b"}),
        ("histogram_quantile(0.99, sum by (le) (rate(c{$__tags}[5m]))) offset 1h", {"c"}),
        ('label_replace(up, "x", "$1", "job", "(.*)")', {"up"}),
    ],
)
def test_metric_name_scanner(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
