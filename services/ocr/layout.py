"""Geometry of recognised lines: skew, orientation, reading order, and the markdown rendering."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from shared.documents import Line, Page

Box = list[list[float]]


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line as a reader produced it, before ordering."""

    text: str
    box: Box
    confidence: float
    angle: int = 0


def line_angle(box: Box) -> float:
    """Angle of a box's top edge in degrees, clockwise in image coordinates (y grows downwards)."""
    (x0, y0), (x1, y1) = box[0], box[1]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def box_size(box: Box) -> tuple[float, float]:
    """Width (top edge) and height (left edge) of a box given clockwise from top-left."""
    (x0, y0), (x1, y1), _, (x3, y3) = box[:4]
    return math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)


def estimate_skew(lines: Sequence[RawLine]) -> float:
    """Median angle of the lines' top edges, weighted by their text length (degrees)."""
    angles: list[float] = []
    for line in lines:
        width, height = box_size(line.box)
        if width < 2 * height or len(line.text) < 4:
            continue  # short boxes say little about the page's angle
        angles.extend([line_angle(line.box)] * min(len(line.text), 40))
    return round(statistics.median(angles), 2) if angles else 0.0


def looks_sideways(lines: Sequence[RawLine]) -> bool:
    """Most text runs are taller than wide on the page: it was scanned turned by 90 degrees."""
    if not lines:
        return False
    tall = 0
    for line in lines:
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        if max(ys) - min(ys) > 1.5 * (max(xs) - min(xs)):
            tall += 1
    return tall >= max(1, (len(lines) + 1) // 2)


def upside_down(lines: Sequence[RawLine]) -> bool:
    """Most of the text (by characters) was read turned by 180 degrees."""
    turned = sum(len(line.text) for line in lines if line.angle == 180)
    total = sum(len(line.text) for line in lines)
    return len(lines) >= 2 and total > 0 and turned / total >= 0.6


def turn_lines(lines: Sequence[RawLine], width: float, height: float, turn: int) -> list[RawLine]:
    """The lines as they lie on the page turned ``turn`` degrees counter-clockwise (PIL ``rotate(expand=True)``).

    The recogniser already reads each line upright (its direction classifier turns crops), so a
    page read sideways or upside down needs its geometry turned, not a second reading.
    """

    def move(x: float, y: float) -> list[float]:
        if turn == 90:
            return [y, width - x]
        if turn == 180:
            return [width - x, height - y]
        if turn == 270:
            return [height - y, x]
        return [x, y]

    out = []
    for line in lines:
        points = [move(x, y) for x, y in line.box]
        start = min(range(len(points)), key=lambda i: points[i][0] + points[i][1])  # the top-left corner
        out.append(RawLine(text=line.text, box=points[start:] + points[:start], confidence=line.confidence))
    return out


def score(lines: Sequence[RawLine]) -> float:
    """How much was read, and how surely: a reading of the same page in another orientation loses."""
    return sum(line.confidence * len(line.text.strip()) for line in lines)


def reading_order(lines: Sequence[RawLine], skew: float = 0.0) -> list[Line]:
    """Top to bottom, left to right within a row, with the skew rotated out first.

    Lines whose centres lie within half the median line height of a row's first line share the row.
    """
    if not lines:
        return []
    theta = math.radians(-skew)
    cos, sin = math.cos(theta), math.sin(theta)

    def centre(line: RawLine) -> tuple[float, float]:
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
        return cx * cos - cy * sin, cx * sin + cy * cos

    heights = [max(1.0, box_size(line.box)[1]) for line in lines]
    tolerance = statistics.median(heights) / 2
    placed = sorted(((centre(line), line) for line in lines), key=lambda item: item[0][1])
    rows: list[list[tuple[tuple[float, float], RawLine]]] = []
    for item in placed:
        if rows and abs(item[0][1] - rows[-1][0][0][1]) <= tolerance:
            rows[-1].append(item)
        else:
            rows.append([item])
    ordered: list[Line] = []
    for row_index, row in enumerate(rows):
        for _, line in sorted(row, key=lambda item: item[0][0]):
            ordered.append(
                Line(
                    text=line.text,
                    box=[[round(x, 1), round(y, 1)] for x, y in line.box],
                    confidence=round(line.confidence, 4),
                    order=len(ordered),
                    row=row_index,
                )
            )
    return ordered


def page_text(lines: Sequence[Line]) -> str:
    """One text line per row of boxes, the boxes of a row joined by a space."""
    rows: dict[int, list[str]] = {}
    for line in lines:
        rows.setdefault(line.row, []).append(line.text.strip())
    return "\n".join(" ".join(part for part in parts if part) for _, parts in sorted(rows.items()))


def group_rects(rects: Sequence[tuple[str, Box]]) -> list[RawLine]:
    """Text-layer runs (text, box) merged into lines: runs that overlap vertically and are close."""
    lines: list[list[tuple[str, Box]]] = []
    for text, box in sorted(rects, key=lambda r: (r[1][0][1], r[1][0][0])):
        if not text.strip():
            continue
        top, bottom, left = box[0][1], box[2][1], box[0][0]
        for line in lines:
            ltop, lbottom, lright = line[-1][1][0][1], line[-1][1][2][1], line[-1][1][1][0]
            overlap = min(bottom, lbottom) - max(top, ltop)
            height = max(1.0, min(bottom - top, lbottom - ltop))
            if overlap > 0.5 * height and 0 <= left - lright < 3 * height:
                line.append((text, box))
                break
        else:
            lines.append([(text, box)])
    out: list[RawLine] = []
    for line in lines:
        xs = [p[0] for _, b in line for p in b]
        ys = [p[1] for _, b in line for p in b]
        box = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)]]
        out.append(RawLine(text=_join_runs([t for t, _ in line]), box=box, confidence=1.0))
    return out


def _join_runs(parts: Sequence[str]) -> str:
    text = ""
    for raw in parts:
        part = raw.strip()
        if text and part and (text[-1].isascii() and text[-1].isalnum()) and (part[0].isascii() and part[0].isalnum()):
            text += " "
        text += part
    return text


def page_markdown(page: Page) -> str:
    """Headings (rows clearly taller than the page's body text), then paragraphs by vertical gaps."""
    if not page.lines:
        return page.text
    rows: dict[int, list[Line]] = {}
    for line in page.lines:
        rows.setdefault(line.row, []).append(line)
    spans = []
    for _, members in sorted(rows.items()):
        top = min(p[1] for m in members for p in m.box)
        bottom = max(p[1] for m in members for p in m.box)
        height = max(box_size(m.box)[1] for m in members)
        spans.append((" ".join(m.text.strip() for m in members), top, bottom, height))
    body = statistics.median(h for _, _, _, h in spans)
    blocks: list[str] = []
    paragraph: list[str] = []
    previous_bottom: float | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(_join_lines(paragraph))
            paragraph.clear()

    for text, top, bottom, height in spans:
        if height > 1.35 * body and len(text) <= 60:
            flush()
            blocks.append("## " + text)
        else:
            if previous_bottom is not None and top - previous_bottom > 0.9 * body:
                flush()
            paragraph.append(text)
        previous_bottom = bottom
    flush()
    return "\n\n".join(blocks)


def _join_lines(lines: Sequence[str]) -> str:
    text = ""
    for line in lines:
        if text and text[-1].isascii() and line[:1].isascii():
            text += " "
        text += line
    return text


def document_markdown(pages: Sequence[Page]) -> str:
    return "\n\n".join(f"<!-- page {page.number} -->\n\n{page_markdown(page)}" for page in pages)
