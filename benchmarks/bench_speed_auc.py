"""Do the speed options change detection quality?  AUC over seeds, fp32 vs fast.

Trains the detector on :func:`make_machine_sounds` (the demo's settings) for
several seeds twice: once in plain float32 with every speed option off, and
once at the default ``speed="auto"`` (bfloat16 autocast where the CPU
supports it, channels-last, the fast PReLU, BatchNorm folding for scoring,
cached log-mels, the retained heap), and once with the log-mel
computed wholly in float64 instead of the default adaptive precision (float32
STFT, float64 where a frame needs it), which is on by default; then bf16
autocast alone, ``speed="fastest"`` (int8 scoring, and torch.compile, which
trains like "all speed options" up to rounding), and
training on random 1 s crops of the 2 s clips (half the compute per epoch;
scores are the mean over two crops).  Prints the
mean AUC / pAUC of every scoring back-end per seed and the mean +- standard
deviation across seeds, so the difference can be read against the seed-to-seed spread.
Usage::

    python benchmarks/bench_speed_auc.py                  # seeds 0 1 2
    python benchmarks/bench_speed_auc.py --seeds 0 1 2 3 4 --epochs 10
    python benchmarks/bench_speed_auc.py --settings "fp32, options off" "1 s crops"
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from sk_asd.estimator.detector import SCORING_BACKENDS
from sk_asd.metrics import auc_pauc

#: Detector settings compared; the engine options are speed levels of
#: sk_asd.estimator.speed (one table), or one option changed on a level.
SETTINGS = {
    "fp32, options off": dict(speed="reference"),
    "all speed options": dict(speed="auto"),  # the default
    "options + int8": dict(speed="fastest"),
    "float64 log-mel": dict(speed={"level": "reference", "stft_precision": "float64"}),
    "bf16 autocast only": dict(speed={"level": "reference", "precision": "auto"}),
    "1 s crops": dict(speed="reference", crop_seconds=1.0),
}


def mean_auc_pauc(data, anomaly_score: np.ndarray) -> tuple[float, float]:
    pairs = [
        auc_pauc(data.is_anomaly_test[own], anomaly_score[own])
        for own in (data.machine_ids_test == m for m in data.machine_ids)
    ]
    return tuple(np.mean(pairs, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS)
    )
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        data = make_machine_sounds(anomaly_strength=args.strength, random_state=seed)
        for name in args.settings:
            options = SETTINGS[name]
            start = time.perf_counter()
            det = AnomalousSoundDetector(
                max_epochs=args.epochs,
                lr=1e-3,
                batch_size=32,
                n_mels=64,
                device="cpu",
                random_state=seed,
                **options,
            ).fit(data.X_train, data.machine_ids_train)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            for backend in SCORING_BACKENDS:
                det.set_params(scoring=backend)
                normality = det.score_samples(data.X_test, data.machine_ids_test)
                auc, pauc = mean_auc_pauc(data, -normality)
                rows.setdefault(f"{name} / {backend}", []).append((auc, pauc))
                print(
                    f"seed {seed} {name:18} {backend:6} AUC {100 * auc:5.1f} "
                    f"pAUC {100 * pauc:5.1f}",
                    flush=True,
                )
    print(
        f"\nmean AUC / pAUC (%) over seeds {args.seeds}, {args.epochs} epochs, "
        f"anomaly strength {args.strength}"
    )
    for name, values in rows.items():
        v = 100 * np.asarray(values)
        print(
            f"{name:32} AUC {v[:, 0].mean():5.1f} +- {v[:, 0].std():4.1f}   "
            f"pAUC {v[:, 1].mean():5.1f} +- {v[:, 1].std():4.1f}"
        )
    for name, total in seconds.items():
        print(f"fit time, {name}: {total:.0f} s in all")


if __name__ == "__main__":
    main()
