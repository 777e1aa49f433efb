"""The Casbin model and its logic: tenant domains, platform-wide roles, key subjects, sensitivity."""

from __future__ import annotations

import uuid

import casbin
import pytest

from shared.identity.apikeys import Principal
from shared.identity.authz import (
    LEVELS,
    MODEL_PATH,
    POLICY_PATH,
    Assignment,
    Authorizer,
    DataObject,
    Policy,
    check_methods,
    check_resource,
    clears,
    configure,
    key_subject,
    levels_up_to,
    load_enforcer,
    methods_of,
    policy_lines,
    roles_of,
    subjects_of,
)

pytestmark = pytest.mark.unit


def principal(role: str = "user", tenant: str = "acme", clearance: str = "internal", prefix: str = "") -> Principal:
    return Principal(uuid.uuid4(), "k", role, tenant, prefix or uuid.uuid4().hex[:12], clearance)


@pytest.fixture
def authz() -> Authorizer:
    return Authorizer(load_enforcer())


def test_levels_are_ordered_and_an_unknown_level_never_clears() -> None:
    assert LEVELS == ("public", "internal", "confidential", "secret")
    assert clears("secret", "public")
    assert clears("internal", "internal")
    assert not clears("internal", "confidential")
    assert not clears("bogus", "public")
    assert not clears("secret", "bogus")
    assert levels_up_to("confidential") == ("public", "internal", "confidential")
    assert levels_up_to("nope") == ()


@pytest.mark.parametrize(
    ("role", "path", "method", "allowed"),
    [
        ("user", "/v1/models", "GET", True),
        ("user", "/v1/models/ocr/infer", "POST", True),
        ("user", "/v1/models/ocr/load", "POST", False),  # model control is admin-only
        ("user", "/v1/keys", "GET", False),
        ("user", "/v1/audit", "GET", False),
        ("user", "/v1/authz/policies", "GET", False),
        ("user", "/v1/documents/abc", "PATCH", True),
        ("admin", "/v1/keys", "POST", True),
        ("admin", "/v1/authz/policies", "DELETE", True),
        ("nobody", "/v1/models", "GET", False),  # deny by default
    ],
)
def test_the_shipped_roles_keep_their_behaviour_in_any_tenant(
    authz: Authorizer, role: str, path: str, method: str, allowed: bool
) -> None:
    for tenant in ("default", "acme"):
        assert authz.allowed((role,), tenant, path, method) is allowed


def test_a_role_assigned_in_one_tenant_holds_there_only() -> None:
    enforcer = load_enforcer()
    enforcer.add_grouping_policy(key_subject("abcdefghijkl"), "tenant_admin", "acme")
    authz = Authorizer(enforcer)
    admin_of_acme = principal(tenant="acme", prefix="abcdefghijkl")
    assert authz.allowed(subjects_of(admin_of_acme), "acme", "/v1/authz/roles", "GET")
    assert authz.allowed(subjects_of(admin_of_acme), "acme", "/v1/models", "GET")  # tenant_admin includes user
    # The same key asked for in another domain (it never is: the domain is its own tenant) gets nothing extra.
    assert not authz.allowed((key_subject("abcdefghijkl"),), "globex", "/v1/authz/roles", "GET")
    assert not authz.allowed(subjects_of(principal(tenant="acme")), "acme", "/v1/authz/roles", "GET")


def test_a_platform_wide_assignment_and_policy_hold_in_every_tenant() -> None:
    enforcer = load_enforcer()
    enforcer.add_grouping_policy(key_subject("platformkey1"), "auditor", "*")
    enforcer.add_policy("auditor", "*", "/v1/audit", "GET")
    enforcer.add_policy("reader", "acme", "/v1/keys", "GET")  # a tenant's own policy: that tenant only
    authz = Authorizer(enforcer)
    for tenant in ("default", "acme", "globex"):
        assert authz.allowed((key_subject("platformkey1"),), tenant, "/v1/audit", "GET")
        assert not authz.allowed((key_subject("platformkey1"),), tenant, "/v1/audit", "POST")
    assert authz.allowed(("reader",), "acme", "/v1/keys", "GET")
    assert not authz.allowed(("reader",), "globex", "/v1/keys", "GET")


def test_decisions_are_memoised_until_invalidated(authz: Authorizer) -> None:
    assert not authz.allowed(("user",), "acme", "/v1/keys", "GET")
    authz.enforcer.add_policy("user", "acme", "/v1/keys", "GET")
    assert not authz.allowed(("user",), "acme", "/v1/keys", "GET")  # the memo still answers
    authz.invalidate()
    assert authz.allowed(("user",), "acme", "/v1/keys", "GET")
    assert authz.generation == 1


async def test_reload_reads_the_policy_again_and_forgets_the_memo(authz: Authorizer) -> None:
    authz.enforcer.add_policy("user", "acme", "/v1/keys", "GET")
    authz.invalidate()
    assert authz.allowed(("user",), "acme", "/v1/keys", "GET")
    await authz.reload()  # back to the file, which has no such line
    assert not authz.allowed(("user",), "acme", "/v1/keys", "GET")


@pytest.mark.parametrize(
    ("clearance", "sensitivity", "readable"),
    [
        ("internal", "public", True),
        ("internal", "internal", True),
        ("internal", "confidential", False),
        ("confidential", "confidential", True),
        ("confidential", "secret", False),
        ("secret", "secret", True),
        ("public", "internal", False),
    ],
)
def test_a_document_is_read_only_with_clearance_at_least_its_sensitivity(
    authz: Authorizer, clearance: str, sensitivity: str, readable: bool
) -> None:
    reader = principal(clearance=clearance)
    assert authz.permits(reader, DataObject("document", "acme", sensitivity, "d1"), "read") is readable
    assert authz.permits(reader, DataObject("document", "acme", sensitivity, "d1"), "write") is readable


def test_another_tenants_document_is_refused_to_a_user_but_not_to_the_platform_admin(authz: Authorizer) -> None:
    other = DataObject("document", "globex", "public", "d2")
    assert not authz.permits(principal(clearance="secret"), other, "read")
    assert authz.permits(principal(role="admin", tenant="default", clearance="secret"), other, "read")
    assert not authz.permits(
        principal(role="admin", tenant="default", clearance="internal"),
        DataObject("document", "globex", "secret", "d3"),
        "read",
    )
    assert not authz.permits(principal(), DataObject("contract", "acme", "public"), "read")  # no policy: denied
    assert not authz.permits(principal(), DataObject("document", "acme", "public"), "delete")


def test_allowed_levels_are_what_the_enforcer_allows(authz: Authorizer) -> None:
    assert authz.allowed_levels(principal(clearance="public")) == ["public"]
    assert authz.allowed_levels(principal(clearance="confidential")) == ["public", "internal", "confidential"]
    assert authz.allowed_levels(principal(role="nobody", clearance="secret")) == []


def test_a_data_policy_removed_takes_every_level_away() -> None:
    enforcer = load_enforcer()
    enforcer.remove_named_policy("p2", "user", "*", "document", "read|write", "own")
    authz = Authorizer(enforcer)
    assert authz.allowed_levels(principal(clearance="secret")) == []


def test_the_seed_is_the_shipped_policy_file() -> None:
    lines = policy_lines(POLICY_PATH)
    assert ["p", "admin", "*", "/v1/*", ".*"] in lines
    assert ["g", "tenant_admin", "user", "*"] in lines
    assert ["p2", "user", "*", "document", "read|write", "own"] in lines
    assert all(len(line) == {"p": 5, "p2": 6, "g": 4}[line[0]] for line in lines)
    enforcer = configure(casbin.Enforcer(str(MODEL_PATH)))
    for line in lines:
        if line[0] == "g":
            enforcer.add_named_grouping_policy("g", line[1:])
        else:
            enforcer.add_named_policy(line[0], line[1:])
    assert enforcer.enforce("user", "acme", "/v1/runs/r1/review", "POST")


def test_resources_and_methods_are_validated() -> None:
    assert check_resource("/v1/documents/:id") == "/v1/documents/:id"
    assert check_resource("/v1/runs/*") == "/v1/runs/*"
    for bad in ("/admin", "/v1/../keys", "v1/models", "/v1/models?x=1", "/v1/a b"):
        with pytest.raises(ValueError, match="resource"):
            check_resource(bad)
    assert check_methods("GET|POST") == "GET|POST"
    assert methods_of(".*") == ("GET", "POST", "PUT", "PATCH", "DELETE")
    for bad in ("get", "GET|", "(GET)", ".+", "GET|BREW"):
        with pytest.raises(ValueError, match="methods"):
            check_methods(bad)


def test_roles_are_gathered_from_policies_and_assignments_per_domain() -> None:
    roles = roles_of(
        [Policy("reader", "acme", "/v1/documents", "GET"), Policy("key:abcdefghijkl", "acme", "/v1/ocr", "POST")],
        [Assignment("reader", "user", "acme"), Assignment("key:abcdefghijkl", "reader", "acme")],
    )
    by_name = {(r.name, r.domain): r for r in roles}
    assert set(by_name) == {("reader", "acme"), ("user", "acme")}
    assert by_name["reader", "acme"].inherits == ["user"]
    assert [p.resource for p in by_name["reader", "acme"].policies] == ["/v1/documents"]


def test_route_decisions_are_memoised_per_template_so_new_ids_hit_the_memo(authz: Authorizer) -> None:
    template = "/v1/documents/{id}"
    assert authz.allowed(("user",), "acme", "/v1/documents/1", "GET", template=template)
    calls = 0
    enforce = authz.enforcer.enforce

    def counting(*args: object) -> bool:
        nonlocal calls
        calls += 1
        return bool(enforce(*args))

    authz.enforcer.enforce = counting  # type: ignore[method-assign]
    for doc in range(50):
        assert authz.allowed(("user",), "acme", f"/v1/documents/{doc + 2}", "GET", template=template)
    assert calls == 0
    assert not authz.allowed(("user",), "acme", "/v1/documents/7", "DELETE", template=template)
    assert calls == 1  # another method is another decision


def test_a_policy_on_one_literal_path_turns_the_template_memo_off(authz: Authorizer) -> None:
    template = "/v1/keys/{prefix}"
    authz.enforcer.add_policy("user", "acme", "/v1/keys/hk_mine", "GET")  # one key, not every key
    authz.invalidate()
    assert authz.allowed(("user",), "acme", "/v1/keys/hk_mine", "GET", template=template)
    assert not authz.allowed(("user",), "acme", "/v1/keys/hk_other", "GET", template=template)


def test_a_path_parameter_spanning_segments_is_never_memoised_per_template(authz: Authorizer) -> None:
    template = "/v1/files/{path:path}"
    authz.enforcer.add_policy("user", "acme", "/v1/files/:dir", "GET")  # one segment only
    authz.invalidate()
    assert authz.allowed(("user",), "acme", "/v1/files/a", "GET", template=template)
    assert not authz.allowed(("user",), "acme", "/v1/files/a/b", "GET", template=template)
