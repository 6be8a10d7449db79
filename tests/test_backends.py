"""Scoring back-ends and embeddings (Wilkinghoff & Kurth's recommendations)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline

from sk_asd import AnomalousSoundDetector
from sk_asd.estimator.backends import SCORING_BACKENDS
from tests.conftest import FAST, tiny_clips


@pytest.fixture(scope="module")
def data():
    return tiny_clips()


@pytest.fixture(scope="module")
def fitted(data):
    X, ids = data
    return AnomalousSoundDetector(**{**FAST, "n_clusters": 1}).fit(X, ids)


def _switched(det, scoring):
    """The fitted detector with another back-end, fitted state shared."""
    other = clone(det).set_params(scoring=scoring)
    other.__dict__.update({k: v for k, v in vars(det).items() if k.endswith("_")})
    return other


@pytest.mark.parametrize("scoring", ["nll", "cosine", "kmeans"])
def test_every_backend_scores_a_fitted_model_without_refitting(fitted, data, scoring):
    X, ids = data
    det = _switched(fitted, scoring)
    scores = det.score_samples(X, machine_ids=ids)
    assert np.isfinite(scores).all()
    assert det.offset_ is det.offsets_[scoring]
    codes = np.searchsorted(det.machine_ids_, ids)
    np.testing.assert_allclose(
        det.decision_function(X, machine_ids=ids), scores - det.offsets_[scoring][codes]
    )


def test_backends_give_different_scores(fitted, data):
    X, ids = data
    nll = _switched(fitted, "nll").score_samples(X, ids)
    cosine = _switched(fitted, "cosine").score_samples(X, ids)
    assert not np.allclose(nll, cosine)


def test_cosine_backend_is_the_distance_to_the_class_centre(fitted, data):
    X, ids = data
    emb = fitted.transform(X)
    centres = fitted.net_.criterion_.centres().detach().double().numpy()
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    codes = np.searchsorted(fitted.machine_ids_, ids)
    expected = -(1.0 - np.sum(emb * centres[codes], axis=1))
    got = _switched(fitted, "cosine").score_samples(X, ids)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_one_kmeans_centre_is_the_mean_training_direction(fitted, data):
    X, ids = data
    emb = fitted.transform(X)
    got = _switched(fitted, "kmeans").score_samples(X, ids)
    for machine in fitted.machine_ids_:
        rows = ids == machine
        mean = emb[rows].mean(axis=0)
        mean /= np.linalg.norm(mean)
        np.testing.assert_allclose(got[rows], -(1.0 - emb[rows] @ mean), atol=1e-5)


def test_transform_returns_unit_norm_embeddings(fitted, data):
    X, _ = data
    emb = fitted.transform(X)
    assert emb.shape == (len(X), 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-10)


def test_embeddings_feed_another_outlier_detector(data):
    X, ids = data
    pipe = make_pipeline(
        AnomalousSoundDetector(**FAST), LocalOutlierFactor(n_neighbors=3, novelty=True)
    ).fit(X, ids)
    scores = pipe.score_samples(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    assert set(pipe.predict(X)) <= {-1, 1}


@pytest.mark.parametrize(
    "options",
    [
        dict(loss="subcluster_adacos", loss_params={"n_subclusters": 3}),
        dict(loss_params={"bias_free": True}),
    ],
    ids=["subcluster_adacos", "bias_free"],
)
def test_wilkinghoff_options_train_and_score_with_every_backend(data, options):
    X, ids = data
    det = AnomalousSoundDetector(**FAST, **options).fit(X, ids)
    for scoring in SCORING_BACKENDS:
        scores = det.set_params(scoring=scoring).score_samples(X, machine_ids=ids)
        assert scores.shape == (len(X),) and np.isfinite(scores).all()
    assert np.isfinite(det.score(X, ids))
    if options.get("loss") == "subcluster_adacos":
        assert det.net_.criterion_.head.weight.shape[0] == det.n_classes_ * 3
        # The adaptive scale moved away from its AdaCos starting value.
        start = np.sqrt(2) * np.log(det.n_classes_ * 3 - 1)
        assert det.net_.criterion_.adaptive_scale.item() != pytest.approx(start)


def test_kmeans_threshold_uses_out_of_fold_scores_of_the_training_clips():
    X, ids = tiny_clips(n_per_machine=12, seed=5)
    det = AnomalousSoundDetector(
        **{**FAST, "n_clusters": 1, "scoring": "kmeans", "contamination": 0.5}
    ).fit(X, ids)
    in_sample = det.score_samples(X, ids)
    for k, machine in enumerate(det.machine_ids_):
        # A centre fitted without a clip lies farther from it than the centre
        # fitted with it: the out-of-fold median normality is lower.
        assert det.offset_[k] < np.median(in_sample[ids == machine])


def test_kmeans_threshold_scores_small_machines_leave_one_out(fitted):
    # The scores the kmeans thresholds are fitted to, on spread-out unit
    # vectors (the embeddings of a two-epoch fit are nearly collapsed, and a
    # gamma fit to distances of ~1e-7 is too ill-conditioned to compare).
    from sk_asd.estimator.backends import (
        kmeans_centres,
        kmeans_out_of_fold,
        nearest_centre_distance,
        unit_rows,
    )

    rng = np.random.default_rng(0)
    # 1 clip: in sample; 6 clips: leave-one-out; 10 clips: 2 folds.
    codes = np.repeat([0, 1, 2], [1, 6, 10])
    unit = unit_rows(rng.normal(size=(17, 8))).reshape(17, 1, 8)
    n_clusters = fitted.n_clusters
    scores = kmeans_out_of_fold(unit, codes, 3, n_clusters=n_clusters, seed=0)
    for k in (0, 1, 2):
        rows = codes == k
        centres = kmeans_centres(unit[rows], n_clusters=n_clusters, seed=0)
        in_sample = nearest_centre_distance(unit[rows], centres).mean(axis=1)
        if k == 0:
            np.testing.assert_allclose(scores[rows], in_sample, rtol=1e-12)
        else:
            # Held-out clips lie farther from centres fitted without them.
            assert scores[rows].mean() > in_sample.mean()
    # Leave-one-out exactly: clip i against centres of the other five.
    own = np.flatnonzero(codes == 1)
    others = kmeans_centres(unit[own[1:]], n_clusters=n_clusters, seed=0)
    expected = nearest_centre_distance(unit[own[:1]], others).mean(axis=1)
    np.testing.assert_allclose(scores[own[0]], expected[0], rtol=1e-12)


def test_fusion_caps_each_standardised_distance():
    """One failing component (e.g. a session shift on the embedding) raises a
    fused score by at most FUSION_CAP; the others still rank the clips."""
    from sk_asd.estimator.backends import FUSED, FUSION_CAP, fuse

    loc_scale = {name: np.array([1.0, 0.5]) for name in FUSED}
    normal = {name: np.array([1.0]) for name in FUSED}
    fault = {name: np.array([2.0]) for name in FUSED}  # 2 std out everywhere
    normal[FUSED[0]] = np.array([100.0])  # one component far off on a normal
    fused_normal, fused_fault = fuse(normal, loc_scale), fuse(fault, loc_scale)
    assert fused_normal[0] == pytest.approx(FUSION_CAP)
    assert fused_fault[0] == pytest.approx(2.0 * len(FUSED))
    assert fused_fault[0] > fused_normal[0]
    # Below the cap, the fused score is the plain sum of standardised distances.
    below = {name: np.array([1.5]) for name in FUSED}
    assert fuse(below, loc_scale)[0] == pytest.approx(len(FUSED))


def test_normal_threshold_widens_for_few_clips_and_unknown_locations():
    from sk_asd.estimator.backends import normal_threshold, standardisation

    rng = np.random.RandomState(0)
    many = rng.randn(400)
    # With many clips: the 90th percentile of a normal fit, about 1.28 sd.
    alone = normal_threshold([many])[0]
    assert alone == pytest.approx(many.mean() + 1.2816 * many.std(), abs=0.05)
    # Two clips of a machine whose scores sit exactly where the others' do:
    # a wider bound than the many-clip machine's.
    few = normal_threshold([many, np.array([-0.5, 0.5])])
    assert few[1] > few[0]
    # One clip: no held-out score exists; the location is the others'
    # median and the scale grows by how much the machines' locations differ.
    loc_scale = standardisation([many, many + 4.0, np.array([0.0])])
    assert loc_scale[2, 0] == pytest.approx(np.median([many.mean(), many.mean() + 4]))
    assert loc_scale[2, 1] > loc_scale[0, 1]


def test_domain_neighbours_scale_the_sparse_target_clips():
    from sk_asd.estimator.backends import domain_neighbour_distance, domain_ratio

    def euclid(q, b, loo):
        d = np.linalg.norm(q[:, None] - b[None], axis=-1)
        if loo:
            np.fill_diagonal(d, np.inf)
        return d.min(axis=1)

    rng = np.random.RandomState(0)
    source = rng.randn(200, 2) * 0.1  # dense
    target = 5.0 + rng.randn(4, 2) * 0.1  # same spread, but only 4 clips
    bank = np.concatenate([source, target])
    is_target = np.r_[np.zeros(200, bool), np.ones(4, bool)]
    ratio = domain_ratio(euclid, bank, is_target)
    assert ratio < 0.5  # 4 clips lie farther apart than 200 of the same spread
    new_target = 5.0 + rng.randn(50, 2) * 0.1
    new_source = rng.randn(50, 2) * 0.1
    plain = [euclid(x, bank, False).mean() for x in (new_source, new_target)]
    aware = [
        domain_neighbour_distance(euclid, x, bank, is_target, ratio).mean()
        for x in (new_source, new_target)
    ]
    # Plainly, new target clips look farther out than new source clips;
    # scaled, the two domains look alike.
    assert plain[1] > 2 * plain[0]
    assert abs(np.log(aware[1] / aware[0])) < abs(np.log(plain[1] / plain[0])) / 2
    # Without target clips: the plain nearest distance, leave-one-out too.
    none = np.zeros(len(bank), bool)
    np.testing.assert_array_equal(
        domain_neighbour_distance(euclid, bank, bank, none, 1.0, leave_one_out=True),
        euclid(bank, bank, True),
    )
