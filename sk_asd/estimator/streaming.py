"""Clips read from audio files lazily, batch by batch.

When ``fit`` or the scoring methods receive file paths instead of an array,
the detector wraps them in :class:`AudioFileDataset`: skorch's DataLoader
then reads only the clips of the current batch, so peak memory does not grow
with the number of clips (the authors' code holds every waveform in memory,
about 29 GB for the DCASE 2020 training data).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sk_asd.io.audio import load_audio, probe_audio


def is_path_sequence(X: Any) -> bool:
    """Whether ``X`` is a non-empty sequence of file paths (str or PathLike)."""
    if isinstance(X, str | os.PathLike):
        return False
    if isinstance(X, np.ndarray):
        return (
            X.dtype.kind in "UO"
            and X.ndim == 1
            and X.size > 0
            and all(isinstance(p, str | os.PathLike) for p in X)
        )
    return (
        isinstance(X, Sequence)
        and len(X) > 0
        and all(isinstance(p, str | os.PathLike) for p in X)
    )


#: Files whose length is outside this factor of the median are named in a
#: warning when the clip length of a fit on files is chosen.
OUTLIER_LENGTH_FACTOR = 2.0


def clip_length_of_files(paths: Sequence[str | os.PathLike], sample_rate: int) -> int:
    """The clip length, in samples at ``sample_rate``, for a fit on files.

    The median of the files' lengths, read from their headers (nothing is
    decoded; every header is checked, so a bad file fails now, by name). The
    first file used to decide alone, so a 1-sample first file cut every clip
    to one sample, and padding to the longest made one 1-hour file turn every
    clip into an hour.

    Parameters
    ----------
    paths : sequence of path-like
        The training files.
    sample_rate : int
        The rate they are resampled to.

    Returns
    -------
    n_samples : int

    Warns
    -----
    UserWarning
        If some files are more than ``OUTLIER_LENGTH_FACTOR`` times longer or
        shorter than the median; they are cut or zero-padded to it.
    """
    lengths = []
    for path in paths:
        n_frames, _, file_rate = probe_audio(path)
        # resample_poly's output length: ceil(n * sample_rate / file_rate).
        lengths.append(-(-n_frames * sample_rate // file_rate))
    lengths_array = np.asarray(lengths)
    n_samples = max(1, int(np.median(lengths_array)))
    odd = np.flatnonzero(
        (lengths_array > OUTLIER_LENGTH_FACTOR * n_samples)
        | (lengths_array * OUTLIER_LENGTH_FACTOR < n_samples)
    )
    if odd.size:
        names = ", ".join(
            f"{os.fspath(paths[i])} ({lengths[i] / sample_rate:.3g} s)" for i in odd[:5]
        )
        more = f" and {odd.size - 5} more" if odd.size > 5 else ""
        warnings.warn(
            f"Clips are cut or zero-padded to the median file length "
            f"({n_samples / sample_rate:.3g} s); {odd.size} file(s) differ from it "
            f"by more than {OUTLIER_LENGTH_FACTOR:g}x: {names}{more}.",
            UserWarning,
            stacklevel=3,
        )
    return n_samples


def change_speed(X: np.ndarray, factor: float) -> np.ndarray:
    """Play every clip ``factor`` times faster (pitch moves with it), same length.

    Reading past the end wraps around to the start of the clip.
    """
    n = X.shape[1]
    positions = np.arange(n) * factor
    return np.stack(
        [np.interp(positions, np.arange(n), clip, period=n) for clip in X]
    ).astype(np.float32)


def fit_length(clip: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad or crop at the end to ``n_samples`` (the documented rule)."""
    if clip.shape[0] >= n_samples:
        return clip[:n_samples]
    return np.pad(clip, (0, n_samples - clip.shape[0]))


class AudioFileDataset(Dataset):
    """Audio files as (waveform, label) pairs, read on access.

    Parameters
    ----------
    paths : sequence of path-like
        The files.
    labels : ndarray of int, optional
        Integer class of each file (machine-ID code); 0 when omitted.
    n_samples : int
        Every clip is zero-padded or cropped at the end to this length.
    sample_rate : int
        Files at other rates are resampled to it.
    speed_factors : sequence of float, default=(1.0,)
        Each file appears once per factor, played that many times as fast;
        item ``i`` is file ``i % n_files`` at factor ``i // n_files``, with
        label ``labels[...] + factor_index * label_stride`` (the pseudo
        machine IDs of the speed-changed copies).
    label_stride : int, default=1
        Label offset between one speed factor's copies and the next (the
        number of machine IDs).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: np.ndarray | None = None,
        *,
        n_samples: int,
        sample_rate: int,
        speed_factors: Sequence[float] = (1.0,),
        label_stride: int = 1,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        # Every header is read now (cheap: no decoding), so a bad file fails
        # here, by name and as an AudioLoadError, instead of in the middle of
        # an epoch or wrapped in a RuntimeError by a DataLoader worker.
        for path in self.paths:
            probe_audio(path)
        self.labels = (
            np.zeros(len(self.paths), dtype=np.int64) if labels is None else labels
        )
        self.n_samples = n_samples
        self.sample_rate = sample_rate
        self.speed_factors = tuple(speed_factors)
        self.label_stride = label_stride

    def __len__(self) -> int:
        return len(self.paths) * len(self.speed_factors)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_files = len(self.paths)
        factor_index, file_index = divmod(index, n_files)
        # Only the frames the clip length needs are decoded.
        clip = load_audio(
            self.paths[file_index],
            sample_rate=self.sample_rate,
            max_samples=self.n_samples,
        )
        clip = fit_length(clip, self.n_samples)
        factor = self.speed_factors[factor_index]
        if factor != 1.0:
            clip = change_speed(clip[None, :], factor)[0]
        label = int(self.labels[file_index]) + factor_index * self.label_stride
        return torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)), (
            torch.tensor(label, dtype=torch.long)
        )
