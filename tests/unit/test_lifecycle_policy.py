"""The lifecycle policy file: parsing, refusals that name the problem, per-tenant rules, due dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.governance.config import LifecycleConfigError, Retention, load_config, parse_config
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

SHIPPED = REPO_ROOT / "infra" / "governance" / "retention.yaml"


def test_the_shipped_file_loads_with_a_class_rule_and_a_default() -> None:
    config = load_config(SHIPPED)
    policy = config.policy("acme")
    assert policy.retention_for("contract") == ("contract", Retention(years=7))
    assert policy.retention_for("memo") == ("default", Retention(years=10))
    assert policy.retention_for(None)[0] == "default"
    assert policy.idle_s == 30 * 86400
    assert config.schedules.tiering == 86400


def test_years_are_calendar_years_and_a_leap_day_ends_on_the_28th() -> None:
    assert Retention(years=7).until(datetime(2024, 3, 1, 12, tzinfo=UTC)) == datetime(2031, 3, 1, 12, tzinfo=UTC)
    assert Retention(years=1).until(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2025, 2, 28, tzinfo=UTC)
    assert Retention(seconds=90).until(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert Retention(forever=True).until(datetime(2024, 1, 1, tzinfo=UTC)) is None


def test_durations_units_zero_and_forever() -> None:
    config = parse_config(
        {
            "retention": {"default": "forever", "classes": {"invoice": "90d", "scratch": "0s"}},
            "tiering": {"idle": "12h"},
            "rotation": {"max_age": "30d"},
        }
    )
    policy = config.policy("t")
    assert policy.retention_for("invoice")[1] == Retention(seconds=90 * 86400)
    assert policy.retention_for("scratch")[1].until(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    assert policy.retention_for("other")[1].forever
    assert policy.idle_s == 12 * 3600
    assert policy.rotation_max_age_s == 30 * 86400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"retention": {"default": "7 years"}}, "retention.default"),
        ({"retention": {"classes": {"Contract": "7y"}}}, "retention.classes"),
        ({"tiering": {"idle": 30}}, "has no unit"),
        ({"tiering": {"idle": "30w"}}, "unknown unit"),
        ({"schedules": {"tiering": "10s"}}, "greater than or equal to 60"),
        ({"retention": {"keep": "1y"}}, "Extra inputs are not permitted"),
        ({"tenant": {}}, "tenant"),
    ],
)
def test_bad_values_are_refused_naming_the_field(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(LifecycleConfigError) as err:
        parse_config(raw, source="policy.yaml")
    assert str(err.value).startswith("policy.yaml: ")
    assert expected in str(err.value)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    with pytest.raises(LifecycleConfigError) as err:
        parse_config({"tiering": {"idle": "x"}, "rotation": {"max_age": "y"}})
    assert "tiering.idle" in str(err.value)
    assert "rotation.max_age" in str(err.value)


def test_tenant_overrides_merge_over_the_file_and_the_first_match_wins() -> None:
    config = parse_config(
        {
            "retention": {"default": "10y", "classes": {"contract": "7y", "invoice": "10y"}},
            "tiering": {"idle": "30d"},
            "tenants": {
                "eu-*": {"retention": {"classes": {"contract": "10y"}}, "tiering": {"idle": "1d"}},
                "*": {"retention": {"default": "5y"}},
            },
        }
    )
    eu = config.policy("eu-acme")
    assert eu.retention_for("contract")[1] == Retention(years=10)
    assert eu.retention_for("invoice")[1] == Retention(years=10)
    assert eu.retention_for("memo")[1] == Retention(years=10)  # the first match only: no default from "*"
    assert eu.idle_s == 86400
    other = config.policy("us-acme")
    assert other.retention_for("memo")[1] == Retention(years=5)
    assert other.retention_for("contract")[1] == Retention(years=7)
    assert other.idle_s == 30 * 86400


def test_extra_files_add_tenants_only_and_never_twice(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("tenants:\n  lifecycle-*:\n    retention: {default: 0s}\n    tiering: {idle: 0s}\n")
    config = load_config(SHIPPED, [extra])
    assert config.policy("lifecycle-x").retention_for("contract")[1] == Retention(years=7)
    assert config.policy("lifecycle-x").retention_for("memo")[1] == Retention(seconds=0)
    assert config.policy("lifecycle-x").idle_s == 0
    assert config.policy("acme").idle_s == 30 * 86400

    bad = tmp_path / "bad.yaml"
    bad.write_text("tiering: {idle: 0s}\n")
    with pytest.raises(LifecycleConfigError, match="holds only `tenants`"):
        load_config(SHIPPED, [bad])
    with pytest.raises(LifecycleConfigError, match="defined twice"):
        load_config(SHIPPED, [extra, extra])


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(LifecycleConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("retention: [\n")
    with pytest.raises(LifecycleConfigError, match="not valid YAML"):
        load_config(broken)


def test_due_dates_and_idle_time_follow_the_tenant_policy() -> None:
    policy = parse_config({"retention": {"classes": {"contract": "7y"}}, "tiering": {"idle": "2d"}}).policy("t")
    created = datetime(2020, 5, 17, 8, 30, tzinfo=UTC)
    assert policy.retain_until("contract", created) == ("contract", datetime(2027, 5, 17, 8, 30, tzinfo=UTC))
    assert policy.retain_until("memo", created) == ("default", None)  # the default default: kept forever
    now = datetime(2024, 1, 10, tzinfo=UTC)
    assert policy.idle_since(now) == now - timedelta(days=2)
