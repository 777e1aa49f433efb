"""Durable JetStream pull consumers with explicit acks, bounded redelivery and dead letters.

What happens to a message is decided by one pure function, ``decide``:

* the handler returned → **ack**;
* a non-retryable ``HearthError`` (``InvalidInput``, ``PermanentFailure`` …), an envelope that
  does not parse, an unknown type or data failing its schema → **dead letter** with the reason,
  then ``term`` (no redelivery);
* a retryable ``HearthError`` (``Unavailable``) or any unexpected exception → **nak** with the
  delay ``backoff[delivery - 1]`` (the last value repeats);
* the same on delivery ``max_deliver`` → **dead letter** with the last error.

Deliveries that never got a verdict (the process died, or the handler outlived ``ack_wait``
without the consumer's keep-alive) are redelivered by JetStream; once a message arrives for
the ``max_deliver + 1``-th time it is dead-lettered without calling the handler again. The
server-side ``max_deliver`` is unlimited on purpose: the consumer is the one place that bounds
deliveries, so a message is never silently parked by the server when dead-lettering itself
fails for a while.

Handlers must be idempotent (redelivery is normal): ``envelope.id`` is the event's stable id
and the natural de-duplication key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from shared.bus import Bus, map_api_error
from shared.errors import HearthError, InvalidInput, NotFound, PermanentFailure, Unavailable
from shared.events.catalog import DEADLETTER_TYPE, DeadLetterRecord, deadletter_subject
from shared.events.envelope import Envelope
from shared.logging import get_logger
from shared.tracing import extract_context, get_tracer

log = get_logger(__name__)
_tracer = get_tracer(__name__)

DEFAULT_BACKOFF: Final = (1.0, 5.0, 30.0, 120.0, 600.0)
DEFAULT_ACK_WAIT: Final = 30.0
_DURABLE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_MAX_ERROR_DETAIL: Final = 2000
# Room kept for the dead-letter record's own fields and headers inside the server's max_payload.
_DEADLETTER_OVERHEAD: Final = 64 * 1024
_DELIVER_POLICY_FIXED: Final = 10012  # JetStream: "deliver policy can not be updated"
_DEADLETTER_NAMESPACE: Final = uuid.UUID("5b0e4a8e-7d0c-4c52-9a53-1f4f7a3e2d10")

EventHandler = Callable[[Envelope, Any], Awaitable[None]]
"""``async def handle(envelope, data) -> None``; ``data`` is the validated payload model."""


class Action(StrEnum):
    """What the consumer does with a delivered message."""

    ACK = "ack"
    NAK = "nak"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one delivery: the action, a redelivery delay, the dead-letter reason."""

    action: Action
    delay: float | None = None
    reason: dict[str, Any] | None = None


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An error as a JSON-able dict: ``HearthError.to_dict()``, or the same shape for the unexpected."""
    if isinstance(exc, HearthError):
        return exc.to_dict()
    return {
        "kind": type(exc).__name__,
        "code": "unexpected-error",
        "title": "Unexpected error",
        "detail": str(exc)[:_MAX_ERROR_DETAIL],
        "status": 500,
        "retryable": True,
    }


def overdue_error(num_delivered: int, max_deliver: int) -> PermanentFailure | None:
    """The error for a delivery past ``max_deliver`` (earlier ones ended without a verdict)."""
    if num_delivered <= max_deliver:
        return None
    return PermanentFailure(
        f"delivered {num_delivered} times without a verdict (the handler crashed or outlived ack_wait)",
        code="max-deliveries-exceeded",
    )


def decide(
    error: BaseException | None,
    *,
    num_delivered: int,
    max_deliver: int,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
) -> Decision:
    """Map the outcome of one delivery to ack / nak-with-delay / dead letter (see module docs)."""
    if error is None:
        return Decision(Action.ACK)
    if isinstance(error, HearthError) and not error.retryable:
        return Decision(Action.DEAD_LETTER, reason=error.to_dict())
    if num_delivered >= max_deliver:
        last = describe_error(error)
        gave_up = PermanentFailure(
            f"gave up after {num_delivered} deliveries; last error: {last['kind']}: {last['detail']}",
            code="max-deliveries-exceeded",
            extra={"last_error": last},
        )
        return Decision(Action.DEAD_LETTER, reason=gave_up.to_dict())
    delay = backoff[min(num_delivered, len(backoff)) - 1] if backoff else None
    return Decision(Action.NAK, delay=delay)


def dead_letter_record(
    msg: Msg, *, consumer: str, deliveries: int, reason: dict[str, Any], max_payload: int
) -> DeadLetterRecord:
    """Describe a message given up on, copying it when it fits in one NATS message."""
    raw = msg.data
    original: dict[str, Any] | None = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        original = parsed if isinstance(parsed, dict) else None
    copy_size = len(raw) if original is not None else (len(raw) + 2) // 3 * 4
    truncated = copy_size > max(0, max_payload - _DEADLETTER_OVERHEAD)
    meta = msg.metadata
    return DeadLetterRecord(
        original_subject=msg.subject,
        original_stream=meta.stream,
        original_sequence=meta.sequence.stream,
        original_envelope=None if truncated else original,
        original_base64=None if truncated or original is not None else base64.b64encode(raw).decode(),
        original_headers=dict(msg.headers or {}),
        original_size=len(raw),
        original_sha256=hashlib.sha256(raw).hexdigest(),
        original_truncated=truncated,
        consumer=consumer,
        deliveries=deliveries,
        reason=reason,
    )


class EventConsumer:
    """A durable pull consumer on one filter subject, settling each message per ``decide``.

    ``start()`` creates (or updates) the durable consumer and begins fetching; ``stop()``
    finishes the messages in hand and stops. ``batch`` messages are handled concurrently.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        durable: str,
        filter_subject: str,
        handler: EventHandler,
        max_deliver: int | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        ack_wait: float = DEFAULT_ACK_WAIT,
        batch: int = 1,
        fetch_timeout: float = 5.0,
        description: str | None = None,
        deliver_policy: api.DeliverPolicy = api.DeliverPolicy.ALL,
    ) -> None:
        if not _DURABLE_RE.match(durable):
            raise ValueError(f"durable name {durable!r} must match {_DURABLE_RE.pattern}")
        if batch < 1 or ack_wait <= 0:
            raise ValueError("batch must be >= 1 and ack_wait > 0")
        self.bus = bus
        self.durable = durable
        self.filter_subject = filter_subject
        self.max_deliver = max_deliver if max_deliver is not None else bus.settings.consumer_max_deliver
        if self.max_deliver < 1:
            raise ValueError("max_deliver must be >= 1")
        self.backoff = tuple(backoff)
        self.ack_wait = ack_wait
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.description = description or f"Hearth consumer {durable} on {filter_subject}"
        self.deliver_policy = deliver_policy
        self.stream = bus.catalog.stream_for_subject(filter_subject).name
        self._handler = handler
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._fetching = False

    def consumer_config(self) -> api.ConsumerConfig:
        """The JetStream consumer this object binds to."""
        return api.ConsumerConfig(
            durable_name=self.durable,
            description=self.description,
            deliver_policy=self.deliver_policy,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # bounded by this class, see the module docstring
            filter_subject=self.filter_subject,
            max_ack_pending=max(1000, self.batch * 4),
        )

    async def start(self) -> None:
        """Create or update the durable consumer and start handling messages."""
        if self._task is not None:
            return
        try:
            try:
                await self.bus.js.add_consumer(self.stream, self.consumer_config())
            except nats.js.errors.APIError as exc:
                if exc.err_code != _DELIVER_POLICY_FIXED:
                    raise
                # An existing durable keeps the deliver policy it was created with: that is where
                # it started, and its position is what matters now. Update the rest.
                info = await self.bus.js.consumer_info(self.stream, self.durable)
                self.deliver_policy = info.config.deliver_policy or self.deliver_policy
                await self.bus.js.add_consumer(self.stream, self.consumer_config())
            self._sub = await self.bus.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        except nats.js.errors.APIError as exc:
            raise map_api_error(exc, f"creating consumer {self.durable} on {self.stream}") from exc
        except nats.errors.Error as exc:
            raise Unavailable(f"JetStream did not answer creating consumer {self.durable}: {exc!r}") from exc
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.durable}")
        log.info("consumer started", durable=self.durable, filter_subject=self.filter_subject, stream=self.stream)

    async def stop(self) -> None:
        """Stop fetching; messages being handled are finished and settled first."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        if self._fetching:
            task.cancel()  # an idle fetch; a message racing in is redelivered after ack_wait
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        log.info("consumer stopped", durable=self.durable)

    async def _run(self) -> None:
        sub = self._sub
        if sub is None:
            raise RuntimeError("consumer loop started before start()")
        while not self._stopping.is_set():
            self._fetching = True
            try:
                msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
            except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either when nothing came
                continue
            except Exception as exc:  # the loop must outlive a reconnect or a server hiccup
                log.warning("fetch failed, retrying", durable=self.durable, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            finally:
                self._fetching = False
            if len(msgs) == 1:
                await self._process_logged(msgs[0])
            else:
                await asyncio.gather(*(self._process_logged(msg) for msg in msgs))

    async def _process_logged(self, msg: Msg) -> None:
        try:
            await self.process(msg)
        except Exception:  # e.g. the ack could not be sent: JetStream redelivers after ack_wait
            log.exception("settling a message failed", durable=self.durable, subject=msg.subject)

    async def process(self, msg: Msg) -> Decision:
        """Handle one delivered message and settle it; returns the decision taken."""
        meta = msg.metadata
        num_delivered = meta.num_delivered or 1
        with (
            _tracer.start_as_current_span(
                f"consume {msg.subject}",
                context=extract_context(msg.headers),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": msg.subject,
                    "messaging.consumer.group.name": self.durable,
                    "messaging.message.delivery_count": num_delivered,
                },
            ) as span,
            structlog.contextvars.bound_contextvars(
                durable=self.durable, subject=msg.subject, stream_seq=meta.sequence.stream, delivery=num_delivered
            ),
        ):
            error: BaseException | None = overdue_error(num_delivered, self.max_deliver)
            event_id: str | None = None
            if error is None:
                try:
                    envelope, data = self._parse(msg)
                except HearthError as exc:
                    error = exc
                else:
                    event_id = envelope.id
                    span.set_attribute("messaging.message.id", envelope.id)
                    with structlog.contextvars.bound_contextvars(event_id=envelope.id, event_type=envelope.type):
                        error = await self._call_handler(msg, envelope, data)
            decision = decide(error, num_delivered=num_delivered, max_deliver=self.max_deliver, backoff=self.backoff)
            self._log(decision, error, event_id)
            await self._settle(msg, decision, num_delivered)
            return decision

    def _parse(self, msg: Msg) -> tuple[Envelope, BaseModel]:
        """The envelope and its validated payload; ``InvalidInput`` when either is wrong."""
        envelope = Envelope.from_json(msg.data)
        try:
            event = self.bus.catalog.get_event_type(envelope.type)
        except NotFound as exc:
            raise InvalidInput(exc.detail, code="unknown-event-type") from None
        self.bus.catalog.check_subject(event, msg.subject)
        return envelope, self.bus.catalog.validate_data(envelope)

    async def _call_handler(self, msg: Msg, envelope: Envelope, data: BaseModel) -> BaseException | None:
        keep_alive = asyncio.create_task(self._keep_alive(msg))
        try:
            await self._handler(envelope, data)
        except asyncio.CancelledError:
            await asyncio.shield(msg.nak())
            raise
        except Exception as exc:
            return exc
        finally:
            keep_alive.cancel()
        return None

    async def _keep_alive(self, msg: Msg) -> None:
        """Tell JetStream the message is still being worked on, so long handlers keep it."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    async def _settle(self, msg: Msg, decision: Decision, num_delivered: int) -> None:
        if decision.action is Action.ACK:
            await msg.ack()
            return
        if decision.action is Action.NAK:
            await msg.nak(delay=decision.delay)
            return
        try:
            await self._dead_letter(msg, decision.reason or {}, num_delivered)
        except HearthError as exc:
            # Keep the message rather than lose it: it is dead-lettered on a later delivery.
            delay = self.backoff[-1] if self.backoff else None
            log.error("dead-lettering failed; message kept for redelivery", error=exc.to_dict(), delay=delay)
            await msg.nak(delay=delay)
            return
        await msg.term()

    async def _dead_letter(self, msg: Msg, reason: dict[str, Any], num_delivered: int) -> None:
        record = dead_letter_record(
            msg,
            consumer=self.durable,
            deliveries=num_delivered,
            reason=reason,
            max_payload=self.bus.nc.max_payload,
        )
        # Derived from the stream position, so a re-run of this step is de-duplicated.
        position = f"{record.original_stream}:{record.original_sequence}:{self.durable}"
        base = {
            "id": str(uuid.uuid5(_DEADLETTER_NAMESPACE, position)),
            "source": f"hearth/consumer/{self.durable}",
            "type": DEADLETTER_TYPE,
            "data": record.model_dump(mode="json"),
        }
        original = record.original_envelope or {}
        context = {
            "subject": original.get("id"),
            "tenant": original.get("tenant"),
            "correlationid": original.get("correlationid"),
        }
        try:  # keep the original's tenant and correlation when they are valid ...
            envelope = Envelope.model_validate({**base, **{k: v for k, v in context.items() if v is not None}})
        except ValidationError:  # ... a broken original must still be dead-lettered
            envelope = Envelope.model_validate(base)
        await self.bus.publish(envelope, subject=deadletter_subject(msg.subject))

    def _log(self, decision: Decision, error: BaseException | None, event_id: str | None) -> None:
        if decision.action is Action.ACK:
            return
        if error is not None and not isinstance(error, HearthError):
            log.error(
                "handler raised an unexpected error", action=decision.action.value, event_id=event_id, exc_info=error
            )
        else:
            log.warning(
                "message not acknowledged",
                action=decision.action.value,
                event_id=event_id,
                delay=decision.delay,
                reason=decision.reason or (describe_error(error) if error is not None else None),
            )
