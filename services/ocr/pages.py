"""Pages out of files: PDF pages (text layer or a rendering), image frames (TIFF pages), all checked.

PDFium is not thread-safe, so every PDFium call runs on one thread (``PdfReader``'s executor);
image decoding runs in the default pool. Sizes are checked from headers before anything is
decoded, so a 20k x 20k image or a decompression bomb costs nothing but a warning.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import pypdfium2 as pdfium
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from services.ocr.layout import RawLine, group_rects
from shared.errors import InvalidInput

MODEL_LONG_SIDE: Final = 2048
"""Pages are sent at most this long: the detector works at a long side of 2000 px anyway."""
MAX_PAGE_PIXELS: Final = 120_000_000
"""Larger pages are refused (JPEGs are first decoded at a reduced scale, which is cheap)."""
MIN_TEXT_LAYER_CHARS: Final = 16
DEFAULT_DPI_CAP: Final = 300

# Pillow's own bomb guard raises at open; ours checks each page's size before it is decoded instead,
# so an oversized page is skipped with a warning and the rest of the file is still read.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class PageImage:
    """A page to OCR: the image (RGB or L, long side <= MODEL_LONG_SIDE) and how it was made."""

    number: int
    image: Image.Image
    scale: float = 1.0
    """Factor from the original page's pixels (or PDF points x dpi/72) to ``image``."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class TextLayerPage:
    number: int
    width: float
    height: float
    lines: list[RawLine]
    text: str


@dataclass
class SkippedPage:
    number: int
    reason: str


def fit_for_model(image: Image.Image) -> tuple[Image.Image, float]:
    """The page in 8-bit L or RGB, its long side at most ``MODEL_LONG_SIDE``; and the scale applied."""
    if image.mode not in ("L", "RGB"):
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image).convert("RGB")
        elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
            image = image.point(lambda v: v / 256).convert("L")
        elif image.mode == "1":
            image = image.convert("L")
        else:
            image = image.convert("RGB")
    long_side = max(image.size)
    if long_side <= MODEL_LONG_SIDE:
        return image, 1.0
    scale = MODEL_LONG_SIDE / long_side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS), scale


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def encode_for_transport(image: Image.Image, limit: int) -> bytes:
    """PNG when it fits the bus's message limit, else JPEG of decreasing quality.

    JPEG is a last resort: re-compressing a noisy scan loses faint long lines (measured: a page of
    a noisy JPEG contract lost three of its fourteen lines), so the bus allows 4 MiB messages.
    """
    data = encode_png(image)
    quality = 92
    while len(data) > limit and quality >= 50:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        data = buffer.getvalue()
        quality -= 14
    if len(data) > limit:
        raise InvalidInput(f"a page does not fit in {limit} bytes even as a JPEG")
    return data


# ---- images ---------------------------------------------------------------------------------


def image_pages(data: bytes, max_pages: int) -> Iterator[PageImage | SkippedPage]:
    """The frames of an image file (one for PNG/JPEG, every page of a TIFF), ready for the model."""
    try:
        opened = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"the image cannot be read: {exc}") from None
    with opened:
        for index, frame in enumerate(ImageSequence.Iterator(opened)):
            number = index + 1
            if number > max_pages:
                return
            width, height = frame.size
            page_warnings: list[str] = []
            if width * height > MAX_PAGE_PIXELS:
                if frame.format == "JPEG" or opened.format == "JPEG":
                    reduce = (width * height / MAX_PAGE_PIXELS) ** 0.5
                    frame.draft(frame.mode, (int(width / reduce), int(height / reduce)))
                    page_warnings.append(
                        f"page {number} is {width}x{height} px; decoded at {frame.size[0]}x{frame.size[1]}"
                    )
                else:
                    yield SkippedPage(
                        number,
                        f"page {number} is {width}x{height} px ({width * height / 1e6:.0f} MP); pages over "
                        f"{MAX_PAGE_PIXELS / 1e6:.0f} MP are not read",
                    )
                    continue
            try:
                decoded = ImageOps.exif_transpose(frame.copy()) if index == 0 else frame.copy()
                decoded.load()
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                yield SkippedPage(number, f"page {number} cannot be decoded: {exc}")
                continue
            image, scale = fit_for_model(decoded)
            scale *= decoded.size[0] / width if width else 1.0
            if scale < 1.0:
                page_warnings.append(
                    f"page {number} ({width}x{height} px) was read scaled to {image.width}x{image.height}"
                )
            yield PageImage(number, image, scale=scale, warnings=page_warnings)


# ---- PDF ------------------------------------------------------------------------------------


def dpi_for(width_pt: float, height_pt: float, requested: int | None) -> int:
    """The DPI that renders the page's long side at the detector's working size (or the requested one)."""
    if requested:
        return requested
    long_pt = max(width_pt, height_pt, 1.0)
    return max(72, min(DEFAULT_DPI_CAP, int(MODEL_LONG_SIDE * 72 / long_pt)))


def usable_text(text: str) -> bool:
    """A text layer worth trusting: enough characters, and not mostly unmapped glyphs."""
    visible = [ch for ch in text if not ch.isspace()]
    if len(visible) < MIN_TEXT_LAYER_CHARS:
        return False
    bad = sum(1 for ch in visible if ch == "\ufffd" or "\ue000" <= ch <= "\uf8ff" or ord(ch) < 32)
    return bad <= len(visible) // 10


class PdfReader:
    """One PDF, read page by page on PDFium's single thread."""

    def __init__(self, pdf: pdfium.PdfDocument, executor: ThreadPoolExecutor) -> None:
        self._pdf = pdf
        self._executor = executor
        self.page_count = len(pdf)

    @classmethod
    async def open(cls, data: bytes, executor: ThreadPoolExecutor) -> PdfReader:
        def load() -> pdfium.PdfDocument:
            try:
                return pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                message = str(exc)
                if "password" in message.lower():
                    raise InvalidInput("the PDF is encrypted (password protected); Hearth cannot read it") from None
                raise InvalidInput(f"the PDF cannot be read: {message}") from None

        pdf = await asyncio.get_running_loop().run_in_executor(executor, load)
        return cls(pdf, executor)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._pdf.close)

    async def page(self, index: int, dpi: int | None) -> TextLayerPage | PageImage | SkippedPage:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, index, dpi)

    def _read(self, index: int, dpi: int | None) -> TextLayerPage | PageImage | SkippedPage:
        number = index + 1
        try:
            page = self._pdf[index]
        except (pdfium.PdfiumError, IndexError) as exc:
            return SkippedPage(number, f"page {number} cannot be opened: {exc}")
        try:
            width, height = page.get_size()
            textpage = page.get_textpage()
            try:
                text = textpage.get_text_range()
                if usable_text(text):
                    rects = []
                    for i in range(textpage.count_rects()):
                        left, bottom, right, top = textpage.get_rect(i)
                        run = textpage.get_text_bounded(left, bottom, right, top)
                        # PDF space is y-up from the bottom; pages report y-down from the top, in points.
                        box = [
                            [left, height - top],
                            [right, height - top],
                            [right, height - bottom],
                            [left, height - bottom],
                        ]
                        rects.append((run, box))
                    lines = group_rects(rects)
                    return TextLayerPage(number, width, height, lines, text)
            finally:
                textpage.close()
            chosen = dpi_for(width, height, dpi)
            if width * height * (chosen / 72) ** 2 > MAX_PAGE_PIXELS:
                chosen = int(72 * (MAX_PAGE_PIXELS / (width * height)) ** 0.5)
            bitmap = page.render(scale=chosen / 72, grayscale=True)
            image, scale = fit_for_model(bitmap.to_pil())
            return PageImage(number, image, scale=scale * chosen / 72)
        except pdfium.PdfiumError as exc:
            return SkippedPage(number, f"page {number} cannot be read: {exc}")
        finally:
            page.close()
