"""``hearth db role``: PostgreSQL roles for analysts' direct, read-only access, tenant by tenant.

The seed's example (``CREATE ROLE analyst …; GRANT SELECT ON processed_docs …; REVOKE INSERT ON
raw_docs …``) made safe for a multi-tenant database: a role made here may log in (over TCP, with
its password: SCRAM), may ``SELECT`` the tables it was granted and nothing else (no INSERT,
UPDATE or DELETE anywhere, so there is nothing to revoke), and sees, through a row-level security
policy of its own on each table, only the rows of its tenants. It cannot bypass row security and
cannot change its own policies. Columns the platform encrypts (document text, entities, chunk
text) read as ciphertext: an analyst gets the metadata, classes, tags, dates and amounts' indexes,
not the plaintext, unless the platform decrypts it for them (the API does, for keys).

Roles are managed as the database superuser over the state dir's socket, so only someone with the
box's state directory can make one. A role made here is marked by its comment (``hearth analyst``)
and only such roles are listed or dropped.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

import asyncpg

from shared.db.tenancy import TENANT_TABLES
from shared.errors import Conflict, InvalidInput, NotFound
from shared.launcher.components import postgres_socket_dir
from shared.settings import HearthSettings

ROLE_COMMENT: Final = "hearth analyst"
READABLE_TABLES: Final = tuple(t for t in TENANT_TABLES if t != "api_keys")
"""What an analyst may be granted: the tenant-owned tables except API keys (hashes, prefixes)."""
DEFAULT_TABLES: Final = ("processed_docs",)
_ROLE_RE: Final = re.compile(r"^[a-z][a-z0-9_]{2,49}$")  # so policy names (hearth_role_<name>) fit 63
_TENANT_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_RESERVED: Final = frozenset({"postgres", "public", "hearth", "pg_monitor"})


def policy_name(role: str) -> str:
    return f"hearth_role_{role}"


@dataclass(frozen=True)
class AnalystRole:
    """A role made by ``create_role``: the tenants it sees and the tables it may read."""

    name: str
    tenants: tuple[str, ...]
    tables: tuple[str, ...]
    password: str | None = None
    """Set only on the value ``create_role`` returns, when it generated the password."""


def check_request(name: str, tenants: list[str], tables: list[str], service_role: str) -> None:
    """``InvalidInput`` naming what is wrong with a role request (name, tenants, tables)."""
    if not _ROLE_RE.match(name) or name.startswith("pg_"):
        raise InvalidInput(f"role name {name!r} must match {_ROLE_RE.pattern} and not start with pg_")
    if name in _RESERVED or name == service_role:
        raise InvalidInput(f"role name {name!r} is reserved")
    if not tenants:
        raise InvalidInput("name at least one tenant (--tenant): an analyst sees only its tenants' rows")
    for tenant in tenants:
        if tenant == "*" or not _TENANT_RE.match(tenant):
            raise InvalidInput(f"tenant {tenant!r} is not a tenant name (one tenant per --tenant, no wildcards)")
    unknown = sorted(set(tables) - set(READABLE_TABLES))
    if unknown or not tables:
        raise InvalidInput(f"tables {unknown or tables} cannot be granted; choose from {', '.join(READABLE_TABLES)}")


async def _superuser(settings: HearthSettings) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=str(postgres_socket_dir(settings)),
        port=settings.postgres_server_port,
        user="postgres",
        database=settings.postgres_db,
    )


async def _ident(conn: asyncpg.Connection, name: str) -> str:
    return str(await conn.fetchval("SELECT quote_ident($1::text)", name))


async def _literal(conn: asyncpg.Connection, value: str) -> str:
    return str(await conn.fetchval("SELECT quote_literal($1::text)", value))


async def create_role(
    settings: HearthSettings, name: str, tenants: list[str], tables: list[str], *, password: str | None = None
) -> AnalystRole:
    """Make a read-only login role seeing ``tenants``' rows of ``tables``; a password is generated if none is given."""
    check_request(name, tenants, tables, settings.postgres_user)
    generated = password is None
    password = password if password is not None else secrets.token_urlsafe(24)
    if len(password) < 12:
        raise InvalidInput("the password must be at least 12 characters")
    conn = await _superuser(settings)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
            raise Conflict(f"role {name!r} exists already: drop it first (`hearth db role drop {name}`)")
        role, db = await _ident(conn, name), await _ident(conn, settings.postgres_db)
        tenant_array = "ARRAY[" + ", ".join([await _literal(conn, t) for t in tenants]) + "]::text[]"
        async with conn.transaction():
            await conn.execute(
                f"CREATE ROLE {role} LOGIN PASSWORD {await _literal(conn, password)} NOSUPERUSER NOCREATEDB "
                "NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 10"
            )
            comment = f"{ROLE_COMMENT}; tenants={','.join(tenants)}; tables={','.join(tables)}"
            await conn.execute(f"COMMENT ON ROLE {role} IS {await _literal(conn, comment)}")
            await conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {role}")
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            for table in tables:
                await conn.execute(f"GRANT SELECT ON {table} TO {role}")
                await conn.execute(
                    f"CREATE POLICY {policy_name(name)} ON {table} FOR SELECT TO {role} "
                    f"USING (tenant = ANY({tenant_array}))"
                )
    finally:
        await conn.close()
    return AnalystRole(name, tuple(tenants), tuple(tables), password if generated else None)


def _parse_comment(name: str, comment: str) -> AnalystRole:
    fields = dict(part.strip().split("=", 1) for part in comment.split(";")[1:] if "=" in part)
    tenants = tuple(t for t in fields.get("tenants", "").split(",") if t)
    tables = tuple(t for t in fields.get("tables", "").split(",") if t)
    return AnalystRole(name, tenants, tables)


async def list_roles(settings: HearthSettings) -> list[AnalystRole]:
    """Every role ``create_role`` made, by name."""
    conn = await _superuser(settings)
    try:
        rows = await conn.fetch(
            "SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS comment FROM pg_roles r "
            "WHERE shobj_description(r.oid, 'pg_authid') LIKE $1 ORDER BY r.rolname",
            f"{ROLE_COMMENT};%",
        )
    finally:
        await conn.close()
    return [_parse_comment(row["rolname"], row["comment"]) for row in rows]


async def drop_role(settings: HearthSettings, name: str) -> AnalystRole:
    """Drop a role ``create_role`` made, with its policies and grants; ``NotFound`` for any other."""
    conn = await _superuser(settings)
    try:
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", name
        )
        if comment is None or not str(comment).startswith(ROLE_COMMENT + ";"):
            raise NotFound(f"no analyst role {name!r} (only roles made by `hearth db role create` are dropped here)")
        found = _parse_comment(name, str(comment))
        role, db = await _ident(conn, name), await _ident(conn, settings.postgres_db)
        async with conn.transaction():
            for table in READABLE_TABLES:
                await conn.execute(f"DROP POLICY IF EXISTS {policy_name(name)} ON {table}")
            await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            await conn.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
            await conn.execute(f"REVOKE CONNECT ON DATABASE {db} FROM {role}")
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()
    return found
