"""An inline SVG bar chart (no script, no library): jobs that succeeded and attempts that failed
per minute of the last hour."""

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
