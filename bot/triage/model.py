"""The learned router and concern detectors, served with numpy alone.

Training (`bot.triage.training`) fits scikit-learn models; what they learned is saved as plain
arrays: the n-gram vocabulary and its idf, and one linear layer per decision over the message
embedding and the n-grams. Serving a message is a sparse dot product, well under a millisecond.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.triage.categories import CONCERNS, LEARNED, Category
from bot.triage.features import CHAR_SIZES, sentences, tokens

FORMAT = 3
# Sentence-detector thresholds by how many sentences a message has (2, 3, 4 or more): the
# worst of more sentences is higher by chance alone, so longer messages need a higher bar.
SENTENCE_BUCKETS = (2, 3, 4)


def sentence_bucket(count: int) -> int:
    """Index into a concern's sentence thresholds for a message of `count` sentences (count >= 2)."""
    return min(max(count, SENTENCE_BUCKETS[0]), SENTENCE_BUCKETS[-1]) - SENTENCE_BUCKETS[0]


@dataclass
class Linear:
    """Scores = emb_weight @ embedding + text_weight @ tfidf + bias (one row per output)."""

    emb: np.ndarray  # (outputs, dim) or (outputs, 0) for a text-only layer
    text: np.ndarray  # (outputs, vocabulary)
    bias: np.ndarray  # (outputs,)

    def scores(self, embedding: np.ndarray | None, features: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Raw scores for one message (`features` = indices and tf-idf values)."""
        idx, val = features
        out = self.bias + (self.text[:, idx] @ val if len(idx) else 0.0)
        if self.emb.shape[1] and embedding is not None:
            out = out + self.emb @ embedding
        return np.asarray(out, dtype=np.float64)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -50 else 0.0


@dataclass(frozen=True)
class ConcernScore:
    """A detector's view of one message: the whole message, or its worst sentence when that is nearer its bar."""

    category: Category
    score: float
    threshold: float
    sentence: str  # the sentence that scored highest, for `coach triage explain`

    @property
    def fired(self) -> bool:
        """At or over the threshold set on held-out folds."""
        return self.score >= self.threshold


@dataclass
class TriageModel:
    """Vocabulary, router and detectors; `digest` names the corpus it was trained on."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    router: Linear
    detectors: dict[Category, Linear]  # whole message: embedding + n-grams
    sentence_detectors: dict[Category, Linear]  # n-grams only, applied to each sentence
    thresholds: dict[Category, float]  # whole-message detectors
    sentence_thresholds: dict[Category, tuple[float, ...]]  # per SENTENCE_BUCKETS
    digest: str
    report: dict[str, Any]
    # The whole-message score a sentence needs beside it to escalate (set on folds, see training).
    sentence_support: dict[Category, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._word_ids: dict[str, tuple[int, ...]] = {}

    def _ids_of_word(self, word: str) -> tuple[int, ...]:
        """A word's unigram and character n-gram feature indices, remembered: words repeat."""
        ids = self._word_ids.get(word)
        if ids is None:
            if len(self._word_ids) > 50_000:
                self._word_ids.clear()
            grams = [f"w:{word}"]
            if len(word) >= 3 and word.isalnum():
                padded = f" {word} "
                grams.extend(f"c:{padded[i:i + n]}" for n in CHAR_SIZES for i in range(len(padded) - n + 1))
            ids = tuple(j for g in grams if (j := self.vocabulary.get(g)) is not None)
            self._word_ids[word] = ids
        return ids

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse tf-idf of `text` (sublinear tf, l2-normalised, as in training).

        The same features as `ngrams(text)`, counted word by word from a cache.
        """
        words = tokens(text)
        counts: Counter[int] = Counter()
        for w in words:
            counts.update(self._ids_of_word(w))
        vocabulary = self.vocabulary
        counts.update(j for a, b in zip(words, words[1:]) if (j := vocabulary.get(f"w:{a} {b}")) is not None)
        return self.tfidf(counts)

    def tfidf(self, counts: Counter[int]) -> tuple[np.ndarray, np.ndarray]:
        """Feature counts to sparse tf-idf: indices and l2-normalised values."""
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        val = (1.0 + np.log(tf)) * self.idf[idx]
        norm = float(np.linalg.norm(val))
        return idx, (val / norm if norm else val).astype(np.float32)

    def route_probabilities(self, embedding: np.ndarray | None, text: str) -> dict[Category, float]:
        """The router's probability for each learned category."""
        raw = self.router.scores(embedding, self.features(text))
        raw = np.exp(raw - raw.max())
        probs = raw / raw.sum()
        return {c: float(p) for c, p in zip(LEARNED, probs)}

    def concern_scores(self, embedding: np.ndarray | None, text: str) -> dict[Category, ConcernScore]:
        """Each concern detector on the whole message, and on each sentence by its words.

        A sentence counts against the bar for messages of that many sentences; the part
        nearest (or furthest over) its bar is the one reported.
        """
        whole = self.features(text)
        parts = sentences(text)
        # A one-sentence message is read whole: its vector says more than its few words.
        split = [self.features(s) for s in parts] if len(parts) > 1 else []
        out: dict[Category, ConcernScore] = {}
        for c in CONCERNS:
            found = ConcernScore(c, _sigmoid(float(self.detectors[c].scores(embedding, whole)[0])),
                                 self.thresholds[c], text)
            if split and found.score >= self.sentence_support.get(c, 0.0):
                bar = self.sentence_thresholds[c][sentence_bucket(len(parts))]
                for part, feats in zip(parts, split):
                    s = _sigmoid(float(self.sentence_detectors[c].scores(None, feats)[0]))
                    if s / bar > found.score / found.threshold:
                        found = ConcernScore(c, s, bar, part)
            out[c] = found
        return out

    # -- files --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the model as one compressed npz (vocabulary in feature order)."""
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        arrays: dict[str, Any] = {
            "vocabulary": np.array(words, dtype=object).astype(str),
            "idf": self.idf.astype(np.float32),
            "meta": np.array(json.dumps({"format": FORMAT, "digest": self.digest, "report": self.report,
                                         "thresholds": {c.value: t for c, t in self.thresholds.items()},
                                         "sentence_thresholds": {c.value: list(t) for c, t in
                                                                 self.sentence_thresholds.items()},
                                         "sentence_support": {c.value: t for c, t in
                                                              self.sentence_support.items()}})),
        }
        for name, layer in [("router", self.router)] + [(f"det_{c.value}", det) for c, det in self.detectors.items()] \
                + [(f"sent_{c.value}", det) for c, det in self.sentence_detectors.items()]:
            arrays[f"{name}_emb"] = layer.emb.astype(np.float32)
            arrays[f"{name}_text"] = layer.text.astype(np.float32)
            arrays[f"{name}_bias"] = layer.bias.astype(np.float32)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TriageModel":
        """Read a model written by `save`; raises ValueError when it is of another format."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: triage model format {meta.get('format')}, expected {FORMAT}")

            def layer(name: str) -> Linear:
                return Linear(data[f"{name}_emb"], data[f"{name}_text"], data[f"{name}_bias"])

            return cls(
                vocabulary={w: i for i, w in enumerate(data["vocabulary"].tolist())},
                idf=data["idf"],
                router=layer("router"),
                detectors={c: layer(f"det_{c.value}") for c in CONCERNS},
                sentence_detectors={c: layer(f"sent_{c.value}") for c in CONCERNS},
                thresholds={Category(k): float(v) for k, v in meta["thresholds"].items()},
                sentence_thresholds={Category(k): tuple(float(x) for x in v)
                                     for k, v in meta["sentence_thresholds"].items()},
                digest=str(meta["digest"]),
                report=meta.get("report", {}),
                sentence_support={Category(k): float(v) for k, v in meta["sentence_support"].items()},
            )
