"""Workflow definitions: YAML in ``workflows/*.yaml`` → checked, hashable snapshots.

The format (README "Workflows" has the full reference)::

    workflows:
      <name>:
        description: …
        triggers:                       # optional: events that start a run
          - event: hearth.ingest.document.v1
            filter: "event.data.metadata.review == 'required'"
            input: {document: "${event.data}"}
        steps:
          - <step id>:                  # the step type is `type:` or, as in the seed, the id itself
              type: <step type>
              when: "<expression>"      # skip the step unless true
              retry: {attempts: 3, backoff: 1s, backoff_coefficient: 2, max_backoff: 1m}
              timeout: 30s
              on_failure: fail | continue | {compensate: [<steps>], then: fail | continue}
              <parameters of the step type>
          - parallel:                   # a parallel group (or `- <group id>: {parallel: [...]}`)
              - <step id>: {...}

Everything wrong is reported at load time as a ``DefinitionError`` with the file, the line and
the reason: YAML syntax, unknown keys, unknown step types, unknown models, parameters that do
not match the step type's schema, references to steps that do not run before, bad expressions,
bad durations, unknown trigger events. Parameters holding ``${...}`` are checked when the run
renders them, since their value exists only then.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events.catalog import CATALOG, Catalog
from shared.events.envelope import is_event_type
from shared.settings import REPO_ROOT, HearthSettings
from shared.workflow import Duration, parse_duration
from workflows.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    has_template,
    references,
    template_expressions,
)
from workflows.steps import STEP_TYPES, StepType

DEFINITIONS_DIR: Final = REPO_ROOT / "workflows"
_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_STEP_KEYS: Final = frozenset({"type", "when", "retry", "timeout", "on_failure", "description"})
_WORKFLOW_KEYS: Final = frozenset({"description", "triggers", "steps"})
_TRIGGER_KEYS: Final = frozenset({"event", "subject", "filter", "input", "document_id"})
_MAX_ATTEMPTS: Final = 100


# ---- the snapshot model (what a run carries) ---------------------------------------------------


class RetrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=3, ge=1, le=_MAX_ATTEMPTS, description="Total attempts, the first included.")
    backoff: Duration = Field(default=1.0, description="Wait before the second attempt.")
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff: Duration = Field(default=60.0)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySpec:
        if self.max_backoff < self.backoff:
            raise ValueError(f"max_backoff ({self.max_backoff:g}s) is shorter than backoff ({self.backoff:g}s)")
        return self


class StepSpec(BaseModel):
    """One step, resolved: its type's activity and task queue are written in (see ``steps``)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    kind: Literal["activity", "review"] = "activity"
    activity: str | None = None
    task_queue: str | None = None
    takes_context: bool = False
    receives: list[Literal["document", "previous"]] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout_s: float
    heartbeat_timeout_s: float | None = None
    on_failure: Literal["fail", "continue"] = "fail"
    compensate: list[StepSpec] = Field(default_factory=list)
    description: str | None = None


class GroupSpec(BaseModel):
    """Steps that run concurrently; the group finishes when all of them have."""

    model_config = ConfigDict(extra="forbid")

    id: str
    parallel: list[StepSpec]
    when: str | None = None


class TriggerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="NATS subject (filter) whose events start a run.")
    event: str | None = Field(default=None, description="The event type, when the trigger names one.")
    filter: str | None = None
    input: dict[str, Any] | None = None
    document_id: str | None = Field(default=None, description="Expression giving the run's document id.")


class Definition(BaseModel):
    """A checked workflow definition; ``snapshot()`` is what runs carry."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    triggers: list[TriggerSpec] = Field(default_factory=list)
    steps: list[StepSpec | GroupSpec]

    def snapshot(self) -> dict[str, Any]:
        """The definition as plain JSON data, the interpreter's input."""
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the snapshot (comments and layout do not count)."""
        return snapshot_hash(self.snapshot())

    def canonical_yaml(self) -> str:
        """The snapshot as YAML: what version diffs are computed on."""
        return yaml.safe_dump(self.snapshot(), sort_keys=False, allow_unicode=True)

    def all_steps(self) -> list[StepSpec]:
        """Every step in run order, groups flattened (compensations not included)."""
        out: list[StepSpec] = []
        for item in self.steps:
            out.extend(item.parallel if isinstance(item, GroupSpec) else [item])
        return out


def snapshot_hash(snapshot: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def definition_from_snapshot(snapshot: Mapping[str, Any]) -> Definition:
    return Definition.model_validate(snapshot)


def version_diff(old: str | None, new: str, *, old_label: str = "previous", new_label: str = "this") -> str:
    """Unified diff between two canonical YAML texts."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label
    )
    return "".join(lines)


# ---- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class DefinitionError(ValueError):
    """A definition file that cannot be used; ``problems`` has one entry per mistake found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# ---- YAML with line numbers --------------------------------------------------------------------


class _LineDict(dict[str, Any]):
    """A mapping that remembers the line of itself and of each of its keys."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in out:
            raise yaml.MarkedYAMLError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _plain(value: Any) -> Any:
    """Line-tracking containers → plain dicts/lists (for snapshots and pydantic)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _line_of(value: Any, key: str | None = None, default: int | None = None) -> int | None:
    """The line of ``key`` in ``value``; else ``default``; else the line of ``value`` itself."""
    if isinstance(value, _LineDict) and key is not None and key in value.key_lines:
        return value.key_lines[key]
    if default is not None:
        return default
    return value.line if isinstance(value, _LineDict) else None


# ---- the loader --------------------------------------------------------------------------------


@dataclass
class LoadContext:
    """What a definition is checked against: step types, models in the repository, events."""

    models: set[str] | None = None
    """Model names in the Triton repositories; ``None`` skips the model check."""
    step_types: Mapping[str, StepType] = field(default_factory=lambda: STEP_TYPES)
    catalog: Catalog = field(default_factory=lambda: CATALOG)


def repository_models(repositories: Iterable[Path]) -> set[str]:
    """Models of the Triton repositories: directories holding a ``config.pbtxt``."""
    return {
        entry.name
        for repo in repositories
        if repo.is_dir()
        for entry in repo.iterdir()
        if (entry / "config.pbtxt").is_file()
    }


class _Checker:
    def __init__(self, file: str, ctx: LoadContext) -> None:
        self.file = file
        self.ctx = ctx
        self.problems: list[Problem] = []

    def problem(self, line: int | None, reason: str) -> None:
        self.problems.append(Problem(self.file, line, reason))

    def expression(self, source: Any, line: int | None, what: str) -> Expression | None:
        try:
            return compile_expression(source)
        except ExpressionError as exc:
            self.problem(line, f"{what}: {exc}")
            return None

    def duration(self, value: Any, line: int | None, what: str) -> float | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(line, f"{what}: {exc}")
            return None

    # -- workflows
    def workflow(self, name: str, body: Any, line: int | None) -> Definition | None:
        before = len(self.problems)
        if not _ID_RE.match(name):
            self.problem(line, f"workflow name {name!r} must be lower case letters, digits and _")
        if not isinstance(body, dict):
            self.problem(line, f"workflow {name!r} must be a mapping with `steps:`")
            return None
        for key in body:
            if key not in _WORKFLOW_KEYS:
                self.problem(
                    _line_of(body, key),
                    f"unknown key {key!r} in workflow {name!r} (allowed: {', '.join(sorted(_WORKFLOW_KEYS))})",
                )
        raw_steps = body.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.problem(_line_of(body, "steps", line), f"workflow {name!r} needs a non-empty list of `steps`")
            return None
        seen: dict[str, int | None] = {}
        steps: list[StepSpec | GroupSpec] = []
        earlier: set[str] = set()
        for index, item in enumerate(raw_steps):
            parsed = self.item(item, index, seen, earlier, _line_of(body, "steps", line))
            if parsed is None:
                continue
            steps.append(parsed)
            earlier.update(s.id for s in (parsed.parallel if isinstance(parsed, GroupSpec) else [parsed]))
        triggers = self.triggers(body.get("triggers"), _line_of(body, "triggers", line))
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            self.problem(_line_of(body, "description"), "description must be text")
        if len(self.problems) > before:
            return None
        return Definition(name=name, description=description, triggers=triggers, steps=steps)

    def item(
        self, item: Any, index: int, seen: dict[str, int | None], earlier: set[str], line: int | None
    ) -> StepSpec | GroupSpec | None:
        if not isinstance(item, dict) or len(item) != 1:
            self.problem(
                _line_of(item) or line,
                f"step {index + 1} must be a mapping with one key, its id "
                "(e.g. `- ocr_extraction: {model: chinese_ocr_v3}`)",
            )
            return None
        ((key, body),) = item.items()
        key_line = _line_of(item, key)
        if key == "parallel" or (isinstance(body, dict) and "parallel" in body):
            group_id = f"parallel_{index + 1}" if key == "parallel" else key
            members = body if key == "parallel" else body.get("parallel")
            when = body.get("when") if isinstance(body, dict) and key != "parallel" else None
            return self.group(group_id, members, when=when, seen=seen, earlier=earlier, line=key_line, body=body)
        return self.step(key, body, seen, earlier, key_line)

    def group(
        self,
        group_id: str,
        members: Any,
        *,
        when: Any,
        seen: dict[str, int | None],
        earlier: set[str],
        line: int | None,
        body: Any,
    ) -> GroupSpec | None:
        if isinstance(body, dict) and body is not members:
            for key in body:
                if key not in {"parallel", "when"}:
                    self.problem(_line_of(body, key), f"unknown key {key!r} in parallel group {group_id!r}")
        if not isinstance(members, list) or not members:
            self.problem(line, f"parallel group {group_id!r} needs a non-empty list of steps")
            return None
        self.claim_id(group_id, seen, line)
        steps: list[StepSpec] = []
        for member in members:
            if not isinstance(member, dict) or len(member) != 1:
                self.problem(_line_of(member) or line, "each step of a parallel group is `- <id>: {...}`")
                continue
            ((key, step_body),) = member.items()
            if key == "parallel" or (isinstance(step_body, dict) and "parallel" in step_body):
                self.problem(_line_of(member, key), "parallel groups cannot be nested")
                continue
            # Members of one group cannot see each other's outputs: they run at the same time.
            step = self.step(key, step_body, seen, earlier, _line_of(member, key))
            if step is not None:
                steps.append(step)
        reviews = [s.id for s in steps if s.kind == "review"]
        if len(reviews) > 1:
            self.problem(
                line,
                f"parallel group {group_id!r} has {len(reviews)} human_review steps "
                f"({', '.join(reviews)}): a run waits for one review at a time",
            )
        if when is not None:
            self.check_refs(when, earlier, line, f"`when` of group {group_id!r}", expression=True)
        return GroupSpec(id=group_id, parallel=steps, when=when if isinstance(when, str) else None) if steps else None

    def claim_id(self, step_id: str, seen: dict[str, int | None], line: int | None) -> None:
        if not _ID_RE.match(step_id):
            self.problem(line, f"step id {step_id!r} must be lower case letters, digits and _ (at most 63)")
        elif step_id in seen:
            self.problem(line, f"step id {step_id!r} is used twice (first at line {seen[step_id]})")
        seen[step_id] = line

    def step(  # noqa: PLR0912, PLR0915 - one branch per key of a step
        self, step_id: str, body: Any, seen: dict[str, int | None], earlier: set[str], line: int | None
    ) -> StepSpec | None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            self.problem(line, f"step {step_id!r} must be a mapping of its settings and parameters")
            return None
        self.claim_id(step_id, seen, line)
        type_name = body.get("type", step_id)
        stype = self.ctx.step_types.get(type_name) if isinstance(type_name, str) else None
        if stype is None:
            known = ", ".join(sorted(self.ctx.step_types))
            self.problem(
                _line_of(body, "type", line), f"step {step_id!r}: unknown step type {type_name!r} (known: {known})"
            )
            return None
        params = {k: _plain(v) for k, v in body.items() if k not in _STEP_KEYS}
        self.check_params(step_id, stype, params, body, line)
        for key, value in params.items():
            what = f"parameter {key!r} of step {step_id!r}"
            self.check_refs(value, earlier, _line_of(body, key, line), what, expression=False)
        when = body.get("when")
        if when is not None:
            self.check_refs(when, earlier, _line_of(body, "when", line), f"`when` of step {step_id!r}", expression=True)
        retry = RetrySpec()
        if "retry" in body:
            try:
                raw_retry = body["retry"]
                if isinstance(raw_retry, bool):  # YAML `retry: yes` is not a number of attempts
                    raise ValueError("`retry` is a number of attempts or a mapping, not a boolean")
                retry = RetrySpec.model_validate(
                    {"attempts": raw_retry} if isinstance(raw_retry, int) else _plain(raw_retry)
                )
            except ValidationError as exc:
                self.problem(_line_of(body, "retry", line), f"`retry` of step {step_id!r}: {_reasons(exc)}")
            except ValueError as exc:
                self.problem(_line_of(body, "retry", line), f"`retry` of step {step_id!r}: {exc}")
        timeout = stype.default_timeout_s
        if "timeout" in body:
            timeout = self.duration(body["timeout"], _line_of(body, "timeout", line), f"`timeout` of {step_id!r}") or 0
        escalate = params.get("escalate_after")
        if stype.kind == "review" and escalate is not None and not has_template(escalate):
            with contextlib.suppress(ValueError):  # a bad value is reported by the parameter check
                if parse_duration(escalate) >= timeout > 0:
                    self.problem(
                        _line_of(body, "escalate_after", line),
                        f"step {step_id!r}: escalate_after must come before the deadline (`timeout`, "
                        f"{timeout:g}s), or the review is never escalated",
                    )
        on_failure: Literal["fail", "continue"] = "fail"
        compensate: list[StepSpec] = []
        raw_failure = body.get("on_failure", "fail")
        failure_line = _line_of(body, "on_failure", line)
        if isinstance(raw_failure, dict):
            unknown = set(raw_failure) - {"compensate", "then"}
            if unknown:
                self.problem(failure_line, f"`on_failure` of {step_id!r}: unknown keys {sorted(unknown)}")
            then = raw_failure.get("then", "fail")
            if then not in ("fail", "continue"):
                self.problem(failure_line, f"`on_failure.then` of {step_id!r} must be fail or continue")
            else:
                on_failure = then
            raw_comp = raw_failure.get("compensate")
            if not isinstance(raw_comp, list) or not raw_comp:
                self.problem(failure_line, f"`on_failure.compensate` of {step_id!r} needs a list of steps")
            else:
                for member in raw_comp:
                    if not isinstance(member, dict) or len(member) != 1:
                        self.problem(_line_of(member) or failure_line, "a compensation step is `- <id>: {...}`")
                        continue
                    ((comp_id, comp_body),) = member.items()
                    comp = self.step(comp_id, comp_body, seen, earlier | {step_id}, _line_of(member, comp_id))
                    if comp is not None:
                        compensate.append(comp)
        elif raw_failure in ("fail", "continue"):
            on_failure = raw_failure
        else:
            self.problem(failure_line, f"`on_failure` of {step_id!r} must be fail, continue or {{compensate: [...]}}")
        if stype.kind == "review" and "retry" in body:
            self.problem(_line_of(body, "retry", line), f"step {step_id!r}: a human_review step has no retries")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            self.problem(_line_of(body, "description", line), f"description of step {step_id!r} must be text")
            description = None
        return StepSpec(
            id=step_id,
            type=stype.name,
            kind=stype.kind,
            activity=stype.activity,
            task_queue=stype.task_queue,
            takes_context=stype.takes_context,
            receives=list(stype.receives),
            params=params,
            when=when if isinstance(when, str) else None,
            retry=retry,
            timeout_s=timeout,
            heartbeat_timeout_s=stype.heartbeat_timeout_s,
            on_failure=on_failure,
            compensate=compensate,
            description=description,
        )

    def check_params(
        self, step_id: str, stype: StepType, params: dict[str, Any], body: Mapping[str, Any], line: int | None
    ) -> None:
        if "context" in params:
            self.problem(_line_of(body, "context", line), f"step {step_id!r}: `context` is set by the engine")
            return
        try:
            stype.params.model_validate(params)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                top = str(err["loc"][0]) if err["loc"] else None
                if top is not None and top in params and has_template(params[top]):
                    continue  # its value exists when the run renders it; the activity checks it then
                where = ".".join(str(p) for p in err["loc"]) or "parameters"
                self.problem(
                    _line_of(body, top, line) if top else line,
                    f"step {step_id!r} ({stype.name}): parameter {where}: {err['msg']}",
                )
        if stype.model_param and self.ctx.models is not None:
            model = params.get(stype.model_param)
            if isinstance(model, str) and not has_template(model) and model not in self.ctx.models:
                available = ", ".join(sorted(self.ctx.models)) or "none"
                self.problem(
                    _line_of(body, stype.model_param, line),
                    f"step {step_id!r}: model {model!r} is not in the model repository (available: {available})",
                )

    def check_refs(self, value: Any, earlier: set[str], line: int | None, what: str, *, expression: bool) -> None:
        try:
            exprs = [compile_expression(value)] if expression else template_expressions(value)
        except ExpressionError as exc:
            self.problem(line, f"{what}: {exc}")
            return
        for expr in exprs:
            for name, attr in sorted(references(expr), key=str):  # a set: sorted, so reports are stable
                if name == "steps" and attr is not None and attr not in earlier:
                    self.problem(line, f"{what} refers to step {attr!r}, which does not run before it")
                elif name == "event" and attr is None:
                    self.problem(line, f"{what}: `event` exists only in trigger filters and inputs")

    # -- triggers
    def triggers(self, raw: Any, line: int | None) -> list[TriggerSpec]:  # noqa: PLR0912 - one branch per key
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(line, "`triggers` must be a list")
            return []
        out: list[TriggerSpec] = []
        for item in raw:
            before = len(self.problems)
            item_line = _line_of(item) or line
            if not isinstance(item, dict):
                self.problem(item_line, "a trigger is a mapping with `event:` (or `subject:`) and an optional filter")
                continue
            for key in item:
                if key not in _TRIGGER_KEYS:
                    self.problem(
                        _line_of(item, key),
                        f"unknown key {key!r} in a trigger (allowed: {', '.join(sorted(_TRIGGER_KEYS))})",
                    )
            event, subject = item.get("event"), item.get("subject")
            if (event is None) == (subject is None):
                self.problem(item_line, "a trigger names exactly one of `event` (a type) or `subject` (a filter)")
                continue
            if event is not None:
                if not isinstance(event, str) or not is_event_type(event):
                    self.problem(
                        _line_of(item, "event"), f"{event!r} is not an event type (hearth.<domain>.<event>.vN)"
                    )
                    continue
                try:
                    subject = self.ctx.catalog.get_event_type(event).subject
                except Exception:
                    self.problem(_line_of(item, "event"), f"unknown event type {event!r}")
                    continue
            elif not self.subject_ok(subject, _line_of(item, "subject")):
                continue
            for key in ("filter", "document_id"):
                if item.get(key) is not None:
                    self.expression(item[key], _line_of(item, key), f"trigger {key}")
            if item.get("input") is not None:
                if not isinstance(item["input"], dict):
                    self.problem(_line_of(item, "input"), "trigger `input` must be a mapping")
                else:
                    try:
                        template_expressions(item["input"])
                    except ExpressionError as exc:
                        self.problem(_line_of(item, "input"), f"trigger input: {exc}")
            if len(self.problems) > before:
                continue
            out.append(
                TriggerSpec(
                    subject=str(subject),
                    event=event,
                    filter=item.get("filter"),
                    input=_plain(item.get("input")),
                    document_id=item.get("document_id"),
                )
            )
        return out

    def subject_ok(self, subject: Any, line: int | None) -> bool:
        if not isinstance(subject, str):
            self.problem(line, "`subject` must be a NATS subject")
            return False
        try:  # request/reply subjects (hearth.svc.>, hearth.infer.>) are never in a stream
            self.ctx.catalog.stream_for_subject(subject)
        except Exception:
            self.problem(line, f"no stream captures {subject!r}: triggers listen on event subjects (hearth.<domain>.…)")
            return False
        return True


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


def parse_text(text: str, file: str, ctx: LoadContext | None = None) -> list[Definition]:
    """Every workflow defined in one YAML text; ``DefinitionError`` listing every problem found."""
    ctx = ctx or LoadContext()
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise DefinitionError([Problem(file, line, f"YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([Problem(file, None, f"YAML: {exc}")]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("workflows"), dict) or not doc["workflows"]:
        raise DefinitionError([Problem(file, _line_of(doc), "the file must have a top-level `workflows:` mapping")])
    checker = _Checker(file, ctx)
    for key in doc:
        if key != "workflows":
            checker.problem(_line_of(doc, key), f"unknown top-level key {key!r} (only `workflows`)")
    workflows = doc["workflows"]
    definitions = [
        d
        for name, body in workflows.items()
        if (d := checker.workflow(name, body, _line_of(workflows, name))) is not None
    ]
    if checker.problems:
        raise DefinitionError(checker.problems)
    return definitions


def load_file(path: Path, ctx: LoadContext | None = None) -> list[Definition]:
    """The workflows of one file (see ``parse_text``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([Problem(str(path), None, f"cannot read: {exc}")]) from None
    return parse_text(text, _display(path), ctx)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


@dataclass
class Loaded:
    """Every definition found in a directory, and the files that could not be used."""

    definitions: dict[str, Definition] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Workflow name → the file defining it."""
    errors: dict[str, DefinitionError] = field(default_factory=dict)
    """File → why it was refused (its workflows are then not loaded from it)."""


def load_directory(directory: Path | Sequence[Path] = DEFINITIONS_DIR, ctx: LoadContext | None = None) -> Loaded:
    """Load ``*.yaml``/``*.yml`` of one or more directories; one bad file does not hide the good ones."""
    loaded = Loaded()
    directories = [directory] if isinstance(directory, Path) else list(directory)
    paths = [p for d in directories for p in sorted([*d.glob("*.yaml"), *d.glob("*.yml")])]
    for path in paths:
        name = _display(path)
        try:
            definitions = load_file(path, ctx)
        except DefinitionError as exc:
            loaded.errors[name] = exc
            continue
        for definition in definitions:
            if definition.name in loaded.definitions:
                loaded.errors[name] = DefinitionError(
                    [
                        *(loaded.errors[name].problems if name in loaded.errors else []),  # keep earlier duplicates
                        Problem(
                            name,
                            None,
                            f"workflow {definition.name!r} is already defined in {loaded.files[definition.name]}",
                        ),
                    ]
                )
                continue
            loaded.definitions[definition.name] = definition
            loaded.files[definition.name] = name
    return loaded


def load_definitions(settings: HearthSettings) -> Loaded:
    """Every definition of the configured directories, checked against the models Triton can serve."""
    return load_directory(
        settings.workflow_directories, LoadContext(models=repository_models(settings.triton_repositories))
    )
