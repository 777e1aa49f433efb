"""``POST /v1/ocr`` through the gateway: real PP-OCRv4 in Triton on generated Chinese and English pages."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from shared.settings import HearthSettings
from tests.data.generate import default_samples
from tests.data.textmetrics import cer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

MIME = {"png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff"}


@pytest.fixture(scope="module")
def admin(stack: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}


def ocr(stack: HearthSettings, admin: dict[str, str], name: str, data: bytes, mime: str) -> httpx.Response:
    return httpx.post(f"{stack.gateway_url}/v1/ocr", headers=admin, files={"file": (name, data, mime)}, timeout=180)


def test_clean_chinese_and_english_pages_are_read(stack: HearthSettings, admin: dict[str, str]) -> None:
    for sample in default_samples():
        if sample.condition != "clean":
            continue
        resp = ocr(stack, admin, f"{sample.name}.{sample.format}", sample.data, MIME[sample.format])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model"] == "chinese_ocr_v3"
        lines = body["lines"]
        assert all(0 <= line["confidence"] <= 1 and len(line["polygon"]) == 4 for line in lines)
        error = cer(sample.lines, [line["text"] for line in lines])
        assert error <= 0.05, (sample.name, error, [line["text"] for line in lines])


def test_every_page_of_a_multi_page_tiff_is_read(stack: HearthSettings, admin: dict[str, str]) -> None:
    samples = [s for s in default_samples() if s.condition == "clean"][:2]
    frames = [Image.open(io.BytesIO(s.data)).convert("RGB") for s in samples]
    scan = io.BytesIO()
    frames[0].save(scan, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    resp = ocr(stack, admin, "scan.tiff", scan.getvalue(), "image/tiff")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [page["number"] for page in body["pages"]] == [1, 2]
    assert body["lines"] == body["pages"][0]["lines"]
    for sample, page in zip(samples, body["pages"], strict=True):
        assert (page["width"], page["height"]) == Image.open(io.BytesIO(sample.data)).size
        error = cer(sample.lines, [line["text"] for line in page["lines"]])
        assert error <= 0.05, (sample.name, error)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "empty"), (b"definitely not an image", "not a readable image")],
)
def test_bad_uploads_are_400_problems(stack: HearthSettings, admin: dict[str, str], data: bytes, fragment: str) -> None:
    resp = ocr(stack, admin, "upload.png", data, "image/png")
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert fragment in resp.json()["detail"]
