"""Row-level security: the tenant a database transaction may see.

Tenant-owned tables (``TENANT_TABLES``) have PostgreSQL row-level security forced on, for the
service role too (migration 0013): a row is visible only when the transaction's ``hearth.tenant``
setting is its tenant, ``*``, or unset. The gateway's guard puts the verified key's tenant (``*``
for a platform admin) in a context variable for the request, and ``apply_row_security`` makes
every transaction begun under it set ``hearth.tenant`` first (``set_config(..., true)``:
transaction-local, so a pooled connection never carries it to the next user). A query on the
request path that forgets its ``WHERE tenant = …`` then still returns only the caller's rows.

Work that is not a request (event consumers, workflow activities, the write-behind loops) runs
with the setting unset and sees every tenant: those paths choose their tenant from the data they
process. The protection is against a query bug on the request path, not against code that runs
as the service role on purpose; analysts' roles (``shared.db.roles``) get policies of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

TENANT_SETTING: Final = "hearth.tenant"
ALL_TENANTS: Final = "*"
TENANT_TABLES: Final = (
    "api_keys",
    "workflow_records",
    "raw_docs",
    "processed_docs",
    "doc_chunks",
    "doc_corrections",
    "doc_label_model",
)
"""Tables whose rows belong to one tenant (a ``tenant`` column) and are under row-level security.

``audit_log`` is not among them: it is one hash chain across tenants, and a writer on a tenant's
request must see the chain's head whichever tenant wrote it.
"""

_tenant: ContextVar[str | None] = ContextVar("hearth_db_tenant", default=None)


def set_request_tenant(tenant: str) -> None:
    """Scope the current request's transactions to ``tenant`` (``ALL_TENANTS`` for a platform admin)."""
    _tenant.set(tenant)


def request_tenant() -> str | None:
    """The tenant transactions are scoped to here, or None (not a request: every tenant)."""
    return _tenant.get()


@contextmanager
def tenant_context(tenant: str | None) -> Iterator[None]:
    """Run a block with transactions scoped to ``tenant`` (None: unscoped)."""
    token = _tenant.set(tenant)
    try:
        yield
    finally:
        _tenant.reset(token)


def _scope_transaction(conn: Connection) -> None:
    tenant = _tenant.get()
    if tenant is not None:
        conn.exec_driver_sql(f"SELECT set_config('{TENANT_SETTING}', $1, true)", (tenant,))


def apply_row_security(engine: AsyncEngine) -> None:
    """Make every transaction of ``engine`` begun inside a request scope itself to its tenant."""
    if not event.contains(engine.sync_engine, "begin", _scope_transaction):
        event.listen(engine.sync_engine, "begin", _scope_transaction)
