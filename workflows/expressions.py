"""The expression language of workflow definitions: ``when`` conditions, trigger filters, templates.

A small, side-effect-free subset of Python expressions, parsed once at load time (a syntax error
is reported with the file and line) and evaluated deterministically inside the workflow sandbox:

* literals (strings, numbers, ``true``/``false``/``null`` and Python's spellings, lists, dicts);
* names of the context (``input``, ``steps``, ``event``, ``run``) and dotted or subscripted
  access into them: ``steps.review.output.decision``, ``input["document"]``. A missing key gives
  ``null`` rather than an error, so a condition on an optional field reads naturally;
* comparisons (``== != < <= > >= in not in``), ``and``/``or``/``not``, ``+ - * / %``, and
  ``a if cond else b``;
* a few pure functions: ``len lower upper startswith endswith matches(text, regex) default(x, y)
  int float str bool``.

Templates are strings containing ``${expression}``: a string that is exactly one ``${...}`` keeps
the expression's own type (a dict stays a dict); otherwise each placeholder is formatted into the
text. Nothing here does I/O, reads the clock or imports anything the Temporal sandbox refuses.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CONTEXT_NAMES",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "has_template",
    "references",
    "render",
    "template_expressions",
]

CONTEXT_NAMES: Final = frozenset({"input", "steps", "event", "run"})
_CONSTANTS: Final[dict[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_MAX_SOURCE: Final = 2000
_MAX_REPEAT: Final = 100_000


class ExpressionError(ValueError):
    """An expression that does not parse, uses something not allowed, or fails to evaluate."""


def _matches(text: Any, pattern: Any) -> bool:
    return isinstance(text, str) and re.search(str(pattern), text) is not None


def _contains(item: Any, container: Any) -> bool:
    try:
        return container is not None and item in container
    except TypeError:
        return False  # None in "text", 3 in "text": not there, so `not in` holds


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _str_method(name: str) -> Callable[..., Any]:
    def call(text: Any, *args: Any) -> Any:
        if not isinstance(text, str):
            return None if name in ("lower", "upper") else False
        return getattr(text, name)(*args)

    return call


_FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "len": lambda value: len(value) if value is not None else 0,
    "lower": _str_method("lower"),
    "upper": _str_method("upper"),
    "startswith": _str_method("startswith"),
    "endswith": _str_method("endswith"),
    "matches": _matches,
    "default": _default,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
}

_COMPARE: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _contains,
    ast.NotIn: lambda a, b: not _contains(a, b),
}
_BINARY: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}


def _check(node: ast.AST) -> None:
    """Refuse every construct outside the language (calls to anything but the functions above)."""
    allowed = (
        ast.Expression,
        ast.Constant,
        ast.Name,
        ast.Load,
        ast.Attribute,
        ast.Subscript,
        ast.Compare,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.BinOp,
        ast.IfExp,
        ast.List,
        ast.Tuple,
        ast.Dict,
        ast.Call,
        *_COMPARE,
        *_BINARY,
    )
    for child in ast.walk(node):
        if not isinstance(child, allowed):
            raise ExpressionError(f"{type(child).__name__} is not allowed in an expression")
        if isinstance(child, ast.Name) and child.id not in CONTEXT_NAMES | set(_CONSTANTS) | set(_FUNCTIONS):
            known = ", ".join(sorted(CONTEXT_NAMES))
            raise ExpressionError(f"unknown name {child.id!r} (the context has {known})")
        if isinstance(child, ast.Call):
            if not isinstance(child.func, ast.Name) or child.func.id not in _FUNCTIONS:
                raise ExpressionError(f"only these functions may be called: {', '.join(sorted(_FUNCTIONS))}")
            if child.keywords:
                raise ExpressionError("functions take positional arguments only")
        if isinstance(child, ast.Dict) and None in child.keys:
            raise ExpressionError("`**` unpacking is not allowed in an expression")
        if isinstance(child, ast.Attribute) and child.attr.startswith("_"):
            raise ExpressionError(f"attribute {child.attr!r} is not allowed")


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, (list, tuple)) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else None
    return None


class _Evaluator:
    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context

    def eval(self, node: ast.AST) -> Any:  # noqa: PLR0911, PLR0912 - one branch per construct
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            if node.id in _FUNCTIONS:
                raise ExpressionError(f"{node.id} is a function: call it")
            return self.context.get(node.id)
        if isinstance(node, ast.Attribute):
            return _lookup(self.eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return _lookup(self.eval(node.value), self.eval(node.slice))
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.eval(comparator)
                try:
                    ok = _COMPARE[type(op)](left, right)
                except TypeError:
                    ok = False  # e.g. None < 3: a condition on a missing value is false, not a crash
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                value: Any = True
                for item in node.values:
                    value = self.eval(item)
                    if not value:
                        return value
                return value
            value = False
            for item in node.values:
                value = self.eval(item)
                if value:
                    return value
            return value
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            return (not operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Mult) and (isinstance(left, (str, list)) or isinstance(right, (str, list))):
                count = right if isinstance(left, (str, list)) else left
                size = len(left if isinstance(left, (str, list)) else right)
                if isinstance(count, int) and size * max(count, 0) > _MAX_REPEAT:
                    raise ExpressionError(f"a repeated string or list is limited to {_MAX_REPEAT} items")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(item) for item in node.elts]
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return _FUNCTIONS[node.func.id](*(self.eval(arg) for arg in node.args))
        raise ExpressionError(f"cannot evaluate {type(node).__name__}")


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, checked expression; ``evaluate`` it against a context mapping."""

    source: str
    tree: ast.Expression

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression; ``ExpressionError`` when an operation fails at run time."""
        try:
            return _Evaluator(context).eval(self.tree)
        except ExpressionError:
            raise
        except Exception as exc:  # a type error deep in user data, a bad regex ...
            raise ExpressionError(f"{self.source!r} failed: {type(exc).__name__}: {exc}") from None


def compile_expression(source: str) -> Expression:
    """Parse and check ``source``; ``ExpressionError`` with the reason when it is not allowed."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(source) > _MAX_SOURCE:
        raise ExpressionError(f"an expression is limited to {_MAX_SOURCE} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error in {source!r}: {exc.msg}") from None
    _check(tree)
    return Expression(source=source, tree=tree)


def references(expression: Expression) -> set[tuple[str, str | None]]:
    """The context entries an expression reads: ``("steps", "ocr")``, ``("input", None)`` …

    Used at load time to check that ``steps.<id>`` names a step that runs before.
    """
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(expression.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in CONTEXT_NAMES:
            found.add((node.value.id, node.attr))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in CONTEXT_NAMES
            and isinstance(node.slice, ast.Constant)
        ):
            found.add((node.value.id, str(node.slice.value)))
        elif isinstance(node, ast.Name) and node.id in CONTEXT_NAMES:
            found.add((node.id, None))
    return found


def template_expressions(value: Any) -> list[Expression]:
    """Every ``${...}`` expression inside a parameter value (strings, lists, dicts, nested)."""
    found: list[Expression] = []
    if isinstance(value, str):
        found.extend(compile_expression(source) for _, _, source in _placeholders(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(template_expressions(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(template_expressions(item))
    return found


def has_template(value: Any) -> bool:
    """True when ``value`` (or anything inside it) holds a ``${...}`` placeholder."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_template(v) for v in value)
    return False


def _placeholders(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, source)`` of every ``${...}`` in ``text``; braces and quotes inside nest.

    ``${default(input.meta, {})}`` is one placeholder: the scan counts braces outside string
    literals, so an expression may hold dict literals and strings with braces.
    """
    found: list[tuple[int, int, str]] = []
    i = text.find("${")
    while i != -1:
        depth, j, quote = 1, i + 2, ""
        while j < len(text) and depth:
            char = text[j]
            if quote:
                if char == "\\":
                    j += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            j += 1
        if depth:
            raise ExpressionError(f"unclosed ${{ in {text!r}")
        found.append((i, j, text[i + 2 : j - 1]))
        i = text.find("${", j)
    return found


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Substitute every ``${...}`` in ``value`` (recursively) with its value in ``context``."""
    if isinstance(value, str):
        spans = _placeholders(value)
        if not spans:
            return value
        stripped = value.strip()
        if len(spans) == 1 and stripped.startswith("${") and len(stripped) == spans[0][1] - spans[0][0]:
            return compile_expression(spans[0][2]).evaluate(context)  # the whole string: keep the type
        out, last = [], 0
        for start, end, source in spans:
            out.append(value[last:start])
            out.append(_format(compile_expression(source).evaluate(context)))
            last = end
        out.append(value[last:])
        return "".join(out)
    if isinstance(value, Mapping):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value
