"""Attributes as the auxiliary task and domain-aware scoring (DCASE 2021+)."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from sk_asd.io.model import load_model, save_model
from tests.conftest import FAST


@pytest.fixture(scope="module")
def shifted():
    """Two machines with attributes and three target-domain training clips."""
    return make_machine_sounds(
        n_machines=2,
        n_normal_train=10,
        n_normal_test=3,
        n_anomalous_test=3,
        duration=0.25,
        attributes=True,
        n_target_train=3,
        random_state=0,
    )


@pytest.fixture(scope="module")
def fitted(shifted):
    d = shifted
    return AnomalousSoundDetector(**FAST).fit(
        d.X_train,
        d.machine_ids_train,
        attributes=d.attributes_train,
        domains=d.domain_train,
    )


def test_attributes_train_machine_x_attribute_classes(shifted, fitted):
    d = shifted
    pairs = set(zip(d.machine_ids_train.tolist(), d.attributes_train.tolist()))
    assert fitted.class_machine_.size == len(pairs)
    # Every speed copy repeats the machine x attribute classes.
    assert fitted.n_classes_ == len(pairs) * (1 + len(fitted.pseudo_speeds_))
    assert fitted.class_attributes_.tolist() == [a for _, a in sorted(pairs)]
    # Scores and thresholds stay per machine.
    assert fitted.machine_ids_.tolist() == sorted(set(d.machine_ids_train))
    for backend in ("nll", "cosine", "kmeans", "knn", "fusion"):
        det = fitted.set_params(scoring=backend)
        assert det.offset_.shape == (2,)
        scores = det.score_samples(d.X_test, d.machine_ids_test)
        assert np.isfinite(scores).all()
    fitted.set_params(scoring="auto")


def test_target_clips_are_centres_of_their_machine(shifted, fitted):
    d = shifted
    assert fitted.n_target_clips_.tolist() == [3, 3]
    for k, machine in enumerate(fitted.machine_ids_):
        target = (d.domain_train == "target") & (d.machine_ids_train == machine)
        embedded = fitted.transform(d.X_train[target])
        centres = fitted.kmeans_centres_[k]
        # Each target clip is a k-means centre of its own (distance ~0) ...
        assert (1 - (embedded @ centres.T).max(axis=1) < 1e-4).all()
        # ... beside the centres of the source clips.
        assert centres.shape[0] > target.sum()
    plain = AnomalousSoundDetector(**FAST).fit(d.X_train, d.machine_ids_train)
    assert plain.n_target_clips_.tolist() == [0, 0]


def test_target_clips_stay_in_a_full_neighbour_bank(shifted, monkeypatch):
    import sk_asd.estimator.backends as backends

    d = shifted
    monkeypatch.setattr(backends, "MAX_BANK", 5)
    det = AnomalousSoundDetector(**FAST).fit(
        d.X_train, d.machine_ids_train, domains=d.domain_train
    )
    target = (d.domain_train == "target") & (d.machine_ids_train == det.machine_ids_[0])
    embedded = det.transform(d.X_train[target])
    bank = det.knn_bank_[0]
    assert len(bank) == 5
    # Every target clip's embedding is in the bank (nearest distance ~0).
    assert (1 - (embedded @ bank.T).max(axis=1) < 1e-4).all()


def test_machine_ids_alone_are_unchanged_by_the_new_arguments():
    d = make_machine_sounds(
        n_machines=2,
        n_normal_train=6,
        n_normal_test=2,
        n_anomalous_test=2,
        duration=0.25,
        random_state=1,
    )
    a = AnomalousSoundDetector(**FAST).fit(d.X_train, d.machine_ids_train)
    b = AnomalousSoundDetector(**FAST).fit(
        d.X_train, d.machine_ids_train, attributes=None, domains=None
    )
    np.testing.assert_array_equal(
        a.score_samples(d.X_test, d.machine_ids_test),
        b.score_samples(d.X_test, d.machine_ids_test),
    )
    assert a.class_machine_.tolist() == [0, 1]


def test_model_file_round_trip_keeps_attribute_classes(shifted, fitted, tmp_path):
    d = shifted
    path = save_model(fitted, tmp_path / "m.skasd")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.class_machine_, fitted.class_machine_)
    for backend in ("nll", "fusion"):
        fitted.set_params(scoring=backend)
        loaded.set_params(scoring=backend)
        np.testing.assert_array_equal(
            loaded.score_samples(d.X_test, d.machine_ids_test),
            fitted.score_samples(d.X_test, d.machine_ids_test),
        )
    fitted.set_params(scoring="auto")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attributes=["a"] * 3), "attributes"),
        (dict(domains=["source"] * 3), "domains"),
        (dict(domains=["src"] * 20), "'source', 'target'"),
        (dict(attributes=[None] * 20), "None"),
    ],
)
def test_bad_attributes_and_domains_fail_early_by_name(kwargs, message):
    X = np.random.RandomState(0).randn(20, 4000).astype(np.float32) * 0.1
    with pytest.raises(ValueError, match=message):
        AnomalousSoundDetector(**FAST).fit(X, ["m"] * 20, **kwargs)


def test_attributes_route_through_pipeline_and_grid_search(shifted):
    d = shifted
    with sklearn.config_context(enable_metadata_routing=True):
        det = AnomalousSoundDetector(**{**FAST, "max_epochs": 1})
        det.set_fit_request(attributes=True, domains=True)
        pipe = make_pipeline(FunctionTransformer(), det)
        pipe.fit(
            d.X_train,
            d.machine_ids_train,
            attributes=d.attributes_train,
            domains=d.domain_train,
        )
        assert pipe[-1].class_machine_.size > 2
        search = GridSearchCV(
            det,
            {"loss_params": [{"margin": 0.5}, {"margin": 0.7}]},
            cv=StratifiedKFold(2, shuffle=True, random_state=0),
        )
        search.fit(d.X_train, d.machine_ids_train, attributes=d.attributes_train)
        assert search.best_estimator_.class_machine_.size > 2
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
