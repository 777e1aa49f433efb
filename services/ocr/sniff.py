"""What a file really is, from its first bytes (extensions and declared types are only hints)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final, Literal

Kind = Literal["pdf", "png", "jpeg", "tiff", "bmp", "webp", "gif", "text"]

_MAGIC: Final[tuple[tuple[bytes, Kind], ...]] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)

_BY_EXTENSION: Final[dict[str, Kind]] = {
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
    ".gif": "gif",
    ".txt": "text",
}


def sniff(head: bytes) -> Kind | None:
    """The file's kind from its magic bytes; ``None`` for anything not readable here."""
    # A PDF may start with a few bytes of junk (some generators prepend a BOM or whitespace).
    if b"%PDF-" in head[:1024]:
        return "pdf"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head and _looks_like_text(head[:4096]):
        return "text"
    return None


def _looks_like_text(sample: bytes) -> bool:
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the sample's end
            return False
        decoded = sample[: exc.start].decode("utf-8")
    controls = sum(1 for ch in decoded if ord(ch) < 32 and ch not in "\n\r\t\f")
    return controls <= len(decoded) // 100


def claimed_kind(filename: str | None, content_type: str | None) -> Kind | None:
    """What the name or the declared media type says the file is."""
    if filename:
        kind = _BY_EXTENSION.get(PurePosixPath(filename).suffix.lower())
        if kind:
            return kind
    if content_type:
        subtype = content_type.split(";")[0].strip().lower()
        image_kinds: tuple[Kind, ...] = ("pdf", "png", "jpeg", "tiff", "bmp", "webp", "gif")
        for candidate in image_kinds:
            if subtype.endswith("/" + candidate) or (candidate == "jpeg" and subtype.endswith("/jpg")):
                return candidate
        if subtype.startswith("text/"):
            return "text"
    return None
