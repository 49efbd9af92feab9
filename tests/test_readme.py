"""README.md stays about a page, and what it tells a newcomer to run is what the docs test runs.

The channel reference that used to live in the README is generated into the docs site now
(tests/docs/test_site.py checks that every key and connector is there)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.docs.support import DOCS, examples

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(text: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_is_about_a_page():
    assert len(README.splitlines()) <= 80


def test_readme_commands_are_the_ones_the_get_started_examples_test_runs():
    tested = set()
    for example in examples("get-started.md", (DOCS / "get-started.md").read_text(encoding="utf-8")):
        if example.kind in ("setup", "shell"):
            tested.update(_commands(example.body))
    blocks = re.findall(r"^```bash\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    assert blocks, "README has no command block"
    for block in blocks:
        for command in _commands(block):
            assert command in tested, f"README runs '{command}', which no Get started example runs"


def test_readme_links_point_at_pages_that_exist():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        assert (ROOT / link).exists(), link
