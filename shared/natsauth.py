"""Who may publish and subscribe to what on the bus: NATS users, credentials and permissions.

Every Hearth process connects to NATS as its own user (the service name), line-of-business
systems as ``lob-<name>`` users, and the CLI, the launcher and the tests as the ``hearth``
administrator. The server config (``authorization { users = [...] }``, rendered into
``run/nats.conf`` by the launcher) holds only bcrypt hashes; the passwords are 0600 files under
``$HEARTH_HOME/secrets/nats/`` (services, administrator) or shown once (publishers).

Permissions are derived, not listed by hand:

* a service serves exactly ``hearth.svc.<service>.>`` (``CapabilityRegistry`` refuses any
  capability not named ``<service>.<verb>``) and answers requests through ``allow_responses``;
* what it publishes, consumes and calls is declared once in ``BUS_USE`` in terms of the event
  catalog (event types, filter subjects) and capability names; subjects, streams and the
  JetStream API subjects each needs (``$JS.API.CONSUMER.*.<stream>...``, ``$JS.ACK.<stream>.>``,
  the blob bucket's ``$O.<bucket>.>``) are computed from the catalog;
* each user receives replies only on its own inbox prefix, ``_INBOX.<user>`` (nats-py
  ``inbox_prefix``), so no process can read another's replies.

A subject a service uses but did not declare is refused by the server (a permissions violation,
logged by ``shared.bus``), so the integration suite catches a missing declaration.

Limits: processes of the native stack run as one OS user and can read each other's password
files; the permissions stop a bug or a misrouted message, and a leaked publisher credential, from
reaching other subjects, not a compromised process on the box. Subjects carry no tenant, so a
publisher reads the results of every tenant's documents.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import bcrypt

from shared.blobstore import DEFAULT_BUCKET
from shared.capabilities import SUBJECT_PREFIX
from shared.events import CATALOG, Catalog
from shared.events.audit import AUDIT_ENTRIES, AUDIT_STREAM
from shared.events.catalog import DEADLETTER_DOMAIN, deadletter_subject, domain_of, subject_matches
from shared.inference import INFER_SUBJECT_PREFIX
from shared.settings import SERVICES, HearthSettings, SettingsError
from shared.tls import client_context
from shared.tracing import SPANS_SUBJECT

ADMIN_USER: Final = "hearth"
"""The administrator: the CLI, the launcher's bootstrap and the tests. Publishes and subscribes anywhere."""
PUBLISHER_PREFIX: Final = "lob-"
"""User names of line-of-business publishers: ``lob-<name>``."""
INGEST_SUBJECTS: Final = "hearth.ingest.>"
RESULT_SUBJECTS: Final = ("hearth.document.processed.v1", deadletter_subject(INGEST_SUBJECTS))
"""What a publisher may read: the outcome of each document, and ingest events that were refused."""
BCRYPT_COST: Final = 6
"""Cost of the hashes. The passwords are 256-bit random tokens, which no cost factor makes easier or
harder to guess; the server pays the cost on every connection (the launcher's and the dashboard's
health probes connect each time), and at nats-server's default of 11 a connect took over 2 s on a
loaded 2-core box."""
JS_API: Final = "$JS.API"
_PUBLISHER_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_OBJ_STREAM: Final = "OBJ_{bucket}"
POLICY_CHANGES: Final = "hearth.authz.>"
"""Casbin policy-change notices: every enforcer (any process) listens, core NATS."""


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix of a user: ``_INBOX.<user>`` (nats-py ``inbox_prefix``)."""
    return f"_INBOX.{user}"


def publisher_user(name: str) -> str:
    """The NATS user of a line-of-business publisher: ``lob-<name>``."""
    if not _PUBLISHER_RE.match(name):
        raise ValueError(f"publisher name {name!r} must match {_PUBLISHER_RE.pattern}")
    return f"{PUBLISHER_PREFIX}{name}"


# ---- what each process does on the bus -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusUse:
    """What one process does on the bus besides serving ``hearth.svc.<service>.>``.

    ``publishes`` are event types as in the event catalog, or subject patterns with a wildcard
    (``"hearth.authz.>"``); ``consumes`` are filter subjects of durable consumers (``"*"`` in
    either: every catalogued event / stream); ``calls`` are capability names in NATS wildcard
    syntax (``"telemetry.*"``, ``"*.health"``).
    """

    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()
    infer: bool = False
    """Calls models on ``hearth.infer.<model>``."""
    serves_infer: bool = False
    """Answers ``hearth.infer.*`` (the gateway's inference plane)."""
    blobs: bool = False
    """Reads and writes the claim-check blob bucket."""
    listens: tuple[str, ...] = ()
    """Core NATS subjects it subscribes to (not capabilities, not consumers)."""
    reads: tuple[str, ...] = ()
    """Streams whose messages it reads one by one (``STREAM.MSG.GET``), without a consumer."""


BUS_USE: Final[dict[str, BusUse]] = {
    "gateway": BusUse(
        # the admin API announces policy changes; the audit relay copies the audit log
        publishes=("hearth.document.processed.v1", POLICY_CHANGES, AUDIT_ENTRIES),
        consumes=("hearth.ingest.document.v1", "hearth.workflow.completed.v1", "hearth.workflow.failed.v1"),
        calls=("telemetry.*", "*.health"),
        infer=True,  # embeddings of the search index
        serves_infer=True,
        blobs=True,
        reads=(AUDIT_STREAM,),  # the relay's position and `hearth audit verify`
    ),
    "ocr": BusUse(infer=True, blobs=True),
    "nlp": BusUse(infer=True, blobs=True),
    "media": BusUse(),
    "qc_vision": BusUse(),
    "governance": BusUse(blobs=True),  # the lifecycle moves, restores, purges and rewraps blobs
    "telemetry": BusUse(
        publishes=("hearth.alert.fired.v1", "hearth.alert.resolved.v1"),
        consumes=("hearth.workflow.step.completed.v1", "hearth.workflow.completed.v1", "hearth.workflow.failed.v1"),
        calls=("*.health",),  # the stack probe of the dashboard
        listens=(SPANS_SUBJECT,),
    ),
    # Definitions are data: a `publish` step may name any catalogued event and a trigger may
    # consume any, so the worker's grant follows the catalog rather than today's YAML files.
    "workflows": BusUse(publishes=("*",), consumes=("*",), infer=True),
}
"""The one declaration of each process's bus use; every name in ``SERVICES`` has an entry."""


@dataclass(frozen=True, slots=True)
class Permissions:
    """The subjects one NATS user may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False

    def conf(self) -> dict[str, Any]:
        """The ``permissions`` block of the server config."""
        block: dict[str, Any] = {"publish": {"allow": list(self.publish)}, "subscribe": {"allow": list(self.subscribe)}}
        if self.allow_responses:
            block["allow_responses"] = True
        return block


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _consumer_api(stream: str, durable: str = "*") -> list[str]:
    """Publish rights to create, inspect and pull from durable consumers of ``stream``."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",  # the filter rides in the subject (2.9+)
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def blob_api(bucket: str = DEFAULT_BUCKET) -> list[str]:
    """Publish rights to read and write an object-store bucket (``shared.blobstore``)."""
    stream = _OBJ_STREAM.format(bucket=bucket)
    return [
        f"$O.{bucket}.>",
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.STREAM.PURGE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}",  # ordered (ephemeral) consumers read the chunks
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",  # flow-control replies of those consumers
    ]


def _event_subjects(patterns: Iterable[str], catalog: Catalog) -> list[str]:
    subjects: list[str] = []
    for pattern in patterns:
        if pattern == "*":
            subjects += [event.subject for event in catalog.event_types()]
        elif "*" in pattern.split(".") or pattern.endswith(".>"):
            subjects.append(pattern)
        else:
            subjects.append(catalog.get_event_type(pattern).subject)  # NotFound names a typo
    return subjects


def _consumed_streams(filters: Iterable[str], catalog: Catalog) -> list[str]:
    streams: list[str] = []
    for subject in filters:
        if subject == "*":
            streams += [spec.name for spec in catalog.streams()]
        else:
            streams.append(catalog.stream_for_subject(subject).name)
    return streams


def _consumed_filters(filters: Iterable[str], catalog: Catalog) -> list[str]:
    subjects: list[str] = []
    for subject in filters:
        if subject == "*":
            subjects += [s for spec in catalog.streams() for s in spec.subjects]
        else:
            subjects.append(subject)
    return subjects


def _capability_subject(pattern: str) -> str:
    tokens = pattern.split(".")
    if len(tokens) < 2 or any(not t for t in tokens):
        raise ValueError(f"capability pattern {pattern!r} must look like <service>.<verb> (wildcards allowed)")
    return f"{SUBJECT_PREFIX}.{pattern}"


def service_permissions(service: str, use: BusUse | None = None, *, catalog: Catalog | None = None) -> Permissions:
    """The permissions of a service's NATS user, derived from its ``BusUse`` and the catalog."""
    catalog = catalog or CATALOG
    use = use if use is not None else BUS_USE[service]
    publish: list[str] = [
        SPANS_SUBJECT,  # every process exports its spans (fire-and-forget)
        f"{JS_API}.INFO",
    ]
    publish += [_capability_subject(p) for p in use.calls]
    if use.infer:
        publish.append(f"{INFER_SUBJECT_PREFIX}.*")
    publish += _event_subjects(use.publishes, catalog)
    for subject in _consumed_filters(use.consumes, catalog):
        if domain_of(subject) != DEADLETTER_DOMAIN:
            publish.append(deadletter_subject(subject))  # consumers dead-letter what they give up on
    for stream in _unique(_consumed_streams(use.consumes, catalog)):
        publish += _consumer_api(stream)
    if use.blobs:
        publish += blob_api()
    for stream in use.reads:
        publish += [f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.STREAM.MSG.GET.{stream}"]
    subscribe = [f"{SUBJECT_PREFIX}.{service}.>", f"{inbox_prefix(service)}.>"]
    if use.serves_infer:
        subscribe.append(f"{INFER_SUBJECT_PREFIX}.*")
    subscribe += [POLICY_CHANGES, *use.listens]
    return Permissions(publish=_unique(publish), subscribe=_unique(subscribe), allow_responses=True)


def publisher_permissions(user: str, *, catalog: Catalog | None = None) -> Permissions:
    """A line-of-business publisher: publish ``hearth.ingest.>``, read its results, nothing else.

    Results are readable live (core subscriptions) or through one durable consumer per stream
    named like the user (``lob-erp``), whose filter the server holds to the result subjects.
    """
    catalog = catalog or CATALOG
    publish = [INGEST_SUBJECTS, f"{JS_API}.INFO"]
    for subject in RESULT_SUBJECTS:
        stream = catalog.stream_for_subject(subject).name
        publish += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.{user}.{subject}",
            f"{JS_API}.CONSUMER.INFO.{stream}.{user}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{user}",
            f"{JS_API}.CONSUMER.DELETE.{stream}.{user}",
            f"$JS.ACK.{stream}.{user}.>",
        ]
    subscribe = [*RESULT_SUBJECTS, f"{inbox_prefix(user)}.>"]
    return Permissions(publish=_unique(publish), subscribe=_unique(subscribe))


def may_publish(perms: Permissions, subject: str) -> bool:
    """Whether ``perms`` let a user publish on ``subject`` (without ``allow_responses``)."""
    return any(subject_matches(p, subject) for p in perms.publish)


def may_subscribe(perms: Permissions, subject: str) -> bool:
    """Whether a subscription on ``subject`` (wildcards included) is covered by ``perms``."""
    return any(_covers(p, subject) for p in perms.subscribe)


def _covers(pattern: str, subject: str) -> bool:
    """Whether every subject ``subject`` (a pattern itself) can match is matched by ``pattern``."""
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or s[i] == ">" or (part != "*" and (s[i] == "*" or part != s[i])):
            return False
    return len(p) == len(s)


# ---- credentials -----------------------------------------------------------------------------


def _password_name(user: str) -> str:
    return f"nats/{user}.password"


def _hash_name(user: str) -> str:
    return f"nats/{user}.bcrypt"


def _publishers_name() -> str:
    return "nats/publishers.json"


def hash_password(password: str) -> str:
    """A bcrypt hash as nats-server checks it."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def ensure_credentials(settings: HearthSettings) -> list[str]:
    """Create the administrator's and every service's password and hash (0600) where missing.

    Returns the users created. Idempotent: existing credentials are kept.
    """
    from shared.launcher.bootstrap import write_secret

    created = []
    for user in (ADMIN_USER, *SERVICES):
        password_file = settings.secret_path(_password_name(user))
        hash_file = settings.secret_path(_hash_name(user))
        if password_file.exists() and hash_file.exists():
            continue
        password = secrets.token_urlsafe(32)
        write_secret(hash_file, hash_password(password))
        write_secret(password_file, password)
        created.append(user)
    return created


def connect_options(settings: HearthSettings, user: str | None = None, password: str | None = None) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for ``user`` (default ``HEARTH_NATS_USER``).

    The password is ``password`` when given (a publisher's), else the user's secret file.
    With ``HEARTH_NATS_AUTH=false`` (a server without authorization, e.g. compose) only the inbox
    prefix is set. ``SettingsError`` names the missing password file otherwise.
    """
    user = user or settings.nats_user
    options: dict[str, Any] = {"inbox_prefix": inbox_prefix(user)}
    if settings.nats_auth:
        if password is None and user.startswith(PUBLISHER_PREFIX):
            raise SettingsError(f"{user} is a publisher: its password was shown once, pass it in")
        options["user"] = user
        options["password"] = password if password is not None else settings.read_secret(_password_name(user))
    context = client_context(settings)
    if context is not None:
        options["tls"] = context  # verifies the server against the stack's CA, host name included
    return options


def broker_options(settings: HearthSettings, user: str | None = None, password: str | None = None) -> dict[str, Any]:
    """``connect_options`` as FastStream ``NatsBroker`` keyword arguments (``security=``)."""
    from faststream.nats import NatsUserPassword
    from faststream.nats.security import NatsSecurity

    options = connect_options(settings, user, password)
    context = options.pop("tls", None)
    if "user" in options:
        options["security"] = NatsUserPassword(
            username=options.pop("user"), password=options.pop("password"), ssl_context=context
        )
    elif context is not None:
        options["security"] = NatsSecurity(ssl_context=context)
    return options


# ---- line-of-business publishers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publisher:
    """A line-of-business publisher's NATS user (its password is never stored, only its hash)."""

    name: str
    user: str
    created_at: datetime
    password_hash: str


def list_publishers(settings: HearthSettings) -> list[Publisher]:
    """The registered publishers, by name."""
    path = settings.secret_path(_publishers_name())
    if not path.exists():
        return []
    raw: dict[str, dict[str, str]] = json.loads(path.read_text())
    return [
        Publisher(
            name=name,
            user=publisher_user(name),
            created_at=datetime.fromisoformat(entry["created_at"]),
            password_hash=entry["password_hash"],
        )
        for name, entry in sorted(raw.items())
    ]


def _save_publishers(settings: HearthSettings, publishers: list[Publisher]) -> None:
    from shared.launcher.bootstrap import write_secret

    data = {p.name: {"created_at": p.created_at.isoformat(), "password_hash": p.password_hash} for p in publishers}
    write_secret(settings.secret_path(_publishers_name()), json.dumps(data, indent=2, sort_keys=True))


def create_publisher(settings: HearthSettings, name: str) -> tuple[Publisher, str]:
    """Register a publisher; returns it and its password (shown once). ``ValueError`` if it exists."""
    user = publisher_user(name)
    publishers = list_publishers(settings)
    if any(p.name == name for p in publishers):
        raise ValueError(f"publisher {name!r} exists already: revoke it first to issue a new password")
    password = secrets.token_urlsafe(32)
    publisher = Publisher(name=name, user=user, created_at=datetime.now(UTC), password_hash=hash_password(password))
    _save_publishers(settings, [*publishers, publisher])
    return publisher, password


def revoke_publisher(settings: HearthSettings, name: str) -> Publisher:
    """Remove a publisher; ``KeyError`` if there is none by that name."""
    publishers = list_publishers(settings)
    found = [p for p in publishers if p.name == name]
    if not found:
        raise KeyError(name)
    _save_publishers(settings, [p for p in publishers if p.name != name])
    return found[0]


# ---- server config ---------------------------------------------------------------------------


def _conf_value(value: Any, indent: str) -> str:
    if isinstance(value, dict):
        inner = indent + "  "
        body = "\n".join(f"{inner}{key}: {_conf_value(v, inner)}" for key, v in value.items())
        return "{\n" + body + "\n" + indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def users(settings: HearthSettings, *, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """The ``authorization.users`` entries: administrator, services, publishers (hashes only)."""
    entries: list[dict[str, Any]] = [
        {"user": ADMIN_USER, "password": settings.read_secret(_hash_name(ADMIN_USER))},
    ]
    for service in SERVICES:
        entries.append(
            {
                "user": service,
                "password": settings.read_secret(_hash_name(service)),
                "permissions": service_permissions(service, catalog=catalog).conf(),
            }
        )
    for publisher in list_publishers(settings):
        entries.append(
            {
                "user": publisher.user,
                "password": publisher.password_hash,
                "permissions": publisher_permissions(publisher.user, catalog=catalog).conf(),
            }
        )
    return entries


def authorization_conf(settings: HearthSettings, *, catalog: Catalog | None = None) -> str:
    """The ``authorization { ... }`` block of ``nats.conf``."""
    lines = [
        "authorization {",
        "  # Rendered from shared.natsauth (BUS_USE + the event catalog); hashes only.",
        "  users = [",
    ]
    for entry in users(settings, catalog=catalog):
        lines.append("    " + _conf_value(entry, "    "))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def reload(settings: HearthSettings) -> bool:
    """Re-render ``nats.conf`` and tell the running nats-server to reload it (SIGHUP).

    Returns False when no server is running (the config applies at the next ``hearth up``).
    """
    from shared.launcher.bootstrap import write_secret
    from shared.launcher.configs import nats_conf

    write_secret(settings.run_dir / "nats.conf", nats_conf(settings))
    return signal_reload(settings)


def signal_reload(settings: HearthSettings) -> bool:
    """SIGHUP the running nats-server (its ``pid_file``) so it reads ``nats.conf`` again; False if none runs."""
    pid_file = settings.run_dir / "nats.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True
