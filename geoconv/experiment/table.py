"""The one table renderer: aligned Markdown tables and word-wrapped text tables.

Reports, the benchmark and ``geoconv ops`` all print tables through these two functions.

>>> print(markdown_table(["op", "ms"], [["conv", "1.5"], ["blur_pool", "12.25"]], numeric=[False, True]))
| op        |    ms |
|-----------|------:|
| conv      |   1.5 |
| blur_pool | 12.25 |
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from geoconv.errors import ParameterError

__all__ = ["markdown_table", "render_table"]


def _check_rows(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[list[str]]:
    table = [list(headers), *(list(row) for row in rows)]
    for row in table:
        if len(row) != len(headers):
            raise ParameterError(f"every row of the table needs {len(headers)} cells, got {len(row)}: {row!r}")
    return table


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """An aligned Markdown table; ``numeric`` columns are right-aligned (``---:``).

    Parameters
    ----------
    headers : sequence of str
        Column titles.
    rows : sequence of sequence of str
        The cells, as many per row as headers.
    numeric : sequence of bool, optional
        Which columns hold numbers; none by default.

    Returns
    -------
    str
        The table, lines joined by newlines.
    """
    table = _check_rows(headers, rows)
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    if len(numeric) != len(headers):
        raise ParameterError(f"numeric needs one flag per column ({len(headers)}), got {len(numeric)}")
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True))
        return "| " + " | ".join(padded) + " |"

    dashes = ("-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, numeric, strict=True))
    return "\n".join([line(table[0]), "|" + "|".join(dashes) + "|", *(line(row) for row in table[1:])])


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int = 100, gap: int = 2) -> str:
    """Lay ``rows`` out as aligned, word-wrapped columns that fit in ``width`` characters.

    Columns start at their natural width; while the table is too wide, the widest column
    that can still shrink gives up one character. A column never gets narrower than its
    longest word (words are never split), so a very narrow ``width`` gives a wider table
    rather than a broken one. When any cell wraps, rows are separated by a blank line.

    Parameters
    ----------
    headers : sequence of str
        Column titles.
    rows : sequence of sequence of str
        The cells, one sequence per row, as many cells as headers.
    width : int
        The width to fit, in characters.
    gap : int
        Spaces between columns.

    Returns
    -------
    str
        The table, lines joined by newlines, no trailing spaces.

    Examples
    --------
    >>> print(render_table(["NAME", "WHAT"], [["a", "one two three"], ["bb", "four"]], width=14))
    NAME  WHAT
    ----  --------
    a     one two
          three
    <BLANKLINE>
    bb    four
    """
    table = _check_rows(headers, rows)
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    minimum = [max((len(word) for row in table for word in row[i].split()), default=0) for i in range(len(headers))]
    available = width - gap * (len(headers) - 1)
    while sum(widths) > available:
        shrinkable = [i for i in range(len(widths)) if widths[i] > minimum[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1

    def wrap(row: list[str]) -> list[str]:
        cells = [
            textwrap.wrap(cell, w, break_long_words=False, break_on_hyphens=False) or [""]
            for cell, w in zip(row, widths, strict=True)
        ]
        height = max(len(cell) for cell in cells)
        lines = []
        for k in range(height):
            parts = [(cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(cells, widths, strict=True)]
            lines.append((" " * gap).join(parts).rstrip())
        return lines

    body = [wrap(row) for row in table[1:]]
    lines = [*wrap(table[0]), (" " * gap).join("-" * w for w in widths)]
    separate = any(len(row) > 1 for row in body)
    for k, row in enumerate(body):
        if separate and k:
            lines.append("")
        lines.extend(row)
    return "\n".join(lines)
