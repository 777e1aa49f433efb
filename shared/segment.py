"""Word segmentation for search and learning: jieba for Chinese, NFKC-folded, lower-cased.

PostgreSQL's parsers do not split Chinese into words, so text is segmented with jieba
(``cut_for_search``: words and their shorter parts, so 有限公司 also matches 公司); English and
numbers pass through lower-cased, punctuation is dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from typing import Final

import jieba

jieba.setLogLevel(logging.WARNING)
_init_lock = threading.Lock()
_TERM_RE: Final = re.compile(r"[\w\u3400-\u9fff]+", re.UNICODE)


def ready() -> None:
    """Load jieba's dictionary now (about a second) rather than on the first use."""
    with _init_lock:
        jieba.initialize()


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def terms(text: str) -> list[str]:
    """Terms of a text: jieba words and sub-words, NFKC-folded, lower-cased, punctuation dropped."""
    out: list[str] = []
    for piece in jieba.cut_for_search(fold(text)):
        out.extend(term for term in _TERM_RE.findall(piece) if term)
    return out
