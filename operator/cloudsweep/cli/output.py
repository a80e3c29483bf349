"""Render rows for people (a rich table, the default) or programs (JSON, CSV); used by every command."""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def _width() -> int | None:
    """The terminal's width; 160 when writing to a pipe or file, where rich would assume 80."""
    if os.environ.get("COLUMNS"):
        return None
    return None if sys.stdout.isatty() else 160


# No markup by default: messages carry AWS and user text ("[demo]", "rules[0]") that rich would
# read as tags and drop. The few styled lines pass markup=True and escape with ``literal``.
console = Console(width=_width(), markup=False)
# soft_wrap: an error is one line, however long (the terminal wraps it, not rich).
errors = Console(stderr=True, markup=False, soft_wrap=True)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(_plain(payload), indent=2, ensure_ascii=False) + "\n")


def render(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str],
    fmt: OutputFormat,
    title: str | None = None,
    footer: Mapping[str, str] | None = None,
    right_aligned: Sequence[str] = (),
    wrap: Sequence[str] = (),
) -> None:
    """Rows as a table (columns not in ``wrap`` never wrap), JSON or CSV."""
    if fmt is OutputFormat.JSON:
        print_json(list(rows))
        return
    if fmt is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _plain(row.get(key)) for key in columns})
        sys.stdout.write(buffer.getvalue())
        return
    table = Table(title=title, show_footer=footer is not None, header_style="bold")
    for column in columns:
        table.add_column(
            column.upper().replace("_", " "),
            justify="right" if column in right_aligned else "left",
            footer=(footer or {}).get(column, ""),
            no_wrap=column not in wrap,
            overflow="fold" if column in wrap else "ellipsis",
            ratio=1 if column in wrap else None,
        )
    for row in rows:
        # Text, not str: rich would read "[demo]" or "[0]" in a value as markup and drop it.
        table.add_row(*(Text(_cell(row.get(column))) for column in columns))
    console.print(table)


def render_plain(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str],
    headers: Mapping[str, str],
    right_aligned: Sequence[str] = (),
    gap: int = 3,
) -> None:
    """Rows as ``kubectl get`` prints them: no borders, one line each, values never cut.

    Each column is as wide as its widest value (so rich never shrinks or folds it); a line wider
    than the terminal runs past its edge, as kubectl's do, rather than being cut.
    """
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, gap, 0, 0))
    for column in columns:
        header = headers.get(column, column.upper())
        widest = max([len(header), *(len(cell(row.get(column))) for row in rows)])
        table.add_column(
            header,
            justify="right" if column in right_aligned else "left",
            no_wrap=True,
            min_width=widest,
            header_style="bold",
        )
    for row in rows:
        table.add_row(*(Text(cell(row.get(column))) for column in columns))
    console.print(table, crop=False)


def cell(value: Any) -> str:
    """A value as a table shows it."""
    return _cell(value)


def literal(value: object) -> str:
    """A value to put into a markup string (``[red]error:[/red] {literal(x)}``) as it is."""
    return escape(str(value))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)
