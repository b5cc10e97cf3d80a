"""Retrieval quality on a case file: dense-only, BM25-only and fusions side by side, in one run.

usage: python benchmarks/retrieval.py [CASES.jsonl] [KB_DIR]
Defaults to the shared development set and fixture knowledge base. Follow-up turns are
searched with the conversation's previous coaching turn as context, as Coach.handle does.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knowledge.embeddings import MiniLMEmbedder  # noqa: E402
from knowledge.glossary import Glossary  # noqa: E402
from knowledge.parser import load_folder  # noqa: E402
from knowledge.search import Retriever  # noqa: E402
from knowledge.store import KnowledgeStore, open_client  # noqa: E402

SHARED = ROOT.parent / "shared" / "eval"


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


def main(argv: list[str]) -> int:
    cases_path = Path(argv[0]) if argv else SHARED / "dev.jsonl"
    kb_dir = Path(argv[1]) if len(argv) > 1 else SHARED / "kb"
    cases = cases_with_context(cases_path)
    with tempfile.TemporaryDirectory() as tmp:
        embedder = MiniLMEmbedder()
        store = KnowledgeStore(open_client(data_dir=Path(tmp), chroma_url=None), embedder)
        store.sync(load_folder(kb_dir).entries)
        glossary = Glossary.from_file(ROOT / "config" / "tool-glossary.yaml")
        rows = []
        configs = [("dense only", "dense", 0.0, glossary), ("BM25 only", "lexical", 1.0, glossary),
                   ("dense, no glossary", "dense", 0.0, None)]
        configs += [(f"fused w={w:.2f}", "hybrid", w, glossary) for w in (0.05, 0.1, 0.2, 0.3, 0.5)]
        for label, mode, weight, gloss in configs:
            retriever = Retriever(store, mode=mode, lexical_weight=weight, glossary=gloss)
            start = time.perf_counter()
            result = score(retriever, cases)
            ms = (time.perf_counter() - start) * 1000 / max(len(cases), 1)
            rows.append((label, result, ms))
        rows.append(("RRF k=60", score(RRF(Retriever(store, mode="dense", glossary=glossary),
                                           Retriever(store, mode="lexical", glossary=glossary)), cases), 0.0))
    print(f"{len(cases)} coach cases from {cases_path.name}, knowledge base {kb_dir} ({len(load_folder(kb_dir).entries)} entries)")
    print(f"{'retrieval':<16} {'hit@1':>6} {'hit@3':>6} {'MRR@5':>6} {'ms/query':>9}")
    for label, r, ms in rows:
        print(f"{label:<16} {r['hit@1']:>6.3f} {r['hit@3']:>6.3f} {r['mrr@5']:>6.3f} {ms:>9.1f}")
    best = max(rows, key=lambda row: (row[1]["mrr@5"], row[1]["hit@3"]))
    print(f"best: {best[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
