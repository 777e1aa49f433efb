"""The bus is not open: on the real stack's nats-server, each user reaches only its own subjects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from shared.bus import Bus
from shared.capabilities import HealthCheck, ServiceHealth, call_capability
from shared.errors import Forbidden
from shared.events import DocumentSubmitted, Envelope
from shared.natsauth import connect_options, publisher_user
from shared.settings import HearthSettings
from tests.integration.conftest import hearth_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Connection:
    """A raw nats-py connection that keeps the errors the server sent it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def open(self, stack: HearthSettings, user: str, password: str | None = None) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(
            stack.nats_url,
            error_cb=on_error,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=3,
            **connect_options(stack, user, password),
        )
        return self.nc

    async def refused(self, operation: str, subject: str, timeout: float = 3.0) -> bool:
        """Whether the server reported a permissions violation for ``operation`` on ``subject``."""
        wanted = f'permissions violation for {operation} to "{subject.lower()}"'
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if any(wanted in e for e in self.errors):
                return True
            await asyncio.sleep(0.05)
        return False


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Connection]]]:
    opened: list[Connection] = []

    async def open_as(stack: HearthSettings, user: str, password: str | None = None) -> Connection:
        conn = Connection()
        await conn.open(stack, user, password)
        opened.append(conn)
        return conn

    yield open_as
    for conn in opened:
        if conn.nc is not None and not conn.nc.is_closed:
            await conn.nc.close()


async def test_anonymous_and_wrong_passwords_are_refused(stack: HearthSettings) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(stack.nats_url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(
            stack.nats_url, user="ocr", password="not-its-password", allow_reconnect=False, max_reconnect_attempts=0
        )


async def test_a_service_cannot_publish_on_another_services_subjects(
    stack: HearthSettings, connect: Callable[..., Awaitable[Connection]]
) -> None:
    ocr = await connect(stack, "ocr")
    assert ocr.nc is not None
    await ocr.nc.publish("hearth.svc.nlp.analyze", b'{"text": "x"}')
    await ocr.nc.publish("hearth.document.processed.v1", b"{}")  # the gateway's event
    await ocr.nc.flush()
    assert await ocr.refused("publish", "hearth.svc.nlp.analyze")
    assert await ocr.refused("publish", "hearth.document.processed.v1")
    assert ocr.nc.is_connected  # refused, not disconnected

    # Through the bus the refusal is a clear Forbidden, not a bare timeout.
    async with await Bus.connect(stack, name="test-perm-ocr", user="ocr") as bus:
        with pytest.raises(Forbidden, match=r"publish to hearth\.svc\.nlp\.analyze for user ocr"):
            await call_capability(bus, "nlp.analyze", HealthCheck(), ServiceHealth, timeout=2)
        envelope = Envelope.new(
            "hearth.ingest.document.v1",
            DocumentSubmitted(text="x", source_system="perm-test"),
            source="hearth/test",
        )
        with pytest.raises(Forbidden, match=r"hearth\.ingest\.document\.v1"):
            await bus.publish(envelope, timeout=2)

    # What a service does declare works under the same scheme: the gateway asks ocr for its health.
    async with await Bus.connect(stack, name="test-perm-gateway", user="gateway") as bus:
        health = await call_capability(bus, "ocr.health", HealthCheck(), ServiceHealth, timeout=10)
    assert health.service == "ocr"


async def test_a_service_cannot_serve_or_read_another_services_subjects(
    stack: HearthSettings, connect: Callable[..., Awaitable[Connection]]
) -> None:
    ocr = await connect(stack, "ocr")
    assert ocr.nc is not None
    sniffed: list[str] = []

    async def keep(msg: nats.aio.msg.Msg) -> None:
        sniffed.append(msg.subject)

    for subject in ("_INBOX.gateway.>", "_INBOX.>", "hearth.svc.nlp.>", "hearth.infer.*"):
        await ocr.nc.subscribe(subject, cb=keep)
    await ocr.nc.subscribe("hearth.svc.ocr.perm-probe", cb=keep)  # its own subjects: allowed
    await ocr.nc.flush()
    for subject in ("_INBOX.gateway.>", "_INBOX.>", "hearth.svc.nlp.>", "hearth.infer.*"):
        assert await ocr.refused("subscription", subject), subject
    assert not await ocr.refused("subscription", "hearth.svc.ocr.perm-probe", timeout=0.5)

    # The gateway's requests and their replies never reach the ocr user's subscriptions.
    async with await Bus.connect(stack, name="test-perm-gateway", user="gateway") as bus:
        await call_capability(bus, "nlp.health", HealthCheck(), ServiceHealth, timeout=10)
    await asyncio.sleep(0.3)
    assert sniffed == []


async def _wait_connectable(stack: HearthSettings, user: str, password: str) -> Bus:
    """The reload is asynchronous: the new user exists once the server has read the config.

    A reload re-checks every connected client's credentials, which takes seconds on a loaded box.
    """
    for _ in range(300):
        try:
            return await Bus.connect(stack, name=f"test-{user}", user=user, password=password, connect_attempts=1)
        except Exception:  # not reloaded yet
            await asyncio.sleep(0.1)
    return await Bus.connect(stack, name=f"test-{user}", user=user, password=password, connect_attempts=1)


async def test_a_publisher_publishes_ingest_reads_its_result_and_nothing_else(
    stack: HearthSettings, stack_environment: dict[str, str], connect: Callable[..., Awaitable[Connection]]
) -> None:
    name = f"perm{uuid.uuid4().hex[:8]}"
    user = publisher_user(name)
    created = json.loads(hearth_cli(stack_environment, "nats", "publishers", "create", name, "--json").stdout)
    assert created["user"] == user
    listed = json.loads(hearth_cli(stack_environment, "nats", "publishers", "list", "--json").stdout)
    assert name in [p["name"] for p in listed]
    assert created["password"] not in json.dumps(listed)

    bus = await _wait_connectable(stack, user, created["password"])
    try:
        # Its results, live: the outcome of the document it submits.
        results: asyncio.Queue[dict[str, object]] = asyncio.Queue()

        async def on_result(msg: nats.aio.msg.Msg) -> None:
            await results.put(json.loads(msg.data))

        await bus.nc.subscribe("hearth.document.processed.v1", cb=on_result)
        await bus.nc.flush()
        external_id = f"PERM-{uuid.uuid4().hex[:8]}"
        data = DocumentSubmitted(
            text="采购合同 PO-7 甲方 Hearth 乙方 Example", source_system=name, external_id=external_id
        )
        ack = await bus.publish(Envelope.new("hearth.ingest.document.v1", data, source=f"lob/{name}"))
        assert ack.stream == "HEARTH_INGEST"
        while True:
            event = await asyncio.wait_for(results.get(), timeout=150)
            payload = event["data"]
            assert isinstance(payload, dict)
            if payload.get("external_id") == external_id:
                break
        assert payload["status"] == "processed", payload

        with pytest.raises(Forbidden, match=r"hearth\.infer\.x"):
            await bus.request("hearth.infer.x", b"{}", timeout=2)
    finally:
        await bus.close()

    raw = await connect(stack, user, created["password"])
    assert raw.nc is not None
    await raw.nc.publish("hearth.infer.x", b"{}")
    await raw.nc.publish("hearth.svc.ocr.health", b"{}")
    await raw.nc.subscribe("hearth.>")
    await raw.nc.subscribe("_INBOX.gateway.>")
    await raw.nc.flush()
    assert await raw.refused("publish", "hearth.infer.x")
    assert await raw.refused("publish", "hearth.svc.ocr.health")
    assert await raw.refused("subscription", "hearth.>")
    assert await raw.refused("subscription", "_INBOX.gateway.>")

    # Revoked: the server drops the user on reload, and a new connection is refused.
    hearth_cli(stack_environment, "nats", "publishers", "revoke", name)
    for _ in range(300):  # see _wait_connectable
        if raw.nc.is_closed:
            break
        await asyncio.sleep(0.1)
    assert raw.nc.is_closed
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization violation"):
        await nats.connect(
            stack.nats_url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            **connect_options(stack, user, created["password"]),
        )
