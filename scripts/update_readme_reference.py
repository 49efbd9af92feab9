"""Rewrite the generated channel reference inside README.md (between the reference markers)."""
from __future__ import annotations

from pathlib import Path

from simpul.engine.config.reference import channel_reference

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- reference:start -->", "<!-- reference:end -->"

text = README.read_text(encoding="utf-8")
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
README.write_text(f"{head}{START}\n{channel_reference().strip()}\n{END}{tail}", encoding="utf-8")
print("README.md channel reference updated")
