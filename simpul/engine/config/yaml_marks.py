"""YAML with line marks, duplicate-key rejection and ${VAR} substitution.

`load_marked(path)` returns plain Python data plus a map from each key path
(e.g. ("destinations", 0, "retry")) to its 1-based (line, column), so a validation error
deep in a channel can be reported as `channels/lab.yaml:14:7 destinations[0].retry...`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

Path_ = tuple[str | int, ...]

# ${NAME} or ${NAME:-default}; `$${` escapes a literal "${"
_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Finding:
    """One problem in a file, printed as `file:line:col key: reason`."""

    file: str
    line: int
    column: int
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.key}: {self.reason}" if self.key else f"{where} {self.reason}"


@dataclass
class MarkedDocument:
    file: str
    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def mark_of(self, path: Path_) -> tuple[int, int]:
        """The mark of the longest prefix of `path` that exists in the document."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return mark
        return (1, 1)

    def finding(self, path: Path_, reason: str) -> Finding:
        line, column = self.mark_of(path)
        return Finding(self.file, line, column, format_path(path), reason)


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_marked(path: Path, *, display_name: str | None = None,
                environ: Mapping[str, str] | None = None) -> MarkedDocument:
    """Parse one YAML file. Syntax errors and missing variables become findings, never exceptions."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return MarkedDocument(name, None, findings=[Finding(name, 1, 1, "", f"cannot read file: {exc}")])
    return load_marked_text(text, name, environ=environ)


def load_marked_text(text: str, name: str, *, environ: Mapping[str, str] | None = None) -> MarkedDocument:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except DuplicateKeyError as exc:
        return MarkedDocument(name, None, findings=[_yaml_finding(name, exc, "duplicate key")])
    except MarkedYAMLError as exc:
        return MarkedDocument(name, None, findings=[_yaml_finding(name, exc, "invalid YAML")])
    except YAMLError as exc:
        return MarkedDocument(name, None, findings=[Finding(name, 1, 1, "", f"invalid YAML: {exc}")])
    document = MarkedDocument(name, None)
    env = os.environ if environ is None else environ
    document.data = _plain(tree, (), document, env, (1, 1))
    return document


def _yaml_finding(name: str, exc: MarkedYAMLError, what: str) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = (exc.problem or "").strip()
    if what == "duplicate key":
        key = _duplicate_key_name(problem)
        return Finding(name, line, column, key, "duplicate key")
    return Finding(name, line, column, "", f"{what}: {problem}")


def _duplicate_key_name(problem: str) -> str:
    match = re.search(r'found duplicate key "([^"]*)"', problem)
    return match.group(1) if match else ""


def _plain(node: Any, path: Path_, document: MarkedDocument, env: Mapping[str, str],
           mark: tuple[int, int]) -> Any:
    if isinstance(node, CommentedMap):
        document.marks.setdefault(path, (node.lc.line + 1, node.lc.col + 1))
        result: dict[str, Any] = {}
        for key, value in node.items():
            key_line, key_col = node.lc.key(key)
            child = (*path, str(key))
            document.marks[child] = (key_line + 1, key_col + 1)
            value_mark = node.lc.value(key)
            result[str(key)] = _plain(value, child, document, env, (value_mark[0] + 1, value_mark[1] + 1))
        return result
    if isinstance(node, CommentedSeq):
        document.marks.setdefault(path, (node.lc.line + 1, node.lc.col + 1))
        items = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            child = (*path, index)
            document.marks[child] = (line + 1, col + 1)
            items.append(_plain(value, child, document, env, (line + 1, col + 1)))
        return items
    if isinstance(node, str):
        return _substitute(str(node), path, document, env, mark)
    return node


def _substitute(text: str, path: Path_, document: MarkedDocument, env: Mapping[str, str],
                mark: tuple[int, int]) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None:
            if default is not None:
                return default
            document.findings.append(Finding(document.file, mark[0], mark[1], format_path(path),
                                             f"environment variable {name} is not set"))
            return ""
        return value

    return _VARIABLE.sub(replace, text)
