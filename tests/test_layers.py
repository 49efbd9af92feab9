"""The package's layers import only the layers below them, and imports sit at the top of modules.

The rule is the README's Layout diagram. It is checked on the source with `ast`, so a cycle cannot
come back hidden behind a function-local or `TYPE_CHECKING` import: both count here.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "simpul"

# Lower number = lower layer. A module may import its own package and any package of a lower rank.
# Packages of equal rank are independent of each other (mllp and store; connectors and mappings).
RANKS = {
    "errors": 0,
    "config_types": 0,
    "v2": 1,
    "mllp": 2,
    "store": 2,
    "connectors": 3,
    "mappings": 3,
    "engine": 4,
    "dead_letters": 5,
    # encounter-to-cash: accounts, charges, invoices, reconciliation; beside the operations layer,
    # above the engine (it emits events and runs as an engine background job), below the API.
    "billing": 5,
    "api": 6,
    # The composition root that wires the engine with the layers above it (simpul/app.py).
    "app": 7,
    # The command line starts engines through the composition root.
    "cli": 8,
}
# The entry points that compose every layer (`python -m simpul`, the console script).
COMPOSITION_ROOTS = {"__init__", "__main__"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations/versions" not in p.as_posix())


def _layer_of(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def _simpul_targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    elif isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        return []
    return [name.split(".")[1] for name in names if name.startswith("simpul.")]


def _function_local_imports(tree: ast.AST) -> list[ast.stmt]:
    found: list[ast.stmt] = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return found


def test_every_package_has_a_rank():
    layers = {_layer_of(p) for p in _modules()} - COMPOSITION_ROOTS
    assert layers <= set(RANKS), f"give these packages a rank in tests/test_layers.py: {layers - set(RANKS)}"


def test_layers_import_only_layers_below_them():
    wrong = []
    for path in _modules():
        layer = _layer_of(path)
        if layer in COMPOSITION_ROOTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _simpul_targets(node):
                if target != layer and RANKS.get(target, 99) >= RANKS[layer]:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {layer} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_project_import_hides_inside_a_function():
    hidden = []
    for path in _modules():
        for node in _function_local_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > 0 or _simpul_targets(node):
                hidden.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not hidden, "move these imports to the top of the module:\n" + "\n".join(hidden)


def test_a_function_local_import_of_a_library_says_why():
    """Only optional or heavy dependencies are imported late, each with a one-line reason above it."""
    unexplained = []
    for path in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in _function_local_imports(ast.parse("\n".join(lines))):
            # One comment may explain a block of consecutive late imports.
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("#"):
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not unexplained, "say why each late import is late (a comment line above it):\n" + "\n".join(unexplained)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The rule itself can fail: a store module importing the engine is reported."""
    bad = ast.parse("from simpul.engine.runtime import Runtime\n")
    targets = [t for n in ast.walk(bad) for t in _simpul_targets(n)]
    assert targets == ["engine"] and RANKS["engine"] >= RANKS["store"]
