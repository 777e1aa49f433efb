"""Render Chinese and English documents to PNG/JPEG/TIFF with the text they must read back as.

Deterministic: the same seed gives byte-identical images (with the same Pillow and FreeType).
The font is Noto Sans SC from the PyPI package ``pylopdf-fonts-zh-cn``, so no system fonts are
needed. The default set covers clean pages in each format, a line printed upside down (the
direction classifier's case) and a blurred, noisy scan.

CLI: ``python -m tests.data.generate --out DIR [--seed N]`` writes the images and a
``manifest.json`` with the expected lines of each.
"""

from __future__ import annotations

import argparse
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEFAULT_SEED = 20240611
FORMATS = ("png", "jpeg", "tiff")

# Sentences of the kind Hearth's users scan (contracts, invoices, notices). Only characters of the
# common set, and no punctuation whose full- and half-width forms NFKC does not fold.
ZH_SENTENCES = (
    "本合同自双方签字盖章之日起生效",
    "甲方应于收到发票后三十日内付款",
    "乙方负责设备的安装调试和培训",
    "质量保证期为验收合格后十二个月",
    "如有争议双方应友好协商解决",
    "本协议一式两份双方各执一份",
    "供应商须提供产品合格证明文件",
    "货物运输途中的风险由卖方承担",
    "会议纪要已发送给全体参会人员",
    "请在规定时间内提交年度预算报告",
    "生产车间每周进行一次安全检查",
    "客户服务热线全天二十四小时开放",
)
EN_SENTENCES = (
    "This agreement takes effect on signature",
    "Payment is due within thirty days",
    "The supplier warrants the goods for one year",
    "All disputes shall be settled amicably",
    "Quality inspection report for batch",
    "Please return the signed copy by Friday",
    "Delivery address: Building 7, North Gate",
    "The meeting minutes were approved",
    "Invoice total including tax",
    "Maintenance window starts at midnight",
    "Store the samples below 25 degrees",
    "Contact the plant manager for access",
)


@dataclass(frozen=True)
class Sample:
    """One rendered document and the text it must read back as."""

    name: str
    format: str
    data: bytes
    lines: tuple[str, ...]
    language: str  # "zh", "en" or "mixed"
    condition: str  # "clean", "rotated" or "noisy"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def filename(self) -> str:
        return f"{self.name}.{'jpg' if self.format == 'jpeg' else self.format}"


@cache
def font_path() -> Path:
    """Noto Sans SC, shipped by ``pylopdf-fonts-zh-cn``."""
    try:
        from pylopdf_fonts_zh_cn import sans_path
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the CJK test font is missing: install the `pylopdf-fonts-zh-cn` package") from exc
    path = Path(sans_path())
    if not path.is_file():  # pragma: no cover
        raise RuntimeError(f"pylopdf-fonts-zh-cn is installed but its font {path} is missing")
    return path


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def render_lines(
    lines: Sequence[str],
    *,
    font_size: int = 32,
    margin: int = 40,
    line_spacing: float = 1.9,
    upside_down: Sequence[int] = (),
    width: int | None = None,
) -> Image.Image:
    """Black text on a white page, one line per entry; lines listed in ``upside_down`` are turned 180°."""
    font = _font(font_size)
    boxes = [font.getbbox(line) for line in lines]
    text_width = max(right for _, _, right, _ in boxes)
    page_width = width or text_width + 2 * margin
    pitch = round(font_size * line_spacing)
    page = Image.new("L", (page_width, 2 * margin + pitch * len(lines)), 255)
    for index, line in enumerate(lines):
        strip = Image.new("L", (page_width - 2 * margin, pitch), 255)
        ImageDraw.Draw(strip).text((0, (pitch - font_size) // 2), line, font=font, fill=0, anchor="lt")
        if index in upside_down:
            strip = strip.rotate(180)
        page.paste(strip, (margin, margin + index * pitch))
    return page


def degrade(image: Image.Image, rng: random.Random, *, blur: float = 1.9, noise_sigma: float = 38.0) -> Image.Image:
    """A poor scan: Gaussian blur, then additive Gaussian noise from ``rng``."""
    blurred = image.filter(ImageFilter.GaussianBlur(blur))
    noisy = bytes(min(255, max(0, round(px + rng.gauss(0.0, noise_sigma)))) for px in blurred.tobytes())
    return Image.frombytes("L", blurred.size, noisy)


def encode(image: Image.Image, fmt: str) -> bytes:
    """PNG (lossless), JPEG (quality 88) or TIFF (LZW) bytes of ``image``."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", optimize=False)
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=88, subsampling=0)
    elif fmt == "tiff":
        image.save(buffer, format="TIFF", compression="tiff_lzw")
    else:
        raise ValueError(f"unknown image format {fmt!r} (known: {', '.join(FORMATS)})")
    return buffer.getvalue()


def _page_lines(rng: random.Random, pool: Sequence[str], count: int) -> list[str]:
    return rng.sample(list(pool), count)


def _reference_number(rng: random.Random) -> str:
    return f"HT-{rng.randint(2019, 2026)}-{rng.randint(100, 9999):04d}"


def default_samples(seed: int = DEFAULT_SEED) -> list[Sample]:
    """The standard set: Chinese PNG, English JPEG, mixed TIFF, an upside-down line, a noisy scan."""
    rng = random.Random(seed)  # noqa: S311 - seeded test data, not secrets
    samples: list[Sample] = []

    zh = _page_lines(rng, ZH_SENTENCES, 5)
    zh[0] = f"合同编号 {_reference_number(rng)}"
    samples.append(_sample("zh_contract", "png", zh, render_lines(zh), language="zh", condition="clean"))

    en = _page_lines(rng, EN_SENTENCES, 5)
    en[-1] = f"{en[-1]} {rng.randint(1000, 99999)}.{rng.randint(0, 99):02d} CNY"
    samples.append(_sample("en_notice", "jpeg", en, render_lines(en, font_size=30), language="en", condition="clean"))

    mixed = [
        line
        for pair in zip(_page_lines(rng, ZH_SENTENCES, 2), _page_lines(rng, EN_SENTENCES, 2), strict=False)
        for line in pair
    ]
    samples.append(
        _sample("mixed_memo", "tiff", mixed, render_lines(mixed, font_size=34), language="mixed", condition="clean")
    )

    upside = _page_lines(rng, ZH_SENTENCES, 1)
    samples.append(
        _sample(
            "zh_line_upside_down",
            "png",
            upside,
            render_lines(upside, font_size=36, upside_down=[0]),
            language="zh",
            condition="rotated",
        )
    )

    noisy = [*_page_lines(rng, ZH_SENTENCES, 2), *_page_lines(rng, EN_SENTENCES, 2)]
    noisy_page = degrade(render_lines(noisy, font_size=34), rng)
    samples.append(_sample("mixed_scan_noisy", "png", noisy, noisy_page, language="mixed", condition="noisy"))
    return samples


def line_images(seed: int = DEFAULT_SEED, count: int = 32) -> list[Sample]:
    """Single text lines (PNG), alternating Chinese and English: recogniser-sized inputs for benches."""
    rng = random.Random(seed)  # noqa: S311 - seeded test data, not secrets
    out = []
    for index in range(count):
        pool = ZH_SENTENCES if index % 2 == 0 else EN_SENTENCES
        line = rng.choice(pool)
        language = "zh" if index % 2 == 0 else "en"
        image = render_lines([line], margin=12)
        out.append(_sample(f"line_{index:03d}", "png", [line], image, language=language, condition="clean"))
    return out


def _sample(name: str, fmt: str, lines: Sequence[str], image: Image.Image, *, language: str, condition: str) -> Sample:
    return Sample(name, fmt, encode(image, fmt), tuple(lines), language, condition)


def write_samples(samples: Sequence[Sample], out_dir: Path) -> Path:
    """Write each sample's image and a ``manifest.json`` describing them; returns the manifest path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for sample in samples:
        (out_dir / sample.filename).write_bytes(sample.data)
        manifest.append(
            {
                "file": sample.filename,
                "format": sample.format,
                "lines": list(sample.lines),
                "language": sample.language,
                "condition": sample.condition,
            }
        )
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the images and manifest.json to")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (same seed, same bytes)")
    parser.add_argument("--lines", type=int, default=0, help="also write this many single-line images")
    args = parser.parse_args(argv)
    samples = default_samples(args.seed)
    if args.lines:
        samples += line_images(args.seed, args.lines)
    manifest = write_samples(samples, args.out)
    print(f"wrote {len(samples)} images and {manifest}")


if __name__ == "__main__":
    main()
