"""Options of the training criterion: ``AnomalousSoundDetector(loss_params=...)``.

One table, :data:`LOSS_PARAMS`, holds every option of the margin loss and
its default; :func:`resolve_loss_params` checks a user's dict against it and
fills in the defaults (the detector's fitted ``loss_params_``), and
:func:`net_params` routes the options to
:class:`~sk_asd.estimator.net.ASDNet`, its criterion
(:class:`~sk_asd.nn.losses.MarginLoss`) and its module
(:class:`~sk_asd.nn.network.TASTgramMFN`).  The idiom is scikit-learn's
``metric_params``: one constructor parameter, a dict of options that only
research and ablations need to change.

Options
-------
``margin`` (default 0.7)
    ArcFace angular margin ``m`` in radians, in [0, pi/2].
``scale`` (default 30.0)
    ArcFace logit scale ``s``, > 0.
``mixup_alpha`` (default 0.5)
    Mixing weights ~ Beta(mixup_alpha, mixup_alpha) for the mixup losses,
    >= 0; 0 disables mixup.
``trainable_centres`` (default True)
    Learn the class centres, or keep them at fixed random unit vectors.
``n_subclusters`` (default 16)
    Centres per machine ID for ``loss="subcluster_adacos"``, >= 1.
``bias_free`` (default False)
    Train the network without learnable additive terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    make_constraint,
)

__all__ = ["LOSS_PARAMS", "net_params", "resolve_loss_params"]

#: Every option of ``loss_params`` and its default (the paper's settings).
LOSS_PARAMS: dict[str, Any] = {
    "margin": 0.7,
    "scale": 30.0,
    "mixup_alpha": 0.5,
    "trainable_centres": True,
    "n_subclusters": 16,
    "bias_free": False,
}

#: Allowed values of each option, in scikit-learn's constraint language (the
#: same intervals as when they were constructor parameters of their own).
CONSTRAINTS: dict[str, list[Any]] = {
    "margin": [Interval(Real, 0, math.pi / 2, closed="both")],
    "scale": [Interval(Real, 0, None, closed="neither")],
    "mixup_alpha": [Interval(Real, 0, None, closed="left")],
    "trainable_centres": ["boolean"],
    "n_subclusters": [Interval(Integral, 1, None, closed="left")],
    "bias_free": ["boolean"],
}


def resolve_loss_params(loss_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every option of :data:`LOSS_PARAMS`, the given ones checked.

    Parameters
    ----------
    loss_params : dict or None
        Options that override the defaults; ``None`` keeps them all.  The
        dict is not modified.

    Returns
    -------
    dict
        A new dict with every key of :data:`LOSS_PARAMS`.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        (a ``ValueError`` and ``TypeError``) for an unknown key or a value
        outside its range; the message names the key and the valid ones.
    """
    resolved = dict(LOSS_PARAMS)
    if loss_params is None:
        return resolved
    if not isinstance(loss_params, Mapping):
        raise InvalidParameterError(
            f"loss_params must be a dict or None, got {loss_params!r}."
        )
    for key, value in loss_params.items():
        if key not in LOSS_PARAMS:
            raise InvalidParameterError(
                f"loss_params has an unknown key {key!r}; the keys are "
                f"{list(LOSS_PARAMS)}."
            )
        constraints = [make_constraint(c) for c in CONSTRAINTS[key]]
        if not any(c.is_satisfied_by(value) for c in constraints):
            allowed = " or ".join(str(c) for c in constraints)
            raise InvalidParameterError(
                f"loss_params[{key!r}] must be {allowed}; got {value!r}. The keys "
                f"and their defaults are {LOSS_PARAMS}."
            )
        resolved[key] = value
    return resolved


def net_params(loss_params_: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~sk_asd.estimator.net.ASDNet` parameters for resolved options.

    Parameters
    ----------
    loss_params_ : dict
        Options as :func:`resolve_loss_params` returns them.

    Returns
    -------
    dict
        Keyword arguments of ``ASDNet``: ``criterion__`` ones routed to
        :class:`~sk_asd.nn.losses.MarginLoss`, ``module__`` ones to
        :class:`~sk_asd.nn.network.TASTgramMFN`, and ``mixup_alpha``.
    """
    # The values as given: a float32 margin trains as it did before.
    return {
        "criterion__margin": loss_params_["margin"],
        "criterion__scale": loss_params_["scale"],
        "criterion__trainable_centres": loss_params_["trainable_centres"],
        "criterion__n_subclusters": loss_params_["n_subclusters"],
        "module__bias_free": loss_params_["bias_free"],
        "mixup_alpha": loss_params_["mixup_alpha"],
    }
