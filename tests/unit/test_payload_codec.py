"""The Temporal payload codec: format, tamper detection, data-key reuse bounds, the unwrap LRU, legacy payloads."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from shared.capabilities import DATA_CONVERTER, encrypted_data_converter
from shared.clients import payload_codec
from shared.crypto.payload_codec import ENCODING, KEY_VERSION, WRAPPED_KEY, EnvelopePayloadCodec
from shared.crypto.transit import PAYLOAD_KEY, DataKey
from shared.errors import PermanentFailure, Unavailable
from shared.settings import load_settings

pytestmark = pytest.mark.unit

MARKER = "HEARTH-PAYLOAD-MARKER-7f3a"


class FakeTransit:
    """Transit's datakey/decrypt on ``hearth-payloads`` in memory: versions, and a count of calls."""

    def __init__(self) -> None:
        self.version = 1
        self.keys: dict[str, bytes] = {}
        self.issued = 0
        self.unwrapped = 0

    async def payload_data_key(self) -> DataKey:
        self.issued += 1
        plaintext = os.urandom(32)
        wrapped = f"vault:v{self.version}:" + base64.b64encode(os.urandom(24)).decode()
        self.keys[wrapped] = plaintext
        return DataKey(key_name=PAYLOAD_KEY, plaintext=plaintext, wrapped=wrapped)

    async def unwrap_payload_key(self, wrapped: str) -> bytes:
        self.unwrapped += 1
        if wrapped not in self.keys:
            raise PermanentFailure("transit refused", code="transit-refused")
        return self.keys[wrapped]


class Contract(BaseModel):
    title: str
    clauses: list[str]


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_a_model_round_trips_and_travels_as_ciphertext() -> None:
    transit = FakeTransit()
    converter = encrypted_data_converter(EnvelopePayloadCodec(transit))
    value = Contract(title=MARKER, clauses=["pay within 30 days", MARKER])

    [encoded] = await converter.encode([value])

    assert encoded.metadata["encoding"] == ENCODING
    assert encoded.metadata["encryption-key-id"] == PAYLOAD_KEY.encode()
    assert encoded.metadata[KEY_VERSION] == b"1"
    assert encoded.metadata[WRAPPED_KEY].startswith(b"vault:v1:")
    assert MARKER.encode() not in encoded.SerializeToString()
    assert b"json/plain" not in encoded.SerializeToString()  # the inner metadata is sealed too
    # A reader without the codec cannot read it.
    with pytest.raises(KeyError, match="binary/encrypted"):
        await DATA_CONVERTER.decode([encoded], [Contract])
    # Another process (fresh caches) reads it back through transit.
    other = encrypted_data_converter(EnvelopePayloadCodec(transit))
    assert await other.decode([encoded], [Contract]) == [value]
    assert transit.unwrapped == 1


async def test_each_payload_gets_its_own_nonce() -> None:
    codec = EnvelopePayloadCodec(FakeTransit())
    first, second = await codec.encode([payload(MARKER), payload(MARKER)])
    assert first.metadata[WRAPPED_KEY] == second.metadata[WRAPPED_KEY]  # one data key
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


@pytest.mark.parametrize("where", ["ciphertext", "nonce", "tag"])
async def test_altered_bytes_are_detected(where: str) -> None:
    codec = EnvelopePayloadCodec(FakeTransit())
    [sealed] = await codec.encode([payload("the original")])
    data = bytearray(sealed.data)
    index = {"nonce": 0, "ciphertext": 14, "tag": len(data) - 1}[where]
    data[index] ^= 0x01
    sealed.data = bytes(data)
    with pytest.raises(PermanentFailure) as failed:
        await codec.decode([sealed])
    assert failed.value.code == "seal-tampered"


async def test_ciphertext_cannot_be_paired_with_another_payloads_key() -> None:
    transit = FakeTransit()
    codec = EnvelopePayloadCodec(transit, max_uses=1)
    first, second = await codec.encode([payload("one"), payload("two")])
    assert first.metadata[WRAPPED_KEY] != second.metadata[WRAPPED_KEY]
    first.metadata[WRAPPED_KEY] = second.metadata[WRAPPED_KEY]
    with pytest.raises(PermanentFailure) as failed:
        await codec.decode([first])
    assert failed.value.code == "seal-tampered"


@pytest.mark.parametrize(
    ("field", "value"),
    [("encryption-format", b"9"), ("encryption-key-id", b"hearth-tenant-acme"), (WRAPPED_KEY, b"not-a-wrapped-key")],
)
async def test_foreign_metadata_is_refused(field: str, value: bytes) -> None:
    codec = EnvelopePayloadCodec(FakeTransit())
    [sealed] = await codec.encode([payload("x")])
    sealed.metadata[field] = value
    with pytest.raises(PermanentFailure):
        await codec.decode([sealed])


async def test_truncated_payload_is_refused() -> None:
    codec = EnvelopePayloadCodec(FakeTransit())
    [sealed] = await codec.encode([payload("x")])
    sealed.data = sealed.data[:20]
    with pytest.raises(PermanentFailure) as failed:
        await codec.decode([sealed])
    assert failed.value.code == "seal-tampered"


async def test_plaintext_payloads_of_older_histories_decode_unchanged() -> None:
    transit = FakeTransit()
    converter = encrypted_data_converter(EnvelopePayloadCodec(transit))
    value = Contract(title="before encryption", clauses=[])
    [legacy] = await DATA_CONVERTER.encode([value])
    assert await converter.decode([legacy], [Contract]) == [value]
    null = Payload(metadata={"encoding": b"binary/null"})
    assert await converter.payload_codec.decode([null]) == [null]  # type: ignore[union-attr]
    assert transit.unwrapped == 0


async def test_a_data_key_serves_at_most_max_uses_payloads() -> None:
    transit = FakeTransit()
    codec = EnvelopePayloadCodec(transit, max_uses=3)
    sealed = await codec.encode([payload(str(i)) for i in range(7)])
    assert transit.issued == 3
    assert len({p.metadata[WRAPPED_KEY] for p in sealed}) == 3
    assert [p.data for p in await codec.decode(sealed)] == [f'"{i}"'.encode() for i in range(7)]
    assert transit.unwrapped == 0  # the keys it issued are in its own cache


async def test_a_data_key_is_replaced_after_max_age() -> None:
    transit = FakeTransit()
    codec = EnvelopePayloadCodec(transit, max_age_s=0.05)
    await codec.encode([payload("a"), payload("b")])
    assert transit.issued == 1
    await asyncio.sleep(0.08)
    await codec.encode([payload("c")])
    assert transit.issued == 2


async def test_concurrent_encodes_share_one_new_data_key() -> None:
    transit = FakeTransit()
    codec = EnvelopePayloadCodec(transit)
    await asyncio.gather(*(codec.encode([payload(str(i))]) for i in range(50)))
    assert transit.issued == 1


async def test_the_unwrap_cache_is_a_bounded_lru() -> None:
    transit = FakeTransit()
    writer = EnvelopePayloadCodec(transit, max_uses=1)
    sealed = await writer.encode([payload(str(i)) for i in range(4)])
    reader = EnvelopePayloadCodec(transit, unwrap_cache_size=2)
    await reader.decode(sealed)
    assert transit.unwrapped == 4
    assert reader.cached_keys == 2
    await reader.decode([sealed[3]])  # the most recent: still cached
    assert transit.unwrapped == 4
    assert reader.stats.unwrap_cache_hits == 1
    await reader.decode([sealed[0]])  # evicted: transit again
    assert transit.unwrapped == 5
    assert reader.cached_keys == 2


async def test_unwrapped_keys_expire_from_the_cache() -> None:
    transit = FakeTransit()
    [sealed] = await EnvelopePayloadCodec(transit).encode([payload("x")])
    reader = EnvelopePayloadCodec(transit, unwrap_ttl_s=0.05)
    await reader.decode([sealed])
    await asyncio.sleep(0.08)
    await reader.decode([sealed])
    assert transit.unwrapped == 2


async def test_after_a_rotation_new_payloads_use_the_new_version_and_old_ones_still_decode() -> None:
    transit = FakeTransit()
    codec = EnvelopePayloadCodec(transit)
    [old] = await codec.encode([payload("before")])
    transit.version = 2
    codec.forget()  # what a restart (or max_age) does: the next payload gets a fresh data key
    [new] = await codec.encode([payload("after")])
    assert (old.metadata[KEY_VERSION], new.metadata[KEY_VERSION]) == (b"1", b"2")
    reader = EnvelopePayloadCodec(transit)
    assert [p.data for p in await reader.decode([old, new])] == [b'"before"', b'"after"']


async def test_failure_messages_and_stack_traces_are_encrypted_too() -> None:
    converter = encrypted_data_converter(EnvelopePayloadCodec(FakeTransit()))
    failure = Failure()
    error = ApplicationError(f"could not parse {MARKER}", {"code": "bad"}, type="invalid-input")
    await converter.encode_failure(error, failure)
    assert MARKER.encode() not in failure.SerializeToString()
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    back = await converter.decode_failure(failure)
    assert isinstance(back, ApplicationError)
    assert MARKER in str(back)
    assert back.details == ({"code": "bad"},)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EnvelopePayloadCodec(FakeTransit(), max_uses=0)


async def test_without_approle_credentials_payloads_stay_plaintext_except_in_prod(tmp_path: Path) -> None:
    # The compose stack provisions no AppRoles yet: its processes run without the codec, all alike.
    assert await payload_codec(load_settings(home=tmp_path, environment="dev"), "ocr") is None
    with pytest.raises(Unavailable, match="AppRole of ocr"):
        await payload_codec(load_settings(home=tmp_path, environment="prod"), "ocr")


async def test_openbao_away_at_start_is_unavailable_naming_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, openbao_port=9, environment="dev", tls=False)  # nothing listens on 9
    settings.secrets_dir.mkdir(parents=True)
    settings.secret_path("approle-ocr.json").write_text('{"role_id": "r", "secret_id": "s"}')
    with pytest.raises(Unavailable, match=r"workflow payload encryption needs OpenBao at http://127\.0\.0\.1:9"):
        await payload_codec(settings, "ocr")
