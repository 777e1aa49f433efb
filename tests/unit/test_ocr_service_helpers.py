"""Pure parts of the OCR service: file sniffing, line geometry, reading order, markdown, page prep."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.ocr.layout import (
    RawLine,
    estimate_skew,
    group_rects,
    looks_sideways,
    page_markdown,
    reading_order,
    upside_down,
)
from services.ocr.pages import MODEL_LONG_SIDE, dpi_for, encode_for_transport, fit_for_model, usable_text
from services.ocr.sniff import claimed_kind, sniff
from shared.documents import Page
from shared.errors import InvalidInput

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def line(text: str, x0: float, y0: float, x1: float, y1: float, *, angle: int = 0) -> RawLine:
    return RawLine(text=text, box=box(x0, y0, x1, y1), confidence=0.9, angle=angle)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n", "pdf"),
        (b"\xef\xbb\xbf%PDF-1.4", "pdf"),
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        ("合同编号：HT-1\n甲方".encode(), "text"),
        (bytes(range(256)), None),
        (b"", None),
    ],
)
def test_files_are_known_by_their_bytes(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


def test_a_multibyte_character_cut_at_the_sample_end_is_still_text() -> None:
    sample = ("合同" * 2000).encode()[:4095]
    assert sniff(sample) == "text"


def test_what_a_file_claims_comes_from_its_name_then_its_media_type() -> None:
    assert claimed_kind("Scan.TIF", None) == "tiff"
    assert claimed_kind("x.jpg", "application/pdf") == "jpeg"
    assert claimed_kind(None, "image/jpg") == "jpeg"
    assert claimed_kind("notes", "text/plain; charset=utf-8") == "text"
    assert claimed_kind("blob.bin", "application/octet-stream") is None


def test_reading_order_is_rows_top_to_bottom_then_left_to_right() -> None:
    lines = [
        line("right", 300, 12, 400, 32),
        line("second row", 10, 60, 200, 80),
        line("left", 10, 10, 100, 30),
    ]
    ordered = reading_order(lines)
    assert [(x.text, x.order) for x in ordered] == [("left", 0), ("right", 1), ("second row", 2)]


def test_skew_is_the_median_line_angle_and_reading_order_rotates_it_out() -> None:
    # Lines leaning 5 degrees: each line's right end is lower; row 2's left end is above row 1's right end.
    import math

    slope = math.tan(math.radians(5))

    def leaning(text: str, y: float) -> RawLine:
        return RawLine(
            text=text,
            box=[[0, y], [600, y + 600 * slope], [600, y + 600 * slope + 20], [0, y + 20]],
            confidence=0.9,
        )

    lines = [leaning("first line of text", 0), leaning("second line of text", 40)]
    assert estimate_skew(lines) == pytest.approx(5.0, abs=0.05)
    assert [x.text for x in reading_order(lines, skew=5.0)] == ["first line of text", "second line of text"]


def test_sideways_and_upside_down_pages_are_recognised() -> None:
    tall = [line("竖排文字一", 10, 10, 40, 300), line("竖排文字二", 60, 10, 90, 300)]
    wide = [line("horizontal text", 10, 10, 300, 40)]
    assert looks_sideways(tall)
    assert not looks_sideways(wide)
    assert not looks_sideways([])
    turned = [line("upside down one", 0, 0, 300, 30, angle=180), line("upside down two", 0, 50, 300, 80, angle=180)]
    assert upside_down(turned)
    assert not upside_down(turned[:1])  # one line says little
    assert not upside_down([*turned[:1], line("this one is upright and much longer", 0, 90, 300, 120)])


def test_text_layer_runs_on_one_line_are_joined() -> None:
    rects = [
        ("Payment", box(10, 10, 60, 22)),
        ("is due", box(64, 10, 100, 22)),
        ("甲方：", box(10, 40, 40, 52)),
        ("北京星河科技有限公司", box(40, 40, 160, 52)),
    ]
    joined = group_rects(rects)
    assert [x.text for x in joined] == ["Payment is due", "甲方：北京星河科技有限公司"]
    assert joined[0].box == [[10, 10], [100, 10], [100, 22], [10, 22]]


def test_markdown_turns_tall_lines_into_headings_and_gaps_into_paragraphs() -> None:
    lines = reading_order(
        [
            line("采购合同", 100, 10, 300, 60),
            line("第一条 甲方向乙方采购", 10, 80, 400, 100),
            line("数控机床两台。", 10, 104, 200, 124),
            line("第二条 有效期一年。", 10, 170, 300, 190),
        ]
    )
    page = Page(number=1, source="ocr", width=500, height=300, text="", lines=lines)
    assert page_markdown(page) == "## 采购合同\n\n第一条 甲方向乙方采购数控机床两台。\n\n第二条 有效期一年。"


def test_a_text_layer_is_used_only_when_it_holds_real_text() -> None:
    assert usable_text("本合同自双方签字盖章之日起生效，一式两份。")
    assert not usable_text("  \n 12 \n")
    assert not usable_text("\ufffd" * 30 + "abc")


def test_pages_are_rasterised_for_the_detectors_working_size() -> None:
    assert dpi_for(595, 842, None) == int(MODEL_LONG_SIDE * 72 / 842)  # A4 portrait
    assert dpi_for(595, 842, 300) == 300
    assert dpi_for(30, 40, None) == 300  # a tiny page is capped, not rendered at thousands of DPI


def test_page_images_are_8_bit_and_fit_the_model() -> None:
    rgba = Image.new("RGBA", (5000, 1000), (0, 0, 0, 0))
    fitted, scale = fit_for_model(rgba)
    assert fitted.mode == "RGB"
    assert max(fitted.size) == MODEL_LONG_SIDE
    assert scale == pytest.approx(MODEL_LONG_SIDE / 5000)
    assert fitted.getpixel((0, 0)) == (255, 255, 255)  # transparent paper is white, not black
    sixteen = Image.new("I;16", (100, 50), 65535)
    assert fit_for_model(sixteen)[0].mode == "L"


def test_a_page_too_big_for_the_bus_goes_as_jpeg_or_is_refused() -> None:
    noisy = Image.effect_noise((1000, 1000), 120).convert("L")
    as_png = encode_for_transport(noisy, 10_000_000)
    assert as_png.startswith(b"\x89PNG")
    small = encode_for_transport(noisy, 700_000)
    assert small.startswith(b"\xff\xd8")
    assert len(small) <= 700_000
    assert Image.open(io.BytesIO(small)).size == (1000, 1000)
    with pytest.raises(InvalidInput):
        encode_for_transport(noisy, 1_000)


@pytest.mark.parametrize("angle", [-3.0, -1.2, 0.0, 0.8, 2.5])
def test_the_projection_profile_finds_a_pages_skew(angle: float) -> None:
    from services.ocr.deskew import estimate_page_skew
    from tests.data.generate import default_samples

    sample = next(s for s in default_samples() if s.name == "en_notice" and s.condition == "clean")
    page = Image.open(io.BytesIO(sample.data)).convert("L")
    skewed = page.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert estimate_page_skew(skewed) == pytest.approx(-angle, abs=0.3)


def test_a_blank_or_black_page_has_no_skew() -> None:
    from services.ocr.deskew import estimate_page_skew

    assert estimate_page_skew(Image.new("L", (800, 1000), 255)) == 0.0
    assert estimate_page_skew(Image.new("L", (800, 1000), 0)) == 0.0


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_lines_turned_geometrically_land_where_the_turned_page_has_them(turn: int) -> None:
    from services.ocr.layout import turn_lines

    width, height = 400.0, 300.0
    lines = [line("top left", 10, 20, 110, 40), line("bottom right", 250, 250, 390, 280)]
    turned = turn_lines(lines, width, height, turn)
    page = Image.new("L", (int(width), int(height)), 0)
    marks = Image.new("L", page.size, 0)
    for x in lines:
        marks.paste(255, (int(x.box[0][0]), int(x.box[0][1]), int(x.box[2][0]), int(x.box[2][1])))
    rotated = marks.rotate(turn, expand=True)
    for moved in turned:
        (x0, y0), _, (x1, y1), _ = moved.box
        assert x0 < x1
        assert y0 < y1  # clockwise from the top-left corner again
        centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
        assert rotated.getpixel(centre) == 255, (turn, moved.text, moved.box)


def test_boxes_of_one_row_make_one_text_line() -> None:
    from services.ocr.layout import page_text

    ordered = reading_order(
        [
            line("Qty", 300, 100, 340, 120),
            line("Description", 10, 100, 150, 120),
            line("Servo motor", 10, 140, 150, 160),
            line("20", 300, 141, 330, 161),
            line("Total due 8,894.40", 10, 200, 250, 220),
        ]
    )
    assert [x.row for x in ordered] == [0, 0, 1, 1, 2]
    assert page_text(ordered) == "Description Qty\nServo motor 20\nTotal due 8,894.40"
