"""Rebuild what the package ships for triage: corpus vectors and the model trained on them.

    python -m bot.triage.ship [CONFIG_DIR]

Embeds every corpus text (glossary-expanded, as the retriever embeds a message), runs the
grouped cross-validation that sets the concern thresholds, fits on everything and writes
`bot/triage/data/encodings.npz` and `bot/triage/data/model-<key>.npz`. Prints the fold report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bot.triage.build import CORPUS_FOLDER, ENCODINGS, SHIPPED, EncodingCache, model_key, text_key, training_arrays
from bot.triage.corpus import load_corpus
from bot.triage.training import train
from knowledge.minilm import MiniLMEmbedder
from knowledge.glossary import Glossary


def main(argv: list[str]) -> int:
    """Rebuild the shipped triage data from `config/` (or the folder given)."""
    config_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "config"
    examples = load_corpus(config_dir / CORPUS_FOLDER)
    glossary = Glossary.from_file(config_dir / "tool-glossary.yaml")

    def prepare(text: str) -> str:
        expansion = glossary.expand(text)
        # As knowledge.search.Retriever.expand does.
        return f"{text} ({expansion})" if expansion and not text.endswith(f"({expansion})") else text

    embedder = MiniLMEmbedder()
    prepared = [glossary.expanded(e.text) for e in examples]
    started = time.monotonic()
    cache = EncodingCache([SHIPPED / ENCODINGS], None)
    emb = cache.encode(prepared, embedder.embed)
    print(f"embedded {len(prepared)} texts in {time.monotonic() - started:.0f}s", file=sys.stderr)
    texts, labels, families = training_arrays(examples)
    key = model_key(embedder.name, prepared, examples)
    started = time.monotonic()
    model = train(texts, labels, families, emb, key)
    print(f"cross-validated and trained in {time.monotonic() - started:.0f}s", file=sys.stderr)
    for old in SHIPPED.glob("model-*.npz"):
        old.unlink()
    SHIPPED.mkdir(exist_ok=True)
    model.save(SHIPPED / f"model-{key}.npz")
    # Only the current corpus's vectors ship; edited-away texts are dropped.
    keep = EncodingCache([], None)
    wanted = {text_key(t) for t in prepared}
    keep.vectors = {k: v for k, v in cache.vectors.items() if k in wanted}
    keep.save(SHIPPED / ENCODINGS)
    print(json.dumps(model.report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
