"""Fit the router and the concern detectors, and measure them by grouped cross-validation.

scikit-learn is imported here only: serving reads the saved arrays (`bot.triage.model`).
Folds are grouped by `family`, so no message is tested against a rewording of itself.
Each concern detector's threshold is set on the held-out folds: low enough that every
concern in them that the router would not already escalate is caught (within a floor),
and the false escalations that costs are reported beside the recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.models import Route
from bot.triage.categories import CONCERNS, LEARNED, ROUTE_OF, Category
from bot.triage.features import ngrams, sentences
from bot.triage.model import SENTENCE_BUCKETS, Linear, TriageModel, sentence_bucket

# The lowest a threshold may go: below this a detector fires on ordinary coaching.
THRESHOLD_FLOOR = 0.12
THRESHOLD_CEILING = 0.5
# A sentence's bar may go higher: in a long message some sentence scores high by chance.
SENTENCE_CEILING = 0.8
# ...nor so low that more than this share of held-out messages that are not concerns would fire it.
FALSE_ALARM_BUDGET = 0.03
# Sentence bars take the strictest of these false-alarm budgets that catches every fold concern
# the loosest one does: the sentence detector reads words alone and is the noisier part.
SENTENCE_BUDGETS = (0.005, 0.01, 0.02, FALSE_ALARM_BUDGET)
# A sentence may only escalate a message whose whole-message score reaches this share of the
# lowest whole score among fold concerns that a sentence caught: no fold concern is lost, and a
# long coaching story that the whole-message detector clearly reads as ordinary is not escalated
# for one sentence's words ("a lesson on grooming red flags").
SUPPORT_SHARE = 0.5
FOLDS = 5
ROUTES = (Route.COACH, Route.HELPDESK, Route.INTEGRATOR, Route.OTHER)


@dataclass(frozen=True)
class Hyper:
    """Regularisation (C) of each layer and the weight of the embedding beside the n-grams."""

    router_c: float = 8.0
    detector_c: float = 4.0
    sentence_c: float = 4.0
    embedding_weight: float = 1.0
    min_df: int = 2
    # The sentence detectors also learn from every sentence of messages that are not concerns,
    # since they are applied to sentences: a long coaching story's sentences are negatives.
    sentence_negatives: bool = True


@dataclass
class _Fitted:
    vectorizer: Any
    router: Any
    detectors: dict[Category, Any]
    sentence_detectors: dict[Category, Any]


def _design(vectorizer: Any, texts: Sequence[str], emb: np.ndarray, weight: float) -> Any:
    from scipy import sparse

    return sparse.hstack([sparse.csr_matrix(emb * weight), vectorizer.transform(texts)]).tocsr()


def _fit(texts: Sequence[str], labels: np.ndarray, emb: np.ndarray, hyper: Hyper) -> _Fitted:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=ngrams, min_df=hyper.min_df, sublinear_tf=True, dtype=np.float32)
    text_x = vectorizer.fit_transform(texts)
    x = _design(vectorizer, texts, emb, hyper.embedding_weight)
    router = LogisticRegression(C=hyper.router_c, class_weight="balanced", max_iter=3000)
    router.fit(x, labels)
    detectors, sentence_detectors = {}, {}
    split = [sentences(t) if hyper.sentence_negatives else [] for t in texts]
    for c in CONCERNS:
        y = labels == LEARNED.index(c)
        detectors[c] = LogisticRegression(C=hyper.detector_c, class_weight="balanced", max_iter=3000).fit(x, y)
        extra = [s for parts, positive in zip(split, y) if not positive and len(parts) > 1 for s in parts]
        sent_x, sent_y = text_x, y
        if extra:
            from scipy import sparse

            sent_x = sparse.vstack([text_x, vectorizer.transform(extra)]).tocsr()
            sent_y = np.concatenate([y, np.zeros(len(extra), dtype=bool)])
        sentence_detectors[c] = LogisticRegression(C=hyper.sentence_c, class_weight="balanced",
                                                   max_iter=3000).fit(sent_x, sent_y)
    return _Fitted(vectorizer, router, detectors, sentence_detectors)


def _probabilities(f: _Fitted, texts: Sequence[str], emb: np.ndarray, hyper: Hyper) -> np.ndarray:
    full = np.zeros((len(texts), len(LEARNED)))
    full[:, f.router.classes_] = f.router.predict_proba(_design(f.vectorizer, texts, emb, hyper.embedding_weight))
    return full


@dataclass
class ConcernParts:
    """Out-of-fold detector scores: the whole message, its worst sentence, and its sentence count."""

    whole: np.ndarray  # (n, len(CONCERNS))
    sentence: np.ndarray  # (n, len(CONCERNS)); 0 for one-sentence messages
    count: np.ndarray  # (n,) sentences, 0 when read whole

    def take(self, rows: np.ndarray) -> "ConcernParts":
        """The rows `rows` of each array."""
        return ConcernParts(self.whole[rows], self.sentence[rows], self.count[rows])


@dataclass
class Thresholds:
    """Each concern's bar for the whole message, and for a sentence by message length."""

    whole: list[float]
    sentence: list[tuple[float, ...]]  # per SENTENCE_BUCKETS
    support: list[float] | None = None  # the whole-message score a sentence needs beside it

    def fired(self, parts: ConcernParts) -> np.ndarray:
        """(n, len(CONCERNS)) booleans: the detector fires on the row, as TriageModel.concern_scores."""
        return self.fired_whole(parts) | self.fired_sentence(parts)

    def fired_whole(self, parts: ConcernParts) -> np.ndarray:
        """(n, len(CONCERNS)) booleans: the whole-message detector alone fires."""
        return parts.whole >= np.array(self.whole)

    def fired_sentence(self, parts: ConcernParts) -> np.ndarray:
        """(n, len(CONCERNS)) booleans: a sentence clears its bar, with enough whole-message support."""
        out = np.zeros(parts.whole.shape, dtype=bool)
        multi = parts.count > 1
        if multi.any():
            bucket = np.array([sentence_bucket(int(n)) for n in parts.count[multi]])
            bars = np.array([[t[b] for t in self.sentence] for b in bucket])
            support = np.array(self.support if self.support is not None else [0.0] * len(self.whole))
            out[multi] = (parts.sentence[multi] >= bars) & (parts.whole[multi] >= support)
        return out


def _concern_scores(f: _Fitted, texts: Sequence[str], emb: np.ndarray, hyper: Hyper) -> ConcernParts:
    """Whole-message detector scores and the worst sentence's, as TriageModel.concern_scores reads them."""
    x = _design(f.vectorizer, texts, emb, hyper.embedding_weight)
    parts = [p if len(p) > 1 else [] for p in (sentences(t) for t in texts)]
    flat = [s for p in parts for s in p]
    owner = np.repeat(np.arange(len(texts)), [len(p) for p in parts])
    flat_x = f.vectorizer.transform(flat) if flat else None
    whole = np.zeros((len(texts), len(CONCERNS)))
    worst = np.zeros((len(texts), len(CONCERNS)))
    for j, c in enumerate(CONCERNS):
        whole[:, j] = f.detectors[c].predict_proba(x)[:, 1]
        per = f.sentence_detectors[c].predict_proba(flat_x)[:, 1] if flat else np.zeros(0)
        np.maximum.at(worst[:, j], owner, per)
    return ConcernParts(whole, worst, np.array([len(p) for p in parts]))


def routes_of(probs: np.ndarray, concerns: ConcernParts, thresholds: Thresholds) -> np.ndarray:
    """The route index (into ROUTES) the shipped decision gives each row, rules aside."""
    out = np.empty(len(probs), dtype=np.int64)
    concern_idx = [LEARNED.index(c) for c in CONCERNS]
    fired: np.ndarray = np.asarray(thresholds.fired(concerns).any(axis=1))
    for i, row in enumerate(probs):
        if int(row.argmax()) in concern_idx or fired[i]:
            out[i] = ROUTES.index(Route.INTEGRATOR)
            continue
        sums = np.zeros(len(ROUTES))
        for k, c in enumerate(LEARNED):
            if c not in CONCERNS:
                sums[ROUTES.index(ROUTE_OF[c])] += row[k]
        out[i] = int(sums.argmax())
    return out


def route_report(truth: np.ndarray, predicted: np.ndarray, is_safeguarding: np.ndarray,
                 is_coaching: np.ndarray) -> dict[str, Any]:
    """Per-route precision/recall/F1, macro-F1, safeguarding recall, false escalations per 100 coaching."""
    routes: dict[str, dict[str, float]] = {}
    for k, r in enumerate(ROUTES):
        tp = int(np.sum((truth == k) & (predicted == k)))
        fp = int(np.sum((truth != k) & (predicted == k)))
        fn = int(np.sum((truth == k) & (predicted != k)))
        p = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        routes[r.value] = {"precision": round(p, 3), "recall": round(rec, 3),
                           "f1": round(2 * p * rec / (p + rec), 3) if p + rec else 0.0, "n": int(np.sum(truth == k))}
    integrator = ROUTES.index(Route.INTEGRATOR)
    return {
        "routes": routes,
        "macro_f1": round(float(np.mean([v["f1"] for v in routes.values()])), 3),
        "safeguarding_recall": round(float(np.mean(predicted[is_safeguarding] == integrator)), 3)
        if is_safeguarding.any() else None,
        "false_escalations_per_100_coaching": round(100 * float(np.mean(predicted[is_coaching] == integrator)), 1)
        if is_coaching.any() else None,
        "n": int(len(truth)),
    }


def cross_validate(texts: Sequence[str], labels: np.ndarray, families: Sequence[str], emb: np.ndarray,
                   hyper: Hyper) -> tuple[np.ndarray, ConcernParts]:
    """Out-of-fold router probabilities and concern scores, folds grouped by family."""
    from sklearn.model_selection import GroupKFold

    probs = np.zeros((len(texts), len(LEARNED)))
    concerns = ConcernParts(np.zeros((len(texts), len(CONCERNS))), np.zeros((len(texts), len(CONCERNS))),
                            np.zeros(len(texts), dtype=np.int64))
    text_list = list(texts)
    for train, test in GroupKFold(n_splits=FOLDS).split(text_list, labels, groups=list(families)):
        f = _fit([text_list[i] for i in train], labels[train], emb[train], hyper)
        held = [text_list[i] for i in test]
        probs[test] = _probabilities(f, held, emb[test], hyper)
        part = _concern_scores(f, held, emb[test], hyper)
        concerns.whole[test], concerns.sentence[test], concerns.count[test] = part.whole, part.sentence, part.count
    return probs, concerns


def _bar(need: np.ndarray, ordinary: np.ndarray, ceiling: float) -> tuple[float, float]:
    """Just below the lowest concern still to catch, within [floor, ceiling]; returns (bar, floor)."""
    floor = THRESHOLD_FLOOR
    if len(ordinary):
        floor = max(floor, float(np.quantile(ordinary, 1 - FALSE_ALARM_BUDGET)))
    t = float(need.min()) * 0.98 if len(need) else ceiling
    return min(max(t, floor), ceiling), floor


def set_thresholds(labels: np.ndarray, probs: np.ndarray, concerns: ConcernParts) -> tuple[Thresholds, list[str]]:
    """Per concern: just below the lowest held-out score of a concern the router would not escalate.

    One bar for the whole message and its sentences, set on the higher of the two (within a
    floor); a sentence of a longer message must also clear what a small share of ordinary
    messages of that length (or longer) reach, since more sentences give chance more tries:
    the strictest share in SENTENCE_BUDGETS that misses no more fold concerns than the
    loosest. Returns the bars and a note for each concern they leave uncaught.
    """
    whole, sentence, notes = [], [], []
    support: list[float] = []
    concern_idx = [LEARNED.index(c) for c in CONCERNS]
    caught_by_router = np.isin(probs.argmax(axis=1), concern_idx)
    ordinary = ~np.isin(labels, concern_idx)
    buckets = np.array([sentence_bucket(int(n)) if n > 1 else -1 for n in concerns.count])
    best = np.maximum(concerns.whole, concerns.sentence)
    for j, c in enumerate(CONCERNS):
        open_ = (labels == LEARNED.index(c)) & ~caught_by_router
        t, floor = _bar(best[open_, j], best[ordinary, j], THRESHOLD_CEILING)
        one = ConcernParts(concerns.whole[:, [j]], concerns.sentence[:, [j]], concerns.count)

        def bars_for(budget: float) -> tuple[tuple[float, ...], int]:
            bars: list[float] = []
            for b in range(len(SENTENCE_BUCKETS)):
                longer = concerns.sentence[ordinary & (buckets >= b), j]
                length_floor = float(np.quantile(longer, 1 - budget)) if len(longer) else t
                bars.append(min(max([t, length_floor] + bars), SENTENCE_CEILING))  # longer never lower
            missed = int(np.sum(open_ & ~Thresholds([t], [tuple(bars)]).fired(one)[:, 0]))
            return tuple(bars), missed

        chosen = [bars_for(budget) for budget in SENTENCE_BUDGETS]
        bars, missed = next(b for b in chosen if b[1] <= chosen[-1][1])
        if missed:
            notes.append(f"{c.value}: {missed} held-out concern(s) below the bars (whole {t:.3f}, sentences "
                         f"{', '.join(f'{x:.3f}' for x in bars)}; floor {floor:.3f})")
        whole.append(t)
        sentence.append(bars)
        # Support: lowest whole score among this concern's fold messages that only a sentence caught.
        alone = Thresholds([t], [bars])
        needed = (labels == LEARNED.index(c)) & alone.fired_sentence(one)[:, 0] & ~alone.fired_whole(one)[:, 0]
        support.append(SUPPORT_SHARE * float(concerns.whole[needed, j].min()) if needed.any() else 0.0)
    return Thresholds(whole, sentence, support), notes


def train(texts: Sequence[str], labels: np.ndarray, families: Sequence[str], emb: np.ndarray, digest: str,
          hyper: Hyper = Hyper(), *, folds: bool = True) -> TriageModel:
    """Cross-validate (for thresholds and the report), then fit on everything and export arrays."""
    report: dict[str, Any] = {"examples": len(texts), "families": len(set(families)),
                              "hyper": hyper.__dict__}
    thresholds = Thresholds([THRESHOLD_CEILING * 0.6] * len(CONCERNS),
                            [(THRESHOLD_CEILING * 0.6,) * len(SENTENCE_BUCKETS)] * len(CONCERNS))
    if folds:
        probs, concerns = cross_validate(texts, labels, families, emb, hyper)
        thresholds, notes = set_thresholds(labels, probs, concerns)
        truth = np.array([ROUTES.index(ROUTE_OF[LEARNED[k]]) for k in labels])
        predicted = routes_of(probs, concerns, thresholds)
        report["folds"] = route_report(truth, predicted, labels == LEARNED.index(Category.SAFEGUARDING),
                                       labels == LEARNED.index(Category.COACHING))
        report["folds"]["category_accuracy"] = round(float(np.mean(probs.argmax(axis=1) == labels)), 3)
        report["threshold_notes"] = notes
    f = _fit(texts, labels, emb, hyper)
    vocab = {str(k): int(v) for k, v in f.vectorizer.vocabulary_.items()}
    dim = emb.shape[1]

    def export(model: Any, outputs: int, with_embedding: bool) -> Linear:
        coef = np.asarray(model.coef_, dtype=np.float32)
        bias = np.asarray(model.intercept_, dtype=np.float32)
        if outputs > 1:  # multinomial: place rows by class, absent classes can never win
            full = np.zeros((outputs, coef.shape[1]), np.float32)
            fb = np.full(outputs, -1e4, np.float32)
            full[model.classes_], fb[model.classes_] = coef, bias
            coef, bias = full, fb
        if with_embedding:
            return Linear(coef[:, :dim] * hyper.embedding_weight, coef[:, dim:], bias)
        return Linear(np.zeros((coef.shape[0], 0), np.float32), coef, bias)

    return TriageModel(
        vocabulary=vocab,
        idf=np.asarray(f.vectorizer.idf_, dtype=np.float32),
        router=export(f.router, len(LEARNED), True),
        detectors={c: export(f.detectors[c], 1, True) for c in CONCERNS},
        sentence_detectors={c: export(f.sentence_detectors[c], 1, False) for c in CONCERNS},
        thresholds={c: round(t, 4) for c, t in zip(CONCERNS, thresholds.whole)},
        sentence_thresholds={c: tuple(round(x, 4) for x in t) for c, t in zip(CONCERNS, thresholds.sentence)},
        sentence_support={c: round(x, 4) for c, x in zip(CONCERNS, thresholds.support or [0.0] * len(CONCERNS))},
        digest=digest,
        report=report,
    )
