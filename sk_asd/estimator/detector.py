"""The scikit-learn estimator: AnomalousSoundDetector."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin, _fit_context
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import LRScheduler, ProgressBar
from skorch.dataset import ValidSplit

from sk_asd.estimator import clip_statistics as stats
from sk_asd.estimator.backends import (
    FUSED,
    SCORING_BACKENDS,
    cosine_knn,
    domain_centres,
    domain_neighbour_distance,
    domain_ratio,
    fuse,
    kmeans_out_of_fold,
    machine_offsets,
    neighbour_banks,
    standardisation,
)
from sk_asd.estimator.backends import flatten_crops as _flatten_crops
from sk_asd.estimator.backends import (
    nearest_centre_distance as _nearest_centre_distance,
)
from sk_asd.estimator.backends import unit_rows as _unit_rows
from sk_asd.estimator.guards import (
    check_fitted_rate,
    forget_fitted_state,
    labels_from_decision,
)
from sk_asd.estimator.legacy import upgrade_state
from sk_asd.estimator.loss_params import net_params as loss_net_params
from sk_asd.estimator.loss_params import resolve_loss_params
from sk_asd.estimator.net import ASDNet, RestoreBestWeights
from sk_asd.estimator.presets import RECIPES, SINGLE_MACHINE_SPEEDS, auto_epochs
from sk_asd.estimator.progress import EpochProgress
from sk_asd.estimator.speed import SPEEDS, net_options, resolve_speed
from sk_asd.estimator.streaming import (
    AudioFileDataset,
    change_speed,
    clip_length_of_files,
    is_path_sequence,
)
from sk_asd.estimator.threads import torch_threads
from sk_asd.estimator.validation import (
    check_attributes,
    check_domains,
    check_machine_ids,
    check_waveforms,
)
from sk_asd.nn.losses import LOSSES, MarginLoss
from sk_asd.nn.network import DEFAULT_N_FFT, FRONTENDS, TASTgramMFN

#: The distances to the nearest training clips (the others are to centres or
#: to a Gaussian): the embedding's, and two clip statistics'.
NEIGHBOUR_DISTANCES = ("knn", "bands", "spectrum")


def _channels_of(X: Any) -> list[Any]:
    """Mono batches of validated input: one per channel of a
    ``channels="each"`` array ``(n_clips, n_channels, n_samples)``, else X."""
    if getattr(X, "ndim", 2) == 3:
        return [X[:, c] for c in range(X.shape[1])]
    return [X]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' "
            "or 'cuda:<index>'."
        ) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch sees no CUDA GPU; use "
            "device='cpu' or device='auto'."
        )
    return device


class AnomalousSoundDetector(OutlierMixin, TransformerMixin, BaseEstimator):
    """Anomalous sound detector: TASTgram-MFN trained with Noisy-ArcMix.

    The detector learns from normal recordings only.  A MobileFaceNet over
    three images of each clip (log-mel, learned Tgram, temporally attended
    log-mel) is trained to tell the machine IDs apart with an angular-margin
    loss; a clip that the network cannot place near its own machine's class
    centre is anomalous.  Training runs through skorch (fitted as ``net_``).

    The parameters that matter to most users are ``recipe`` (what is trained),
    ``scoring`` (how clips are scored), ``speed``, ``device`` and
    ``n_threads`` (how fast, on what), ``contamination`` (where the
    threshold of ``predict`` lies) and ``random_state``.  The others,
    ``loss_params`` above all, are for research and ablations; their
    defaults are the measured or published ones.

    Parameters
    ----------
    recipe : {"auto", "paper"}, default="auto"
        What the ``"auto"`` parameters below resolve to in ``fit``
        (:mod:`sk_asd.estimator.presets`).  ``"auto"``: the recipe chosen by
        measurement for tens to hundreds of clips per machine on a CPU
        (random 0.5 s crops, lr 1e-3, batch 32, 64 mels, epochs from the data
        size, every machine also played 0.9, 0.95, 1.05 and 1.1 times as fast
        as pseudo machine IDs, ``scoring="fusion"``).  ``"paper"``: Choi &
        Choi's recipe for DCASE-size data on a GPU (whole clips, 300 epochs
        at lr 1e-4, batch 64, 128 mels, ``scoring="nll"``, no pseudo IDs).
    frontend : {"tastgram", "stgram", "sgram"}, default="tastgram"
        Input images: log-mel + Tgram + temporal attention (the paper's),
        log-mel + Tgram (STgram-MFN) or log-mel only.
    loss : {"noisy_arcmix", "arcmix", "arcface", "softmax", \
            "subcluster_adacos"}, default="noisy_arcmix"
        Training criterion, see :mod:`sk_asd.nn.losses`.  The first four are
        the ablations of Choi & Choi; ``"subcluster_adacos"`` is Wilkinghoff's
        loss (``loss_params["n_subclusters"]`` centres per machine, adaptive
        scale, no margin; ``"margin"`` and ``"scale"`` are then unused).
    loss_params : dict or None, default=None
        Options of the training criterion
        (:mod:`sk_asd.estimator.loss_params`), for research and ablations;
        keys not given keep their defaults, and ``None`` keeps them all.
        Resolved in ``fit`` into ``loss_params_``; an unknown key or a value
        out of range raises there, before any training.  The keys:

        - ``"margin"`` : float in [0, pi/2], default=0.7.  ArcFace angular
          margin ``m`` in radians.
        - ``"scale"`` : float > 0, default=30.0.  ArcFace logit scale ``s``.
        - ``"mixup_alpha"`` : float >= 0, default=0.5.  Mixing weights ~
          Beta(mixup_alpha, mixup_alpha) for the mixup losses; 0 disables
          mixup.
        - ``"trainable_centres"`` : bool, default=True.  Learn the class
          centres (ArcFace) or keep them fixed at random unit vectors
          (Wilkinghoff & Kurth).
        - ``"n_subclusters"`` : int >= 1, default=16.  Centres per machine
          ID for ``loss="subcluster_adacos"``.
        - ``"bias_free"`` : bool, default=False.  Train the network without
          learnable additive terms: every BatchNorm shift is held at zero
          and the Tgram's normalisation has no shift (convolutions are
          bias-free anyway).  Wilkinghoff & Kurth, following Ruff et al.'s
          Deep SVDD, argue that bias terms let a network map every input to
          the same point, the trivial solution of a compactness loss.

        E.g. ``loss_params={"margin": 0.5}``; ``GridSearchCV(det,
        {"loss_params": [{"margin": 0.5}, {"margin": 0.7}]})`` tunes it.
    sample_rate : int, default=16000
        Sample rate of the waveforms in ``X``.  Arrays carry no rate, so it
        is the caller's promise; :mod:`sk_asd.io` resamples files to it.
    channels : {"each", "mean"} or int, default="each"
        What to do with multichannel arrays of shape ``(n_clips,
        n_channels, n_samples)`` (DCASE 2026's near and far microphones,
        MIMII's eight): ``"each"`` trains on every channel as a clip of its
        own and scores a clip by the mean of its channels' scores, ``"mean"``
        averages the channels, an int picks that channel.  On the
        generator's near and far microphones (``benchmarks/bench_channels.py``,
        2 seeds) "each" scored 75.2 AUC against 73.2 for "mean" and 70.3 for
        the far channel alone; the near channel alone scored 78.2, so pick
        it when you know which one it is.  Files are read as the mean of
        their channels; ``sk_asd.io.load_audios(..., channel="each")`` reads
        every channel as a row of its own (``AudioBatch.channels`` says
        which) for the other rules.
    n_mels : int or "auto", default="auto"
        Mel bands (and Tgram channels) of the network; ``"auto"``: the
        recipe's (64, or 128 for ``"paper"``).
    embedding_dim : int, default=128
        Size of the embedding.
    max_epochs : int or "auto", default="auto"
        Training epochs.  ``"auto"``: 300 for ``recipe="paper"``; otherwise
        about 16,000 training crops in all (20 epochs for 160 clips with
        their speed-changed copies), between 10 and 100 epochs.
    batch_size : int or "auto", default="auto"
        Clips per training and scoring batch (32, or 64 for ``"paper"``).
    lr : float or "auto", default="auto"
        AdamW learning rate, annealed with a cosine to ``0.1 * lr`` (1e-3, or
        1e-4 for ``"paper"``).
    weight_decay : float, default=0.01
        AdamW weight decay.
    validation_fraction : float or None, default=None
        Fraction of the training clips held out; when set, the weights of the
        epoch with the lowest held-out loss are kept (the paper uses 0.05).
    scoring : {"auto", "fusion", "knn", "kmeans", "cosine", "nll"}, \
default="auto"
        Anomaly score (:mod:`sk_asd.estimator.backends`).  ``"fusion"``:
        the ``"knn"`` distance plus three clip statistics (log-mel band
        levels and their spread, the fine whole-clip spectrum, a Gaussian of
        log-mel frames; :mod:`sk_asd.estimator.clip_statistics`), each
        standardised per machine by its leave-one-out scores on the training
        clips, summed: the best back-end on small data in
        ``benchmarks/bench_quality.py``.  ``"knn"``: cosine distance of the
        clip's embedding to the nearest training clip of its machine.
        ``"kmeans"``: cosine distance to the nearest of ``n_clusters``
        k-means centres of that machine's training embeddings (Wilkinghoff &
        Kurth).  ``"cosine"``: cosine distance to the machine's class centre
        (its nearest sub-centre for sub-cluster AdaCos).  ``"nll"``: the
        paper's cross-entropy of the margin logits at the clip's machine ID.
        ``"auto"``: the recipe's (``"fusion"``, or ``"nll"`` for
        ``"paper"``).  All are prepared in ``fit``:
        ``det.set_params(scoring="kmeans")`` re-scores a fitted detector
        without retraining.
    n_clusters : int, default=16
        k-means centres per machine ID for ``scoring="kmeans"``, capped at a
        quarter of that machine's training clips (of their crops, with
        ``crop_seconds``).
    contamination : "auto" or float in (0, 0.5], default="auto"
        How ``offset_`` is set, per machine ID.  ``"auto"``: the DCASE rule,
        the 90th percentile of a gamma distribution fitted to the anomaly
        scores of that machine's training clips (for ``"fusion"``, whose
        scores are sums of standardised distances and can be negative, of a
        normal distribution, as for machines of fewer than 10 clips, whose
        spread is shrunk toward the other machines').  ``"knn"`` and
        ``"fusion"`` score the training
        clips leave-one-out, so the threshold sees them as new clips.  A
        float: that fraction of the machine's training clips falls below the
        threshold.  For
        ``scoring="kmeans"`` the training clips are scored out of fold (by
        centres fitted to the other half of the machine's clips), since the
        final centres were fitted to them.
    device : str, default="auto"
        torch device ("cpu", "cuda", "cuda:1", ...); "auto" picks CUDA when
        available.
    n_threads : int or None, default=None
        torch intra-op threads used inside ``fit`` and the scoring methods
        only; the previous setting is restored afterwards (nothing is changed
        process-wide).  ``None`` keeps torch's current setting, which inside
        joblib/loky workers (``GridSearchCV(n_jobs=k)``) is already limited
        to avoid oversubscription.
    speed : {"auto", "reference", "compiled", "fastest"} or dict, \
default="auto"
        How fast the network computes the same recipe
        (:mod:`sk_asd.estimator.speed`, one table of levels); resolved in
        ``fit`` into ``speed_``, which scoring uses too (set it before
        fitting).  ``"auto"``: every speed-up exact up to float rounding
        (channels-last layout, a faster PReLU backward, log-mels cached per
        fit, BatchNorm folded for scoring, the heap kept between batches)
        plus bfloat16 autocast of the backbone where the hardware runs it
        natively, whose AUC stayed within the float32 seed spread
        (``benchmarks/bench_speed_auc.py``).  ``"reference"``: plain float32,
        every option off, the paper's arithmetic.  ``"compiled"``: ``"auto"``
        plus ``torch.compile`` (seconds to a minute of compiling per fit and
        per fitted model's first scoring call; a warning and eager code if it
        fails).  ``"fastest"``: ``"compiled"`` plus int8 scoring of the
        backbone's 1x1 convolutions on CPUs (calibrated on 64 training clips
        at the end of ``fit``; embeddings within about 0.5 % of bfloat16).
        A dict overrides single options of a level, e.g.
        ``{"level": "reference", "stft_precision": "float64"}`` (the level
        defaults to ``"auto"``); see :data:`~sk_asd.estimator.speed.SPEEDS`
        for the options.  One of them, ``"loader_workers"`` (default 0), is
        the number of worker processes of the DataLoaders that feed training
        and scoring: with audio file paths as ``X``, ``speed={
        "loader_workers": 2}`` reads and decodes the next batches while the
        network works on the current one; with arrays there is nothing to
        overlap, so keep 0.  Each worker runs torch with one thread; leave
        cores for the training threads (``n_threads``).  Results do not
        depend on it.  Measured speed-ups: ``docs/performance.rst``.
    crop_seconds : float, None or "auto", default="auto"
        ``"auto"``: the recipe's (0.5 s, or whole clips for ``"paper"``).
        Train on one random crop of this length from every clip, redrawn at
        every epoch, and score a clip by the mean score of evenly spaced
        crops of the same length that cover it (see
        :mod:`sk_asd.estimator.crops`).  Shorter crops make every training
        step cheaper in proportion; clips not longer than the crop are used
        whole.  At least ``2048 / sample_rate`` (one STFT window; ``"auto"``
        stretches its 0.5 s to that).  ``None``: whole clips, as in the
        paper.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch order and mixup.  The same seed on
        the same device and thread count gives identical scores.
    verbose : int, default=0
        0 is silent; 1 prints one plain line per epoch on stderr (loss,
        time elapsed and left); 2 adds skorch's epoch table on stdout; 3
        skorch's progress bar over the batches of each epoch.

    Attributes
    ----------
    machine_ids_ : ndarray of shape (n_machine_ids,)
        The machine IDs seen in ``fit``, sorted.
    speed_ : dict
        The engine options ``fit`` resolved ``speed`` into for its device
        (:func:`~sk_asd.estimator.speed.resolve_speed`): ``"level"``, and
        e.g. ``"precision": "bfloat16"`` where ``"auto"`` found native
        bfloat16 kernels; scoring runs with the same options.
    loss_params_ : dict
        ``loss_params`` with every key of
        :data:`~sk_asd.estimator.loss_params.LOSS_PARAMS`, the defaults
        filled in: the criterion options the network was trained with.
    offset_ : ndarray of shape (n_machine_ids,)
        Per-machine threshold on :meth:`score_samples` for the current
        ``scoring``; ``decision_function = score_samples - offset_[machine]``.
    offsets_ : dict of str to ndarray
        The thresholds of every scoring back-end.
    kmeans_centres_ : list of ndarray of shape (n_centres, embedding_dim)
        Unit-norm k-means centres of each machine's training embeddings.
    knn_bank_ : list of ndarray of shape (n_clips, embedding_dim)
        Unit-norm clip embeddings of each machine's training clips (at most
        256, drawn at random), the neighbours of ``"knn"``.
    bands_bank_, spectrum_bank_ : list of ndarray of shape (n_clips, n_features)
        Clip statistics of each machine's training clips (the clips of
        ``knn_bank_``), the neighbours of ``"fusion"``.
    frame_means_, frame_precisions_ : list of ndarray
        Mean and shrunk precision matrix of each machine's log-mel frames.
    statistics_scale_ : dict of str to ndarray
        Within-machine standard deviation of each statistic, pooled over the
        machines (the unit of its distances).
    fusion_scale_ : dict of str to ndarray of shape (n_machine_ids, 2)
        Location and scale of each fused distance per machine, from the
        leave-one-out training scores.
    max_epochs_, lr_, batch_size_, n_mels_, crop_seconds_ : int, float or None
        The training settings used, with ``"auto"`` resolved.
    pseudo_speeds_ : tuple of float
        Speed factors of the pseudo machine IDs trained beside the real ones.
    net_ : ASDNet
        The fitted skorch network; ``net_.module_`` is the TASTgram-MFN,
        ``net_.criterion_`` holds the class centres, ``net_.history`` the
        training curve.
    n_features_in_ : int
        Number of samples per training clip.
    sample_rate_ : int
        ``sample_rate`` at fit.  Scoring after ``set_params(sample_rate=...)``
        to another rate raises a ``ValueError`` (the network was trained on
        clips at this rate); set it back or refit.
    n_classes_ : int
        Classes the network was trained on: the machine IDs (or machine x
        attribute pairs), and a copy of them per factor of ``pseudo_speeds_``.
    class_machine_ : ndarray of shape (n_base_classes,)
        Machine code (index into ``machine_ids_``) of each training class
        at normal speed: ``arange(n_machine_ids)`` without ``attributes``.
    class_attributes_ : ndarray of shape (n_base_classes,)
        The attribute of each training class ("" without ``attributes``).
    n_target_clips_ : ndarray of shape (n_machine_ids,)
        Target-domain training clips per machine (``domains`` in ``fit``).

    See Also
    --------
    sklearn.ensemble.IsolationForest : A generic outlier detector.

    Notes
    -----
    Pseudo machine IDs: with ``recipe="auto"`` every machine's clips are
    also played 0.9, 0.95, 1.05 and 1.1 times as fast, each speed a class of
    its own, so the network must tell apart sounds that differ by a few per
    cent in speed and pitch: on a few easy machine IDs the auxiliary task is
    otherwise solved in a few epochs and the embedding ignores the rest
    (Wilkinghoff & Kurth).  With a single machine ID and no pseudo IDs from
    the recipe, two (0.9x and 1.1x) are added, since a one-class softmax
    learns nothing.  Pseudo IDs take part in training only, never in
    scoring.

    Clips shorter than one STFT window (2048 samples) are zero-padded.  Integer
    arrays are read as PCM and scaled to [-1, 1) (int16 / 32768, ...).

    References
    ----------
    .. [1] S. Choi and J.-W. Choi, "Noisy-ArcMix: Additive noisy angular margin
       loss combined with mixup for anomalous sound detection", ICASSP 2024,
       pp. 516-520.
    .. [2] K. Wilkinghoff and F. Kurth, "Why do angular margin losses work well
       for semi-supervised anomalous sound detection?", IEEE/ACM TASLP 32,
       2024.
    .. [3] Y. Liu et al., "Anomalous sound detection using spectral-temporal
       information fusion", ICASSP 2022.

    Examples
    --------
    >>> from sk_asd import AnomalousSoundDetector
    >>> from sk_asd.datasets import make_machine_sounds
    >>> data = make_machine_sounds(n_machines=2, n_normal_train=8, n_normal_test=2,
    ...                            n_anomalous_test=2, duration=0.5, random_state=0)
    >>> det = AnomalousSoundDetector(max_epochs=1, n_mels=32, random_state=0)
    >>> det.fit(data.X_train, data.machine_ids_train).predict(
    ...     data.X_test, machine_ids=data.machine_ids_test).shape
    (8,)
    """

    _parameter_constraints: dict = {
        "recipe": [StrOptions(set(RECIPES))],
        "frontend": [StrOptions(set(FRONTENDS))],
        "loss": [StrOptions(set(LOSSES))],
        # Its keys are checked in fit (sk_asd.estimator.loss_params).
        "loss_params": [dict, None],
        "sample_rate": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 2, None, closed="left"),
        ],
        "lr": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [None, Interval(Real, 0, 1, closed="neither")],
        "scoring": [StrOptions({"auto", *SCORING_BACKENDS})],
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
        "speed": [StrOptions(set(SPEEDS)), dict],
        "crop_seconds": [
            None,
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "channels": [
            StrOptions({"mean", "each"}),
            Interval(Integral, None, None, closed="neither"),
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        recipe: str = "auto",
        frontend: str = "tastgram",
        loss: str = "noisy_arcmix",
        loss_params: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        channels: str | int = "each",
        n_mels: int | str = "auto",
        embedding_dim: int = 128,
        max_epochs: int | str = "auto",
        batch_size: int | str = "auto",
        lr: float | str = "auto",
        weight_decay: float = 0.01,
        validation_fraction: float | None = None,
        scoring: str = "auto",
        n_clusters: int = 16,
        contamination: str | float = "auto",
        device: str = "auto",
        n_threads: int | None = None,
        speed: str | dict[str, Any] = "auto",
        crop_seconds: float | str | None = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.recipe = recipe
        self.frontend = frontend
        self.loss = loss
        self.loss_params = loss_params
        self.sample_rate = sample_rate
        self.channels = channels
        self.n_mels = n_mels
        self.embedding_dim = embedding_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.n_clusters = n_clusters
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.speed = speed
        self.crop_seconds = crop_seconds
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        attributes: Any = None,
        domains: Any = None,
    ) -> AnomalousSoundDetector:
        """Train on normal clips.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples) or sequence of paths
            Mono waveforms of normal operation at ``sample_rate``, or audio
            files.  Files are read lazily, batch by batch, so memory does not
            grow with their number; they are resampled to ``sample_rate``,
            averaged to mono, and zero-padded or cropped at the end to the
            median length of the files (a warning names files far from it).
            Every file's header is checked before training starts.
        y : array-like of shape (n_clips,), default=None
            Machine ID of every clip (any hashable labels).  ``None`` means
            all clips come from one machine.
        attributes : array-like of shape (n_clips,), default=None
            An auxiliary label per clip (attributes or operating conditions
            such as DCASE 2022+ names carry: ``"spd_28V_mic_1"``; any
            hashable, compared as text).  The network then learns to tell
            apart machine x attribute classes, a richer auxiliary task than
            the machine IDs alone (Wilkinghoff, 2023); scores, thresholds and
            ``machine_ids_`` stay per machine.  ``load_dcase(...).attributes``
            fits directly.  Inside a ``Pipeline`` or ``GridSearchCV``, route
            it with ``set_fit_request(attributes=True)`` (scikit-learn
            metadata routing).
        domains : array-like of shape (n_clips,), default=None
            ``"source"``, ``"target"`` or None (source) per clip: the few
            target-domain clips recorded under other conditions (DCASE
            2021+).  They are kept whole as neighbours and k-means centres
            of their machine, so that new clips of the target conditions find
            them instead of looking anomalous against the many source clips.

        Returns
        -------
        self : AnomalousSoundDetector
            The fitted detector.
        """
        with torch_threads(self.n_threads):
            try:
                return self._fit(X, y, attributes, domains)
            except BaseException:
                # Interrupted (Ctrl+C) or failed: must not look fitted.
                forget_fitted_state(self)
                raise

    def _resolve_recipe(self) -> None:
        """Fitted settings: each ``"auto"`` parameter replaced by the recipe's.

        ``max_epochs_`` waits for the data size (:meth:`_fit`).
        """
        recipe = RECIPES[self.recipe]
        for name in ("lr", "batch_size", "n_mels"):
            value = getattr(self, name)
            setattr(self, f"{name}_", recipe[name] if value == "auto" else value)
        crop = self.crop_seconds
        if isinstance(crop, str):  # "auto"
            crop = recipe["crop_seconds"]
            if crop is not None:
                # At least one STFT window, whatever the sample rate.
                crop = max(crop, DEFAULT_N_FFT / self.sample_rate)
        self.crop_seconds_ = crop
        self.pseudo_speeds_ = tuple(recipe["pseudo_speeds"])

    def _backend(self) -> str:
        """The scoring back-end in use (``"auto"`` resolved by the recipe)."""
        if self.scoring == "auto":
            return RECIPES[self.recipe]["scoring"]
        return self.scoring

    def _fit(
        self, X: Any, y: Any, attributes: Any = None, domains: Any = None
    ) -> AnomalousSoundDetector:
        # Before anything else: a bad key or value of loss_params fails at once.
        self.loss_params_ = resolve_loss_params(self.loss_params)
        self._resolve_recipe()
        device = resolve_device(self.device)
        # Before any I/O: a bad speed dict fails at once.
        self.speed_ = resolve_speed(self.speed, device)
        self._crop_samples()  # a crop shorter than one window fails before any I/O
        from_files = is_path_sequence(X)
        if from_files:
            X = list(X)
            # Every header is checked; clips are padded or cropped to the
            # median length (a warning names outliers).
            self.n_features_in_ = clip_length_of_files(X, self.sample_rate)
        else:
            X = check_waveforms(self, X, reset=True, channels=self.channels)
        n_clips = len(X)
        if n_clips < 2:
            raise ValueError(
                f"AnomalousSoundDetector needs at least 2 training clips, got "
                f"{n_clips} sample."
            )
        ids = (
            np.zeros(n_clips, dtype=int) if y is None else check_machine_ids(y, n_clips)
        )
        attribute_labels = check_attributes(attributes, n_clips)
        target = check_domains(domains, n_clips)
        if not from_files and X.ndim == 3:  # channels="each": a clip per channel
            n_channels = X.shape[1]
            X = np.ascontiguousarray(X.reshape(n_clips * n_channels, -1))
            ids = np.repeat(ids, n_channels)
            if attribute_labels is not None:
                attribute_labels = np.repeat(attribute_labels, n_channels)
            if target is not None:
                target = np.repeat(target, n_channels)
        # What the clips' rate was at fit; scoring at another rate raises.
        self.sample_rate_ = int(self.sample_rate)
        self.machine_ids_, codes = np.unique(ids, return_inverse=True)
        codes = codes.astype(np.int64)
        if not self.pseudo_speeds_ and self.machine_ids_.size == 1:
            self.pseudo_speeds_ = SINGLE_MACHINE_SPEEDS
        speeds = (1.0, *self.pseudo_speeds_)
        classes = self._auxiliary_classes(codes, attribute_labels)
        n_base = self.class_machine_.size
        # Copy i of class c (a machine, or a machine x attribute) is class
        # c + i * n_base.
        y_train = np.concatenate([classes + i * n_base for i in range(len(speeds))])
        self.max_epochs_ = (
            (RECIPES[self.recipe]["max_epochs"] or auto_epochs(y_train.size))
            if self.max_epochs == "auto"
            else self.max_epochs
        )
        if from_files:
            X_train: Any = AudioFileDataset(
                X,
                classes,
                n_samples=self.n_features_in_,
                sample_rate=self.sample_rate,
                speed_factors=speeds,
                label_stride=n_base,
            )
            X = self._file_dataset(X)
        else:
            extra = [change_speed(X, f) for f in speeds[1:]]
            X_train = np.concatenate([X, *extra]) if extra else X
        self.n_classes_ = int(y_train.max()) + 1

        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        self.net_ = self._build_net(device, y_train, seed, from_files=from_files)
        fork_devices = (
            [torch.device(device).index or 0] if device.startswith("cuda") else []
        )
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            self.net_.fit(X_train, None if from_files else y_train)
        # The torch scheduler references the optimizer; left in place, pickling
        # would save the optimizer a second time, outside skorch's device
        # mapping (a CUDA model would then not load on a CPU-only machine).
        for _, callback in self.net_.callbacks_:
            if isinstance(callback, LRScheduler):
                callback.lr_scheduler_ = None

        self._fit_backends(X, codes, seed, target)
        return self

    def _auxiliary_classes(
        self, codes: np.ndarray, attributes: np.ndarray | None
    ) -> np.ndarray:
        """Training class of every clip: its machine, or machine x attribute.

        Sets ``class_machine_`` (the machine code of each class) and
        ``class_attributes_`` (its attribute, "" without attributes).
        """
        n_ids = self.machine_ids_.size
        if attributes is None:
            self.class_machine_ = np.arange(n_ids)
            self.class_attributes_ = np.full(n_ids, "")
            return codes
        pairs = sorted(set(zip(codes.tolist(), attributes.tolist())))
        index = {pair: c for c, pair in enumerate(pairs)}
        self.class_machine_ = np.array([k for k, _ in pairs], dtype=np.int64)
        self.class_attributes_ = np.array([a for _, a in pairs], dtype=str)
        return np.array(
            [index[pair] for pair in zip(codes.tolist(), attributes.tolist())],
            dtype=np.int64,
        )

    def _build_net(
        self, device: str, y_train: np.ndarray, seed: int, *, from_files: bool
    ) -> ASDNet:
        callbacks: list[Any] = [
            (
                "lr_scheduler",
                LRScheduler(
                    policy="CosineAnnealingLR",
                    T_max=self.max_epochs_,
                    eta_min=0.1 * self.lr_,
                ),
            )
        ]
        if self.verbose >= 1:
            callbacks.append(("epoch_progress", EpochProgress()))
        if self.verbose >= 3:
            callbacks.append(("progress_bar", ProgressBar()))
        train_split = None
        if self.validation_fraction is not None:
            counts = np.bincount(y_train)
            n_valid = int(math.ceil(self.validation_fraction * y_train.size))
            # skorch stratifies on y, which a file dataset carries inside.
            stratified = not from_files and counts.min() >= 2 and n_valid >= counts.size
            train_split = ValidSplit(
                self.validation_fraction, stratified=stratified, random_state=seed
            )
            callbacks.append(("restore_best", RestoreBestWeights("valid_loss")))
        n_train = y_train.size - (
            0
            if train_split is None
            else int(math.ceil(self.validation_fraction * y_train.size))
        )
        return ASDNet(
            module=TASTgramMFN,
            module__frontend=self.frontend,
            module__sample_rate=self.sample_rate,
            module__n_mels=self.n_mels_,
            module__embedding_dim=self.embedding_dim,
            criterion=MarginLoss,
            criterion__n_classes=self.n_classes_,
            criterion__embedding_dim=self.embedding_dim,
            criterion__loss=self.loss,
            # margin, scale, trainable_centres, n_subclusters, bias_free and
            # mixup_alpha: the criterion options resolved in fit.
            **loss_net_params(self._loss_options()),
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr_,
            max_epochs=self.max_epochs_,
            batch_size=self.batch_size_,
            # BatchNorm cannot train on a batch of one clip.
            iterator_train__drop_last=n_train % self.batch_size_ == 1,
            iterator_train__shuffle=True,
            train_split=train_split,
            callbacks=callbacks,
            n_threads=self.n_threads,
            # The engine options of the level resolved in fit (speed_).
            **net_options(self._speed_options(device)),
            crop_samples=self._crop_samples(),
            **self._loader_params(device),
            device=device,
            # skorch's own epoch table from verbose=2 on.
            verbose=max(self.verbose - 1, 0),
        )

    def _speed_options(self, device: str) -> dict[str, Any]:
        """The resolved engine options: ``speed_`` once fitted.

        A detector loaded from a file written before ``speed_`` existed
        resolves its ``speed`` parameter (mapped from the old switches by
        :mod:`sk_asd.estimator.persistence`) here.
        """
        options = getattr(self, "speed_", None)
        return resolve_speed(self.speed, device) if options is None else options

    def _loss_options(self) -> dict[str, Any]:
        """The resolved criterion options: ``loss_params_`` once fitted."""
        options = getattr(self, "loss_params_", None)
        return resolve_loss_params(self.loss_params) if options is None else options

    def _rebuild_net(self, device: str) -> ASDNet:
        """An initialised net of the fitted architecture, weights not loaded.

        Loading a saved detector (:mod:`sk_asd.estimator.persistence`)
        rebuilds ``net_`` with this and loads the stored weights into it;
        needs the fitted ``n_classes_``.
        """
        net = self._build_net(device, np.arange(self.n_classes_), 0, from_files=False)
        return net.initialize()

    def _loader_params(self, device: str) -> dict[str, Any]:
        """DataLoader settings of the net, routed the skorch way."""
        params: dict[str, Any] = {}
        if device.startswith("cuda"):
            # Batches in page-locked memory let the copy to the GPU run
            # asynchronously (ASDNet copies with non_blocking=True).
            params["iterator_train__pin_memory"] = True
            params["iterator_valid__pin_memory"] = True
        # speed's "loader_workers" (older files and pickles get it added to
        # speed_ when loaded, see sk_asd.estimator.legacy).
        workers = self._speed_options(device)["loader_workers"]
        if workers == 0:
            return params
        for loader in ("iterator_train", "iterator_valid"):
            # Not persistent: persistent workers skip the seed draw that
            # every new iterator makes from torch's generator, which would
            # make the training randomness depend on this setting.
            params[f"{loader}__num_workers"] = workers
        return params

    def _crop_samples(self) -> int | None:
        """``crop_seconds`` in samples, checked against one STFT window."""
        if self.crop_seconds_ is None:
            return None
        crop = int(round(self.crop_seconds_ * self.sample_rate))
        n_fft = DEFAULT_N_FFT
        if crop < n_fft:
            raise ValueError(
                f"crop_seconds={self.crop_seconds} gives {crop} samples at "
                f"{self.sample_rate} Hz, shorter than one STFT window ({n_fft} "
                f"samples); use crop_seconds >= {n_fft / self.sample_rate:.3f} "
                "or None."
            )
        return crop

    def _fit_backends(
        self, X: Any, codes: np.ndarray, seed: int, target: np.ndarray | None = None
    ) -> None:
        """Centres, neighbours, statistics and thresholds of every back-end.

        Every back-end is prepared, so ``set_params(scoring=...)`` on a fitted
        detector re-scores without retraining.  ``target`` marks the
        target-domain clips, kept whole as neighbours and centres.
        """
        n_ids = self.machine_ids_.size
        if target is None:
            target = np.zeros(len(codes), dtype=bool)
        self.n_target_clips_ = np.bincount(codes[target], minlength=n_ids)
        embeddings = self._embed(X)
        flat, n_crops = _flatten_crops(embeddings)
        # (n_clips, n_crops, dim): the unit embeddings of every clip's crops.
        unit = _unit_rows(flat).reshape(len(codes), n_crops, -1)
        self.kmeans_centres_ = [
            domain_centres(
                unit,
                (codes == k) & ~target,
                (codes == k) & target,
                n_clusters=self.n_clusters,
                seed=seed,
            )
            for k in range(n_ids)
        ]
        rng = np.random.RandomState(seed)
        banks = neighbour_banks(codes, target, n_ids, rng)
        clip_unit = _unit_rows(unit.mean(axis=1))
        self.knn_bank_ = [clip_unit[rows] for rows in banks]
        self.bank_target_ = [target[rows] for rows in banks]
        frames_held_out = self._fit_statistics(X, codes, banks, rng)
        self.domain_ratio_ = {
            name: np.array(
                [
                    domain_ratio(self._distance(name), bank, self.bank_target_[k])
                    for k, bank in enumerate(self._bank(name))
                ]
            )
            for name in NEIGHBOUR_DISTANCES
        }
        # Leave-one-out scores of the bank clips: what a new normal clip of
        # the machine scores, for the fusion's standardisation and thresholds.
        held_out = {
            name: [
                self._neighbour_distance(name, k, bank, leave_one_out=True)
                for k, bank in enumerate(self._bank(name))
            ]
            for name in NEIGHBOUR_DISTANCES
        }
        held_out["frames"] = frames_held_out
        self.fusion_scale_ = {
            name: standardisation(scores) for name, scores in held_out.items()
        }
        fused = [
            fuse(
                {name: held_out[name][k] for name in FUSED},
                {name: self.fusion_scale_[name][k] for name in FUSED},
            )
            for k in range(n_ids)
        ]
        kmeans = -kmeans_out_of_fold(
            unit, codes, n_ids, n_clusters=self.n_clusters, seed=seed, target=target
        )
        self.offsets_ = {}
        for backend in SCORING_BACKENDS:
            if backend == "kmeans":
                normality = [kmeans[codes == k] for k in range(n_ids)]
            elif backend == "knn":
                normality = [-d for d in held_out["knn"]]
            elif backend == "fusion":
                normality = [-f for f in fused]
            else:
                scores = -self._anomaly_scores(embeddings, codes, backend)
                normality = [scores[codes == k] for k in range(n_ids)]
            self.offsets_[backend] = machine_offsets(
                normality, backend, self.contamination
            )

    def _fit_statistics(
        self,
        X: Any,
        codes: np.ndarray,
        banks: list[np.ndarray],
        rng: np.random.RandomState,
    ) -> list[np.ndarray]:
        """Fit the clip statistics of ``"fusion"``; the frame Gaussian's
        held-out distances of each machine's bank clips (out of fold)."""
        n_ids = self.machine_ids_.size
        # Enough frames per clip for MAX_FRAMES per machine, at least 16.
        per_clip = max(16, stats.MAX_FRAMES // int(np.bincount(codes).max()))
        features = stats.clip_statistics(
            X, self.sample_rate, max_frames_per_clip=per_clip
        )
        self.statistics_scale_ = {
            name: stats.pooled_scale(features[name], codes)
            for name in ("bands", "spectrum")
        }
        self.bands_bank_ = [features["bands"][rows] for rows in banks]
        self.spectrum_bank_ = [features["spectrum"][rows] for rows in banks]
        self.frame_means_, self.frame_precisions_, held_out = stats.fit_frame_gaussians(
            features["frames"], codes, n_ids, rng
        )
        return [
            held_out[k][np.searchsorted(np.flatnonzero(codes == k), banks[k])]
            for k in range(n_ids)
        ]

    def _file_dataset(self, paths: list[Any]) -> AudioFileDataset:
        return AudioFileDataset(
            paths, n_samples=self.n_features_in_, sample_rate=self.sample_rate
        )

    def _check_input(self, X: Any) -> np.ndarray | AudioFileDataset:
        """Validated waveforms, or a lazily read dataset for file paths."""
        check_fitted_rate(self)
        if is_path_sequence(X):
            return self._file_dataset(list(X))
        return check_waveforms(self, X, reset=False, channels=self.channels)

    @property
    def offset_(self) -> np.ndarray:
        """Per-machine thresholds of the current ``scoring`` back-end."""
        return self.offsets_[self._backend()]

    # -------------------------------------------------------------- scoring
    def _embed(self, X: np.ndarray) -> torch.Tensor:
        """Raw (unnormalised) embeddings of validated clips, on the net's device."""
        # DataLoader iterators draw a seed from torch's global generator even
        # when not shuffling; fork it so scoring leaves the user's RNG alone.
        with torch.random.fork_rng(devices=[]):
            return self.net_.forward(X, training=False, device=self.net_.device)

    def _anomaly_scores(
        self,
        embeddings: torch.Tensor,
        codes: np.ndarray,
        backend: str,
        statistics: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """DCASE-style anomaly scores (higher = more anomalous) against ``codes``.

        Embeddings of crops, shape ``(n_clips, n_crops, dim)``, give each clip
        the mean score of its crops (``"knn"`` and ``"fusion"``: the score of
        the crops' mean direction).  ``"fusion"`` needs the clips'
        ``statistics`` (:func:`~sk_asd.estimator.clip_statistics.clip_statistics`).
        """
        if backend in ("knn", "fusion"):
            return self._neighbour_scores(embeddings, codes, backend, statistics)
        flat, n_crops = _flatten_crops(embeddings)
        if n_crops > 1:
            scores = self._anomaly_scores(flat, np.repeat(codes, n_crops), backend)
            return scores.reshape(-1, n_crops).mean(axis=1)
        embeddings = flat
        if backend == "nll":
            # The clip's machine's class it matches best (with attributes, a
            # machine has several classes; without, its class is its code).
            classes = self._best_classes(self._class_cosine(embeddings), codes)
            target = torch.as_tensor(
                classes, dtype=torch.long, device=embeddings.device
            )
            scores = self.net_.criterion_.anomaly_score(embeddings, target)
            return scores.double().cpu().numpy()
        if backend == "cosine":
            cosine = self._class_cosine(embeddings)
            best = self._best_classes(cosine, codes)
            return 1.0 - cosine[np.arange(len(cosine)), best]
        unit = _unit_rows(embeddings)
        scores = np.empty(len(unit))
        for k in np.unique(codes):
            rows = codes == k
            scores[rows] = _nearest_centre_distance(unit[rows], self.kmeans_centres_[k])
        return scores

    def _neighbour_scores(
        self,
        embeddings: torch.Tensor,
        codes: np.ndarray,
        backend: str,
        statistics: dict[str, np.ndarray] | None,
    ) -> np.ndarray:
        """``"knn"`` distances, or their ``"fusion"`` with the statistics."""
        flat, n_crops = _flatten_crops(embeddings)
        unit = _unit_rows(_unit_rows(flat).reshape(-1, n_crops, flat.shape[1]).mean(1))
        scores = np.empty(len(unit))
        for k in np.unique(codes):
            rows = codes == k
            knn = self._neighbour_distance("knn", k, unit[rows])
            if backend == "knn":
                scores[rows] = knn
                continue
            assert statistics is not None
            distances = {
                "knn": knn,
                "frames": stats.frame_distance(
                    statistics["frames"][rows],
                    self.frame_means_[k],
                    self.frame_precisions_[k],
                ),
            }
            for name in ("bands", "spectrum"):
                distances[name] = self._neighbour_distance(
                    name, k, statistics[name][rows]
                )
            scores[rows] = fuse(
                distances, {name: self.fusion_scale_[name][k] for name in FUSED}
            )
        return scores

    def _bank(self, name: str) -> list[np.ndarray]:
        """The neighbours of a distance of :data:`NEIGHBOUR_DISTANCES`."""
        return getattr(self, f"{name}_bank_")

    def _distance(self, name: str) -> Callable[..., np.ndarray]:
        """``(query, bank, leave_one_out) -> nearest distances`` of ``name``."""
        if name == "knn":
            return lambda q, b, loo: cosine_knn(q, b, leave_one_out=loo)
        scale = self.statistics_scale_[name]
        return lambda q, b, loo: stats.nearest_distance(q, b, scale, leave_one_out=loo)

    def _neighbour_distance(
        self, name: str, k: int, query: np.ndarray, *, leave_one_out: bool = False
    ) -> np.ndarray:
        """Distance of ``query`` rows to machine ``k``'s neighbours of ``name``,
        its target-domain clips treated apart (:func:`domain_neighbour_distance`)."""
        return domain_neighbour_distance(
            self._distance(name),
            query,
            self._bank(name)[k],
            self.bank_target_[k],
            float(self.domain_ratio_[name][k]),
            leave_one_out=leave_one_out,
        )

    def _class_cosine(self, embeddings: torch.Tensor) -> np.ndarray:
        """Cosine of each embedding to each machine (nearest sub-centre).

        Crop embeddings ``(n_clips, n_crops, dim)`` give the mean over crops.
        """
        flat, n_crops = _flatten_crops(embeddings)
        with torch.no_grad():
            cosine = self.net_.criterion_.class_cosine(flat)
        cosine = cosine.double().cpu().numpy()
        return cosine.reshape(-1, n_crops, cosine.shape[1]).mean(axis=1)

    def _best_classes(self, cosine: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Per clip, the training class of its machine with the largest cosine
        (speed-1 classes only; the machine's code when it has one class)."""
        base = cosine[:, : self.class_machine_.size]
        own = self.class_machine_[None, :] == codes[:, None]
        return np.where(own, base, -np.inf).argmax(axis=1)

    def _codes(
        self, machine_ids: Any, n_clips: int, *, allow_unknown: bool = False
    ) -> np.ndarray | None:
        """Integer codes of known machine IDs; ``None`` when not given.

        An ID not seen in ``fit`` raises, or with ``allow_unknown`` gets the
        code -1.
        """
        if machine_ids is None:
            return None
        ids = check_machine_ids(machine_ids, n_clips, name="machine_ids")
        known = self.machine_ids_
        codes = np.searchsorted(known, ids)
        codes = np.clip(codes, 0, known.size - 1)
        unknown = known[codes] != ids
        if unknown.any() and allow_unknown:
            return np.where(unknown, -1, codes)
        if unknown.any():
            raise ValueError(
                f"Unknown machine ID(s) {np.unique(ids[unknown])[:5].tolist()}: this "
                f"detector was fitted on {known.tolist()}. Score clips of a new "
                "machine with machine_ids=None (best match) or refit with it; in "
                "cross-validation, split with StratifiedKFold(n_splits, "
                "shuffle=True) on the machine IDs, so that every test fold's "
                "machines are in its training fold."
            )
        return codes

    def _normality(self, X: Any, machine_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Normality scores and the machine code each clip was scored against."""
        with torch_threads(self.n_threads):
            return self._normality_unscoped(X, machine_ids)

    def _normality_unscoped(
        self, X: Any, machine_ids: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        X = self._check_input(X)
        codes = self._codes(machine_ids, len(X))
        channels = _channels_of(X)
        backend = self._backend()
        if codes is not None:
            anomaly = np.mean(
                [self._channel_scores(x, codes, backend) for x in channels], axis=0
            )
            return -anomaly, codes
        # Best match: the machine ID with the lowest anomaly score.
        per_id = np.mean([self._channel_scores(x, None, backend) for x in channels], 0)
        codes = per_id.argmin(axis=1)
        return -per_id[np.arange(len(X)), codes], codes

    def _channel_scores(
        self, X: Any, codes: np.ndarray | None, backend: str
    ) -> np.ndarray:
        """Anomaly scores of mono clips against ``codes``; with ``None``,
        against every machine, shape ``(n_clips, n_machine_ids)``."""
        embeddings = self._embed(X)
        statistics = (
            stats.clip_statistics(X, self.sample_rate) if backend == "fusion" else None
        )
        if codes is not None:
            return self._anomaly_scores(embeddings, codes, backend, statistics)
        return np.stack(
            [
                self._anomaly_scores(
                    embeddings, np.full(len(X), k), backend, statistics
                )
                for k in range(self.machine_ids_.size)
            ],
            axis=1,
        )

    def transform(self, X: Any) -> np.ndarray:
        """L2-normalised embeddings of the clips.

        They live on the unit sphere where the margin loss made each
        machine's normal clips compact, so any scikit-learn step can take
        over from here, e.g. ``make_pipeline(det, LocalOutlierFactor(
        novelty=True))``.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.

        Returns
        -------
        embeddings : ndarray of shape (n_clips, embedding_dim)
            Unit-norm rows (float64).
        """
        check_is_fitted(self)
        X = self._check_input(X)
        directions = []
        for x in _channels_of(X):
            with torch_threads(self.n_threads):
                embeddings = self._embed(x)
            flat, n_crops = _flatten_crops(embeddings)
            # The mean direction of the clip's crops (and channels).
            directions.append(_unit_rows(flat).reshape(-1, n_crops, flat.shape[1]))
        unit = np.concatenate(directions, axis=1).mean(axis=1)
        return _unit_rows(unit)

    def score_samples(self, X: Any, machine_ids: Any = None) -> np.ndarray:
        """Normality of each clip: the negative of the anomaly score.

        With ``scoring="nll"`` (default) the anomaly score is the paper's
        cross-entropy of the margin logits at the clip's machine ID (Choi &
        Choi, 2024); ``"cosine"`` and ``"kmeans"`` use cosine distances (see
        the class docstring).  ``score_samples`` returns its negative, so
        higher means more normal; use ``-score_samples`` with the DCASE
        metrics.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms, as many samples per clip as in ``fit``.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine ID of every clip.  ``None`` scores each clip against the
            machine ID it matches best.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
        """
        return self._normality(X, machine_ids)[0]

    def decision_function(self, X: Any, machine_ids: Any = None) -> np.ndarray:
        """``score_samples`` minus the machine's threshold; negative = anomalous.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` uses the best-matching ID.

        Returns
        -------
        decision : ndarray of shape (n_clips,)
        """
        return self.score_details(X, machine_ids).decision_function

    def score_details(self, X: Any, machine_ids: Any = None) -> Bunch:
        """Scores, decisions and the machine ID used, from one network pass.

        What :meth:`score_samples` and :meth:`decision_function` return, plus,
        with ``machine_ids=None``, which machine each clip matched best (the
        command line's ``score`` reports it).  Calling those methods
        separately would run the network once each.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` uses the best-matching ID.

        Returns
        -------
        details : sklearn.utils.Bunch
            ``score_samples`` and ``decision_function`` (ndarrays of shape
            (n_clips,)), and ``machine_ids``, the ID each clip was scored
            against.
        """
        scores, codes = self._normality(X, machine_ids)
        return Bunch(
            score_samples=scores,
            decision_function=scores - self.offset_[codes],
            machine_ids=self.machine_ids_[codes],
        )

    def predict(self, X: Any, machine_ids: Any = None) -> np.ndarray:
        """+1 for normal clips, -1 for anomalous ones.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` uses the best-matching ID.

        Returns
        -------
        labels : ndarray of shape (n_clips,), dtype int
            A clip whose score is NaN or infinite is -1 (anomalous), with a
            ``NonFiniteScoreWarning`` that names it.
        """
        decision = self.decision_function(X, machine_ids)
        # NaN/inf decisions are -1 with a warning naming the clips.
        return labels_from_decision(decision, X)

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """Fit on ``X`` with machine IDs ``y``, then predict ``X``.

        Unlike ``OutlierMixin.fit_predict``, the machine IDs are used for
        scoring too.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        y : array-like of shape (n_clips,), default=None
            Machine IDs.
        **kwargs : dict
            ``attributes`` and ``domains``, passed to :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_clips,), dtype int
        """
        return self.fit(X, y, **kwargs).predict(X, machine_ids=y)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean held-out angular margin of normal clips (higher is better).

        For every clip, the cosine similarity of its embedding to its own
        machine's class centre minus the largest cosine similarity to any
        other class centre, averaged over the clips.  On held-out *normal*
        clips this measures what Wilkinghoff & Kurth show the margin loss
        optimises: normal sounds of a machine lying compactly around their
        own centre, well apart from the other machines.  Unlike the mean of
        :meth:`score_samples`, it does not depend on the ``"margin"`` or
        ``"scale"`` of ``loss_params``, so ``GridSearchCV(det, grid,
        cv=StratifiedKFold(5)).fit(X_normal, machine_ids)`` can compare
        settings with normal clips alone (stratify the folds by machine ID,
        so that every validation machine is known).
        With labelled anomalies, prefer a scorer that uses the AUC (see
        :mod:`sk_asd.metrics`).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Normal clips.
        y : array-like of shape (n_clips,), default=None
            Their machine IDs; ``None`` uses the best-matching ID.  Clips of
            machine IDs not seen in ``fit`` (an unshuffled ``KFold`` over
            clips sorted by machine) are scored against their best-matching
            ID, with a warning that names them, so that
            ``cross_val_score(det, X, machine_ids, cv=5)`` gives a number
            rather than NaN.

        Returns
        -------
        score : float in [-2, 2]
        """
        check_is_fitted(self)
        X = self._check_input(X)
        codes = self._codes(y, len(X), allow_unknown=True)
        cosine = np.mean(
            [self._class_cosine(self._embed(x)) for x in _channels_of(X)], axis=0
        )
        n_base = self.class_machine_.size
        best = self.class_machine_[cosine[:, :n_base].argmax(axis=1)]
        if codes is None:
            codes = best
        elif (codes < 0).any():
            unknown = np.unique(np.asarray(y, dtype=object)[codes < 0])
            warnings.warn(
                f"score: {int((codes < 0).sum())} clip(s) of machine ID(s) "
                f"{unknown[:5].tolist()} not seen in fit (fitted on "
                f"{self.machine_ids_.tolist()}) are scored against their "
                "best-matching machine ID. In cross-validation, split with "
                "StratifiedKFold(n_splits, shuffle=True) and pass the machine IDs "
                "as y, so that every test fold's machines are in its training "
                "fold.",
                UserWarning,
                stacklevel=2,
            )
            codes = np.where(codes < 0, best, codes)
        rows = np.arange(len(X))
        own = cosine[rows, self._best_classes(cosine, codes)]
        # The machine's other attribute classes are not rivals; its speed
        # copies, like other machines, are.
        same = np.zeros_like(cosine, dtype=bool)
        same[:, :n_base] = self.class_machine_[None, :] == codes[:, None]
        return float(np.mean(own - np.where(same, -np.inf, cosine).max(axis=1)))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickle, mapping parameters of older versions onto
        today's (:mod:`sk_asd.estimator.legacy`): ``margin`` ... ``bias_free``
        into ``loss_params``, ``n_loader_workers`` into ``speed``."""
        super().__setstate__(upgrade_state(state))

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags
