"""The hand-made clip statistics that the default "fusion" score uses."""

from __future__ import annotations

import numpy as np
import pytest

from sk_asd.estimator.clip_statistics import (
    N_BANDS,
    SPECTRUM_FFT,
    clip_statistics,
)

SAMPLE_RATE = 16000


def _reference_spectrum(wave: np.ndarray) -> np.ndarray:
    """Mean power spectrum in dB, float64 numpy, written from the definition:
    centred frames of SPECTRUM_FFT samples (zero padded), hop of half a frame,
    periodic Hann window."""
    half = SPECTRUM_FFT // 2
    padded = np.pad(wave.astype(np.float64), (half, half))
    n_frames = 1 + len(wave) // half
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(SPECTRUM_FFT) / SPECTRUM_FFT)
    frames = np.stack(
        [padded[t * half : t * half + SPECTRUM_FFT] for t in range(n_frames)]
    )
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    return 10 * np.log10(power.mean(0) + 1e-12)


def _noisy_tones(n_clips: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clips = 0.02 * rng.standard_normal((n_clips, len(t)))
    for i in range(n_clips):
        clips[i] += 0.3 * np.sin(2 * np.pi * (250.0 + 50 * i) * t)
    return clips.astype(np.float32)


def test_spectrum_matches_a_float64_reference():
    # The STFT runs in float32; the statistic must stay within a small
    # fraction of a dB of the float64 definition on realistic clips.
    X = _noisy_tones(3, 2.0)
    spectrum = clip_statistics(X, SAMPLE_RATE)["spectrum"]
    assert spectrum.shape == (3, SPECTRUM_FFT // 2 + 1)
    for clip, row in zip(X, spectrum, strict=True):
        np.testing.assert_allclose(row, _reference_spectrum(clip), atol=1e-2)
    # Each tone peaks at its own bin (about 3.9 Hz per bin).
    peaks = spectrum.argmax(axis=1) * SAMPLE_RATE / SPECTRUM_FFT
    np.testing.assert_allclose(peaks, [250.0, 300.0, 350.0], atol=SAMPLE_RATE / 4096)


def test_shapes_and_a_clip_of_one_frame():
    X = _noisy_tones(2, 1.0)
    stats = clip_statistics(X, SAMPLE_RATE)
    n_frames = 1 + X.shape[1] // 512
    assert stats["bands"].shape == (2, 2 * N_BANDS)
    assert stats["frames"].shape == (2, n_frames, N_BANDS)
    assert stats["frames"].dtype == np.float32
    # A clip shorter than one hop has one frame: spread 0, not NaN.
    short = clip_statistics(X[:, :300], SAMPLE_RATE)
    assert np.all(short["bands"][:, N_BANDS:] == 0)
    assert np.isfinite(short["spectrum"]).all()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batches_do_not_change_the_statistics(batch_size):
    X = _noisy_tones(4, 1.0, seed=1)
    whole = clip_statistics(X, SAMPLE_RATE, batch_size=16)
    split = clip_statistics(X, SAMPLE_RATE, batch_size=batch_size)
    for key in whole:
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-6, atol=1e-5)
