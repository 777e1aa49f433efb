"""Documents for the tests to submit through the gateway, and waiting for their results."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fpdf import FPDF

from tests.data.generate import font_path


def text_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF with ``lines`` in its text layer (Noto, so Chinese text renders)."""
    pdf = FPDF(format="A4")
    pdf.add_font("noto", fname=str(font_path()))
    pdf.set_font("noto", size=12)
    pdf.add_page()
    for line in lines:
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


async def processed(
    http: httpx.AsyncClient, doc_id: str, timeout: float = 400.0, *, succeeded: bool = False
) -> dict[str, Any]:
    """``GET /v1/documents/{doc_id}`` once it is no longer ``processing`` (with ``succeeded``: ``processed``)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await http.get(f"/v1/documents/{doc_id}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] != "processing":
            if succeeded:
                assert body["status"] == "processed", body
            return body
        assert time.monotonic() < deadline, f"document {doc_id} still processing after {timeout:.0f}s: {body}"
        await asyncio.sleep(0.5)
