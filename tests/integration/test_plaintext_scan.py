"""No document text on disk in plaintext: a stack of its own, documents carrying a random marker,
then every file of its state dir (PostgreSQL, JetStream, Temporal, OpenBao, blobs, logs) is
searched for the marker.

The marker must come back through the API first (the document, search, the extracted entities),
so the scan cannot pass because the text never got in; and a control value stored in the clear
by design (the documents' source system) must be found by both scans, so neither can pass
because it did not look. Beside the byte scan of the files, every
row of every table is searched through SQL while the stack runs: PostgreSQL compresses large
values (TOAST), which a byte scan of its files would not see through.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from shared.launcher.components import postgres_socket_dir
from shared.settings import HearthSettings
from tests.data.generate import font_path
from tests.integration.conftest import TEST_PORT_OFFSET, hearth_cli, stack_env, stack_settings
from tests.integration.documents import processed, text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

# Its own stack beside the suite's (ports checked against the suite's and the restore test's).
SCAN_OFFSET = TEST_PORT_OFFSET + 450
# Letters the OCR model does not confuse with digits or each other (no I, L, O, Q, S, Z).
_LETTERS = "ABCDEFGHJKMNPRTUVWXY"
_CHUNK = 1 << 20


def marker() -> str:
    return "ZXK" + "".join(secrets.choice(_LETTERS) for _ in range(12))


def contract_lines(mark: str) -> list[str]:
    return [
        "设备采购合同",
        "合同编号：CG-2024-0315",
        f"甲方（买方）：{mark}科技有限公司",
        "乙方（卖方）：上海远航机械制造有限公司",
        f"第一条 甲方向乙方采购数控机床两台，项目代号 {mark}，合同总价款为人民币壹拾贰万元整（¥120,000.00）。",
        "第二条 本合同有效期自2024年3月1日起至2025年2月28日止。",
        "签订日期：2024年2月20日",
    ]


def scan_png(lines: list[str]) -> bytes:
    image = Image.new("L", (1400, 100 + 70 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(font_path()), 36)
    for i, line in enumerate(lines):
        draw.text((60, 50 + 70 * i), line, font=font, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack_environment() -> Iterator[dict[str, str]]:
    """A fresh stack for this module alone: its state dir holds only what this test put there."""
    if os.environ.get("HEARTH_TEST_STACK") == "external":
        pytest.skip("the plaintext scan needs a state dir of its own")
    home = Path(tempfile.mkdtemp(prefix="hearth-test-scan-"))
    env = stack_env(home, SCAN_OFFSET)
    result = hearth_cli(env, "up", timeout=400, check=False)
    if result.returncode != 0:
        hearth_cli(env, "down", check=False)
        pytest.fail(f"scan stack did not start (state in {home}):\n{result.stdout}\n{result.stderr}", pytrace=False)
    try:
        yield env
    finally:
        hearth_cli(env, "down", timeout=180, check=False)
        if not os.environ.get("HEARTH_TEST_KEEP_STACK"):
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(stack_environment: dict[str, str]) -> HearthSettings:
    return stack_settings(stack_environment)


async def _rows_holding(settings: HearthSettings, marks: list[str]) -> list[str]:
    """``schema.table: n rows`` for every table with a row whose text (or bytes) holds a marker."""
    found: list[str] = []
    for database in ("postgres", settings.postgres_db):
        conn = await asyncpg.connect(
            host=str(postgres_socket_dir(settings)),
            port=settings.postgres_server_port,
            user="postgres",
            database=database,
        )
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            for table in tables:
                name = f'"{table["table_schema"]}"."{table["table_name"]}"'
                for mark in marks:
                    # A row as text has its bytea columns in hex: search those for the marker's bytes too.
                    hex_mark = mark.encode().hex()
                    count = await conn.fetchval(
                        f"SELECT count(*) FROM {name} x WHERE x::text ILIKE $1 OR x::text ILIKE $2",  # noqa: S608 - catalog names
                        f"%{mark}%",
                        f"%{hex_mark}%",
                    )
                    if count:
                        found.append(f"{database}.{name}: {count} rows hold {mark}")
        finally:
            await conn.close()
    return found


def _files_holding(root: Path, marks: list[str]) -> list[str]:
    """Paths (relative to ``root``) of the files whose bytes hold a marker, as written or lower-cased."""
    needles = [n for m in marks for n in (m.encode(), m.lower().encode(), m.encode("utf-16-le"))]
    overlap = max(len(n) for n in needles)
    hits: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            with path.open("rb") as handle:
                tail = b""
                while block := handle.read(_CHUNK):
                    window = tail + block
                    if any(n in window for n in needles):
                        hits.append(str(path.relative_to(root)))
                        break
                    tail = window[-overlap:]
        except PermissionError:
            hits.append(f"{path.relative_to(root)} (unreadable: not scanned)")
    return hits


async def test_no_document_text_reaches_the_disk_in_plaintext(
    stack_environment: dict[str, str], stack: HearthSettings
) -> None:
    pdf_mark, png_mark, inline_mark = marker(), marker(), marker()
    control = f"scan-{secrets.token_hex(6)}"
    headers = {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as http:
        pdf = await http.post(
            "/v1/documents",
            files={"file": ("contract.pdf", text_pdf(contract_lines(pdf_mark)), "application/pdf")},
            data={"source_system": control, "workflow": "contract_analysis"},
        )
        png = await http.post(
            "/v1/documents",
            files={"file": ("scan.png", scan_png(["设备采购合同", f"项目代号 {png_mark}", "签订日期：2024年2月20日"]))},
            data={"source_system": control},
        )
        inline = await http.post(
            "/v1/documents", json={"text": f"备忘录\n内联文本 {inline_mark} 的内容。", "source_system": control}
        )
        for resp in (pdf, png, inline):
            assert resp.status_code == 202, resp.text
        docs = {
            mark: await processed(http, resp.json()["id"], succeeded=True)
            for mark, resp in ((pdf_mark, pdf), (png_mark, png), (inline_mark, inline))
        }
        # The text did get in: read back decrypted, found by the blind index, in the entities.
        for mark, doc in docs.items():
            assert mark in doc["text"], (mark, doc["text"])
            assert any(mark in page["text"] for page in doc["pages"])
            found = (await http.get("/v1/search", params={"q": mark})).json()
            assert [h["document_id"] for h in found["hits"]][:1] == [doc["id"]], found
            assert f"<mark>{mark}</mark>" in found["hits"][0]["snippet"], found["hits"][0]
        parties = [e["value"] for e in docs[pdf_mark]["entities"].get("parties", [])]
        assert any(pdf_mark in value for value in parties), docs[pdf_mark]["entities"]
        # The classifier learns from a correction: its terms are stored too.
        corrected = await http.patch(f"/v1/documents/{docs[pdf_mark]['id']}", json={"class": "invoice"})
        assert corrected.status_code == 200, corrected.text
        assert pdf_mark in corrected.json()["text"]
        answer = (await http.post("/v1/ask", json={"question": f"{pdf_mark} 合同的甲方是谁？"})).json()
        assert answer["citations"], answer

    marks = list(docs)
    leaked_rows = await _rows_holding(stack, marks)
    assert await _rows_holding(stack, [control]), "the row scan does not see what is in the clear"
    # Everything on disk: a clean stop checkpoints PostgreSQL and flushes JetStream and SQLite.
    hearth_cli(stack_environment, "down", timeout=180)
    home = Path(stack_environment["HEARTH_HOME"])
    leaked_files = _files_holding(home, marks)
    seen = _files_holding(home, [control])
    assert any(p.startswith("data/postgres/") for p in seen), f"the file scan does not see PostgreSQL's files: {seen}"
    assert any(p.startswith("data/nats/") for p in seen), f"the file scan does not see JetStream's files: {seen}"
    leaks = leaked_rows + leaked_files
    assert not leaks, "document text in plaintext:\n" + "\n".join(leaks) + f"\n(markers {marks})"
