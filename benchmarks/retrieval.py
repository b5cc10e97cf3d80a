"""Retrieval quality on a case file: dense-only, BM25-only and fusions side by side, in one run.

usage: python benchmarks/retrieval.py [CASES.jsonl] [KB_DIR]
Without arguments: the shared development set and the team's three case sets, each with
its knowledge base, then the mean over the sets (a weight is chosen on the mean, not on one
set). Follow-up turns are searched with the conversation's previous coaching turn as
context, as Coach.handle does.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.wiring import make_retriever  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from knowledge.minilm import MiniLMEmbedder  # noqa: E402
from knowledge.glossary import Glossary  # noqa: E402
from knowledge.parser import load_folder  # noqa: E402
from knowledge.search import Retriever  # noqa: E402
from knowledge.store import KnowledgeStore, open_client  # noqa: E402

# The shared evaluation folder beside the checkout (a worktree sits one level deeper than main).
SHARED = next((p / "shared" / "eval" for p in ROOT.parents if (p / "shared" / "eval").is_dir()),
              ROOT.parent / "shared" / "eval")


def cases_with_context(path: Path) -> list[tuple[str, str, set[str]]]:
    """(text, context, good ids) for every coach case; context is the previous coach turn's text."""
    out = []
    last: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        case = json.loads(line)
        expect = case.get("expect", {})
        conv = case.get("conversation") or case["id"]
        prev = last.get(conv)
        context = prev[0] if prev and prev[1] == "coach" else ""
        if expect.get("route") == "coach":
            out.append((case["text"], context, set(expect.get("sources_any", []))))
        last[conv] = (case["text"], expect.get("route", ""))
    return out


class RRF:
    """Plain reciprocal-rank fusion, for comparison only."""

    def __init__(self, dense: Retriever, lexical: Retriever, k: int = 60) -> None:
        self.dense, self.lexical, self.k = dense, lexical, k

    def search(self, text: str, context: str = "", k: int = 5):
        fused: dict[str, float] = {}
        for retriever in (self.dense, self.lexical):
            for rank, eid in enumerate(retriever.search(text, context=context, k=30).ids, 1):
                fused[eid] = fused.get(eid, 0.0) + 1 / (self.k + rank)

        class Ranked:
            ids = sorted(fused, key=lambda e: -fused[e])[:k]

        return Ranked


def score(retriever: Retriever, cases) -> dict[str, float]:
    h1 = h3 = 0
    rr = 0.0
    for text, context, good in cases:
        ids = retriever.search(text, context=context, k=5).ids
        rank = next((i + 1 for i, s in enumerate(ids) if s in good), None)
        h1 += rank == 1
        h3 += rank is not None and rank <= 3
        rr += 1 / rank if rank else 0.0
    n = len(cases) or 1
    return {"hit@1": h1 / n, "hit@3": h3 / n, "mrr@5": rr / n}


CASES = ROOT / "benchmarks" / "cases"
# The shared development set, and the team's own sets: two written against the fixture base
# (short chat messages; longer messages with context), one against the starter base.
DEFAULT_SETS = [
    (SHARED / "dev.jsonl", SHARED / "kb"),
    (CASES / "fixture-kb-short.jsonl", SHARED / "kb"),
    (CASES / "fixture-kb-context.jsonl", SHARED / "kb"),
    # Narrative messages (a story, a complaint, then half a question; the need one sentence inside).
    (CASES / "fixture-kb-narrative.jsonl", SHARED / "kb"),
    (CASES / "messy-starter.jsonl", ROOT / "knowledge" / "starter"),
]


SHIPPED = "shipped (settings)"


def configurations(store: KnowledgeStore, glossary: Glossary) -> list[tuple[str, object]]:
    """Every retrieval compared, by label; the last is the product's, built from its own settings."""
    def retriever(mode: str = "hybrid", weight: float = 0.05, gloss: Glossary | None = glossary,
                  late: bool = False, share: float = 0.5, ask: float = 0.0) -> Retriever:
        return Retriever(store, mode=mode, lexical_weight=weight, glossary=gloss, late_interaction=late,
                         rerank_dense_share=share, ask_weight=ask)

    configs: list[tuple[str, object]] = [
        ("dense only", retriever("dense", 0.0)), ("BM25 only", retriever("lexical", 1.0)),
        ("dense, no glossary", retriever("dense", 0.0, None)),
    ]
    configs += [(f"fused w={w:.2f}", retriever(weight=w)) for w in (0.05, 0.1, 0.2, 0.3)]
    configs.append(("RRF k=60", RRF(retriever("dense"), retriever("lexical"))))
    configs += [(f"late, dense x{share:g}", retriever(late=True, share=share)) for share in (0.0, 0.25, 1.0)]
    configs += [(f"late, w={w:.2f}", retriever(weight=w, late=True)) for w in (0.0, 0.1)]
    configs.append(("late, whole message", retriever(late=True)))
    configs += [(f"late, ask x{ask:g}", retriever(late=True, ask=ask)) for ask in (0.5, 1.0, 2.0)]
    configs.append((SHIPPED, make_retriever(SETTINGS, store)))
    return configs


SETTINGS = load_settings()


def main(argv: list[str]) -> int:
    r = SETTINGS.retrieval
    print(f"shipped: mode={r.mode} lexical_weight={r.lexical_weight} late_interaction={r.late_interaction} "
          f"context_weight={r.context_weight} ask_weight={r.ask_weight} (config {SETTINGS.config_dir})")
    sets = [(Path(argv[0]), Path(argv[1]) if len(argv) > 1 else SHARED / "kb")] if argv else DEFAULT_SETS
    embedder = MiniLMEmbedder()
    glossary = Glossary.from_file(ROOT / "config" / "tool-glossary.yaml")
    totals: dict[str, list[dict[str, float]]] = {}
    for cases_path, kb_dir in sets:
        cases = cases_with_context(cases_path)
        with tempfile.TemporaryDirectory() as tmp:
            store = KnowledgeStore(open_client(data_dir=Path(tmp), chroma_url=None), embedder)
            entries = load_folder(kb_dir).entries
            store.sync(entries)
            rows = []
            for label, retriever in configurations(store, glossary):
                start = time.perf_counter()
                result = score(retriever, cases)
                ms = (time.perf_counter() - start) * 1000 / max(len(cases), 1)
                rows.append((label, result, ms))
                totals.setdefault(label, []).append(result)
        print(f"\n{len(cases)} coach cases from {cases_path.name}, knowledge base {kb_dir.name} ({len(entries)} entries)")
        print(f"{'retrieval':<22} {'hit@1':>6} {'hit@3':>6} {'MRR@5':>6} {'ms/query':>9}")
        for label, res, ms in rows:
            print(f"{label:<22} {res['hit@1']:>6.3f} {res['hit@3']:>6.3f} {res['mrr@5']:>6.3f} {ms:>9.1f}")
    if len(sets) > 1:
        print(f"\nmean over the {len(sets)} sets")
        print(f"{'retrieval':<22} {'hit@1':>6} {'hit@3':>6} {'MRR@5':>6}")
        for label, results in totals.items():
            mean = {k: sum(res[k] for res in results) / len(results) for k in ("hit@1", "hit@3", "mrr@5")}
            print(f"{label:<22} {mean['hit@1']:>6.3f} {mean['hit@3']:>6.3f} {mean['mrr@5']:>6.3f}")
    best = max(totals, key=lambda label: sum(r["mrr@5"] for r in totals[label]))
    print(f"best mean MRR: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
