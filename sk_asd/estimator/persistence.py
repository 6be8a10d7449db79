"""A fitted detector as plain data: JSON, numpy arrays and state dicts.

:mod:`sk_asd.io.model` writes and reads model files without knowing what a
detector is; this module tells it, by registering a codec for
:class:`~sk_asd.estimator.detector.AnomalousSoundDetector` (done when
:mod:`sk_asd.estimator` is imported, which ``import sk_asd`` does).

The mapping is generic, so that a new fitted attribute needs no change here:

- constructor parameters (``get_params(deep=False)``) and every fitted
  attribute (a name ending in ``_`` in ``vars(detector)``) are stored if they
  are JSON scalars, numpy scalars or arrays, lists/tuples of those, dicts of
  str to those, or a ``numpy.random.RandomState``;
- the skorch net ``net_`` is not stored as an object: loading rebuilds it
  from the parameters (``AnomalousSoundDetector._rebuild_net``) and loads the
  module's and the criterion's state dicts, the training history and the
  int8 calibration into it.

Anything else raises a ``TypeError`` naming the attribute when saving, so a
round-trip test catches a new attribute the format cannot hold.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import torch
from skorch.history import History

from sk_asd.estimator.detector import AnomalousSoundDetector
from sk_asd.estimator.legacy import upgrade_fitted, upgrade_params
from sk_asd.estimator.loss_params import LOSS_PARAMS, resolve_loss_params
from sk_asd.io.model import ModelCodec, register_model_codec

__all__ = ["CODEC", "decode_detector", "describe_detector", "encode_detector"]

_JSON_SCALARS = (type(None), bool, int, float, str)

#: Fitted attribute names a file may set: lower-case identifiers ending in
#: "_", never dunders; anything else in a file is refused, not set.
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*_$")


class _Encoder:
    """Turns values into JSON specs, collecting their arrays by member name."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, where: str, array: np.ndarray) -> dict[str, Any]:
        if array.dtype.kind == "O":
            values = array.ravel().tolist()
            if not all(isinstance(v, _JSON_SCALARS) for v in values):
                raise TypeError(f"{where}: an object array of non-scalar values")
            return {
                "kind": "object_array",
                "shape": list(array.shape),
                "values": values,
            }
        if array.dtype.kind not in "biufcUS":
            raise TypeError(f"{where}: an array of dtype {array.dtype}")
        member = where
        self.arrays[member] = array
        return {"kind": "array", "member": member}

    def leaf(self, where: str, value: Any) -> dict[str, Any]:
        if isinstance(value, np.ndarray):
            return self._array(where, value)
        if isinstance(value, np.generic):  # before float: np.float64 is a float
            if value.dtype.kind not in "biufUS":
                raise TypeError(f"{where}: a numpy scalar of dtype {value.dtype}")
            return {
                "kind": "numpy_scalar",
                "dtype": value.dtype.str,
                "value": value.item(),
            }
        if isinstance(value, _JSON_SCALARS):
            return {"kind": "json", "value": value}
        if isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state(legacy=True)
            spec = self._array(f"{where}.keys", keys)
            return {
                "kind": "random_state",
                "keys": spec,
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            }
        raise TypeError(f"{where}: a value of type {type(value).__qualname__}")

    def value(self, where: str, value: Any) -> dict[str, Any]:
        if isinstance(value, list | tuple):
            return {
                "kind": "sequence",
                "type": "tuple" if isinstance(value, tuple) else "list",
                "items": [self.leaf(f"{where}.{i}", v) for i, v in enumerate(value)],
            }
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: a dict with non-str keys")
            return {
                "kind": "mapping",
                "items": {k: self.leaf(f"{where}.{k}", v) for k, v in value.items()},
            }
        return self.leaf(where, value)


def _decode_leaf(spec: Any, arrays: dict[str, np.ndarray]) -> Any:
    if not isinstance(spec, dict):
        raise ValueError("a stored value is malformed")
    kind = spec.get("kind")
    if kind == "json":
        value = spec.get("value")
        if not isinstance(value, _JSON_SCALARS):
            raise ValueError("a stored scalar is not a JSON scalar")
        return value
    if kind == "numpy_scalar":
        dtype = np.dtype(str(spec.get("dtype")))
        if dtype.kind not in "biufUS":
            raise ValueError(f"a stored numpy scalar has dtype {dtype}")
        return dtype.type(spec.get("value"))
    if kind == "array":
        member = spec.get("member")
        if member not in arrays:
            raise ValueError(f"the array {member!r} is missing from the file")
        return arrays[member]
    if kind == "object_array":
        values = spec.get("values")
        if not isinstance(values, list) or not all(
            isinstance(v, _JSON_SCALARS) for v in values
        ):
            raise ValueError("a stored object array is malformed")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out.reshape([int(n) for n in spec.get("shape", [len(values)])])
    if kind == "random_state":
        keys = _decode_leaf(spec.get("keys"), arrays)
        rng = np.random.RandomState()
        rng.set_state(
            (
                "MT19937",
                np.asarray(keys, dtype=np.uint32),
                int(spec["pos"]),
                int(spec["has_gauss"]),
                float(spec["cached_gaussian"]),
            )
        )
        return rng
    raise ValueError(f"a stored value has unknown kind {kind!r}")


def _decode(spec: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(spec, dict) and spec.get("kind") == "sequence":
        items = [_decode_leaf(s, arrays) for s in spec.get("items", [])]
        return tuple(items) if spec.get("type") == "tuple" else items
    if isinstance(spec, dict) and spec.get("kind") == "mapping":
        items = spec.get("items")
        if not isinstance(items, dict):
            raise ValueError("a stored mapping is malformed")
        return {str(k): _decode_leaf(s, arrays) for k, s in items.items()}
    return _decode_leaf(spec, arrays)


def _json_default(value: Any) -> Any:
    """Numpy scalars in skorch's history become Python numbers; others text."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def encode_detector(
    detector: AnomalousSoundDetector,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, dict[str, torch.Tensor]]]:
    """A fitted detector as ``(document, arrays, state_dicts)``.

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.

    Returns
    -------
    document : dict
        JSON: the parameters, the fitted attributes (or references to their
        arrays) and the net's history, device and int8 calibration.
    arrays : dict of str to numpy.ndarray
        The arrays the document refers to.
    state_dicts : dict
        ``{"module": ..., "criterion": ...}`` of the skorch net.

    Raises
    ------
    TypeError
        If a parameter or fitted attribute has a type the format cannot
        store; the message names it.
    """
    import json

    encoder = _Encoder()
    unsupported: list[str] = []

    def encode(where: str, value: Any) -> dict[str, Any] | None:
        try:
            return encoder.value(where, value)
        except TypeError as exc:
            unsupported.append(str(exc))
            return None

    params = {
        name: encode(f"param.{name}", value)
        for name, value in detector.get_params(deep=False).items()
    }
    attributes = {
        name: encode(f"attr.{name}", value)
        for name, value in sorted(vars(detector).items())
        if name.endswith("_") and not name.startswith("__") and name != "net_"
    }
    if unsupported:
        raise TypeError(
            "Cannot save this detector in the safe model format: "
            + "; ".join(unsupported)
            + ". It stores numpy arrays and scalars, JSON scalars, and lists, "
            "tuples or str-keyed dicts of those; add support for the new type "
            "in sk_asd.estimator.persistence."
        )
    net = detector.net_
    calibration = getattr(net, "int8_calibration_", None)
    history = json.loads(json.dumps(list(net.history), default=_json_default))
    document = {
        "class": "AnomalousSoundDetector",
        "params": params,
        "attributes": attributes,
        "net": {
            "device": str(net.device),
            "history": history,
            "int8_calibration": (
                None
                if calibration is None
                else {
                    "fingerprint": [float(v) for v in calibration[0]],
                    "ranges": {
                        str(k): [float(lo), float(hi)]
                        for k, (lo, hi) in calibration[1].items()
                    },
                }
            ),
        },
    }
    state_dicts = {
        "module": net.module_.state_dict(),
        "criterion": net.criterion_.state_dict(),
    }
    return document, encoder.arrays, state_dicts


def _load_device(device: str) -> str:
    """The stored device, or the CPU (with a warning) when it is not here."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"The model was trained on {device!r}, but torch sees no CUDA GPU; it "
            "is loaded on the CPU and scores there.",
            UserWarning,
            stacklevel=4,
        )
        return "cpu"
    return device


def decode_detector(
    document: dict[str, Any],
    arrays: dict[str, np.ndarray],
    state_dicts: dict[str, dict[str, torch.Tensor]],
) -> AnomalousSoundDetector:
    """Rebuild a fitted detector from :func:`encode_detector`'s output.

    Parameters
    ----------
    document : dict
        The JSON document.
    arrays : dict of str to numpy.ndarray
        Its arrays.
    state_dicts : dict
        The net's ``"module"`` and ``"criterion"`` state dicts.

    Returns
    -------
    detector : AnomalousSoundDetector
        The fitted detector, its net on the stored device (the CPU when that
        is a GPU this machine lacks). The optimizer state is not stored: a
        loaded detector scores, and ``fit`` trains from scratch anyway.

    Raises
    ------
    ValueError
        If the document is malformed, names unknown parameters, holds
        invalid parameter values or weights that do not fit the network.
    """
    params_spec = document.get("params")
    attrs_spec = document.get("attributes")
    net_doc = document.get("net")
    if not (
        isinstance(params_spec, dict)
        and isinstance(attrs_spec, dict)
        and isinstance(net_doc, dict)
    ):
        raise ValueError("the detector record is incomplete")
    known = AnomalousSoundDetector().get_params(deep=False)
    params = {name: _decode(spec, arrays) for name, spec in params_spec.items()}
    # Files of older versions: their parameters in today's layout
    # (sk_asd.estimator.legacy; e.g. margin into loss_params).
    params = upgrade_params(params)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"it sets parameters this sk_asd does not have ({unknown}); it was "
            "probably written by a newer sk_asd"
        )
    detector = AnomalousSoundDetector(**params)
    # Values from a file go through the same checks as a user's; the net is
    # built only from valid parameters.
    detector._validate_params()
    resolve_loss_params(detector.loss_params)  # its keys, as fit checks them
    for name, spec in attrs_spec.items():
        if not _ATTRIBUTE_NAME.match(name) or name == "net_" or name in known:
            raise ValueError(f"it sets an attribute named {name!r}, which is refused")
        if hasattr(type(detector), name):  # a method or property, e.g. offset_
            raise ValueError(f"it sets {name!r}, which is not a fitted attribute")
        setattr(detector, name, _decode(spec, arrays))
    # Fitted attributes of older versions, in today's layout (loss_params_,
    # speed_'s loader_workers).
    for name, value in upgrade_fitted(vars(detector)).items():
        setattr(detector, name, value)
    _check_fitted_state(detector)
    device = _load_device(str(net_doc.get("device", "cpu")))
    # Building the net initialises random weights; that must not move the
    # user's torch random stream.
    with torch.random.fork_rng(devices=[]):
        net = detector._rebuild_net(device)
    for part in ("module", "criterion"):
        if part not in state_dicts:
            raise ValueError(f"the {part} weights are missing")
        try:
            getattr(net, f"{part}_").load_state_dict(state_dicts[part], strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"the stored {part} weights do not fit the network its "
                f"parameters describe ({' '.join(str(exc).split())[:300]})"
            ) from None
    history = net_doc.get("history") or []
    if not isinstance(history, list):
        raise ValueError("the training history is malformed")
    net.history_ = History(history)
    calibration = net_doc.get("int8_calibration")
    if calibration is not None:
        net.int8_calibration_ = (
            tuple(float(v) for v in calibration["fingerprint"]),
            {
                str(k): (float(lo), float(hi))
                for k, (lo, hi) in calibration["ranges"].items()
            },
        )
    detector.net_ = net
    return detector


def _check_fitted_state(detector: AnomalousSoundDetector) -> None:
    """The fitted attributes scoring relies on have the right types and shapes.

    A file that passes this fails no later, and no stranger, than here.
    Attributes not listed here are restored as they were stored.
    """
    from sk_asd.estimator.detector import SCORING_BACKENDS

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"its fitted state is inconsistent: {what}")

    ids = getattr(detector, "machine_ids_", None)
    need(
        isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.size >= 1,
        "machine_ids_ must be a non-empty 1-D array",
    )
    n_ids = ids.size
    for name in ("n_features_in_", "n_classes_"):
        value = getattr(detector, name, None)
        need(
            isinstance(value, int | np.integer)
            and not isinstance(value, bool)
            and value >= 1,
            f"{name} must be a positive int",
        )
    need(detector.n_classes_ >= n_ids, "n_classes_ is smaller than the machine IDs")
    loss_params_ = getattr(detector, "loss_params_", None)
    try:
        valid = resolve_loss_params(loss_params_) == loss_params_
    except ValueError:
        valid = False
    need(
        isinstance(loss_params_, dict) and valid,
        f"loss_params_ must give a valid value to each of {list(LOSS_PARAMS)}",
    )
    speed_ = getattr(detector, "speed_", None)
    workers = speed_.get("loader_workers") if isinstance(speed_, dict) else 0
    need(
        isinstance(workers, int | np.integer)
        and not isinstance(workers, bool)
        and workers >= 0,
        "speed_['loader_workers'] must be an int >= 0",
    )
    rate = getattr(detector, "sample_rate_", None)
    need(
        rate is None
        or (
            isinstance(rate, int | np.integer)
            and not isinstance(rate, bool)
            and rate >= 1
        ),
        "sample_rate_ must be a positive int",
    )
    offsets = getattr(detector, "offsets_", None)
    need(
        isinstance(offsets, dict)
        and all(
            isinstance(offsets.get(b), np.ndarray)
            and offsets[b].shape == (n_ids,)
            and offsets[b].dtype.kind == "f"
            for b in SCORING_BACKENDS
        ),
        f"offsets_ must map each of {SCORING_BACKENDS} to {n_ids} float thresholds",
    )
    if not hasattr(detector, "class_machine_"):
        # Written before attributes existed: one training class per machine.
        detector.class_machine_ = np.arange(n_ids)
        detector.class_attributes_ = np.full(n_ids, "")
    banks = getattr(detector, "knn_bank_", None)
    if isinstance(banks, list) and not hasattr(detector, "bank_target_"):
        # Written before domains existed: every neighbour a source clip.
        detector.bank_target_ = [np.zeros(len(b), dtype=bool) for b in banks]
        detector.domain_ratio_ = {
            name: np.ones(n_ids) for name in ("knn", "bands", "spectrum")
        }
    if isinstance(banks, list):
        flags = detector.bank_target_
        need(
            isinstance(flags, list)
            and len(flags) == len(banks)
            and all(
                isinstance(f, np.ndarray) and f.dtype == bool and f.shape == (len(b),)
                for f, b in zip(flags, banks, strict=False)
            ),
            "bank_target_ must flag each neighbour of knn_bank_",
        )
    classes = detector.class_machine_
    need(
        isinstance(classes, np.ndarray)
        and classes.ndim == 1
        and classes.dtype.kind in "iu"
        and n_ids <= classes.size <= detector.n_classes_
        and np.array_equal(np.unique(classes), np.arange(n_ids)),
        "class_machine_ must give each training class one of the machines, "
        "every machine at least one",
    )
    centres = getattr(detector, "kmeans_centres_", None)
    need(
        isinstance(centres, list)
        and len(centres) == n_ids
        and all(
            isinstance(c, np.ndarray)
            and c.ndim == 2
            and c.shape[0] >= 1
            and c.shape[1] == detector.embedding_dim
            and c.dtype.kind == "f"
            for c in centres
        ),
        "kmeans_centres_ must hold one (n_centres, embedding_dim) float array "
        "per machine",
    )


def describe_detector(detector: AnomalousSoundDetector) -> dict[str, Any]:
    """Metadata read off a fitted detector (rate, clip length, machine IDs).

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.

    Returns
    -------
    dict
        ``sample_rate``, ``n_features_in`` and ``machine_ids`` as plain values.
    """
    ids = detector.machine_ids_.tolist()
    return {
        "sample_rate": int(getattr(detector, "sample_rate_", detector.sample_rate)),
        "n_features_in": int(detector.n_features_in_),
        "machine_ids": [m.item() if isinstance(m, np.generic) else m for m in ids],
    }


CODEC = ModelCodec(
    name="AnomalousSoundDetector",
    cls=AnomalousSoundDetector,
    encode=encode_detector,
    decode=decode_detector,
    describe=describe_detector,
)
register_model_codec(CODEC)
