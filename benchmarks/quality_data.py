"""Data sets and simple peers for ``bench_quality.py``.

Every data set is a list of *splits*: normal training clips with machine IDs,
and test clips (normal and anomalous) of the same machines.  The peers are
what a user could install instead of sk_asd: PyOD 3.6's audio detectors and
a per-machine Gaussian on log-band statistics.  All of them are fitted per
machine ID (per machine type where an ID has too few training clips), as
their documentation suggests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sk_asd.cli.demo import FULL as DEMO_DATA
from sk_asd.datasets import load_dcase, make_machine_sounds
from sk_asd.estimator.baseline import LogBandGaussian as PackageGaussian

#: ``../shared/data`` beside the checkout (absent on users' machines).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The hard synthetic setting, the one ``sk-asd demo`` runs: four sibling
#: machines of one model (``machine_spread=0.2``), a loud factory floor
#: (0-10 dB SNR) with a foreign machine's hum and knocks, moderate faults.
HARD_SYNTHETIC = dict(n_machines=4, **DEMO_DATA)

#: The demo's setting (``sk-asd demo``): well separated machines, clear faults.
DEMO_SYNTHETIC = dict(
    n_machines=4,
    n_normal_train=40,
    n_normal_test=20,
    n_anomalous_test=20,
    duration=2.0,
    anomaly_strength=2.0,
)


@dataclass
class Split:
    """One train/test split of a data set."""

    dataset: str
    seed: int
    X_train: np.ndarray
    ids_train: np.ndarray
    X_test: np.ndarray
    ids_test: np.ndarray
    y_test: np.ndarray  # 1 = anomalous
    # Machine type of each machine ID, for the peers' per-type fallback.
    types: dict[str, str] = field(default_factory=dict)


def synthetic_splits(seeds: list[int], setting: dict, name: str) -> Iterator[Split]:
    """One split per seed of :func:`make_machine_sounds` at ``setting``."""
    for seed in seeds:
        d = make_machine_sounds(**setting, random_state=seed)
        yield Split(
            name,
            seed,
            d.X_train,
            d.machine_ids_train,
            d.X_test,
            d.machine_ids_test,
            d.is_anomaly_test,
        )


def _real(folder: str, machine_type: str, split: str):
    root = SHARED_DATA / folder
    if not (root / machine_type / split).is_dir():
        return None
    return load_dcase(root, machine_type, split=split)


def slider_splits(seeds: list[int]) -> Iterator[Split]:
    """The 75 real normal clips of slider ID 00; its test clips of both folders.

    The data are fixed; the seeds only change the detectors' randomness.
    """
    train = _real("dcase2020-more", "slider", "train")
    if train is None:
        return
    tests = [_real(f, "slider", "test") for f in ("dcase2020-more", "dcase2020-mini")]
    tests = [t for t in tests if t is not None]
    keep = [t.machine_ids == "id_00" for t in tests]
    X_test = np.concatenate([t.clips[k] for t, k in zip(tests, keep)])
    y_test = np.concatenate([t.is_anomaly[k] for t, k in zip(tests, keep)])
    for seed in seeds:
        yield Split(
            "real slider ID 00",
            seed,
            train.clips,
            np.asarray(train.machine_ids, dtype=str),
            X_test,
            np.full(len(X_test), "id_00"),
            y_test,
        )


def pooled_dcase_splits(seeds: list[int]) -> Iterator[Split]:
    """All real test clips of both folders, one class per type and ID.

    Two folds over the normal clips of every ID (the split drawn from the
    seed): train on one fold's normal clips, test on the other fold's normal
    clips and every anomalous clip of the ID.
    """
    clips, ids, labels, types = [], [], [], {}
    for folder in ("dcase2020-mini", "dcase2020-more"):
        root = SHARED_DATA / folder
        if not root.is_dir():
            continue
        for machine_type in sorted(p.name for p in root.iterdir() if p.is_dir()):
            d = _real(folder, machine_type, "test")
            if d is None:
                continue
            # ToyCar clips are 11 s: keep the first 10 s, like the others.
            clips.extend(c[:160000] for c in d.clips)
            for m in d.machine_ids:
                ids.append(f"{machine_type}/{m}")
                types[ids[-1]] = machine_type
            labels.extend(d.is_anomaly)
    if not clips:
        return
    X = np.stack([np.pad(c, (0, 160000 - len(c))) for c in clips]).astype(np.float32)
    ids_arr = np.asarray(ids)
    y = np.asarray(labels)
    for seed in seeds:
        rng = np.random.RandomState(seed)
        fold = np.zeros(len(X), dtype=int)
        for m in np.unique(ids_arr):
            own = np.flatnonzero((ids_arr == m) & (y == 0))
            fold[own[rng.permutation(own.size)]] = np.arange(own.size) % 2
        for k in (0, 1):
            train = (y == 0) & (fold == k)
            test = ~train & ((y == 1) | (fold != k))
            # IDs with no training clip in this fold cannot be scored.
            known = np.isin(ids_arr, np.unique(ids_arr[train]))
            test &= known
            yield Split(
                "real DCASE 2020, pooled",
                seed * 2 + k,
                X[train],
                ids_arr[train],
                X[test],
                ids_arr[test],
                y[test],
                types,
            )


# --------------------------------------------------------------------- peers
class LogBandGaussian:
    """sk_asd's :class:`~sk_asd.estimator.baseline.LogBandGaussian` behind
    ``fit`` / ``anomaly`` (the mean and standard deviation of 64 log-mel
    bands per clip, a diagonal Gaussian; anomaly = -log-likelihood)."""

    def fit(self, X: np.ndarray) -> LogBandGaussian:
        self.model_ = PackageGaussian().fit(X)
        return self

    def anomaly(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(X)


class PyODAudio:
    """A PyOD 3.6 audio detector behind ``fit`` / ``anomaly``."""

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make

    def fit(self, X: np.ndarray) -> PyODAudio:
        self.model_ = self.make()
        self.model_.fit([(x, 16000) for x in X])
        return self

    def anomaly(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.decision_function([(x, 16000) for x in X]))


def pyod_peers() -> dict[str, Callable[[], object]]:
    """PyOD's audio detectors, or none when ``pyod[audio]`` is missing."""
    try:
        from pyod.models.audio_ae import AudioAE
        from pyod.models.embedding import EmbeddingOD
    except ImportError:
        return {}
    return {
        "PyOD EmbeddingOD.for_audio('balanced')": lambda: PyODAudio(
            lambda: EmbeddingOD.for_audio("balanced")
        ),
        "PyOD EmbeddingOD.for_audio('fast')": lambda: PyODAudio(
            lambda: EmbeddingOD.for_audio("fast")
        ),
        "PyOD AudioAE": lambda: PyODAudio(lambda: AudioAE(sr=16000, verbose=0)),
    }


#: An ID needs this many training clips for a model of its own; below, the
#: peers pool every training clip of its machine type.
MIN_CLIPS_PER_MODEL = 6


def fit_score_per_machine(make: Callable[[], object], split: Split) -> np.ndarray:
    """Fit one peer per machine ID (per type below the minimum); test scores."""
    scores = np.empty(len(split.X_test))
    for m in np.unique(split.ids_test):
        rows = split.ids_train == m
        if rows.sum() < MIN_CLIPS_PER_MODEL and m in split.types:
            same_type = [k for k, t in split.types.items() if t == split.types[m]]
            rows = np.isin(split.ids_train, same_type)
        model = make().fit(split.X_train[rows])
        own = split.ids_test == m
        scores[own] = model.anomaly(split.X_test[own])
    return scores


def timed(fn: Callable, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start
