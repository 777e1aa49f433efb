"""Trigger logic without a server (``run_input``, ``trigger_keys``) and run-list filters."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import InvalidInput
from shared.events.envelope import Envelope
from workflows.definitions import DEFINITIONS_DIR, Definition, LoadContext, TriggerSpec, load_directory, parse_text
from workflows.runs import RunFilter, visibility_query
from workflows.triggers import TriggerKey, run_input, trigger_keys

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

DOCUMENT = {
    "source_system": "erp",
    "text": "hello",
    "external_id": "INV-7",
    "filename": "invoice.pdf",
    "metadata": {"review": "required", "pages": 3},
}


def envelope(data: dict[str, Any] | None = None, **changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "id": "evt-1",
        "source": "hearth/erp",
        "type": "hearth.ingest.document.v1",
        "time": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "tenant": "acme",
        "data": DOCUMENT if data is None else data,
    }
    return Envelope(**(fields | changes))


def trigger(**fields: Any) -> TriggerSpec:
    return TriggerSpec(subject="hearth.ingest.document.v1", event="hearth.ingest.document.v1", **fields)


def shipped_trigger() -> TriggerSpec:
    loaded = load_directory(DEFINITIONS_DIR, LoadContext(models=set()))
    (spec,) = loaded.definitions["document_review"].triggers
    return spec


# ---- run_input ---------------------------------------------------------------------------------


def test_the_shipped_trigger_starts_a_run_for_a_document_asking_for_review() -> None:
    matches, data, document_id = run_input(shipped_trigger(), envelope())
    assert matches is True
    assert data == {"document": DOCUMENT, "submitted_by": "hearth/erp"}
    assert document_id == "INV-7"


@pytest.mark.parametrize("metadata", [{}, {"review": "optional"}, {"review": None}, {"other": "required"}])
def test_the_shipped_trigger_ignores_other_documents(metadata: dict[str, Any]) -> None:
    assert run_input(shipped_trigger(), envelope(DOCUMENT | {"metadata": metadata})) == (False, {}, None)


def test_the_default_input_is_the_whole_event() -> None:
    matches, data, document_id = run_input(trigger(), envelope())
    assert matches is True
    assert document_id is None
    assert data == {
        "event": {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "hearth/erp",
            "type": "hearth.ingest.document.v1",
            "time": "2024-05-06T07:08:09Z",
            "tenant": "acme",
            "datacontenttype": "application/json",
            "data": DOCUMENT,
        }
    }


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("event.data.metadata.pages > 2", True),
        ("event.data.metadata.pages > 3", False),
        ("event.tenant == 'acme' and event.source == 'hearth/erp'", True),
        ("startswith(event.data.filename, 'inv')", True),
        ("matches(event.data.external_id, '^PO-')", False),
        ("event.data.missing", False),
        ("event.data.missing == null", True),
        ("event.subject", False),  # absent attributes read as null
    ],
)
def test_the_filter_decides(flt: str, expected: bool) -> None:
    matches, data, _ = run_input(trigger(filter=flt), envelope())
    assert matches is expected
    assert (data != {}) is expected


def test_templated_input() -> None:
    spec = trigger(
        input={
            "document": "${event.data}",
            "title": "${event.data.filename} from ${event.data.source_system}",
            "pages": "${event.data.metadata.pages}",
            "flags": ["${event.data.metadata.review == 'required'}", "fixed"],
            "nested": {"id": "${event.id}", "missing": "${event.data.nope}"},
            "constant": 5,
        }
    )
    matches, data, _ = run_input(spec, envelope())
    assert matches is True
    assert data == {
        "document": DOCUMENT,
        "title": "invoice.pdf from erp",
        "pages": 3,
        "flags": [True, "fixed"],
        "nested": {"id": "evt-1", "missing": None},
        "constant": 5,
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("event.data.external_id", "INV-7"),
        ("event.data.metadata.pages", "3"),  # a document id is text
        ("event.data.source_system + '/' + event.data.external_id", "erp/INV-7"),
        ("event.data.missing", None),
        ("default(event.data.missing, event.id)", "evt-1"),
    ],
)
def test_the_document_id_expression(expression: str, expected: str | None) -> None:
    assert run_input(trigger(document_id=expression), envelope())[2] == expected


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"filter": "1 / 0"}, "'1 / 0' failed: ZeroDivisionError: division by zero"),
        ({"filter": "matches(event.data.text, '(')"}, "unterminated subpattern"),
        ({"filter": "open('x')"}, "only these functions may be called"),
        ({"input": {"x": "${event.data.text - 1}"}}, "TypeError"),
        ({"document_id": "int(event.data.text)"}, "ValueError: invalid literal for int()"),
    ],
)
def test_a_failing_trigger_is_invalid_input(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        run_input(trigger(**fields), envelope())
    assert info.value.detail.startswith("trigger of hearth.ingest.document.v1 failed on event evt-1: ")
    assert fragment in info.value.detail
    assert info.value.retryable is False


def test_a_non_matching_event_never_evaluates_the_input() -> None:
    spec = trigger(filter="false", input={"x": "${1 / 0}"}, document_id="1 / 0")
    assert run_input(spec, envelope()) == (False, {}, None)


def test_run_input_does_not_change_the_trigger() -> None:
    spec = trigger(input={"document": "${event.data}"})
    run_input(spec, envelope())
    assert spec.input == {"document": "${event.data}"}


# ---- trigger_keys ------------------------------------------------------------------------------


def definitions(text: str) -> dict[str, Definition]:
    return {d.name: d for d in parse_text(textwrap.dedent(text).lstrip("\n"), "t.yaml", LoadContext())}


TWO_TRIGGERS = """
    workflows:
      invoice_review:
        triggers:
          - event: hearth.ingest.document.v1
            filter: "event.data.metadata.kind == 'invoice'"
          - subject: hearth.ingest.>
            input: {doc: "${event.data}"}
            document_id: event.data.external_id
        steps:
          - s: {type: store, collection: c, data: {}}
      plain:
        steps:
          - s: {type: store, collection: c, data: {}}
    """


def test_trigger_keys_name_durables_per_workflow_and_index() -> None:
    keys = trigger_keys(definitions(TWO_TRIGGERS))
    assert [(k.workflow, k.index, k.subject, k.durable) for k in keys] == [
        ("invoice_review", 0, "hearth.ingest.document.v1", "wf-invoice-review-0"),
        ("invoice_review", 1, "hearth.ingest.>", "wf-invoice-review-1"),
    ]
    first, second = keys
    assert first.filter == "event.data.metadata.kind == 'invoice'"
    assert second.filter is None
    assert [t.subject for t in keys.values()] == ["hearth.ingest.document.v1", "hearth.ingest.>"]


def test_trigger_keys_of_the_shipped_definition() -> None:
    loaded = load_directory(DEFINITIONS_DIR, LoadContext(models=set()))
    (key,) = trigger_keys(loaded.definitions)
    assert key.durable == "wf-document-review-0"
    assert key.subject == "hearth.ingest.document.v1"


def test_trigger_keys_are_stable_across_loads() -> None:
    assert list(trigger_keys(definitions(TWO_TRIGGERS))) == list(trigger_keys(definitions(TWO_TRIGGERS)))
    assert hash(next(iter(trigger_keys(definitions(TWO_TRIGGERS))))) == hash(
        next(iter(trigger_keys(definitions(TWO_TRIGGERS))))
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("event.data.metadata.kind == 'invoice'", "event.data.metadata.kind == 'receipt'"),
        ('input: {doc: "${event.data}"}', 'input: {doc: "${event.data.text}"}'),
        ("document_id: event.data.external_id", "document_id: event.id"),
        ("subject: hearth.ingest.>", "subject: hearth.ingest.*"),
    ],
)
def test_a_changed_trigger_gets_a_new_key_with_the_same_durable(old: str, new: str) -> None:
    before = trigger_keys(definitions(TWO_TRIGGERS))
    assert old in TWO_TRIGGERS
    after = trigger_keys(definitions(TWO_TRIGGERS.replace(old, new)))
    assert set(before) != set(after)
    assert [k.durable for k in before] == [k.durable for k in after]
    assert len(set(before) & set(after)) == 1  # the other trigger is unchanged


def test_no_triggers_no_keys() -> None:
    assert trigger_keys({}) == {}
    plain = definitions(TWO_TRIGGERS)["plain"]
    assert trigger_keys({"plain": plain}) == {}


def test_trigger_key_durable_replaces_every_underscore() -> None:
    key = TriggerKey("a_b_c", 12, "hearth.ingest.>", None, "")
    assert key.durable == "wf-a-b-c-12"


# ---- visibility_query --------------------------------------------------------------------------

BASE = "WorkflowType = 'hearth.interpreter'"


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RunFilter(), BASE),
        (RunFilter(workflow="document_review"), f"{BASE} AND HearthWorkflow = 'document_review'"),
        (RunFilter(tenant="acme"), f"{BASE} AND HearthTenant = 'acme'"),
        (RunFilter(document_id="INV-7"), f"{BASE} AND HearthDocumentId = 'INV-7'"),
        (RunFilter(status="running"), f"{BASE} AND HearthStatus = 'running' AND ExecutionStatus = 'Running'"),
        (
            RunFilter(status="waiting_review"),
            f"{BASE} AND HearthStatus = 'waiting_review' AND ExecutionStatus = 'Running'",
        ),
        (RunFilter(status="completed"), f"{BASE} AND HearthStatus = 'completed'"),
        (RunFilter(status="failed"), f"{BASE} AND HearthStatus = 'failed'"),
        (RunFilter(status="cancelled"), f"{BASE} AND HearthStatus = 'cancelled'"),
        (RunFilter(status="terminated"), f"{BASE} AND ExecutionStatus = 'Terminated'"),
        (RunFilter(status="timed_out"), f"{BASE} AND ExecutionStatus = 'TimedOut'"),
        (
            RunFilter(since=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
            f"{BASE} AND StartTime >= '2024-01-02T03:04:05+00:00'",
        ),
        (
            RunFilter(until=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
            f"{BASE} AND StartTime <= '2024-01-02T03:04:05+00:00'",
        ),
        (RunFilter(workflow=""), BASE),  # empty means no filter
    ],
)
def test_visibility_query(flt: RunFilter, expected: str) -> None:
    assert visibility_query(flt) == expected


def test_visibility_query_combines_every_filter_in_order() -> None:
    flt = RunFilter(
        workflow="w",
        status="failed",
        tenant="t",
        since=datetime(2024, 1, 1, tzinfo=UTC),
        until=datetime(2024, 2, 1, tzinfo=UTC),
        document_id="d",
    )
    assert visibility_query(flt) == (
        f"{BASE} AND HearthWorkflow = 'w' AND HearthTenant = 't' AND HearthDocumentId = 'd' "
        "AND HearthStatus = 'failed' AND StartTime >= '2024-01-01T00:00:00+00:00' "
        "AND StartTime <= '2024-02-01T00:00:00+00:00'"
    )


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("o'brien", r"'o\'brien'"),
        ("x' OR '1'='1", r"'x\' OR \'1\'=\'1'"),
        ("back\\slash", r"'back\\slash'"),
        ("end\\", r"'end\\'"),
        ("\\'", r"'\\\''"),
    ],
)
def test_visibility_query_quotes_values(value: str, quoted: str) -> None:
    assert visibility_query(RunFilter(document_id=value)) == f"{BASE} AND HearthDocumentId = {quoted}"


@pytest.mark.parametrize("status", ["bogus", "Running", "pending", "skipped"])
def test_visibility_query_refuses_an_unknown_status(status: str) -> None:
    with pytest.raises(InvalidInput) as info:
        visibility_query(RunFilter(status=status))
    assert info.value.detail == (
        f"unknown status {status!r} "
        "(one of running, waiting_review, completed, failed, cancelled, terminated, timed_out)"
    )
