"""The insights report as one self-contained HTML file: inline CSS, inline SVG charts, no scripts.

Nothing is fetched when it opens (no fonts, images or scripts from anywhere), so it can be
attached to an e-mail and read offline. Every piece of text is escaped; the numbers and
examples come already aggregated and masked from `bot.report.insights`; the charts and colours
are `adapters/report_charts.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from adapters.report_charts import (
    ESCALATION,
    GAP,
    HELPED,
    NOT_QUITE,
    ROUTE_COLOURS,
    ROUTE_LABELS,
    SAMR_COLOURS,
    SIGNAL_COLOURS,
    TOPIC,
    diverging,
    donut,
    hbars,
    stacked_columns,
)
from bot.report.results import GAP_SIGNALS, NOT_SET, SAMR_LEVELS, Insights

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
