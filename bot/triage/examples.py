"""Triage by meaning: a message is compared with the team's example messages per category.

Phrase rules catch what they foresee; teachers word things in ways no rule did. Examples in
config/triage-examples.yaml are embedded once (and cached beside the store), and a new
message's nearest examples vote for a category.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]
CATEGORIES = ("safeguarding", "data_incident", "human_request", "complex", "fault", "account",
              "smalltalk", "out_of_scope", "coaching")


class ExampleIndex:
    """Example messages per category and their vectors."""

    def __init__(self, examples: dict[str, list[str]], embed: Embed, *, model_name: str,
                 cache_dir: Path | None = None, top_k: int = 2) -> None:
        unknown = set(examples) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"triage examples: unknown categories {sorted(unknown)}; use {', '.join(CATEGORIES)}")
        self.labels: list[str] = []
        texts: list[str] = []
        for category, items in examples.items():
            for text in items or []:
                self.labels.append(category)
                texts.append(str(text))
        self.top_k = top_k
        self.vectors = self._vectors(texts, embed, model_name, cache_dir)
        self._labels = np.array(self.labels)

    @classmethod
    def from_file(cls, path: Path, embed: Embed, *, model_name: str, cache_dir: Path | None = None) -> "ExampleIndex":
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must map categories to lists of example messages")
        return cls({str(k): list(v or []) for k, v in data.items()}, embed, model_name=model_name, cache_dir=cache_dir)

    @staticmethod
    def _vectors(texts: list[str], embed: Embed, model_name: str, cache_dir: Path | None) -> np.ndarray:
        key = hashlib.sha256(json.dumps([model_name, texts]).encode()).hexdigest()[:24]
        cache = cache_dir / f"triage-examples-{key}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            try:
                vectors = np.load(cache)
                if vectors.shape[0] == len(texts):
                    return vectors
            except (OSError, ValueError):
                log.warning("ignoring unreadable triage example cache %s", cache)
        vectors = embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, vectors)
            except OSError:
                pass  # a cache is a convenience; a read-only data dir only costs start-up time
        return vectors

    def scores(self, vector: np.ndarray) -> dict[str, float]:
        """Per category, the mean similarity of its `top_k` nearest examples."""
        sims = self.vectors @ vector.astype(np.float32)
        out: dict[str, float] = {}
        for category in set(self.labels):
            values = np.sort(sims[self._labels == category])[::-1][: self.top_k]
            out[category] = float(values.mean()) if len(values) else 0.0
        return out
