"""Events: the CloudEvents envelope, the catalog of event types and durable consumers.

Importing this package registers the foundation's event types; a feature that adds events
registers them in its own module and imports that module here, so that the catalog (and the
AsyncAPI document built from it) always holds every event.
"""

from __future__ import annotations

from shared.events import alerts as _alert_events  # noqa: F401 - registers hearth.alert.*
from shared.events import audit as _audit_events  # noqa: F401 - registers hearth.audit.*
from shared.events import authz as _authz_events  # noqa: F401 - registers hearth.authz.*
from shared.events import documents as _document_events  # noqa: F401 - registers hearth.document.*
from shared.events import workflow as _workflow_events  # noqa: F401 - registers hearth.workflow.*
from shared.events.catalog import (
    CATALOG,
    DEADLETTER_TYPE,
    Catalog,
    DeadLetterRecord,
    DocumentSubmitted,
    EventType,
    StreamSpec,
    deadletter_subject,
    get_event_type,
    register_event,
    validate_data,
)
from shared.events.envelope import Envelope

__all__ = [
    "CATALOG",
    "DEADLETTER_TYPE",
    "Catalog",
    "DeadLetterRecord",
    "DocumentSubmitted",
    "Envelope",
    "EventType",
    "StreamSpec",
    "deadletter_subject",
    "get_event_type",
    "register_event",
    "validate_data",
]
