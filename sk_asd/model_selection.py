"""Model selection with labelled validation clips: a scorer and a CV splitter.

The detector trains on normal clips only, so the usual tools need two
changes before they can tune it on clips whose anomaly labels are known
(for example the labelled test clips of a DCASE development set):

* :class:`NormalOnlyTrainSplit` keeps every anomalous clip out of the
  training folds and spreads the normal and the anomalous clips of every
  machine ID over the validation folds;
* :class:`AnomalyAUCScorer` (or :func:`anomaly_auc_scorer`) scores a fitted
  detector by the DCASE figure, the AUC (or pAUC) per machine ID averaged
  over the machine IDs, with ``-decision_function`` as the anomaly score.

Both need the anomaly labels, which scikit-learn hands to them through
*metadata routing* (scikit-learn >= 1.4). Enable it, then pass the labels
to ``fit`` of the search by name::

    import sklearn
    sklearn.set_config(enable_metadata_routing=True)
    search = GridSearchCV(
        AnomalousSoundDetector(),
        {"loss_params": [{"margin": 0.3}, {"margin": 0.7}]},
        scoring=anomaly_auc_scorer(),
        cv=NormalOnlyTrainSplit(5, shuffle=True, random_state=0),
        refit=False,
    )
    search.fit(X, machine_ids, is_anomaly=is_anomaly)

The arguments of that ``fit`` are:

``X``
    Every clip, normal and anomalous, shape ``(n_clips, n_samples)``.
``y``
    The **machine IDs** (``None`` for a single machine). scikit-learn gives
    ``y[train]`` to ``AnomalousSoundDetector.fit``, where ``y`` is the machine
    IDs; the splitter stratifies by it and the scorer groups the validation
    clips by it.
``is_anomaly``
    1 for an anomalous clip, 0 for a normal one (the DCASE convention).
    It is routed to the splitter and to the scorer only; the detector never
    sees it.

Notes
-----
Use ``refit=False`` (or refit by hand): the search's final refit trains on
*all* of ``X``, anomalous clips included. Fit the chosen settings on the
normal clips instead::

    best = AnomalousSoundDetector(**search.best_params_)
    best.fit(X[is_anomaly == 0], machine_ids[is_anomaly == 0])

``return_train_score=True`` gives NaN train scores (with a warning): the
training folds hold no anomalous clip, so their AUC is undefined.

Without labelled anomalies, tune on normal clips alone with the detector's
own :meth:`~sk_asd.AnomalousSoundDetector.score` and a ``StratifiedKFold``
by machine ID.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import sklearn
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state, indexable
from sklearn.utils.metadata_routing import UNCHANGED, MetadataRequest

from sk_asd.metrics import auc_pauc

__all__ = ["AnomalyAUCScorer", "NormalOnlyTrainSplit", "anomaly_auc_scorer"]

# How to fix the most likely cause of missing labels, shared by the error
# messages of the splitter and the scorer.
_ROUTING_HINT = (
    "Enable metadata routing with sklearn.set_config(enable_metadata_routing=True) "
    "(or inside `with sklearn.config_context(enable_metadata_routing=True):`), "
    "then pass the labels by name: GridSearchCV(...).fit(X, machine_ids, "
    "is_anomaly=is_anomaly), where is_anomaly is 1 for anomalous and 0 for normal "
    "clips."
)


def _missing_labels_error(who: str) -> ValueError:
    """Error for ``is_anomaly=None``, with the fix that applies right now."""
    if sklearn.get_config()["enable_metadata_routing"]:
        cause = (
            f"{who} received no anomaly labels (is_anomaly=None). Metadata routing "
            "is enabled; pass is_anomaly=... to fit of the search (GridSearchCV, "
            "cross_validate, ...), or directly when calling it yourself."
        )
    else:
        cause = (
            f"{who} received no anomaly labels (is_anomaly=None): scikit-learn "
            "passes is_anomaly to splitters and scorers only when metadata routing "
            "is enabled, and it is disabled. " + _ROUTING_HINT
        )
    return ValueError(cause)


def _check_is_anomaly(is_anomaly: Any, n_clips: int) -> np.ndarray:
    """Validate the anomaly labels; return them as an int array of 0 and 1."""
    labels = np.asarray(is_anomaly)
    if labels.ndim != 1 or labels.shape[0] != n_clips:
        raise ValueError(
            f"is_anomaly must hold one label per clip, shape ({n_clips},); got "
            f"shape {labels.shape}"
        )
    if labels.dtype.kind not in "biuf" or not np.all(np.isin(labels, (0, 1))):
        found = np.unique(labels[~np.isin(labels, (0, 1))])[:5].tolist()
        # Refuse rather than guess: scikit-learn's outlier labels (+1 normal,
        # -1 anomalous) would otherwise be read the wrong way round.
        raise ValueError(
            "is_anomaly must hold only 1 (anomalous) and 0 (normal), the DCASE "
            f"convention; found {found}. scikit-learn outlier labels (-1 "
            "anomalous, +1 normal) convert with (labels == -1).astype(int)"
        )
    return labels.astype(int)


def _group_indices(machine_ids: Any, n_clips: int) -> dict[Any, np.ndarray]:
    """Clip indices of every machine ID, in order of first appearance."""
    if machine_ids is None:
        return {None: np.arange(n_clips)}
    # object dtype keeps each label's own Python type; a dict groups labels
    # that np.unique cannot sort (mixed str and int).
    ids = np.asarray(machine_ids, dtype=object)
    if ids.ndim != 1 or ids.shape[0] != n_clips:
        raise ValueError(
            f"machine IDs must hold one label per clip, shape ({n_clips},); got "
            f"shape {ids.shape}"
        )
    found: dict[Any, list[int]] = {}
    for i, label in enumerate(ids.tolist()):
        found.setdefault(label, []).append(i)
    return {label: np.asarray(idx) for label, idx in found.items()}


def _n_clips(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


class AnomalyAUCScorer:
    """Scorer: mean per-machine AUC (or pAUC) of ``-decision_function``.

    A scorer for :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and friends, called as
    ``scorer(estimator, X, y, is_anomaly=..., machine_ids=...)``. It
    requests ``is_anomaly`` and ``machine_ids`` through scikit-learn's
    metadata routing, so the anomaly labels given to the search's ``fit``
    reach it (routing must be enabled, see :mod:`sk_asd.model_selection`).

    scikit-learn's built-in ``"roc_auc"`` scorer cannot do this job: it
    never passes the machine IDs to ``decision_function``, and with the
    anomalies as the positive class it needs the sign of the decision
    flipped (higher decision = more normal).

    Parameters
    ----------
    max_fpr : float in (0, 1] or None, default=None
        None scores the AUC; a number scores the McClish-standardised pAUC
        up to that false-positive rate (DCASE uses 0.1).

    Attributes
    ----------
    max_fpr : float or None
        The value given.

    See Also
    --------
    anomaly_auc_scorer : The same, built by a function like ``make_scorer``.
    NormalOnlyTrainSplit : The matching cross-validation splitter.
    sk_asd.metrics.auc_pauc : The AUC and pAUC of one group of clips.

    Notes
    -----
    For each machine ID among the clips scored (``machine_ids`` if routed,
    else ``y``; all clips form one group when both are None), the AUC of
    ``-estimator.decision_function(X, machine_ids=...)`` against
    ``is_anomaly`` is computed; the score is their arithmetic mean, as in
    DCASE 2020 (a higher score is better). Machine IDs that lack normal or
    anomalous clips in this validation fold are left out of the mean; when
    no machine ID has both, scoring raises ``ValueError`` (the search then
    records ``error_score``, NaN by default).

    The machine IDs go to ``decision_function`` as ``machine_ids=`` only
    when known; otherwise ``decision_function(X)`` is called, so any
    scikit-learn outlier detector can be scored. For a
    :class:`~sklearn.pipeline.Pipeline` ending in the detector, let the
    pipeline forward them with
    ``detector.set_decision_function_request(machine_ids=True)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_asd.model_selection import AnomalyAUCScorer
    >>> class Fixed:  # a stand-in detector with fixed decisions
    ...     def decision_function(self, X, machine_ids=None):
    ...         return -np.asarray(X, dtype=float)[:, 0]
    >>> X = [[0.1], [0.4], [0.35], [0.8], [0.2], [0.3], [0.9], [0.7]]
    >>> ids = ["a"] * 4 + ["b"] * 4
    >>> scorer = AnomalyAUCScorer()
    >>> scorer(Fixed(), X, ids, is_anomaly=[0, 0, 1, 1, 0, 0, 1, 1])
    0.875
    """

    def __init__(self, *, max_fpr: float | None = None) -> None:
        if max_fpr is not None and (
            isinstance(max_fpr, bool)
            or not isinstance(max_fpr, numbers.Real)
            or not 0.0 < max_fpr <= 1.0
        ):
            raise ValueError(f"max_fpr must be None or in (0, 1], got {max_fpr!r}")
        self.max_fpr = max_fpr
        # Requested by default, so that no set_score_request call is needed;
        # True means "routed when given", never "required".
        self._score_request: dict[str, bool | str | None] = {
            "is_anomaly": True,
            "machine_ids": True,
        }

    def __repr__(self) -> str:
        args = "" if self.max_fpr is None else f"max_fpr={self.max_fpr!r}"
        return f"{type(self).__name__}({args})"

    def _routing_repr(self) -> str:
        # Used by scikit-learn's routing error messages.
        return repr(self)

    def set_score_request(
        self,
        *,
        is_anomaly: bool | str | None = UNCHANGED,
        machine_ids: bool | str | None = UNCHANGED,
    ) -> AnomalyAUCScorer:
        """Change how ``is_anomaly`` and ``machine_ids`` are requested.

        Both are requested (True) by default; this is needed only to rename
        them (a string alias) or to stop receiving one (False).

        Parameters
        ----------
        is_anomaly, machine_ids : bool, str or None, default=UNCHANGED
            True: passed to the scorer when given to the search; False: never
            passed; None: passing it is an error; a string: the name under
            which the search receives it.

        Returns
        -------
        self : AnomalyAUCScorer
            The scorer, changed in place.
        """
        new = dict(self._score_request)
        for param, alias in (("is_anomaly", is_anomaly), ("machine_ids", machine_ids)):
            if alias is not UNCHANGED:
                new[param] = alias
        # Build the request once now so that an invalid alias fails here, not
        # deep inside a search.
        self._build_request(new)
        self._score_request = new
        return self

    def _build_request(self, requests: dict[str, Any]) -> MetadataRequest:
        request = MetadataRequest(owner=self)
        for param, alias in requests.items():
            request.score.add_request(param=param, alias=alias)
        return request

    def get_metadata_routing(self) -> MetadataRequest:
        """Metadata this scorer requests: ``is_anomaly`` and ``machine_ids``.

        Returns
        -------
        routing : sklearn.utils.metadata_routing.MetadataRequest
            The requests of the ``score`` method, which scikit-learn's
            searches read to route metadata to scorers.
        """
        return self._build_request(self._score_request)

    def __call__(
        self,
        estimator: Any,
        X: Any,
        y: Any = None,
        *,
        is_anomaly: Any = None,
        machine_ids: Any = None,
    ) -> float:
        """Mean per-machine AUC (or pAUC) of the fitted ``estimator`` on ``X``.

        Parameters
        ----------
        estimator : fitted estimator with ``decision_function``
            Typically :class:`~sk_asd.AnomalousSoundDetector`; higher
            decision = more normal.
        X : array-like of shape (n_clips, n_samples)
            Validation clips.
        y : array-like of shape (n_clips,), default=None
            Machine IDs of the clips (the ``y`` of the search).
        is_anomaly : array-like of shape (n_clips,)
            1 for anomalous clips, 0 for normal ones. Required.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs given as metadata; must agree with ``y`` when both
            are given.

        Returns
        -------
        score : float
            Arithmetic mean over the machine IDs of the AUC (pAUC when
            ``max_fpr`` is set); higher is better.

        Raises
        ------
        ValueError
            If ``is_anomaly`` is missing or not 0/1, ``y`` and
            ``machine_ids`` disagree, or no machine ID has both normal and
            anomalous clips.
        """
        if is_anomaly is None:
            raise _missing_labels_error(repr(self))
        n_clips = _n_clips(X)
        labels = _check_is_anomaly(is_anomaly, n_clips)
        ids = self._machine_ids(y, machine_ids)
        groups = _group_indices(ids, n_clips)
        if ids is None:
            decision = estimator.decision_function(X)
        else:
            decision = estimator.decision_function(X, machine_ids=ids)
        # The detector's decision is higher for normal clips; DCASE's AUC
        # takes anomalies as the positive class, so flip the sign.
        anomaly_score = -np.asarray(decision, dtype=float)
        values = []
        for idx in groups.values():
            if np.ptp(labels[idx]) == 0:  # one class only: AUC undefined
                continue
            auc, pauc = auc_pauc(
                labels[idx], anomaly_score[idx], max_fpr=self.max_fpr or 1.0
            )
            values.append(auc if self.max_fpr is None else pauc)
        if not values:
            raise ValueError(
                f"{self!r}: no machine ID among the {n_clips} validation clips "
                f"has both normal and anomalous clips ({int(labels.sum())} "
                "anomalous in all), so no AUC can be computed. Give every "
                "validation fold both kinds of clips of each machine, e.g. with "
                "NormalOnlyTrainSplit and fewer splits."
            )
        return float(np.mean(values))

    @staticmethod
    def _machine_ids(y: Any, machine_ids: Any) -> Any:
        """The machine IDs to score with: ``machine_ids`` if given, else ``y``."""
        if machine_ids is None:
            return y
        if y is not None and not np.array_equal(
            np.asarray(y, dtype=object), np.asarray(machine_ids, dtype=object)
        ):
            raise ValueError(
                "y and machine_ids disagree. For AnomalousSoundDetector y is the "
                "machine IDs already; pass one of them, or the same labels to both."
            )
        return machine_ids


def anomaly_auc_scorer(*, max_fpr: float | None = None) -> AnomalyAUCScorer:
    """Make a scorer of the mean per-machine AUC (or pAUC) of anomaly labels.

    Shorthand for :class:`AnomalyAUCScorer`, in the style of
    :func:`sklearn.metrics.make_scorer`.

    Parameters
    ----------
    max_fpr : float in (0, 1] or None, default=None
        None scores the AUC; 0.1 scores the DCASE pAUC.

    Returns
    -------
    scorer : AnomalyAUCScorer
        Requests ``is_anomaly`` and ``machine_ids`` through metadata routing.

    Examples
    --------
    >>> from sk_asd.model_selection import anomaly_auc_scorer
    >>> anomaly_auc_scorer(max_fpr=0.1)
    AnomalyAUCScorer(max_fpr=0.1)
    """
    return AnomalyAUCScorer(max_fpr=max_fpr)


class NormalOnlyTrainSplit(BaseCrossValidator):
    """K-fold splitter whose training folds hold normal clips only.

    Every clip is in exactly one validation fold; the training set of a
    fold is the *normal* clips outside it, so an anomalous clip is never
    trained on. Folds are stratified by machine ID and label: the normal
    clips and the anomalous clips of every machine are each dealt round the
    folds, which puts both kinds of clips of a machine in each validation
    fold when it has at least ``n_splits`` of each, and always leaves normal
    clips of every machine in every training fold (each machine needs at
    least 2 normal clips), so the detector knows every machine ID it is
    validated on.

    The anomaly labels reach :meth:`split` through metadata routing (it
    requests ``is_anomaly`` by default); ``y`` is the machine IDs.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=False
        Shuffle the clips of each machine and label before dealing them into
        folds; otherwise they are dealt in the order given.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling; only with ``shuffle=True``.

    Attributes
    ----------
    n_splits : int
        Number of folds.
    shuffle : bool
        Whether the clips are shuffled before they are dealt into folds.
    random_state : int, RandomState instance or None
        The seed given.

    See Also
    --------
    AnomalyAUCScorer : The matching scorer.
    sklearn.model_selection.StratifiedKFold : Stratified folds over all clips.

    Notes
    -----
    Use ``refit=False`` in the search (see :mod:`sk_asd.model_selection`):
    its final refit would train on all clips, anomalies included.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_asd.model_selection import NormalOnlyTrainSplit
    >>> machine_ids = np.array(["a"] * 6 + ["b"] * 6)
    >>> is_anomaly = np.array([0, 0, 0, 0, 1, 1] * 2)
    >>> cv = NormalOnlyTrainSplit(n_splits=2)
    >>> for train, test in cv.split(np.zeros((12, 1)), machine_ids,
    ...                             is_anomaly=is_anomaly):
    ...     print(train, test)
    [1 3 7 9] [ 0  2  4  6  8 10]
    [0 2 6 8] [ 1  3  5  7  9 11]
    """

    # Request the labels by default: no set_split_request call is needed,
    # and the signature's is_anomaly is then what scikit-learn routes to.
    __metadata_request__split = {"is_anomaly": True}

    def __init__(
        self,
        n_splits: int = 5,
        *,
        shuffle: bool = False,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        # Validated here, as scikit-learn's KFold does, so that a bad value
        # fails when the splitter is made rather than inside a search.
        if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral):
            raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
        if n_splits < 2:
            raise ValueError(
                f"n_splits must be at least 2 (one training and one validation "
                f"fold), got {n_splits}"
            )
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if not shuffle and random_state is not None:
            raise ValueError(
                "random_state has no effect since shuffle is False; leave it None "
                "or set shuffle=True"
            )
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(
        self,
        X: Any = None,
        y: Any = None,
        groups: Any = None,
        is_anomaly: Any = None,
    ) -> int:
        """Number of folds.

        Parameters
        ----------
        X, y, groups, is_anomaly : object
            Ignored; accepted for compatibility.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(
        self,
        X: Any,
        y: Any = None,
        groups: Any = None,
        is_anomaly: Any = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generate (training, validation) clip indices, one pair per fold.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            The clips (only their number is used).
        y : array-like of shape (n_clips,), default=None
            Machine IDs; None means one machine.
        groups : object
            Ignored; accepted for compatibility.
        is_anomaly : array-like of shape (n_clips,)
            1 for anomalous clips, 0 for normal ones. Required.

        Yields
        ------
        train : ndarray of int
            Indices of the normal clips outside the fold, sorted.
        test : ndarray of int
            Indices of the fold's clips, normal and anomalous, sorted.

        Raises
        ------
        ValueError
            If ``is_anomaly`` is missing or not 0/1, there are fewer than
            ``n_splits`` normal or anomalous clips, or a machine ID has fewer
            than 2 normal clips.
        """
        if is_anomaly is None:
            raise _missing_labels_error(type(self).__name__)
        X, y = indexable(X, y)
        n_clips = _n_clips(X)
        labels = _check_is_anomaly(is_anomaly, n_clips)
        folds = self._assign_folds(labels, _group_indices(y, n_clips))
        normal = labels == 0
        for k in range(self.n_splits):
            in_fold = folds == k
            yield np.flatnonzero(normal & ~in_fold), np.flatnonzero(in_fold)

    def _assign_folds(
        self, labels: np.ndarray, groups: dict[Any, np.ndarray]
    ) -> np.ndarray:
        """Fold number of every clip, dealt per (machine ID, label) stratum."""
        n_normal = int(np.sum(labels == 0))
        n_anomalous = labels.size - n_normal
        for count, kind in ((n_normal, "normal"), (n_anomalous, "anomalous")):
            if count < self.n_splits:
                raise ValueError(
                    f"NormalOnlyTrainSplit(n_splits={self.n_splits}) needs at least "
                    f"{self.n_splits} {kind} clips, one per validation fold, but "
                    f"is_anomaly has {count} (training folds hold normal clips "
                    "only; every validation fold needs both kinds for an AUC). Use "
                    "fewer splits or more clips."
                )
        few_normal = [
            label for label, idx in groups.items() if np.sum(labels[idx] == 0) < 2
        ]
        if few_normal:
            raise ValueError(
                f"machine ID(s) {few_normal[:5]} have fewer than 2 normal clips: "
                "every training fold needs normal clips of each machine it is "
                "validated on. Add normal clips of these machines or drop them."
            )
        thin = [
            label
            for label, idx in groups.items()
            if 0 < np.sum(labels[idx] == 1) < self.n_splits
            or np.sum(labels[idx] == 0) < self.n_splits
        ]
        if thin:
            warnings.warn(
                f"machine ID(s) {thin[:5]} have fewer than n_splits={self.n_splits} "
                "normal or anomalous clips, so some validation folds lack one kind "
                "for them; the scorer leaves them out of those folds' mean AUC.",
                UserWarning,
                stacklevel=3,
            )

        rng = check_random_state(self.random_state) if self.shuffle else None
        folds = np.empty(labels.size, dtype=int)
        start = 0
        for idx in groups.values():
            for kind in (0, 1):
                members = idx[labels[idx] == kind]
                if rng is not None:
                    members = rng.permutation(members)
                # Round-robin within the stratum keeps its fold counts within
                # one of each other; carrying the start over from stratum to
                # stratum keeps the fold sizes balanced overall.
                folds[members] = (start + np.arange(members.size)) % self.n_splits
                start = (start + members.size) % self.n_splits
        return folds
