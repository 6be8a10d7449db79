"""Fitting and scoring from audio files, read lazily."""

from __future__ import annotations

import numpy as np
import pytest

from sk_asd import AnomalousSoundDetector
from sk_asd.estimator.streaming import AudioFileDataset, is_path_sequence
from sk_asd.io import write_audio
from tests.conftest import FAST, SR, tiny_clips


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    X, ids = tiny_clips()
    X = np.clip(X, -1, 1)
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i, clip in enumerate(X):
        paths.append(
            write_audio(folder / f"clip_{i:02d}.wav", clip, SR, subtype="FLOAT")
        )
    return paths, X, ids


def test_paths_are_recognised():
    assert is_path_sequence(["a.wav", "b.wav"])
    assert is_path_sequence(np.array(["a.wav"]))
    assert not is_path_sequence("a.wav")
    assert not is_path_sequence(np.zeros((2, 3)))


def test_fit_and_score_from_files_equal_fit_and_score_from_arrays(files):
    paths, X, ids = files
    from_files = AnomalousSoundDetector(**FAST).fit(paths, ids)
    from_arrays = AnomalousSoundDetector(**FAST).fit(X, ids)
    assert from_files.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(
        from_files.score_samples(paths, ids),
        from_arrays.score_samples(X, ids),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        from_files.transform(paths), from_arrays.transform(X), atol=1e-5
    )


def test_single_machine_from_files_uses_pseudo_ids(files):
    paths, X, _ = files
    det = AnomalousSoundDetector(**FAST).fit(paths[:4])
    assert det.n_classes_ == 5  # the machine and its four speed copies
    assert np.isfinite(det.score_samples(paths)).all()


def test_dataset_pads_crops_and_labels(files):
    paths, X, _ = files
    data = AudioFileDataset(
        paths[:2],
        np.array([0, 1]),
        n_samples=100,
        sample_rate=SR,
        speed_factors=(1.0, 1.1),
    )
    assert len(data) == 4
    wave, label = data[3]
    assert wave.shape == (100,) and int(label) == 2
    padded, _ = AudioFileDataset(paths[:1], n_samples=X.shape[1] + 50, sample_rate=SR)[
        0
    ]
    assert (padded[-50:] == 0).all()


def test_a_bad_file_is_named(files, tmp_path):
    paths, _, ids = files
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    det = AnomalousSoundDetector(**FAST).fit(paths, ids)
    with pytest.raises(ValueError, match="broken.wav"):
        det.score_samples([paths[0], bad])


def test_multichannel_and_other_rates_score_without_manual_conversion(files, tmp_path):
    import soundfile as sf

    from sk_asd.cli.main import main
    from sk_asd.io import save_model

    paths, X, ids = files
    # float32: the check below compares scores of a clip and its PCM16
    # rounding, which bfloat16's coarser rounding can move by a few per cent.
    det = AnomalousSoundDetector(**FAST, speed="reference").fit(paths, ids)
    n = X.shape[1]
    eight = tmp_path / "mimii_8ch.wav"
    sf.write(eight, np.repeat(X[0][:, None], 8, axis=1), SR, subtype="PCM_16")
    t = np.arange(int(n * 44100 / SR)) / 44100
    stereo = tmp_path / "stereo_44k.wav"
    tone = 0.1 * np.sin(2 * np.pi * 300 * t)
    sf.write(stereo, np.stack([tone, tone], axis=1), 44100, subtype="PCM_16")

    scores = det.score_samples([eight, stereo], machine_ids=["a", "a"])
    assert np.isfinite(scores).all()
    # The 8-channel file holds clip 0 on every channel: same score as clip 0
    # (up to PCM16 rounding).
    np.testing.assert_allclose(
        scores[0], det.score_samples(paths[:1], machine_ids=["a"])[0], rtol=1e-3
    )

    model = save_model(det, tmp_path / "m.skasd")
    csv_path = tmp_path / "scores.csv"
    assert (
        main(
            [
                "score",
                str(model),
                str(eight),
                str(stereo),
                "--machine-id",
                "a",
                "--csv",
                str(csv_path),
                "--quiet",
            ]
        )
        == 0
    )
    rows = csv_path.read_text().strip().splitlines()
    assert len(rows) == 3 and "mimii_8ch.wav" in rows[1] and "stereo_44k.wav" in rows[2]


def test_loader_workers_read_files_in_parallel_with_the_same_results(files):
    paths, _, ids = files
    serial = AnomalousSoundDetector(**FAST).fit(paths, ids)
    parallel = AnomalousSoundDetector(**FAST, speed={"loader_workers": 2})
    parallel.fit(paths, ids)
    assert parallel.net_.iterator_train__num_workers == 2
    assert parallel.speed_["loader_workers"] == 2
    np.testing.assert_allclose(
        parallel.score_samples(paths, ids), serial.score_samples(paths, ids), rtol=1e-6
    )
