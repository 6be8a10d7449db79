"""The ``channels`` rule for multichannel arrays (near and far microphones)."""

from __future__ import annotations

import numpy as np
import pytest

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from tests.conftest import FAST


@pytest.fixture(scope="module")
def stereo():
    return make_machine_sounds(
        n_machines=2,
        n_normal_train=6,
        n_normal_test=2,
        n_anomalous_test=2,
        duration=0.25,
        n_channels=2,
        random_state=0,
    )


def test_each_channel_trains_as_a_clip_and_scores_are_averaged(stereo):
    d = stereo
    det = AnomalousSoundDetector(**FAST, channels="each").fit(
        d.X_train, d.machine_ids_train
    )
    # Twice the clips of one channel: every channel is a neighbour.
    assert sum(len(b) for b in det.knn_bank_) == 2 * len(d.X_train)
    scores = det.score_samples(d.X_test, d.machine_ids_test)
    per_channel = [
        det.score_samples(d.X_test[:, c], d.machine_ids_test) for c in range(2)
    ]
    np.testing.assert_allclose(scores, np.mean(per_channel, axis=0), rtol=1e-6)
    assert det.transform(d.X_test).shape == (len(d.X_test), det.embedding_dim)
    assert det.predict(d.X_test).shape == (len(d.X_test),)


@pytest.mark.parametrize("channels", ["mean", 0, 1])
def test_mean_and_one_channel_reduce_to_mono(stereo, channels):
    d = stereo
    det = AnomalousSoundDetector(**FAST, channels=channels).fit(
        d.X_train, d.machine_ids_train
    )
    mono = d.X_test.mean(axis=1) if channels == "mean" else d.X_test[:, channels]
    np.testing.assert_array_equal(
        det.score_samples(d.X_test, d.machine_ids_test),
        det.score_samples(mono, d.machine_ids_test),
    )
    assert det.n_features_in_ == d.X_train.shape[-1]


def test_multichannel_mistakes_are_explained(stereo):
    d = stereo
    with pytest.raises(ValueError, match="pick one of 0..1"):
        AnomalousSoundDetector(**FAST, channels=2).fit(d.X_train)
    channels_last = d.X_train.transpose(0, 2, 1)
    with pytest.raises(ValueError, match="transpose"):
        AnomalousSoundDetector(**FAST).fit(channels_last)
