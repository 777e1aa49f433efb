from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_bind_loopback_and_document_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(__import__("os").environ):
        if var.startswith("HEARTH_"):
            monkeypatch.delenv(var)
    s = load_settings(_env_file=None)
    assert s.bind_host == "127.0.0.1"
    assert (s.gateway_port, s.temporal_ui_port, s.nats_port) == (8080, 8233, 4222)
    assert s.home.name == "var"


def test_port_offset_moves_every_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_PORT_OFFSET", "10000")
    s = load_settings(_env_file=None)
    assert s.gateway_port == 18080
    assert s.nats_url == "tls://127.0.0.1:14222"
    assert s.temporal_address == "127.0.0.1:17233"


def test_child_environment_reproduces_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEARTH_PORT_OFFSET", "1000")
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path))
    parent = load_settings(_env_file=None)
    for key, value in parent.child_environment().items():
        monkeypatch.setenv(key, value)
    child = load_settings(_env_file=None)
    assert child.model_dump(exclude={"port_offset"}) == parent.model_dump(exclude={"port_offset"})


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_NATS_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="HEARTH_NATS_PORT"):
        load_settings(_env_file=None)


def test_port_out_of_range_after_offset_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_PORT_OFFSET", "50000")
    monkeypatch.setenv("HEARTH_GATEWAY_PORT", "30000")
    with pytest.raises(SettingsError, match="HEARTH_GATEWAY_PORT"):
        load_settings(_env_file=None)


def test_missing_secret_says_how_to_create_it(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, _env_file=None)
    with pytest.raises(SettingsError, match="hearth up"):
        s.read_secret("postgres-password")
