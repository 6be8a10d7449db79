"""Ablation: losses x scoring back-ends at a fixed CPU budget.

For every training criterion (softmax, arcface, arcmix, noisy_arcmix,
sub-cluster AdaCos, and Wilkinghoff's options: fixed random centres, a
bias-free network) and several seeds, trains the detector once on
:func:`make_machine_sounds` and scores the test clips with every scoring
back-end (nll, cosine, kmeans: no retraining needed), next to the
mean-log-mel + IsolationForest baseline on the same clips. Prints mean AUC /
pAUC over machines, as mean +- standard deviation across seeds.

With ``--dcase DIR`` (default: ``../shared/data/dcase2020-mini`` when it
exists) the same table is computed on real DCASE 2020 test clips. That folder
has only a few normal clips per machine ID, so the normal clips are split in
two folds: train on one fold (every machine type and ID a class), score the
other fold's normal clips plus all anomalous clips, then swap. The numbers
are from very little training data; read them as a sanity check on real
recordings, not as DCASE results. Usage::

    python benchmarks/bench_ablation.py                 # 3 seeds, 20 epochs
    python benchmarks/bench_ablation.py --seeds 0 1 --epochs 10 --strength 2
    python benchmarks/bench_ablation.py --no-synthetic --variants softmax noisy_arcmix
    python benchmarks/bench_ablation.py --strength 2 --crop-seconds 0.5 --epochs 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import list_machine_types, load_dcase, make_machine_sounds
from sk_asd.estimator.baseline import LogMelIsolationForest
from sk_asd.estimator.detector import SCORING_BACKENDS
from sk_asd.metrics import auc_pauc
from sk_asd.nn.losses import LOSSES

#: Detector settings compared: each loss of sk_asd.nn.losses, and Wilkinghoff's
#: options, keys of loss_params (sk_asd.estimator.loss_params.LOSS_PARAMS).
VARIANTS = {
    **{name: dict(loss=name) for name in LOSSES},
    "noisy_arcmix, fixed centres": dict(
        loss="noisy_arcmix", loss_params={"trainable_centres": False}
    ),
    "adacos, fixed centres, bias-free": dict(
        loss="subcluster_adacos",
        loss_params={"trainable_centres": False, "bias_free": True},
    ),
}
DEFAULT_DCASE = Path(__file__).resolve().parents[2] / "shared/data/dcase2020-mini"


def mean_auc_pauc(data, anomaly_score: np.ndarray) -> tuple[float, float]:
    pairs = [
        auc_pauc(data.is_anomaly_test[own], anomaly_score[own])
        for own in (data.machine_ids_test == m for m in data.machine_ids)
    ]
    return tuple(np.mean(pairs, axis=0))


def evaluate(rows: dict, name: str, det, base, X_train, y_train, X_test, data) -> None:
    """Fit ``det`` and ``base``, add the mean AUC/pAUC of every back-end."""
    if base is not None:
        base.fit(X_train, y_train)
        rows.setdefault("baseline (mean log-mel + IsolationForest)", []).append(
            mean_auc_pauc(data, -base.score_samples(X_test, data.machine_ids_test))
        )
    det.fit(X_train, y_train)
    for backend in SCORING_BACKENDS:
        # Every back-end is prepared in fit: no retraining.
        det.set_params(scoring=backend)
        normality = det.score_samples(X_test, data.machine_ids_test)
        rows.setdefault(f"{name} / {backend}", []).append(
            mean_auc_pauc(data, -normality)
        )


def dcase_folds(root: Path):
    """Two (X_train, y_train, X_test, data) folds of a small DCASE test folder."""
    clips, ids, labels = [], [], []
    for machine_type in list_machine_types(root):
        part = load_dcase(root, machine_type, split="test", target_length=160000)
        clips.append(part.clips[:, :160000])  # 10 s: ToyCar clips are 11 s
        ids += [f"{machine_type}/{m}" for m in part.machine_ids]
        labels.append(part.is_anomaly)
    X, ids, labels = np.concatenate(clips), np.asarray(ids), np.concatenate(labels)
    # Alternate the normal clips of each ID between the folds.
    fold = np.zeros(len(ids), dtype=int)
    for m in np.unique(ids):
        normal = np.flatnonzero((ids == m) & (labels == 0))
        fold[normal[1::2]] = 1
    for k in (0, 1):
        train = (labels == 0) & (fold == k)
        test = ~train
        known = np.isin(ids, np.unique(ids[train]))
        test &= known
        # AUC needs both classes: IDs without anomalous clips are left out.
        scored = [
            m
            for m in np.unique(ids[test])
            if len(np.unique(labels[test][ids[test] == m])) == 2
        ]
        data = Bunch(
            machine_ids_test=ids[test],
            is_anomaly_test=labels[test],
            machine_ids=np.array(scored),
        )
        yield X[train], ids[train], X[test], data


def print_table(rows: dict, title: str) -> None:
    print(f"\n{title}")
    for name, values in rows.items():
        v = 100 * np.asarray(values)
        print(
            f"{name:50} AUC {v[:, 0].mean():5.1f} +- {v[:, 0].std():4.1f}   "
            f"pAUC {v[:, 1].mean():5.1f} +- {v[:, 1].std():4.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--n-mels", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--crop-seconds",
        type=float,
        default=None,
        help="train on random crops of this length (the demo uses 0.5 with 60 "
        "epochs); default: whole clips",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--dcase", type=Path, default=DEFAULT_DCASE)
    parser.add_argument("--dcase-epochs", type=int, default=10)
    args = parser.parse_args()

    def detector(name: str, seed: int, epochs: int) -> AnomalousSoundDetector:
        return AnomalousSoundDetector(
            max_epochs=epochs,
            lr=args.lr,
            n_mels=args.n_mels,
            batch_size=32,
            crop_seconds=args.crop_seconds,
            device="cpu",
            random_state=seed,
            **VARIANTS[name],
        )

    start = time.perf_counter()
    if not args.no_synthetic:
        rows: dict[str, list[tuple[float, float]]] = {}
        for seed in args.seeds:
            data = make_machine_sounds(
                anomaly_strength=args.strength,
                machine_spread=args.spread,
                random_state=seed,
            )
            for i, name in enumerate(args.variants):
                base = (
                    None
                    if i
                    else LogMelIsolationForest(n_mels=args.n_mels, random_state=seed)
                )
                evaluate(
                    rows,
                    name,
                    detector(name, seed, args.epochs),
                    base,
                    data.X_train,
                    data.machine_ids_train,
                    data.X_test,
                    data,
                )
                print(
                    f"seed {seed} {name}: done at {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        print_table(
            rows,
            f"synthetic: mean AUC / pAUC (%) over 4 machines, mean +- std over "
            f"seeds {args.seeds}; {args.epochs} epochs, lr {args.lr}, "
            f"{args.n_mels} mels, anomaly strength {args.strength}, machine "
            f"spread {args.spread}"
            + (f", random {args.crop_seconds:g} s crops" if args.crop_seconds else ""),
        )
    if args.dcase is not None and args.dcase.is_dir():
        rows = {}
        for k, (X_train, y_train, X_test, data) in enumerate(dcase_folds(args.dcase)):
            for i, name in enumerate(args.variants):
                base = (
                    None
                    if i
                    else LogMelIsolationForest(n_mels=args.n_mels, random_state=0)
                )
                evaluate(
                    rows,
                    name,
                    detector(name, 0, args.dcase_epochs),
                    base,
                    X_train,
                    y_train,
                    X_test,
                    data,
                )
                print(
                    f"dcase fold {k} {name}: done at "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        print_table(
            rows,
            f"{args.dcase.name}: mean AUC / pAUC (%) over machine IDs, mean +- std "
            f"over the 2 folds; {args.dcase_epochs} epochs, seed 0",
        )


if __name__ == "__main__":
    main()
