"""Figures for judging a detector: ROC curves, histograms, the training curve.

matplotlib is an optional dependency (``pip install "sk-asd[plot]"``); it is
imported only when a function here is called. Every function draws into the
``ax`` it is given, or into a new pyplot figure, and returns the Axes (the
figure is ``ax.figure``).

Labels and scores follow the DCASE convention of :mod:`sk_asd.metrics`:
``y_true`` is 1 for an anomalous clip and 0 for a normal one, and an anomaly
score is *higher = more anomalous*. The detector's ``score_samples`` is the
other way round (higher = more normal), so pass its negative::

    anomaly_score = -det.score_samples(X_test, machine_ids=ids_test)
    plot_roc(is_anomaly_test, anomaly_score, ids_test)

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from sk_asd.plotting import plot_roc
>>> ax = plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], ["id_00"] * 4)
>>> [text.get_text() for text in ax.get_legend().get_texts()]
['id_00: AUC 0.750, pAUC 0.737', 'pAUC region (FPR ≤ 0.1)']
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.utils.validation import check_is_fitted

from sk_asd.metrics import _group_indices, auc_pauc

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "plot_angle_histogram",
    "plot_roc",
    "plot_score_histogram",
    "plot_training_curve",
    "require_matplotlib",
]

#: The command that installs the optional plotting dependency.
INSTALL_HINT = 'pip install "sk-asd[plot]"'

# Colours of the two clip classes in the histograms.
_NORMAL_COLOUR = "tab:blue"
_ANOMALOUS_COLOUR = "tab:red"

# Line label of the ROC curves when no machine IDs are given.
_ALL_CLIPS = "all clips"


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises
    ------
    ImportError
        If matplotlib is not installed; the message names
        ``pip install "sk-asd[plot]"``.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "sk_asd.plotting needs matplotlib, which is not installed; install "
            f"it with: {INSTALL_HINT}"
        ) from exc


def _axes(ax: Axes | None) -> Axes:
    """The Axes to draw into: ``ax``, or one on a new pyplot figure."""
    require_matplotlib()
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new_ax = plt.subplots(layout="constrained")
    return new_ax


def _check_is_anomaly(y_true: Any, n_clips: int) -> np.ndarray:
    """0/1 labels, one per clip, as an int array; None means all normal."""
    if y_true is None:
        return np.zeros(n_clips, dtype=int)
    labels = np.asarray(y_true)
    if labels.ndim != 1 or labels.shape[0] != n_clips:
        raise ValueError(
            f"y_true must be 1-D with one label per clip ({n_clips}); got shape "
            f"{labels.shape}"
        )
    if labels.dtype.kind not in "biuf" or not np.all(np.isin(labels, (0, 1))):
        raise ValueError(
            "y_true must hold 1 (anomalous) and 0 (normal), the DCASE convention; "
            "scikit-learn outlier labels (-1 anomalous, +1 normal) convert with "
            "(y == -1).astype(int)"
        )
    return labels.astype(int)


def _class_histograms(
    ax: Axes, values: np.ndarray, is_anomaly: np.ndarray, bins: Any, unit: str
) -> None:
    """Overlaid histograms of normal and anomalous clips on shared bins."""
    from matplotlib.ticker import MaxNLocator

    edges = np.histogram_bin_edges(values, bins=bins)
    for flag, name, colour in (
        (0, "normal", _NORMAL_COLOUR),
        (1, "anomalous", _ANOMALOUS_COLOUR),
    ):
        group = values[is_anomaly == flag]
        if group.size == 0:
            continue
        label = f"{name} (n={group.size}, median {np.median(group):.3g}{unit})"
        ax.hist(group, bins=edges, alpha=0.6, color=colour, label=label)
    ax.set_ylabel("clips")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def plot_roc(
    y_true: Any,
    anomaly_score: Any,
    machine_ids: Any,
    *,
    max_fpr: float = 0.1,
    ax: Axes | None = None,
) -> Axes:
    """Plot one ROC curve per machine ID, with the pAUC region shaded.

    The legend gives each machine's AUC and pAUC, as computed by
    :func:`sk_asd.metrics.auc_pauc` (the numbers of the DCASE tables).

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 for anomalous clips, 0 for normal ones. Every machine ID needs both.
    anomaly_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous; for the detector,
        ``-det.score_samples(X, machine_ids)``.
    machine_ids : array-like of shape (n_clips,) or None
        Machine ID of each clip; one curve per ID, in sorted order. None
        draws a single curve over all clips.
    max_fpr : float, default=0.1
        Upper end of the false-positive-rate range of the pAUC (0.1 in the
        DCASE challenges); the band ``0 <= FPR <= max_fpr`` is shaded.
    ax : matplotlib Axes, default=None
        Axes to draw into; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with the curves, the shaded band and the legend.

    Raises
    ------
    ValueError
        If the inputs differ in length, ``y_true`` holds other labels than 0
        and 1, or a machine ID lacks normal or anomalous clips.
    """
    scores = np.asarray(anomaly_score, dtype=float)
    if scores.ndim != 1:
        raise ValueError(
            f"anomaly_score must be 1-D (one score per clip); got {scores.shape}"
        )
    n_clips = scores.shape[0]
    labels = _check_is_anomaly(y_true, n_clips)
    if machine_ids is None:
        groups: list[Hashable] = [_ALL_CLIPS] * n_clips
    else:
        ids = np.asarray(machine_ids, dtype=object)
        if ids.ndim != 1 or ids.shape[0] != n_clips:
            raise ValueError(
                f"machine_ids must be 1-D with one ID per clip ({n_clips}); got "
                f"shape {ids.shape}"
            )
        groups = ids.tolist()

    # Numbers first, so that bad input fails before anything is drawn.
    curves = []
    for machine, idx in _group_indices(groups).items():
        n_anomalous = int(labels[idx].sum())
        if n_anomalous in (0, idx.size):
            raise ValueError(
                f"machine ID {machine!r} has {idx.size - n_anomalous} normal and "
                f"{n_anomalous} anomalous clips; its ROC curve needs both"
            )
        auc, pauc = auc_pauc(labels[idx], scores[idx], max_fpr=max_fpr)
        fpr, tpr, _ = roc_curve(labels[idx], scores[idx])
        curves.append((machine, fpr, tpr, auc, pauc))

    ax = _axes(ax)
    band = ax.axvspan(
        0.0,
        max_fpr,
        color="0.85",
        zorder=0,
        label=f"pAUC region (FPR \N{LESS-THAN OR EQUAL TO} {max_fpr:g})",
    )
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1, label="_chance")
    handles = []
    for machine, fpr, tpr, auc, pauc in curves:
        label = f"{machine}: AUC {auc:.3f}, pAUC {pauc:.3f}"
        handles += ax.plot(fpr, tpr, label=label)
    # A little room, so that curves along the edges are not hidden by the spines.
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.02)
    ax.set_xlabel("false positive rate (normal clips flagged)")
    ax.set_ylabel("true positive rate (anomalous clips found)")
    ax.set_title("ROC per machine ID")
    # Explicit handles: the machines in order, then the band.
    ax.legend(handles=[*handles, band], loc="lower right", fontsize="small")
    return ax


def _embedding_angles(detector: Any, X: Any, machine_ids: Any) -> np.ndarray:
    """Angle in degrees between each clip's embedding and its machine centre."""
    # The "cosine" scoring back-end measures exactly this, as a cosine distance
    # (score_samples = cos - 1); a shallow copy switches to it without
    # touching the caller's detector or copying the network.
    cosine_detector = copy.copy(detector).set_params(scoring="cosine")
    cosine = 1.0 + cosine_detector.score_samples(X, machine_ids)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def plot_angle_histogram(
    detector: Any,
    X: Any,
    y_true: Any,
    machine_ids: Any,
    *,
    ax: Axes | None = None,
    bins: int | Sequence[float] | str = 30,
) -> Axes:
    """Histogram of angles between embeddings and their machine's centre.

    The margin loss pulls the normal clips of a machine towards its class
    centre (the row of the margin head for that machine ID; its nearest
    sub-centre with ``loss="subcluster_adacos"``), so normal clips should sit
    at small angles and anomalous clips further out; the overlap of the two
    histograms shows how compact the normal clips are and how well the
    anomalies separate (the figure of Choi & Choi, 2024). The angle is the
    arccos of the cosine similarity that ``scoring="cosine"`` turns into its
    anomaly score, whatever the detector's own ``scoring``.

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.
    X : array-like of shape (n_clips, n_samples) or list of paths
        Clips, as for ``detector.score_samples``.
    y_true : array-like of shape (n_clips,) or None
        1 for anomalous clips, 0 for normal ones; None if all are normal
        (e.g. the training clips).
    machine_ids : array-like of shape (n_clips,) or None
        Machine ID of each clip, one of ``detector.machine_ids_``; None
        measures each clip against the centre it is closest to.
    ax : matplotlib Axes, default=None
        Axes to draw into; None makes a new figure.
    bins : int, sequence of float or str, default=30
        Bins shared by both histograms, as for :func:`numpy.histogram`.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with one histogram per class present (normal in blue,
        anomalous in red); the legend gives each class's count and median.

    Raises
    ------
    ValueError
        If a machine ID is unknown to the detector or ``y_true`` is invalid.
    """
    check_is_fitted(detector)
    angles = _embedding_angles(detector, X, machine_ids)
    labels = _check_is_anomaly(y_true, angles.shape[0])
    ax = _axes(ax)
    _class_histograms(ax, angles, labels, bins, "\N{DEGREE SIGN}")
    ax.set_xlabel("angle between embedding and machine centre (degrees)")
    ax.set_title("Embedding angles to the class centres")
    ax.legend(fontsize="small")
    return ax


def plot_score_histogram(
    detector: Any,
    X: Any,
    y_true: Any,
    machine_ids: Any,
    *,
    ax: Axes | None = None,
    bins: int | Sequence[float] | str = 30,
) -> Axes:
    """Histogram of ``decision_function`` values with the decision threshold.

    ``decision_function`` is ``score_samples`` minus the threshold of the
    clip's machine ID, so every machine's threshold lies at 0 and clips to
    its left are flagged anomalous (``predict`` gives -1).

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.
    X : array-like of shape (n_clips, n_samples) or list of paths
        Clips, as for ``detector.decision_function``.
    y_true : array-like of shape (n_clips,) or None
        1 for anomalous clips, 0 for normal ones; None if all are normal.
    machine_ids : array-like of shape (n_clips,) or None
        Machine ID of each clip; None scores each clip against its best
        match, as ``decision_function`` does.
    ax : matplotlib Axes, default=None
        Axes to draw into; None makes a new figure.
    bins : int, sequence of float or str, default=30
        Bins shared by both histograms, as for :func:`numpy.histogram`.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with one histogram per class present (normal in blue,
        anomalous in red) and a dashed vertical line at the threshold, 0.
    """
    decision = np.asarray(detector.decision_function(X, machine_ids), dtype=float)
    labels = _check_is_anomaly(y_true, decision.shape[0])
    ax = _axes(ax)
    _class_histograms(ax, decision, labels, bins, "")
    n_flagged = int(np.sum(decision < 0))
    ax.axvline(
        0.0,
        color="black",
        linestyle="--",
        label=f"threshold ({n_flagged} of {decision.size} clips flagged)",
    )
    ax.set_xlabel("decision_function (negative = flagged anomalous)")
    ax.set_title("Scores and the decision threshold")
    ax.legend(fontsize="small")
    return ax


def plot_training_curve(detector: Any, *, ax: Axes | None = None) -> Axes:
    """Plot the training loss per epoch, and the validation loss if any.

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector; its skorch ``net_.history`` is read.
    ax : matplotlib Axes, default=None
        Axes to draw into; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes
        The Axes with ``train_loss`` against the epoch number (one point per
        epoch) and, when the detector held clips out
        (``validation_fraction``), ``valid_loss`` and a dotted vertical line
        at the epoch of its lowest value, whose weights the detector kept.
    """
    check_is_fitted(detector, "net_")
    history = detector.net_.history
    epochs = np.array([row["epoch"] for row in history], dtype=int)
    train_loss = np.array([row["train_loss"] for row in history], dtype=float)
    valid = [
        (row["epoch"], row["valid_loss"]) for row in history if "valid_loss" in row
    ]
    ax = _axes(ax)
    from matplotlib.ticker import MaxNLocator

    ax.plot(epochs, train_loss, marker="o", markersize=3, label="train_loss")
    if valid:
        valid_epochs, valid_loss = (np.asarray(v) for v in zip(*valid))
        ax.plot(valid_epochs, valid_loss, marker="o", markersize=3, label="valid_loss")
        best = int(valid_epochs[np.argmin(valid_loss)])
        ax.axvline(
            best, color="0.4", linestyle=":", label=f"lowest valid_loss (epoch {best})"
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title("Training curve")
    ax.legend(fontsize="small")
    return ax
