"""The bus: one NATS connection and its JetStream context, with Hearth's publishing rules.

* ``publish`` validates the event against the catalog, refuses payloads over the inline limit
  (use the blob store), sets ``Nats-Msg-Id`` to the event id (JetStream drops a re-publish
  inside the stream's duplicate window) and the W3C ``traceparent``, and waits for the ack.
* ``ensure_streams`` provisions the catalog's streams idempotently (create, or update on drift).
* ``request`` is raw request/reply for ``hearth.svc.>`` / ``hearth.infer.>`` subjects.

Transport failures become ``errors.Unavailable`` (retryable); refusals become the matching
``HearthError``. Each process connects as its own NATS user (``shared.natsauth``); a subject its
user may not use is logged as a permissions violation when the server reports it, and the
publish or request that hit it fails with ``Forbidden`` instead of a bare timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from shared.errors import Conflict, Forbidden, HearthError, PermanentFailure, TooLarge, Unavailable
from shared.events.catalog import CATALOG, Catalog, StreamSpec
from shared.events.envelope import Envelope
from shared.logging import get_logger
from shared.settings import HearthSettings, get_settings
from shared.tracing import inject_headers

log = get_logger(__name__)

MSG_ID_HEADER: Final = "Nats-Msg-Id"
HEADER_ALLOWANCE: Final = 16 * 1024
"""Bytes of headers a stream accepts on top of the inline payload limit."""
DEFAULT_TIMEOUT: Final = 5.0

_TRANSPORT_ERRORS: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
)
_NO_RESPONDERS_RETRY_DELAYS: Final = (0.02, 0.1)
# JetStream API error codes (nats-server errors.json) that mean "the caller sent something wrong".
_ERR_STREAM_MISMATCH: Final = 10060
_ERR_MSG_TOO_BIG: Final = 10054
# nats-py lower-cases the server's -ERR line: 'permissions violation for publish to "subject"'.
_PERMISSION_RE: Final = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')


class PermissionViolations:
    """The permissions violations the server reported on one connection, newest per subject."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}

    def record(self, message: str) -> tuple[str, str] | None:
        """Note a violation from an error message; returns ``(operation, subject)`` or ``None``."""
        match = _PERMISSION_RE.search(message)
        if match is None:
            return None
        operation, subject = match.groups()
        self._seen[subject] = (operation, time.monotonic())
        if len(self._seen) > 256:  # a misconfigured loop must not grow this forever
            oldest = min(self._seen, key=lambda k: self._seen[k][1])
            del self._seen[oldest]
        return operation, subject

    def since(self, subject: str, started: float) -> str | None:
        """The operation refused on ``subject`` at or after ``started`` (monotonic), if any."""
        seen = self._seen.get(subject.lower())
        return seen[0] if seen is not None and seen[1] >= started else None


_VIOLATIONS: Final[weakref.WeakKeyDictionary[Client, PermissionViolations]] = weakref.WeakKeyDictionary()


def permission_violations(nc: Client) -> PermissionViolations:
    """The violation record of a connection (created on first use)."""
    found = _VIOLATIONS.get(nc)
    if found is None:
        found = _VIOLATIONS[nc] = PermissionViolations()
    return found


def _forbidden(nc: Client, subject: str, started: float) -> Forbidden | None:
    found = _VIOLATIONS.get(nc)
    operation = found.since(subject, started) if found is not None else None
    if operation is None:
        return None
    user = nc.options.get("user") or "anonymous"
    return Forbidden(
        f"NATS refused {operation} to {subject} for user {user}: permissions violation (declare the subject "
        "in shared.natsauth.BUS_USE, or use the credentials of the process that owns it)",
        code="nats-permission-denied",
    )


class Bus:
    """A NATS connection plus JetStream context; create with ``Bus.connect`` or ``Bus.from_client``."""

    def __init__(
        self,
        nc: Client,
        *,
        settings: HearthSettings | None = None,
        catalog: Catalog | None = None,
        owns_connection: bool = False,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.settings = settings or get_settings()
        self.catalog = catalog or CATALOG
        self._owns_connection = owns_connection
        self._closing: list[bool] = []

    @classmethod
    async def connect(
        cls,
        settings: HearthSettings | None = None,
        *,
        name: str,
        user: str | None = None,
        password: str | None = None,
        catalog: Catalog | None = None,
        connect_timeout: float = 5.0,
        connect_attempts: int = 3,
    ) -> Self:
        """Connect to the stack's NATS as ``user`` (default ``HEARTH_NATS_USER``).

        The password comes from ``secrets/nats/<user>.password`` unless given (a line-of-business
        publisher's, ``hearth nats publishers create``).

        ``Unavailable`` after ``connect_attempts`` failed tries, or when the server refuses the
        credentials. Once connected, the connection reconnects forever (a restarting NATS must not
        take the service down with it).
        """
        from shared.natsauth import connect_options  # natsauth imports modules that import this one

        settings = settings or get_settings()
        user = user or settings.nats_user
        credentials = connect_options(settings, user, password)
        closing: list[bool] = []  # set by close(): a disconnect then is expected
        violations = PermissionViolations()

        async def on_error(exc: Exception) -> None:
            refused = violations.record(str(exc))
            if refused is not None:
                log.error(
                    "nats permissions violation",
                    connection=name,
                    user=user,
                    operation=refused[0],
                    subject=refused[1],
                    hint="declare the subject in shared.natsauth.BUS_USE",
                )
                return
            log.warning("nats connection error", connection=name, error=repr(exc))

        async def on_disconnect() -> None:
            if not closing:
                log.warning("nats disconnected", connection=name)

        async def on_reconnect() -> None:
            log.info("nats reconnected", connection=name)

        try:
            nc = await nats.connect(
                servers=[settings.nats_url],
                name=name,
                connect_timeout=int(max(1, connect_timeout)),
                allow_reconnect=True,
                # nats-py applies this to the first connect too, where -1 would retry forever.
                max_reconnect_attempts=max(0, connect_attempts - 1),
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                **credentials,
            )
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            if "authorization violation" in str(exc).lower():
                raise Unavailable(
                    f"NATS at {settings.nats_url} refused user {user!r} (authorization violation): its password "
                    f"in {settings.secret_path(f'nats/{user}.password')} is not the one in the server's config; "
                    "`hearth up` re-renders the config"
                ) from exc
            raise Unavailable(f"cannot connect to NATS at {settings.nats_url}: {exc!r}") from exc
        _VIOLATIONS[nc] = violations
        nc.options["max_reconnect_attempts"] = -1  # read on every reconnect
        bus = cls(nc, settings=settings, catalog=catalog, owns_connection=True)
        bus._closing = closing
        return bus

    @classmethod
    def from_client(cls, nc: Client, settings: HearthSettings | None = None, *, catalog: Catalog | None = None) -> Self:
        """Wrap a connection owned by someone else (e.g. FastStream's ``broker.connection``)."""
        return cls(nc, settings=settings, catalog=catalog, owns_connection=False)

    async def close(self) -> None:
        """Drain and close the connection if this bus opened it."""
        if self._owns_connection and not self.nc.is_closed:
            self._closing.append(True)
            await self.nc.drain()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- events --------------------------------------------------------------------------
    async def publish(
        self,
        envelope: Envelope,
        *,
        headers: Mapping[str, str] | None = None,
        subject: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> api.PubAck:
        """Publish an event to JetStream and wait for the stream's ack.

        ``subject`` defaults to the event type. Raises ``InvalidInput`` (unknown type, data not
        matching its model, subject outside the type), ``TooLarge`` (payload over
        ``HEARTH_EVENT_INLINE_MAX_BYTES``: put the content in the blob store and send a
        ``BlobRef``) or ``Unavailable`` (no ack in time, no stream). A re-publish of the same
        event id inside the duplicate window returns an ack with ``duplicate=True``.
        """
        self.catalog.validate_data(envelope)  # InvalidInput for an unknown type too
        event = self.catalog.get_event_type(envelope.type)
        subject = subject or envelope.type
        self.catalog.check_subject(event, subject)
        payload = envelope.to_json()
        limit = self.settings.event_inline_max_bytes
        if len(payload) > limit and self.catalog.get_stream(event.stream).inline_limited:
            raise TooLarge(
                f"event {envelope.type} is {len(payload)} bytes, over the inline limit of {limit} "
                "(HEARTH_EVENT_INLINE_MAX_BYTES): put the content in the blob store "
                "(shared.blobstore.BlobStore.put) and send the BlobRef instead",
                extra={"limit": limit, "size": len(payload)},
            )
        return await self._publish_bytes(
            subject, payload, msg_id=envelope.id, stream=event.stream, headers=headers, timeout=timeout
        )

    async def _publish_bytes(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str,
        stream: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> api.PubAck:
        # No producer span: the publisher's current span (a handler, a capability, a request) is
        # what the consumer's span hangs under; a span per publish costs ~20 us here.
        hdrs = dict(headers) if headers else {}
        hdrs[MSG_ID_HEADER] = msg_id
        inject_headers(hdrs)
        started = time.monotonic()
        try:
            return await self.js.publish(subject, payload, timeout=timeout, stream=stream, headers=hdrs)
        except _TRANSPORT_ERRORS as exc:
            refused = _forbidden(self.nc, subject, started)
            if refused is not None:
                raise refused from exc
            raise Unavailable(
                f"JetStream did not acknowledge {subject} (stream {stream}): {type(exc).__name__}; "
                "is the stack up and were the streams provisioned (Bus.ensure_streams)?"
            ) from exc
        except nats.js.errors.APIError as exc:
            raise map_api_error(exc, f"publishing {subject}") from exc

    # ---- streams -------------------------------------------------------------------------
    def stream_config(self, spec: StreamSpec) -> api.StreamConfig:
        """The JetStream configuration a catalog stream is provisioned with."""
        max_msg_size = self.settings.event_inline_max_bytes + HEADER_ALLOWANCE if spec.inline_limited else -1
        return api.StreamConfig(
            name=spec.name,
            description=spec.description,
            subjects=list(spec.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=spec.max_age_s,
            max_msg_size=max_msg_size,
            duplicate_window=spec.duplicate_window_s,
            num_replicas=1,
        )

    async def ensure_streams(self) -> dict[str, str]:
        """Create every catalog stream, or update one whose configuration drifted.

        Returns ``{stream: "created" | "updated" | "unchanged"}``. Safe to call from every
        process at start-up; a storage change is refused with ``Conflict`` (JetStream cannot
        change it in place).
        """
        outcome: dict[str, str] = {}
        for spec in self.catalog.streams():
            outcome[spec.name] = await self.ensure_stream(spec)
        return outcome

    async def ensure_stream(self, spec: StreamSpec) -> str:
        """Provision one stream; see ``ensure_streams``."""
        wanted = self.stream_config(spec)
        try:
            try:
                current = (await self.js.stream_info(spec.name)).config
            except nats.js.errors.NotFoundError:
                await self.js.add_stream(wanted)
                log.info("stream created", stream=spec.name, subjects=list(spec.subjects))
                return "created"
            drift = _config_drift(current, wanted)
            if not drift:
                return "unchanged"
            if "storage" in drift:
                raise Conflict(
                    f"stream {spec.name} uses {current.storage} storage, wanted {wanted.storage}: "
                    "JetStream cannot change storage in place; migrate the stream by hand"
                )
            await self.js.update_stream(wanted)
            log.info("stream updated", stream=spec.name, changed=sorted(drift))
            return "updated"
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(f"JetStream did not answer while provisioning {spec.name}: {exc!r}") from exc
        except nats.js.errors.APIError as exc:
            raise map_api_error(exc, f"provisioning stream {spec.name}") from exc

    # ---- request/reply -------------------------------------------------------------------
    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """Core NATS request; ``Unavailable`` when nobody answers or the reply is late."""
        try:
            return await request(self.nc, subject, payload, timeout, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise Unavailable(f"nobody is answering on {subject}") from exc
        except nats.errors.TimeoutError as exc:
            raise Unavailable(f"no reply on {subject} within {timeout}s") from exc
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(f"request on {subject} failed: {type(exc).__name__}") from exc


async def request(
    nc: Client,
    subject: str,
    payload: bytes,
    timeout: float,
    *,
    headers: dict[str, str] | None = None,
) -> Msg:
    """``nc.request`` that re-asks briefly when the server reports no responders.

    A subscription made on another connection can be missed for a moment even after that
    connection's flush (seen about once in 200 fresh subscriptions on nats-server 2.15, and
    interest propagates asynchronously across a cluster), so "no responders" right after a
    service starts is not yet "service down". Retries stay inside ``timeout``.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = loop.time() + timeout
    try:
        for delay in _NO_RESPONDERS_RETRY_DELAYS:
            try:
                return await nc.request(subject, payload, timeout=max(0.001, deadline - loop.time()), headers=headers)
            except nats.errors.NoRespondersError:
                if loop.time() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
        return await nc.request(subject, payload, timeout=max(0.001, deadline - loop.time()), headers=headers)
    except nats.errors.TimeoutError as exc:
        # A refused publish is dropped by the server: the caller would only see the timeout.
        refused = _forbidden(nc, subject, started)
        if refused is not None:
            raise refused from exc
        raise


def _config_drift(current: api.StreamConfig, wanted: api.StreamConfig) -> set[str]:
    """Names of the fields we manage whose live value differs from the wanted one."""

    def norm(config: api.StreamConfig) -> dict[str, Any]:
        return {
            "description": config.description or "",
            "subjects": sorted(config.subjects or []),
            "retention": config.retention,
            "storage": config.storage,
            "discard": config.discard,
            "max_age": round(config.max_age or 0.0, 3),
            "max_msg_size": config.max_msg_size if config.max_msg_size is not None else -1,
            "duplicate_window": round(config.duplicate_window or 0.0, 3),
            "num_replicas": config.num_replicas or 1,
        }

    live, target = norm(current), norm(wanted)
    return {name for name, value in target.items() if live[name] != value}


def map_api_error(exc: nats.js.errors.APIError, doing: str) -> HearthError:
    """Map a JetStream API error reply to the taxonomy (``doing`` completes "JetStream refused …")."""
    detail = f"JetStream refused {doing}: {exc.description} (code {exc.err_code})"
    if exc.err_code == _ERR_MSG_TOO_BIG:
        return TooLarge(detail)
    if exc.err_code == _ERR_STREAM_MISMATCH:
        return PermanentFailure(detail, code="stream-mismatch")
    if exc.code is not None and exc.code >= 500:
        return Unavailable(detail)
    return Conflict(detail) if exc.code == 409 else PermanentFailure(detail)
