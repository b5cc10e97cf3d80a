"""The insights report's charts as inline SVG, and the colours the report draws in.

Plain SVG strings with every label escaped, so the HTML file needs no script or image from anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from bot.models import Route
from bot.report.results import NOT_SET

# Keyed by route (a str enum, so the plain route names in the report find them too).
ROUTE_COLOURS: dict[str, str] = {Route.COACH: "#2f6fde", Route.HELPDESK: "#e38b2c", Route.INTEGRATOR: "#8a4fbf",
                                 Route.OTHER: "#a3acb7"}
ROUTE_LABELS: dict[str, str] = {Route.COACH: "Coaching", Route.HELPDESK: "Helpdesk", Route.INTEGRATOR: "Integrator",
                                Route.OTHER: "Other"}
SAMR_COLOURS = {"substitution": "#a9cfe8", "augmentation": "#6baed6", "modification": "#2f7fc1",
                "redefinition": "#0b4f94", NOT_SET: "#d3d8de"}
HELPED, NOT_QUITE, GAP, TOPIC, ESCALATION = "#2e9e5b", "#e8743b", "#d1483f", "#2f6fde", "#8a4fbf"
SIGNAL_COLOURS = {"no_answer": "#d1483f", "low_confidence": "#e38b2c", "not_quite": "#e8743b", "weak_match": "#8a6d3b"}


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "\u2026"


def hbars(items: Sequence[tuple[str, float]], colour: str | Sequence[str], *, width: int = 1060,
          label_width: int | None = None, unit: str = "") -> str:
    """Horizontal bars with their labels and values; a long label is cut, in full on hover."""
    if not items:
        return ""
    if label_width is None:  # as wide as the longest label needs, within reason
        label_width = min(380, max(120, 8 * max(len(label) for label, _ in items) + 16))
    row, pad = 26, 6
    height = len(items) * row + pad * 2
    top = nice_max(max(v for _, v in items))
    span = width - label_width - 60
    out = [f'<svg role="img" aria-label="bar chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'style="max-width:100%;height:auto;display:block;margin:4px 0 12px">']
    for i, (label, value) in enumerate(items):
        y = pad + i * row
        fill = colour if isinstance(colour, str) else colour[i % len(colour)]
        w = max(2.0, span * value / top) if value else 0
        out.append(f'<g><title>{escape(label)}: {value:g} {escape(unit)}</title>'
                   f'<text x="{label_width - 10}" y="{y + row / 2 + 4}" text-anchor="end" font-size="13" '
                   f'fill="#3e4c59">{escape(_clip(label, label_width // 8))}</text>'
                   f'<rect x="{label_width}" y="{y + 4}" width="{span}" height="{row - 8}" rx="4" fill="#f0f2f5"/>'
                   f'<rect x="{label_width}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="4" fill="{fill}"/>'
                   f'<text x="{label_width + w + 6:.1f}" y="{y + row / 2 + 4}" font-size="12.5" font-weight="600" '
                   f'fill="#1f2933">{value:g}</text></g>')
    out.append("</svg>")
    return "".join(out)


def stacked_columns(labels: Sequence[str], values: Sequence[dict[str, int]], keys: Sequence[str],
                    colours: dict[str, str], *, width: int = 1060, height: int = 260) -> str:
    """Columns per label, stacked by key, with a y axis and gridlines."""
    left, bottom, top_pad = 44, 34, 12
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = nice_max(max((sum(v.values()) for v in values), default=0))
    n = len(labels)
    slot = plot_w / max(n, 1)
    bar = min(56.0, slot * 0.7)
    out = [f'<svg role="img" aria-label="questions per week" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto;display:block">']
    for k in range(5):  # gridlines at quarters of the axis
        value = top * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#e4e7eb"/>'
                   f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11.5" fill="#7b8794">'
                   f"{value:g}</text>")
    every = max(1, math.ceil(n / 14))  # at most ~14 date labels, so they never overlap
    for i, (label, counts) in enumerate(zip(labels, values)):
        x = left + slot * i + (slot - bar) / 2
        y = top_pad + plot_h
        total = sum(counts.values())
        parts = []
        for key in keys:
            v = counts.get(key, 0)
            if not v:
                continue
            h = plot_h * v / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colours.get(key, "#999")}">'
                         f"<title>week of {escape(label)}: {v} {escape(ROUTE_LABELS.get(key, key))}</title></rect>")
        out.extend(parts)
        if total and bar >= 18:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="11.5" '
                       f'fill="#3e4c59">{total}</text>')
        if i % every == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{height - 12}" text-anchor="middle" font-size="11.5" '
                       f'fill="#52606d">{escape(label[5:])}</text>')
    out.append("</svg>")
    return "".join(out)


def donut(items: Sequence[tuple[str, int, str]], size: int = 150) -> str:
    """A ring split by share, the total in the middle."""
    total = sum(n for _, n, _ in items)
    r, stroke = size / 2 - 14, 24
    circumference = 2 * math.pi * r
    out = [f'<svg role="img" aria-label="routes" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
           f'<circle cx="{size / 2}" cy="{size / 2}" r="{r:.1f}" fill="none" stroke="#f0f2f5" stroke-width="{stroke}"/>']
    offset = 0.0
    for label, n, colour in items:
        if not n or not total:
            continue
        length = circumference * n / total
        out.append(f'<circle cx="{size / 2}" cy="{size / 2}" r="{r:.1f}" fill="none" stroke="{colour}" '
                   f'stroke-width="{stroke}" stroke-dasharray="{length:.2f} {circumference - length:.2f}" '
                   f'stroke-dashoffset="{-offset:.2f}" transform="rotate(-90 {size / 2} {size / 2})">'
                   f"<title>{escape(label)}: {n}</title></circle>")
        offset += length
    out.append(f'<text x="{size / 2}" y="{size / 2 + 2}" text-anchor="middle" font-size="22" font-weight="700" '
               f'fill="#1f2933">{total}</text><text x="{size / 2}" y="{size / 2 + 20}" text-anchor="middle" '
               'font-size="11" fill="#7b8794">messages</text></svg>')
    return "".join(out)


def diverging(items: Sequence[tuple[str, int, int]], *, width: int = 1060, label_width: int = 380) -> str:
    """'Not quite' to the left of a centre line, 'This helped' to the right, per entry."""
    if not items:
        return ""
    row, pad = 26, 6
    height = len(items) * row + pad * 2
    top = nice_max(max(max(h, n) for _, h, n in items))
    half = (width - label_width - 20) / 2
    centre = label_width + half
    out = [f'<svg role="img" aria-label="feedback per entry" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto;display:block;margin:4px 0 6px">',
           f'<line x1="{centre}" y1="0" x2="{centre}" y2="{height}" stroke="#cbd2d9"/>']
    for i, (label, helped, not_quite) in enumerate(items):
        y = pad + i * row
        hw, nw = half * helped / top, half * not_quite / top
        out.append(f'<g><title>{escape(label)}: {helped} helped, {not_quite} not quite</title>'
                   f'<text x="{label_width - 10}" y="{y + row / 2 + 4}" text-anchor="end" font-size="13" '
                   f'fill="#3e4c59">{escape(_clip(label, label_width // 8))}</text>')
        if not_quite:
            out.append(f'<rect x="{centre - nw:.1f}" y="{y + 4}" width="{nw:.1f}" height="{row - 8}" rx="3" '
                       f'fill="{NOT_QUITE}"/><text x="{centre - nw - 6:.1f}" y="{y + row / 2 + 4}" text-anchor="end" '
                       f'font-size="12" fill="{NOT_QUITE}" font-weight="600">{not_quite}</text>')
        if helped:
            out.append(f'<rect x="{centre}" y="{y + 4}" width="{hw:.1f}" height="{row - 8}" rx="3" fill="{HELPED}"/>'
                       f'<text x="{centre + hw + 6:.1f}" y="{y + row / 2 + 4}" font-size="12" fill="{HELPED}" '
                       f'font-weight="600">{helped}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
