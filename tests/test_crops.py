"""Random-crop training and crop-averaged scoring (``crop_seconds``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sk_asd import AnomalousSoundDetector
from sk_asd.estimator.crops import grid_crops, n_grid_crops, random_crops
from sk_asd.nn.frontend import LogMelSpectrogram
from tests.conftest import FAST, SR, tiny_clips

HOP = 512
CROP = 2048  # the shortest crop allowed: one STFT window


def test_random_crops_are_slices_of_their_clip_starting_on_a_hop():
    waves = torch.randn(6, 9000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    first = random_crops(waves, 3000, HOP)
    assert first.shape == (6, 3000)
    for clip, crop in zip(waves, first, strict=True):
        matches = [
            s
            for s in range(0, 9000 - 3000 + 1, HOP)
            if torch.equal(clip[s : s + 3000], crop)
        ]
        assert len(matches) == 1
    torch.manual_seed(0)
    torch.testing.assert_close(random_crops(waves, 3000, HOP), first)
    # Redrawn at every call: over a few draws, starts differ.
    assert not all(torch.equal(first, random_crops(waves, 3000, HOP)) for _ in range(5))


def test_random_crops_leave_short_clips_whole():
    waves = torch.randn(3, 2000)
    assert random_crops(waves, 2048, HOP) is waves


def test_cropped_cached_logmel_matches_the_logmel_of_the_crop():
    logmel = LogMelSpectrogram(sample_rate=SR, n_mels=32)
    torch.manual_seed(1)
    waves = torch.randn(4, 12000)
    batch = {"waves": waves, "logmel": logmel(waves)}
    cropped = random_crops(batch, 4096, HOP)
    own = logmel(cropped["waves"])
    assert cropped["logmel"].shape == own.shape == (4, 32, 1 + 4096 // HOP)
    # Only the outermost frames see zero padding in the crop's own log-mel
    # and real samples in the clip's: every frame in between is the same.
    inner = slice(2, -2)
    torch.testing.assert_close(
        cropped["logmel"][..., inner], own[..., inner], atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("n_samples", [4096, 5000, 8193])
def test_grid_crops_cover_every_sample(n_samples):
    waves = torch.arange(2 * n_samples, dtype=torch.float32).reshape(2, n_samples)
    crops = grid_crops(waves, CROP)
    n_crops = n_grid_crops(n_samples, CROP)
    assert n_crops == -(-n_samples // CROP)
    assert crops.shape == (2 * n_crops, CROP)
    for k in range(2):
        own = crops[k * n_crops : (k + 1) * n_crops]
        assert own[0, 0] == waves[k, 0] and own[-1, -1] == waves[k, -1]
        assert set(own.flatten().tolist()) == set(waves[k].tolist())


@pytest.fixture(scope="module")
def long_clips():
    return tiny_clips(n_per_machine=6, seed=3)


def test_training_sees_crops_and_scoring_averages_over_them(long_clips):
    X, ids = long_clips
    det = AnomalousSoundDetector(
        **{**FAST, "crop_seconds": CROP / SR, "scoring": "nll"}
    ).fit(X, ids)
    frames = 1 + CROP // HOP
    seen: list[tuple[bool, int, int]] = []
    handle = det.net_.module_.backbone.register_forward_pre_hook(
        lambda module, inputs: seen.append(
            (module.training, inputs[0].shape[0], inputs[0].shape[-1])
        )
    )
    det.net_.partial_fit(X, np.searchsorted(det.machine_ids_, ids))
    scores = det.score_samples(X[:4], machine_ids=ids[:4])
    handle.remove()
    assert seen and {width for _, _, width in seen} == {frames}
    train_batches = [n for training, n, _ in seen if training]
    # One crop per clip and epoch.
    assert sum(train_batches) == FAST["max_epochs"] * len(X)
    # Scoring: two crops per clip (4000 samples, crops of 2048).
    assert [n for training, n, _ in seen if not training] == [8]

    # Each clip's score is the mean of its crops' scores.
    codes = np.searchsorted(det.machine_ids_, ids[:4])
    crops = grid_crops(torch.from_numpy(X[:4]), CROP)
    det.net_.crop_samples = None  # embed the crops as clips
    crop_embeddings = det.net_.forward(crops.numpy())
    det.net_.crop_samples = CROP
    for backend in ("nll", "cosine", "kmeans"):
        det.set_params(scoring=backend)
        per_crop = det._anomaly_scores(crop_embeddings, np.repeat(codes, 2), backend)
        np.testing.assert_allclose(
            det.score_samples(X[:4], machine_ids=ids[:4]),
            -per_crop.reshape(4, 2).mean(axis=1),
            rtol=1e-6,
        )
    det.set_params(scoring="nll")
    np.testing.assert_allclose(scores, det.score_samples(X[:4], machine_ids=ids[:4]))
    # transform: the normalised mean direction of the crops.
    embedded = det.transform(X[:4])
    assert embedded.shape == (4, det.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, rtol=1e-9)
    assert -2.0 <= det.score(X, ids) <= 2.0


def test_cropping_with_cached_logmels_and_validation(long_clips):
    X, ids = long_clips
    det = AnomalousSoundDetector(
        **{**FAST, "crop_seconds": CROP / SR},
        speed={"cache_logmel": True},
        validation_fraction=0.25,
    ).fit(X, ids)
    assert det.net_.cache_logmel
    valid = det.net_.history[:, "valid_loss"]
    assert len(valid) == FAST["max_epochs"] and np.all(np.isfinite(valid))
    assert np.all(np.isfinite(det.score_samples(X, machine_ids=ids)))


def test_crop_shorter_than_one_window_is_rejected(long_clips):
    X, ids = long_clips
    with pytest.raises(ValueError, match="crop_seconds=0.05 .* STFT window"):
        AnomalousSoundDetector(**{**FAST, "crop_seconds": 0.05}).fit(X, ids)


def test_clips_not_longer_than_the_crop_are_used_whole(long_clips):
    X, ids = long_clips
    whole = AnomalousSoundDetector(**FAST).fit(X, ids)
    cropped = AnomalousSoundDetector(**{**FAST, "crop_seconds": 1.0}).fit(X, ids)
    np.testing.assert_allclose(
        cropped.score_samples(X, machine_ids=ids),
        whole.score_samples(X, machine_ids=ids),
        rtol=1e-5,
    )
