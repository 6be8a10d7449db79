"""A simple reference detector: mean log-mel band energies + IsolationForest."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.ensemble import IsolationForest
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from sk_asd.estimator.validation import check_machine_ids, check_waveforms
from sk_asd.nn.frontend import LogMelSpectrogram


class _PerMachineBaseline(OutlierMixin, BaseEstimator):
    """What the baselines share: one model per machine ID, fitted on clip
    features; scores against the given machine or the best-matching one."""

    def _fit_codes(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated clips, and the machine code of each (sets ``machine_ids_``)."""
        X = check_waveforms(self, X, reset=True)
        ids = np.zeros(len(X), int) if y is None else check_machine_ids(y, len(X))
        self.machine_ids_, codes = np.unique(ids, return_inverse=True)
        return X, codes

    def _select(self, per_id: np.ndarray, machine_ids: Any) -> np.ndarray:
        """Each clip's score under its machine (``per_id`` is clips x machines);
        the best-matching machine's where ``machine_ids`` is None."""
        if machine_ids is None:
            return per_id.max(axis=1)
        ids = check_machine_ids(machine_ids, len(per_id), name="machine_ids")
        codes = np.searchsorted(self.machine_ids_, ids).clip(
            0, self.machine_ids_.size - 1
        )
        unknown = self.machine_ids_[codes] != ids
        if unknown.any():
            raise ValueError(
                f"Unknown machine ID(s) {np.unique(ids[unknown])[:5].tolist()}: "
                f"this baseline was fitted on {self.machine_ids_.tolist()}. Score "
                "them with machine_ids=None (best match) or refit with them."
            )
        return per_id[np.arange(len(per_id)), codes]


class LogMelIsolationForest(_PerMachineBaseline):
    """Per-machine IsolationForest on the mean log-mel spectrum of each clip.

    The kind of baseline every ASD method should beat: it sees the long-term
    spectrum of a clip and nothing of its temporal structure.  It shares the
    detector's interface (``fit(X, machine_ids)``, ``score_samples(X,
    machine_ids)``, higher = more normal) so the two can be compared on the
    same clips.

    Parameters
    ----------
    sample_rate : int, default=16000
        Sample rate of the waveforms.
    n_mels : int, default=128
        Mel bands of the log-mel front end (same definition as the detector's).
    n_estimators : int, default=200
        Trees per IsolationForest.
    random_state : int or None, default=None
        Seed of the forests.

    Attributes
    ----------
    machine_ids_ : ndarray of shape (n_machine_ids,)
        Machine IDs seen in ``fit``.
    forests_ : list of IsolationForest
        One forest per machine ID.
    n_features_in_ : int
        Samples per clip.

    See Also
    --------
    AnomalousSoundDetector : The deep detector this baseline is compared with.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_asd.estimator.baseline import LogMelIsolationForest
    >>> X = np.random.RandomState(0).randn(8, 4000).astype("float32") * 0.1
    >>> LogMelIsolationForest(random_state=0).fit(X).score_samples(X).shape
    (8,)
    """

    _parameter_constraints: dict = {
        "sample_rate": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_mels: int = 128,
        n_estimators: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        logmel = LogMelSpectrogram(sample_rate=self.sample_rate, n_mels=self.n_mels)
        with torch.no_grad():
            return logmel(torch.from_numpy(X)).mean(dim=-1).numpy()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> LogMelIsolationForest:
        """Fit one forest per machine ID on normal clips.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Normal waveforms.
        y : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` means one machine.

        Returns
        -------
        self : LogMelIsolationForest
        """
        X, codes = self._fit_codes(X, y)
        features = self._features(X)
        self.forests_ = [
            IsolationForest(
                n_estimators=self.n_estimators, random_state=self.random_state
            ).fit(features[codes == k])
            for k in range(self.machine_ids_.size)
        ]
        return self

    def score_samples(self, X: Any, machine_ids: Any = None) -> np.ndarray:
        """Normality of each clip (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` scores against the best-matching machine.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
        """
        check_is_fitted(self)
        X = check_waveforms(self, X, reset=False)
        features = self._features(X)
        per_id = np.stack([f.score_samples(features) for f in self.forests_], axis=1)
        return self._select(per_id, machine_ids)


class LogBandGaussian(_PerMachineBaseline):
    """Per-machine diagonal Gaussian on log-mel band statistics.

    Each clip is summarised by the mean and the standard deviation over time
    of its 64 log-mel band energies; each machine ID gets a Gaussian with
    independent features, and a clip's anomaly score is its negative
    log-likelihood.  It is the strongest of the simple baselines on the real
    clips of ``benchmarks/bench_quality.py`` and costs a fraction of a second
    to fit, so it is what the detector must beat, side by side.

    Parameters
    ----------
    sample_rate : int, default=16000
        Sample rate of the waveforms.
    n_mels : int, default=64
        Mel bands.

    Attributes
    ----------
    machine_ids_ : ndarray of shape (n_machine_ids,)
        Machine IDs seen in ``fit``.
    means_, variances_ : ndarray of shape (n_machine_ids, 2 * n_mels)
        Per machine, the mean and (floored) variance of every feature.
    n_features_in_ : int
        Samples per clip.

    See Also
    --------
    AnomalousSoundDetector : The deep detector this baseline is compared with.
    LogMelIsolationForest : Another simple baseline (mean log-mel spectrum).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_asd.estimator.baseline import LogBandGaussian
    >>> X = np.random.RandomState(0).randn(8, 4000).astype("float32") * 0.1
    >>> LogBandGaussian().fit(X).score_samples(X).shape
    (8,)
    """

    _parameter_constraints: dict = {
        "sample_rate": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 64) -> None:
        self.sample_rate = sample_rate
        self.n_mels = n_mels

    def _features(self, X: np.ndarray) -> np.ndarray:
        logmel = LogMelSpectrogram(sample_rate=self.sample_rate, n_mels=self.n_mels)
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 32):
                mel = logmel(torch.from_numpy(X[start : start + 32])).double()
                spread = mel.std(-1, correction=0)
                out.append(torch.cat([mel.mean(-1), spread], dim=1).numpy())
        return np.concatenate(out)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> LogBandGaussian:
        """Fit one Gaussian per machine ID on normal clips.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Normal waveforms.
        y : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` means one machine.

        Returns
        -------
        self : LogBandGaussian
        """
        X, codes = self._fit_codes(X, y)
        features = self._features(X)
        self.means_ = np.stack(
            [features[codes == k].mean(0) for k in range(self.machine_ids_.size)]
        )
        variances = np.stack(
            [features[codes == k].var(0) for k in range(self.machine_ids_.size)]
        )
        # A floor: a band that never moved (or a machine of one clip) must
        # not make every new clip infinitely unlikely.
        floor = 1e-3 * variances.mean(axis=1, keepdims=True) + 1e-6
        self.variances_ = variances + floor
        return self

    def score_samples(self, X: Any, machine_ids: Any = None) -> np.ndarray:
        """Log-likelihood of each clip (higher = more normal), up to a constant.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_samples)
            Waveforms.
        machine_ids : array-like of shape (n_clips,), default=None
            Machine IDs; ``None`` scores against the best-matching machine.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
        """
        check_is_fitted(self)
        X = check_waveforms(self, X, reset=False)
        f = self._features(X)[:, None, :]
        per_id = -0.5 * (
            (f - self.means_) ** 2 / self.variances_ + np.log(self.variances_)
        ).sum(axis=2)
        return self._select(per_id, machine_ids)
