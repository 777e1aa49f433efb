"""jieba word segmentation, used where word boundaries decide a party name (its own tokenizer instance,
so the process-wide ``jieba.dt`` is left alone; its cache file goes to a fixed, writable directory)."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # jieba 0.42's regex literals ("\\." in plain strings)
    import jieba

_LOCK = threading.Lock()
_TOKENIZER: jieba.Tokenizer | None = None


def cache_dir() -> Path:
    """``$HEARTH_JIEBA_CACHE_DIR``, else ``$HEARTH_HOME/data/triton/jieba``, else ``~/.cache/hearth/jieba``;
    the system temp dir when none of those can be created."""
    if os.environ.get("HEARTH_JIEBA_CACHE_DIR"):
        candidate = Path(os.environ["HEARTH_JIEBA_CACHE_DIR"])
    elif os.environ.get("HEARTH_HOME"):
        candidate = Path(os.environ["HEARTH_HOME"]) / "data" / "triton" / "jieba"
    else:
        candidate = Path.home() / ".cache" / "hearth" / "jieba"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(tempfile.gettempdir())
    return candidate if os.access(candidate, os.W_OK) else Path(tempfile.gettempdir())


def tokenizer() -> jieba.Tokenizer:
    """The initialised tokenizer (the first call loads the dictionary: about 1 s, 0.1 s from its cache)."""
    global _TOKENIZER  # noqa: PLW0603 - one lazily built tokenizer per process
    if _TOKENIZER is None:
        with _LOCK:
            if _TOKENIZER is None:
                jieba.setLogLevel(logging.WARNING)
                instance = jieba.Tokenizer()
                instance.tmp_dir = str(cache_dir())
                instance.initialize()
                _TOKENIZER = instance
    return _TOKENIZER


def words(text: str) -> list[str]:
    """``text`` cut into words (jieba's default mode, HMM on for unknown names)."""
    return [w for w in tokenizer().cut(text, HMM=True) if w.strip()]
