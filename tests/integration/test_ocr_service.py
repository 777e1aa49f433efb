"""``ocr.extract`` on the real stack: PDFs (text layer or scans), images, TIFF pages, orientation, bad input.

Called over NATS (``hearth.svc.ocr.extract``) as other services and workflows do; OCR runs in
Triton (``chinese_ocr_v3``) through the gateway. Pages come from ``tests/data/generate.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image

from shared.blobstore import BlobRef, BlobStore
from shared.bus import Bus
from shared.documents import ExtractedDocument
from shared.settings import HearthSettings
from tests.data.generate import Sample, default_samples, font_path
from tests.data.textmetrics import cer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
async def bus(stack: HearthSettings) -> AsyncIterator[Bus]:
    async with await Bus.connect(stack, name="test-ocr-service") as connected:
        yield connected


@pytest.fixture(scope="module")
async def blobs(bus: Bus) -> BlobStore:
    return await BlobStore.create(bus.js, bus.settings)


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.name: s for s in default_samples() if s.condition == "clean"}


async def extract(bus: Bus, blobs: BlobStore, data: bytes, filename: str, **params: Any) -> dict[str, Any]:
    ref = await blobs.put(data, "application/octet-stream")
    request = {"document": {"blob": ref.model_dump(mode="json"), "filename": filename}, **params}
    reply = await bus.request("hearth.svc.ocr.extract", json.dumps(request).encode(), timeout=240)
    body: dict[str, Any] = json.loads(reply.data)
    return body


async def extracted(bus: Bus, blobs: BlobStore, body: dict[str, Any]) -> ExtractedDocument:
    assert body["ok"], body
    return ExtractedDocument.model_validate_json(await blobs.get(BlobRef.model_validate(body["result"]["result"])))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def text_pdf(pages: list[list[str]]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.add_font("noto", fname=str(font_path()))
    pdf.set_font("noto", size=13)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 9, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def scanned_pdf(images: list[Image.Image], text_first: list[str] | None = None) -> bytes:
    pdf = FPDF(format="A4")
    if text_first:
        pdf.add_font("noto", fname=str(font_path()))
        pdf.set_font("noto", size=13)
        pdf.add_page()
        for line in text_first:
            pdf.cell(0, 9, line, new_x="LMARGIN", new_y="NEXT")
    for image in images:
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=190)
    return bytes(pdf.output())


def page_image(sample: Sample) -> Image.Image:
    return Image.open(io.BytesIO(sample.data)).convert("RGB")


# ---- what is read, and how ----------------------------------------------------------------------


async def test_a_pdf_text_layer_is_used_and_a_scanned_page_is_ocrd(
    bus: Bus, blobs: BlobStore, samples: dict[str, Sample]
) -> None:
    scan = samples["zh_contract"]
    lines = ["采购合同", "合同编号：HT-2024-0012", "甲方：北京星河科技有限公司", "This agreement takes effect now."]
    data = scanned_pdf([page_image(scan)], text_first=lines)
    body = await extract(bus, blobs, data, "contract.pdf", output_format="text")
    result = body["result"]
    assert (result["page_count"], result["pages_read"]) == (2, 2)
    assert result["sources"] == {"text_layer": 1, "ocr": 1}
    assert result["model"] == "chinese_ocr_v3"
    assert result["model_version"] == "1"
    document = await extracted(bus, blobs, body)
    first, second = document.pages
    assert first.source == "text_layer"
    assert first.text.split("\n") == lines
    assert all(line.confidence == 1.0 for line in first.lines)
    assert second.source == "ocr"
    assert cer(scan.lines, second.text.split("\n")) <= 0.05, second.text
    assert result["content"] == document.text == first.text + "\f" + second.text


async def test_every_page_of_a_tiff_is_read_in_order(bus: Bus, blobs: BlobStore, samples: dict[str, Sample]) -> None:
    pages = [samples["zh_contract"], samples["en_notice"], samples["mixed_memo"]]
    images = [page_image(s) for s in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate")
    body = await extract(bus, blobs, buffer.getvalue(), "scan.tiff", concurrency=3)
    document = await extracted(bus, blobs, body)
    assert [p.number for p in document.pages] == [1, 2, 3]
    for page, sample in zip(document.pages, pages, strict=True):
        assert page.source == "ocr"
        assert cer(sample.lines, page.text.split("\n")) <= 0.05, (sample.name, page.text)
        assert [line.order for line in page.lines] == list(range(len(page.lines)))


@pytest.mark.parametrize("turn", [90, 180, 270])
async def test_a_page_scanned_turned_is_turned_back(
    bus: Bus, blobs: BlobStore, samples: dict[str, Sample], turn: int
) -> None:
    sample = samples["zh_contract"]
    turned = page_image(sample).rotate(turn, expand=True, fillcolor=(255, 255, 255))
    body = await extract(bus, blobs, png(turned), "turned.png")
    (page,) = (await extracted(bus, blobs, body)).pages
    assert page.rotation in ((360 - turn) % 360, turn)  # turned back, whichever way round it was read
    assert cer(sample.lines, page.text.split("\n")) <= 0.05, page.text


async def test_a_skewed_page_is_deskewed_and_read_in_order(
    bus: Bus, blobs: BlobStore, samples: dict[str, Sample]
) -> None:
    sample = samples["en_notice"]
    skewed = page_image(sample).rotate(4, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    body = await extract(bus, blobs, png(skewed), "skewed.png")
    (page,) = (await extracted(bus, blobs, body)).pages
    assert abs(page.skew) >= 2.0, page.skew
    assert cer(sample.lines, page.text.split("\n")) <= 0.05, page.text


async def test_markdown_has_page_markers_and_paragraphs(bus: Bus, blobs: BlobStore) -> None:
    data = text_pdf([["第一页标题", "正文第一行"], ["Second page", "More text"]])
    body = await extract(bus, blobs, data, "two.pdf", output_format="markdown")
    content = body["result"]["content"]
    assert content.startswith("<!-- page 1 -->")
    assert "<!-- page 2 -->" in content
    assert "Second page" in content
    assert body["result"]["format"] == "markdown"


async def test_a_long_pdf_is_read_whole_and_max_pages_is_reported(bus: Bus, blobs: BlobStore) -> None:
    data = text_pdf([[f"Page {n} of the annual report", "Revenue grew by ten percent."] for n in range(1, 501)])
    body = await extract(bus, blobs, data, "long.pdf", output_format="text")
    assert body["ok"], body
    assert (body["result"]["page_count"], body["result"]["pages_read"]) == (500, 500)
    limited = await extract(bus, blobs, data, "long.pdf", max_pages=20)
    assert limited["result"]["pages_read"] == 20
    assert any("500 pages" in w and "20" in w for w in limited["result"]["warnings"]), limited["result"]["warnings"]


# ---- bad input: a clear reason, never a crash ---------------------------------------------------


async def test_an_encrypted_pdf_is_refused_with_the_reason(bus: Bus, blobs: BlobStore) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "confidential")
    pdf.set_encryption(owner_password="owner", user_password="user")
    body = await extract(bus, blobs, bytes(pdf.output()), "locked.pdf")
    assert not body["ok"]
    assert body["error"]["code"] == "invalid-input"
    assert "encrypted" in body["error"]["detail"]
    assert body["error"]["retryable"] is False


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"%PDF-1.7\n1 0 obj garbage", "broken.pdf", "the PDF cannot be read"),
        (bytes(range(256)) * 8, "photo.png", "the file is not a PNG file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "cut.png", "the image cannot be read"),
    ],
)
async def test_corrupt_or_mislabelled_files_are_refused(
    bus: Bus, blobs: BlobStore, data: bytes, filename: str, reason: str
) -> None:
    body = await extract(bus, blobs, data, filename)
    assert not body["ok"]
    assert body["error"]["code"] == "invalid-input"
    assert reason in body["error"]["detail"], body["error"]


async def test_a_file_that_is_not_what_its_name_says_is_read_as_what_it_is(
    bus: Bus, blobs: BlobStore, samples: dict[str, Sample]
) -> None:
    sample = samples["en_notice"]
    body = await extract(bus, blobs, sample.data, "notice.pdf")
    assert body["ok"], body
    assert any("says it is PDF" in w and sample.format.upper() in w for w in body["result"]["warnings"])
    assert cer(sample.lines, body["result"]["content"].split("\n")) <= 0.05


async def test_a_huge_image_gets_a_warning_not_a_crash(bus: Bus, blobs: BlobStore) -> None:
    huge = Image.new("L", (20_000, 20_000), 255)
    body = await extract(bus, blobs, png(huge), "poster.png")
    assert body["ok"], body
    assert body["result"]["chars"] == 0
    assert any("20000x20000" in w for w in body["result"]["warnings"]), body["result"]["warnings"]


async def test_an_empty_blob_is_refused(bus: Bus, blobs: BlobStore) -> None:
    ref = await blobs.put(b"", "application/pdf")
    request = {"document": {"blob": ref.model_dump(mode="json"), "filename": "empty.pdf"}}
    reply = await bus.request("hearth.svc.ocr.extract", json.dumps(request).encode(), timeout=30)
    body = json.loads(reply.data)
    assert not body["ok"]
    assert "empty" in body["error"]["detail"]
