"""Import time and Coach.handle latency at 45 and 10,000 entries, with peak memory, in one run.

usage: python benchmarks/scale.py [--entries 10000] [--queries 200]
Each size runs in its own subprocess so peak memory (VmHWM) belongs to that size alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

QUERIES = [
    "how can my year 5s brainstorm together online?", "my kids zone out during slides", "padlett for gr 4",
    "is voice feedback worth trying on essays?", "students copy from chatgpt, what can I do?",
    "how do I start a class podcast?", "what does SAMR substitution mean for my lesson?",
    "can I let newcomers use google translate in science?", "the projector shows no signal in room 12",
    "thanks, that helped!", "how should I organise my google classroom stream?",
    "we want to redesign the whole year 8 unit together", "quick exit ticket ideas for maths",
]


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(size: int, queries: int) -> dict:
    from adapters.wiring import build_runtime, import_folder, open_store
    from bot.models import InboundMessage
    from bot.settings import Settings
    from synthetic import write_folder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = Settings(data_dir=tmp / "data")
        if size <= 100:
            folder = ROOT.parent / "shared" / "eval" / "kb"
            if not folder.is_dir():
                folder = ROOT / "knowledge" / "starter"
        else:
            folder = tmp / "kb"
            write_folder(folder, size)
        store = open_store(settings)
        start = time.perf_counter()
        parsed, report = import_folder(store, settings, folder)
        first_import = time.perf_counter() - start
        start = time.perf_counter()
        _, again = import_folder(store, settings, folder)
        reimport = time.perf_counter() - start
        assert not again.changed, "re-import changed something"
        runtime = build_runtime(settings, auto_starter=False)
        coach = runtime.coach
        for i in range(5):  # warm: model loaded, BM25 index built, SQLite pages cached
            coach.handle(InboundMessage(platform="bench", conversation_id=f"w{i}", user_id="u", text=QUERIES[i]))
        times = []
        for i in range(queries):
            text = QUERIES[i % len(QUERIES)]
            msg = InboundMessage(platform="bench", conversation_id=f"c{i // 3}", user_id="u", text=text)
            t0 = time.perf_counter()
            coach.handle(msg)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return {"entries": len(parsed.entries), "import_s": first_import, "reimport_s": reimport,
                "p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))],
                "max_ms": times[-1], "peak_mb": peak_mb()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--child", type=int, default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.queries)))
        return 0
    rows = []
    for size in (45, args.entries):
        out = subprocess.run([sys.executable, __file__, "--child", str(size), "--queries", str(args.queries)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"Coach.handle on the embedded default (local model warm), {args.queries} messages per size")
    print(f"{'entries':>8} {'import s':>9} {'re-import s':>12} {'re-import %':>12} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'peak MB':>8}")
    for r in rows:
        pct = 100 * r["reimport_s"] / r["import_s"] if r["import_s"] else 0
        print(f"{r['entries']:>8} {r['import_s']:>9.1f} {r['reimport_s']:>12.2f} {pct:>11.1f}% {r['p50_ms']:>7.1f} "
              f"{r['p95_ms']:>7.1f} {r['max_ms']:>7.1f} {r['peak_mb']:>8.0f}")
    print("targets: p95 <= 50 ms at 10,000 entries; re-import <= 5% of first import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
