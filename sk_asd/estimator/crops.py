"""Fixed-length crops of clips: random ones for training, a grid for scoring.

Training on short random crops of long clips is the cheapest way to trade
compute for more, different gradient steps: a 2 s crop of a 10 s clip costs
about a fifth of the clip in every layer, and a new crop is drawn each time
the clip is seen.  At scoring time a clip is cut into evenly spaced crops
that cover it, and its score is the mean of the crops' scores, so that
every part of the clip is looked at by a network that saw crops of the same
length in training.  Stationary machine sounds make this sound: the
statistics of a few seconds of a healthy machine hardly depend on where the
seconds were taken.  The DCASE 2020 baseline scores a clip the same way,
as the mean of its autoencoder's error over short windows of the clip [1]_.

References
----------
.. [1] Y. Koizumi, Y. Kawaguchi, K. Imoto, T. Nakamura, Y. Nikaido,
   R. Tanabe, H. Purohit, K. Suefusa, T. Endo, M. Yasuda and N. Harada,
   "Description and discussion on DCASE2020 Challenge Task2: Unsupervised
   anomalous sound detection for machine condition monitoring", DCASE 2020
   Workshop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def random_crop_starts(
    n_clips: int, n_samples: int, crop_samples: int, hop_length: int
) -> torch.Tensor:
    """Random crop starts, one per clip, on multiples of ``hop_length``.

    Starting on a hop keeps the crop aligned with the frames of a log-mel
    computed once for the whole clip (``cache_logmel``).  Draws from torch's
    global generator, so the fit's seed controls it.

    Parameters
    ----------
    n_clips : int
        Number of clips.
    n_samples : int
        Samples per clip; at least ``crop_samples``.
    crop_samples : int
        Samples per crop.
    hop_length : int
        The log-mel hop.

    Returns
    -------
    starts : Tensor of int64, shape (n_clips,)
        First sample of each crop.
    """
    n_positions = (n_samples - crop_samples) // hop_length + 1
    return torch.randint(0, n_positions, (n_clips,)) * hop_length


def random_crops(
    x: torch.Tensor | Mapping[str, torch.Tensor], crop_samples: int, hop_length: int
) -> torch.Tensor | dict[str, torch.Tensor]:
    """One random crop of every clip of a training batch.

    Parameters
    ----------
    x : Tensor of shape (n_clips, n_samples), or mapping
        Waveforms, or ``{"waves": ..., "logmel": ...}`` with the log-mels
        of the whole clips, shape ``(n_clips, n_mels, 1 + n_samples //
        hop_length)``.
    crop_samples : int
        Samples per crop.  Clips not longer than this are returned as they
        are.
    hop_length : int
        The log-mel hop; crops start on multiples of it.

    Returns
    -------
    Tensor or dict
        The same structure with the cropped waveforms (and the log-mel
        frames of the crop: frame ``j`` of the crop is frame ``start /
        hop_length + j`` of the clip; only the outermost frames differ from
        a log-mel of the crop alone, which pads with zeros where the clip
        has real samples).
    """
    waves = x["waves"] if isinstance(x, Mapping) else x
    n_clips, n_samples = waves.shape
    if n_samples <= crop_samples:
        return x if not isinstance(x, Mapping) else dict(x)
    starts = random_crop_starts(n_clips, n_samples, crop_samples, hop_length).to(
        waves.device
    )
    index = starts[:, None] + torch.arange(crop_samples, device=waves.device)
    cropped = torch.gather(waves, 1, index)
    if not isinstance(x, Mapping):
        return cropped
    out = dict(x)
    out["waves"] = cropped
    if out.get("logmel") is not None:
        mel = out["logmel"]
        n_frames = 1 + crop_samples // hop_length
        frames = starts[:, None] // hop_length + torch.arange(
            n_frames, device=mel.device
        )
        out["logmel"] = torch.gather(
            mel, 2, frames[:, None, :].expand(-1, mel.shape[1], -1)
        )
    return out


def n_grid_crops(n_samples: int, crop_samples: int) -> int:
    """Number of scoring crops of a clip: enough to cover every sample."""
    return max(1, math.ceil(n_samples / crop_samples))


def grid_crops(waves: torch.Tensor, crop_samples: int) -> torch.Tensor:
    """Evenly spaced crops that together cover every clip.

    ``ceil(n_samples / crop_samples)`` crops per clip, the first starting at
    sample 0 and the last ending at the clip's last sample (neighbours
    overlap when the length is not a multiple of the crop).

    Parameters
    ----------
    waves : Tensor of shape (n_clips, n_samples)
        Waveforms longer than ``crop_samples``.
    crop_samples : int
        Samples per crop.

    Returns
    -------
    crops : Tensor of shape (n_clips * n_crops, crop_samples)
        The crops of clip 0, then those of clip 1, and so on.
    """
    n_clips, n_samples = waves.shape
    n_crops = n_grid_crops(n_samples, crop_samples)
    starts = torch.linspace(0, n_samples - crop_samples, n_crops).round().long()
    index = starts.to(waves.device)[:, None] + torch.arange(
        crop_samples, device=waves.device
    )
    return waves[:, index].reshape(n_clips * n_crops, crop_samples)


def is_croppable(x: Any, crop_samples: int | None) -> bool:
    """Whether ``x`` is a batch of waveforms longer than ``crop_samples``."""
    if not crop_samples:
        return False
    waves = x.get("waves") if isinstance(x, Mapping) else x
    return (
        isinstance(waves, torch.Tensor)
        and waves.ndim == 2
        and waves.shape[1] > crop_samples
    )
