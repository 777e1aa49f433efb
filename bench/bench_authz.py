"""Enforcer decision latency in process: Casbin bare against the gateway's memoised ``Authorizer``.

The shipped policy (``infra/casbin/policy.csv``) plus ``--tenants`` tenants each with a custom role,
a tenant admin and ``--keys`` keys with assignments, so role links and domains are not trivial. It
times, per decision, the bare ``enforcer.enforce`` for a route (matcher: role links in the
tenant's domain, keyMatch2, regex) and for a document (the data matcher with ``clears()``), then
the ``Authorizer`` as the guard asks it (the key's role and ``key:<prefix>``, memoised) on a
request mix of ``--paths`` distinct paths. The issue's target: p50 <= 50 us in process. It prints
figures and asserts nothing; no stack needed::

    python -m bench.bench_authz --decisions 20000
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable

from shared.identity.apikeys import Principal
from shared.identity.authz import LEVELS, Authorizer, DataObject, key_subject, load_enforcer, subjects_of

ROUTES = [
    ("/v1/models", "GET"),
    ("/v1/models/{id}/infer", "POST"),
    ("/v1/documents/{id}", "GET"),
    ("/v1/documents/{id}", "PATCH"),
    ("/v1/runs/{id}", "GET"),
    ("/v1/search", "GET"),
    ("/v1/keys", "GET"),  # denied to users: a full scan of the policy
    ("/v1/authz/policies", "POST"),
]


def timed(call: Callable[[int], object], n: int) -> list[float]:
    """Microseconds of each of ``n`` calls."""
    samples = []
    for i in range(n):
        started = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    print(f"{name:<48} p50 {p(0.5):8.2f} us   p90 {p(0.9):8.2f} us   p99 {p(0.99):8.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--keys", type=int, default=20, help="keys with an assignment, per tenant")
    parser.add_argument("--paths", type=int, default=200, help="distinct ids in the request mix")
    args = parser.parse_args()

    rng = random.Random(7)  # noqa: S311 - a reproducible request mix, not a secret
    enforcer = load_enforcer()
    principals: list[Principal] = []
    for t in range(args.tenants):
        tenant = f"tenant-{t}"
        enforcer.add_policy("auditor", tenant, "/v1/audit", "GET")
        for k in range(args.keys):
            prefix = uuid.uuid4().hex[:12]
            role = "tenant_admin" if k == 0 else "auditor"
            enforcer.add_grouping_policy(key_subject(prefix), role, tenant)
            principals.append(Principal(uuid.uuid4(), "k", "user", tenant, prefix, rng.choice(LEVELS)))
    rules = len(enforcer.get_policy()) + len(enforcer.get_grouping_policy())
    print(f"policy: {rules} rules, {args.tenants} tenants, {len(principals)} keys with assignments")

    requests = []
    fresh = []  # the same traffic with ids never seen before (each new document is a new path)
    for index in range(args.decisions):
        route, method = rng.choice(ROUTES)
        who = rng.choice(principals)
        requests.append((who, route.replace("{id}", str(rng.randrange(args.paths))), method))
        fresh.append((who, route.replace("{id}", str(args.paths + index)), method, route))
    documents = [
        (rng.choice(principals), DataObject("document", f"tenant-{rng.randrange(args.tenants)}", rng.choice(LEVELS)))
        for _ in range(args.decisions)
    ]

    def bare_route(i: int) -> object:
        who, path, method = requests[i]
        return any(enforcer.enforce(s, who.tenant, path, method) for s in subjects_of(who))

    ctx = enforcer.new_enforce_context("2")

    def bare_data(i: int) -> object:
        who, doc = documents[i]
        return any(enforcer.enforce(ctx, s, who.tenant, who.clearance, doc, "read") for s in subjects_of(who))

    authorizer = Authorizer(enforcer, cache_size=1 << 20)

    def memo_route(i: int) -> object:
        who, path, method = requests[i]
        return authorizer.allowed(subjects_of(who), who.tenant, path, method)

    def fresh_by_path(i: int) -> object:
        who, path, method, _ = fresh[i]
        return authorizer.allowed(subjects_of(who), who.tenant, path, method)

    def fresh_by_template(i: int) -> object:
        who, path, method, template = fresh[i]
        return authorizer.allowed(subjects_of(who), who.tenant, path, method, template=template)

    def memo_data(i: int) -> object:
        who, doc = documents[i]
        return authorizer.permits(who, doc, "read")

    report("casbin enforce, route (role + key subject)", timed(bare_route, args.decisions))
    report("casbin enforce, document (data matcher)", timed(bare_data, args.decisions))
    timed(memo_route, args.decisions)  # warm: the guard's memo as it is after the first requests
    timed(memo_data, args.decisions)
    report("Authorizer.allowed, route (memoised)", timed(memo_route, args.decisions))
    report("Authorizer.permits, document (memoised)", timed(memo_data, args.decisions))
    report("Authorizer.allowed, new ids, memo per path", timed(fresh_by_path, args.decisions))
    timed(fresh_by_template, min(args.decisions, 200))  # the guard's memo after its first requests
    report("Authorizer.allowed, new ids, per template (guard)", timed(fresh_by_template, args.decisions))
    print(f"memo entries: {len(authorizer._routes)} routes, {len(authorizer._data)} data (cleared on a policy change)")


if __name__ == "__main__":
    main()
