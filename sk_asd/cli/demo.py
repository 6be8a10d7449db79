"""``sk-asd demo``: train on synthetic machine sounds, print DCASE numbers.

The demo is the package's main job on built-in data: it generates normal and
anomalous clips of four similar simulated machines on a noisy factory floor
(:func:`make_machine_sounds` at the hard setting of
``benchmarks/bench_quality.py``), trains ``AnomalousSoundDetector()`` with
its defaults on the normal clips, and prints its per-machine AUC and pAUC
first, the strongest simple baseline (a per-machine Gaussian on log-band
statistics) beside it, chance, and its other back-ends below.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from sk_asd.datasets import make_machine_sounds
from sk_asd.estimator.backends import SCORING_BACKENDS
from sk_asd.estimator.baseline import LogBandGaussian
from sk_asd.estimator.detector import AnomalousSoundDetector
from sk_asd.metrics import auc_pauc

#: The data of the full demo (the hard synthetic setting of
#: ``benchmarks/bench_quality.py``) and of the quick one used by the tests.
FULL = dict(
    n_normal_train=40,
    n_normal_test=20,
    n_anomalous_test=20,
    duration=2.0,
    machine_spread=0.2,
    snr_db=(0.0, 10.0),
    interference=0.5,
    anomaly_strength=1.0,
)
QUICK = dict(n_normal_train=8, n_normal_test=4, n_anomalous_test=4, duration=0.5)
#: Detector settings of the quick demo (the full demo uses the defaults).
QUICK_DETECTOR = dict(n_mels=32, max_epochs=2)


def _per_machine(data, anomaly_score: np.ndarray) -> list[tuple[float, float]]:
    rows = []
    for machine in data.machine_ids:
        own = data.machine_ids_test == machine
        rows.append(auc_pauc(data.is_anomaly_test[own], anomaly_score[own]))
    return rows


def run_demo(
    *,
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    anomaly_strength: float | None = None,
) -> int:
    """Train and evaluate on synthetic data; print a table; return 0.

    Parameters
    ----------
    epochs : int, optional
        Training epochs (default: the detector's ``"auto"``, or 2 with
        ``quick``).
    seed : int, default=0
        Seeds the data and the training.
    quick : bool, default=False
        Tiny settings, for smoke tests.
    anomaly_strength : float, optional
        Strength of the simulated faults (default 1: moderate; 2: clear).

    Returns
    -------
    int
        The exit code, 0.
    """
    cfg = dict(QUICK if quick else FULL)
    if anomaly_strength is not None:
        cfg["anomaly_strength"] = anomaly_strength
    params = dict(QUICK_DETECTOR) if quick else {}
    if epochs is not None:
        params["max_epochs"] = epochs
    start = time.perf_counter()
    data = make_machine_sounds(n_machines=4, **cfg, random_state=seed)
    n_train, n_test = len(data.X_train), len(data.X_test)
    print(
        f"sk-asd demo: {len(data.machine_ids)} similar synthetic machines on a "
        f"noisy factory floor, {n_train} normal training clips, {n_test} test "
        f"clips ({int(data.is_anomaly_test.sum())} anomalous: bearing, "
        f"imbalance, speed drift, rubbing; strength "
        f"{cfg.get('anomaly_strength', 1.0):g}), {cfg['duration']} s at "
        f"{data.sample_rate} Hz"
    )
    detector = AnomalousSoundDetector(
        **params, device="cpu", random_state=seed, verbose=1
    )
    print(
        "training AnomalousSoundDetector() (TASTgram-MFN + Noisy-ArcMix) on the "
        "CPU; progress on stderr...",
        flush=True,
    )
    detector.fit(data.X_train, data.machine_ids_train)
    fit_seconds = time.perf_counter() - start

    default = detector._backend()
    results: dict[str, list[tuple[float, float]]] = {}
    normality = detector.score_samples(data.X_test, machine_ids=data.machine_ids_test)
    results[f"sk_asd defaults (scoring={default!r})"] = _per_machine(data, -normality)
    baseline = LogBandGaussian().fit(data.X_train, data.machine_ids_train)
    normality = baseline.score_samples(data.X_test, machine_ids=data.machine_ids_test)
    results["baseline: log-band Gaussian"] = _per_machine(data, -normality)
    results["chance"] = [(0.5, 0.5)] * len(data.machine_ids)
    for backend in SCORING_BACKENDS:
        if backend == default:
            continue
        # Every back-end is prepared in fit: switching needs no retraining.
        detector.set_params(scoring=backend)
        normality = detector.score_samples(
            data.X_test, machine_ids=data.machine_ids_test
        )
        results[f"  same detector, scoring={backend!r}"] = _per_machine(
            data, -normality
        )
    detector.set_params(scoring="auto")

    header = "".join(f"{m:>14}" for m in data.machine_ids) + f"{'mean':>14}"
    print(
        "\nper-machine AUC / pAUC (%), higher is better. AUC: how often an "
        "anomalous clip scores above a normal one (50 = chance, 100 = always); "
        "pAUC: the same where false alarms stay under 10 %."
    )
    print(f"{'':44}{header}")
    for name, rows in results.items():
        cells = "".join(f"{100 * a:7.1f}/{100 * p:5.1f} " for a, p in rows)
        mean_auc = 100 * np.mean([a for a, _ in rows])
        mean_pauc = 100 * np.mean([p for _, p in rows])
        print(f"{name:44}{cells}{mean_auc:7.1f}/{mean_pauc:5.1f}")
    predicted = detector.predict(data.X_test, machine_ids=data.machine_ids_test)
    flagged = predicted == -1
    normal = data.is_anomaly_test == 0
    print(
        f"\ndecision threshold (defaults): flagged {int(flagged[normal].sum())} of "
        f"{int(normal.sum())} normal test clips (false alarms; the DCASE rule "
        f"aims at 10 %) and {int(flagged[~normal].sum())} of "
        f"{int((~normal).sum())} anomalous ones"
    )
    print(f"done in {time.perf_counter() - start:.0f} s (training {fit_seconds:.0f} s)")
    sys.stdout.flush()
    return 0
