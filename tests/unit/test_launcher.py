from __future__ import annotations

import configparser
import socket
from pathlib import Path

import pytest

from shared.launcher import bootstrap, stack
from shared.launcher.components import Component, MissingBinary, build_components
from shared.launcher.configs import nats_conf, openbao_hcl, supervisord_conf
from shared.settings import SERVICES, HearthSettings, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path) -> HearthSettings:
    return load_settings(home=tmp_path / "home", port_offset=31000, _env_file=None)


def test_nats_fsyncs_every_write_and_binds_loopback(settings: HearthSettings) -> None:
    bootstrap.ensure_nats_credentials(settings)
    conf = nats_conf(settings)
    assert "sync_interval: always" in conf
    assert f"listen: 127.0.0.1:{settings.nats_port}" in conf
    assert f"https: 127.0.0.1:{settings.nats_monitor_port}" in conf  # monitoring over TLS too
    assert f'cert_file: "{settings.tls_cert_path}"' in conf
    plain = nats_conf(settings.model_copy(update={"tls": False}))
    assert f"http: 127.0.0.1:{settings.nats_monitor_port}" in plain
    assert "tls {" not in plain


def test_openbao_uses_raft_and_static_seal_from_the_secrets_dir(settings: HearthSettings) -> None:
    hcl = openbao_hcl(settings)
    assert 'storage "raft"' in hcl
    assert 'seal "static"' in hcl
    assert str(settings.secret_path("openbao-unseal.key")) in hcl
    assert f'address         = "127.0.0.1:{settings.openbao_port}"' in hcl


def test_supervisord_conf_is_parseable_and_escapes_percent(settings: HearthSettings) -> None:
    comps = [
        Component(name="a", tier=0, command=["/bin/echo", "50%", "two words"], env={"X": 'p%c"q'}),
        Component(name="b", tier=1, command=["/bin/true"], user="nobody"),
    ]
    text = supervisord_conf(settings, comps)
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    assert parser.get("program:a", "command") == '/bin/echo 50%% "two words"'
    assert 'X="p%%c\\"q"' in parser.get("program:a", "environment")
    assert parser.get("program:a", "autostart") == "false"
    assert parser.get("program:b", "user") == "nobody"
    assert "HEARTH_HOME" in parser.get("program:b", "environment")


def test_every_service_is_a_component_and_everything_binds_the_configured_host(settings: HearthSettings) -> None:
    try:
        comps = build_components(settings)
    except MissingBinary as exc:
        pytest.fail(f"`make setup` installs every binary: {exc}")
    names = [c.name for c in comps]
    assert names[:7] == ["nats", "postgres", "postgres-tls", "openbao", "temporal", "temporal-tls", "triton"]
    assert names[7:] == list(SERVICES)
    triton = next(c for c in comps if c.name == "triton")
    assert "--model-control-mode=explicit" in triton.command
    assert "--strict-readiness=false" in triton.command  # one broken model must not mark Triton down
    assert f"--http-address={settings.bind_host}" in triton.command
    assert any(a.startswith("--grpc-restricted-protocol=model-repository,") for a in triton.command)
    assert triton.env["LD_LIBRARY_PATH"].split(":")[0].endswith("lib")


def test_with_tls_only_tls_listens_beyond_loopback(settings: HearthSettings) -> None:
    wide = settings.model_copy(update={"bind_host": "0.0.0.0"})  # noqa: S104 - what is checked
    comps = {c.name: c for c in build_components(wide)}
    postgres = comps["postgres"].command
    # PostgreSQL (its build has no TLS) on loopback; the TLS proxy owns the public port.
    assert "listen_addresses=127.0.0.1" in postgres
    assert f"port={wide.postgres_internal_port}" in postgres
    assert comps["postgres-tls"].ports == {"sql": wide.postgres_port}
    # No TLS in the Temporal dev server or on Triton's HTTP: loopback only.
    temporal = comps["temporal"].command
    assert temporal[temporal.index("--ip") + 1] == "127.0.0.1"
    assert temporal[temporal.index("--port") + 1] == str(wide.temporal_internal_port)
    assert temporal[temporal.index("--ui-port") + 1] == str(wide.temporal_ui_internal_port)
    assert comps["temporal-tls"].ports == {"grpc": wide.temporal_port, "ui": wide.temporal_ui_port}
    assert temporal[temporal.index("--ui-ip") + 1] == "127.0.0.1"
    assert "--http-address=127.0.0.1" in comps["triton"].command
    assert wide.temporal_address.startswith("127.0.0.1:")
    plain = {c.name: c for c in build_components(wide.model_copy(update={"tls": False}))}
    assert "postgres-tls" not in plain
    assert "temporal-tls" not in plain
    assert "listen_addresses=0.0.0.0" in plain["postgres"].command


def test_corrupt_postgres_dir_is_refused_with_a_fix(settings: HearthSettings) -> None:
    pg = settings.data_dir("postgres")
    pg.mkdir(parents=True)
    (pg / "stray").write_text("x")
    with pytest.raises(bootstrap.StateError, match=r"PG_VERSION is missing.*remove"):
        bootstrap.check_state(settings)


def test_openbao_data_without_its_key_is_refused(settings: HearthSettings) -> None:
    (settings.data_dir("openbao") / "raft").mkdir(parents=True)
    with pytest.raises(bootstrap.StateError, match="unseal key"):
        bootstrap.check_state(settings)


def test_secret_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "s"
    bootstrap.write_secret(path, "one")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700


def test_port_in_use_names_owner_variable_and_fix(settings: HearthSettings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        comp = Component(name="gateway", tier=1, command=["x"], ports={"http": port})
        with pytest.raises(stack.LaunchError, match=rf"port {port} .*HEARTH_GATEWAY_PORT.*HEARTH_PORT_OFFSET"):
            stack.check_ports(settings, [comp])
