"""Which ``channels`` rule for two microphones?  Near, far, their mean, each.

On :func:`~sk_asd.datasets.make_machine_sounds` with ``n_channels=2`` (a near
microphone, and a far one with reverberation, delay and more noise, as in
DCASE 2026's stereo recordings), fits ``AnomalousSoundDetector()`` once per
rule on the same clips and prints mean +- std over seeds of the per machine
AUC / pAUC and the fit time.

Usage::

    python benchmarks/bench_channels.py             # 2 seeds
    python benchmarks/bench_channels.py --seeds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sk_asd import AnomalousSoundDetector
from sk_asd.cli.demo import FULL
from sk_asd.datasets import make_machine_sounds
from sk_asd.metrics import auc_pauc

#: The demo's hard setting, 20 training clips per machine (each rule
#: trains once per seed; "each" on twice the clips).
SETTING = dict(
    n_machines=4,
    **{**FULL, "n_normal_train": 20, "n_normal_test": 10, "n_anomalous_test": 10},
    n_channels=2,
)

RULES = {"near (0)": 0, "far (1)": 1, "mean": "mean", "each": "each"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for seed in range(args.seeds):
        d = make_machine_sounds(**SETTING, random_state=seed)
        for name, rule in RULES.items():
            start = time.perf_counter()
            det = AnomalousSoundDetector(channels=rule, random_state=seed)
            det.fit(d.X_train, d.machine_ids_train)
            fit = time.perf_counter() - start
            anomaly = -det.score_samples(d.X_test, d.machine_ids_test)
            per_id = [
                auc_pauc(d.is_anomaly_test[own], anomaly[own])
                for own in (d.machine_ids_test == m for m in d.machine_ids)
            ]
            auc, pauc = np.mean(per_id, axis=0)
            rows.setdefault(name, []).append((auc, pauc, fit))
            print(f"seed {seed} {name:9} AUC {100 * auc:5.1f}", flush=True)
    print(f"\n== two microphones, {args.seeds} seeds: channels rule")
    print(f"{'channels':10} {'AUC %':>14} {'pAUC %':>14} {'fit s':>7}")
    for name, values in rows.items():
        v = np.asarray(values)
        print(
            f"{name:10} {100 * v[:, 0].mean():6.1f} +- {100 * v[:, 0].std():4.1f} "
            f"{100 * v[:, 1].mean():6.1f} +- {100 * v[:, 1].std():4.1f} "
            f"{v[:, 2].mean():7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
