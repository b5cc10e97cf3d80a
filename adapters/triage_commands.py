"""`coach triage explain` and `coach triage check`: why a message goes where it goes.

`explain` shows the route, every category's score, the concern detectors against their
thresholds, and which part decided. `check` validates the school's corpus and phrases and
runs the grouped cross-validation, so an integrator can see what an added example changed.
"""

from __future__ import annotations

import json
from typing import Any

import click

from bot.triage.categories import LEARNED
from bot.triage.router import Decision


def _settings() -> Any:
    from adapters.cli_context import Context

    return click.get_current_context().ensure_object(Context).settings


@click.group("triage")
def triage() -> None:
    """Triage: where messages go (a person, the helpdesk, a short reply, or coaching) and why."""


def explanation(decision: Decision) -> dict[str, Any]:
    """A decision as plain data: route, category, reason, who decided, scores and detectors."""
    return {
        "route": decision.route.value,
        "category": decision.category.value,
        "reason": decision.reason,
        "urgent": decision.urgent,
        "decided_by": decision.decided_by.value,
        "alternative": decision.alternative.value if decision.alternative else None,
        "scores": {c.value: round(decision.scores.get(c, 0.0), 3) for c in LEARNED},
        "detectors": {c.value: {"score": round(s.score, 3), "threshold": round(s.threshold, 3),
                                "fired": s.fired, "sentence": s.sentence}
                      for c, s in decision.concerns.items()},
    }


@triage.command("explain")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="print the explanation as one JSON object")
def explain(text: str, as_json: bool) -> None:
    """Show how TEXT would be triaged as the first message of a conversation."""
    from adapters.wiring import make_triage

    decision = make_triage(_settings()).decide(text)
    data = explanation(decision)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo(f"route:      {data['route']}{'  (urgent)' if decision.urgent else ''}")
    click.echo(f"category:   {data['category']}")
    click.echo(f"decided by: {data['decided_by']}  ({decision.reason})")
    if decision.alternative:
        click.echo(f"unsure:     the reply also offers {decision.alternative.value}")
    click.echo("router scores:")
    for name, score in sorted(data["scores"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {name:<14} {score:5.3f} {'#' * round(score * 30)}")
    click.echo("concern detectors:")
    for name, d in data["detectors"].items():
        mark = "FIRED" if d["fired"] else "below"
        click.echo(f"  {name:<14} {d['score']:5.3f} (threshold {d['threshold']:.3f}, {mark}) "
                   f"strongest sentence: {d['sentence'][:80]!r}")


@triage.command("check")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
def check(as_json: bool) -> None:
    """Validate triage.yaml and the corpus, and cross-validate the router by family (a minute or two)."""
    from bot.triage.build import CORPUS_FOLDER, corpus_files, training_arrays
    from bot.triage.corpus import load_corpus_files
    from bot.triage.rules import PhraseRules
    from bot.triage.training import train
    from adapters.wiring import _glossary_expander
    from knowledge.minilm import MiniLMEmbedder

    settings = _settings()
    PhraseRules.from_file(settings.config.path("triage.yaml"))
    examples = load_corpus_files(corpus_files(settings.config), CORPUS_FOLDER)
    expand = _glossary_expander(settings)
    from bot.triage.build import SHIPPED, ENCODINGS, EncodingCache

    cache_dir = settings.data_dir / "cache"
    cache = EncodingCache([SHIPPED / ENCODINGS, cache_dir / ENCODINGS], cache_dir / ENCODINGS)
    emb = cache.encode([expand(e.text) for e in examples], MiniLMEmbedder().embed)
    texts, labels, families = training_arrays(examples)
    report = train(texts, labels, families, emb, "check").report
    if as_json:
        click.echo(json.dumps(report))
        return
    folds = report["folds"]
    click.echo(f"{report['examples']} examples in {report['families']} families; "
               f"cross-validated by family ({len(folds['routes'])} routes)")
    for route, r in folds["routes"].items():
        click.echo(f"  {route:<11} precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                   f"F1 {r['f1']:.3f}  (n={r['n']})")
    click.echo(f"  macro-F1 {folds['macro_f1']:.3f}; safeguarding recall {folds['safeguarding_recall']}; "
               f"false escalations per 100 coaching {folds['false_escalations_per_100_coaching']}")
    for note in report.get("threshold_notes", []):
        click.echo(f"  note: {note}")


__all__ = ["triage", "explanation"]
