"""NATS users and permissions: derived from BUS_USE, the event catalog and the capability naming rule."""

from __future__ import annotations

import ast
import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from shared import natsauth
from shared.bus import PermissionViolations
from shared.capabilities import SUBJECT_PREFIX
from shared.events import CATALOG
from shared.inference import INFER_SUBJECT_PREFIX
from shared.launcher import bootstrap
from shared.launcher.configs import nats_conf
from shared.settings import REPO_ROOT, SERVICES, HearthSettings, SettingsError, load_settings, service_module

pytestmark = pytest.mark.unit

_EVENT_LITERAL = re.compile(r"^hearth\.[a-z_]+\.[a-z_.]+\.v\d+$")


@pytest.fixture
def settings(tmp_path: Path) -> HearthSettings:
    return load_settings(home=tmp_path / "home", port_offset=31500, _env_file=None)


def _capabilities() -> dict[str, list[str]]:
    """Capability names per service, from the committed AsyncAPI document (`asyncapi --check` keeps it fresh)."""
    doc = json.loads((REPO_ROOT / "docs" / "asyncapi.json").read_text())
    names: dict[str, list[str]] = {}
    for channel in doc["channels"].values():
        address = channel.get("address") or ""
        if address.startswith(f"{SUBJECT_PREFIX}."):
            name = address.removeprefix(f"{SUBJECT_PREFIX}.")
            names.setdefault(name.split(".")[0], []).append(name)
    return names


def test_every_process_declares_its_bus_use_and_nothing_else() -> None:
    assert set(natsauth.BUS_USE) == set(SERVICES)


def test_the_derivation_uses_the_same_subject_prefixes_as_the_code() -> None:
    perms = natsauth.service_permissions("ocr")
    assert f"{SUBJECT_PREFIX}.ocr.>" in perms.subscribe
    assert f"{INFER_SUBJECT_PREFIX}.*" in perms.publish


@pytest.mark.parametrize("service", SERVICES)
def test_declarations_resolve_against_the_catalog_and_the_capabilities(service: str) -> None:
    use = natsauth.BUS_USE[service]
    for event_type in use.publishes:
        if event_type != "*" and not event_type.endswith(".>"):
            CATALOG.get_event_type(event_type)  # NotFound for a typo
    for subject in use.consumes:
        if subject != "*":
            CATALOG.stream_for_subject(subject)
    capabilities = [name for names in _capabilities().values() for name in names]
    for pattern in use.calls:
        subject = f"{SUBJECT_PREFIX}.{pattern}"
        assert any(
            natsauth.may_publish(natsauth.Permissions((subject,), ()), f"{SUBJECT_PREFIX}.{c}") for c in capabilities
        ), f"{service} calls {pattern!r}, which matches no capability"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_serves_its_own_capabilities_and_no_other(service: str) -> None:
    perms = natsauth.service_permissions(service)
    assert perms.allow_responses  # it answers requests on the caller's inbox
    for owner, names in _capabilities().items():
        for name in names:
            assert natsauth.may_subscribe(perms, f"{SUBJECT_PREFIX}.{name}") == (owner == service), name
    assert natsauth.may_subscribe(perms, f"_INBOX.{service}.>")
    for other in SERVICES:
        if other != service:
            assert not natsauth.may_subscribe(perms, f"_INBOX.{other}.>")
            assert not natsauth.may_subscribe(perms, f"_INBOX.{other}.abc")
    assert not natsauth.may_subscribe(perms, "_INBOX.>")
    assert not natsauth.may_subscribe(perms, ">")
    assert not natsauth.may_subscribe(perms, "hearth.>")


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_may_publish_what_only_publishers_send_or_reach_the_whole_bus(service: str) -> None:
    perms = natsauth.service_permissions(service)
    if service != "workflows":  # a `publish` step may name any catalogued event, ingest included
        assert not natsauth.may_publish(perms, "hearth.ingest.document.v1")
    assert not natsauth.may_publish(perms, "$JS.API.STREAM.DELETE.HEARTH_INGEST")
    assert not natsauth.may_publish(perms, "$JS.API.STREAM.CREATE.HEARTH_X")
    assert not natsauth.may_publish(perms, "_INBOX.gateway.x")  # replies only through allow_responses
    assert natsauth.may_publish(perms, "hearth.telemetry.spans")


def test_the_gateway_publishes_document_results_and_the_ocr_service_does_not() -> None:
    gateway, ocr = natsauth.service_permissions("gateway"), natsauth.service_permissions("ocr")
    assert natsauth.may_publish(gateway, "hearth.document.processed.v1")
    assert not natsauth.may_publish(ocr, "hearth.document.processed.v1")
    assert not natsauth.may_publish(ocr, "hearth.svc.telemetry.overview")
    assert natsauth.may_publish(gateway, "hearth.svc.telemetry.overview")
    assert natsauth.may_publish(gateway, "hearth.svc.ocr.health")
    assert not natsauth.may_publish(gateway, "hearth.svc.ocr.extract")
    assert natsauth.may_subscribe(gateway, "hearth.infer.*")
    assert not natsauth.may_subscribe(ocr, "hearth.infer.*")
    assert natsauth.may_publish(ocr, "hearth.infer.chinese_ocr_v3")


def test_consumers_get_the_jetstream_api_of_their_streams_only() -> None:
    gateway = natsauth.service_permissions("gateway")
    assert natsauth.may_publish(
        gateway, "$JS.API.CONSUMER.CREATE.HEARTH_INGEST.documents-ingest.hearth.ingest.document.v1"
    )
    assert natsauth.may_publish(gateway, "$JS.API.CONSUMER.MSG.NEXT.HEARTH_INGEST.documents-ingest")
    assert natsauth.may_publish(gateway, "$JS.ACK.HEARTH_INGEST.documents-ingest.1.2.3.4.5")
    assert natsauth.may_publish(gateway, "hearth.deadletter.ingest.document.v1")
    assert not natsauth.may_publish(gateway, "$JS.API.CONSUMER.MSG.NEXT.HEARTH_ALERT.x")
    telemetry = natsauth.service_permissions("telemetry")
    assert natsauth.may_publish(telemetry, "$JS.API.CONSUMER.INFO.HEARTH_WORKFLOW.telemetry-workflow-steps")
    assert not natsauth.may_publish(telemetry, "$JS.API.CONSUMER.INFO.HEARTH_INGEST.documents-ingest")
    assert not natsauth.may_publish(telemetry, "$O.hearth-blobs.C.x")  # no blobs


def test_the_workflow_worker_follows_the_catalog() -> None:
    perms = natsauth.service_permissions("workflows")
    for event in CATALOG.event_types():
        assert natsauth.may_publish(perms, event.subject.replace(">", "x"))
    for stream in CATALOG.streams():
        assert natsauth.may_publish(perms, f"$JS.API.CONSUMER.MSG.NEXT.{stream.name}.wf-x-0")
    assert not natsauth.may_publish(perms, "hearth.svc.ocr.extract")  # activities go through Temporal


@pytest.mark.parametrize("service", SERVICES)
def test_every_event_a_service_names_in_its_code_is_covered(service: str) -> None:
    """A literal event type in a service's code is published or consumed by it: the grant must cover it."""
    root = REPO_ROOT / Path(*service_module(service).split("."))
    use = natsauth.BUS_USE[service]
    perms = natsauth.service_permissions(service)
    filters = [s for spec in CATALOG.streams() for s in spec.subjects] if "*" in use.consumes else use.consumes
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _EVENT_LITERAL.match(node.value):
                subject = node.value
                consumed = any(natsauth.may_subscribe(natsauth.Permissions((), (f,)), subject) for f in filters)
                assert natsauth.may_publish(perms, subject) or consumed, (
                    f"{path.relative_to(REPO_ROOT)} names {subject}, which BUS_USE[{service!r}] neither publishes "
                    "nor consumes"
                )


def test_a_publisher_publishes_ingest_and_reads_only_its_results() -> None:
    user = natsauth.publisher_user("erp")
    perms = natsauth.publisher_permissions(user)
    assert user == "lob-erp"
    assert not perms.allow_responses
    assert natsauth.may_publish(perms, "hearth.ingest.document.v1")
    for subject in (
        "hearth.infer.x",
        "hearth.svc.ocr.extract",
        "hearth.document.processed.v1",
        "$JS.API.STREAM.INFO.X",
    ):
        assert not natsauth.may_publish(perms, subject), subject
    assert natsauth.may_subscribe(perms, "hearth.document.processed.v1")
    assert natsauth.may_subscribe(perms, "hearth.deadletter.ingest.document.v1")
    assert natsauth.may_subscribe(perms, "_INBOX.lob-erp.>")
    for subject in (
        "hearth.>",
        ">",
        "_INBOX.>",
        "_INBOX.gateway.>",
        "hearth.workflow.completed.v1",
        "hearth.deadletter.>",
    ):
        assert not natsauth.may_subscribe(perms, subject), subject
    # Its one durable consumer per result stream, whose filter the server holds to the results.
    assert natsauth.may_publish(perms, "$JS.API.CONSUMER.CREATE.HEARTH_DOCUMENT.lob-erp.hearth.document.processed.v1")
    assert not natsauth.may_publish(perms, "$JS.API.CONSUMER.CREATE.HEARTH_DOCUMENT.lob-erp.hearth.document.>")
    assert not natsauth.may_publish(
        perms, "$JS.API.CONSUMER.CREATE.HEARTH_DOCUMENT.lob-crm.hearth.document.processed.v1"
    )


@pytest.mark.parametrize("name", ["", "Erp", "erp.x", "erp>", "a" * 41, "9erp"])
def test_publisher_names_are_single_plain_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="publisher name"):
        natsauth.publisher_user(name)


def test_subscription_coverage_is_token_wise() -> None:
    perms = natsauth.Permissions((), ("a.*.c", "x.>"))
    assert natsauth.may_subscribe(perms, "a.b.c")
    assert natsauth.may_subscribe(perms, "a.*.c")
    assert natsauth.may_subscribe(perms, "x.y.>")
    assert not natsauth.may_subscribe(perms, "a.>")
    assert not natsauth.may_subscribe(perms, "a.b.*")
    assert not natsauth.may_subscribe(perms, "x")


def test_credentials_are_0600_and_the_config_holds_only_hashes(settings: HearthSettings) -> None:
    created = natsauth.ensure_credentials(settings)
    assert created == [natsauth.ADMIN_USER, *SERVICES]
    assert natsauth.ensure_credentials(settings) == []  # idempotent
    _, publisher_password = natsauth.create_publisher(settings, "erp")
    conf = nats_conf(settings)
    for user in (natsauth.ADMIN_USER, *SERVICES):
        path = settings.secret_path(f"nats/{user}.password")
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() not in conf
        assert f'user: "{user}"' in conf
    assert publisher_password not in conf
    assert 'user: "lob-erp"' in conf
    assert (settings.secrets_dir / "nats").stat().st_mode & 0o777 == 0o700


def test_the_rendered_config_is_valid_for_nats_server(settings: HearthSettings, tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        pytest.fail("`make setup` installs nats-server into the venv")
    natsauth.ensure_credentials(settings)
    natsauth.create_publisher(settings, "erp")
    bootstrap.prepare_tls(settings)  # the tls block names the certificate, which nats-server loads
    path = tmp_path / "nats.conf"
    path.write_text(nats_conf(settings))
    result = subprocess.run([str(binary), "-c", str(path), "-t"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_no_authorization_block_when_auth_is_off(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, nats_auth=False, tls=False, _env_file=None)
    assert "authorization {" not in nats_conf(settings)
    assert natsauth.connect_options(settings, "ocr") == {"inbox_prefix": "_INBOX.ocr"}


def test_connect_options_use_the_process_user(settings: HearthSettings) -> None:
    with pytest.raises(SettingsError, match=r"nats/ocr\.password"):
        natsauth.connect_options(settings, "ocr")
    natsauth.ensure_credentials(settings)
    with pytest.raises(SettingsError, match=r"tls/ca\.pem is missing"):
        natsauth.connect_options(settings, "ocr")
    bootstrap.prepare_tls(settings)
    options = natsauth.connect_options(settings, "ocr")
    assert options["tls"].verify_mode == ssl.CERT_REQUIRED
    assert options["tls"].check_hostname
    assert options["user"] == "ocr"
    assert options["inbox_prefix"] == "_INBOX.ocr"
    assert options["password"] == settings.read_secret("nats/ocr.password")
    assert natsauth.connect_options(settings)["user"] == natsauth.ADMIN_USER  # HEARTH_NATS_USER's default


def test_faststream_brokers_get_the_same_credentials(settings: HearthSettings) -> None:
    natsauth.ensure_credentials(settings)
    bootstrap.prepare_tls(settings)
    options = natsauth.broker_options(settings, "telemetry")
    assert options["security"].ssl_context is natsauth.connect_options(settings)["tls"]
    assert options["inbox_prefix"] == "_INBOX.telemetry"
    assert options["security"].username == "telemetry"
    assert options["security"].password == settings.read_secret("nats/telemetry.password")
    assert "user" not in options  # NatsBroker takes credentials only through security=


def test_publishers_create_list_revoke(settings: HearthSettings) -> None:
    publisher, password = natsauth.create_publisher(settings, "erp")
    assert len(password) >= 32
    assert [p.name for p in natsauth.list_publishers(settings)] == ["erp"]
    with pytest.raises(ValueError, match="exists already"):
        natsauth.create_publisher(settings, "erp")
    assert publisher.password_hash.startswith("$2")
    assert settings.secret_path("nats/publishers.json").stat().st_mode & 0o777 == 0o600
    assert password not in settings.secret_path("nats/publishers.json").read_text()
    natsauth.revoke_publisher(settings, "erp")
    assert natsauth.list_publishers(settings) == []
    with pytest.raises(KeyError):
        natsauth.revoke_publisher(settings, "erp")


def test_reload_without_a_running_server_only_renders(settings: HearthSettings) -> None:
    natsauth.ensure_credentials(settings)
    settings.run_dir.mkdir(parents=True)
    assert natsauth.reload(settings) is False
    assert "authorization {" in (settings.run_dir / "nats.conf").read_text()


def test_permission_violations_are_parsed_from_the_server_error() -> None:
    seen = PermissionViolations()
    assert seen.record('nats: permissions violation for publish to "hearth.svc.ocr.extract"') == (
        "publish",
        "hearth.svc.ocr.extract",
    )
    assert seen.record("nats: some other error") is None
    assert seen.since("hearth.svc.ocr.extract", 0.0) == "publish"
    assert seen.since("hearth.svc.nlp.analyze", 0.0) is None
    seen.record('nats: permissions violation for subscription to "_inbox.gateway.>"')
    assert seen.since("_INBOX.gateway.>", 0.0) == "subscription"  # nats-py lower-cases the line
