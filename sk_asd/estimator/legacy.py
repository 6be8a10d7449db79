"""Detectors written by older sk_asd versions, in today's parameter layout.

Constructor parameters that were folded into others keep their meaning
under the new names, so an old model loads and scores exactly as it did:

- the nine engine switches (``precision``, ``channels_last``, ...,
  ``int8_scoring``) became options of ``speed``
  (:data:`~sk_asd.estimator.speed.SPEEDS`, same names): all at their old
  defaults is ``speed="reference"`` (which those models scored with),
  anything else a dict over ``"reference"``;
- ``margin``, ``scale``, ``mixup_alpha``, ``trainable_centres``,
  ``n_subclusters`` and ``bias_free`` became the keys of ``loss_params``
  (:data:`~sk_asd.estimator.loss_params.LOSS_PARAMS`, same names); only
  values other than the defaults are kept, ``None`` when all are defaults;
- ``n_loader_workers`` became ``speed``'s ``"loader_workers"`` (a level
  with ``n_loader_workers=2`` is ``{"level": <level>, "loader_workers":
  2}``; 0, the default, leaves ``speed`` as it was).

:func:`upgrade_params` maps the parameters, :func:`upgrade_fitted` adds
the fitted attributes such a detector lacks.  Model files
(:mod:`sk_asd.estimator.persistence`) and pickles
(``AnomalousSoundDetector.__setstate__``) go through both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sk_asd.estimator.loss_params import LOSS_PARAMS, resolve_loss_params
from sk_asd.estimator.speed import SPEEDS

__all__ = ["upgrade_fitted", "upgrade_params", "upgrade_state"]

#: The engine switches that were constructor parameters before ``speed``
#: (a record of that release: options added to ``SPEEDS`` since, such as
#: ``loader_workers``, never were).
ENGINE_SWITCHES = (
    "precision",
    "stft_precision",
    "channels_last",
    "fast_prelu",
    "cache_logmel",
    "fold_batchnorm",
    "retain_heap",
    "compile",
    "int8_scoring",
)

#: The constructor parameters that became the keys of ``loss_params``.
LOSS_PARAMETERS = tuple(LOSS_PARAMS)


def _moved(
    params: dict[str, Any],
    names: tuple[str, ...],
    replacement: str,
    defaults: dict[str, Any],
) -> dict[str, Any] | None:
    """Pop the old ``names`` from ``params``; those that differ from
    ``defaults`` (``None`` when the layout had none of them)."""
    old = [name for name in names if name in params]
    if not old:
        return None
    if replacement in params:
        raise ValueError(
            f"it sets both {replacement!r} and the parameters {old} it replaced"
        )
    values = {name: params.pop(name) for name in old}
    return {name: value for name, value in values.items() if value != defaults[name]}


def _engine_switches(params: dict[str, Any]) -> None:
    changed = _moved(params, ENGINE_SWITCHES, "speed", SPEEDS["reference"])
    if changed is not None:
        params["speed"] = {"level": "reference", **changed} if changed else "reference"


def _loss_parameters(params: dict[str, Any]) -> None:
    changed = _moved(params, LOSS_PARAMETERS, "loss_params", LOSS_PARAMS)
    if changed is not None:
        params["loss_params"] = changed or None


def _loader_workers(params: dict[str, Any]) -> None:
    if "n_loader_workers" not in params:
        return
    workers = params.pop("n_loader_workers")
    if workers == 0:
        return
    speed = params.get("speed", "auto")
    if isinstance(speed, Mapping):
        if "loader_workers" in speed:
            raise ValueError(
                "it sets both speed's 'loader_workers' and 'n_loader_workers', "
                "which it replaced"
            )
        params["speed"] = {**speed, "loader_workers": workers}
    else:
        params["speed"] = {"level": speed, "loader_workers": workers}


def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Old constructor parameters in today's layout (see the module).

    Parameters
    ----------
    params : dict
        Parameter names and values, or a detector's whole ``__dict__``
        (names not listed in the module pass through unchanged).

    Returns
    -------
    dict
        A new dict; ``params`` is not modified.

    Raises
    ------
    ValueError
        If it sets both an old parameter and the one that replaced it.
    """
    params = dict(params)
    _engine_switches(params)
    _loss_parameters(params)
    _loader_workers(params)
    return params


def upgrade_fitted(state: Mapping[str, Any]) -> dict[str, Any]:
    """Fitted attributes an old fitted detector lacks, from its parameters.

    Parameters
    ----------
    state : dict
        The detector's upgraded parameters (:func:`upgrade_params`) and
        fitted attributes.

    Returns
    -------
    dict
        The attributes to set: ``loss_params_`` when the detector is fitted
        without it, ``speed_`` with ``"loader_workers"`` added when its
        ``speed_`` lacks it.
    """
    updates: dict[str, Any] = {}
    speed_ = state.get("speed_")
    if isinstance(speed_, Mapping) and "loader_workers" not in speed_:
        speed = state.get("speed")
        workers = speed.get("loader_workers", 0) if isinstance(speed, Mapping) else 0
        updates["speed_"] = {**speed_, "loader_workers": workers}
    if "machine_ids_" in state and "loss_params_" not in state:
        updates["loss_params_"] = resolve_loss_params(state.get("loss_params"))
    return updates


def upgrade_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A pickled detector's ``__dict__`` in today's layout (both steps)."""
    state = upgrade_params(state)
    state.update(upgrade_fitted(state))
    return state
