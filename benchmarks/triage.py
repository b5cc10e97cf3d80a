"""Triage side by side, in one run: the earlier rules + nearest examples, the learned router
alone, and the shipped combination (phrase floor + detectors + router).

usage: python benchmarks/triage.py [--no-folds] [NAME=CASES.jsonl ...]

Case files are `coach replay` inputs with `expect.route` (and `expect.tag`, where
`safeguarding` marks a concern). Without arguments: the shared development set and every
file in eval/held-out/. Each message is scored as the first turn of a conversation, with
its vector computed once (as Coach.handle does) and shared by all three.
Also: grouped cross-validation by family over config/triage-corpus (router alone and
shipped thresholds), and the cost of each triage per message (ms, MB) with the embedding
excluded, since all three read the same vector.

The earlier triage is read from git history (commit BASELINE), so git must be available.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.models import Route  # noqa: E402
from bot.triage.build import CORPUS_FOLDER, ENCODINGS, SHIPPED, EncodingCache, load_triage, training_arrays  # noqa: E402
from bot.triage.categories import CONCERNS, LEARNED, ROUTE_OF  # noqa: E402
from bot.triage.corpus import load_corpus  # noqa: E402
from bot.triage.training import ROUTES, Hyper, Thresholds, cross_validate, route_report, routes_of  # noqa: E402
from knowledge.minilm import MiniLMEmbedder  # noqa: E402
from knowledge.glossary import Glossary  # noqa: E402

CONFIG = ROOT / "config"
SHARED = ROOT.parent / "shared" / "eval"
HELD_OUT = ROOT / "eval" / "held-out"
BASELINE = "7e7c351"  # the last commit with rules + nearest examples


def load_baseline(embed: Callable[[list[str]], np.ndarray], name: str, workdir: Path):  # type: ignore[no-untyped-def]
    """The earlier triage (bot/triage/rules.py + examples.py and their config) from git history."""
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    pkg = workdir / "baseline_triage"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "examples.py").write_text(show("bot/triage/examples.py"))
    (pkg / "rules.py").write_text(show("bot/triage/rules.py").replace("bot.triage.examples", "baseline_triage.examples"))
    (workdir / "triage.yaml").write_text(show("config/triage.yaml"))
    (workdir / "triage-examples.yaml").write_text(show("config/triage-examples.yaml"))
    sys.path.insert(0, str(workdir))
    from baseline_triage.examples import ExampleIndex  # type: ignore[import-not-found]
    from baseline_triage.rules import Triage as OldTriage  # type: ignore[import-not-found]

    examples = ExampleIndex.from_file(workdir / "triage-examples.yaml", embed, model_name=name, cache_dir=workdir)
    return OldTriage.from_file(workdir / "triage.yaml", examples)


def read_cases(path: Path) -> list[tuple[str, str, bool]]:
    """(text, expected route, is a safeguarding concern) for each first turn with a route."""
    out = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        conv = case.get("conversation") or case["id"]
        expect = case.get("expect", {})
        if conv in seen or "route" not in expect:
            seen.add(conv)
            continue
        seen.add(conv)
        out.append((case["text"], expect["route"], expect.get("tag") == "safeguarding"))
    return out


def table(title: str, rows: dict[str, dict]) -> None:
    print(f"\n## {title}\n")
    print("| triage | macro-F1 | coach P/R | helpdesk P/R | integrator P/R | other P/R | safeguarding recall | "
          "false escalations /100 coaching |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r['routes'][x.value]['precision']:.2f}/{r['routes'][x.value]['recall']:.2f}" for x in ROUTES]
        sg = "n/a" if r["safeguarding_recall"] is None else f"{r['safeguarding_recall']:.2f}"
        print(f"| {name} | {r['macro_f1']:.3f} | " + " | ".join(cells)
              + f" | {sg} | {r['false_escalations_per_100_coaching']} |")


def main(argv: list[str]) -> int:
    folds = "--no-folds" not in argv
    named = [a for a in argv if "=" in a]
    sets = {k: Path(v) for k, v in (a.split("=", 1) for a in named)}
    if not sets:
        sets = {"dev": SHARED / "dev.jsonl", **{p.stem: p for p in sorted(HELD_OUT.glob("*.jsonl")) if p.stem.startswith(("triage-", "retrieval-"))}}
    embedder = MiniLMEmbedder()
    expand = Glossary.from_file(CONFIG / "tool-glossary.yaml").expanded
    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    old = load_baseline(embedder.embed, embedder.name, workdir)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    new = load_triage(CONFIG, workdir / "cache", model_name=embedder.name, embed_many=embedder.embed,
                      embed_one=lambda t: embedder.embed([expand(t)])[0], prepare=expand)
    loaded_mb = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")) / 2**20
    tracemalloc.stop()
    route_index = {r.value: i for i, r in enumerate(ROUTES)}
    timings: dict[str, list[float]] = {"rules + examples (before)": [], "phrase rules alone (without the learned parts)": [],
                                       "shipped": []}

    for set_name, path in sets.items():
        cases = read_cases(path)
        texts = [t for t, _, _ in cases]
        vectors = embedder.embed([expand(t) for t in texts])
        truth = np.array([route_index[r] for _, r, _ in cases])
        sg = np.array([s for _, _, s in cases])
        coaching = truth == route_index["coach"]
        got_old, got_alone, got_new = [], [], []
        for text, vector in zip(texts, vectors):
            t0 = time.perf_counter()
            got_old.append(route_index[old.decide(text, vector=vector).route.value])
            t1 = time.perf_counter()
            decision = new.decide(text, vector=vector)
            t2 = time.perf_counter()
            new.rules.match(text)
            timings["phrase rules alone (without the learned parts)"].append(time.perf_counter() - t2)
            got_new.append(route_index[decision.route.value])
            timings["rules + examples (before)"].append(t1 - t0)
            timings["shipped"].append(t2 - t1)
            probs = new.model.route_probabilities(vector, text)
            sums = {r: 0.0 for r in ROUTES}
            for c, p in probs.items():
                sums[ROUTE_OF[c]] += p
            got_alone.append(ROUTES.index(max(sums, key=sums.__getitem__)))
        table(f"{set_name} ({len(cases)} messages, {path.name})", {
            "rules + examples (before)": route_report(truth, np.array(got_old), sg, coaching),
            "learned router alone": route_report(truth, np.array(got_alone), sg, coaching),
            "shipped (rules floor + detectors + router)": route_report(truth, np.array(got_new), sg, coaching),
        })

    if folds:
        examples = load_corpus(CONFIG / CORPUS_FOLDER)
        prepared = [expand(e.text) for e in examples]
        emb = EncodingCache([SHIPPED / ENCODINGS], None).encode(prepared, embedder.embed)
        texts, labels, families = training_arrays(examples)
        started = time.monotonic()
        probs, concerns = cross_validate(texts, labels, families, emb, Hyper())
        truth = np.array([ROUTES.index(ROUTE_OF[LEARNED[k]]) for k in labels])
        sg = labels == LEARNED.index(LEARNED[0])
        coaching = truth == ROUTES.index(Route.COACH)
        alone = np.zeros(len(texts), dtype=np.int64)
        for i, row in enumerate(probs):
            sums = np.zeros(len(ROUTES))
            for k, c in enumerate(LEARNED):
                sums[ROUTES.index(ROUTE_OF[c])] += row[k]
            alone[i] = int(sums.argmax())
        thresholds = Thresholds([new.model.thresholds[c] for c in CONCERNS],
                                [new.model.sentence_thresholds[c] for c in CONCERNS],
                                [new.model.sentence_support.get(c, 0.0) for c in CONCERNS])
        old_pred = np.array([route_index[old.decide(t, vector=v).route.value] for t, v in zip(texts, emb)])
        table(f"corpus, 5 folds grouped by family ({len(texts)} messages, {len(set(families))} families, "
              f"{time.monotonic() - started:.0f}s)", {
                  "rules + examples (before), not trained on the corpus": route_report(truth, old_pred, sg, coaching),
                  "learned router alone": route_report(truth, alone, sg, coaching),
                  "router + detectors at shipped thresholds (no phrases)":
                      route_report(truth, routes_of(probs, concerns, thresholds), sg, coaching),
              })

    print("\n## Cost per message (embedding excluded: all read the same vector)\n")
    print("| triage | median ms | p95 ms | model memory MB |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        ms = sorted(v * 1000 for v in values)
        memory = f"{loaded_mb:.1f}" if name == "shipped" else "-"
        print(f"| {name} | {statistics.median(ms):.2f} | {ms[int(0.95 * (len(ms) - 1))]:.2f} | {memory} |")
    added = [a - b for a, b in zip(timings["shipped"], timings["phrase rules alone (without the learned parts)"])]
    ms = sorted(v * 1000 for v in added)
    print(f"| added by the router and detectors | {statistics.median(ms):.2f} | {ms[int(0.95 * (len(ms) - 1))]:.2f} | "
          f"{loaded_mb:.1f} |")
    print(f"\nshipped thresholds, whole message: {json.dumps({c.value: t for c, t in new.model.thresholds.items()})}; "
          f"a sentence, in messages of 2, 3, 4+ sentences: "
          f"{json.dumps({c.value: t for c, t in new.model.sentence_thresholds.items()})}; "
          f"the whole-message support a sentence needs: "
          f"{json.dumps({c.value: t for c, t in new.model.sentence_support.items()})}; "
          f"prior weights (expected mix): {json.dumps({c.value: round(w, 3) for c, w in new.weights.items()})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
