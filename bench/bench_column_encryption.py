"""Cost of column encryption on the gateway's document path: sealed columns and blind index against plaintext.

Against the running stack's real PostgreSQL and OpenBao (the gateway's AppRole), for N documents
of three pages (about 1 200 characters each, Chinese contract text) with their entities, each
mode in rounds alternated ABBA so drift hits both alike:

* **store**: what the gateway does when a run finishes — record the document (``create``: with
  encryption, a fresh data key from transit), index its pages (chunks sealed, terms hashed) and
  store the results (``mark_processed``: content sealed, entity terms hashed). Embeddings are left
  out (the same cost both ways, and it needs Triton): the index runs full text only.
* **read**: ``GET /v1/documents/{id}``'s store call (the content opened) and a search whose best
  chunk is opened for its snippet.

Per document p50 / p90 ms, and the ratio. Each mode writes to a tenant of its own (a search ranks
the same number of chunks in both), deleted afterwards. It prints figures, it asserts nothing.
Needs a running stack (``make up``)::

    python -m bench.bench_column_encryption --docs 40 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.documents.cipher import DocumentCipher
from services.gateway.documents.search import SearchFilters, SearchIndex
from services.gateway.documents.store import DocumentStore, NewDocument, PageSummary, Processed
from shared import segment
from shared.bus import Bus
from shared.clients import postgres_engine
from shared.crypto.columns import ColumnKeys
from shared.crypto.transit import TransitKeyring
from shared.documents import Entity
from shared.settings import load_settings

PAGE = (
    "第一条 甲方向乙方采购数控机床两台，合同总价款为人民币壹拾贰万元整。乙方应于签订后三十日内交付设备，"
    "并负责安装调试。第二条 本合同有效期自2024年3月1日起至2025年2月28日止。第三条 质量保证期为十二个月。\n"
) * 8


class _FullText(SearchIndex):
    """The index without embeddings: the same cost both ways, and the bench needs no Triton."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        return None


def _result(run_id: str) -> Processed:
    pages = [PageSummary(number=i, source="text_layer", text=PAGE[:1200]) for i in (1, 2, 3)]
    entities = {
        "parties": [
            Entity(
                field="parties",
                value="北京星河科技有限公司",
                normalized={"role": "party_a", "name": "北京星河科技"},
                confidence=0.9,
            )
        ],
        "valid_period": [
            Entity(
                field="valid_period",
                value="2024年3月1日起至2025年2月28日",
                normalized={"start": "2024-03-01", "end": "2025-02-28"},
                confidence=0.9,
            )
        ],
    }
    return Processed(
        run_id=run_id, text="\f".join(p.text for p in pages), pages=pages, entities=entities, provenance={}
    )


async def _round(
    engine: AsyncEngine,
    bus: Bus,
    cipher: DocumentCipher,
    tenant: str,
    docs: int,
    *,
    result: Callable[[str], Processed] = _result,
) -> tuple[list[float], list[float]]:
    store, index = DocumentStore(engine, cipher), _FullText(engine, bus, cipher=cipher)
    stored: list[float] = []
    read: list[float] = []
    ids = []
    for _ in range(docs):
        doc_id = str(uuid.uuid4())
        start = time.perf_counter()
        await store.create(
            NewDocument(
                id=doc_id, tenant=tenant, source_system="bench", workflow="document_processing", run_id=f"doc-{doc_id}"
            )
        )
        processed = result(f"doc-{doc_id}")
        processed.provenance["index"] = await index.index(doc_id, tenant, [p.text for p in processed.pages])
        await store.mark_processed(doc_id, tenant, processed)
        stored.append((time.perf_counter() - start) * 1000)
        ids.append(doc_id)
    for doc_id in ids:
        start = time.perf_counter()
        await store.get(doc_id, tenant=tenant)
        await index.search("数控机床 交付", SearchFilters(), tenant=tenant, levels=["public", "internal"], limit=1)
        read.append((time.perf_counter() - start) * 1000)
    return stored, read


async def delete_tenants(engine: AsyncEngine, tenants: Iterable[str]) -> None:
    """Remove what a bench wrote for its tenants: documents (and with them chunks) and index keys."""
    async with engine.begin() as conn:
        for tenant in tenants:
            await conn.execute(text("DELETE FROM raw_docs WHERE tenant = :t"), {"t": tenant})
            await conn.execute(text("DELETE FROM tenant_index_keys WHERE tenant = :t"), {"t": tenant})


def _line(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return f"{name:<8} p50 {statistics.median(ordered):7.2f} ms  p90 {ordered[int(len(ordered) * 0.9) - 1]:7.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=40, help="documents per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode (ABBA order)")
    args = parser.parse_args()
    settings = load_settings()
    await asyncio.to_thread(segment.ready)
    engine = postgres_engine(settings, pool_size=4)
    bus = await Bus.connect(settings, name="bench-columns")
    keys = ColumnKeys(engine, TransitKeyring.from_settings(settings, "gateway"))
    modes = {"plain": DocumentCipher(engine, None), "sealed": DocumentCipher(engine, keys)}
    run = uuid.uuid4().hex[:8]
    tenants = {name: f"bench-{run}-{name}" for name in modes}
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in modes}
    try:
        for name, cipher in modes.items():  # warm-up: the tenants' keys exist
            await _round(engine, bus, cipher, tenants[name], 2)
        for i in range(args.rounds * 2):
            name = ("plain", "sealed", "sealed", "plain")[i % 4]
            stored, read = await _round(engine, bus, modes[name], tenants[name], args.docs)
            results[name][0].extend(stored)
            results[name][1].extend(read)
        print(f"{args.docs} documents x {args.rounds} rounds per mode (3 pages of 1 200 characters, 2 entities)")
        for what, at in (("store", 0), ("read", 1)):
            print(what)
            for name in modes:
                print("  " + _line(name, results[name][at]))
            ratio = statistics.median(results["sealed"][at]) / statistics.median(results["plain"][at])
            print(f"  sealed / plain (p50): x{ratio:.3f}")
    finally:
        await delete_tenants(engine, tenants.values())
        await bus.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
