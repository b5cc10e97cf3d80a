"""Grouping questions by meaning: average-linkage clustering by cosine."""

from __future__ import annotations

import numpy as np

MAX_EXACT = 3000  # questions clustered exactly at once (a 3000 x 3000 float32 matrix is 36 MB)


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage agglomerative clustering by cosine, stopping below `threshold`.

    Average linkage (not single) so a topic cannot chain through loosely related questions.
    A merge updates one row of the cluster-similarity matrix by the Lance-Williams rule,
    sim(a+b, c) = (|a| sim(a, c) + |b| sim(b, c)) / (|a| + |b|), and each row caches its best
    partner, so a merge costs O(n), not O(n^2) or O(n d).
    Above `MAX_EXACT` questions, an evenly spread sample is clustered exactly and the rest
    join the cluster they are closest to on average (or are clustered among themselves).
    Clusters come back largest first, members in input order.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n == 0:
        return []
    if n > MAX_EXACT:
        return _cluster_large(vectors, threshold)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    sim = (vectors @ vectors.T).astype(np.float32)
    np.fill_diagonal(sim, -np.inf)
    best_to = sim.argmax(axis=1)
    best_sim = sim[np.arange(n), best_to].astype(np.float64)
    while True:
        a = int(best_sim.argmax())
        if best_sim[a] < threshold:
            break
        b = int(best_to[a])
        row = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])  # -inf stays -inf
        sizes[a] += sizes[b]
        members[a].extend(members[b])
        members[b] = []
        alive[b] = False
        sim[b, :] = -np.inf
        sim[:, b] = -np.inf
        best_sim[b] = -np.inf
        row[b] = -np.inf
        sim[a, :] = row
        sim[:, a] = row
        # Rows that pointed at a or b look again; the rest can only gain `a` as a better partner.
        stale = np.flatnonzero(alive & ((best_to == a) | (best_to == b)))
        stale = np.union1d(stale, [a])
        best_to[stale] = sim[stale].argmax(axis=1)
        best_sim[stale] = sim[stale, best_to[stale]]
        gain = alive & (row > best_sim)
        gain[a] = False
        best_sim[gain] = row[gain]
        best_to[gain] = a
    groups = [sorted(m) for m, live in zip(members, alive) if live]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _cluster_large(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    n = len(vectors)
    seeds = np.unique((np.arange(MAX_EXACT) * (n / MAX_EXACT)).astype(int))
    groups = [[int(seeds[i]) for i in g] for g in cluster(vectors[seeds], threshold)]
    sums = np.vstack([vectors[g].sum(axis=0) for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    is_seed = np.zeros(n, dtype=bool)
    is_seed[seeds] = True
    rest = np.flatnonzero(~is_seed)
    leftovers: list[int] = []
    for start in range(0, len(rest), 1024):
        block = rest[start:start + 1024]
        mean_sim = (vectors[block] @ sums.T) / sizes  # each question's average cosine to each cluster
        best = mean_sim.argmax(axis=1)
        for i, j, s in zip(block, best, mean_sim[np.arange(len(block)), best]):
            (groups[j].append(int(i)) if s >= threshold else leftovers.append(int(i)))
    if leftovers:
        groups += [[leftovers[i] for i in g] for g in cluster(vectors[leftovers], threshold)]
    groups = [sorted(g) for g in groups]
    return sorted(groups, key=lambda g: (-len(g), g[0]))
