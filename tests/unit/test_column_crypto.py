"""Column encryption: sealed values bound to their row and column, key headers, the blind index."""

from __future__ import annotations

import base64
import os

import pytest

from services.gateway.documents.chunks import blind_tsvector, tsquery
from services.gateway.documents.cipher import chunk_column, entity_terms, valid_periods
from shared.crypto.columns import (
    FORMAT,
    NONCE_BYTES,
    KeyHeader,
    TermHasher,
    open_json,
    open_value,
    seal_json,
    seal_value,
)
from shared.errors import PermanentFailure

pytestmark = pytest.mark.unit

KEY = os.urandom(32)
WRAPPED = "vault:v2:" + base64.b64encode(b"wrapped").decode()


def test_a_value_opens_only_in_its_own_row_and_column() -> None:
    sealed = seal_value(KEY, "doc-1", "processed_docs.sealed", "合同 secret".encode())
    assert sealed[:1] == FORMAT
    assert b"secret" not in sealed
    assert open_value(KEY, "doc-1", "processed_docs.sealed", sealed).decode() == "合同 secret"
    for row, column in (("doc-2", "processed_docs.sealed"), ("doc-1", chunk_column(0))):
        with pytest.raises(PermanentFailure) as err:
            open_value(KEY, row, column, sealed)
        assert err.value.code == "seal-tampered"
    with pytest.raises(PermanentFailure):
        open_value(os.urandom(32), "doc-1", "processed_docs.sealed", sealed)


def test_chunks_of_one_document_cannot_be_swapped() -> None:
    first = seal_value(KEY, "doc-1", chunk_column(0), b"first")
    with pytest.raises(PermanentFailure):
        open_value(KEY, "doc-1", chunk_column(1), first)


def test_a_flipped_byte_or_a_cut_value_fails() -> None:
    sealed = bytearray(seal_json(KEY, "d", "c", {"text": "x"}))
    sealed[-1] ^= 1
    with pytest.raises(PermanentFailure) as err:
        open_json(KEY, "d", "c", bytes(sealed))
    assert err.value.code == "seal-tampered"
    with pytest.raises(PermanentFailure) as err:
        open_value(KEY, "d", "c", bytes(sealed[: 1 + NONCE_BYTES]))
    assert err.value.code == "seal-header-invalid"


def test_sealing_the_same_value_twice_gives_different_ciphertext() -> None:
    # Random nonces: a document processed again re-seals under the same key without reusing one.
    assert seal_value(KEY, "d", "c", b"same") != seal_value(KEY, "d", "c", b"same")
    assert open_json(KEY, "d", "c", seal_json(KEY, "d", "c", {"pages": [1, "二"]})) == {"pages": [1, "二"]}


def test_key_header_round_trip_and_validation() -> None:
    header = KeyHeader(key_name="hearth-tenant-acme", wrapped_key=WRAPPED)
    assert header.key_version == 2
    assert KeyHeader.from_json(header.to_json()) == header
    for bad in ("nope", '{"v": 2}', header.to_json().replace('"kv":2', '"kv":3')):
        with pytest.raises(PermanentFailure) as err:
            KeyHeader.from_json(bad)
        assert err.value.code == "seal-header-invalid"
    with pytest.raises(PermanentFailure):
        _ = KeyHeader(key_name="k", wrapped_key="plain").key_version


def test_term_hashes_are_deterministic_per_key_and_hide_the_term() -> None:
    one, other = TermHasher(KEY), TermHasher(os.urandom(32))
    assert one.blind
    assert not TermHasher(None).blind
    assert one.term("合同") == one.term("合同")
    assert one.term("合同") != other.term("合同")
    assert one.term("合同") != one.term("合约")
    assert one.term("purchase") != one.entity("contract_type", "type", "purchase")
    token = one.term("zqxmarker")
    assert len(token) == 24
    assert token.isalnum()
    assert token == token.lower()
    assert "zqx" not in token
    assert TermHasher(None).term("合同") == "合同"


def test_the_blind_tsvector_holds_hashes_at_their_positions() -> None:
    hasher = TermHasher(KEY)
    vector = blind_tsvector("alpha beta alpha", hasher)
    assert "alpha" not in vector
    assert "beta" not in vector
    assert f"'{hasher.term('alpha')}':1,3" in vector
    assert f"'{hasher.term('beta')}':2" in vector
    assert tsquery([hasher.term("alpha")]) == f"'{hasher.term('alpha')}'"


def test_entity_terms_and_validity_ranges() -> None:
    hasher = TermHasher(KEY)
    entities = {
        "contract_type": [{"value": "采购合同", "normalized": {"type": "purchase", "label": "采购"}}],
        "valid_period": [
            {"value": "…", "normalized": {"start": "2024-03-01", "end": "2025-02-28"}},
            {"value": "bad", "normalized": {"start": "soon", "end": "2025-02-28"}},
        ],
        "amount": [{"value": "¥1", "normalized": {"amount": 1}}],
    }
    terms = entity_terms(hasher, entities)
    assert hasher.entity("contract_type", "type", "purchase") in terms
    assert not any("purchase" in t for t in terms)
    assert len(terms) == 5  # type, label, both starts, the shared end; a number is no filter
    assert valid_periods(entities) == '{"[2024-03-01,2025-02-28]"}'
    assert valid_periods({}) == "{}"
    assert entity_terms(TermHasher(None), entities)[0].startswith("contract_type:")
