"""Guards that keep a failed fit or a broken score from looking like success.

Kept out of ``detector.py`` so that the detector only calls them.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from sk_asd.estimator.streaming import is_path_sequence

__all__ = [
    "NonFiniteScoreWarning",
    "check_fitted_rate",
    "forget_fitted_state",
    "labels_from_decision",
]


class NonFiniteScoreWarning(RuntimeWarning):
    """Some clips got a NaN or infinite score; they are predicted anomalous."""


def _clip_names(X: Any, rows: np.ndarray) -> list[str]:
    """The file names of ``rows`` for path input, else ``"row <i>"``."""
    if is_path_sequence(X):
        paths = list(X)
        return [os.fspath(paths[i]) for i in rows]
    return [f"row {i}" for i in rows]


def labels_from_decision(decision: np.ndarray, X: Any = None) -> np.ndarray:
    """+1 / -1 labels from ``decision_function`` values; non-finite ones -1.

    ``NaN < 0`` is false, so a plain ``decision < 0`` called a clip whose
    score broke down (e.g. samples near 1e30 overflow the log-mel) normal.
    Such clips are labelled anomalous, with a warning that names them: a
    clip nothing can be said about must get a look.

    Parameters
    ----------
    decision : ndarray of shape (n_clips,)
        ``decision_function`` values.
    X : array-like or sequence of paths, optional
        The clips, to name them in the warning (file paths) or by row.

    Returns
    -------
    labels : ndarray of shape (n_clips,), dtype int

    Warns
    -----
    NonFiniteScoreWarning
        If any decision value is NaN or infinite.
    """
    decision = np.asarray(decision)
    finite = np.isfinite(decision)
    labels = np.where(finite & (decision >= 0), 1, -1).astype(int)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        names = _clip_names(X, rows[:10])
        more = f" and {rows.size - 10} more" if rows.size > 10 else ""
        warnings.warn(
            f"{rows.size} clip(s) got a NaN or infinite anomaly score and are "
            f"predicted anomalous (-1): {', '.join(names)}{more}. Check their "
            "samples (values far outside [-1, 1] overflow the log-mel).",
            NonFiniteScoreWarning,
            stacklevel=3,
        )
    return labels


def forget_fitted_state(estimator: Any) -> None:
    """Delete every fitted attribute (names ending in ``_``) of ``estimator``.

    Called when ``fit`` fails or is interrupted, so that a half-trained
    estimator does not pass ``check_is_fitted`` and get used or saved.
    """
    for name in [k for k in vars(estimator) if k.endswith("_") and k[:2] != "__"]:
        delattr(estimator, name)


def check_fitted_rate(estimator: Any) -> None:
    """Refuse to score at a sample rate other than the one fitted.

    ``set_params(sample_rate=8000)`` after fit changed how files are
    resampled while the network (and its log-mel) stayed trained at the old
    rate: predictions changed without a word.
    """
    fitted = getattr(estimator, "sample_rate_", None)
    if fitted is None or int(estimator.sample_rate) == int(fitted):
        return
    raise ValueError(
        f"This detector was fitted on clips at {fitted} Hz, but its sample_rate "
        f"is now {estimator.sample_rate}; scores would be meaningless. Set "
        f"sample_rate={fitted} again (and resample the clips to it) or refit."
    )
