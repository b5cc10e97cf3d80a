"""The insights report as one self-contained HTML file: inline CSS, inline SVG charts, no scripts.

Nothing is fetched when it opens (no fonts, images or scripts from anywhere), so it can be
attached to an e-mail and read offline. Every piece of text is escaped; the numbers and
examples come already aggregated and masked from `bot.report.insights`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from bot.report.insights import GAP_SIGNALS, NOT_SET, SAMR_LEVELS, Insights

ROUTE_COLOURS = {"coach": "#2f6fde", "helpdesk": "#e38b2c", "integrator": "#8a4fbf", "other": "#a3acb7"}
ROUTE_LABELS = {"coach": "Coaching", "helpdesk": "Helpdesk", "integrator": "Integrator", "other": "Other"}
SAMR_COLOURS = {"substitution": "#a9cfe8", "augmentation": "#6baed6", "modification": "#2f7fc1",
                "redefinition": "#0b4f94", NOT_SET: "#d3d8de"}
HELPED, NOT_QUITE, GAP, TOPIC, ESCALATION = "#2e9e5b", "#e8743b", "#d1483f", "#2f6fde", "#8a4fbf"
SIGNAL_COLOURS = {"no_answer": "#d1483f", "low_confidence": "#e38b2c", "not_quite": "#e8743b", "weak_match": "#8a6d3b"}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#1f2933;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 48px}
header h1{font-size:28px;margin:0 0 4px;letter-spacing:-.01em}
header p{margin:0;color:#52606d}
.privacy{margin-top:10px;font-size:13px;color:#52606d;background:#eef2f7;border-radius:8px;padding:8px 12px}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin:22px 0}
.kpi{background:#fff;border-radius:12px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.08)}
.kpi b{display:block;font-size:26px;line-height:1.1}
.kpi span{font-size:12.5px;color:#52606d}
section{background:#fff;border-radius:14px;padding:20px 22px;margin:16px 0;box-shadow:0 1px 2px rgba(16,24,40,.08)}
section h2{font-size:19px;margin:0 0 4px}
section .sub{margin:0 0 14px;color:#52606d;font-size:13.5px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.grid2 section{margin:0}
table{width:100%;border-collapse:collapse;font-size:14px}
th{text-align:left;font-weight:600;color:#52606d;font-size:12.5px;text-transform:uppercase;letter-spacing:.03em;
border-bottom:1px solid #e4e7eb;padding:6px 8px}
td{border-bottom:1px solid #eef0f3;padding:8px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.rank{display:inline-block;width:26px;height:26px;border-radius:50%;background:#fde8e6;color:#b4332b;
text-align:center;line-height:26px;font-weight:700;font-size:13px}
.label{font-weight:600}
.chip{display:inline-block;border-radius:999px;padding:1px 9px;margin:2px 4px 2px 0;font-size:12px;color:#fff;white-space:nowrap}
.tag{display:inline-block;border-radius:6px;padding:0 7px;margin:2px 4px 2px 0;font-size:12px;background:#eef2f7;color:#3e4c59}
ul.examples{margin:6px 0 0;padding:0;list-style:none}
ul.examples li{font-size:13px;color:#3e4c59;margin:3px 0;padding-left:12px;border-left:3px solid #e4e7eb}
.muted{color:#7b8794;font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:13px;color:#3e4c59;margin:6px 0 0}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:5px;vertical-align:-1px}
.empty{color:#7b8794;font-style:italic;margin:8px 0}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef2f7;border-radius:4px;padding:1px 5px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
footer{color:#7b8794;font-size:12.5px;margin-top:22px}
@media (max-width:800px){.kpis{grid-template-columns:repeat(3,1fr)}.grid2{grid-template-columns:1fr}}
@media print{body{background:#fff}section,.kpi{box-shadow:none;border:1px solid #e4e7eb;break-inside:avoid}}
"""


def render_html(ins: Insights) -> str:
    """The whole report as one HTML document."""
    period = f"{ins.since or 'the first recorded message'} to {ins.until or 'today'}"
    t = ins.totals
    coached = t["coaching_questions"]
    gap_share = f" ({round(100 * t['gap_questions'] / coached)}% of coaching)" if coached else ""
    kpis = [
        (t["messages"], "messages"),
        (t["teachers"], "teachers asked"),
        (coached, "coaching questions"),
        (t["gap_questions"], f"knowledge gaps{gap_share}"),
        (f"{t['helped']} / {t['not_quite']}", "\u201cThis helped\u201d / \u201cNot quite\u201d"),
        (t["escalations"], "escalations"),
    ]
    replay = ("Includes turns recorded by <code>coach replay</code>."
              if ins.include_replay and t.get("replayed") else
              "Replayed turns left out." if not ins.include_replay else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Integration Coach insights, {escape(period)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<header><h1>What teachers asked, and what the knowledge base lacks</h1>",
        f"<p>Integration Coach insights, {escape(period)}. Generated {escape(ins.generated_at)}. "
        f"{replay}</p>",
        f'<div class="privacy">Aggregated for the whole school: no names or user ids. A topic or gap is shown only '
        f"when at least {ins.min_group_size} different teachers asked about it; example questions are masked "
        f"(student names, e-mail addresses, numbers and mentions are replaced).</div></header>",
        '<div class="kpis">' + "".join(f'<div class="kpi"><b>{escape(str(v))}</b><span>{escape(k)}</span></div>'
                                        for v, k in kpis) + "</div>",
    ]
    for note in ins.notes:
        parts.append(f'<p class="privacy">{escape(note)}</p>')
    parts += [_gaps(ins), _weeks(ins), '<div class="grid2">', _routes(ins), _samr(ins), "</div>",
              _topics(ins), _feedback(ins), _escalations(ins), _cycles(ins)]
    parts.append(
        "<footer>Next steps: <code>coach kb draft-gaps DIR</code> writes a draft entry for each top gap; "
        "<code>coach kb draft-from-escalation I-0007 DIR</code> saves what an integrator answered. Finish the "
        "drafts, then <code>coach kb import DIR</code>.</footer></main></body></html>")
    return "\n".join(parts)


# -- sections --------------------------------------------------------------------------------


def _section(title: str, sub: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2><p class=\"sub\">{sub}</p>{body}</section>"


def _gaps(ins: Insights) -> str:
    sub = ("Coaching questions the knowledge base did not serve: no entry was good enough, retrieval was unsure, "
           "the teacher clicked \u201cNot quite\u201d, or the question sits far from every entry. Grouped by "
           "meaning and ranked by how often they come up.")
    if not ins.gaps:
        body = f'<p class="empty">No gap was asked about by {ins.min_group_size} or more teachers in this period.</p>'
    else:
        chart = hbars([(f"{g.rank}. {g.label}", g.questions) for g in ins.gaps], GAP, unit="questions")
        rows = []
        for g in ins.gaps:
            chips = "".join(f'<span class="chip" style="background:{SIGNAL_COLOURS.get(k, GAP)}">'
                            f"{escape(GAP_SIGNALS.get(k, k))} \u00d7{n}</span>" for k, n in g.signals.items())
            closest = (f'<span class="muted">closest entry:</span> {escape(g.closest_title or g.closest_entry)} '
                       f'<span class="muted">(<code>{escape(g.closest_entry)}</code>, cosine '
                       f"{g.closest_similarity:.2f})</span>" if g.closest_entry else "")
            grades = "".join(f'<span class="tag">{escape(b)}</span>' for b in g.grades)
            rows.append(
                f'<tr><td><span class="rank">{g.rank}</span></td>'
                f'<td><div class="label">{escape(g.label)}</div><div>{chips}{grades}</div>'
                f"<div>{closest}</div>{_examples(g.examples)}</td>"
                f'<td class="num">{g.questions}</td><td class="num">{g.teachers}</td></tr>')
        body = (chart + '<table><thead><tr><th></th><th>gap</th><th class="num">questions</th>'
                '<th class="num">teachers</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")
    if ins.hidden_gaps.questions:
        body += (f'<p class="muted">{ins.hidden_gaps.questions} more gap question(s) in {ins.hidden_gaps.groups} '
                 f"group(s) asked by fewer than {ins.min_group_size} teachers are not shown.</p>")
    return _section("Knowledge gaps: what to curate next", sub, body)


def _weeks(ins: Insights) -> str:
    if not ins.weeks:
        return _section("Questions per week", "", '<p class="empty">No messages in this period.</p>')
    legend = _legend([(ROUTE_LABELS.get(r, r), ROUTE_COLOURS.get(r, "#999")) for r in ins.routes])
    return _section("Questions per week", "Every teacher message, by where the coach sent it.",
                    stacked_columns([w.week for w in ins.weeks], [w.by_route for w in ins.weeks],
                                    list(ins.routes), ROUTE_COLOURS) + legend)


def _routes(ins: Insights) -> str:
    total = sum(ins.routes.values())
    if not total:
        return _section("Routes", "", '<p class="empty">No messages.</p>')
    items = [(ROUTE_LABELS.get(r, r), n, ROUTE_COLOURS.get(r, "#999")) for r, n in ins.routes.items()]
    rows = "".join(f'<tr><td><span class="legend"><span><i style="background:{c}"></i>{escape(label)}</span></span></td>'
                   f'<td class="num">{n}</td><td class="num">{round(100 * n / total)}%</td></tr>'
                   for label, n, c in items)
    body = (f'<div style="display:flex;gap:18px;align-items:center">{donut(items)}'
            f'<table style="flex:1"><tbody>{rows}</tbody></table></div>')
    return _section("Routes", "Coaching, IT helpdesk, a human integrator, or a short reply.", body)


def _samr(ins: Insights) -> str:
    total = sum(ins.samr.values())
    if not total:
        return _section("SAMR levels", "", '<p class="empty">No coached question drew on an entry.</p>')
    items = [(level.capitalize(), ins.samr.get(level, 0), SAMR_COLOURS[level]) for level in (*SAMR_LEVELS, NOT_SET)]
    return _section("SAMR levels", "Where coached questions sit, from the SAMR level of the entry each reply drew on "
                    "first.", hbars([(label, n) for label, n, _ in items], [c for _, _, c in items],
                                    label_width=130, width=480, unit="questions"))


def _topics(ins: Insights) -> str:
    sub = ("Coaching questions grouped by meaning and by the entries the replies drew on; each topic is named by "
           "the entry most of its questions used.")
    if not ins.topics:
        body = f'<p class="empty">No topic was asked about by {ins.min_group_size} or more teachers in this period.</p>'
    else:
        chart = hbars([(tp.label, tp.questions) for tp in ins.topics], TOPIC, unit="questions")
        rows = "".join(
            f'<tr><td><div class="label">{escape(tp.label)}</div>'
            f'<div>{"".join(f"<span class=tag>{escape(tag)}</span>" for tag in tp.tags)}</div>'
            f"{_examples(tp.examples)}</td><td class=\"num\">{tp.questions}</td>"
            f'<td class="num">{tp.teachers}</td></tr>' for tp in ins.topics)
        body = (chart + '<table><thead><tr><th>topic</th><th class="num">questions</th><th class="num">teachers</th>'
                "</tr></thead><tbody>" + rows + "</tbody></table>")
    if ins.hidden_topics.questions:
        body += (f'<p class="muted">{ins.hidden_topics.questions} more question(s) in {ins.hidden_topics.groups} '
                 f"other topic(s), each smaller or asked by fewer than {ins.min_group_size} teachers, are not "
                 "shown.</p>")
    return _section("Top topics", sub, body)


def _feedback(ins: Insights) -> str:
    sub = ("How often replies drew on each entry, and what teachers clicked under those replies. Entries with "
           "feedback first.")
    if not ins.entries:
        return _section("Feedback per entry", sub, '<p class="empty">No reply drew on an entry in this period.</p>')
    shown = ins.entries[:15]
    chart = diverging([(e.title, e.helped, e.not_quite) for e in shown if e.helped or e.not_quite])
    rows = "".join(
        f'<tr><td><span class="label">{escape(e.title)}</span> <code>{escape(e.entry_id)}</code></td>'
        f'<td>{escape(e.samr)}</td><td class="num">{e.cited}</td>'
        f'<td class="num" style="color:{HELPED}">{e.helped}</td>'
        f'<td class="num" style="color:{NOT_QUITE}">{e.not_quite}</td></tr>' for e in shown)
    legend = _legend([("This helped", HELPED), ("Not quite", NOT_QUITE)])
    more = (f'<p class="muted">{len(ins.entries) - len(shown)} more entries were drawn on.</p>'
            if len(ins.entries) > len(shown) else "")
    body = ((chart + legend if chart else '<p class="empty">No feedback clicks yet.</p>')
            + '<table><thead><tr><th>entry</th><th>SAMR</th><th class="num">drawn on</th>'
            '<th class="num">helped</th><th class="num">not quite</th></tr></thead><tbody>' + rows
            + "</tbody></table>" + more)
    return _section("Feedback per entry", sub, body)


def _hours(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h"


def _escalations(ins: Insights) -> str:
    sub = "Handoffs to the IT helpdesk and to integrators, by reason, and how long they waited to be claimed."
    if not ins.escalations:
        return _section("Escalations", sub, '<p class="empty">No escalations in this period.</p>')
    chart = hbars([(f"{e.label} ({e.target})", e.count) for e in ins.escalations],
                  [ROUTE_COLOURS.get(e.target, ESCALATION) for e in ins.escalations], unit="escalations")
    rows = "".join(
        f"<tr><td>{escape(e.label)}</td><td>{escape(e.target)}</td><td class=\"num\">{e.count}</td>"
        f'<td class="num">{e.urgent}</td><td class="num">{e.open}</td><td class="num">{e.claimed}</td>'
        f'<td class="num">{_hours(e.median_hours_to_claim)}</td><td class="num">{_hours(e.p90_hours_to_claim)}</td></tr>'
        for e in ins.escalations)
    body = (chart + '<table><thead><tr><th>reason</th><th>to</th><th class="num">count</th><th class="num">urgent</th>'
            '<th class="num">open</th><th class="num">claimed</th><th class="num">median to claim</th>'
            '<th class="num">90% within</th></tr></thead><tbody>' + rows + "</tbody></table>")
    return _section("Escalations", sub, body)


def _cycles(ins: Insights) -> str:
    cy = ins.cycles
    sub = ("Check-ins the coach offered after a teacher said what they would try, and how it went. Outcomes by "
           f"entry are shown when {ins.min_group_size}+ teachers had one; repeat needs are counted, never named.")
    if cy is None or not cy.offered:
        return _section("Coaching cycles", sub, '<p class="empty">No check-ins offered in this period.</p>')
    o = cy.outcomes
    body = (f"<p>{cy.offered} offered, {cy.accepted} accepted, {cy.sent} sent, {cy.completed} completed: "
            f"{o.get('went_well', 0)} went well, {o.get('mixed', 0)} mixed, {o.get('not_yet', 0)} didn't get to it. "
            f"{cy.repeat_teachers} teacher(s) came back with the same need three times or more.</p>")
    if cy.topics:
        rows = "".join(
            f"<tr><td>{escape(t.title)}</td><td class=\"num\">{t.teachers}</td><td class=\"num\">{t.completed}</td>"
            + "".join(f'<td class="num">{t.outcomes.get(k, 0)}</td>' for k in ("went_well", "mixed", "not_yet"))
            + "</tr>" for t in cy.topics)
        body += ('<table><thead><tr><th>after entry</th><th class="num">teachers</th><th class="num">completed</th>'
                 '<th class="num">went well</th><th class="num">mixed</th><th class="num">didn\'t get to it</th>'
                 "</tr></thead><tbody>" + rows + "</tbody></table>")
    return _section("Coaching cycles", sub, body)


def _examples(examples: Sequence[str]) -> str:
    if not examples:
        return ""
    return '<ul class="examples">' + "".join(f"<li>\u201c{escape(x)}\u201d</li>" for x in examples) + "</ul>"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in items) + "</div>"


# -- charts (inline SVG) ---------------------------------------------------------------------


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
