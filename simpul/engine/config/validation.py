"""Validate a marked YAML document with a pydantic model and place each error at its line:col."""
from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from simpul.engine.config.yaml_marks import Finding, MarkedDocument, Path_, format_path

M = TypeVar("M", bound=BaseModel)


def validate_document(document: MarkedDocument, model: type[M],
                      context: dict[str, Any] | None = None) -> tuple[M | None, list[Finding]]:
    findings = list(document.findings)
    if findings:
        return None, findings
    if not isinstance(document.data, dict):
        return None, [Finding(document.file, 1, 1, "", "expected a mapping of keys at the top level")]
    try:
        return model.model_validate(document.data, context=context), []
    except ValidationError as exc:
        return None, [_finding(document, model, error) for error in exc.errors()]


def _finding(document: MarkedDocument, model: type[BaseModel], error: Any) -> Finding:
    path = _data_path(error["loc"], document.data)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, path[:-1])
        reason = "unknown key"
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
        if close:
            reason += f" (did you mean '{close[0]}'?)"
        elif allowed:
            reason += f" (allowed: {', '.join(sorted(allowed))})"
        return document.finding(path, reason)
    if kind == "missing":
        line, column = document.mark_of(path[:-1])
        return Finding(document.file, line, column, _fmt(path), "required key is missing")
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return document.finding(path, _soften(message))


def _fmt(path: Path_) -> str:
    return format_path(path)


def _soften(message: str) -> str:
    """Pydantic's wording, shortened to what an analyst needs."""
    return (message.replace("Input should be greater than or equal to", "must be >=")
            .replace("Input should be less than or equal to", "must be <=")
            .replace("Input should be greater than", "must be >")
            .replace("Input should be", "must be"))


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Drop the entries pydantic adds for union members (e.g. 'str', 'MappingSpec') that are not keys."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _looks_like_type_tag(part):
            path.append(part)       # a missing or unknown key: keep it in the path
            node = None
        # otherwise a union tag such as 'function-after[...]' or 'MappingSpec': skip
    return tuple(path)


def _looks_like_type_tag(part: str) -> bool:
    return part[:1].isupper() or "[" in part or part in {"str", "int", "float", "bool", "list", "dict"}


def _allowed_keys(model: type[BaseModel], path: Path_) -> list[str]:
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        sub = _model_in(current)
        if sub is None or part not in sub.model_fields:
            return []
        current = sub.model_fields[part].annotation
    sub = _model_in(current)
    if sub is None:
        return []
    return [info.alias or name for name, info in sub.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The first BaseModel inside an annotation such as `list[X] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
