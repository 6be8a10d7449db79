"""Input checks shared by every entry point of the detector.

Errors name the problem and the fix; nothing the user passed is modified.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data


def _as_array(X: Any) -> Any:
    """``X`` as an ndarray when that is cheap and safe, else unchanged."""
    if hasattr(X, "ndim") or not isinstance(X, list | tuple):
        return X
    lengths = {np.shape(clip) for clip in X}
    if len(lengths) > 1:
        raise ValueError(
            "X holds clips of different lengths "
            f"({sorted(lengths)[:3]}...); every clip must have the same number of "
            "samples. Pad or crop them first, e.g. with "
            "sk_asd.io.load_audios(paths, length='pad')."
        )
    return X


def pcm_to_float(X: np.ndarray) -> np.ndarray:
    """Integer PCM to float32 in [-1, 1), the WAV convention (as soundfile does).

    Signed integers are divided by ``2 ** (bits - 1)``; unsigned 8-bit PCM is
    centred on 128 first.  Returns a new array; ``X`` is not modified.
    """
    if X.dtype == np.uint8:
        return (X.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(X.dtype, np.unsignedinteger):
        raise TypeError(
            f"X has unsigned integer dtype {X.dtype}, which is not a PCM audio "
            "format. Convert it to float waveforms in [-1, 1]."
        )
    bits = np.iinfo(X.dtype).bits
    return (X.astype(np.float64) / 2.0 ** (bits - 1)).astype(np.float32)


def check_waveforms(
    estimator: Any, X: Any, *, reset: bool, channels: str | int | None = None
) -> np.ndarray:
    """Validate a batch of waveforms and return it as C-contiguous float32.

    Integer arrays are read as PCM (see :func:`pcm_to_float`).  NaN or
    infinite samples, wrong shapes (single clips; multichannel arrays unless
    ``channels`` says what to do with them) and a clip length other than the
    training one raise a ``ValueError`` saying what to do.

    ``channels`` (the detector's rule) applies to arrays of shape
    ``(n_clips, n_channels, n_samples)``: ``"mean"`` averages the channels,
    an int picks one, ``"each"`` keeps them (the result is then 3-D).
    """
    if isinstance(X, str | bytes | os.PathLike):
        # Otherwise numpy tries to read the path as a number ("could not
        # convert string to float").
        raise TypeError(
            f"X is a single path ({os.fsdecode(X)!r}); pass a list of audio "
            "files (e.g. sorted(pathlib.Path(folder).glob('*.wav'))) or an array "
            "of waveforms."
        )
    X = _as_array(X)
    ndim = getattr(X, "ndim", None)
    if ndim == 3 and channels is not None:
        return _check_multichannel(estimator, X, reset=reset, channels=channels)
    if ndim == 3:
        raise ValueError(
            f"X has shape {X.shape}: 3-D input looks like multichannel audio. The "
            "detector takes mono waveforms of shape (n_clips, n_samples): average "
            "the channels (X.mean(axis=-1)) or pick one (X[..., 0]); "
            "sk_asd.io.load_audio does this for files."
        )
    if ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead (shape {X.shape}). The "
            "detector takes a batch of waveforms of shape (n_clips, n_samples). "
            "Reshape your data with X.reshape(1, -1) if it is a single clip."
        )
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.issubdtype(dtype, np.integer):
        X = pcm_to_float(np.asarray(X))
    try:
        X = validate_data(
            estimator, X, reset=reset, dtype=np.float32, ensure_all_finite=False
        )
    except ValueError as exc:
        if "features, but" in str(exc):
            raise ValueError(
                f"{exc} Each clip must have as many samples as the training clips "
                f"({estimator.n_features_in_}); pad or crop the clips to that "
                "length (sk_asd.io.load_audios(..., length='pad', "
                "target_length=...))."
            ) from exc
        raise
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"X contains NaN or inf samples in {bad.size} clip(s) (rows "
            f"{bad[:10].tolist()}{'...' if bad.size > 10 else ''}). Audio must be "
            "finite: drop or repair those clips (e.g. np.nan_to_num) first."
        )
    return np.ascontiguousarray(X)


def check_machine_ids(machine_ids: Any, n_clips: int, name: str = "y") -> np.ndarray:
    """Machine IDs as a 1-D array of hashable labels, one per clip."""
    ids = np.asarray(machine_ids)
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim == 2 and ids.shape[1] == 1:
        ids = ids.ravel()
    if ids.ndim != 1:
        raise ValueError(
            f"{name} (machine IDs) must be 1-D with one label per clip, got shape "
            f"{ids.shape}."
        )
    if ids.shape[0] != n_clips:
        raise ValueError(
            f"X has {n_clips} clips but {name} (machine IDs) has {ids.shape[0]} "
            "labels: pass exactly one machine ID per clip, in the same order."
        )
    if ids.dtype.kind == "f" and not np.isfinite(ids).all():
        raise ValueError(f"{name} (machine IDs) contains NaN or inf labels.")
    if ids.dtype.kind == "O":
        if not all(isinstance(v, Hashable) for v in ids):
            raise TypeError(f"{name} (machine IDs) must hold hashable labels.")
        missing = [i for i, v in enumerate(ids.tolist()) if v is None]
        if missing:
            raise ValueError(
                f"{name} (machine IDs) contains None at position(s) "
                f"{missing[:10]}; give every clip a machine ID."
            )
        kinds = sorted({type(v).__name__ for v in ids.tolist()})
        try:
            # np.unique sorts the IDs; mixed types (str and int) cannot be.
            sorted(set(ids.tolist()))
        except TypeError:
            raise TypeError(
                f"{name} (machine IDs) mixes labels that cannot be compared "
                f"({', '.join(kinds)}); use one type, e.g. all str."
            ) from None
    return ids


def check_attributes(attributes: Any, n_clips: int) -> np.ndarray | None:
    """Auxiliary labels (attributes, operating conditions) as str, one per clip.

    Any hashable label works; they are compared as text (``"28V"`` and
    ``28`` are different conditions, ``None`` is refused).  Returns ``None``
    when not given.
    """
    if attributes is None:
        return None
    labels = check_machine_ids(attributes, n_clips, name="attributes")
    return np.asarray([str(v) for v in labels.tolist()], dtype=object)


#: The domains ``fit`` accepts (DCASE 2021+: the many-clip source domain and
#: the few-clip target domain, recorded under other conditions).
DOMAINS = ("source", "target")


def check_domains(domains: Any, n_clips: int) -> np.ndarray | None:
    """Boolean mask of target-domain clips, or ``None`` when not given.

    ``None`` entries count as source, as in names without a domain.
    """
    if domains is None:
        return None
    values = np.asarray(domains, dtype=object)
    if values.ndim != 1 or values.shape[0] != n_clips:
        raise ValueError(
            f"domains must be 1-D with one entry per clip ({n_clips}), got shape "
            f"{values.shape}."
        )
    text = np.array(
        ["source" if v is None else str(v).strip().lower() for v in values.tolist()]
    )
    unknown = sorted(set(text.tolist()) - set(DOMAINS))
    if unknown:
        raise ValueError(
            f"domains holds {unknown[:5]}; use 'source', 'target' or None per clip."
        )
    return text == "target"


def _check_multichannel(
    estimator: Any, X: Any, *, reset: bool, channels: str | int
) -> np.ndarray:
    """``(n_clips, n_channels, n_samples)`` under the ``channels`` rule."""
    X = np.asarray(X)
    n_clips, n_channels, n_samples = X.shape
    if n_channels > n_samples:
        raise ValueError(
            f"X has shape {X.shape}: multichannel input must be (n_clips, "
            "n_channels, n_samples); move the channel axis with "
            "X.transpose(0, 2, 1)."
        )
    if isinstance(channels, str) and channels == "mean":
        if np.issubdtype(X.dtype, np.integer):
            X = pcm_to_float(X)
        return check_waveforms(estimator, X.mean(axis=1), reset=reset)
    if not isinstance(channels, str):
        if not -n_channels <= channels < n_channels:
            raise ValueError(
                f"channels={channels} but X has {n_channels} channel(s); pick one "
                f"of 0..{n_channels - 1} or use channels='mean'."
            )
        return check_waveforms(estimator, X[:, channels], reset=reset)
    # "each": every channel validated as a clip of its own.
    flat = check_waveforms(
        estimator, X.reshape(n_clips * n_channels, n_samples), reset=reset
    )
    return flat.reshape(n_clips, n_channels, -1)
