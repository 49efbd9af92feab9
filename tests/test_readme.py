"""The README's channel reference is generated from the models; this keeps them in step."""
from __future__ import annotations

from pathlib import Path

from simpul.engine.config.reference import channel_reference

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_channel_reference_matches_the_models():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- reference:start -->") + len("<!-- reference:start -->")
    end = text.index("<!-- reference:end -->")
    assert text[start:end].strip() == channel_reference().strip(), (
        "README channel reference is stale: run `python scripts/update_readme_reference.py`")
