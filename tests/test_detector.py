"""AnomalousSoundDetector: API contract, input checks, persistence, model selection."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from sk_asd import AnomalousSoundDetector
from tests.conftest import FAST, tiny_clips


@pytest.fixture(scope="module")
def data():
    return tiny_clips()


@pytest.fixture(scope="module")
def fitted(data):
    X, ids = data
    return AnomalousSoundDetector(**FAST).fit(X, ids)


def test_fitted_attributes(fitted, data):
    X, _ = data
    assert list(fitted.machine_ids_) == ["a", "b"]
    assert fitted.n_features_in_ == X.shape[1]
    assert fitted.offset_.shape == (2,)
    # Every machine and its four speed-changed copies (recipe "auto").
    assert fitted.pseudo_speeds_ == (0.9, 0.95, 1.05, 1.1)
    assert fitted.n_classes_ == 2 * 5
    assert fitted.max_epochs_ == FAST["max_epochs"]
    assert (fitted.lr_, fitted.crop_seconds_, fitted._backend()) == (
        1e-3,
        0.5,
        "fusion",
    )
    assert len(fitted.net_.history) == FAST["max_epochs"]


def test_scores_decision_and_predict_are_consistent(fitted, data):
    X, ids = data
    scores = fitted.score_samples(X, machine_ids=ids)
    decision = fitted.decision_function(X, machine_ids=ids)
    codes = np.searchsorted(fitted.machine_ids_, ids)
    np.testing.assert_allclose(decision, scores - fitted.offset_[codes])
    labels = fitted.predict(X, machine_ids=ids)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))
    # A cross-entropy and cosine distances: normality is never positive
    # (the fusion's standardised sums can be either sign).
    for backend in ("nll", "cosine", "kmeans", "knn"):
        det = clone(fitted).set_params(scoring=backend)
        det.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
        assert (det.score_samples(X, machine_ids=ids) <= 1e-12).all()


def test_without_machine_ids_a_clip_gets_its_best_match(fitted, data):
    X, _ = data
    per_id = np.stack(
        [fitted.score_samples(X, machine_ids=[m] * len(X)) for m in ["a", "b"]]
    )
    np.testing.assert_allclose(fitted.score_samples(X), per_id.max(axis=0))


def test_scores_do_not_depend_on_the_batch(fitted, data):
    X, ids = data
    together = fitted.score_samples(X, machine_ids=ids)
    alone = [
        fitted.score_samples(X[i : i + 1], machine_ids=ids[i : i + 1])
        for i in range(len(X))
    ]
    np.testing.assert_allclose(np.concatenate(alone), together, rtol=1e-5, atol=1e-5)


def test_unknown_machine_id_lists_the_known_ones(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match=r"Unknown machine ID.*'c'.*\['a', 'b'\]"):
        fitted.score_samples(X[:2], machine_ids=["a", "c"])


def test_cross_validation_with_plain_kfold_gives_a_number(data):
    # Clips sorted by machine: an unshuffled KFold tests each fold on a
    # machine its training fold never saw.  score() then uses the best
    # match, with a warning saying how to split, instead of a NaN.
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

    X, ids = data
    order = np.argsort(ids, kind="stable")
    X, ids = X[order], ids[order]
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 1})
    with pytest.warns(UserWarning, match="not seen in fit.*StratifiedKFold"):
        scores = cross_val_score(det, X, ids, cv=KFold(2), error_score="raise")
    assert scores.shape == (2,) and np.isfinite(scores).all()
    search = GridSearchCV(
        det, {"loss_params": [{"margin": 0.5}]}, cv=KFold(2), error_score="raise"
    )
    with pytest.warns(UserWarning, match="not seen in fit"):
        search.fit(X, ids)
    assert np.isfinite(search.best_score_)


def test_same_seed_same_scores_other_seed_other_scores(data):
    X, ids = data
    a = AnomalousSoundDetector(**FAST).fit(X, ids).score_samples(X, ids)
    b = AnomalousSoundDetector(**FAST).fit(X, ids).score_samples(X, ids)
    c = AnomalousSoundDetector(**{**FAST, "random_state": 1}).fit(X, ids)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c.score_samples(X, ids))


def test_fit_does_not_touch_the_global_torch_seed(data):
    import torch

    X, ids = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    AnomalousSoundDetector(**FAST).fit(X, ids)
    torch.testing.assert_close(torch.rand(3), expected)


def test_fit_predict_uses_the_machine_ids(data):
    X, ids = data
    det = AnomalousSoundDetector(**FAST)
    got = det.fit_predict(X, ids)
    np.testing.assert_array_equal(got, det.predict(X, machine_ids=ids))


def test_single_machine_trains_with_pseudo_ids(data):
    X, _ = data
    det = AnomalousSoundDetector(**FAST).fit(X)
    assert det.n_classes_ == 5  # the recipe's four speed copies
    assert det.machine_ids_.shape == (1,)
    assert np.isfinite(det.score_samples(X)).all()
    # The paper's recipe adds none, but one machine alone still gets two.
    paper = AnomalousSoundDetector(**{**FAST, "recipe": "paper"}).fit(X)
    assert paper.pseudo_speeds_ == (0.9, 1.1)
    assert paper.n_classes_ == 3


def test_float_contamination_sets_the_training_outlier_fraction(data):
    X, ids = data
    # In-sample scores (nll): knn and fusion score their training clips
    # leave-one-out for the threshold, see the test below.
    det = AnomalousSoundDetector(
        **{**FAST, "contamination": 0.25, "scoring": "nll"}
    ).fit(X, ids)
    labels = det.predict(X, machine_ids=ids)
    for machine in ["a", "b"]:
        # 6 clips per machine: the 25th percentile leaves 1 or 2 below it.
        assert 1 <= (labels[ids == machine] == -1).sum() <= 2


def test_gamma_threshold_flags_about_ten_percent(data):
    X, ids = tiny_clips(n_per_machine=20)
    det = AnomalousSoundDetector(**{**FAST, "scoring": "nll"}).fit(X, ids)
    flagged = (det.predict(X, machine_ids=ids) == -1).mean()
    assert 0.0 < flagged < 0.3


@pytest.mark.parametrize("backend", ["knn", "fusion"])
def test_neighbour_thresholds_hold_on_new_normal_clips(backend):
    """knn and fusion set their thresholds on leave-one-out training scores,
    so new normal clips, not the training clips, are flagged about 10 %."""
    X, ids = tiny_clips(n_per_machine=40, seed=1)
    det = AnomalousSoundDetector(**{**FAST, "scoring": backend}).fit(X, ids)
    X_new, ids_new = tiny_clips(n_per_machine=40, seed=2)
    flagged = (det.predict(X_new, machine_ids=ids_new) == -1).mean()
    assert 0.02 <= flagged <= 0.3
    # The training clips are their own nearest neighbours: in sample they
    # look more normal than new clips.
    assert (det.predict(X, machine_ids=ids) == -1).mean() <= flagged


def test_validation_fraction_keeps_the_best_epoch(data):
    X, ids = data
    det = AnomalousSoundDetector(
        **{**FAST, "max_epochs": 3, "validation_fraction": 0.25}
    )
    det.fit(X, ids)
    valid = det.net_.history[:, "valid_loss"]
    callback = dict(det.net_.callbacks_)["restore_best"]
    assert callback.best_epoch_ == int(np.argmin(valid)) + 1
    assert callback.best_state_ is None  # loaded, then dropped


def test_short_and_odd_length_clips_fit_and_score():
    rng = np.random.RandomState(0)
    X = rng.randn(6, 300).astype(np.float32) * 0.1
    det = AnomalousSoundDetector(**FAST).fit(X, [0, 0, 0, 1, 1, 1])
    assert np.isfinite(det.score_samples(X)).all()


def test_int16_pcm_is_read_as_float(data):
    X, ids = data
    det = AnomalousSoundDetector(**FAST).fit(X, ids)
    pcm = np.round(X * 32768).clip(-32768, 32767).astype(np.int16)
    np.testing.assert_allclose(
        det.score_samples(pcm, ids),
        det.score_samples(pcm.astype(np.float32) / 32768, ids),
        rtol=1e-6,
    )


def test_input_is_not_modified(data):
    X, ids = data
    X_copy, ids_copy = X.copy(), ids.copy()
    AnomalousSoundDetector(**FAST).fit(X, ids).score_samples(X, ids)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(ids, ids_copy)


@pytest.mark.parametrize(
    ("make_bad", "match"),
    [
        (lambda X: np.where(np.arange(X.shape[1]) == 5, np.nan, X), "NaN or inf"),
        (lambda X: np.where(np.arange(X.shape[1]) == 5, np.inf, X), "NaN or inf"),
        (lambda X: np.stack([X, X], axis=-1), "multichannel"),
        (lambda X: X[0], "single clip"),
        (lambda X: [X[0], X[1][:100]], "different lengths"),
        (lambda X: X[:0], "0 sample"),
        (lambda X: X[:, :0], "0 feature"),
    ],
)
def test_bad_waveforms_are_explained(make_bad, match, data):
    X, _ = data
    with pytest.raises(ValueError, match=match):
        AnomalousSoundDetector(**FAST).fit(make_bad(X))


def test_mismatched_machine_ids_are_explained(data):
    X, ids = data
    with pytest.raises(ValueError, match="12 clips but y .* has 11 labels"):
        AnomalousSoundDetector(**FAST).fit(X, ids[:-1])


def test_wrong_clip_length_at_scoring_says_how_to_fix(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="pad or crop"):
        fitted.score_samples(X[:, :-10])


def test_one_clip_is_not_enough():
    with pytest.raises(ValueError, match="at least 2 training clips"):
        AnomalousSoundDetector(**FAST).fit(np.zeros((1, 4000)))


def test_invalid_parameters_are_rejected(data):
    X, ids = data
    with pytest.raises(InvalidParameterError, match="margin"):
        AnomalousSoundDetector(loss_params={"margin": -0.1}).fit(X, ids)
    with pytest.raises(InvalidParameterError, match="loss"):
        AnomalousSoundDetector(loss="triplet").fit(X, ids)


@pytest.mark.parametrize(
    "loss_params, message",
    [
        ({"margin": -0.1}, r"loss_params\['margin'\] must be a float in the range"),
        ({"margin": 2.0}, r"loss_params\['margin'\].*got 2.0"),
        ({"margin": "wide"}, r"loss_params\['margin'\]"),
        ({"scale": 0}, r"loss_params\['scale'\]"),
        ({"mixup_alpha": -1}, r"loss_params\['mixup_alpha'\]"),
        ({"trainable_centres": 1}, r"loss_params\['trainable_centres'\].*bool"),
        ({"n_subclusters": 0}, r"loss_params\['n_subclusters'\]"),
        ({"n_subclusters": 2.0}, r"loss_params\['n_subclusters'\].*int"),
        ({"bias_free": "yes"}, r"loss_params\['bias_free'\]"),
        ({"margn": 0.5}, r"unknown key 'margn'.*'margin', 'scale'"),
    ],
)
def test_bad_loss_params_fail_before_training_naming_the_key(
    data, loss_params, message, monkeypatch
):
    X, ids = data

    def no_training(*args, **kwargs):
        raise AssertionError("the network was built before loss_params was checked")

    monkeypatch.setattr(AnomalousSoundDetector, "_build_net", no_training)
    monkeypatch.setattr(AnomalousSoundDetector, "_resolve_recipe", no_training)
    det = AnomalousSoundDetector(**FAST, loss_params=loss_params)
    with pytest.raises(InvalidParameterError, match=message):
        det.fit(X, ids)
    assert not hasattr(det, "loss_params_")
    # Not a dict at all: the constructor parameter's own check.
    with pytest.raises(InvalidParameterError, match="loss_params"):
        AnomalousSoundDetector(loss_params=[("margin", 0.5)]).fit(X, ids)


def test_loss_params_resolve_with_defaults_and_reach_the_network(data):
    import torch

    from sk_asd.estimator.loss_params import LOSS_PARAMS

    X, ids = data
    assert AnomalousSoundDetector().loss_params is None
    given = {"margin": 0.5, "mixup_alpha": 0.0, "bias_free": True}
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 1}, loss_params=given)
    det.fit(X, ids)
    assert given == {"margin": 0.5, "mixup_alpha": 0.0, "bias_free": True}
    assert det.get_params()["loss_params"] is given  # not copied, not mutated
    assert det.loss_params_ == {**LOSS_PARAMS, **given}
    criterion = det.net_.criterion_
    assert (criterion.margin, criterion.scale) == (0.5, LOSS_PARAMS["scale"])
    assert det.net_.mixup_alpha == 0.0
    assert det.net_.get_params()["module__bias_free"] is True
    norms = [
        m for m in det.net_.module_.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert norms and not any(m.bias.requires_grad for m in norms)
    # clone copies the dict: changing the clone's leaves the original alone.
    twin = clone(det)
    assert twin.loss_params == given and twin.loss_params is not given
    twin.loss_params["margin"] = 0.1
    assert given["margin"] == 0.5


def test_cuda_request_without_gpu_is_explained(data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, ids = data
    with pytest.raises(ValueError, match="no CUDA GPU"):
        AnomalousSoundDetector(**{**FAST, "device": "cuda"}).fit(X, ids)


def test_verbose_prints_progress_and_the_epoch_table(data, capsys):
    X, ids = data
    AnomalousSoundDetector(**{**FAST, "verbose": 1}).fit(X, ids)
    captured = capsys.readouterr()
    # verbose=1: one plain line per epoch on stderr, with the time left.
    lines = [line for line in captured.err.splitlines() if "epoch" in line]
    assert len(lines) == FAST["max_epochs"]
    assert "epoch 2/2" in lines[-1] and "s left" in lines[-1]
    assert "\x1b" not in captured.err  # no terminal control codes
    AnomalousSoundDetector(**{**FAST, "verbose": 2}).fit(X, ids)
    out = capsys.readouterr().out
    assert "train_loss" in out and "epoch" in out


@pytest.mark.parametrize("loss", ["noisy_arcmix", "arcmix", "arcface", "softmax"])
@pytest.mark.parametrize("frontend", ["tastgram", "sgram"])
def test_every_loss_and_frontend_fits(loss, frontend, data):
    X, ids = data
    det = AnomalousSoundDetector(
        **{**FAST, "max_epochs": 1, "loss": loss, "frontend": frontend}
    )
    assert np.isfinite(det.fit(X, ids).score_samples(X, ids)).all()


def test_clone_pickle_and_joblib_round_trip(fitted, data, tmp_path):
    X, ids = data
    expected = fitted.score_samples(X, ids)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).score_samples(X, ids), expected
    )
    joblib.dump(fitted, tmp_path / "det.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "det.joblib").score_samples(X, ids), expected
    )
    refit = clone(fitted).fit(X, ids)
    np.testing.assert_array_equal(refit.score_samples(X, ids), expected)


def test_score_is_the_held_out_angular_margin(fitted, data):
    X, ids = data
    value = fitted.score(X, ids)
    assert -2.0 <= value <= 2.0
    # It does not depend on the margin used at scoring time.
    other = clone(fitted).set_params(loss_params={"margin": 0.1})
    other.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    assert other.score(X, ids) == pytest.approx(value)


def test_pipeline_with_routed_machine_ids(data):
    X, ids = data
    with sklearn.config_context(enable_metadata_routing=True):
        det = AnomalousSoundDetector(**FAST).set_decision_function_request(
            machine_ids=True
        )
        det.set_predict_request(machine_ids=True)
        pipe = make_pipeline(FunctionTransformer(lambda x: 0.5 * x), det).fit(X, ids)
        got = pipe.decision_function(X, machine_ids=ids)
        direct = pipe[-1].decision_function(0.5 * X, machine_ids=ids)
        np.testing.assert_allclose(got, direct)
        assert set(pipe.predict(X, machine_ids=ids)) <= {-1, 1}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_loss_params(data, n_jobs):
    X, ids = data
    grid = {"loss_params": [{"margin": 0.5}, {"margin": 0.7}]}
    # Stratified folds: every validation machine ID is also in the training fold.
    search = GridSearchCV(
        AnomalousSoundDetector(**{**FAST, "max_epochs": 1}),
        grid,
        cv=StratifiedKFold(2),
        n_jobs=n_jobs,
    )
    search.fit(X, ids)
    assert search.best_params_["loss_params"] in grid["loss_params"]
    assert search.best_estimator_.loss_params_["margin"] in (0.5, 0.7)
    assert grid == {"loss_params": [{"margin": 0.5}, {"margin": 0.7}]}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    test_grid_search_over_loss_params.results = getattr(
        test_grid_search_over_loss_params, "results", []
    ) + [search.cv_results_["mean_test_score"]]
    if len(test_grid_search_over_loss_params.results) == 2:
        first, second = test_grid_search_over_loss_params.results
        np.testing.assert_allclose(first, second, rtol=1e-5)


def test_n_threads_applies_inside_fit_only(data, monkeypatch):
    import torch

    X, ids = data
    seen = []
    original = torch.Tensor.__matmul__
    before = torch.get_num_threads()

    def spy(self, other):
        seen.append(torch.get_num_threads())
        return original(self, other)

    monkeypatch.setattr(torch.Tensor, "__matmul__", spy)
    target = 2 if before == 1 else 1
    AnomalousSoundDetector(**{**FAST, "n_threads": target}).fit(X, ids)
    assert seen and set(seen) == {target}
    assert torch.get_num_threads() == before


def test_speed_options_keep_the_ranking(data):
    X, ids = data
    # The paper recipe: whole clips, lr 1e-4 (the options differ in rounding,
    # which a higher rate grows faster).
    plain = AnomalousSoundDetector(**FAST, recipe="paper", speed="reference")
    plain.fit(X, ids)
    # The rounding-exact options of the default level, in float32.
    fast = AnomalousSoundDetector(
        **FAST, recipe="paper", speed={"precision": "float32"}
    ).fit(X, ids)
    np.testing.assert_allclose(
        fast.score_samples(X, ids), plain.score_samples(X, ids), rtol=1e-3, atol=1e-3
    )
    bf16 = AnomalousSoundDetector(**FAST, speed={"precision": "bfloat16"}).fit(X, ids)
    assert np.isfinite(bf16.score_samples(X, ids)).all()


@pytest.mark.parametrize("given", [True, False])
def test_score_details_match_the_separate_methods(fitted, data, given):
    X, ids = data
    machine_ids = ids if given else None
    details = fitted.score_details(X, machine_ids=machine_ids)
    np.testing.assert_allclose(
        details.score_samples, fitted.score_samples(X, machine_ids), rtol=1e-6
    )
    np.testing.assert_allclose(
        details.decision_function,
        fitted.decision_function(X, machine_ids),
        rtol=1e-6,
        atol=1e-9,
    )
    if given:
        assert details.machine_ids.tolist() == ids.tolist()
    else:
        assert set(details.machine_ids.tolist()) <= set(fitted.machine_ids_.tolist())


def test_baselines_score_against_the_given_or_best_machine(data):
    from sk_asd.estimator.baseline import LogBandGaussian, LogMelIsolationForest

    X, ids = data
    for baseline in (LogBandGaussian(), LogMelIsolationForest(random_state=0)):
        baseline.fit(X, ids)
        own = baseline.score_samples(X, ids)
        best = baseline.score_samples(X)
        assert own.shape == (len(X),) and (best >= own - 1e-12).all()
        with pytest.raises(ValueError, match=r"Unknown machine ID\(s\) \['z'\]"):
            baseline.score_samples(X[:2], ["z", ids[0]])
