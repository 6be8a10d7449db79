"""Do the speed levels change detection quality?  AUC over seeds, fp32 vs fast.

Trains the detector with its default recipe (0.5 s crops, pseudo speed IDs,
the fused score) on :func:`make_machine_sounds` at the hard setting of the
demo and ``bench_quality.py`` for several seeds, once per setting: plain
float32 with every speed option off (``speed="reference"``), the default
``speed="auto"`` (bfloat16 autocast where the CPU supports it, channels-last,
the fast PReLU, BatchNorm folding for scoring, cached log-mels, the retained
heap), ``speed="fastest"`` (torch.compile and int8 scoring), the log-mel
wholly in float64, bf16 autocast alone, and whole clips instead of crops.
Prints the mean AUC / pAUC of every scoring back-end per seed and the mean
+- standard deviation across seeds, so that a difference can be read against
the seed-to-seed spread.

Usage::

    python benchmarks/bench_speed_auc.py                  # seeds 0 1 2
    python benchmarks/bench_speed_auc.py --settings "fp32, options off" \
        "all speed options"
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sk_asd import AnomalousSoundDetector
from sk_asd.cli.demo import FULL
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
    "whole clips": dict(speed="reference", crop_seconds=None),
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
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: the recipe's (auto)"
    )
    parser.add_argument(
        "--data",
        choices=("hard", "demo-easy"),
        default="hard",
        help="hard: the demo's (and bench_quality's) hard synthetic setting; "
        "demo-easy: make_machine_sounds' defaults at anomaly strength 2",
    )
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS)
    )
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        if args.data == "hard":
            data = make_machine_sounds(n_machines=4, **FULL, random_state=seed)
        else:
            data = make_machine_sounds(anomaly_strength=2.0, random_state=seed)
        for name in args.settings:
            options = SETTINGS[name]
            start = time.perf_counter()
            # The default recipe (0.5 s crops, pseudo speed IDs, fusion).
            det = AnomalousSoundDetector(
                max_epochs="auto" if args.epochs is None else args.epochs,
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
        f"\nmean AUC / pAUC (%) over seeds {args.seeds}, "
        f"{args.epochs or 'auto'} epochs, {args.data} data"
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
