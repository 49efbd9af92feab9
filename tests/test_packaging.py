"""The installed package must contain every module folder, or a non-editable install breaks."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "simpul"


def test_every_folder_with_python_modules_is_a_package():
    # setuptools' package discovery skips a folder without __init__.py, so its modules would be
    # missing from a wheel while an editable install still imports them.
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(folder.relative_to(ROOT)) for folder in folders if not (folder / "__init__.py").exists())
    assert missing == []


def test_vocabulary_files_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vocab/*.json" in config["package-data"]["simpul.mappings"]
    assert list((PACKAGE / "mappings" / "vocab").glob("*.json"))
