"""MkDocs hooks: the reference pages of the docs site, generated from the code at build time.

Everything the site says about keys, commands and routes comes from here, so it cannot drift from
the code: the channel and settings reference from the pydantic models (the same generator as
`simpul docs`), one page per connector from the connector table and its config model, the CLI
reference from the Typer app, the HTTP reference from the FastAPI app's OpenAPI schema, and the
data-flow diagram as an SVG drawn from the stage list below.

Hand-written pages pull generated text in with a marker on a line of its own, for example
`<!-- simpul:cli -->`; per-connector pages have no source file at all. The code this module reads
is being moved (HTTP API to simpul/api/, CLI to simpul/cli/, a connector registry): only the
`_sources` section below names those places, so repointing the generators is a change there.
"""
from __future__ import annotations

import html
import importlib
import json
import re
from dataclasses import dataclass
from typing import Any

import typer.main
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from pydantic import BaseModel

# --- _sources: the only place that names where the generated facts live in the code -------------
from simpul.connectors import registry
from simpul.cli import app as cli_app
from simpul.engine.config.reference import channel_reference, reference
from simpul.engine.config.settings import ENV_OVERRIDES, Settings
from simpul.api import create_app


def _destination_connectors() -> dict[str, type[BaseModel]]:
    return {spec.name: spec.destination for spec in registry.destinations() if spec.destination is not None}


def _source_connectors() -> dict[str, tuple[type[BaseModel], str]]:
    return {spec.name: (spec.source, spec.source_description) for spec in registry.sources()
            if spec.source is not None}


def _openapi() -> dict[str, Any]:
    # The schema is read from the route table alone; no engine is started or needed for it.
    return create_app(None).openapi()


# --- markers in hand-written pages ---------------------------------------------------------------
MARKER = re.compile(r"^<!-- simpul:([a-z-]+) -->$", re.MULTILINE)
REFERENCE_DIR = "channels/reference"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        generator = GENERATORS.get(match.group(1))
        if generator is None:
            raise ValueError(f"{page.file.src_uri}: unknown generator marker '{match.group(1)}'")
        return generator()
    return MARKER.sub(replace, markdown)


@event_priority(-100)   # after the i18n plugin sorted the docs folder into languages: ours are English only
def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path, text in connector_pages().items():
        files.append(File.generated(config, f"{REFERENCE_DIR}/{path}", content=text))
    files.append(File.generated(config, "api/openapi.json", content=json.dumps(_openapi(), indent=2)))
    return files


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Put one navigation entry per connector under the reference index, in table order."""
    entries = [{"Overview": f"{REFERENCE_DIR}/index.md"}, {"Whole channel file": f"{REFERENCE_DIR}/channel.md"}]
    entries += [{f"Source: {name}": f"{REFERENCE_DIR}/sources/{name}.md"} for name in _source_connectors()]
    entries += [{f"Destination: {name}": f"{REFERENCE_DIR}/destinations/{name}.md"}
                for name in _destination_connectors()]

    def walk(items: list[Any]) -> bool:
        for index, item in enumerate(items):
            if isinstance(item, dict):
                (title, value), = item.items()
                if value == f"{REFERENCE_DIR}/index.md":
                    items[index] = {title: entries}
                    return True
                if isinstance(value, list) and walk(value):
                    return True
        return False

    if config.nav is not None and not walk(config.nav):
        raise ValueError(f"mkdocs.yml nav has no entry for {REFERENCE_DIR}/index.md")
    return config


# --- channel, connector and settings reference ---------------------------------------------------
def _table(model: type[BaseModel], path: str) -> str:
    return "\n".join(reference(model, path)).replace("#### ", "### ")


def _docstring_sections(doc: str) -> list[tuple[str, str]]:
    """Split a connector docstring into (heading, text): the summary line, then Features/Connection/..."""
    lines = (doc or "").strip().splitlines()
    if not lines:
        return []
    summary = lines[0].split(":", 1)[-1].strip()
    sections: list[tuple[str, str]] = [("", summary[:1].upper() + summary[1:])]
    for line in lines[1:]:
        if line and not line.startswith(" "):
            sections.append((line.strip(), ""))
        elif line.strip() and len(sections) > 1:
            heading, text = sections[-1]
            sections[-1] = (heading, f"{text} {line.strip()}".strip())
    return sections


def _example_value(field: Any) -> Any:
    if field.examples:
        return field.examples[0]
    if field.is_required():
        return f"<{field.annotation.__name__ if isinstance(field.annotation, type) else 'value'}>"
    return None


def _example(model: type[BaseModel]) -> dict[str, Any]:
    example = {}
    for name, field in model.model_fields.items():
        value = _example_value(field)
        if value is not None and not field.exclude:
            example[field.alias or name] = value
    return example


def _yaml(value: Any, indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}{key}: {json.dumps(item) if not isinstance(item, (int, float)) else item}"
                     for key, item in value.items())


def _connector_page(kind: str, name: str, model: type[BaseModel], doc: str, placement: str) -> str:
    out = [f"# {kind}: `{name}`", ""]
    for heading, text in _docstring_sections(doc):
        out += ([f"**{heading}.** {text}", ""] if heading else [text, ""])
    out += ["## In a channel file", "", f"Written as `{name}:` {placement}. The keys with an example value "
            "(the docs examples test loads this into a running engine):", "", "<!-- example: channel-part -->",
            "```yaml"]
    body = _example(model)
    if kind == "Source":
        out += ["source:", f"  {name}:", _yaml(body, 4)]
    else:
        out += ["destinations:", "  - label: example", f"    {name}:", _yaml(body, 6)]
    out += ["```", "", "## Keys", "", _table(model, f"{'source' if kind == 'Source' else 'destinations[]'}.{name}"),
            "", "Generated from the config model at build time.", ""]
    return "\n".join(out)


def connector_pages() -> dict[str, str]:
    pages: dict[str, str] = {}
    index = ["# Connector reference", "", "One page per connector, generated from its config model and module "
             "docstring when the site is built. The whole channel file, every key on one page: "
             "[channel reference](channel.md).", "", "| connector | kind | what it does |", "|---|---|---|"]
    for name, (model, description) in _source_connectors().items():
        pages[f"sources/{name}.md"] = _connector_page("Source", name, model, model.__doc__ or description,
                                                      "under `source:` (one source per channel)")
        index.append(f"| [`{name}`](sources/{name}.md) | source | {description} |")
    for name, model in _destination_connectors().items():
        module = importlib.import_module(registry.module_path(name))
        pages[f"destinations/{name}.md"] = _connector_page(
            "Destination", name, model, module.__doc__ or "", "inside one entry of `destinations:`, beside "
            "its `label`, `order_by`, `retry` and the other delivery keys")
        summary = _docstring_sections(module.__doc__ or "")
        index.append(f"| [`{name}`](destinations/{name}.md) | destination | {summary[0][1] if summary else ''} |")
    pages["index.md"] = "\n".join(index) + "\n"
    pages["channel.md"] = ("# Channel file reference\n\nEvery key of a channel file, generated from the models "
                           "by the same code as `simpul docs`.\n\n" + _marked(channel_reference().replace("#### ", "## ")))
    return pages


def _marked(markdown: str) -> str:
    """Connector descriptions in the generated reference are prose blocks, not examples to run."""
    return re.sub(r"^```text$", "<!-- example: text -->\n```text", markdown, flags=re.MULTILINE)


def settings_reference() -> str:
    env_of = {".".join(keys): variable for variable, keys in ENV_OVERRIDES.items()}
    rows = ["| key | default | environment | meaning |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = f"{prefix}{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{key}.")
                continue
            if field.is_required() or field.default is None or field.default_factory is not None:
                default = ""
            elif field.default == "":
                default = "(empty)"
            elif "parse_duration" in str(field.metadata):
                default = f"`{field.default:g}s`"
            else:
                default = f"`{field.default}`"
            environment = f"`{env_of[key]}`" if key in env_of else ""
            meaning = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{key}` | {default} | {environment} | {meaning} |")

    walk(Settings, "")
    return "\n".join(rows) + "\n"


# --- CLI reference from the Typer app ------------------------------------------------------------
# Typer carries its own copy of click, so its objects are read by duck typing, not isinstance.
def _option_row(param: Any, context: Any) -> str:
    names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    type_name = param.display_type(context).strip("<>")
    kind = f"argument, {type_name}" if param.param_type_name == "argument" else (
        "flag" if getattr(param, "is_flag", False) else type_name)
    default = param.default if param.default not in (None, False, ()) and not callable(param.default) else ""
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
    required = " (required)" if param.required else ""
    return f"| {names} | {kind}{required} | {f'`{default}`' if default != '' else ''} | {help_text} |"


def cli_reference() -> str:
    root = typer.main.get_command(cli_app)
    out: list[str] = []

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):
            if path:
                out.extend([f"## `simpul {' '.join(path)}`", "", (command.help or "").strip(), ""])
            context = command.context_class(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])
            return
        context = command.context_class(command, info_name=" ".join(["simpul", *path]))
        out.extend([f"### `simpul {' '.join(path)}`" if len(path) > 1 else f"## `simpul {path[0]}`", "",
                    (command.help or "").strip(), "", "```text", command.get_usage(context).replace("Usage: ", ""),
                    "```", ""])
        params = [p for p in command.params if p.name != "help"]
        if params:
            out.extend(["| option | type | default | meaning |", "|---|---|---|---|", *(_option_row(p, context) for p in params), ""])

    walk(root, [])
    return "\n".join(out)


# --- HTTP API from the OpenAPI schema ------------------------------------------------------------
def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema_name(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def openapi_reference() -> str:
    spec = _openapi()
    out: list[str] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            out.extend([f"### `{method.upper()} {path}`", "", operation.get("summary", ""), ""])
            if operation.get("description") and operation["description"] != operation.get("summary"):
                out.extend([operation["description"].strip(), ""])
            parameters = operation.get("parameters", [])
            if parameters:
                out.extend(["| parameter | in | type | required |", "|---|---|---|---|"])
                out.extend(f"| `{p['name']}` | {p['in']} | {_schema_name(p.get('schema', {}))} | "
                           f"{'yes' if p.get('required') else ''} |" for p in parameters)
                out.append("")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                out.extend([f"Request body: `{_schema_name(body['schema'])}` (JSON, see Schemas below).", ""])
            codes = ", ".join(f"{code} {response.get('description', '')}"
                              for code, response in operation.get("responses", {}).items())
            out.extend([f"Responses: {codes}.", ""])
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        out.extend(["## Schemas", ""])
        for name, schema in schemas.items():
            if name in ("HTTPValidationError", "ValidationError"):
                continue
            out.extend([f"### `{name}`", "", "| field | type | required | default |", "|---|---|---|---|"])
            required = set(schema.get("required", []))
            for field, spec_field in schema.get("properties", {}).items():
                default = spec_field.get("default")
                shown = f"`{json.dumps(default)}`" if default is not None else ""
                out.append(f"| `{field}` | {_schema_name(spec_field)} | {'yes' if field in required else ''} | {shown} |")
            out.append("")
    return "\n".join(out)


# --- the data-flow diagram, drawn as SVG (no JavaScript, no network) -----------------------------
@dataclass(frozen=True)
class Stage:
    name: str
    where: str
    does: str


DATA_FLOW = (
    Stage("sender", "LIS, RIS, registration", "HL7v2 over MLLP or HTTP POST"),
    Stage("listener", "simpul/mllp/, engine/http_source.py", "frames, size cap, timeouts, TLS"),
    Stage("ingest", "simpul/engine/ingest.py", "read MSH, decode (MSH-18), dedup check, business keys"),
    Stage("store writer", "simpul/store/", "group commit: one transaction and one fsync, then the ACK"),
    Stage("processor", "simpul/engine/processor.py", "route to channels, filter, map in a worker process"),
    Stage("delivery worker", "simpul/engine/delivery.py", "lease, FIFO per key, retry with backoff"),
    Stage("connector", "simpul/connectors/", "FHIR server, LIS over MLLP, files, RabbitMQ"),
    Stage("dead letter", "simpul/dead_letters/", "original bytes, stage, error, every attempt; replay"),
)


def data_flow_svg() -> str:
    width, box_h, gap, left = 720, 54, 26, 20
    height = len(DATA_FLOW) * (box_h + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Simpul data flow" class="simpul-data-flow" style="max-width:100%;height:auto">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>']
    for index, stage in enumerate(DATA_FLOW):
        y = index * (box_h + gap)
        last = index == len(DATA_FLOW) - 1
        fill = "#fde2e1" if last else ("#e1f0fd" if index in (3,) else "#eef1f4")
        parts.append(f'<rect x="{left}" y="{y}" width="{width - 2 * left}" height="{box_h}" rx="8" '
                     f'fill="{fill}" stroke="#4a5568"/>')
        parts.append(f'<text x="{left + 14}" y="{y + 22}" font-family="sans-serif" font-size="15" '
                     f'font-weight="bold" fill="#1a202c">{html.escape(stage.name)}</text>')
        parts.append(f'<text x="{left + 190}" y="{y + 22}" font-family="monospace" font-size="12" '
                     f'fill="#4a5568">{html.escape(stage.where)}</text>')
        parts.append(f'<text x="{left + 14}" y="{y + 42}" font-family="sans-serif" font-size="13" '
                     f'fill="#1a202c">{html.escape(stage.does)}</text>')
        if not last:
            x = width // 2
            parts.append(f'<line x1="{x}" y1="{y + box_h}" x2="{x}" y2="{y + box_h + gap - 2}" '
                         f'stroke="#4a5568" stroke-width="2" marker-end="url(#arrow)" color="#4a5568"/>')
    parts.append("</svg>")
    return "\n".join(parts)


GENERATORS = {
    "channel-reference": lambda: channel_reference().replace("#### ", "### "),
    "settings": settings_reference,
    "cli": cli_reference,
    "openapi": openapi_reference,
    "data-flow": data_flow_svg,
}
