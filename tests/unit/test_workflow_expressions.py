"""The workflow expression language and ``${...}`` templates (``workflows/expressions.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.expressions import (
    CONTEXT_NAMES,
    ExpressionError,
    compile_expression,
    has_template,
    references,
    render,
    template_expressions,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

CONTEXT: dict[str, Any] = {
    "input": {
        "count": 3,
        "name": "Hello",
        "items": [10, 20, 30],
        "doc": {"kind": "invoice", "meta": {"review": "required"}},
        "nothing": None,
        "yes": True,
        "no": False,
        "ratio": 1.5,
    },
    "steps": {"ocr": {"output": {"text": "abc", "pages": 2}}},
    "run": {"id": "r-1"},
}


def ev(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(CONTEXT if context is None else context)


# ---- literals and access -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("True", True),
        ("False", False),
        ("None", None),
        ("42", 42),
        ("-1.5", -1.5),
        ("'text'", "text"),
        ('"text"', "text"),
        ("[1, 'a', null, true]", [1, "a", None, True]),
        ("(1, 2)", [1, 2]),  # tuples come out as lists (JSON data)
        ("{'a': 1, 'b': [false]}", {"a": 1, "b": [False]}),
        ("  1  ", 1),  # surrounding blanks are ignored
    ],
)
def test_literals(source: str, expected: Any) -> None:
    value = ev(source)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.count", 3),
        ("input.doc.meta.review", "required"),
        ("input['doc']['kind']", "invoice"),
        ("input.doc['meta'].review", "required"),
        ("steps.ocr.output.text", "abc"),
        ("steps['ocr'].output.pages", 2),
        ("input.items[0]", 10),
        ("input.items[-1]", 30),
        ("run.id", "r-1"),
    ],
)
def test_dotted_and_subscript_access(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "input.missing",
        "input.missing.deeper.still",
        "input['missing']",
        "input.items[3]",
        "input.items[-4]",
        "input.items['0']",  # a list is indexed by integers only
        "input.name[0]",  # strings are not containers here
        "input.count.anything",
        "steps.later.output.decision",
        "event",  # a context name absent from this context
        "event.data",
    ],
)
def test_missing_keys_give_none(source: str) -> None:
    assert ev(source) is None


def test_empty_context_reads_none() -> None:
    assert ev("input.a.b", {}) is None
    assert ev("steps.x.output == null", {}) is True


# ---- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.count == 3", True),
        ("input.count != 3", False),
        ("input.count < 4", True),
        ("input.count <= 3", True),
        ("input.count > 3", False),
        ("input.count >= 3", True),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("3 > 2 > 2", False),
        ("1 == 1 == 1", True),
        ("input.doc.kind == 'invoice'", True),
        ("input.missing == null", True),
        ("input.missing != null", False),
    ],
)
def test_comparisons(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("20 in input.items", True),
        ("25 in input.items", False),
        ("25 not in input.items", True),
        ("20 not in input.items", False),
        ("'ell' in input.name", True),
        ("'kind' in input.doc", True),
        # A missing container contains nothing:
        ("'a' in input.missing", False),
        ("'a' not in input.missing", True),
        # A missing item is in a list only when the list holds null:
        ("input.missing in [1, 2]", False),
        ("input.missing not in [1, 2]", True),
        ("null in [null]", True),
        # ... and is never in a text: `not in` is always the opposite of `in`.
        ("input.missing in 'abc'", False),
        ("input.missing not in 'abc'", True),
        ("3 in 'abc'", False),
        ("3 not in 'abc'", True),
    ],
)
def test_membership_with_none(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    "source", ["input.missing < 3", "input.missing >= 3", "'a' < 1", "input.doc > 1", "1 < input.missing < 3"]
)
def test_ordering_a_missing_or_mismatched_value_is_false(source: str) -> None:
    assert ev(source) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 and 2", 2),
        ("1 and 0 and 2", 0),
        ("input.missing and input.missing.x", None),
        ("0 or '' or 'x'", "x"),
        ("0 or ''", ""),
        ("input.nothing or 'fallback'", "fallback"),
        ("input.name or 'fallback'", "Hello"),
        ("not input.nothing", True),
        ("not input.count", False),
        ("input.yes and not input.no", True),
    ],
)
def test_and_or_return_operand_values(source: str, expected: Any) -> None:
    value = ev(source)
    assert value == expected
    assert type(value) is type(expected)


def test_and_or_short_circuit() -> None:
    # The right side would fail (division by zero) if it were evaluated.
    assert ev("false and 1 / 0") is False
    assert ev("true or 1 / 0") is True
    assert ev("0 if false else 1 / 1") == 1.0
    assert ev("'a' if true else 1 / 0") == "a"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'yes' if input.yes else 'no'", "yes"),
        ("'yes' if input.no else 'no'", "no"),
        ("'yes' if input.missing else 'no'", "no"),
        ("input.count if input.count > 2 else 0", 3),
    ],
)
def test_if_else(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("input.count - 5", -2),
        ("7 / 2", 3.5),
        ("7 % 3", 1),
        ("-input.count", -3),
        ("input.ratio * 2", 3.0),
        ("'a' + 'b'", "ab"),
        ("input.items + [40]", [10, 20, 30, 40]),
        ("'ab' * 2", "abab"),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    assert ev(source) == expected


# ---- functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len(input.items)", 3),
        ("len(input.name)", 5),
        ("len(input.doc)", 2),
        ("len(input.missing)", 0),
        ("lower(input.name)", "hello"),
        ("upper(input.name)", "HELLO"),
        ("lower(input.missing)", None),
        ("upper(3)", None),
        ("startswith(input.name, 'He')", True),
        ("startswith(input.name, 'lo')", False),
        ("endswith(input.name, 'lo')", True),
        ("endswith(input.missing, 'lo')", False),
        ("startswith(3, '3')", False),
        ("matches(input.name, '^H.l+o$')", True),
        ("matches(input.name, '^x')", False),
        ("matches(input.missing, '.*')", False),
        ("matches(input.doc.kind, 'voic')", True),  # a search, not a full match
        ("default(input.missing, 'x')", "x"),
        ("default(input.count, 'x')", 3),
        ("default(input.no, 'x')", False),  # only null is replaced
        ("default(0, 2)", 0),
        ("int('42')", 42),
        ("int(input.ratio)", 1),
        ("float('1.25')", 1.25),
        ("str(input.count)", "3"),
        ("bool(0)", False),
        ("bool(input.name)", True),
    ],
)
def test_whitelisted_functions(source: str, expected: Any) -> None:
    value = ev(source)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("matches('a', '(')", "error: missing ), unterminated subpattern"),
        ("1 / 0", "ZeroDivisionError: division by zero"),
        ("input.count % 0", "ZeroDivisionError"),
        ("int('x')", "ValueError: invalid literal for int()"),
        ("float(input.doc)", "TypeError"),
        ("len(3)", "TypeError: object of type 'int' has no len()"),
        ("input.name - 1", "TypeError"),
        ("-input.name", "TypeError"),
        ("startswith('abc', 1)", "TypeError"),
        ("input[input.items]", "TypeError: unhashable type: 'list'"),
    ],
)
def test_evaluation_errors_are_expression_errors(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        ev(source)
    message = str(info.value)
    assert message.startswith(f"{source!r} failed: ")
    assert fragment in message


def test_a_function_name_alone_fails_when_evaluated() -> None:
    expression = compile_expression("len")  # allowed by the checker ...
    with pytest.raises(ExpressionError, match="len is a function: call it"):
        expression.evaluate(CONTEXT)  # ... refused at run time


# ---- refused constructs ------------------------------------------------------------------------

ONLY_FUNCTIONS = "only these functions may be called: bool, default, endswith, float, int, len, lower, matches, "


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("lambda: 1", "Lambda is not allowed in an expression"),
        ("(lambda x: x)(1)", ONLY_FUNCTIONS),
        ("[x for x in input.items]", "ListComp is not allowed in an expression"),
        ("{x for x in input.items}", "SetComp is not allowed in an expression"),
        ("{x: 1 for x in input.items}", "DictComp is not allowed in an expression"),
        ("sum(x for x in input.items)", ONLY_FUNCTIONS),
        ("input.__class__", "attribute '__class__' is not allowed"),
        ("input._private", "attribute '_private' is not allowed"),
        ("steps.ocr.__dict__", "attribute '__dict__' is not allowed"),
        ("open('/etc/passwd')", ONLY_FUNCTIONS),
        ("__import__('os')", ONLY_FUNCTIONS),
        ("eval('1')", ONLY_FUNCTIONS),
        ("getattr(input, 'x')", ONLY_FUNCTIONS),
        ("input.name.upper()", ONLY_FUNCTIONS),
        ("input(1)", ONLY_FUNCTIONS),
        ("len(input.items, x=1)", "functions take positional arguments only"),
        ("default(x=1, y=2)", "functions take positional arguments only"),
        ("len(*input.items)", "Starred is not allowed in an expression"),
        ("{**input.doc}", "`**` unpacking is not allowed in an expression"),
        ("foo", "unknown name 'foo' (the context has event, input, run, steps)"),
        ("os.path", "unknown name 'os'"),
        ("input[1:2]", "Slice is not allowed in an expression"),
        ("(x := 1)", "NamedExpr is not allowed in an expression"),
        ("f'{input}'", "JoinedStr is not allowed in an expression"),
        ("2 ** 8", "Pow is not allowed in an expression"),
        ("7 // 2", "FloorDiv is not allowed in an expression"),
        ("~1", "Invert is not allowed in an expression"),
        ("input is None", "Is is not allowed in an expression"),
        ("1 if true else __builtins__", "unknown name '__builtins__'"),
    ],
)
def test_refused_constructs(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("1 +", "syntax error in '1 +': invalid syntax"),
        ("input.", "syntax error in 'input.'"),
        ("1 if 2", "syntax error in '1 if 2': expected 'else' after 'if' expression"),
        ("x = 1", "syntax error in 'x = 1'"),
        ("import os", "syntax error in 'import os'"),
        ("'unterminated", 'syntax error in "\'unterminated"'),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert message in str(info.value)


@pytest.mark.parametrize("source", ["", "   ", None, 3, ["input"]])
def test_an_expression_is_a_non_empty_string(source: Any) -> None:
    with pytest.raises(ExpressionError, match="an expression must be a non-empty string"):
        compile_expression(source)


def test_an_expression_has_a_size_limit() -> None:
    compile_expression("1" + " + 1" * 499)  # 1,997 characters
    with pytest.raises(ExpressionError, match="limited to 2000 characters"):
        compile_expression("1" + " + 1" * 500)


def test_the_context_names() -> None:
    assert frozenset({"input", "steps", "event", "run"}) == CONTEXT_NAMES


def test_an_expression_keeps_its_source() -> None:
    assert compile_expression("input.count > 1").source == "input.count > 1"


# ---- references --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input", {("input", None)}),
        ("input.x", {("input", "x"), ("input", None)}),
        ("input.x.y.z", {("input", "x"), ("input", None)}),
        ("steps.ocr.output.text == 'a'", {("steps", "ocr"), ("steps", None)}),
        ("steps['review'].output", {("steps", "review"), ("steps", None)}),
        ("steps[input.k]", {("steps", None), ("input", "k"), ("input", None)}),
        (
            "steps.a.ok and steps.b.ok or event.data",
            {("steps", "a"), ("steps", "b"), ("steps", None), ("event", "data"), ("event", None)},
        ),
        ("len(input.x.steps)", {("input", "x"), ("input", None)}),  # `steps` deeper in is a key, not a step
        ("1 + 2", set()),
        ("true", set()),
    ],
)
def test_references(source: str, expected: set[tuple[str, str | None]]) -> None:
    assert references(compile_expression(source)) == expected


# ---- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${input.doc}", {"kind": "invoice", "meta": {"review": "required"}}),
        ("${input.items}", [10, 20, 30]),
        ("${input.count}", 3),
        ("${input.ratio}", 1.5),
        ("${input.yes}", True),
        ("${input.nothing}", None),
        ("${input.missing}", None),
        ("${ input.count }", 3),
        (" ${input.count} ", 3),  # blanks around one placeholder: still the native value
        ("${input.count + 1}", 4),
    ],
)
def test_a_whole_string_template_keeps_the_native_type(template: str, expected: Any) -> None:
    value = render(template, CONTEXT)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi ${input.name}!", "Hi Hello!"),
        ("${input.count}${input.count}", "33"),
        ("${input.count} items", "3 items"),
        ("n=${input.nothing}.", "n=."),
        ("${input.missing}", None),
        ("x${input.missing}y", "xy"),
        ("v=${input.yes}", "v=true"),
        ("${input.yes}/${input.no}", "true/false"),
        ("r=${input.ratio}", "r=1.5"),
        ("{${input.count}}", "{3}"),
        ("plain text", "plain text"),
        ("$ {input.count}", "$ {input.count}"),
        ("$input.count", "$input.count"),
    ],
)
def test_templates_within_text(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


def test_render_nested_dicts_and_lists() -> None:
    value = {
        "doc": "${input.doc}",
        "list": ["${input.count}", {"title": "Doc ${input.doc.kind}", "ok": "${input.yes}"}, 7],
        "plain": "text",
        "number": 1,
        "none": None,
        "flag": False,
    }
    assert render(value, CONTEXT) == {
        "doc": {"kind": "invoice", "meta": {"review": "required"}},
        "list": [3, {"title": "Doc invoice", "ok": True}, 7],
        "plain": "text",
        "number": 1,
        "none": None,
        "flag": False,
    }
    # The input is not changed.
    assert value["doc"] == "${input.doc}"


@pytest.mark.parametrize("value", [5, 1.5, None, True, b"x"])
def test_render_leaves_non_templates_alone(value: Any) -> None:
    assert render(value, CONTEXT) is value


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${1 / 0}", "ZeroDivisionError"),
        ("a ${1 / 0} b", "ZeroDivisionError"),
        ("${open('x')}", "only these functions may be called"),
        ("x ${1 +} y", "syntax error in '1 +'"),
        ("${}", "an expression must be a non-empty string"),
        ({"deep": ["${matches('a', '(')}"]}, "unterminated subpattern"),
        ("${ unterminated", "unclosed ${"),
        ("x ${input.count", "unclosed ${"),
    ],
)
def test_render_errors_are_expression_errors(template: Any, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(template, CONTEXT)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${input}", True),
        ("a ${b} c", True),
        ("${}", True),
        ("plain", False),
        ("$input", False),
        ("${unterminated", True),
        ({"a": {"b": ["x", "${y}"]}}, True),
        ({"a": {"b": ["x", "y"]}}, False),
        (["a", 1, None], False),
        (("${a}",), True),
        (3, False),
        (None, False),
    ],
)
def test_has_template(value: Any, expected: bool) -> None:
    assert has_template(value) is expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${default(input.missing, {})}", {}),
        ("${ {'a': 1}['a'] }", 1),
        ("x ${ {'a': 1}['a'] } y", "x 1 y"),
        ("${'}'}", "}"),
        ('${"a{b"}', "a{b"),
        ("doc ${input.doc}", 'doc {"kind": "invoice", "meta": {"review": "required"}}'),
    ],
)
def test_placeholders_may_hold_braces_and_text_gets_json(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


def test_template_expressions_finds_every_placeholder_in_order() -> None:
    found = template_expressions({"a": ["${input.a} and ${steps.x.output}"], "b": 3, "c": {"d": "${run.id}"}})
    assert [e.source for e in found] == ["input.a", "steps.x.output", "run.id"]
    assert template_expressions("no placeholders") == []
    with pytest.raises(ExpressionError, match="Lambda is not allowed"):
        template_expressions(["ok", "${lambda: 1}"])


@pytest.mark.parametrize("source", ["'x' * 100001", "100001 * 'x'", "[0] * 200000", "'ab' * input.count * 40000"])
def test_repetition_is_bounded(source: str) -> None:
    with pytest.raises(ExpressionError, match="limited to 100000"):
        compile_expression(source).evaluate(CONTEXT)
