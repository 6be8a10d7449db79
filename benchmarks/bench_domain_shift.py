"""Domain shift the DCASE 2023+ way: attributes and domain-aware scoring.

On :func:`~sk_asd.datasets.make_machine_sounds` with a target domain (the
same machines at another speed and load, through another microphone, with
only a few training clips there), one run fits, on the same clips:

- ``AnomalousSoundDetector()`` with machine IDs alone;
- the same with ``attributes=`` (machine x attribute classes as the
  auxiliary task), with ``domains=`` (target clips kept whole as neighbours
  and centres), and with both;
- the log-band Gaussian and PyOD 3.6's audio detectors (``pip install
  ".[bench]"``), one per machine on all of its training clips.

It prints, mean +- std over seeds, the official DCASE 2023+ score
(harmonic mean of AUC source, AUC target and pAUC over sections), its
parts, and the share of normal test clips the detector's threshold flags
in each domain.

Usage::

    python benchmarks/bench_domain_shift.py             # 3 seeds
    python benchmarks/bench_domain_shift.py --seeds 2 --no-pyod
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_data import LogBandGaussian, pyod_peers  # noqa: E402

from sk_asd import AnomalousSoundDetector  # noqa: E402
from sk_asd.cli.demo import FULL  # noqa: E402
from sk_asd.datasets import make_machine_sounds  # noqa: E402
from sk_asd.metrics import dcase2021_table  # noqa: E402

#: The demo's hard setting (sibling machines, 0-10 dB SNR, foreign hum and
#: knocks, faults of strength 1) with attributes and a target domain of four
#: training clips per machine (DCASE 2022+: 990 source and 10 target).
SETTING = dict(n_machines=4, **FULL, attributes=True, n_target_train=4)

VARIANTS = {
    "sk_asd defaults, machine IDs only": {},
    "sk_asd defaults + attributes": {"attributes": True},
    "sk_asd defaults + domains": {"domains": True},
    "sk_asd defaults + attributes + domains": {"attributes": True, "domains": True},
}


def official(d, anomaly: np.ndarray) -> dict[str, float]:
    table = dcase2021_table(
        d.is_anomaly_test,
        anomaly,
        None,
        d.machine_ids_test,
        d.domain_test,
        year=2023,
    )
    return {
        key: table.summary[name]
        for key, name in (
            ("score", "score"),
            ("auc_s", "AUC (source)"),
            ("auc_t", "AUC (target)"),
            ("pauc", "pAUC"),
        )
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-pyod", action="store_true")
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, **values: float) -> None:
        for key, value in values.items():
            rows.setdefault(name, {}).setdefault(key, []).append(value)

    for seed in range(args.seeds):
        d = make_machine_sounds(**SETTING, random_state=seed)
        print(
            f"[seed {seed}] {len(d.X_train)} training clips "
            f"({int(np.sum(d.domain_train == 'target'))} target), "
            f"{len(d.X_test)} test clips",
            file=sys.stderr,
            flush=True,
        )
        for name, use in VARIANTS.items():
            start = time.perf_counter()
            det = AnomalousSoundDetector(random_state=seed).fit(
                d.X_train,
                d.machine_ids_train,
                attributes=d.attributes_train if use.get("attributes") else None,
                domains=d.domain_train if use.get("domains") else None,
            )
            fit = time.perf_counter() - start
            anomaly = -det.score_samples(d.X_test, d.machine_ids_test)
            flagged = det.predict(d.X_test, d.machine_ids_test) == -1
            normal = d.is_anomaly_test == 0
            add(
                name,
                **official(d, anomaly),
                fit=fit,
                fa_s=flagged[normal & (d.domain_test == "source")].mean(),
                fa_t=flagged[normal & (d.domain_test == "target")].mean(),
            )
        peers = {"log-band Gaussian": LogBandGaussian}
        if not args.no_pyod:
            peers.update(pyod_peers())
        for name, make in peers.items():
            start = time.perf_counter()
            anomaly = np.empty(len(d.X_test))
            for m in np.unique(d.machine_ids_test):
                model = make().fit(d.X_train[d.machine_ids_train == m])
                own = d.machine_ids_test == m
                anomaly[own] = model.anomaly(d.X_test[own])
            add(name, **official(d, anomaly), fit=time.perf_counter() - start)

    print(
        "\n== domain shift: 4 sibling machines, 40 source + 4 target training "
        f"clips each, hard noise ({args.seeds} seeds); official DCASE 2023+ score"
    )
    print(
        f"{'method':42} {'score %':>12} {'AUC src':>8} {'AUC tgt':>8} "
        f"{'pAUC':>6} {'fit s':>6} {'FA src':>7} {'FA tgt':>7}"
    )
    for name, r in rows.items():
        score = 100 * np.array(r["score"])
        fa = (
            f"{100 * np.mean(r['fa_s']):7.1f} {100 * np.mean(r['fa_t']):7.1f}"
            if "fa_s" in r
            else ""
        )
        print(
            f"{name:42} {score.mean():5.1f} +- {score.std():4.1f} "
            f"{100 * np.mean(r['auc_s']):8.1f} {100 * np.mean(r['auc_t']):8.1f} "
            f"{100 * np.mean(r['pauc']):6.1f} {np.mean(r['fit']):6.1f} {fa}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
