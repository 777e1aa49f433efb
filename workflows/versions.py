"""Definition versions in PostgreSQL: every change of a definition is kept, one is active.

``sync`` compares each definition read from ``workflows/*.yaml`` with the hash last read from
its file; a change adds version N+1 and makes it active. ``rollback`` makes an earlier version
active again without touching the file (the file wins again only when it changes). A run starts
on the active version unless it pins another; its snapshot is then fixed for its whole life.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.errors import NotFound
from shared.logging import get_logger
from workflows.definitions import Definition, Loaded, definition_from_snapshot, version_diff

log = get_logger(__name__)

_LOCK_KEY = 0x48_57_46_44  # "HWFD": one advisory lock serialises syncs across processes


@dataclass(frozen=True, slots=True)
class DefinitionVersion:
    name: str
    version: int
    hash: str
    definition: dict[str, Any]
    canonical: str
    file: str | None
    created_at: datetime

    def parsed(self) -> Definition:
        return definition_from_snapshot(self.definition)


def _row(row: Any) -> DefinitionVersion:
    definition = row.definition if isinstance(row.definition, dict) else json.loads(row.definition)
    return DefinitionVersion(
        name=row.name,
        version=row.version,
        hash=row.hash,
        definition=definition,
        canonical=row.canonical,
        file=row.file,
        created_at=row.created_at,
    )


_SELECT = "SELECT name, version, hash, definition, canonical, file, created_at FROM workflow_definitions"


class DefinitionStore:
    """Versions of every workflow definition (tables ``workflow_definitions``, ``workflow_heads``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def sync(self, loaded: Loaded) -> dict[str, int]:
        """Record the definitions read from files; returns name → active version."""
        active: dict[str, int] = {}
        async with self._engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            heads = {
                r.name: r
                for r in (await conn.execute(text("SELECT name, active_version, file_hash FROM workflow_heads"))).all()
            }
            for name, definition in loaded.definitions.items():
                head = heads.get(name)
                digest = definition.hash
                if head is not None and head.file_hash == digest:
                    active[name] = head.active_version
                    continue
                version = await self._add_version(conn, definition, loaded.files.get(name))
                await conn.execute(
                    text(
                        "INSERT INTO workflow_heads (name, active_version, file_hash, updated_by) "
                        "VALUES (:n, :v, :h, 'file') ON CONFLICT (name) DO UPDATE SET "
                        "active_version = :v, file_hash = :h, updated_at = now(), updated_by = 'file'"
                    ),
                    {"n": name, "v": version, "h": digest},
                )
                log.info("workflow definition version added", workflow=name, version=version, hash=digest[:12])
                active[name] = version
            for name, head in heads.items():
                active.setdefault(name, head.active_version)
        return active

    async def _add_version(self, conn: AsyncConnection, definition: Definition, file: str | None) -> int:
        latest = (
            await conn.execute(
                text("SELECT coalesce(max(version), 0) FROM workflow_definitions WHERE name = :n"),
                {"n": definition.name},
            )
        ).scalar_one()
        version = int(latest) + 1
        await conn.execute(
            text(
                "INSERT INTO workflow_definitions (name, version, hash, definition, canonical, file) "
                "VALUES (:n, :v, :h, CAST(:d AS jsonb), :c, :f)"
            ),
            {
                "n": definition.name,
                "v": version,
                "h": definition.hash,
                "d": json.dumps(definition.snapshot()),
                "c": definition.canonical_yaml(),
                "f": file,
            },
        )
        return version

    async def names(self) -> dict[str, int]:
        """Every known definition → its active version."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text("SELECT name, active_version FROM workflow_heads ORDER BY name"))).all()
        return {r.name: r.active_version for r in rows}

    async def get(self, name: str, version: int | None = None) -> DefinitionVersion:
        """A version (the active one by default); ``NotFound`` naming what exists."""
        async with self._engine.connect() as conn:
            if version is None:
                row = (
                    await conn.execute(
                        text(
                            f"{_SELECT} d WHERE (name, version) = "  # noqa: S608 - constant column list
                            "(SELECT name, active_version FROM workflow_heads WHERE name = :n)"
                        ),
                        {"n": name},
                    )
                ).first()
            else:
                row = (
                    await conn.execute(text(f"{_SELECT} WHERE name = :n AND version = :v"), {"n": name, "v": version})
                ).first()
        if row is None:
            if version is None:
                raise NotFound(f"no workflow definition {name!r}", code="unknown-workflow")
            raise NotFound(f"workflow {name!r} has no version {version}", code="unknown-workflow-version")
        return _row(row)

    async def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version, newest first, with its diff against the one before."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(f"{_SELECT} WHERE name = :n ORDER BY version"), {"n": name})).all()
            head = (
                await conn.execute(
                    text("SELECT active_version, updated_at, updated_by FROM workflow_heads WHERE name = :n"),
                    {"n": name},
                )
            ).first()
        if not rows or head is None:
            raise NotFound(f"no workflow definition {name!r}", code="unknown-workflow")
        out: list[dict[str, Any]] = []
        previous: str | None = None
        for row in rows:
            out.append(
                {
                    "version": row.version,
                    "hash": row.hash,
                    "created_at": row.created_at,
                    "file": row.file,
                    "active": row.version == head.active_version,
                    "diff": version_diff(
                        previous, row.canonical, old_label=f"v{row.version - 1}", new_label=f"v{row.version}"
                    ),
                }
            )
            previous = row.canonical
        out.reverse()
        return out

    async def rollback(self, name: str, version: int, by: str | None = None) -> DefinitionVersion:
        """Make ``version`` the active one; new runs start on it."""
        target = await self.get(name, version)
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE workflow_heads SET active_version = :v, updated_at = now(), updated_by = :by "
                    "WHERE name = :n"
                ),
                {"n": name, "v": version, "by": f"rollback by {by}" if by else "rollback"},
            )
        log.info("workflow definition rolled back", workflow=name, version=version, by=by)
        return target
