"""The backup archive's sealing: a round trip, and every way an archive can be wrong refused."""

from __future__ import annotations

import io
import struct

import pytest

from shared.launcher.archive import CHUNK, ArchiveError, DecryptingReader, EncryptingWriter

pytestmark = pytest.mark.unit

PASSPHRASE = b"correct horse battery staple"
HEADER = 8 + 16 + 3 + 7


def seal(data: bytes, passphrase: bytes = PASSPHRASE, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(out, passphrase)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(data[start : start + step])
    writer.close()
    return out.getvalue()


def unseal(archive: bytes, passphrase: bytes = PASSPHRASE) -> bytes:
    return DecryptingReader(io.BytesIO(archive), passphrase).read()


def records(archive: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each sealed record."""
    found, at = [], HEADER
    while at < len(archive):
        (size,) = struct.unpack(">I", archive[at : at + 4])
        found.append((at, 4 + size))
        at += 4 + size
    return found


DATA = bytes(range(256)) * (CHUNK // 256 * 2 + 3)  # two full chunks and a partial one


def test_round_trip_over_several_chunks_and_reads_of_any_size() -> None:
    archive = seal(DATA)
    assert len(records(archive)) == 3
    reader = DecryptingReader(io.BytesIO(archive), PASSPHRASE)
    parts = []
    while part := reader.read(100_003):
        parts.append(part)
    assert b"".join(parts) == DATA


def test_empty_payload_still_has_a_final_record() -> None:
    archive = seal(b"")
    assert len(records(archive)) == 1
    assert unseal(archive) == b""


def test_the_plaintext_does_not_appear() -> None:
    marker = b"HEARTH-MARKER-1f0c" * 100
    assert marker[:18] not in seal(marker)


def test_wrong_passphrase_is_named() -> None:
    with pytest.raises(ArchiveError, match="wrong passphrase"):
        unseal(seal(DATA), b"not the passphrase at all")


def test_short_passphrases_are_refused() -> None:
    with pytest.raises(ArchiveError, match="at least"):
        EncryptingWriter(io.BytesIO(), b"short")


def test_a_flipped_byte_is_detected() -> None:
    archive = bytearray(seal(DATA))
    offset, _ = records(bytes(archive))[1]
    archive[offset + 100] ^= 0x01
    with pytest.raises(ArchiveError, match="record 1 does not authenticate"):
        unseal(bytes(archive))


def test_truncation_at_a_record_boundary_is_detected() -> None:
    archive = seal(DATA)
    offset, _ = records(archive)[-1]
    with pytest.raises(ArchiveError, match="truncated"):
        unseal(archive[:offset])


def test_reordered_records_are_detected() -> None:
    archive = seal(DATA)
    (a, la), (b, lb), rest = records(archive)
    swapped = archive[:HEADER] + archive[b : b + lb] + archive[a : a + la] + archive[rest[0] :]
    with pytest.raises(ArchiveError, match="does not authenticate"):
        unseal(swapped)


def test_data_after_the_final_record_is_detected() -> None:
    with pytest.raises(ArchiveError, match="follows the archive's last record"):
        unseal(seal(DATA) + b"x")


def test_the_header_is_authenticated() -> None:
    archive = bytearray(seal(DATA))
    archive[HEADER - 1] ^= 0x01  # the nonce prefix
    with pytest.raises(ArchiveError):
        unseal(bytes(archive))


def test_not_an_archive() -> None:
    with pytest.raises(ArchiveError, match="not a Hearth backup archive"):
        unseal(b"PK\x03\x04 a zip file, say")
