"""Printing command results: human-readable text by default, JSON with --json."""

from __future__ import annotations

import json
from typing import Any

import click

# Defined in cli/options.py; still importable from here for the modules that ask here.
from cli.options import JSON_OPTION as JSON_OPTION
from models.text import visible, visible_lines


def emit(data: Any, *, as_json: bool, text: str | None = None) -> None:
    """JSON (its escapes show every character), or text read in a terminal: the names in it
    (a key Odock pushed with an escape sequence, a carriage return, an override) marked."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(visible_lines(text if text is not None else plain(data)))


def done(message: str, data: dict[str, Any], *, as_json: bool) -> None:
    """The result of a change: one sentence, or with --json the values it is made of."""
    emit(data, as_json=as_json, text=message)


def plain(data: Any, indent: int = 0) -> str:
    """Nested values as indented `key: value` lines, lists of records as bulleted blocks."""
    pad = "  " * indent
    if isinstance(data, dict):
        if not data:
            return f"{pad}-"
        lines = []
        for key, value in data.items():
            label = str(key).replace("_", " ")
            if _nested(value):
                lines.append(f"{pad}{label}:")
                lines.append(plain(value, indent + 1))
            else:
                lines.append(f"{pad}{label}: {_cell(value)}")
        return "\n".join(lines)
    if isinstance(data, list | tuple):
        if not data:
            return f"{pad}(none)"
        if all(not _nested(item) for item in data):
            return "\n".join(f"{pad}- {_cell(item)}" for item in data)
        blocks = []
        for item in data:
            body = plain(item, indent + 1)
            blocks.append(f"{pad}- " + body.lstrip(" "))
        return "\n".join(blocks)
    return f"{pad}{_cell(data)}"


def table(rows: list[dict[str, Any]], columns: list[str], *, empty: str) -> str:
    """Rows as aligned columns under a header (the text form of a listing)."""
    if not rows:
        return empty
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    header = [column.upper().replace("_", " ") for column in columns]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    )


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and bool(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value) or "-"
    return visible(str(value))
