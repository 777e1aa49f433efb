"""Capabilities: one typed async function, two transports.

A service declares its work once::

    registry = CapabilityRegistry(service="ocr")

    @registry.capability("ocr.extract")
    async def extract(inp: ExtractText) -> TextExtracted: ...

and the registry exposes it

* over NATS request/reply on ``hearth.svc.ocr.extract`` in queue group ``hearth.svc.ocr``
  (a FastStream subscriber, ``registry.nats_subscribers(broker)``). The reply is JSON:
  ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": HearthError.to_dict()}``;
  ``call_capability`` re-raises the error as the same ``HearthError`` class;
* as the Temporal activity ``ocr.extract`` on task queue ``hearth-ocr``
  (``registry.activities()``): non-retryable ``HearthError`` kinds become
  ``ApplicationError(non_retryable=True, type=<code>)``, retryable ones a retryable
  ``ApplicationError``; the error dict rides in ``details[0]``. Temporal clients and workers must
  use ``DATA_CONVERTER`` (pydantic) so inputs and results travel as models.

Every registry also answers ``<service>.health`` with a ``ServiceHealth``. Adapters parse, call
and map; the logic lives in the function.

The NATS adapter is deliberately lean (measured in ``bench/bench_bus.py``, figures for the
reference 2-core box):

* it takes the raw ``nats.aio.msg.Msg`` through a pass-through async decoder: a handler asking
  for FastStream's ``NatsMessage`` gets it resolved by fast-depends in a worker thread
  (about +350 us per request);
* it answers with ``msg.respond`` (``no_reply=True``) instead of returning a value through
  FastStream's response publisher (about +45 us);
* ``service_broker`` turns fast-depends off for the broker (about +50 us);
* trace context travels in the headers; the one span is the server's (the caller's current
  span is its parent), no client span per call.

FastStream's own per-message pipeline still costs about +40% of a bare round trip;
``CapabilityRegistry.subscribe`` serves the same endpoints on plain nats-py subscriptions for
services where that matters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import os
import re
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

import nats.errors
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import trace
from pydantic import BaseModel, Field, ValidationError
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.exceptions import ApplicationError

from shared.bus import Bus, request
from shared.errors import HearthError, InvalidInput, PermanentFailure, Unavailable, error_from_dict
from shared.events.envelope import validation_reasons
from shared.logging import get_logger
from shared.metrics import record_capability
from shared.settings import HearthSettings
from shared.tracing import extract_context, get_tracer, inject_headers

if TYPE_CHECKING:
    from faststream.message import StreamMessage
    from faststream.nats.subscriber.usecases.basic import LogicSubscriber

log = get_logger(__name__)
_tracer = get_tracer(__name__)

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
ResultT = TypeVar("ResultT", bound=BaseModel)

SUBJECT_PREFIX: Final = "hearth.svc"
DATA_CONVERTER: Final = pydantic_data_converter
"""Pydantic models as JSON, without encryption: what ``encrypted_data_converter`` builds on, and
what replays histories recorded as plaintext. Live clients and workers get the encrypted one from
``shared.clients.temporal_client``."""


def encrypted_data_converter(codec: PayloadCodec) -> DataConverter:
    """``DATA_CONVERTER`` with every payload sealed by ``codec`` (``shared.crypto.payload_codec``).

    Failure messages and stack traces move into an encoded payload too (Temporal's
    ``DefaultFailureConverterWithEncodedAttributes``): an error may quote the document it failed on.
    """
    return dataclasses.replace(
        DATA_CONVERTER, payload_codec=codec, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
    )


_SERVICE_RE: Final = r"[a-z][a-z0-9_]*"
_NAME_RE: Final = re.compile(rf"^({_SERVICE_RE})\.({_SERVICE_RE}(\.{_SERVICE_RE})*)$")

try:
    _VERSION = metadata.version("hearth")
except metadata.PackageNotFoundError:  # running from a checkout that was not pip-installed
    _VERSION = "0.0.0"


def service_broker(settings: HearthSettings, *, name: str, **options: Any) -> NatsBroker:
    """A FastStream ``NatsBroker`` set up the way Hearth services want it.

    * ``apply_types=False``: capability endpoints parse their own input, so fast-depends'
      per-message argument model is pure cost (about 50 us per request on the reference box).
      Subscribers added to this broker by hand receive the decoded body as their one argument.
    * per-message "Received"/"Processed" records at DEBUG, through the standard logger that
      ``configure_logging`` formats (FastStream's default is INFO on its own handler);
    * reconnect forever;
    * the NATS user ``HEARTH_NATS_USER`` (``settings.nats_user``) with its own inbox prefix.

    ``options`` are passed to ``NatsBroker`` and win over these defaults.
    """
    from shared.natsauth import broker_options  # natsauth imports this module

    kwargs: dict[str, Any] = {
        **broker_options(settings),
        "name": name,
        "apply_types": False,
        "log_level": logging.DEBUG,
        "logger": logging.getLogger("hearth.faststream"),
        "max_reconnect_attempts": -1,
    }
    kwargs.update(options)
    return NatsBroker(settings.nats_url, **kwargs)


def capability_subject(name: str) -> str:
    """The request/reply subject of a capability: ``ocr.extract`` → ``hearth.svc.ocr.extract``."""
    return f"{SUBJECT_PREFIX}.{name}"


def task_queue_for(service: str) -> str:
    """The Temporal task queue of a service: ``hearth-<service>``."""
    return f"hearth-{service}"


class HealthCheck(BaseModel):
    """Input of ``<service>.health``: nothing (an empty object or an empty payload)."""


class ServiceHealth(BaseModel):
    """What ``<service>.health`` answers."""

    service: str
    status: Literal["ok", "degraded", "down"] = "ok"
    version: str
    pid: int
    uptime_s: float
    details: dict[str, Any] = Field(default_factory=dict)


class CapabilityReply(BaseModel, Generic[ResultT]):
    """The JSON reply of a capability over NATS."""

    ok: bool
    result: ResultT | None = None
    error: dict[str, Any] | None = None


_REPLY_MODELS: dict[type[BaseModel], type[CapabilityReply[Any]]] = {}


def reply_model(result_type: type[ResultT]) -> type[CapabilityReply[ResultT]]:
    """``CapabilityReply`` parametrised with a result model (cached: pydantic builds it once)."""
    model = _REPLY_MODELS.get(result_type)
    if model is None:
        model = _REPLY_MODELS[result_type] = CapabilityReply[result_type]  # type: ignore[valid-type]
    return model


def _error_reply(err: HearthError) -> bytes:
    return json.dumps({"ok": False, "error": err.to_dict()}, default=str).encode()


@dataclass(frozen=True, slots=True)
class Capability(Generic[InT, OutT]):
    """One declared capability and its two adapters' shared core."""

    name: str
    fn: Callable[[InT], Awaitable[OutT]]
    input_type: type[InT]
    result_type: type[OutT]
    description: str
    max_workers: int = 1
    activity: bool = True
    subject: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", capability_subject(self.name))

    @property
    def service(self) -> str:
        """The serving service: the name's first token (``ocr`` of ``ocr.extract``)."""
        return self.name.split(".", maxsplit=1)[0]

    async def handle_request(self, data: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        """The NATS adapter: parse the request, call, encode the reply. Never raises."""
        # The span name is the capability; attributes are left out, each costs on every request.
        context = extract_context(headers)
        started = time.perf_counter()
        ok = False
        with _tracer.start_as_current_span(self.name, context=context, kind=trace.SpanKind.SERVER) as span:
            try:
                try:
                    inp = self.input_type.model_validate_json(data or b"{}")
                except ValidationError as exc:
                    raise InvalidInput(
                        f"invalid input for {self.name}", extra={"errors": validation_reasons(exc)}
                    ) from None
                result = await self.fn(inp)
                if not isinstance(result, self.result_type):
                    result = self.result_type.model_validate(result)
                body = result.__pydantic_serializer__.to_json(result)
                ok = True
            except HearthError as err:
                span.set_status(trace.StatusCode.ERROR, err.code)
                log.warning("capability refused", capability=self.name, error=err.to_dict())
                return _error_reply(err)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                log.exception("capability failed unexpectedly", capability=self.name)
                return _error_reply(
                    HearthError(f"{self.name} failed unexpectedly; see the service log", code="internal-error")
                )
            finally:
                record_capability(self.service, self.name, "nats", ok, time.perf_counter() - started)
        return b'{"ok":true,"result":' + body + b"}"

    async def run_activity(self, inp: InT) -> OutT:
        """The Temporal adapter: call, and map ``HearthError`` to ``ApplicationError``.

        When the caller set a heartbeat timeout, the adapter heartbeats at a third of it while the
        function runs, so a long step stays alive and a dead worker is noticed within the timeout
        instead of the whole start-to-close timeout.
        """
        beating = _start_heartbeats()
        started = time.perf_counter()
        ok = False
        try:
            result = await self.fn(inp)
            ok = True
            return result
        except HearthError as err:
            raise ApplicationError(err.detail, err.to_dict(), type=err.code, non_retryable=not err.retryable) from err
        finally:
            record_capability(self.service, self.name, "temporal", ok, time.perf_counter() - started)
            if beating is not None:
                beating.cancel()


def _start_heartbeats() -> asyncio.Task[None] | None:
    """A task heartbeating the current activity at a third of its heartbeat timeout (or ``None``)."""
    if not activity.in_activity():
        return None
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        return None
    interval = max(timeout.total_seconds() / 3, 0.1)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    return asyncio.create_task(beat(), name="activity-heartbeat")


def _signature_types(fn: Callable[..., Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    """The input and result model of ``async def fn(inp: In) -> Out``."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 1:
        raise TypeError(f"{fn!r} must take exactly one argument (its input model)")
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(f"cannot resolve the type hints of {fn!r}: {exc}") from exc
    inp, out = hints.get(params[0].name), hints.get("return")
    for what, hint in (("input", inp), ("result", out)):
        if not (isinstance(hint, type) and issubclass(hint, BaseModel)):
            raise TypeError(f"{fn!r}: the {what} type must be a pydantic model, got {hint!r}")
    return typing.cast("type[BaseModel]", inp), typing.cast("type[BaseModel]", out)


async def _raw_message(msg: StreamMessage[Msg]) -> Msg:
    """FastStream decoder that hands the handler the nats-py message itself (see module docs)."""
    return msg.raw_message


class CapabilityRegistry:
    """The capabilities of one service, exposed over NATS and as Temporal activities."""

    def __init__(self, service: str, *, version: str = _VERSION, health: bool = True) -> None:
        if not re.fullmatch(_SERVICE_RE, service):
            raise ValueError(f"service name {service!r} must match {_SERVICE_RE}")
        self.service = service
        self.version = version
        self.task_queue = task_queue_for(service)
        self.queue_group = f"{SUBJECT_PREFIX}.{service}"
        self.started_at = time.monotonic()
        self._capabilities: dict[str, Capability[Any, Any]] = {}
        self._health_provider: Callable[[], Awaitable[ServiceHealth]] | None = None
        if health:
            self.register(
                f"{service}.health", self._health, description=f"Health of the {service} service.", activity=False
            )

    # ---- declaring -----------------------------------------------------------------------
    def capability(
        self, name: str, *, description: str | None = None, max_workers: int = 1, activity: bool = True
    ) -> Callable[[Callable[[InT], Awaitable[OutT]]], Callable[[InT], Awaitable[OutT]]]:
        """Decorator form of ``register``; returns the function unchanged."""

        def decorate(fn: Callable[[InT], Awaitable[OutT]]) -> Callable[[InT], Awaitable[OutT]]:
            self.register(name, fn, description=description, max_workers=max_workers, activity=activity)
            return fn

        return decorate

    def register(
        self,
        name: str,
        fn: Callable[[InT], Awaitable[OutT]],
        *,
        description: str | None = None,
        max_workers: int = 1,
        activity: bool = True,
    ) -> Capability[InT, OutT]:
        """Declare ``fn`` (``async def fn(inp: In) -> Out``, pydantic models) as capability ``name``.

        ``name`` is ``<service>.<verb>``; ``max_workers`` > 1 lets one process answer that many
        NATS requests concurrently (Temporal concurrency is the worker's setting). A bound
        method works too, so a composition root can register ``service.extract``.
        """
        match = _NAME_RE.match(name)
        if match is None or match.group(1) != self.service:
            raise ValueError(f"capability {name!r} must be named {self.service}.<verb>")
        if name in self._capabilities:
            raise ValueError(f"capability {name!r} is already registered")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"capability {name!r} must be an async function")
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        input_type, result_type = _signature_types(fn)
        doc = description or inspect.getdoc(fn) or name
        cap: Capability[InT, OutT] = Capability(
            name=name,
            fn=fn,
            input_type=typing.cast("type[InT]", input_type),
            result_type=typing.cast("type[OutT]", result_type),
            description=doc.strip().splitlines()[0],
            max_workers=max_workers,
            activity=activity,
        )
        self._capabilities[name] = cap
        return cap

    def set_health(self, provider: Callable[[], Awaitable[ServiceHealth]]) -> None:
        """Replace the default health answer (e.g. to add dependency checks and ``degraded``)."""
        self._health_provider = provider

    async def _health(self, inp: HealthCheck) -> ServiceHealth:
        if self._health_provider is not None:
            return await self._health_provider()
        return ServiceHealth(
            service=self.service,
            version=self.version,
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - self.started_at, 3),
        )

    # ---- reading -------------------------------------------------------------------------
    def get(self, name: str) -> Capability[Any, Any]:
        """A registered capability by name (``KeyError`` if absent)."""
        return self._capabilities[name]

    def capabilities(self) -> list[Capability[Any, Any]]:
        """Every capability, sorted by name."""
        return [self._capabilities[k] for k in sorted(self._capabilities)]

    # ---- adapters ------------------------------------------------------------------------
    def nats_subscribers(self, broker: NatsBroker) -> list[LogicSubscriber[Any]]:
        """Register one request/reply subscriber per capability on ``broker``.

        Call before ``broker.start()``; a subscriber added to a running broker needs
        ``await subscriber.start()``. ``broker.start()`` does not wait for the server to
        register the subscriptions: ``await broker.connection.flush()`` before announcing
        readiness, or an early caller can get "no responders".
        """
        subscribers: list[LogicSubscriber[Any]] = []
        for cap in self.capabilities():
            sub: LogicSubscriber[Any] = broker.subscriber(
                cap.subject,
                queue=self.queue_group,
                decoder=_raw_message,
                no_reply=True,
                max_workers=cap.max_workers if cap.max_workers > 1 else None,
                title=cap.name,
                description=cap.description,
                include_in_schema=False,  # documented with typed payloads by shared.asyncapi
            )
            sub(_nats_endpoint(cap))
            subscribers.append(sub)
        return subscribers

    async def subscribe(self, nc: Client) -> list[Subscription]:
        """Serve every capability on a plain nats-py connection, without FastStream.

        Same subjects, queue group, replies and errors as ``nats_subscribers``; it skips
        FastStream's per-message pipeline (parser, middlewares, context), which is most of the
        layer's overhead in ``bench/bench_bus.py``. For services whose request/reply latency
        matters more than FastStream's middlewares and in-memory test broker.
        Unsubscribe (or drain the connection) to stop.
        """
        subscriptions: list[Subscription] = []
        for cap in self.capabilities():
            subscriptions.append(await nc.subscribe(cap.subject, queue=self.queue_group, cb=_nats_callback(cap)))
        await nc.flush()  # the server knows every subscription before we report being ready
        return subscriptions

    def activities(self) -> list[Callable[..., Awaitable[Any]]]:
        """The Temporal activities (one per capability, named like it) for this service's worker."""
        return [_activity_for(cap) for cap in self.capabilities() if cap.activity]


def _nats_endpoint(cap: Capability[Any, Any]) -> Callable[[Msg], Awaitable[None]]:
    async def endpoint(msg: Any) -> None:
        reply = await cap.handle_request(msg.data, msg.headers)
        if msg.reply:
            # Answering directly skips FastStream's response publisher (correlation headers,
            # publish middlewares): about 45 us per request on the reference box.
            await msg.respond(reply)

    endpoint.__name__ = endpoint.__qualname__ = cap.name.replace(".", "_")
    return endpoint


def _nats_callback(cap: Capability[Any, Any]) -> Callable[[Msg], Awaitable[None]]:
    """nats-py callback; > 1 worker runs requests as tasks, at most ``max_workers`` at once."""

    async def answer(msg: Msg) -> None:
        reply = await cap.handle_request(msg.data, msg.headers)
        if msg.reply:
            await msg.respond(reply)

    if cap.max_workers == 1:
        return answer
    slots = asyncio.Semaphore(cap.max_workers)
    running: set[asyncio.Task[None]] = set()

    async def run(msg: Msg) -> None:
        try:
            await answer(msg)
        finally:
            slots.release()

    async def dispatch(msg: Msg) -> None:
        await slots.acquire()  # waiting here stops delivery: backpressure on the subscription
        task = asyncio.create_task(run(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    return dispatch


def _activity_for(cap: Capability[Any, Any]) -> Callable[..., Awaitable[Any]]:
    async def run(inp: Any) -> Any:
        # The input arrives as JSON data and is validated here: a payload that does not match
        # the model is the caller's mistake, a non-retryable error naming the fields, where
        # Temporal's own decoding failure would be retried as if it were transient.
        try:
            model = cap.input_type.model_validate(inp)
        except ValidationError as exc:
            err = InvalidInput(f"invalid input for {cap.name}", extra={"errors": validation_reasons(exc)})
            raise ApplicationError(err.detail, err.to_dict(), type=err.code, non_retryable=True) from None
        return await cap.run_activity(model)

    run.__annotations__ = {"inp": dict[str, Any], "return": cap.result_type}
    run.__name__ = run.__qualname__ = cap.name.replace(".", "_")
    run.__doc__ = cap.description
    defined: Callable[..., Awaitable[Any]] = activity.defn(name=cap.name)(run)
    return defined


def error_from_application_error(err: BaseException) -> HearthError | None:
    """Rebuild the ``HearthError`` behind an activity failure seen in a workflow (or ``None``).

    Accepts the ``ActivityError`` a workflow catches or its ``ApplicationError`` cause.
    """
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if cause is None or not cause.details or not isinstance(cause.details[0], dict):
        return None
    return error_from_dict(cause.details[0])


async def call_capability(
    target: Bus | Client,
    name: str,
    inp: BaseModel,
    result_type: type[ResultT],
    timeout: float = 30.0,
    *,
    headers: Mapping[str, str] | None = None,
) -> ResultT:
    """Call a capability over NATS and return its result, or raise its ``HearthError``.

    ``Unavailable`` when no instance answers (no responders) or the reply is late.
    """
    nc = target.nc if isinstance(target, Bus) else target
    subject = capability_subject(name)
    # No client span of its own: the caller's span (an HTTP request, a consumer, a capability)
    # is carried to the server span, which is the one measuring the work (see module docs).
    hdrs = inject_headers(dict(headers) if headers else {})
    try:
        msg = await request(nc, subject, inp.__pydantic_serializer__.to_json(inp), timeout, headers=hdrs or None)
    except nats.errors.NoRespondersError as exc:
        raise Unavailable(f"no instance of {name.split('.', maxsplit=1)[0]} is answering on {subject}") from exc
    except nats.errors.TimeoutError as exc:
        raise Unavailable(f"{name} did not answer within {timeout}s") from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as exc:
        raise Unavailable(f"calling {name} failed: NATS connection {type(exc).__name__}") from exc
    try:
        reply = reply_model(result_type).model_validate_json(msg.data)
    except ValidationError as exc:
        raise PermanentFailure(
            f"malformed reply from {name}", code="bad-reply", extra={"errors": validation_reasons(exc)}
        ) from None
    if reply.ok and reply.result is not None:
        return reply.result
    raise error_from_dict(reply.error or {"detail": f"{name} replied without a result"})
