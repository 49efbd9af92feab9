"""Channel filter expressions: a small, safe boolean language over message fields.

    message_type == 'ORU^R01' and sending_facility in ('LAB1', 'LAB2')
    not patient_id.startswith('TEST')

Only comparisons, and/or/not, string literals, tuples/lists of literals and the methods
startswith/endswith/upper/lower are allowed; the names are the header and business-key
fields. Python's eval never runs on channel text: the expression is compiled to closures.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

FIELDS = ("message_type", "event", "sending_application", "sending_facility", "receiving_application",
          "receiving_facility", "control_id", "version_id", "processing_id", "patient_id",
          "visit_number", "placer_number", "filler_number", "accession_number")
_METHODS = {"startswith", "endswith", "upper", "lower", "strip"}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}

Evaluator = Callable[[Mapping[str, str]], Any]


def compile_expression(text: str) -> Evaluator:
    """Compile an expression; ValueError names what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression syntax error at column {exc.offset}: {exc.msg}") from None
    return _compile(tree.body)


def _compile(node: ast.AST) -> Evaluator:
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda fields: all(part(fields) for part in parts)
        return lambda fields: any(part(fields) for part in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile(node.operand)
        return lambda fields: not inner(fields)
    if isinstance(node, ast.Compare):
        left = _compile(node.left)
        pairs = [(_COMPARE[type(op)], _compile(right)) for op, right in zip(node.ops, node.comparators)
                 if type(op) in _COMPARE]
        if len(pairs) != len(node.ops):
            raise ValueError("only ==, !=, <, <=, >, >=, in and not in comparisons are allowed")

        def compare(fields: Mapping[str, str]) -> bool:
            current = left(fields)
            for op, right in pairs:
                value = right(fields)
                if not op(current, value):
                    return False
                current = value
            return True
        return compare
    if isinstance(node, ast.Name):
        if node.id not in FIELDS:
            raise ValueError(f"unknown field '{node.id}' (fields: {', '.join(FIELDS)})")
        name = node.id
        return lambda fields: fields.get(name, "")
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, bool)):
        value = node.value
        return lambda fields: value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_compile(item) for item in node.elts]
        return lambda fields: tuple(item(fields) for item in items)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in _METHODS and not node.keywords):
        target = _compile(node.func.value)
        arguments = [_compile(arg) for arg in node.args]
        method = node.func.attr
        return lambda fields: getattr(str(target(fields)), method)(*(arg(fields) for arg in arguments))
    raise ValueError(f"'{ast.unparse(node)}' is not allowed in a filter expression")
