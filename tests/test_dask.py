"""GridSearchCV on a real Dask cluster gives the results of a local search.

A LocalCluster with two worker processes stands in for a multi-node cluster:
the estimator, the folds and the scorer are pickled, shipped to separate
Python processes and fitted there, which is what happens on remote machines
too.  The test is skipped when ``distributed`` is not installed (it is an
optional dependency).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sk_asd import AnomalousSoundDetector
from tests.conftest import FAST, tiny_clips

distributed = pytest.importorskip("distributed")

#: torch threads each worker process starts with in this test: deliberately
#: not the detector's ``n_threads``, so that the check below can tell them apart.
WORKER_DEFAULT_THREADS = 2
#: The detector's own thread count, used inside fit and scoring.
N_THREADS = 1


def _search() -> GridSearchCV:
    # A larger learning rate than the default, so that two epochs on a few
    # clips already tell the candidates apart (measured: mean validation
    # scores 0.022-0.050, the best one ahead of the next by 0.025).
    return GridSearchCV(
        AnomalousSoundDetector(**{**FAST, "lr": 1e-2, "n_threads": N_THREADS}),
        {
            "loss_params": [
                {"margin": margin, "mixup_alpha": alpha}
                for margin in (0.1, 0.7)
                for alpha in (0.0, 0.5)
            ]
        },
        # Stratified folds: every validated machine ID is known from training
        # (plain cv=2 would train on machine "a" only and validate on "b").
        cv=StratifiedKFold(2),
    )


def test_grid_search_on_a_local_dask_cluster_matches_the_local_search():
    # Defined in here so that cloudpickle ships them by value: the workers
    # need not be able to import this test module.
    def _spy_on_training_threads(default_threads: int) -> None:
        """In a worker: record torch's thread count at every training step."""
        import torch

        from sk_asd.estimator.net import ASDNet

        torch.set_num_threads(default_threads)
        seen: list[int] = []
        original = ASDNet.train_step

        def train_step(self, batch, **fit_params):
            seen.append(torch.get_num_threads())
            return original(self, batch, **fit_params)

        ASDNet.train_step = train_step
        ASDNet._threads_seen_in_test = seen

    def _training_threads_seen() -> tuple[list[int], int]:
        """In a worker: thread counts seen while training, and the count now."""
        import torch

        from sk_asd.estimator.net import ASDNet

        return list(ASDNet._threads_seen_in_test), torch.get_num_threads()

    X, ids = tiny_clips()
    local = _search().fit(X, ids)

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_spy_on_training_threads, WORKER_DEFAULT_THREADS)
        with parallel_config(backend="dask"):
            remote = _search().fit(X, ids)
        per_worker = client.run(_training_threads_seen)

    # Each candidate is fitted with random_state=0 on the same folds, in the
    # same batches and with one torch thread on both sides, so the float32
    # arithmetic is the same: on the machine this was written on the scores
    # agree to the last bit.  The tolerance only leaves room for oneDNN
    # picking another kernel in a worker process (float32 convolutions
    # differ by ~1e-6 relative when the kernel or batch changes), and it is
    # far below the gap between the best candidate and the next, which is
    # checked first so that comparing best_params_ means something.
    local_scores = local.cv_results_["mean_test_score"]
    best, runner_up = np.sort(local_scores)[::-1][:2]
    assert best - runner_up > 1e-4
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local_scores, rtol=1e-6, atol=1e-9
    )
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.best_estimator_.score(X, ids), local.best_estimator_.score(X, ids)
    )

    # The candidates were trained in the worker processes (the refit of the
    # best one runs here), each with the detector's n_threads, not with the
    # worker's own setting, which was restored after every fit.
    seen = [n for steps, _ in per_worker.values() for n in steps]
    assert seen, "no training step ran on a worker"
    assert set(seen) == {N_THREADS}
    assert {now for _, now in per_worker.values()} == {WORKER_DEFAULT_THREADS}
