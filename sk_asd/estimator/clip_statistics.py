"""Hand-made clip statistics that the default score fuses with the embedding.

On small data the angular-margin embedding alone ranks anomalies no better
than simple statistics of the spectrum (``benchmarks/bench_quality.py``):
with a few easy machine IDs the auxiliary task is solved early and the
embedding ignores what it does not need (Wilkinghoff & Kurth, 2024).  The
statistics below see what it may ignore, and they make different mistakes,
so the ``"fusion"`` back-end adds their standardised distances to the
embedding's:

- ``bands``: mean and standard deviation over time of 64 log-mel bands (the
  long-term spectrum and how much each band moves), compared by the nearest
  training clip;
- ``spectrum``: the whole clip's mean power spectrum on a fine linear grid
  (4096-point FFT, about 4 Hz per bin at 16 kHz), where harmonics of a
  rotating machine are resolved, as in the magnitude-spectrum branch of
  Wilkinghoff's systems; nearest training clip;
- ``frames``: a Gaussian (Ledoit-Wolf shrunk covariance) of single log-mel
  frames, the clip scored by the mean Mahalanobis distance of its frames, so
  short events weigh in.

Distances on ``bands`` and ``spectrum`` are measured in units of the
*within-machine* standard deviation pooled over every machine of the fit:
with a handful of clips per machine ID, an ID's own spread is too noisy to
standardise by.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from sk_asd.nn.frontend import LogMelSpectrogram

__all__ = [
    "STATISTICS",
    "clip_statistics",
    "fit_frame_gaussian",
    "frame_distance",
    "nearest_distance",
    "pooled_scale",
]

#: The statistics fused with the embedding by the ``"fusion"`` back-end.
STATISTICS = ("bands", "spectrum", "frames")

#: Log-mel bands of the statistics (fixed: independent of the network's).
N_BANDS = 64
#: FFT length of the whole-clip spectrum.
SPECTRUM_FFT = 4096
#: Frames kept per machine to fit its frame Gaussian.
MAX_FRAMES = 20000


def _waveform_batches(X: Any, batch_size: int):
    """Float32 waveform batches of an array or of a (waveform, label) dataset."""
    if isinstance(X, np.ndarray):
        for start in range(0, len(X), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(X[start : start + batch_size]))
        return
    batch = []
    for i in range(len(X)):
        batch.append(torch.as_tensor(X[i][0], dtype=torch.float32))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def clip_statistics(
    X: Any,
    sample_rate: int,
    *,
    max_frames_per_clip: int | None = None,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """The statistics of every clip.

    Parameters
    ----------
    X : ndarray of shape (n_clips, n_samples) or dataset
        Validated waveforms, or a dataset whose items are ``(waveform, label)``
        (:class:`sk_asd.estimator.streaming.AudioFileDataset`).
    sample_rate : int
        Sample rate of the waveforms.
    max_frames_per_clip : int, optional
        Keep at most this many evenly spaced log-mel frames of each clip
        (memory of a large fit); all by default.
    batch_size : int, default=16
        Clips transformed at a time (memory, not results).

    Returns
    -------
    statistics : dict
        ``"bands"``: ``(n_clips, 2 * 64)`` band means and standard deviations
        in dB; ``"spectrum"``: ``(n_clips, 2049)`` mean power spectrum in dB;
        ``"frames"``: ``(n_clips, n_frames, 64)`` float32 log-mel frames.
    """
    logmel = LogMelSpectrogram(sample_rate=sample_rate, n_mels=N_BANDS)
    window = torch.hann_window(SPECTRUM_FFT, dtype=torch.float32)
    bands, spectra, frames = [], [], []
    with torch.no_grad():
        for waves in _waveform_batches(X, batch_size):
            mel = logmel(waves).double()  # (batch, bands, frames)
            # Population std: a clip of one frame has spread 0, not NaN.
            spread = mel.std(-1, correction=0)
            bands.append(torch.cat([mel.mean(-1), spread], dim=1).numpy())
            frame_rows = mel.transpose(1, 2).float().numpy()
            if max_frames_per_clip and frame_rows.shape[1] > max_frames_per_clip:
                step = int(np.ceil(frame_rows.shape[1] / max_frames_per_clip))
                frame_rows = frame_rows[:, ::step]
            frames.append(frame_rows)
            # float32: 0.56 against 1.25 ms per 10 s clip in float64 (2 cores),
            # and over the 229 real DCASE clips of shared/data the statistic
            # moved by at most 0.0014 dB (1e-5 dB on synthetic clips): a
            # float32 rounding error only shows in bins far below the frame's
            # power, near the 1e-12 floor of the logarithm.
            spec = torch.stft(
                waves.float(),
                SPECTRUM_FFT,
                hop_length=SPECTRUM_FFT // 2,
                window=window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            # |X|^2 as re^2 + im^2, squared in place: the complex abs() took
            # as long as the STFT itself (a square root per bin, only to
            # square it again); the same power up to float rounding.
            squares = torch.view_as_real(spec).square_()
            power = (squares[..., 0] + squares[..., 1]).double().mean(-1)
            spectra.append((10.0 * torch.log10(power + 1e-12)).numpy())
    return {
        "bands": np.concatenate(bands),
        "spectrum": np.concatenate(spectra),
        "frames": np.concatenate(frames),
    }


def pooled_scale(features: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Within-machine standard deviation of each feature, pooled over machines.

    Machines with a single clip carry no spread and are left out; with none
    left, the overall standard deviation is used.  A small floor keeps
    features that never move from dominating a distance.
    """
    variances = [
        features[codes == k].var(axis=0)
        for k in np.unique(codes)
        if np.sum(codes == k) > 1
    ]
    scale = np.sqrt(np.mean(variances, axis=0)) if variances else features.std(axis=0)
    return np.maximum(scale, 1e-3 * (float(np.mean(scale)) + 1e-12))


def nearest_distance(
    query: np.ndarray,
    bank: np.ndarray,
    scale: np.ndarray,
    *,
    leave_one_out: bool = False,
) -> np.ndarray:
    """RMS standardised distance of each query row to its nearest bank row.

    With ``leave_one_out``, ``query`` is ``bank`` itself and each row's own
    entry is skipped (a single row has no other: its distance is 0).
    """
    q = query / scale
    b = bank / scale
    # |q - b|^2 expanded, so memory is (n_query, n_bank), not times the dims.
    d2 = (
        np.sum(q**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2.0 * q @ b.T
    ) / q.shape[1]
    if leave_one_out:
        if len(b) == 1:
            return np.zeros(1)
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def fit_frame_gaussian(
    frames: np.ndarray, random_state: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (Ledoit-Wolf shrunk) precision of log-mel frames.

    ``frames`` is ``(n_clips, n_frames, n_bands)``; at most
    :data:`MAX_FRAMES` frames, drawn at random, are used.
    """
    rows = frames.reshape(-1, frames.shape[-1]).astype(np.float64)
    if len(rows) > MAX_FRAMES:
        rows = rows[random_state.choice(len(rows), MAX_FRAMES, replace=False)]
    mean = rows.mean(axis=0)
    precision = LedoitWolf(assume_centered=True).fit(rows - mean).precision_
    return mean, precision


def frame_distance(
    frames: np.ndarray, mean: np.ndarray, precision: np.ndarray
) -> np.ndarray:
    """Mean squared Mahalanobis distance of each clip's frames, per band."""
    centred = frames.astype(np.float64) - mean
    d2 = np.einsum("ntd,de,nte->nt", centred, precision, centred)
    return d2.mean(axis=1) / frames.shape[-1]


def fit_frame_gaussians(
    frames: np.ndarray,
    codes: np.ndarray,
    n_machines: int,
    random_state: np.random.RandomState,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Frame Gaussian of every machine and its clips' held-out distances.

    Parameters
    ----------
    frames : ndarray of shape (n_clips, n_frames, n_bands)
        Log-mel frames of the training clips (:func:`clip_statistics`).
    codes : ndarray of shape (n_clips,)
        Machine code of every clip, in ``range(n_machines)``.
    n_machines : int
    random_state : numpy RandomState
        Draws frames (:func:`fit_frame_gaussian`) and the folds.

    Returns
    -------
    means, precisions : list of ndarray
        The Gaussian of each machine, fitted to all its clips.
    held_out : list of ndarray
        Per machine, the distance of each of its clips (in clip order) from
        a Gaussian fitted without it.  A Gaussian fitted to a clip's own
        frames finds them closer than a new clip's (by far, with few frames
        per band), so in-sample distances would set a threshold that flags
        most new clips.  Two folds from four clips, leave-one-out for two or
        three; a single clip keeps its in-sample distance (and the fusion's
        standardisation gives it the other machines' location).
    """
    means, precisions, held_out = [], [], []
    for k in range(n_machines):
        own = np.flatnonzero(codes == k)
        mean, precision = fit_frame_gaussian(frames[own], random_state)
        means.append(mean)
        precisions.append(precision)
        distance = frame_distance(frames[own], mean, precision)
        if own.size >= 2:
            if own.size >= 4:
                half = random_state.permutation(own.size) % 2 == 0
                folds = [(~half, half), (half, ~half)]
            else:
                folds = [
                    (np.arange(own.size) != i, np.arange(own.size) == i)
                    for i in range(own.size)
                ]
            for fit_rows, held in folds:
                fold_mean, fold_precision = fit_frame_gaussian(
                    frames[own[fit_rows]], random_state
                )
                distance[held] = frame_distance(
                    frames[own[held]], fold_mean, fold_precision
                )
        held_out.append(distance)
    return means, precisions, held_out
