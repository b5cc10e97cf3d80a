"""Plan detection, measured: offer precision and recall, and the time phrase read, on a labelled set.

    .venv/bin/python benchmarks/checkins.py --set eval/checkins/plans-team.jsonl [--errors]

Each line is {"text": "...", "plan": true|false, "when": "thursday"|null}. An offer is made when
the detector finds a plan or a request to be checked on; `when` is scored on the plans it found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.checkins.detect import detect_plan  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="path", required=True, type=Path, help="a JSON Lines set of closing turns")
    parser.add_argument("--errors", action="store_true", help="print the turns the detector got wrong")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp = fp = fn = tn = when_right = 0
    errors: list[str] = []
    start = time.perf_counter()
    for row in rows:
        plan = detect_plan(row["text"])
        offered, wanted = plan is not None, bool(row["plan"])
        if offered and wanted:
            tp += 1
            got = plan.when.label if plan.when else None
            if got == row.get("when"):
                when_right += 1
            elif args.errors:
                errors.append(f"when {got!r} != {row.get('when')!r}: {row['text']}")
        elif offered:
            fp += 1
            errors.append(f"false offer: {row['text']}")
        elif wanted:
            fn += 1
            errors.append(f"missed plan: {row['text']}")
        else:
            tn += 1
    elapsed = time.perf_counter() - start
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"set {args.path} · {len(rows)} turns ({tp + fn} with a plan, {fp + tn} without)")
    print(f"offer precision {precision:.3f}  recall {recall:.3f}  (tp {tp}, fp {fp}, fn {fn}, tn {tn})")
    print(f"time phrase right on {when_right}/{tp} plans found ({when_right / tp if tp else 0:.3f})")
    print(f"{elapsed * 1000 / max(len(rows), 1):.3f} ms per turn")
    if args.errors:
        print("\n".join(errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
