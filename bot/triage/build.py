"""Load triage at start-up: phrase rules, the corpus, and a model trained on exactly that corpus.

The package ships a model trained on `config/triage-corpus/` and the corpus's sentence
vectors. When a school adds or changes examples the corpus digest changes: only the new
texts are embedded, the model is refitted (seconds) and cached under the new digest in the
data directory, so the next start is instant again. Anything missing or malformed raises
`TriageConfigError`; nothing is silently switched off.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bot.config_files import ConfigFiles
from bot.triage.categories import CONCERNS, LEARNED
from bot.triage.corpus import Example, TriageConfigError, load_corpus_files
from bot.triage.model import TriageModel
from bot.triage.router import Triage
from bot.triage.rules import PhraseRules

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("data")
CORPUS_FOLDER = "triage-corpus"
CORPUS_PATTERN = "*.jsonl"
ENCODINGS = "encodings.npz"

EmbedMany = Callable[[Sequence[str]], np.ndarray]


def text_key(text: str) -> str:
    """The encoding cache's key for one prepared text."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def model_key(model_name: str, prepared: Sequence[str], examples: Sequence[Example]) -> str:
    """Names the trained model: embedding model, prepared texts, labels and families."""
    h = hashlib.sha256(model_name.encode())
    for text, e in zip(prepared, examples):
        h.update(f"\n{e.category.value}\t{e.family}\t{text}".encode())
    return h.hexdigest()[:16]


class EncodingCache:
    """Sentence vectors by text hash: the shipped file first, then the school's own additions."""

    def __init__(self, files: Sequence[Path], writable: Path | None) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.writable = writable
        for path in files:
            if path.exists():
                with np.load(path, allow_pickle=False) as data:
                    self.vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def encode(self, texts: Sequence[str], embed_many: EmbedMany) -> np.ndarray:
        """Vectors for `texts`, embedding (and saving) only the ones not seen before."""
        keys = [text_key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        if todo:
            started = time.monotonic()
            fresh = embed_many([t for _, t in todo])
            for (k, _), v in zip(todo, fresh):
                self.vectors[k] = v.astype(np.float16)
            log.info("triage: embedded %d new example texts in %.1fs", len(todo), time.monotonic() - started)
            if self.writable is not None:
                self.save(self.writable, [k for k, _ in todo])
        return np.stack([self.vectors[k] for k in keys]).astype(np.float32)

    def save(self, path: Path, keys: Sequence[str] | None = None) -> None:
        """Write the given keys (all by default), merged with what the file already holds."""
        keep = dict(self.vectors) if keys is None else {k: self.vectors[k] for k in keys}
        if keys is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                keep = {**dict(zip(data["keys"].tolist(), data["vectors"])), **keep}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, keys=np.array(list(keep), dtype=str),
                            vectors=np.stack(list(keep.values())).astype(np.float16))
        tmp.replace(path)


def training_arrays(examples: Sequence[Example]) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, label indices into `LEARNED`, and families."""
    return ([e.text for e in examples], np.array([LEARNED.index(e.category) for e in examples]),
            [e.family for e in examples])


def shipped_model() -> TriageModel | None:
    """The model the package ships (trained on the default corpus), if present."""
    found = sorted(SHIPPED.glob("model-*.npz"))
    return TriageModel.load(found[-1]) if found else None


def trained_model(examples: Sequence[Example], prepared: Sequence[str], model_name: str,
                  embed_many: EmbedMany, cache_dir: Path | None) -> TriageModel:
    """The model for exactly this corpus: shipped, cached, or fitted now (and cached)."""
    key = model_key(model_name, prepared, examples)
    for folder in (SHIPPED, cache_dir):
        if folder is not None and (folder / f"model-{key}.npz").exists():
            return TriageModel.load(folder / f"model-{key}.npz")
    from bot.triage.training import train  # scikit-learn only when a school's corpus changed

    started = time.monotonic()
    cache = EncodingCache([SHIPPED / ENCODINGS] + ([cache_dir / ENCODINGS] if cache_dir else []),
                          cache_dir / ENCODINGS if cache_dir else None)
    emb = cache.encode(prepared, embed_many)
    texts, labels, families = training_arrays(examples)
    base = shipped_model()
    # A school's additions keep the shipped thresholds (set on held-out folds of the default
    # corpus); without a shipped model the folds are run here to set them.
    model = train(texts, labels, families, emb, key, folds=base is None)
    if base is not None:
        model.thresholds = {c: base.thresholds[c] for c in CONCERNS}
        model.sentence_thresholds = {c: base.sentence_thresholds[c] for c in CONCERNS}
        model.sentence_support = {c: base.sentence_support[c] for c in CONCERNS}
        model.report["thresholds_from"] = base.digest
    log.info("triage: trained on %d examples in %.1fs", len(texts), time.monotonic() - started)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        model.save(cache_dir / f"model-{key}.npz")
    return model


def corpus_files(config: ConfigFiles) -> list[Path]:
    """The corpus files, the school's and the packaged ones merged by name, in name order."""
    return [f.path for f in config.folder(CORPUS_FOLDER, CORPUS_PATTERN)]


def load_triage(config: ConfigFiles | Path, cache_dir: Path | None, *, model_name: str, embed_many: EmbedMany,
                embed_one: Callable[[str], np.ndarray], prepare: Callable[[str], str] = lambda t: t,
                shares_vector: Callable[[str], bool] | None = None) -> Triage:
    """Rules from `triage.yaml`, the corpus from `triage-corpus/`, and the model for them.

    `config` resolves each file (the school's, else the packaged default); a plain folder is read on its own.

    `prepare` turns a message into the text that is embedded (the glossary expansion the shipped
    model was trained on, `bot/triage/ship.py`); any other reading names a different model, fitted
    at start-up. `shares_vector` says for which messages `embed_one` is also the retriever's query
    vector (`Triage.retrieval_vector`).
    """
    if isinstance(config, Path):
        # A whole folder on its own, nothing from the package (benchmarks, tests of one folder).
        config = ConfigFiles(None, defaults=config)
        if not (config.defaults / CORPUS_FOLDER).is_dir():
            raise TriageConfigError(f"{config.defaults / CORPUS_FOLDER}: the triage corpus folder is missing")
    rules = PhraseRules.from_file(config.path("triage.yaml"))
    examples = load_corpus_files(corpus_files(config), CORPUS_FOLDER)
    prepared = [prepare(e.text) for e in examples]
    model = trained_model(examples, prepared, model_name, embed_many, cache_dir)
    return Triage(rules, model, embed_one, shares_vector=shares_vector)


__all__ = ["TriageConfigError", "load_triage", "trained_model", "EncodingCache", "model_key"]
