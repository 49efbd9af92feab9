"""Generate the channel YAML reference from the pydantic models (`simpul docs`).

The field descriptions in the models are the single source: the docs site's channel and connector
reference pages are built from this output (docs/hooks.py), so they cannot drift apart.
"""
from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simpul.connectors import registry
from simpul.engine.config.channel import Channel

# Module paths stripped from type names; each connector module's own comes from the registry.
_MODULES = ("simpul.engine.config.channel.", "simpul.config_types.", "simpul.mllp.tls.",
            "simpul.mllp.listener.", "simpul.mappings.options.", "pathlib.")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if typing.get_origin(annotation) is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("NoneType", "null")
    for prefix in (*_MODULES, *(f"{registry.module_path(name)}." for name in registry.names())):
        text = text.replace(prefix, "")
    if text.startswith("<class '"):
        text = text[8:-2].rsplit(".", 1)[-1]
    return text.replace("Annotated[float, BeforeValidator(func=<function parse_duration at", "Duration").split(
        " at 0x")[0]


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return ""
    value = field.default
    if value is None or value is PydanticUndefined:
        return ""
    return f"`{value}`"


def reference(model: type[BaseModel], path: str = "", seen: set[type] | None = None) -> list[str]:
    seen = seen or set()
    lines = [f"#### `{path or 'channel'}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        type_name = "duration" if "parse_duration" in str(field.metadata) + str(field.annotation) else \
            _type_name(field.annotation)
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        shown_type = type_name.replace("|", "\\|")
        lines.append(f"| `{key}` | {shown_type} | {_default(field)} | {description} |")
        for sub in _models_in(field.annotation):
            if sub not in seen:
                seen.add(sub)
                nested.append((f"{path}.{key}" if path else key, sub))
    lines.append("")
    for sub_path, sub in nested:
        lines.extend(reference(sub, sub_path, seen))
    return lines


def channel_json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """JSON Schema of a channel file (editors, the OpenAPI document); connector keys from the registry."""
    return Channel.model_json_schema(ref_template=ref_template)


def connectors_reference() -> list[str]:
    """One entry per registered connector: its roles and its module docstring."""
    lines = ["#### Connectors", ""]
    for spec in registry.specs():
        doc = inspect.cleandoc(importlib.import_module(registry.module_path(spec.name)).__doc__ or "")
        summary, _, details = doc.partition("\n")
        lines += [f"##### `{spec.name}` ({', '.join(spec.roles)})", "", summary.strip()]
        if details.strip():
            lines += ["", "```text", details.strip("\n"), "```"]
        lines.append("")
    return lines


def channel_reference() -> str:
    return "\n".join(reference(Channel) + connectors_reference()).rstrip() + "\n"
