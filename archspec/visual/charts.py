"""Per-layer charts as inline SVG elements (pure: numbers in, text out, the same text every time).

A bar chart draws one bar per layer in execution order (parameters, MACs, activation memory); a
line chart draws the receptive field's growth against the input's size. Each bar and point has a
<title> (the browser's tooltip) and a `data-row` naming its row of the page's table. A figure
that is not a number (a symbolic size, `H*W*64`) is left out of a chart and said so below it.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Callable, Sequence

WIDTH, HEIGHT = 900, 230
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 12, 34  # margins inside the viewBox
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def si(x: float) -> str:
    """1234567 -> 1.23M; small figures as they are."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def nice_ceiling(x: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above x (x > 0)."""
    exp = math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= x * (1 - 1e-12):
            return m * 10**exp
    return 10 ** (exp + 1)


def nice_bytes(x: float) -> float:
    """nice_ceiling in binary units: 1.5 MiB -> 2 MiB, so that the axis reads in whole KiB, MiB, GiB."""
    unit = 1024 ** min(3, max(0, int(math.log(x, 1024)))) if x >= 1 else 1
    return nice_ceiling(x / unit) * unit


def numeric(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def bar_chart(labels: Sequence[str], values: Sequence[Any], what: str, show: Callable[[Any], str],
              axis: Callable[[float], str] = si, nice: Callable[[float], float] = nice_ceiling) -> str:
    """One bar per layer; `labels` are the layers' names, `show` formats a value for its tooltip,
    `axis` for the axis, whose top is `nice` of the largest value."""
    nums = [numeric(v) for v in values]
    top = max((v for v in nums if v is not None), default=0.0)
    ceiling = nice(top) if top > 0 else 1.0
    n = max(len(values), 1)
    step = PLOT_W / n
    width = step * (0.8 if step > 3 else 1.0)
    parts = [_open(what), *_y_axis(ceiling, axis), *_x_axis(len(values))]
    for i, (label, v, raw) in enumerate(zip(labels, nums, values)):
        if not v:
            continue
        h = PLOT_H * v / ceiling
        parts.append(f'<rect class="bar" data-row="{i}" x="{LEFT + i * step:.2f}" y="{TOP + PLOT_H - h:.2f}" '
                     f'width="{width:.2f}" height="{h:.2f}"><title>{escape(f"{i + 1}. {label}: {show(raw)}")}'
                     "</title></rect>")
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[Any]]], what: str,
               level: tuple[str, Any] | None = None) -> str:
    """Lines through each layer's figure (one per series); `level` a dashed horizontal line (the input's size)."""
    nums = [[numeric(v) for v in values] for _, values in series]
    marks = [v for vs in nums for v in vs if v is not None]
    level_value = numeric(level[1]) if level is not None else None
    top = max(marks + ([level_value] if level_value else []), default=0.0)
    ceiling = nice_ceiling(top) if top > 0 else 1.0
    n = max(len(labels), 1)
    step = PLOT_W / n
    parts = [_open(what), *_y_axis(ceiling, lambda x: f"{x:g}"), *_x_axis(len(labels))]
    if level is not None and level_value:
        y = TOP + PLOT_H * (1 - level_value / ceiling)
        parts.append(f'<line class="level" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.2f}" y2="{y:.2f}"/>')
        parts.append(f'<text class="level-label" x="{LEFT + PLOT_W - 4}" y="{y - 4:.2f}" text-anchor="end">'
                     f"{escape(level[0])}</text>")
    for k, ((name, values), vs) in enumerate(zip(series, nums)):
        points = [(LEFT + (i + 0.5) * step, TOP + PLOT_H * (1 - v / ceiling), i, v)
                  for i, v in enumerate(vs) if v is not None]
        if not points:
            continue
        path = " ".join(f"{x:.2f},{y:.2f}" for x, y, _, _ in points)
        parts.append(f'<polyline class="series s{k}" points="{path}"/>')
        for x, y, i, _ in points:
            tip = f"{i + 1}. {labels[i]}: {name} {values[i]}"
            parts.append(f'<circle class="point s{k}" data-row="{i}" cx="{x:.2f}" cy="{y:.2f}" r="2.5">'
                         f"<title>{escape(tip)}</title></circle>")
    parts.append("</svg>")
    return "\n".join(parts)


def _open(what: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(what)}" '
            'xmlns="http://www.w3.org/2000/svg">')


def _y_axis(ceiling: float, fmt: Callable[[float], str]) -> list[str]:
    out = []
    for k in range(5):
        v = ceiling * k / 4
        y = TOP + PLOT_H * (1 - k / 4)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.2f}" y2="{y:.2f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 3:.2f}" text-anchor="end">{escape(fmt(v))}</text>')
    return out


def _x_axis(n: int) -> list[str]:
    """Ticks at layer 1, the end, and a few round numbers between."""
    if n == 0:
        return []
    every = nice_ceiling(n / 8) if n > 8 else 1
    marks = sorted({1, n, *range(int(every), n, int(every) or 1)})
    step = PLOT_W / n
    y = TOP + PLOT_H
    out = [f'<line class="axis" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y}" y2="{y}"/>']
    for m in marks:
        x = LEFT + (m - 0.5) * step
        out.append(f'<text class="tick" x="{x:.2f}" y="{y + 13}" text-anchor="middle">{m}</text>')
    out.append(f'<text class="tick" x="{LEFT + PLOT_W / 2:.2f}" y="{y + 28}" text-anchor="middle">'
               "layer, in execution order</text>")
    return out
