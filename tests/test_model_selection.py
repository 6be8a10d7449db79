"""Model selection on labelled clips: NormalOnlyTrainSplit and AnomalyAUCScorer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_validate

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from sk_asd.model_selection import (
    AnomalyAUCScorer,
    NormalOnlyTrainSplit,
    anomaly_auc_scorer,
)
from tests.conftest import FAST

EXAMPLE = Path(__file__).parents[1] / "examples" / "tune_with_labelled_clips.py"


@pytest.fixture
def routing():
    # A context rather than set_config: the setting must not leak into other
    # test modules.
    with sklearn.config_context(enable_metadata_routing=True):
        yield


class CentroidDetector(OutlierMixin, BaseEstimator):
    """Cheap stand-in detector: minus the distance to the machine's mean clip.

    It records the rows it was trained on, so tests can see what a search
    fed to ``fit``.
    """

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        ids = np.zeros(len(X), dtype=int) if y is None else np.asarray(y)
        self.machine_ids_ = np.unique(ids)
        self.centres_ = {m: X[ids == m].mean(axis=0) for m in self.machine_ids_}
        self.trained_on_ = X
        return self

    def decision_function(self, X, machine_ids=None):
        X = np.asarray(X, dtype=float)
        if machine_ids is None:
            return -np.min(
                [np.linalg.norm(X - c, axis=1) for c in self.centres_.values()], axis=0
            )
        return -np.array(
            [np.linalg.norm(x - self.centres_[m]) for x, m in zip(X, machine_ids)]
        )


def vectors(n_normal=8, n_anomalous=4, machines=("a", "b", "c"), seed=0):
    """Feature vectors: anomalies shifted away from their machine's normals.

    Column 0 holds the clip index, so a test can tell which clips an
    estimator saw; the centroid distance ignores it only approximately, which
    is fine for the routing tests that use these.
    """
    rng = np.random.RandomState(seed)
    X, ids, labels = [], [], []
    for k, machine in enumerate(machines):
        for label, n in ((0, n_normal), (1, n_anomalous)):
            X.append(rng.randn(n, 3) + 3.0 * k + 1.5 * label)
            ids += [machine] * n
            labels += [label] * n
    X = np.concatenate(X)
    X = np.column_stack([np.arange(len(X)) * 1e-6, X])
    return X, np.array(ids), np.array(labels)


def hand_mean_auc(decision, ids, labels, max_fpr=None):
    """The DCASE 2020 figure, spelled out: mean over machines of the AUC."""
    aucs = [
        roc_auc_score(labels[ids == m], -decision[ids == m], max_fpr=max_fpr)
        for m in np.unique(ids)
        if 0 < labels[ids == m].sum() < (ids == m).sum()
    ]
    return float(np.mean(aucs))


# ------------------------------------------------------------------ splitter
@pytest.mark.parametrize("n_splits", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("single_machine", [False, True])
def test_split_trains_on_normal_clips_and_validates_every_clip_once(
    n_splits, shuffle, single_machine
):
    X, ids, labels = vectors(n_normal=9, n_anomalous=5)
    y = None if single_machine else ids
    cv = NormalOnlyTrainSplit(
        n_splits, shuffle=shuffle, random_state=0 if shuffle else None
    )
    folds = list(cv.split(X, y, is_anomaly=labels))
    assert len(folds) == cv.get_n_splits() == n_splits
    seen = np.concatenate([test for _, test in folds])
    # Every clip is validated exactly once ...
    np.testing.assert_array_equal(np.sort(seen), np.arange(len(X)))
    for train, test in folds:
        # ... never trained on while validated, and no anomaly is trained on.
        assert np.intersect1d(train, test).size == 0
        assert np.all(labels[train] == 0)
        # The training fold is all the normal clips outside the fold.
        np.testing.assert_array_equal(
            train, np.setdiff1d(np.flatnonzero(labels == 0), test)
        )
        # Both kinds of clips of every machine (of all clips when y is None)
        # are validated, and every validated machine is known from training.
        groups = np.zeros(len(X)) if single_machine else ids
        for m in np.unique(groups):
            assert set(labels[test[groups[test] == m]]) == {0, 1}
            assert np.any(groups[train] == m)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1 + len(np.unique(ids))


def test_split_shuffle_is_seeded_and_changes_the_folds():
    X, ids, labels = vectors()

    def folds(**kwargs):
        cv = NormalOnlyTrainSplit(3, **kwargs)
        return [test.tolist() for _, test in cv.split(X, ids, is_anomaly=labels)]

    assert folds(shuffle=True, random_state=1) == folds(shuffle=True, random_state=1)
    assert folds(shuffle=True, random_state=1) != folds(shuffle=True, random_state=2)
    assert folds(shuffle=True, random_state=1) != folds()


def test_split_requests_is_anomaly_by_default():
    request = NormalOnlyTrainSplit().get_metadata_routing()
    assert request.split.requests == {"is_anomaly": True}
    assert repr(NormalOnlyTrainSplit(3)) == (
        "NormalOnlyTrainSplit(n_splits=3, random_state=None, shuffle=False)"
    )


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([1] * 12, "needs at least 2 normal clips.*has 0"),
        ([0] * 12, "needs at least 2 anomalous clips.*has 0"),
        ([0, 0, 0, 0, 1, 1] + [0, 1, 1, 1, 1, 1], r"\['b'\] have fewer than 2 normal"),
        ([1, -1] * 6, r"only 1 \(anomalous\) and 0 \(normal\).*-1"),
        ([0, 1] * 5, r"one label per clip, shape \(12,\)"),
    ],
)
def test_split_refuses_unusable_labels(labels, match):
    ids = np.array(["a"] * 6 + ["b"] * 6)
    cv = NormalOnlyTrainSplit(2)
    with pytest.raises(ValueError, match=match):
        next(cv.split(np.zeros((12, 1)), ids, is_anomaly=np.array(labels)))


def test_split_warns_when_a_machine_is_too_thin_for_the_folds():
    ids = np.array(["a"] * 8 + ["b"] * 4)
    labels = np.array([0] * 5 + [1] * 3 + [0, 0, 0, 1])
    with pytest.warns(UserWarning, match=r"\['b'\] have fewer than n_splits=3"):
        folds = list(NormalOnlyTrainSplit(3).split(ids, ids, is_anomaly=labels))
    assert len(folds) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_splits": 1}, ValueError, "at least 2"),
        ({"n_splits": 2.5}, ValueError, "integer"),
        ({"shuffle": 1}, TypeError, "True or False"),
        ({"random_state": 0}, ValueError, "shuffle is False"),
    ],
)
def test_splitter_refuses_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        NormalOnlyTrainSplit(**kwargs)


def test_split_without_labels_says_how_to_pass_them(routing):
    with pytest.raises(ValueError, match="routing is enabled; pass is_anomaly"):
        next(NormalOnlyTrainSplit(2).split(np.zeros((4, 1))))


# -------------------------------------------------------------------- scorer
@pytest.fixture(scope="module")
def sounds():
    data = make_machine_sounds(
        n_machines=2,
        n_normal_train=6,
        n_normal_test=4,
        n_anomalous_test=4,
        duration=0.25,
        anomaly_strength=3.0,
        random_state=0,
    )
    X = np.concatenate([data.X_train, data.X_test])
    ids = np.concatenate([data.machine_ids_train, data.machine_ids_test])
    labels = np.concatenate([np.zeros(len(data.X_train), int), data.is_anomaly_test])
    return data, X, ids, labels


@pytest.fixture(scope="module")
def fitted(sounds):
    data = sounds[0]
    return AnomalousSoundDetector(**FAST).fit(data.X_train, data.machine_ids_train)


@pytest.mark.parametrize("max_fpr", [None, 0.1])
def test_scorer_is_the_mean_per_machine_auc_of_minus_decision(fitted, sounds, max_fpr):
    data = sounds[0]
    X, ids, labels = data.X_test, data.machine_ids_test, data.is_anomaly_test
    decision = fitted.decision_function(X, machine_ids=ids)
    expected = hand_mean_auc(decision, ids, labels, max_fpr)
    scorer = anomaly_auc_scorer(max_fpr=max_fpr)
    assert scorer(fitted, X, ids, is_anomaly=labels) == pytest.approx(expected)
    # Machine IDs given as metadata instead of y: the same number.
    assert scorer(fitted, X, is_anomaly=labels, machine_ids=ids) == pytest.approx(
        expected
    )
    if max_fpr is None:
        # Anomalies are the positive class: swapping the labels mirrors the AUC
        # (a scorer that forgot the sign flip would give 1 - expected first).
        flipped = scorer(fitted, X, ids, is_anomaly=1 - labels)
        assert flipped == pytest.approx(1.0 - expected)


def test_scorer_without_machine_ids_scores_all_clips_as_one_group():
    X, ids, labels = vectors()
    det = CentroidDetector().fit(X[labels == 0], ids[labels == 0])
    expected = roc_auc_score(labels, -det.decision_function(X))
    assert AnomalyAUCScorer()(det, X, is_anomaly=labels) == pytest.approx(expected)


def test_scorer_skips_machines_with_one_kind_of_clip():
    X, ids, labels = vectors()
    det = CentroidDetector().fit(X[labels == 0], ids[labels == 0])
    keep = (ids != "c") | (labels == 0)  # machine "c": normal clips only
    expected = hand_mean_auc(
        det.decision_function(X[keep], ids[keep]), ids[keep], labels[keep]
    )
    two = hand_mean_auc(det.decision_function(X, ids), ids, labels)
    score = AnomalyAUCScorer()(det, X[keep], ids[keep], is_anomaly=labels[keep])
    assert score == pytest.approx(expected)
    assert score != pytest.approx(two)
    only_normal = labels == 0
    with pytest.raises(ValueError, match="no machine ID .* has both normal"):
        AnomalyAUCScorer()(
            det, X[only_normal], ids[only_normal], is_anomaly=labels[only_normal]
        )


def test_scorer_refuses_bad_input():
    X, ids, labels = vectors()
    det = CentroidDetector().fit(X, ids)
    scorer = AnomalyAUCScorer()
    with pytest.raises(ValueError, match="y and machine_ids disagree"):
        scorer(det, X, ids, is_anomaly=labels, machine_ids=ids[::-1])
    with pytest.raises(ValueError, match=r"convert with \(labels == -1\)"):
        scorer(det, X, ids, is_anomaly=np.where(labels == 1, -1, 1))
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        scorer(det, X, ids)
    with pytest.raises(ValueError, match="max_fpr"):
        AnomalyAUCScorer(max_fpr=0.0)
    with pytest.raises(ValueError, match="alias"):
        scorer.set_score_request(is_anomaly="not an identifier")
    # The failed call left the requests unchanged.
    assert scorer.get_metadata_routing().score.requests == {
        "is_anomaly": True,
        "machine_ids": True,
    }
    assert repr(anomaly_auc_scorer(max_fpr=0.1)) == "AnomalyAUCScorer(max_fpr=0.1)"


# ------------------------------------------------------------ with routing
def test_cross_validate_routes_labels_to_splitter_and_both_scorers(routing):
    X, ids, labels = vectors()
    scoring = {"auc": anomaly_auc_scorer(), "pauc": anomaly_auc_scorer(max_fpr=0.1)}
    cv = NormalOnlyTrainSplit(3, shuffle=True, random_state=0)
    result = cross_validate(
        CentroidDetector(),
        X,
        ids,
        scoring=scoring,
        cv=cv,
        params={"is_anomaly": labels},
        return_estimator=True,
        return_indices=True,
    )
    folds = list(cv.split(X, ids, is_anomaly=labels))
    for k, (train, test) in enumerate(folds):
        np.testing.assert_array_equal(result["indices"]["train"][k], train)
        # The estimator saw exactly the normal training clips.
        seen = np.rint(result["estimator"][k].trained_on_[:, 0] * 1e6).astype(int)
        np.testing.assert_array_equal(seen, train)
        assert np.all(labels[seen] == 0)
        decision = result["estimator"][k].decision_function(X[test], ids[test])
        for name, max_fpr in (("auc", None), ("pauc", 0.1)):
            assert result[f"test_{name}"][k] == pytest.approx(
                hand_mean_auc(decision, ids[test], labels[test], max_fpr)
            )


def test_aliases_rename_the_routed_labels(routing):
    X, ids, labels = vectors()
    scorer = anomaly_auc_scorer().set_score_request(is_anomaly="labels")
    cv = NormalOnlyTrainSplit(2).set_split_request(is_anomaly="labels")
    renamed = cross_validate(
        CentroidDetector(), X, ids, scoring=scorer, cv=cv, params={"labels": labels}
    )
    plain = cross_validate(
        CentroidDetector(),
        X,
        ids,
        scoring=anomaly_auc_scorer(),
        cv=NormalOnlyTrainSplit(2),
        params={"is_anomaly": labels},
    )
    np.testing.assert_array_equal(renamed["test_score"], plain["test_score"])
    assert np.all(renamed["test_score"] > 0.5)  # anomalies are shifted by 1.5 sd


def test_search_without_routing_says_to_enable_it():
    X, ids, labels = vectors()
    search = GridSearchCV(
        CentroidDetector(), {}, scoring=anomaly_auc_scorer(), cv=NormalOnlyTrainSplit(2)
    )
    with sklearn.config_context(enable_metadata_routing=False):
        with pytest.raises(ValueError, match=r"set_config\(enable_metadata_routing"):
            search.fit(X, ids, is_anomaly=labels)


def test_search_without_labels_says_to_pass_them(routing):
    X, ids, _ = vectors()
    search = GridSearchCV(
        CentroidDetector(), {}, scoring=anomaly_auc_scorer(), cv=NormalOnlyTrainSplit(2)
    )
    with pytest.raises(ValueError, match="pass is_anomaly=... to fit"):
        search.fit(X, ids)


def test_grid_search_picks_margin_by_auc_on_labelled_clips(routing, sounds):
    _, X, ids, labels = sounds
    grid = {"loss_params": [{"margin": 0.1}, {"margin": 0.7}]}
    scorer = anomaly_auc_scorer()
    cv = NormalOnlyTrainSplit(2, shuffle=True, random_state=0)
    search = GridSearchCV(
        AnomalousSoundDetector(**FAST), grid, scoring=scorer, cv=cv, refit=False
    )
    search.fit(X, ids, is_anomaly=labels)
    means = search.cv_results_["mean_test_score"]
    assert search.best_score_ == np.max(means)
    assert search.best_params_ == search.cv_results_["params"][np.argmax(means)]
    # The recorded fold scores are the AUCs of a detector refitted on the
    # fold's normal clips and scored on its labelled clips.
    for k, (train, test) in enumerate(cv.split(X, ids, is_anomaly=labels)):
        assert np.all(labels[train] == 0)
        for i, loss_params in enumerate(grid["loss_params"]):
            det = AnomalousSoundDetector(**FAST, loss_params=loss_params).fit(
                X[train], ids[train]
            )
            expected = scorer(det, X[test], ids[test], is_anomaly=labels[test])
            assert search.cv_results_[f"split{k}_test_score"][i] == pytest.approx(
                expected, abs=1e-12
            )


# ------------------------------------------------------------------- example
@pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"{EXAMPLE} not present")
def test_example_runs_in_quick_mode():
    # One torch thread: with two threads on a loaded two-core machine the
    # tiny networks train more than ten times slower.
    env = {**os.environ, "SK_ASD_EXAMPLE_QUICK": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "rank",
        "margin",
        "mixup_alpha",
        "mean",
        "AUC",
        "std",
        "AUC",
    ]
    assert len(lines) == 1 + 4 + 1  # header, four settings, best params
    assert lines[-1].startswith("best params: {'loss_params': {'margin': ")
