"""Bar charts as inline SVG geometry, drawn by the template: no script, no image request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.queries.revocation_stats import DayFigure

WIDTH = 600
HEIGHT = 120
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str
    bars: list[Bar]
    figures: list[tuple[str, str]]  # (day, value as text): the same data as a table
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(
    title: str, figures: list[DayFigure], *, text: Callable[[DayFigure], str], summary: str
) -> Chart:
    peak = max((figure.value for figure in figures), default=0.0) or 1.0
    slot = WIDTH / max(len(figures), 1)
    bars = []
    for index, figure in enumerate(figures):
        height = round(HEIGHT * figure.value / peak, 1)
        if figure.value and height < 1:
            height = 1.0  # a small value stays visible
        bars.append(
            Bar(
                x=round(index * slot, 1),
                y=round(HEIGHT - height, 1),
                width=round(slot - GAP, 1),
                height=height,
                label=f"{figure.day.isoformat()}: {text(figure)}",
            )
        )
    table = [(figure.day.isoformat(), text(figure)) for figure in figures]
    return Chart(title=title, summary=summary, bars=bars, figures=table)


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
