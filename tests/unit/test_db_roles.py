"""What ``hearth db role create`` accepts before it touches the database."""

from __future__ import annotations

import pytest

from shared.db.roles import READABLE_TABLES, _parse_comment, check_request, policy_name
from shared.errors import InvalidInput


def test_a_sound_request_passes() -> None:
    check_request("analyst_acme", ["acme", "beta-2"], ["processed_docs", "raw_docs"], "hearth")


@pytest.mark.parametrize(
    ("name", "tenants", "tables", "reason"),
    [
        ("Analyst", ["acme"], ["processed_docs"], "must match"),
        ("pg_reader", ["acme"], ["processed_docs"], "pg_"),
        ("a; DROP ROLE x", ["acme"], ["processed_docs"], "must match"),
        ("postgres", ["acme"], ["processed_docs"], "reserved"),
        ("svc_role", ["acme"], ["processed_docs"], "reserved"),
        ("analyst", [], ["processed_docs"], "at least one tenant"),
        ("analyst", ["*"], ["processed_docs"], "wildcards"),
        ("analyst", ["acme'--"], ["processed_docs"], "not a tenant name"),
        ("analyst", ["acme"], ["api_keys"], "choose from"),
        ("analyst", ["acme"], [], "choose from"),
    ],
)
def test_bad_requests_name_the_problem(name: str, tenants: list[str], tables: list[str], reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_request(name, tenants, tables, "svc_role")


def test_api_keys_are_never_readable() -> None:
    assert "api_keys" not in READABLE_TABLES
    assert "processed_docs" in READABLE_TABLES


def test_the_comment_round_trips_tenants_and_tables() -> None:
    role = _parse_comment("analyst", "hearth analyst; tenants=acme,beta; tables=processed_docs")
    assert role.tenants == ("acme", "beta")
    assert role.tables == ("processed_docs",)


def test_policy_names_fit_postgres_identifiers() -> None:
    check_request("a" * 50, ["acme"], ["processed_docs"], "hearth")
    assert len(policy_name("a" * 50)) <= 63
    with pytest.raises(InvalidInput):
        check_request("a" * 51, ["acme"], ["processed_docs"], "hearth")
