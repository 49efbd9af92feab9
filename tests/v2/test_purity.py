"""simpul/v2 is the bottom layer: pure ER7 syntax, importing only simpul.errors and the standard
library, with no import hidden inside a function, and strict-mypy clean."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

V2 = Path(__file__).resolve().parents[2] / "simpul" / "v2"
# Standard-library modules that do I/O or reach the outside world: none has a place in pure syntax.
IO_MODULES = {"os", "io", "socket", "asyncio", "subprocess", "pathlib", "shutil", "tempfile", "logging", "time",
              "threading", "multiprocessing", "urllib", "http", "ssl", "select", "selectors", "signal"}


def _imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(module, relative level, at module level) for every import in the file."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, id(node) in top))
    return found


@pytest.mark.parametrize("path", sorted(V2.glob("*.py")), ids=lambda p: p.name)
def test_v2_imports_only_errors_and_pure_standard_library(path: Path) -> None:
    for module, level, at_top in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        assert at_top, f"{path.name}: import of {module or '.'} inside a function or class"
        if level:  # relative: another module of simpul.v2
            continue
        root = module.split(".")[0]
        if root == "simpul":
            assert module == "simpul.errors", f"{path.name} imports {module}: v2 sits below every other layer"
            continue
        assert root in sys.stdlib_module_names or root == "__future__", f"{path.name} imports {module}"
        assert root not in IO_MODULES, f"{path.name} imports {module}: v2 does no I/O"


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_v2_is_strict_mypy_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(V2)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
