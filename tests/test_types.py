"""The type checker passes over the whole package, strict on the lower layers (pyproject [tool.mypy]).

Imports name their files (a real `simpul/` package tree), so mypy follows every one of them; a
type error anywhere in `simpul/` fails the suite, and so does loosening the strict layers.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRICT_LAYERS = {"simpul.v2.*", "simpul.mllp.*", "simpul.store.*", "simpul.connectors.*"}


def test_mypy_passes_over_the_whole_package():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_the_lower_layers_are_checked_strictly():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    strict = [o for o in config["overrides"] if o.get("disallow_untyped_defs") and o.get("disallow_any_generics")]
    assert strict, "no strict override in [tool.mypy]"
    assert STRICT_LAYERS <= set(strict[0]["module"])


def test_mypy_reports_a_type_error(tmp_path):
    """The check can fail: a wrongly typed module under the same configuration is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(bad)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Incompatible return value type" in done.stdout
