"""Inline SVG charts (no script, no library): the overview's jobs that succeeded and attempts that
failed per minute of the last hour, and a queue's history series with axes and labels."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def bars(good: Sequence[int], bad: Sequence[int], width: int = 600, height: int = 80) -> str:
    """One column per minute, succeeded stacked on failed; the tallest column fills the height."""
    top = max([1, *(g + b for g, b in zip(good, bad, strict=True))])
    step = width / max(1, len(good))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="jobs per minute, last hour">']
    for i, (g, b) in enumerate(zip(good, bad, strict=True)):
        x = i * step
        hb, hg = height * b / top, height * g / top
        title = escape(f"{len(good) - i - 1} min ago: {g} succeeded, {b} failed")
        if b:
            parts.append(f'<rect class="bad" x="{x:.1f}" y="{height - hb:.1f}" width="{step - 1:.1f}" '
                         f'height="{hb:.1f}"><title>{title}</title></rect>')
        if g:
            parts.append(f'<rect class="good" x="{x:.1f}" y="{height - hb - hg:.1f}" width="{step - 1:.1f}" '
                         f'height="{hg:.1f}"><title>{title}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


#: the history ranges the queue page offers: label -> (seconds shown, seconds per column)
RANGES = {"1h": (3600, 60), "24h": (86_400, 1800), "7d": (7 * 86_400, 3 * 3600)}


def columns(values: Sequence[float], label: str, unit: str, start: str, end: str, width: int = 600,
            height: int = 90, kind: str = "good") -> str:
    """One series as columns, with its axes: the largest value at the top left, the range's start
    and end under the x axis, and the label; each column says its value on hover."""
    top = max([1.0, *values])
    pad_left, pad_bottom = 48, 16
    plot_w, plot_h = width - pad_left, height - pad_bottom
    step = plot_w / max(1, len(values))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(label)}">',
             f'<line class="axis" x1="{pad_left}" y1="0" x2="{pad_left}" y2="{plot_h}"/>',
             f'<line class="axis" x1="{pad_left}" y1="{plot_h}" x2="{width}" y2="{plot_h}"/>',
             f'<text class="tick" x="{pad_left - 4}" y="10" text-anchor="end">{top:g}</text>',
             f'<text class="tick" x="{pad_left - 4}" y="{plot_h}" text-anchor="end">0</text>',
             f'<text class="tick" x="{pad_left}" y="{height - 2}">{escape(start)}</text>',
             f'<text class="tick" x="{width}" y="{height - 2}" text-anchor="end">{escape(end)}</text>',
             f'<text class="label" x="{pad_left + 6}" y="10">{escape(label)} ({escape(unit)})</text>']
    for i, v in enumerate(values):
        if v:
            h = plot_h * v / top
            parts.append(f'<rect class="{kind}" x="{pad_left + i * step:.1f}" y="{plot_h - h:.1f}" '
                         f'width="{max(0.5, step - 1):.1f}" height="{h:.1f}">'
                         f'<title>{v:g} {escape(unit)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)
