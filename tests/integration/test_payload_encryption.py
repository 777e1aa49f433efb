"""Encrypted Temporal payloads on the real stack: ciphertext on disk, the codec endpoint, rotation.

A run of the engine's ``t_pipeline`` carries a unique marker through the services' workers (each
with its own AppRole and codec). The Temporal state files must not hold it; a client without the
codec sees only ``binary/encrypted`` payloads; the gateway's ``/v1/codec`` decodes them for an
admin (header or codec-session cookie) and for nobody else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import MarkerRecordedEventAttributes
from temporalio.client import Client as TemporalClient

from shared.capabilities import DATA_CONVERTER
from shared.clients import postgres_engine, temporal_client
from shared.crypto import KeyAdmin, TransitKeyring
from shared.crypto.payload_codec import ENCODING, KEY_VERSION, EnvelopePayloadCodec
from shared.errors import PermanentFailure
from shared.identity.apikeys import ApiKeyStore
from shared.settings import HearthSettings
from shared.tls import temporal_tls
from tests.integration.histories import history_decoded
from workflows.runs import RunService
from workflows.versions import DefinitionStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FINISHED = ("completed", "failed", "cancelled", "terminated", "timed_out")


@pytest.fixture(scope="module")
async def temporal(stack: HearthSettings) -> TemporalClient:
    return await temporal_client(stack)


@pytest.fixture(scope="module")
async def plain_temporal(stack: HearthSettings) -> TemporalClient:
    """A client without the codec: what Temporal itself (and anyone reading its database) sees."""
    return await TemporalClient.connect(
        stack.temporal_address,
        namespace=stack.temporal_namespace,
        data_converter=DATA_CONVERTER,
        tls=temporal_tls(stack),
    )


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=1)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def encrypted_run(stack: HearthSettings, temporal: TemporalClient, engine: AsyncEngine) -> dict[str, str]:
    """A finished ``t_pipeline`` run whose input holds a unique marker: its id and the marker."""
    marker = f"HEARTH-WF-MARKER-{uuid.uuid4().hex}"
    runs = RunService(temporal, DefinitionStore(engine))
    started = await runs.start("t_pipeline", {"x": [[1, 2, 3, 4]], "tag": marker})
    deadline = time.monotonic() + 150
    detail = await runs.describe(started.id)
    while detail.status not in FINISHED:
        assert time.monotonic() < deadline, f"run {started.id} still {detail.status}"
        await asyncio.sleep(0.3)
        detail = await runs.describe(started.id)
    assert detail.status == "completed", detail.model_dump_json()
    # Decrypted by this client's codec, the marker travelled through every step.
    assert marker in detail.model_dump_json()
    return {"run_id": started.id, "marker": marker}


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _payloads(message: Message, skip: tuple[str, ...] = ("header", "search_attributes")) -> list[Payload]:
    """Every Payload in ``message`` but those never encoded, by design.

    Those are trace headers, search attributes, and the SDK's own bookkeeping in a local
    activity's marker (``details["data"]``: sequence, attempt, activity type, times; the activity's
    result is ``details["result"]``, encrypted).
    """
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.message_type is None or field.name in skip:
            continue
        if field.message_type.GetOptions().map_entry:
            if not field.message_type.fields_by_name["value"].message_type:
                continue
            marker = isinstance(message, MarkerRecordedEventAttributes) and field.name == "details"
            items = [v for k, v in value.items() if not (marker and k == "data")]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            elif isinstance(item, Message):
                found.extend(_payloads(item, skip))
    return found


def _as_json(payloads: list[Payload]) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


async def test_the_temporal_database_holds_no_plaintext_of_a_run(
    stack: HearthSettings, plain_temporal: TemporalClient, encrypted_run: dict[str, str]
) -> None:
    temporal_dir = stack.data_dir("temporal")
    # The control: a run started without the codec (nobody polls its queue) puts its input on
    # disk in plaintext, so the scan below would find an unencrypted one, WAL files included.
    control = f"HEARTH-WF-PLAIN-{uuid.uuid4().hex}"
    handle = await plain_temporal.start_workflow(
        "NoSuchWorkflow",
        {"text": control},
        id=f"plain-control-{uuid.uuid4().hex[:8]}",
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
        execution_timeout=timedelta(minutes=5),
    )
    try:
        for _ in range(100):
            if _files_containing(temporal_dir, control.encode()):
                break
            await asyncio.sleep(0.2)
        assert _files_containing(temporal_dir, control.encode()), f"the plaintext control never reached {temporal_dir}"
    finally:
        await handle.terminate("control done")
    names = sorted(p.name for p in temporal_dir.iterdir())
    assert "temporal.db" in names
    assert _files_containing(temporal_dir, encrypted_run["marker"].encode()) == [], names


async def test_without_the_codec_a_history_shows_only_encrypted_payloads(
    plain_temporal: TemporalClient, temporal: TemporalClient, encrypted_run: dict[str, str]
) -> None:
    history = await plain_temporal.get_workflow_handle(encrypted_run["run_id"]).fetch_history()
    marker = encrypted_run["marker"].encode()
    assert marker not in history.to_json().encode()
    payloads = [p for event in history.events for p in _payloads(event)]
    assert len(payloads) >= 6  # the run's input, each activity's input and result, the run's result
    assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encryption-key-id"] == b"hearth-payloads"
    # With the codec, the same history decrypts (and its failures too, if any), marker included.
    codec = temporal.data_converter.payload_codec
    assert codec is not None
    await history_decoded(history, codec)
    decoded = [p for event in history.events for p in _payloads(event)]
    assert b"binary/encrypted" not in {p.metadata["encoding"] for p in decoded}
    assert any(marker in p.data for p in decoded)


async def test_the_codec_endpoint_decodes_for_an_admin_only(
    stack: HearthSettings, plain_temporal: TemporalClient, engine: AsyncEngine, encrypted_run: dict[str, str]
) -> None:
    history = await plain_temporal.get_workflow_handle(encrypted_run["run_id"]).fetch_history()
    body = _as_json(list(history.events[0].workflow_execution_started_event_attributes.input.payloads))
    url = f"{stack.gateway_url}/v1/codec/decode"
    admin = stack.read_secret("admin-api-key")
    namespace = {"X-Namespace": stack.temporal_namespace}
    user = (await ApiKeyStore(engine).create(f"codec-user-{uuid.uuid4().hex[:6]}", "user")).key

    async with httpx.AsyncClient(timeout=30) as http:
        ok = await http.post(url, json=body, headers={"Authorization": f"Bearer {admin}", **namespace})
        assert ok.status_code == 200, ok.text
        [decoded] = ok.json()["payloads"]
        assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
        assert encrypted_run["marker"].encode() in base64.b64decode(decoded["data"])

        assert (await http.post(url, json=body, headers=namespace)).status_code == 401
        refused = await http.post(url, json=body, headers={"Authorization": f"Bearer {user}", **namespace})
        assert refused.status_code == 403, refused.text
        assert encrypted_run["marker"] not in refused.text
        other_ns = await http.post(url, json=body, headers={"Authorization": f"Bearer {admin}", "X-Namespace": "x"})
        assert other_ns.status_code == 400
        garbage = await http.post(url, content=b"{not json", headers={"Authorization": f"Bearer {admin}"})
        assert garbage.status_code == 400
        tampered = dict(body["payloads"][0])
        data = bytearray(base64.b64decode(tampered["data"]))
        data[-1] ^= 1
        tampered["data"] = base64.b64encode(bytes(data)).decode()
        altered = await http.post(url, json={"payloads": [tampered]}, headers={"Authorization": f"Bearer {admin}"})
        assert altered.status_code == 400
        assert altered.json()["type"].endswith("/seal-tampered")

        # /encode gives what workers write; it decodes back.
        plain = _as_json([Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')])
        encoded = await http.post(
            f"{stack.gateway_url}/v1/codec/encode", json=plain, headers={"Authorization": f"Bearer {admin}"}
        )
        assert encoded.status_code == 200, encoded.text
        assert base64.b64decode(encoded.json()["payloads"][0]["metadata"]["encoding"]) == ENCODING
        back = await http.post(url, json=encoded.json(), headers={"Authorization": f"Bearer {admin}"})
        assert back.json() == plain


async def test_the_temporal_ui_reaches_the_codec_with_a_session_cookie(
    stack: HearthSettings, plain_temporal: TemporalClient, engine: AsyncEngine, encrypted_run: dict[str, str]
) -> None:
    ui = stack.temporal_ui_url
    async with httpx.AsyncClient(timeout=30) as http:
        settings = (await http.get(f"{ui}/api/v1/settings")).json()
    assert settings["Codec"]["Endpoint"] == f"{stack.gateway_url}/v1/codec"

    history = await plain_temporal.get_workflow_handle(encrypted_run["run_id"]).fetch_history()
    body = _as_json(list(history.events[0].workflow_execution_started_event_attributes.input.payloads))
    admin = stack.read_secret("admin-api-key")
    user = (await ApiKeyStore(engine).create(f"codec-user-{uuid.uuid4().hex[:6]}", "user")).key
    origin = {"Origin": ui}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        # The browser's preflight: granted for the UI's origin only, with credentials.
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        granted = await http.options("/v1/codec/decode", headers={**origin, **preflight})
        assert granted.status_code == 204
        assert granted.headers["access-control-allow-origin"] == ui
        assert granted.headers["access-control-allow-credentials"] == "true"
        assert "x-namespace" in granted.headers["access-control-allow-headers"]
        foreign = await http.options("/v1/codec/decode", headers={"Origin": "http://evil.example", **preflight})
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers
        # Other routes get no CORS at all.
        other = await http.get("/v1/models", headers={**origin, "Authorization": f"Bearer {admin}"})
        assert "access-control-allow-origin" not in other.headers

        # No session yet: the cookie-less request of the UI is refused.
        assert (await http.post("/v1/codec/decode", json=body, headers=origin)).status_code == 401
        opened = await http.post("/v1/codec/session", headers={"Authorization": f"Bearer {admin}"})
        assert opened.status_code == 204, opened.text
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "Path=/v1/codec" in cookie
        assert "samesite=strict" in cookie.lower()
        decoded = await http.post("/v1/codec/decode", json=body, headers=origin)  # the cookie jar sends it
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == ui
        assert encrypted_run["marker"].encode() in base64.b64decode(decoded.json()["payloads"][0]["data"])
        # The cookie is no key elsewhere.
        http.headers.pop("Authorization", None)
        assert (await http.get("/v1/models")).status_code == 401
        closed = await http.delete("/v1/codec/session")
        assert closed.status_code == 204
        assert (await http.post("/v1/codec/decode", json=body, headers=origin)).status_code == 401

    # A user's key in the cookie is refused like in the header.
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, cookies={"hearth_codec": user}) as http:
        assert (await http.post("/v1/codec/decode", json=body, headers=origin)).status_code == 403


async def test_rotation_keeps_old_payloads_readable(stack: HearthSettings) -> None:
    codec = EnvelopePayloadCodec(TransitKeyring.from_settings(stack, "ocr"))
    [before] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"before rotation"')])
    version = int(before.metadata[KEY_VERSION])

    assert await KeyAdmin.from_settings(stack).rotate_payload_key() == version + 1
    codec.forget()
    [after] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"after rotation"')])
    assert int(after.metadata[KEY_VERSION]) == version + 1

    reader = EnvelopePayloadCodec(TransitKeyring.from_settings(stack, "nlp"))  # another service, cold cache
    assert [p.data for p in await reader.decode([before, after])] == [b'"before rotation"', b'"after rotation"']
    assert reader.stats.unwrap_calls == 2


async def test_a_service_may_not_rotate_the_payload_key(stack: HearthSettings) -> None:
    creds = json.loads(stack.read_secret("approle-gateway.json"))
    as_service = KeyAdmin(stack.openbao_url, creds["role_id"], creds["secret_id"])
    with pytest.raises(PermanentFailure) as refused:
        await as_service.rotate_payload_key()
    assert refused.value.code == "transit-refused"


async def test_an_operator_sees_the_decrypted_input_in_the_temporal_ui(
    stack: HearthSettings, plain_temporal: TemporalClient, encrypted_run: dict[str, str]
) -> None:
    """The whole operator path in headless Chromium: the UI's codec setting, dashboard sign-in, the history."""
    from tests.integration.browser import chromium, new_page

    handle = plain_temporal.get_workflow_handle(encrypted_run["run_id"])
    run_id = (await handle.describe()).run_id
    ui = stack.temporal_ui_url
    ns = stack.temporal_namespace
    history = f"{ui}/namespaces/{ns}/workflows/{encrypted_run['run_id']}/{run_id}/history"
    marker = encrypted_run["marker"]
    async with chromium() as browser, new_page(browser) as tab:
        # The UI's codec setting, as the operator sets it in the UI (kept in its localStorage):
        # this browser's endpoint, with cross-origin credentials.
        await tab.page.goto(f"{ui}/namespaces/{ns}/workflows")
        await tab.page.evaluate(
            """([endpoint]) => {
                localStorage.setItem("endpoint", JSON.stringify(endpoint));
                localStorage.setItem("includeCredentials", "true");
                localStorage.setItem("overrideRemoteCodecConfiguration", "true");
            }""",
            [f"{stack.gateway_url}/v1/codec"],
        )
        # Before any codec session the gateway refuses the UI (401): it says so, the input stays ciphertext.
        await tab.page.goto(history)
        await tab.page.locator("#content").get_by_text("Codec Server could not connect").wait_for(timeout=60_000)
        await tab.page.get_by_role("link", name="hearth.interpreter").wait_for(timeout=30_000)
        assert await tab.page.get_by_text(marker).count() == 0
        await tab.screenshot("temporal-ui-encrypted-payload")

        # Signing in to the dashboard with an admin key opens the codec session (the cookie).
        await tab.page.goto(f"{stack.gateway_url}/dashboard")
        await tab.page.fill("#api-key", stack.read_secret("admin-api-key"))
        async with tab.page.expect_response(lambda r: r.url.endswith("/v1/codec/session")) as opened:
            await tab.page.click("#key-form button[type=submit]")
        assert (await opened.value).status == 204
        cookies = await tab.page.context.cookies(f"{stack.gateway_url}/v1/codec/decode")
        # (The UI's own `_csrf` cookie is there too: cookies are per host, not per port.)
        assert [c["httpOnly"] for c in cookies if c["name"] == "hearth_codec"] == [True]

        # The same history now shows the input decrypted, marker included.
        await tab.page.goto(history)
        try:
            await tab.page.get_by_text(marker).first.wait_for(timeout=60_000)
        except Exception as exc:
            shot = await tab.screenshot("temporal-ui-codec-failed")
            raise AssertionError(f"the decrypted input never showed (screenshot {shot})") from exc
        await tab.screenshot("temporal-ui-decrypted-payload")
