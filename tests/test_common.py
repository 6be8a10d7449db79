"""scikit-learn's own estimator checks, run on the detector."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_asd import AnomalousSoundDetector
from tests.conftest import FAST

#: Checks that cannot pass, each with the reason.
_BATCH_DEPENDENT = (
    "float32 convolutions (oneDNN) sum in an order that depends on how many clips "
    "share a batch, so a clip's score moves by ~1e-6 with its batch; the check "
    "demands 1e-9. tests/test_detector.py asserts batch invariance to 1e-5."
)
_HELD_OUT_THRESHOLD = (
    "knn and fusion set offset_ on leave-one-out / out-of-fold scores of the "
    "training clips, so that new normal clips are flagged at the contamination "
    "rate; the training clips themselves, their own nearest neighbours, are "
    "flagged less (tests/test_detector.py checks the rate on new clips)."
)
_DEGENERATE = (
    "the check's 'waveforms' are a few samples of blobs, zero-padded to one "
    "STFT window: the clips are nearly the same, their scores sit on the "
    "threshold and predictions of two identical fits flip with rounding."
)

EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_methods_subset_invariance": _BATCH_DEPENDENT,
    "check_methods_sample_order_invariance": _BATCH_DEPENDENT,
}
EXPECTED_FAILED_CHECKS.update(
    check_outliers_train=_HELD_OUT_THRESHOLD,
    check_outliers_fit_predict=_HELD_OUT_THRESHOLD,
    check_classifier_data_not_an_array=_DEGENERATE,
)


@parametrize_with_checks(
    [AnomalousSoundDetector(**{**FAST, "max_epochs": 1})],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
