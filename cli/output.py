"""Printing command results as text or, with --json, as JSON."""

from __future__ import annotations

import json
from typing import Any

import click


def emit(data: Any, *, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text if text is not None else _plain(data))


def _plain(data: Any) -> str:
    if isinstance(data, dict):
        return "\n".join(f"{key}: {value}" for key, value in data.items())
    if isinstance(data, list):
        return "\n".join(_plain(item) for item in data)
    return str(data)
