"""Tables for people and for pipes.

On a terminal every value is shown whole: when the columns do not fit the width, the lesser
columns (lowest `priority`) are dropped first, then the remaining `wrap` columns wrap onto more
lines; an identifier such as a control id or a status is never cut. When stdout is not a
terminal (a pipe, a file, `| cut -f3`) the rows are plain tab-separated values with one header
line, every column present. JSON is a separate switch (`--json`) of each command.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.table import Table

# Rich's table with box=None pads each cell by one column on each side.
CELL_PADDING = 2
# The narrowest a wrapping column may become before it is dropped instead.
MIN_WRAP_WIDTH = 12


@dataclass(frozen=True)
class Column:
    """One column. `priority`: higher stays longer on a narrow terminal (0 = dropped first);
    `wrap`: the value may wrap onto several lines (free text), else it is kept on one line."""

    name: str
    priority: int = 1
    wrap: bool = False


def print_table(columns: Sequence[Column], cells: Sequence[Sequence[object]], *, title: str = "",
                out: TextIO | None = None, terminal: bool | None = None, width: int | None = None) -> None:
    """Print rows of `cells` as a table on a terminal, or as tab-separated values otherwise."""
    rows = [["" if value is None else str(value) for value in row] for row in cells]
    out = out if out is not None else sys.stdout
    if terminal is None:
        terminal = out.isatty()
    if not terminal:
        out.write("\t".join(column.name for column in columns) + "\n")
        for row in rows:
            out.write("\t".join(_tsv_cell(value) for value in row) + "\n")
        return
    if width is None:
        width = shutil.get_terminal_size().columns
    keep = fitting_columns(columns, rows, width)
    table = Table(title=title or None, box=None, header_style="bold", title_justify="left", expand=False)
    for index in keep:
        column = columns[index]
        if column.wrap:
            # Gets the room left over; a word longer than that folds onto the next line (never cut).
            table.add_column(column.name, overflow="fold")
        else:
            needed = max([len(column.name), *(len(row[index]) for row in rows)])
            table.add_column(column.name, no_wrap=True, min_width=needed, overflow="ignore")
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    dropped = [columns[i].name for i in range(len(columns)) if i not in keep]
    console = Console(file=out, width=width, force_terminal=True, highlight=False, soft_wrap=False)
    console.print(table)
    if dropped:
        console.print(f"(hidden at this width: {', '.join(dropped)}; see --json)", style="dim")


def fitting_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Indexes of the columns that fit `width` with every one-line value whole."""
    def needed(index: int) -> int:
        if columns[index].wrap:
            return _wrap_width(index, columns, rows) + CELL_PADDING
        return max([len(columns[index].name), *(len(row[index]) for row in rows)]) + CELL_PADDING

    keep = list(range(len(columns)))
    # Drop the lowest priority first; among equals, the rightmost (tables read left to right).
    order = sorted(keep, key=lambda i: (columns[i].priority, -i))
    for index in order:
        if sum(needed(i) for i in keep) <= width or len(keep) == 1:
            break
        keep.remove(index)
    return keep


def _wrap_width(index: int, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """The narrowest a wrapping column may be: MIN_WRAP_WIDTH, or the whole value when shorter."""
    longest = max([len(columns[index].name), *(len(row[index]) for row in rows)])
    return min(longest, MIN_WRAP_WIDTH)


def _tsv_cell(value: str) -> str:
    # A tab or newline inside a value would shift every later column of the row.
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
