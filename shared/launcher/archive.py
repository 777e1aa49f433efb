"""The backup archive's encryption: a tar stream sealed in chunks with AES-256-GCM under a key
derived from the operator's passphrase (scrypt).

Layout: ``MAGIC | salt(16) | log2(n) r p (1 byte each) | nonce prefix(7)`` then records
``len(4, big-endian) | ciphertext``. Record *i* is sealed with nonce ``prefix | i(4) | final(1)``
and the header as associated data, so a reordered, dropped, appended or truncated record fails
authentication (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár); a wrong
passphrase fails on the first record. The archive holds the state directory's secrets (OpenBao's
unseal key among them): it is as sensitive as the machine, and the passphrase is what guards it.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC: Final = b"HRTHBK01"
CHUNK: Final = 1 << 20
SCRYPT_LOG2_N: Final = 15  # 32 MiB of memory, ~0.1 s: per archive, not per chunk
MIN_PASSPHRASE: Final = 12
_HEADER = struct.Struct(f">{len(MAGIC)}s16sBBB7s")
_LENGTH = struct.Struct(">I")


class ArchiveError(Exception):
    """The archive cannot be read: not an archive, wrong passphrase, or altered."""


def _key(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise ArchiveError(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


class EncryptingWriter:
    """A write-only file object: what is written is sealed into ``out`` chunk by chunk."""

    def __init__(self, out: BinaryIO, passphrase: bytes) -> None:
        salt, prefix = os.urandom(16), os.urandom(7)
        self._header = _HEADER.pack(MAGIC, salt, SCRYPT_LOG2_N, 8, 1, prefix)
        self._aead = AESGCM(_key(passphrase, salt, SCRYPT_LOG2_N, 8, 1))
        self._prefix = prefix
        self._out = out
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        out.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed archive")
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, *, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, final), chunk, self._header)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        """Seal the last (final-flagged) record; the archive is incomplete without it."""
        if not self._closed:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True

    def flush(self) -> None:
        self._out.flush()


class DecryptingReader:
    """A read-only file object over an archive; raises ``ArchiveError`` on any alteration."""

    def __init__(self, source: BinaryIO, passphrase: bytes) -> None:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size or not header.startswith(MAGIC):
            raise ArchiveError("not a Hearth backup archive (bad header)")
        _, salt, log2_n, r, p, prefix = _HEADER.unpack(header)
        if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ArchiveError("not a Hearth backup archive (implausible key parameters)")
        self._aead = AESGCM(_key(passphrase, salt, log2_n, r, p))
        self._header = header
        self._prefix = prefix
        self._source = source
        self._index = 0
        self._plain = bytearray()
        self._done = False

    def _next(self) -> None:
        length = self._source.read(_LENGTH.size)
        if len(length) < _LENGTH.size:
            raise ArchiveError(f"the archive is truncated after {self._index} records")
        (size,) = _LENGTH.unpack(length)
        if size > CHUNK + 16:
            raise ArchiveError(f"record {self._index} is {size} bytes: the archive is corrupt")
        sealed = self._source.read(size)
        if len(sealed) < size:
            raise ArchiveError(f"the archive is truncated inside record {self._index}")
        for final in (False, True):
            try:
                chunk = self._aead.decrypt(_nonce(self._prefix, self._index, final), sealed, self._header)
            except InvalidTag:
                continue
            self._plain += chunk
            self._index += 1
            if final:
                if self._source.read(1):
                    raise ArchiveError("data follows the archive's last record: it was altered")
                self._done = True
            return
        if self._index == 0:
            raise ArchiveError("wrong passphrase, or the archive was altered (its first record does not authenticate)")
        raise ArchiveError(f"record {self._index} does not authenticate: the archive was altered")

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._plain) < size):
            self._next()
        if size < 0:
            size = len(self._plain)
        out = bytes(self._plain[:size])
        del self._plain[:size]
        return out
