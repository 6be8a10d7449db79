"""Detection quality, side by side: sk_asd's defaults against what a user could
install instead, on the same clips, in one run.

Rows: ``AnomalousSoundDetector()`` with its defaults (``scoring="fusion"``),
the same fitted detector re-scored with its other back-ends, optionally the
paper's recipe (``--paper``), and the peers: PyOD 3.6's ``AudioAE`` and
``EmbeddingOD.for_audio("balanced")`` / ``("fast")`` (``pip install
"sk-asd[bench]"``), and a per-machine diagonal Gaussian on log-mel band
mean/std.  The peers are fitted per machine ID (per machine type where an
ID has fewer than 6 training clips).

Data (see ``quality_data.py``):

- ``synthetic``: :func:`sk_asd.datasets.make_machine_sounds` at hard settings
  (four sibling machines, 0-10 dB SNR, a foreign machine's hum and knocks,
  faults of strength 1), 40 normal training clips per machine, one data set
  per seed;
- ``slider``: the 75 real normal clips of DCASE 2020 slider ID 00 in
  ``../shared/data``, tested on that ID's 6 normal and 6 anomalous clips;
- ``pooled``: every real test clip of ``../shared/data``, one class per type
  and ID, two folds over the normal clips (per seed).

Per machine ID AUC and pAUC (FPR <= 0.1), DCASE convention (anomaly =
positive), averaged over IDs, then mean +- standard deviation over seeds (and
folds).  ``FA`` is the share of held-out *normal* test clips that
``predict`` flags (the DCASE threshold aims at 10 %), ``recall`` the share of
anomalous clips it flags.  Fit and scoring times are seconds per split on
this machine.

Usage::

    python benchmarks/bench_quality.py                  # everything, 3 seeds
    python benchmarks/bench_quality.py --data synthetic --seeds 5
    python benchmarks/bench_quality.py --no-pyod --paper
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_data import (  # noqa: E402
    HARD_SYNTHETIC,
    LogBandGaussian,
    Split,
    fit_score_per_machine,
    pooled_dcase_splits,
    pyod_peers,
    slider_splits,
    synthetic_splits,
)

from sk_asd import AnomalousSoundDetector  # noqa: E402
from sk_asd.estimator.backends import SCORING_BACKENDS  # noqa: E402
from sk_asd.metrics import auc_pauc  # noqa: E402

DEFAULT = "sk_asd AnomalousSoundDetector() (defaults)"
GAUSSIAN = "log-band Gaussian (mean/std of 64 log-mel bands)"


def per_id_auc(split: Split, anomaly: np.ndarray) -> tuple[float, float]:
    """Mean over machine IDs of AUC and pAUC (IDs with both classes)."""
    rows = []
    for m in np.unique(split.ids_test):
        own = split.ids_test == m
        if np.unique(split.y_test[own]).size == 2:
            rows.append(auc_pauc(split.y_test[own], anomaly[own]))
    return tuple(np.mean(rows, axis=0))


class Results:
    """Per method: AUC/pAUC per split, times, false alarms."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list]] = {}

    def add(self, method: str, **values: float) -> None:
        row = self.rows.setdefault(method, {})
        for key, value in values.items():
            row.setdefault(key, []).append(value)

    def print(self, title: str) -> None:
        print(f"\n== {title}")
        print(
            f"{'method':58} {'AUC %':>12} {'pAUC %':>12} {'fit s':>7} "
            f"{'score s':>8} {'FA %':>6} {'recall %':>8}"
        )
        best_peer = (
            max(
                (np.mean(r["auc"]), name)
                for name, r in self.rows.items()
                if not name.startswith("sk_asd")
            )
            if any(not n.startswith("sk_asd") for n in self.rows)
            else None
        )
        for name, r in self.rows.items():
            auc, pauc = 100 * np.array(r["auc"]), 100 * np.array(r["pauc"])
            fa = f"{100 * np.mean(r['fa']):6.1f}" if "fa" in r else f"{'':6}"
            rec = f"{100 * np.mean(r['recall']):8.1f}" if "recall" in r else ""
            print(
                f"{name:58} {auc.mean():5.1f} +- {auc.std():4.1f} "
                f"{pauc.mean():5.1f} +- {pauc.std():4.1f} "
                f"{np.mean(r['fit']):7.1f} {np.mean(r['score']):8.1f} {fa} {rec}"
            )
        print(f"{'chance':58} {50.0:5.1f}         {50.0:5.1f}")
        if best_peer is not None and DEFAULT in self.rows:
            ours = 100 * np.mean(self.rows[DEFAULT]["auc"])
            print(
                f"defaults minus best peer ({best_peer[1]}): "
                f"{ours - 100 * best_peer[0]:+.1f} AUC points"
            )


def run_detector(split: Split, results: Results, paper_epochs: int | None) -> None:
    settings = {"": {}}
    if paper_epochs:
        settings[f", recipe='paper', max_epochs={paper_epochs}"] = {
            "recipe": "paper",
            "max_epochs": paper_epochs,
        }
    for suffix, params in settings.items():
        start = time.perf_counter()
        det = AnomalousSoundDetector(random_state=split.seed, **params)
        det.fit(split.X_train, split.ids_train)
        fit = time.perf_counter() - start
        default = det._backend()
        backends = [default] + [b for b in SCORING_BACKENDS if b != default]
        for backend in backends:
            det.set_params(scoring=backend)
            start = time.perf_counter()
            normality = det.score_samples(split.X_test, machine_ids=split.ids_test)
            score = time.perf_counter() - start
            flagged = (
                det.decision_function(split.X_test, machine_ids=split.ids_test) < 0
            )
            auc, pauc = per_id_auc(split, -normality)
            if suffix == "" and backend == default:
                name = DEFAULT
            else:
                name = f"sk_asd, scoring={backend!r}{suffix}"
            results.add(
                name,
                auc=auc,
                pauc=pauc,
                fit=fit,
                score=score,
                fa=flagged[split.y_test == 0].mean(),
                recall=flagged[split.y_test == 1].mean(),
            )


def run_peers(split: Split, results: Results, use_pyod: bool) -> None:
    peers = {GAUSSIAN: LogBandGaussian}
    if use_pyod:
        peers.update(pyod_peers())
    for name, make in peers.items():
        start = time.perf_counter()
        anomaly = fit_score_per_machine(make, split)
        elapsed = time.perf_counter() - start
        auc, pauc = per_id_auc(split, anomaly)
        # Fit and scoring run per machine together: the time is both.
        results.add(name, auc=auc, pauc=pauc, fit=elapsed, score=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        nargs="+",
        default=["synthetic", "slider", "pooled"],
        choices=["synthetic", "slider", "pooled"],
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per data set")
    parser.add_argument("--no-pyod", action="store_true", help="skip PyOD's peers")
    parser.add_argument(
        "--paper",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also train the paper's recipe for this many epochs",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    seeds = list(range(args.seeds))
    if not args.no_pyod and not pyod_peers():
        print(
            "PyOD is not installed (pip install 'sk-asd[bench]'): its rows are left out"
        )
    sources = {
        "synthetic": (
            "synthetic, hard: 4 sibling machines, 0-10 dB SNR, foreign hum and "
            "knocks, strength 1, 40 normal 2 s training clips each",
            lambda: synthetic_splits(seeds, HARD_SYNTHETIC, "synthetic"),
        ),
        "slider": (
            "real DCASE 2020 slider ID 00: 75 normal 10 s training clips; 6 normal "
            "+ 6 anomalous test clips",
            lambda: slider_splits(seeds),
        ),
        "pooled": (
            "real DCASE 2020 clips pooled (6 types, 24 IDs, 2-8 normal clips per "
            "ID), 2 folds over normal clips",
            lambda: pooled_dcase_splits(seeds),
        ),
    }
    for key in args.data:
        title, splits = sources[key]
        results = Results()
        n = 0
        for split in splits():
            n += 1
            print(
                f"[{key}] split {n}: {len(split.X_train)} training clips, "
                f"{len(split.X_test)} test clips",
                file=sys.stderr,
                flush=True,
            )
            run_detector(split, results, args.paper)
            # Peers are deterministic on fixed data: once is enough there.
            if key != "slider" or n == 1:
                run_peers(split, results, not args.no_pyod)
        if n == 0:
            print(f"\n== {title}\n(skipped: ../shared/data is not there)")
            continue
        results.print(f"{title} ({n} splits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
