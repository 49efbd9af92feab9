"""Shared by the docs tests: the docs hooks module, and the marked examples of a Markdown page."""
from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# A fenced block, optionally indented (inside a list item), with the marker line just before it.
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence) *$",
                   re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- example: (?P<kind>[a-z-]+) -->\s*$")
KINDS = {"setup", "shell", "output", "channel", "channel-part", "text"}


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    kind: str
    body: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.kind})"


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simpul_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def examples(page: str, text: str) -> list[Example]:
    """Every fenced block of the page, each with its marker; a block without one is an error."""
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        if marker is None or marker.group("kind") not in KINDS:
            raise AssertionError(f"{page}:{line}: fenced block without an example marker "
                                 f"(put one of {sorted(KINDS)} as <!-- example: KIND --> on the line before)")
        body = "\n".join(row[len(match.group("indent")):] for row in match.group("body").splitlines())
        found.append(Example(page, line, marker.group("kind"), body + "\n"))
    return found
