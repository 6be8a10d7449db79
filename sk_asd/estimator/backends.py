"""Scoring back-ends: anomaly scores computed from embeddings and statistics.

The network is trained once; every back-end here scores with what ``fit``
kept (class centres, k-means centres, training embeddings, clip
statistics), so ``det.set_params(scoring=...)`` switches without retraining.

- ``"nll"``: the paper's cross-entropy of the margin logits (Choi & Choi).
- ``"cosine"``: cosine distance to the machine's class centre.
- ``"kmeans"``: cosine distance to the nearest k-means centre of the
  machine's training embeddings (Wilkinghoff & Kurth, 2024).
- ``"knn"``: cosine distance to the nearest training clip of the machine,
  as the DCASE 2023-2025 systems score.
- ``"fusion"``: ``"knn"`` plus the distances of
  :mod:`sk_asd.estimator.clip_statistics`, each standardised per machine by
  its leave-one-out scores on the training clips, capped at
  :data:`FUSION_CAP` and added up (:func:`fuse`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import t as student_t
from sklearn.cluster import KMeans

from sk_asd.estimator.thresholds import gamma_threshold

__all__ = [
    "FUSED",
    "SCORING_BACKENDS",
    "FUSION_CAP",
    "cosine_knn",
    "domain_neighbour_distance",
    "domain_ratio",
    "flatten_crops",
    "normal_threshold",
    "fuse",
    "nearest_centre_distance",
    "standardisation",
    "unit_rows",
]

#: Every scoring back-end, in the order the tables print them.
SCORING_BACKENDS = ("nll", "cosine", "kmeans", "knn", "fusion")

#: The distances the ``"fusion"`` back-end adds up, in this order.
FUSED = ("knn", "bands", "spectrum", "frames")

#: No single standardised distance adds more than this to a fused score.
#: One component can fail on real data while the others hold: on the real
#: slider of ``bench_quality.py`` a recording-session shift put normal test
#: clips 4-29 standard deviations out on the embedding's kNN distance, but
#: within one on the three statistics, so the plain sum ranked normal clips
#: above faults (AUC 83; capped at 3: 100).  Over seeds on the hard
#: synthetic data the cap cost 0.5 AUC points (83.1 -> 82.6, seed spread
#: 2.7), on pooled real DCASE 2020 clips it gained 8.6 (56.4 -> 65.0).
FUSION_CAP = 3.0

#: Training clips kept per machine as neighbours of the nearest-neighbour
#: scores (a random subset beyond this: a larger bank adds memory to every
#: model file and little to the distance to the nearest clip).
MAX_BANK = 256

#: Training clips a machine needs for the DCASE threshold rule (a gamma fit
#: to its scores); machines with fewer take the pooled normal rule.
MIN_CLIPS_GAMMA = 10


def flatten_crops(embeddings: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(n_clips * n_crops, dim)`` rows and ``n_crops`` (1 for whole clips)."""
    if embeddings.ndim == 3:
        return embeddings.flatten(0, 1), int(embeddings.shape[1])
    return embeddings, 1


def unit_rows(vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float64 numpy (embeddings or centres)."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().double().cpu().numpy()
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def nearest_centre_distance(unit: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Cosine distance of unit vectors (last axis) to the nearest unit centre."""
    return 1.0 - (unit @ centres.T).max(axis=-1)


def cosine_knn(
    query: np.ndarray, bank: np.ndarray, *, leave_one_out: bool = False
) -> np.ndarray:
    """Cosine distance of unit rows to the nearest unit row of ``bank``.

    With ``leave_one_out``, ``query`` is ``bank`` and each row's own entry is
    skipped (a single row has no other: its distance is 0).
    """
    similarity = query @ bank.T
    if leave_one_out:
        if len(bank) == 1:
            return np.zeros(1)
        np.fill_diagonal(similarity, -np.inf)
    return 1.0 - similarity.max(axis=1)


#: ``distance(query, bank, leave_one_out) -> (n_query,)`` nearest distances.
Distance = Callable[[np.ndarray, np.ndarray, bool], np.ndarray]


def _nearest(
    distance: Distance, query: np.ndarray, bank: np.ndarray, loo: bool
) -> np.ndarray:
    if len(bank) == 0 or (loo and len(bank) == 1):
        return np.full(len(query), np.inf)
    return distance(query, bank, loo)


def domain_ratio(distance: Distance, bank: np.ndarray, target: np.ndarray) -> float:
    """How much closer source clips lie to each other than target clips do.

    The mean leave-one-out nearest distance among the source clips over that
    among the target clips (1 when either domain has fewer than two clips).
    A few target clips are sparse neighbours: a new target clip is farther
    from its nearest target clip than a new source clip from its nearest
    source clip, for no fault of its own.  Scaling distances to target clips
    by this ratio treats the two domains alike (in the spirit of the
    per-domain normalisation of DCASE 2023 systems; Wilkinghoff, 2023).
    """
    if target.sum() < 2 or (~target).sum() < 2:
        return 1.0
    source_spread = float(np.mean(distance(bank[~target], bank[~target], True)))
    target_spread = float(np.mean(distance(bank[target], bank[target], True)))
    if source_spread <= 0.0 or target_spread <= 0.0:
        return 1.0
    return float(np.clip(source_spread / target_spread, 0.1, 10.0))


def domain_neighbour_distance(
    distance: Distance,
    query: np.ndarray,
    bank: np.ndarray,
    target: np.ndarray,
    ratio: float,
    *,
    leave_one_out: bool = False,
) -> np.ndarray:
    """Nearest distance to a bank of source and target clips.

    ``min(distance to the nearest source clip, ratio * distance to the
    nearest target clip)`` (:func:`domain_ratio`); the plain nearest distance
    when the bank holds no target clip.  With ``leave_one_out``, ``query`` is
    ``bank`` and each row's own entry is skipped.
    """
    if not target.any():
        return distance(query, bank, leave_one_out)
    source = ~target
    if not leave_one_out:
        return np.minimum(
            _nearest(distance, query, bank[source], False),
            ratio * _nearest(distance, query, bank[target], False),
        )
    out = np.empty(len(bank))
    for own, other, own_ratio, other_ratio in (
        (source, target, 1.0, ratio),
        (target, source, ratio, 1.0),
    ):
        if own.any():
            rows = bank[own]
            out[own] = np.minimum(
                own_ratio * _nearest(distance, rows, rows, True),
                other_ratio * _nearest(distance, rows, bank[other], False),
            )
    # A bank of one clip has no held-out distance (as cosine_knn: 0).
    out[~np.isfinite(out)] = 0.0
    return out


def standardisation(scores: list[np.ndarray], *, prior_clips: int = 4) -> np.ndarray:
    """Location and scale per machine of its held-out training scores.

    Few clips give noisy spreads (three clips of a real DCASE machine gave a
    standard deviation 50x below its neighbours'), and one clip gives no
    held-out score at all (a leave-one-out distance needs a second clip).  So
    each machine's variance is shrunk toward the pooled within-machine
    variance of all machines, as if that had contributed ``prior_clips``
    clips (an empirical-Bayes estimate that leaves machines of many clips
    essentially alone), and a machine with a single clip takes the median
    location of the others.

    Parameters
    ----------
    scores : list of ndarray
        Held-out (leave-one-out or out-of-fold) scores of each machine's
        training clips.
    prior_clips : int, default=4
        Weight of the pooled variance, in clips.

    Returns
    -------
    loc_scale : ndarray of shape (n_machines, 2)
    """
    n = np.array([len(s) for s in scores])
    out = np.empty((len(scores), 2))
    for k, s in enumerate(scores):
        out[k] = np.mean(s), np.var(s, ddof=1) if len(s) > 1 else 0.0
    several = n >= 2
    if several.any():
        out[~several, 0] = np.median(out[several, 0])
        # A machine of one clip: its location is a guess from the others,
        # as uncertain as machines differ.
        between = float(np.var(out[several, 0])) if several.sum() > 1 else 0.0
        # The pooled within-machine variance: every clip beyond a machine's
        # first counts once, whichever machine it belongs to.
        pooled = float(np.sum((n - 1) * out[:, 1]) / np.sum(n - 1))
    else:
        pooled = 0.0
    if pooled <= 0.0:
        # No spread to pool: the size of the locations sets the scale.
        pooled = float(np.mean(np.abs(out[:, 0]))) ** 2
    variance = ((n - 1) * out[:, 1] + prior_clips * pooled) / (n - 1 + prior_clips)
    if several.any():
        variance[~several] += between
    out[:, 1] = np.sqrt(variance)
    # A floor: a component with no spread at all must not dominate the sum.
    out[:, 1] = np.maximum(out[:, 1], 1e-6 * (np.abs(out[:, 0]) + 1e-12))
    return out


def normal_threshold(
    scores: list[np.ndarray], *, quantile: float = 0.9, prior_clips: int = 4
) -> np.ndarray:
    """Per machine, the upper ``quantile`` prediction bound of a new score.

    A normal model of the held-out training scores (:func:`standardisation`),
    widened for what few clips cannot know: the bound of a new observation
    is ``mean + t * scale * sqrt(1 + 1/n)``, with Student's t at ``n - 1 +
    prior_clips`` degrees of freedom (1.28 standard deviations for many
    clips, 2.2 for one).

    Parameters
    ----------
    scores : list of ndarray
        Held-out anomaly scores of each machine's training clips.
    quantile : float, default=0.9
        The DCASE rule's share of normal clips below the threshold.
    prior_clips : int, default=4

    Returns
    -------
    thresholds : ndarray of shape (n_machines,)
    """
    loc_scale = standardisation(scores, prior_clips=prior_clips)
    n = np.array([len(s) for s in scores], dtype=np.float64)
    factor = student_t.ppf(quantile, n - 1 + prior_clips) * np.sqrt(1 + 1 / n)
    return loc_scale[:, 0] + factor * loc_scale[:, 1]


def fuse(
    distances: dict[str, np.ndarray], loc_scale: dict[str, np.ndarray]
) -> np.ndarray:
    """Fused anomaly score of clips of one machine.

    Each distance of :data:`FUSED` is standardised by its ``(location,
    scale)`` for the machine, capped above at :data:`FUSION_CAP` (a robust,
    winsorised late fusion: an outlying component can raise the score but
    not decide it alone), and the results are added in the fixed order of
    :data:`FUSED` (float addition is not associative, and a loaded model's
    dicts may list them in another order).

    Parameters
    ----------
    distances : dict of str to ndarray of shape (n_clips,)
        Raw distances of every name in :data:`FUSED`.
    loc_scale : dict of str to ndarray of shape (2,)
        The machine's location and scale of each distance
        (:func:`standardisation` of its held-out training scores).

    Returns
    -------
    scores : ndarray of shape (n_clips,)
    """
    total = np.zeros_like(np.asarray(distances[FUSED[0]], dtype=np.float64))
    for name in FUSED:
        loc, scale = loc_scale[name]
        total = total + np.minimum((distances[name] - loc) / scale, FUSION_CAP)
    return total


# ---------------------------------------------------------------- k-means
def kmeans_centres(unit: np.ndarray, *, n_clusters: int, seed: int) -> np.ndarray:
    """Unit k-means centres of crop embeddings ``(n_clips, n_crops, dim)``.

    At most ``n_clusters``, and at least four embeddings (clips, or crops)
    per centre: with one centre per clip, every training clip would sit on
    a centre.
    """
    rows = unit.reshape(-1, unit.shape[-1])
    n_centres = max(1, min(n_clusters, len(rows) // 4))
    kmeans = KMeans(n_clusters=n_centres, n_init=3, random_state=seed)
    kmeans.fit(rows)
    return unit_rows(kmeans.cluster_centers_)


def domain_centres(
    unit: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    *,
    n_clusters: int,
    seed: int,
) -> np.ndarray:
    """k-means centres of the ``source`` clips' crops, plus every ``target``
    clip (its crops' mean direction) as a centre of its own.

    A few target clips would hardly move centres fitted to many source
    clips, so new target clips would all sit far from every centre
    (Wilkinghoff's DCASE 2023 system keeps them apart the same way).
    """
    if not source.any():
        source, target = target, np.zeros_like(target)
    centres = kmeans_centres(unit[source], n_clusters=n_clusters, seed=seed)
    if target.any():
        centres = np.concatenate([centres, unit_rows(unit[target].mean(axis=1))])
    return centres


def kmeans_out_of_fold(
    unit: np.ndarray,
    codes: np.ndarray,
    n_machines: int,
    *,
    n_clusters: int,
    seed: int,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """kmeans anomaly scores of the training clips, each from centres fitted
    without it (two folds per machine).

    The final centres were fitted to the training clips themselves, which
    therefore lie closer to them than new normal clips do; a threshold
    fitted to those in-sample distances flagged 15-50 % of held-out normal
    clips in the demo, against 0-10 % with out-of-fold scores.  Machines of
    2-7 clips are scored leave-one-out (in sample, their thresholds flagged
    every new normal clip of real DCASE machines trained on 1-4 clips); a
    single clip keeps its in-sample distance.
    """
    rng = np.random.RandomState(seed)
    if target is None:
        target = np.zeros(len(codes), dtype=bool)
    scores = np.empty(len(codes))
    for k in range(n_machines):
        own = np.flatnonzero(codes == k)
        if own.size < 2:
            folds = [(own, own)]
        elif own.size < 8:
            folds = [
                (own[np.arange(own.size) != i], own[i : i + 1]) for i in range(own.size)
            ]
        else:
            half = rng.permutation(own.size) % 2 == 0
            folds = [(own[~half], own[half]), (own[half], own[~half])]
        for fit_rows, held in folds:
            in_fold = np.zeros(len(codes), dtype=bool)
            in_fold[fit_rows] = True
            centres = domain_centres(
                unit,
                in_fold & ~target,
                in_fold & target,
                n_clusters=n_clusters,
                seed=seed,
            )
            distance = nearest_centre_distance(unit[held], centres)
            scores[held] = distance.mean(axis=1)  # mean over crops
    return scores


# ------------------------------------------------------------- neighbours
def neighbour_banks(
    codes: np.ndarray,
    target: np.ndarray,
    n_machines: int,
    random_state: np.random.RandomState,
) -> list[np.ndarray]:
    """The training clips (sorted indices) that ``"knn"`` and ``"fusion"``
    measure new clips against: at most :data:`MAX_BANK` per machine, drawn at
    random, with every target-domain clip among them (they are few, and a
    new clip of the target conditions has no other close neighbour)."""
    banks = []
    for k in range(n_machines):
        own = np.flatnonzero((codes == k) & ~target)
        keep = np.flatnonzero((codes == k) & target)
        room = max(MAX_BANK - keep.size, 0)
        if own.size > room:
            own = random_state.choice(own, room, replace=False)
        banks.append(np.sort(np.concatenate([own, keep])))
    return banks


# ------------------------------------------------------------- thresholds
def machine_offsets(
    normality: list[np.ndarray], backend: str, contamination: str | float
) -> np.ndarray:
    """Per-machine ``offset_`` of ``backend`` from held-out training scores.

    Parameters
    ----------
    normality : list of ndarray
        Per machine, the normality scores (negated anomaly scores) of its
        training clips, held out where the back-end allows.
    backend : str
        One of :data:`SCORING_BACKENDS`.
    contamination : "auto" or float
        A float takes that quantile of each machine's scores.  ``"auto"``:
        the DCASE rule (:func:`~sk_asd.estimator.thresholds.gamma_threshold`)
        for machines of at least :data:`MIN_CLIPS_GAMMA` clips, and the 90 %
        prediction bound of :func:`normal_threshold` for fewer clips and for
        ``"fusion"`` (sums of standardised distances, possibly negative: no
        gamma distribution).  With fewer clips a machine's own quantile is
        its largest score or noise, which flagged 70-100 % of new normal
        clips of real DCASE machines trained on 1-4 clips.

    Returns
    -------
    offsets : ndarray of shape (n_machines,)
    """
    offsets = np.empty(len(normality))
    if contamination != "auto":
        for k, scores in enumerate(normality):
            offsets[k] = np.percentile(scores, 100.0 * contamination)
        return offsets
    normal_rule = -normal_threshold([-scores for scores in normality])
    if backend == "fusion":
        return normal_rule
    for k, scores in enumerate(normality):
        if len(scores) >= MIN_CLIPS_GAMMA:
            offsets[k] = -gamma_threshold(-scores)
        else:
            offsets[k] = normal_rule[k]
    return offsets
