"""Loading and checking workflow definitions (``workflows/definitions.py``), and durations."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shared.settings import REPO_ROOT
from shared.workflow import parse_duration
from workflows.definitions import (
    DEFINITIONS_DIR,
    Definition,
    DefinitionError,
    GroupSpec,
    LoadContext,
    Problem,
    RetrySpec,
    StepSpec,
    definition_from_snapshot,
    load_directory,
    load_file,
    parse_text,
    snapshot_hash,
    version_diff,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

MODELS = {"chinese_ocr_v3", "legal_doc_analyzer"}
KNOWN_TYPES = "(known: human_review, infer, nlp_analysis, ocr_extraction, publish, store)"
ONLY_FUNCTIONS = (
    "only these functions may be called: "
    "bool, default, endswith, float, int, len, lower, matches, startswith, str, upper"
)

# The example workflow of the project's brief, verbatim (shipped as workflows/document_processing.yaml).
SEED_EXAMPLE = """\
workflows:
  document_processing:
    steps:
      - ocr_extraction:
          model: "chinese_ocr_v3"
          output_format: "json"
      - nlp_analysis:
          model: "legal_doc_analyzer"
          entities_to_extract: ["contract_type", "valid_period"]
"""

STORE = "{type: store, collection: c, data: {}}"


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(text: str, models: set[str] | None = None) -> list[Definition]:
    return parse_text(yaml_text(text), "wf.yaml", LoadContext(models=models))


def one(text: str, models: set[str] | None = None) -> Definition:
    (definition,) = load(text, models)
    return definition


def refuse(text: str, models: set[str] | None = None) -> list[tuple[int | None, str]]:
    """The (line, reason) of every problem of a refused text."""
    with pytest.raises(DefinitionError) as info:
        load(text, models)
    assert all(p.file == "wf.yaml" for p in info.value.problems)
    return [(p.line, p.reason) for p in info.value.problems]


def line_of(text: str, fragment: str) -> int:
    """1-based line of the only line of ``text`` containing ``fragment``."""
    lines = [i for i, line in enumerate(yaml_text(text).splitlines(), start=1) if fragment in line]
    assert len(lines) == 1, (fragment, lines)
    return lines[0]


# ---- the shipped definition --------------------------------------------------------------------


def shipped() -> Definition:
    loaded = load_directory(DEFINITIONS_DIR, LoadContext(models=MODELS))
    assert loaded.errors == {}
    return loaded.definitions["document_review"]


def test_the_shipped_definition_loads() -> None:
    loaded = load_directory(DEFINITIONS_DIR, LoadContext(models=MODELS))
    assert loaded.errors == {}
    assert loaded.files["document_review"] == "workflows/document_review.yaml"
    definition = loaded.definitions["document_review"]
    assert [s.id for s in definition.all_steps()] == ["intake", "review", "decision"]
    intake, review, decision = definition.all_steps()
    assert (intake.type, intake.kind, intake.activity, intake.task_queue) == (
        "store",
        "activity",
        "workflows.store",
        "hearth-workflows",
    )
    assert intake.takes_context is True
    assert intake.params == {"collection": "review_intake", "data": "${input}"}
    assert intake.timeout_s == 30.0
    assert (review.type, review.kind, review.activity, review.task_queue) == ("human_review", "review", None, None)
    assert review.timeout_s == 3 * 86400.0
    assert review.params["on_timeout"] == "reject"
    assert "timeout" not in review.params  # a step setting, not a parameter
    assert decision.params["data"]["decision"] == "${steps.review.output.decision}"
    (trigger,) = definition.triggers
    assert trigger.event == trigger.subject == "hearth.ingest.document.v1"
    assert trigger.filter == "event.data.metadata.review == 'required'"
    assert trigger.input == {"document": "${event.data}", "submitted_by": "${event.source}"}
    assert trigger.document_id == "event.data.external_id"


def test_the_shipped_definition_loads_from_its_file() -> None:
    (definition,) = load_file(DEFINITIONS_DIR / "document_review.yaml", LoadContext(models=set()))
    assert definition == shipped()


def test_the_hash_is_stable_across_loads() -> None:
    first, second = shipped(), shipped()
    assert first.hash == second.hash
    assert len(first.hash) == 64
    assert first.hash == snapshot_hash(first.snapshot())
    assert definition_from_snapshot(first.snapshot()) == first
    assert definition_from_snapshot(first.snapshot()).hash == first.hash


def test_the_hash_ignores_comments_and_layout_but_not_parameters() -> None:
    text = (DEFINITIONS_DIR / "document_review.yaml").read_text(encoding="utf-8")
    original = parse_text(text, "a.yaml", LoadContext(models=set()))[0].hash

    relaid = "# another comment\n\n" + text.replace("\n", "   # note\n", 3) + "\n\n# the end\n"
    relaid = relaid.replace("fields: [title, category]", "fields:\n            - title\n            - category")
    relaid = relaid.replace("collection: review_intake", "collection:    'review_intake'   # where intakes go")
    relaid = relaid.replace("on_timeout: reject", 'on_timeout: "reject"\n')
    assert relaid != text
    assert parse_text(relaid, "b.yaml", LoadContext(models=set()))[0].hash == original

    changed = text.replace("collection: review_intake", "collection: review_intake_v2")
    assert changed != text
    assert parse_text(changed, "c.yaml", LoadContext(models=set()))[0].hash != original


# ---- the seed example ------------------------------------------------------------------------


def test_the_seed_example_loads_verbatim() -> None:
    (definition,) = parse_text(SEED_EXAMPLE, "seed.yaml", LoadContext(models=MODELS))
    assert definition.name == "document_processing"
    ocr, nlp = definition.steps
    assert isinstance(ocr, StepSpec)
    assert isinstance(nlp, StepSpec)
    assert (ocr.type, ocr.activity, ocr.task_queue, ocr.receives) == (
        "ocr_extraction",
        "ocr.extract",
        "hearth-ocr",
        ["document"],
    )
    assert ocr.params == {"model": "chinese_ocr_v3", "output_format": "json"}
    assert (nlp.type, nlp.activity, nlp.task_queue, nlp.receives) == (
        "nlp_analysis",
        "nlp.analyze",
        "hearth-nlp",
        ["previous"],
    )
    assert nlp.params == {"model": "legal_doc_analyzer", "entities_to_extract": ["contract_type", "valid_period"]}


def test_the_shipped_document_processing_file_is_the_seed_example() -> None:
    assert (REPO_ROOT / "workflows" / "document_processing.yaml").read_text(encoding="utf-8") == SEED_EXAMPLE


def test_the_seed_steps_refuse_an_unknown_model_and_entity_at_load() -> None:
    text = SEED_EXAMPLE.replace('"legal_doc_analyzer"', '"contract_bot"').replace('"valid_period"', '"colour"')
    with pytest.raises(DefinitionError) as info:
        parse_text(text, "seed.yaml", LoadContext(models=MODELS))
    problems = [(p.line, p.reason) for p in info.value.problems]
    assert any(line == 8 and "'contract_bot'" in reason for line, reason in problems), problems
    assert any(line == 9 and "colour" in reason and "contract_type" in reason for line, reason in problems), problems


# ---- file-level refusals ------------------------------------------------------------------------


def test_yaml_syntax_error_has_its_line() -> None:
    assert refuse("workflows:\n  a:\n    steps: [\n") == [
        (4, "YAML: expected the node content, but found '<stream end>'")
    ]
    assert refuse("workflows:\n\ta: 1\n") == [(2, "YAML: found character '\\t' that cannot start any token")]


def test_duplicate_keys_are_refused() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s: {STORE}
          a:
            steps: []
        """
    assert refuse(text) == [(5, "YAML: duplicate key 'a'")]
    text = """
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  collection: d
                  data: {}
        """
    assert refuse(text) == [(line_of(text, "collection: d"), "YAML: duplicate key 'collection'")]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n", "workflows: {}\n", "workflows: [a]\n", "other: 1\n"])
def test_a_file_needs_a_workflows_mapping(text: str) -> None:
    problems = refuse(text)
    assert [reason for _, reason in problems] == ["the file must have a top-level `workflows:` mapping"]


def test_unknown_top_level_key() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s: {STORE}
        extra: 1
        """
    assert refuse(text) == [(5, "unknown top-level key 'extra' (only `workflows`)")]


# ---- workflow-level refusals ------------------------------------------------------------------


def test_a_workflow_must_be_a_mapping() -> None:
    assert refuse("workflows:\n  a: 3\n") == [(2, "workflow 'a' must be a mapping with `steps:`")]


@pytest.mark.parametrize("steps", ["", "    steps: []\n", "    steps: {a: 1}\n", "    steps: text\n"])
def test_a_workflow_needs_steps(steps: str) -> None:
    problems = refuse("workflows:\n  a:\n    description: x\n" + steps)
    assert [reason for _, reason in problems] == ["workflow 'a' needs a non-empty list of `steps`"]
    assert problems[0][0] == (4 if steps else 2)


def test_unknown_workflow_key() -> None:
    text = f"""
        workflows:
          a:
            bogus: 1
            steps:
              - s: {STORE}
        """
    assert refuse(text) == [(3, "unknown key 'bogus' in workflow 'a' (allowed: description, steps, triggers)")]


@pytest.mark.parametrize("name", ["Bad", "bad-name", "1abc", "_a", "a" * 64])
def test_bad_workflow_names(name: str) -> None:
    problems = refuse(f"workflows:\n  {name}:\n    steps:\n      - s: {STORE}\n")
    assert problems == [(2, f"workflow name {name!r} must be lower case letters, digits and _")]


def test_a_workflow_description_is_text() -> None:
    text = f"workflows:\n  a:\n    description: [1]\n    steps:\n      - s: {STORE}\n"
    assert refuse(text) == [(3, "description must be text")]
    assert one(text.replace("[1]", "Some words")).description == "Some words"


# ---- step-level refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("step_id", ["Bad", "bad-id", "9a", "a" * 64])
def test_bad_step_ids(step_id: str) -> None:
    problems = refuse(f"workflows:\n  a:\n    steps:\n      - {step_id}: {STORE}\n")
    assert problems == [(4, f"step id {step_id!r} must be lower case letters, digits and _ (at most 63)")]


def test_a_63_character_step_id_is_fine() -> None:
    step_id = "a" * 63
    assert one(f"workflows:\n  a:\n    steps:\n      - {step_id}: {STORE}\n").all_steps()[0].id == step_id


def test_duplicate_step_ids_name_the_first_line() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s: {STORE}
              - t: {STORE}
              - s: {STORE}
        """
    assert refuse(text) == [(6, "step id 's' is used twice (first at line 4)")]


def test_duplicate_step_ids_across_a_group_and_a_compensation() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - parallel:
                  - s: {STORE}
              - t:
                  type: store
                  collection: c
                  data: {{}}
                  on_failure:
                    compensate:
                      - s: {STORE}
        """
    assert refuse(text) == [(12, "step id 's' is used twice (first at line 5)")]


@pytest.mark.parametrize(
    ("item", "line"),
    [("- s\n", 3), ("- s: {}\n        t: {}\n", 4), ("- [1]\n", 3), ("- 3\n", 3), ("- {}\n", 4)],
)
def test_a_step_is_a_mapping_with_one_key(item: str, line: int) -> None:
    # A mapping is reported on its own line; a scalar has none, so on the line of `steps:`.
    problems = refuse("workflows:\n  a:\n    steps:\n      " + item)
    assert problems == [
        (line, "step 1 must be a mapping with one key, its id (e.g. `- ocr_extraction: {model: chinese_ocr_v3}`)")
    ]


def test_a_bad_item_among_steps_has_its_own_line() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s: {STORE}
              - t: {STORE}
                u: {STORE}
        """
    assert refuse(text) == [
        (5, "step 2 must be a mapping with one key, its id (e.g. `- ocr_extraction: {model: chinese_ocr_v3}`)")
    ]


@pytest.mark.parametrize("body", ["3", "text", "[1]"])
def test_a_step_body_is_a_mapping(body: str) -> None:
    assert refuse(f"workflows:\n  a:\n    steps:\n      - s: {body}\n") == [
        (4, "step 's' must be a mapping of its settings and parameters")
    ]


def test_unknown_step_type_names_the_line_of_type() -> None:
    text = """
        workflows:
          a:
            steps:
              - s:
                  collection: c
                  type: ocr
        """
    assert refuse(text) == [(6, f"step 's': unknown step type 'ocr' {KNOWN_TYPES}")]
    assert refuse("workflows:\n  a:\n    steps:\n      - s: {type: 3}\n") == [
        (4, f"step 's': unknown step type 3 {KNOWN_TYPES}")
    ]


def test_the_step_id_is_its_type_when_there_is_no_type() -> None:
    definition = one("workflows:\n  a:\n    steps:\n      - human_review:\n      - store: {collection: c, data: {}}\n")
    assert [(s.id, s.type) for s in definition.all_steps()] == [("human_review", "human_review"), ("store", "store")]


@pytest.mark.parametrize(
    ("param_line", "reason"),
    [
        ("collection: Not_Valid", "parameter collection: String should match pattern '^[a-z][a-z0-9_]{0,62}$'"),
        ("collection: [1]", "parameter collection: Input should be a valid string"),
        ("key: [1]", "parameter key: Input should be a valid string"),
        ("bogus: 1", "parameter bogus: Extra inputs are not permitted"),
        ("data: [1, 2]", "parameter data: Input should be a valid dictionary"),
    ],
)
def test_params_are_checked_against_the_step_type_with_their_line(param_line: str, reason: str) -> None:
    text = f"""
        workflows:
          a:
            steps:
              - first: {STORE}
              - s:
                  type: store
                  collection: c
                  data: {{}}
                  {param_line}
        """
    if param_line.startswith(("collection", "data")):
        key = param_line.split(":", maxsplit=1)[0]
        text = text.replace(f"                  {key}: {'c' if key == 'collection' else '{}'}\n", "", 1)
    assert refuse(text) == [(line_of(text, param_line), f"step 's' (store): {reason}")]


def test_a_missing_param_is_reported_on_the_step_line() -> None:
    text = """
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
        """
    assert refuse(text) == [(4, "step 's' (store): parameter data: Field required")]


def test_nested_param_errors_name_their_path() -> None:
    text = """
        workflows:
          a:
            steps:
              - s:
                  type: infer
                  model: chinese_ocr_v3
                  inputs:
                    image: {datatype: BYTES, shape: one, data: []}
        """
    assert refuse(text, MODELS) == [
        (line_of(text, "inputs:"), "step 's' (infer): parameter inputs.image.shape: Input should be a valid list")
    ]


@pytest.mark.parametrize(
    "param_line",
    [
        "data: '${input}'",  # a dict when rendered
        "collection: '${input.collection}'",  # does not match the pattern as written
        "key: '${input.key}'",
    ],
)
def test_a_templated_param_is_not_refused_for_its_type(param_line: str) -> None:
    key = param_line.split(":", maxsplit=1)[0]
    params = {"collection": "collection: c", "data": "data: {}", "key": ""}
    params[key] = param_line
    body = "\n".join(f"          {p}" for p in params.values() if p)
    definition = one(f"workflows:\n  a:\n    steps:\n      - s:\n          type: store\n{body}\n")
    assert definition.all_steps()[0].params[key] == param_line.split(": ", 1)[1].strip("'")


def test_a_templated_param_still_needs_valid_expressions() -> None:
    text = """
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  data: {x: "${1 +}"}
        """
    assert refuse(text) == [(7, "parameter 'data' of step 's': syntax error in '1 +': invalid syntax")]


def test_context_is_set_by_the_engine() -> None:
    text = "workflows:\n  a:\n    steps:\n      - s: {type: store, collection: c, data: {}, context: {}}\n"
    assert refuse(text) == [(4, "step 's': `context` is set by the engine")]


def infer_step(model: str) -> str:
    return f"""
        workflows:
          a:
            steps:
              - s:
                  type: infer
                  inputs: {{}}
                  model: {model}
        """


def test_an_unknown_model_lists_the_available_models() -> None:
    text = infer_step("nope")
    assert refuse(text, MODELS) == [
        (7, "step 's': model 'nope' is not in the model repository (available: chinese_ocr_v3, legal_doc_analyzer)")
    ]
    assert refuse(text, set()) == [(7, "step 's': model 'nope' is not in the model repository (available: none)")]


def test_models_are_not_checked_when_unknown_or_templated() -> None:
    assert one(infer_step("nope"), None).all_steps()[0].params["model"] == "nope"
    assert one(infer_step("'${input.model}'"), MODELS).all_steps()[0].params["model"] == "${input.model}"
    assert one(infer_step("chinese_ocr_v3"), MODELS).all_steps()[0].params["model"] == "chinese_ocr_v3"


# ---- references between steps -------------------------------------------------------------------


def test_when_referring_to_a_later_step_is_refused() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  data: {{}}
                  when: steps.t.output.ok
              - t: {STORE}
        """
    assert refuse(text) == [(8, "`when` of step 's' refers to step 't', which does not run before it")]


def test_when_referring_to_itself_is_refused() -> None:
    text = "workflows:\n  a:\n    steps:\n      - s: {type: store, collection: c, data: {}, when: steps.s.ok}\n"
    assert refuse(text) == [(4, "`when` of step 's' refers to step 's', which does not run before it")]


def test_a_param_referring_to_a_later_step_is_refused() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  data: {{x: "${{steps['t'].output}}"}}
              - t: {STORE}
        """
    assert refuse(text) == [(7, "parameter 'data' of step 's' refers to step 't', which does not run before it")]


def test_several_bad_references_are_reported_in_a_stable_order() -> None:
    when = "steps.zed.ok and steps.alpha.ok or steps.mid.ok"
    text = f"workflows:\n  a:\n    steps:\n      - s: {{type: store, collection: c, data: {{}}, when: {when}}}\n"
    assert refuse(text) == [
        (4, f"`when` of step 's' refers to step {name!r}, which does not run before it")
        for name in ("alpha", "mid", "zed")
    ]


def test_references_to_earlier_steps_are_fine() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - s: {STORE}
              - t:
                  type: store
                  collection: c
                  data: {{x: "${{steps.s.output}}"}}
                  when: steps.s.output.created and input.x
        """
    assert one(text).all_steps()[1].when == "steps.s.output.created and input.x"


def test_when_referring_to_a_step_of_the_same_parallel_group_is_refused() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - parallel:
                  - s: {STORE}
                  - t:
                      type: store
                      collection: c
                      data: {{x: "${{steps.s.output}}"}}
                      when: steps.s.output
        """
    assert refuse(text) == [
        (9, "parameter 'data' of step 't' refers to step 's', which does not run before it"),
        (10, "`when` of step 't' refers to step 's', which does not run before it"),
    ]


def test_the_when_of_a_group_cannot_see_its_members() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - g:
                  when: steps.s.output
                  parallel:
                    - s: {STORE}
        """
    assert refuse(text) == [(4, "`when` of group 'g' refers to step 's', which does not run before it")]


def test_event_outside_triggers_is_refused_once() -> None:
    text = "workflows:\n  a:\n    steps:\n      - s: {type: store, collection: c, data: {}, when: event.data.x}\n"
    assert refuse(text) == [(4, "`when` of step 's': `event` exists only in trigger filters and inputs")]
    text = "workflows:\n  a:\n    steps:\n      - s: {type: store, collection: c, data: '${event}'}\n"
    assert refuse(text) == [(4, "parameter 'data' of step 's': `event` exists only in trigger filters and inputs")]


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("'lambda: 1'", "`when` of step 's': Lambda is not allowed in an expression"),
        ("'open(1)'", "`when` of step 's': only these functions may be called"),
        ("'input.'", "`when` of step 's': syntax error in 'input.'"),
        ("''", "`when` of step 's': an expression must be a non-empty string"),
        ("3", "`when` of step 's': an expression must be a non-empty string"),
        ("[a]", "`when` of step 's': an expression must be a non-empty string"),
    ],
)
def test_bad_when(when: str, reason: str) -> None:
    problems = refuse(
        f"workflows:\n  a:\n    steps:\n      - s: {{type: store, collection: c, data: {{}}, when: {when}}}\n"
    )
    assert len(problems) == 1
    assert problems[0][0] == 4
    assert problems[0][1].startswith(reason)


def test_a_step_description_is_text() -> None:
    text = "workflows:\n  a:\n    steps:\n      - s: {type: store, collection: c, data: {}, description: [1]}\n"
    assert refuse(text) == [(4, "description of step 's' must be text")]
    assert one(text.replace("[1]", "Keeps it")).all_steps()[0].description == "Keeps it"


# ---- durations and retries ----------------------------------------------------------------------


def step_with(setting: str) -> str:
    return f"""
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  data: {{}}
                  {setting}
        """


@pytest.mark.parametrize(("timeout", "seconds"), [("5", 5.0), ("1.5", 1.5), ("250ms", 0.25), ("2m", 120.0)])
def test_step_timeouts(timeout: str, seconds: float) -> None:
    assert one(step_with(f"timeout: {timeout}")).all_steps()[0].timeout_s == seconds


def test_the_default_timeout_is_the_step_types() -> None:
    assert one(step_with("")).all_steps()[0].timeout_s == 30.0


@pytest.mark.parametrize(
    ("timeout", "reason"),
    [
        ("5x", "'5x' is not a duration: use seconds or '250ms', '30s', '5m', '2h', '1d'"),
        ("0", "a duration must be a positive, finite number of seconds"),
        ("-3", "a duration must be a positive, finite number of seconds"),
        ("0s", "a duration must be a positive, finite number of seconds"),
        ("true", "a duration is a number of seconds or a string like '30s', '5m', '2h', '1d'"),
        ("null", "None is not a duration: use seconds or '250ms', '30s', '5m', '2h', '1d'"),
    ],
)
def test_bad_step_timeouts(timeout: str, reason: str) -> None:
    text = step_with(f"timeout: {timeout}")
    assert refuse(text) == [(8, f"`timeout` of 's': {reason}")]


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ("5", RetrySpec(attempts=5)),
        (
            "{attempts: 2, backoff: 500ms, backoff_coefficient: 1.5, max_backoff: 1m}",
            RetrySpec(attempts=2, backoff=0.5, backoff_coefficient=1.5, max_backoff=60.0),
        ),
        ("{}", RetrySpec()),
    ],
)
def test_retries(retry: str, expected: RetrySpec) -> None:
    assert one(step_with(f"retry: {retry}")).all_steps()[0].retry == expected


def test_the_default_retry() -> None:
    assert one(step_with("")).all_steps()[0].retry == RetrySpec(
        attempts=3, backoff=1.0, backoff_coefficient=2.0, max_backoff=60.0
    )


@pytest.mark.parametrize(
    ("retry", "reason"),
    [
        ("0", "attempts: Input should be greater than or equal to 1"),
        ("101", "attempts: Input should be less than or equal to 100"),
        ("{attempts: 0}", "attempts: Input should be greater than or equal to 1"),
        ("{bogus: 1}", "bogus: Extra inputs are not permitted"),
        ("{backoff: nope}", "backoff: Value error, 'nope' is not a duration"),
        ("{backoff: 0}", "backoff: Value error, a duration must be a positive, finite number of seconds"),
        ("{backoff_coefficient: 0.5}", "backoff_coefficient: Input should be greater than or equal to 1"),
        ("{backoff_coefficient: 11}", "backoff_coefficient: Input should be less than or equal to 10"),
        ("lots", "value: Input should be a valid dictionary or instance of RetrySpec"),
        ("[1]", "value: Input should be a valid dictionary or instance of RetrySpec"),
    ],
)
def test_bad_retries(retry: str, reason: str) -> None:
    problems = refuse(step_with(f"retry: {retry}"))
    assert len(problems) == 1
    assert problems[0][0] == 8
    assert problems[0][1].startswith(f"`retry` of step 's': {reason}")


@pytest.mark.parametrize("retry", ["2", "3", "{}", "{attempts: 1}"])
def test_human_review_has_no_retries(retry: str) -> None:
    text = f"workflows:\n  a:\n    steps:\n      - r:\n          type: human_review\n          retry: {retry}\n"
    assert refuse(text) == [(6, "step 'r': a human_review step has no retries")]


def test_human_review_params_are_checked() -> None:
    text = "workflows:\n  a:\n    steps:\n      - r:\n          type: human_review\n          escalate_after: nope\n"
    assert refuse(text) == [
        (
            6,
            "step 'r' (human_review): parameter escalate_after: Value error, 'nope' is not a duration: "
            "use seconds or '250ms', '30s', '5m', '2h', '1d'",
        )
    ]


# ---- on_failure ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["fail", "continue"])
def test_on_failure_fail_or_continue(value: str) -> None:
    step = one(step_with(f"on_failure: {value}")).all_steps()[0]
    assert step.on_failure == value
    assert step.compensate == []


def test_on_failure_defaults_to_fail() -> None:
    assert one(step_with("")).all_steps()[0].on_failure == "fail"


@pytest.mark.parametrize("value", ["explode", "null", "3", "[continue]"])
def test_bad_on_failure(value: str) -> None:
    assert refuse(step_with(f"on_failure: {value}")) == [
        (8, "`on_failure` of 's' must be fail, continue or {compensate: [...]}")
    ]


def compensating(then: str = "") -> str:
    return f"""
        workflows:
          a:
            steps:
              - s:
                  type: store
                  collection: c
                  data: {{}}
                  on_failure:
                    compensate:
                      - undo:
                          type: store
                          collection: undo
                          data: {{failed: "${{steps.s.output}}"}}
                      - tell: {STORE}
                    {then}
        """


@pytest.mark.parametrize(("then", "expected"), [("", "fail"), ("then: fail", "fail"), ("then: continue", "continue")])
def test_on_failure_compensate(then: str, expected: str) -> None:
    (step,) = one(compensating(then)).all_steps()
    assert step.on_failure == expected
    assert [c.id for c in step.compensate] == ["undo", "tell"]
    assert step.compensate[0].params == {"collection": "undo", "data": {"failed": "${steps.s.output}"}}
    assert step.compensate[0].activity == "workflows.store"


def test_compensations_are_not_in_all_steps() -> None:
    assert [s.id for s in one(compensating()).all_steps()] == ["s"]


def test_bad_compensations() -> None:
    text = step_with("on_failure: {compensate: [], then: maybe, extra: 1}")
    assert refuse(text) == [
        (8, "`on_failure` of 's': unknown keys ['extra']"),
        (8, "`on_failure.then` of 's' must be fail or continue"),
        (8, "`on_failure.compensate` of 's' needs a list of steps"),
    ]
    assert refuse(step_with("on_failure: {then: continue}")) == [
        (8, "`on_failure.compensate` of 's' needs a list of steps")
    ]
    assert refuse(step_with("on_failure: {compensate: [undo]}")) == [(8, "a compensation step is `- <id>: {...}`")]
    assert refuse(step_with("on_failure: {compensate: [{undo: {type: nope}}]}")) == [
        (8, f"step 'undo': unknown step type 'nope' {KNOWN_TYPES}")
    ]


# ---- parallel groups --------------------------------------------------------------------------


def test_parallel_group_short_syntax() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - first: {STORE}
              - parallel:
                  - s: {STORE}
                  - t: {STORE}
              - u:
                  type: store
                  collection: c
                  data: {{}}
                  when: steps.s.output and steps.t.output and steps.first.output
        """
    definition = one(text)
    first, group, last = definition.steps
    assert isinstance(first, StepSpec)
    assert isinstance(group, GroupSpec)
    assert isinstance(last, StepSpec)
    assert group.id == "parallel_2"
    assert group.when is None
    assert [s.id for s in group.parallel] == ["s", "t"]
    assert [s.id for s in definition.all_steps()] == ["first", "s", "t", "u"]


def test_parallel_group_named_syntax_with_when() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - first: {STORE}
              - checks:
                  when: input.deep and steps.first.output
                  parallel:
                    - s: {STORE}
                    - t: {STORE}
        """
    definition = one(text)
    group = definition.steps[1]
    assert isinstance(group, GroupSpec)
    assert (group.id, group.when) == ("checks", "input.deep and steps.first.output")
    assert [s.id for s in definition.all_steps()] == ["first", "s", "t"]
    assert definition.snapshot()["steps"][1]["parallel"][0]["id"] == "s"


@pytest.mark.parametrize(
    "nested",
    [f"- g2: {{parallel: [{{x: {STORE}}}]}}", f"- parallel: [{{x: {STORE}}}]"],
)
def test_nested_parallel_groups_are_refused(nested: str) -> None:
    text = f"workflows:\n  a:\n    steps:\n      - parallel:\n          - s: {STORE}\n          {nested}\n"
    assert refuse(text) == [(6, "parallel groups cannot be nested")]


@pytest.mark.parametrize("members", ["[]", "text", "{a: 1}"])
def test_a_parallel_group_needs_steps(members: str) -> None:
    assert refuse(f"workflows:\n  a:\n    steps:\n      - parallel: {members}\n") == [
        (4, "parallel group 'parallel_1' needs a non-empty list of steps")
    ]
    assert refuse(f"workflows:\n  a:\n    steps:\n      - g: {{parallel: {members}}}\n") == [
        (4, "parallel group 'g' needs a non-empty list of steps")
    ]


def test_parallel_group_refusals() -> None:
    text = (
        f"workflows:\n  a:\n    steps:\n      - g:\n          bogus: 1\n          parallel:\n            - s: {STORE}\n"
    )
    assert refuse(text) == [(5, "unknown key 'bogus' in parallel group 'g'")]
    text = "workflows:\n  a:\n    steps:\n      - parallel:\n          - s\n"
    assert refuse(text) == [(4, "each step of a parallel group is `- <id>: {...}`")]
    text = (
        f"workflows:\n  a:\n    steps:\n      - parallel:\n          - s: {STORE}\n          - {{t: {{}}, u: {{}}}}\n"
    )
    assert refuse(text) == [(6, "each step of a parallel group is `- <id>: {...}`")]
    text = f"workflows:\n  a:\n    steps:\n      - g: {{when: 3, parallel: [{{s: {STORE}}}]}}\n"
    assert refuse(text) == [(4, "`when` of group 'g': an expression must be a non-empty string")]
    text = f"workflows:\n  a:\n    steps:\n      - s: {STORE}\n      - s: {{parallel: [{{t: {STORE}}}]}}\n"
    assert refuse(text) == [(5, "step id 's' is used twice (first at line 4)")]


# ---- triggers ----------------------------------------------------------------------------------


def with_trigger(trigger: str) -> str:
    return "workflows:\n  a:\n    triggers:\n" + trigger + f"    steps:\n      - s: {STORE}\n"


def test_a_trigger_on_an_event_type() -> None:
    text = with_trigger(
        "      - event: hearth.ingest.document.v1\n"
        "        filter: \"event.data.metadata.review == 'required'\"\n"
        "        input: {doc: '${event.data}'}\n"
        "        document_id: event.data.external_id\n"
    )
    (trigger,) = one(text).triggers
    assert trigger.subject == "hearth.ingest.document.v1"
    assert trigger.event == "hearth.ingest.document.v1"
    assert trigger.filter == "event.data.metadata.review == 'required'"
    assert trigger.input == {"doc": "${event.data}"}
    assert trigger.document_id == "event.data.external_id"


def test_a_trigger_on_a_subject() -> None:
    (trigger,) = one(with_trigger("      - subject: hearth.ingest.>\n")).triggers
    assert (trigger.subject, trigger.event, trigger.filter, trigger.input) == ("hearth.ingest.>", None, None, None)


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (
            "      - event: hearth.ingest.document.v1\n        subject: hearth.ingest.>\n",
            [(4, "a trigger names exactly one of `event` (a type) or `subject` (a filter)")],
        ),
        (
            "      - filter: 'true'\n",
            [(4, "a trigger names exactly one of `event` (a type) or `subject` (a filter)")],
        ),
        ("      - event: not-an-event\n", [(4, "'not-an-event' is not an event type (hearth.<domain>.<event>.vN)")]),
        ("      - event: 3\n", [(4, "3 is not an event type (hearth.<domain>.<event>.vN)")]),
        ("      - event: hearth.ingest.nothing.v1\n", [(4, "unknown event type 'hearth.ingest.nothing.v1'")]),
        (
            "      - subject: hearth.svc.ocr.extract\n",
            [
                (
                    4,
                    "no stream captures 'hearth.svc.ocr.extract': triggers listen on event subjects "
                    "(hearth.<domain>.…)",
                )
            ],
        ),
        (
            "      - subject: hearth.infer.chinese_ocr_v3\n",
            [
                (
                    4,
                    "no stream captures 'hearth.infer.chinese_ocr_v3': triggers listen on event subjects "
                    "(hearth.<domain>.…)",
                )
            ],
        ),
        (
            "      - subject: hearth.nosuch.x\n",
            [(4, "no stream captures 'hearth.nosuch.x': triggers listen on event subjects (hearth.<domain>.…)")],
        ),
        ("      - subject: 3\n", [(4, "`subject` must be a NATS subject")]),
        (
            "      - event: hearth.ingest.document.v1\n        filter: 'event.data ==='\n",
            [(5, "trigger filter: syntax error in 'event.data ===': invalid syntax")],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        filter: '__import__(\"os\")'\n",
            [
                (
                    5,
                    f"trigger filter: {ONLY_FUNCTIONS}",
                )
            ],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        filter: 3\n",
            [(5, "trigger filter: an expression must be a non-empty string")],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        document_id: 'lambda: 1'\n",
            [(5, "trigger document_id: Lambda is not allowed in an expression")],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        document_id: [1]\n",
            [(5, "trigger document_id: an expression must be a non-empty string")],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        input: [1]\n",
            [(5, "trigger `input` must be a mapping")],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        input: {x: '${open(1)}'}\n",
            [
                (
                    5,
                    f"trigger input: {ONLY_FUNCTIONS}",
                )
            ],
        ),
        (
            "      - event: hearth.ingest.document.v1\n        bogus: 1\n",
            [(5, "unknown key 'bogus' in a trigger (allowed: document_id, event, filter, input, subject)")],
        ),
        (
            "      - hearth.ingest.document.v1\n",
            [(3, "a trigger is a mapping with `event:` (or `subject:`) and an optional filter")],
        ),
        ("      event: hearth.ingest.document.v1\n", [(3, "`triggers` must be a list")]),
    ],
)
def test_bad_triggers(trigger: str, expected: list[tuple[int, str]]) -> None:
    assert refuse(with_trigger(trigger)) == expected


def test_a_bad_trigger_among_several_has_its_own_line() -> None:
    text = with_trigger(
        "      - event: hearth.ingest.document.v1\n"
        "      - event: hearth.ingest.document.v1\n"
        "        subject: hearth.ingest.>\n"
        "      - subject: hearth.ingest.>\n"
        "        filter: 'lambda: 1'\n"
    )
    assert refuse(text) == [
        (5, "a trigger names exactly one of `event` (a type) or `subject` (a filter)"),
        (8, "trigger filter: Lambda is not allowed in an expression"),
    ]


def test_a_bad_compensation_member_has_its_own_line() -> None:
    text = step_with("on_failure:\n                    compensate:\n                      - {a: {}, b: {}}")
    assert refuse(text) == [(10, "a compensation step is `- <id>: {...}`")]


# ---- directories ------------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(yaml_text(text), encoding="utf-8")
    return path


def test_load_directory_keeps_the_good_and_reports_the_bad(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", f"workflows:\n  good:\n    steps:\n      - s: {STORE}\n")
    also = write(tmp_path, "also.yml", f"workflows:\n  also:\n    steps:\n      - s: {STORE}\n")
    bad = write(tmp_path, "bad.yaml", SEED_EXAMPLE)  # its models are not in this (empty) repository
    write(tmp_path, "notes.txt", "workflows: [ignored")
    loaded = load_directory(tmp_path, LoadContext(models=set()))
    assert sorted(loaded.definitions) == ["also", "good"]
    assert loaded.files == {"good": str(good), "also": str(also)}
    assert list(loaded.errors) == [str(bad)]
    assert [(p.file, p.line) for p in loaded.errors[str(bad)].problems] == [(str(bad), 5), (str(bad), 8)]


def test_load_directory_of_several_directories(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write(tmp_path / "one", "a.yaml", f"workflows:\n  a:\n    steps:\n      - s: {STORE}\n")
    write(tmp_path / "two", "b.yaml", f"workflows:\n  b:\n    steps:\n      - s: {STORE}\n")
    loaded = load_directory([tmp_path / "one", tmp_path / "two"], LoadContext())
    assert sorted(loaded.definitions) == ["a", "b"]
    assert loaded.errors == {}


def test_load_directory_survives_a_file_whose_trigger_is_malformed(tmp_path: Path) -> None:
    # A non-text filter once escaped as a pydantic ValidationError and stopped the whole load.
    write(tmp_path, "good.yaml", f"workflows:\n  good:\n    steps:\n      - s: {STORE}\n")
    bad = write(
        tmp_path,
        "bad.yaml",
        "workflows:\n  bad:\n    triggers:\n      - event: hearth.ingest.document.v1\n        filter: 3\n"
        "    steps:\n      - s: {type: store, collection: c, data: {}, when: 3}\n",
    )
    loaded = load_directory(tmp_path, LoadContext())
    assert list(loaded.definitions) == ["good"]
    assert [(p.line, p.reason) for p in loaded.errors[str(bad)].problems] == [
        (7, "`when` of step 's': an expression must be a non-empty string"),
        (5, "trigger filter: an expression must be a non-empty string"),
    ]


def test_a_workflow_defined_in_two_files_is_refused_in_the_second(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", f"workflows:\n  same:\n    steps:\n      - s: {STORE}\n")
    second = write(
        tmp_path,
        "b.yaml",
        f"workflows:\n  same:\n    steps:\n      - t: {STORE}\n  other:\n    steps:\n      - s: {STORE}\n",
    )
    loaded = load_directory(tmp_path, LoadContext())
    assert loaded.files["same"] == str(first)
    assert [s.id for s in loaded.definitions["same"].all_steps()] == ["s"]
    assert loaded.errors[str(second)].problems == [
        Problem(str(second), None, f"workflow 'same' is already defined in {first}")
    ]


def test_every_workflow_defined_twice_is_reported(tmp_path: Path) -> None:
    body = f"    steps:\n      - s: {STORE}\n"
    first = write(tmp_path, "a.yaml", "workflows:\n  x:\n" + body + "  y:\n" + body)
    second = write(tmp_path, "b.yaml", "workflows:\n  x:\n" + body + "  y:\n" + body)
    loaded = load_directory(tmp_path, LoadContext())
    assert loaded.files == {"x": str(first), "y": str(first)}
    assert [p.reason for p in loaded.errors[str(second)].problems] == [
        f"workflow 'x' is already defined in {first}",
        f"workflow 'y' is already defined in {first}",
    ]


def test_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"workflows: \xff\xfe\n")
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == (str(path), None)
    assert problem.reason.startswith("cannot read: ")
    assert str(problem).startswith(f"{path}: cannot read: ")


def test_several_workflows_in_one_file_and_several_problems_at_once() -> None:
    two = load(f"workflows:\n  a:\n    steps:\n      - s: {STORE}\n  b:\n    steps:\n      - s: {STORE}\n")
    assert [d.name for d in two] == ["a", "b"]
    text = f"""
        workflows:
          a:
            steps:
              - s: {{type: nope}}
          b:
            steps:
              - Bad: {STORE}
        """
    assert refuse(text) == [
        (4, f"step 's': unknown step type 'nope' {KNOWN_TYPES}"),
        (7, "step id 'Bad' must be lower case letters, digits and _ (at most 63)"),
    ]


# ---- snapshots and diffs -----------------------------------------------------------------------


def test_version_diff() -> None:
    old = shipped().canonical_yaml()
    new = shipped().model_copy(update={"description": "Changed."}).canonical_yaml()
    diff = version_diff(old, new, old_label="v1", new_label="v2")
    assert diff.splitlines()[:9] == [
        "--- v1",
        "+++ v2",
        "@@ -1,6 +1,5 @@",
        " name: document_review",
        "-description: A reviewer approves, rejects or corrects a submitted document's details;",
        "-  the decision is stored.",
        "+description: Changed.",
        " triggers:",
        " - subject: hearth.ingest.document.v1",
    ]
    assert len(diff.splitlines()) == 10
    assert version_diff(old, old) == ""


def test_version_diff_from_nothing() -> None:
    new = "name: a\nsteps: []\n"
    assert version_diff(None, new) == "--- previous\n+++ this\n@@ -0,0 +1,2 @@\n+name: a\n+steps: []\n"


def test_canonical_yaml_is_the_snapshot() -> None:
    definition = shipped()
    text = definition.canonical_yaml()
    assert text.startswith("name: document_review\n")
    assert "# " not in text  # comments of the file are gone


def test_all_steps_order() -> None:
    text = f"""
        workflows:
          a:
            steps:
              - one: {STORE}
              - parallel:
                  - two: {STORE}
                  - three: {STORE}
              - four: {STORE}
              - g:
                  parallel:
                    - five: {STORE}
              - six:
                  type: store
                  collection: c
                  data: {{}}
                  on_failure: {{compensate: [{{undo: {STORE}}}]}}
        """
    definition = one(text)
    assert [s.id for s in definition.all_steps()] == ["one", "two", "three", "four", "five", "six"]
    assert [item.id for item in definition.steps] == ["one", "parallel_2", "four", "g", "six"]


# ---- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("2.5", 2.5),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("3d", 259200.0),
        ("1.5h", 5400.0),
        (" 10 s ", 10.0),
    ],
)
def test_parse_duration(value: Any, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5x", "'5x' is not a duration: use seconds or '250ms', '30s', '5m', '2h', '1d'"),
        ("s", "'s' is not a duration"),
        ("", "'' is not a duration"),
        ("1 2s", "'1 2s' is not a duration"),
        ("5 min", "'5 min' is not a duration"),
        ("1e3", "'1e3' is not a duration"),
        ("-5s", "'-5s' is not a duration"),
        (None, "None is not a duration"),
        ([1], "[1] is not a duration"),
        (0, "a duration must be a positive, finite number of seconds"),
        (-1, "a duration must be a positive, finite number of seconds"),
        (-0.5, "a duration must be a positive, finite number of seconds"),
        ("0", "a duration must be a positive, finite number of seconds"),
        ("0ms", "a duration must be a positive, finite number of seconds"),
        (True, "a duration is a number of seconds or a string like '30s', '5m', '2h', '1d'"),
        (False, "a duration is a number of seconds or a string like '30s', '5m', '2h', '1d'"),
    ],
)
def test_parse_duration_refuses(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_parse_duration_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_a_parallel_group_may_hold_one_human_review_only() -> None:
    text = """workflows:
  w:
    steps:
      - checks:
          parallel:
            - legal: {type: human_review}
            - finance: {type: human_review}
"""
    with pytest.raises(DefinitionError) as caught:
        parse_text(text, "w.yaml", LoadContext(models=set()))
    (problem,) = caught.value.problems
    assert problem.line == 4
    assert "2 human_review steps (legal, finance)" in problem.reason


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        (
            "type: store\n          collection: c\n          data: {}\n          retry: true",
            "`retry` of step 's': `retry` is a number of attempts or a mapping, not a boolean",
        ),
        (
            "type: store\n          collection: c\n          data: {}\n"
            "          retry: {backoff: 10s, max_backoff: 1s}",
            "max_backoff (1s) is shorter than backoff (10s)",
        ),
        (
            "type: human_review\n          timeout: 1h\n          escalate_after: 2h",
            "escalate_after must come before the deadline (`timeout`, 3600s)",
        ),
    ],
)
def test_retry_and_escalation_that_could_never_work_are_refused(step: str, fragment: str) -> None:
    text = f"workflows:\n  w:\n    steps:\n      - s:\n          {step}\n"
    with pytest.raises(DefinitionError) as caught:
        parse_text(text, "w.yaml", LoadContext(models=set()))
    assert any(fragment in p.reason for p in caught.value.problems), caught.value.problems


def test_a_workflow_tenant_key_is_refused_rather_than_ignored() -> None:
    with pytest.raises(DefinitionError, match="unknown key 'tenant'"):
        parse_text(
            "workflows:\n  w:\n    tenant: acme\n    steps:\n      - s: {type: human_review}\n",
            "w.yaml",
            LoadContext(models=set()),
        )
