"""``/v1/ocr`` splits a multi-page TIFF into its pages; anything else goes to the model as sent."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.gateway.inference.ocr import split_pages
from shared.errors import BadRequest, TooLarge

pytestmark = pytest.mark.unit


def tiff(pages: int, size: tuple[int, int] = (64, 32)) -> bytes:
    frames = [Image.new("RGB", size, (255, 255 - 40 * i, 255)) for i in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_a_multi_page_tiff_becomes_one_png_per_page_in_order() -> None:
    pages = split_pages(tiff(3))
    assert len(pages) == 3
    colours = []
    for page in pages:
        with Image.open(io.BytesIO(page)) as image:
            assert image.format == "PNG"
            assert image.size == (64, 32)
            colours.append(image.getpixel((0, 0)))
    assert colours == [(255, 255, 255), (255, 215, 255), (255, 175, 255)]


def test_single_page_files_pass_through_untouched() -> None:
    one = tiff(1)
    assert split_pages(one) == [one]
    png = io.BytesIO()
    Image.new("L", (8, 8)).save(png, format="PNG")
    assert split_pages(png.getvalue()) == [png.getvalue()]


def test_too_many_pages_is_413_with_the_count() -> None:
    with pytest.raises(TooLarge, match="has 4 pages"):
        split_pages(tiff(4), max_pages=3)


def test_a_truncated_tiff_is_a_400() -> None:
    with pytest.raises(BadRequest, match="not a readable image"):
        split_pages(tiff(2)[:40])
