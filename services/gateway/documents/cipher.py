"""A document's data key (``raw_docs.data_key``) and the sealing of its columns (``shared.crypto.columns``).

One data key per document, under the tenant's transit key, made when the document is recorded
(or, for one recorded before column encryption, when it is first processed). Its inline text,
its processed content (text, pages, entities) and every chunk of it are sealed under that key,
each bound to the document id and its column.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.crypto.columns import ColumnKeys, KeyHeader, TermHasher, open_json, open_value, seal_json, seal_value
from shared.errors import PermanentFailure

PROCESSED: Final = "processed_docs.sealed"
INLINE: Final = "raw_docs.inline_sealed"


def chunk_column(chunk_no: int) -> str:
    """The associated-data column name of chunk ``chunk_no`` (so chunks cannot be swapped either)."""
    return f"doc_chunks.sealed/{chunk_no}"


class DocumentCipher:
    """Seals and opens the content columns of documents; ``keys.enabled`` False: plaintext as before."""

    def __init__(self, engine: AsyncEngine, keys: ColumnKeys | None) -> None:
        self._engine = engine
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return self.keys is not None and self.keys.enabled

    async def new_key(self, tenant: str) -> tuple[str, bytes] | None:
        """(stored header, key) for a new document; ``None`` when encryption is off."""
        if self.keys is None or not self.keys.enabled:
            return None
        header, key = await self.keys.new_row_key(tenant)
        return header.to_json(), key

    async def key_for(self, doc_id: str, tenant: str) -> bytes | None:
        """The document's data key, made now if it has none yet; ``None`` when encryption is off."""
        if self.keys is None or not self.keys.enabled:
            return None
        stored = await self._stored(doc_id)
        if stored is None:
            header, _ = await self.keys.new_row_key(tenant)
            async with self._engine.begin() as conn:
                await conn.execute(
                    text("UPDATE raw_docs SET data_key = :k WHERE id = :id AND data_key IS NULL"),
                    {"k": header.to_json(), "id": doc_id},
                )
            stored = await self._stored(doc_id)  # the one that won, if two made one at once
            if stored is None:
                raise LookupError(f"document {doc_id!r} is not recorded")
        return await self.key_of(stored)

    async def key_of(self, stored: str) -> bytes:
        """The plaintext key of a stored ``data_key``."""
        if self.keys is None:
            raise PermanentFailure("this document is sealed and this process has no keyring", code="encryption-off")
        return await self.keys.row_key(KeyHeader.from_json(stored))

    async def hasher(self, tenant: str) -> TermHasher:
        return await self.keys.hasher(tenant) if self.keys is not None else TermHasher(None)

    async def hashers(self, tenant: str | None) -> list[TermHasher]:
        """The hashers a query of ``tenant`` needs (``None``: an admin's, over every tenant)."""
        if self.keys is None:
            return [TermHasher(None)]
        return [await self.keys.hasher(tenant)] if tenant is not None else await self.keys.hashers()

    @staticmethod
    def seal_json(key: bytes, doc_id: str, column: str, value: Any) -> bytes:
        return seal_json(key, doc_id, column, value)

    @staticmethod
    def seal_text(key: bytes, doc_id: str, column: str, value: str) -> bytes:
        return seal_value(key, doc_id, column, value.encode())

    async def open_json(self, stored_key: str, doc_id: str, column: str, sealed: bytes) -> Any:
        return open_json(await self.key_of(stored_key), doc_id, column, sealed)

    async def open_chunks(self, rows: Iterable[dict[str, Any]]) -> None:
        """Fill ``text`` of chunk rows (``doc_id``, ``chunk_no``, ``data_key``, ``sealed``) that are sealed."""
        todo = [r for r in rows if r.get("sealed") is not None and not r.get("_opened")]
        stored = list(dict.fromkeys(r["data_key"] for r in todo))
        keys = dict(zip(stored, await asyncio.gather(*(self.key_of(k) for k in stored)), strict=True))
        for row in todo:
            row["text"] = open_value(
                keys[row["data_key"]], row["doc_id"], chunk_column(row["chunk_no"]), bytes(row["sealed"])
            ).decode()
            row["_opened"] = True

    async def _stored(self, doc_id: str) -> str | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(text("SELECT data_key FROM raw_docs WHERE id = :id"), {"id": doc_id})
            ).scalar_one_or_none()
        return str(value) if value is not None else None


def entity_terms(hasher: TermHasher, entities: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The blind-index terms of a document's entities: one per string value of each ``normalized``."""
    found = {
        hasher.entity(field, key, value)
        for field, values in entities.items()
        for entity in values
        for key, value in (entity.get("normalized") or {}).items()
        if isinstance(value, str)
    }
    return sorted(found)


def valid_periods(entities: dict[str, list[dict[str, Any]]]) -> str:
    """The ``valid_period`` entities as a ``daterange[]`` literal (inclusive both ends)."""
    ranges = []
    for entity in entities.get("valid_period", []):
        normalized = entity.get("normalized") or {}
        start, end = normalized.get("start"), normalized.get("end")
        if isinstance(start, str) and isinstance(end, str) and _is_date(start) and _is_date(end) and start <= end:
            ranges.append(f'"[{start},{end}]"')
    return "{" + ",".join(ranges) + "}"


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
