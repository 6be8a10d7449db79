"""Speed levels: what ``AnomalousSoundDetector(speed=...)`` switches on.

One table, :data:`SPEEDS`, names every engine option of the network for each
level; :func:`resolve_speed` turns a level (or a dict of overrides) into the
options a ``fit`` on a given device uses, recorded as the detector's fitted
``speed_``; :func:`net_options` routes them to :class:`~sk_asd.estimator.net.ASDNet`.
The benchmarks and tests take their option sets from here, so that a new
speed-up is one row of the table (plus its implementation in ``inference.py``,
``net.py`` or ``sk_asd.nn``), never a new constructor parameter.

Levels
------
``"reference"``
    Plain float32, every option off: the paper's arithmetic (the log-mel's
    STFT in float32 with float64 where a frame needs it, within 1e-3 dB of
    float64).
``"auto"`` (the detector's default)
    Every speed-up that is exact up to float rounding (channels-last memory
    format, the faster PReLU backward, log-mels cached per fit, BatchNorm
    folded for scoring, the heap kept across batches, AdamW's fused kernel
    where torch has one for the device), plus bfloat16 autocast
    of the backbone where the hardware runs it natively (CPUs with
    AVX512-BF16/AMX, CUDA): ``benchmarks/bench_speed_auc.py`` measured AUCs
    within the float32 seed-to-seed spread with it.
``"compiled"``
    ``"auto"`` plus ``torch.compile`` of the backbone (training) and of a
    BatchNorm-folded scoring copy; compiling costs seconds to a minute per
    fit and per fitted model's first scoring call.
``"fastest"``
    ``"compiled"`` plus int8 scoring of the backbone's 1x1 convolutions on a
    CPU (calibrated at the end of ``fit``; training is unchanged).  On a GPU,
    or a torch build without oneDNN's quantised convolution, it is
    ``"compiled"``.

Every level loads data in the main process (``loader_workers`` 0); a dict
such as ``speed={"loader_workers": 2}`` (the ``"auto"`` level with two
DataLoader workers) overlaps reading audio files with training.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from numbers import Integral
from typing import Any

import torch

from sk_asd.estimator.net import resolve_amp_dtype
from sk_asd.nn.quantization import int8_available

__all__ = [
    "SPEEDS",
    "SPEED_LEVELS",
    "fused_adamw_available",
    "net_options",
    "resolve_speed",
]

#: Every engine option of the network and its value at each level.  The
#: options change how fast the same recipe runs, not what it learns, up to
#: float rounding (``precision`` and ``int8_scoring`` round more coarsely).
#:
#: - ``precision``: autocast of the backbone, "float32", "bfloat16",
#:   "float16" or "auto" (bfloat16 where native, see
#:   :func:`~sk_asd.estimator.net.resolve_amp_dtype`);
#: - ``stft_precision``: "adaptive" (float32, float64 where needed) or
#:   "float64" (every frame);
#: - ``channels_last``: NHWC backbone (faster oneDNN kernels);
#: - ``fast_prelu``: PReLU with a faster, bitwise-equal backward (CPU);
#: - ``cache_logmel``: log-mels of array input computed once per fit;
#: - ``fold_batchnorm``: score with BatchNorm folded into the convolutions;
#: - ``retain_heap``: keep freed activations in the process (glibc);
#: - ``fused_optimizer``: AdamW's fused kernel (one pass over the weights
#:   per step instead of a dozen element-wise kernels); the same update up
#:   to float rounding;
#: - ``compile``: ``torch.compile`` for training and scoring;
#: - ``int8_scoring``: int8 1x1 convolutions when scoring (CPU);
#: - ``loader_workers``: worker processes of the DataLoaders that feed
#:   training and scoring (an int >= 0; 0 loads in the main process).  With
#:   audio files as ``X`` they read and decode the next batches while the
#:   network works; with arrays there is nothing to overlap.  Results do not
#:   depend on it.
SPEEDS: dict[str, dict[str, Any]] = {
    "reference": {
        "precision": "float32",
        "stft_precision": "adaptive",
        "channels_last": False,
        "fast_prelu": False,
        "cache_logmel": False,
        "fold_batchnorm": False,
        "retain_heap": False,
        "fused_optimizer": False,
        "compile": False,
        "int8_scoring": False,
        "loader_workers": 0,
    },
}
SPEEDS["auto"] = {
    **SPEEDS["reference"],
    "precision": "auto",
    "channels_last": True,
    "fast_prelu": True,
    "cache_logmel": True,
    "fold_batchnorm": True,
    "retain_heap": True,
    "fused_optimizer": True,
}
SPEEDS["compiled"] = {**SPEEDS["auto"], "compile": True}
SPEEDS["fastest"] = {**SPEEDS["compiled"], "int8_scoring": True}

#: The level names, slowest first.
SPEED_LEVELS: tuple[str, ...] = tuple(SPEEDS)

#: Allowed values of each option (checked for dicts passed as ``speed``).
_CHOICES: dict[str, tuple[Any, ...]] = {
    "precision": ("float32", "auto", "bfloat16", "float16"),
    "stft_precision": ("adaptive", "float64"),
}

#: Options that take a count (an int >= 0) rather than a choice or a bool.
_COUNTS = ("loader_workers",)


def _check_overrides(speed: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a dict ``speed``: its ``"level"`` with its overrides."""
    level = speed.get("level", "auto")
    if level not in SPEEDS:
        raise ValueError(
            f"speed['level']={level!r} is not a speed level; use one of {list(SPEEDS)}."
        )
    options = dict(SPEEDS[level])
    for name, value in speed.items():
        if name == "level":
            continue
        if name not in options:
            raise ValueError(
                f"speed has an unknown option {name!r}; the options are "
                f"{sorted(options)} (and 'level', the level they modify)."
            )
        if name in _COUNTS:
            # An int by type (numpy ints too); bools and floats are refused.
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"speed[{name!r}]={value!r} is not valid; use an int >= 0."
                )
            options[name] = int(value)
            continue
        allowed = _CHOICES.get(name, (False, True))
        # bool is checked by type: 0/1 and numpy bools pass, strings do not.
        valid = (
            value in allowed
            if name in _CHOICES
            else isinstance(value, bool) or type(value).__name__ == "bool_"
        )
        if not valid:
            raise ValueError(
                f"speed[{name!r}]={value!r} is not valid; use one of {list(allowed)}."
            )
        options[name] = value if name in _CHOICES else bool(value)
    return options


@lru_cache(maxsize=8)
def fused_adamw_available(device_type: str) -> bool:
    """Whether ``torch.optim.AdamW(fused=True)`` runs on ``device_type``.

    torch has fused AdamW kernels for CUDA since 2.0 and for the CPU since
    2.4; the check builds one on a tensor of that device (no GPU: ``False``).

    Parameters
    ----------
    device_type : str
        ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    bool
    """
    try:
        weight = torch.zeros(1, device=device_type, requires_grad=True)
        torch.optim.AdamW([weight], fused=True)
    except (RuntimeError, TypeError, ValueError, AssertionError):
        return False
    return True


def resolve_speed(speed: str | Mapping[str, Any], device: str) -> dict[str, Any]:
    """The engine options a ``fit`` on ``device`` uses for ``speed``.

    Parameters
    ----------
    speed : str or dict
        A level of :data:`SPEEDS`, or a dict of options that override a
        level's (``{"level": "reference", "precision": "bfloat16"}``; the
        level defaults to ``"auto"``).
    device : str
        The torch device of the fit ("cpu", "cuda", "cuda:1", ...).

    Returns
    -------
    dict
        ``"level"`` (the level, or ``"custom"`` for a dict) and every option
        of :data:`SPEEDS` resolved for ``device``: ``precision`` is the
        autocast dtype actually used ("float32" where bfloat16 would be
        emulated); ``fast_prelu`` is off on GPUs (measured on CPUs only);
        the levels drop ``int8_scoring`` where it cannot run (GPUs, torch
        builds without oneDNN's quantised convolution), while a dict asking
        for it there fails in ``fit`` with a ``ValueError``; likewise for
        ``fused_optimizer`` where torch has no fused AdamW for the device,
        except that a dict naming it fails here.

    Raises
    ------
    ValueError
        For an unknown level, option or option value, or a dict asking for
        ``fused_optimizer`` where it cannot run.
    """
    if isinstance(speed, Mapping):
        options = _check_overrides(speed)
        level = "custom"
    elif speed in SPEEDS:
        options = dict(SPEEDS[speed])
        level = speed
    else:
        raise ValueError(
            f"speed={speed!r} is not a speed level; use one of {list(SPEEDS)} or "
            "a dict of options."
        )
    device_type = torch.device(device).type
    cpu = device_type == "cpu"
    if options["fused_optimizer"] and not fused_adamw_available(device_type):
        # Only a dict that names the option asks for it; one that inherits it
        # from its level gets the level's behaviour: dropped here.
        if isinstance(speed, Mapping) and speed.get("fused_optimizer"):
            raise ValueError(
                f"speed['fused_optimizer']=True: this torch build has no fused "
                f"AdamW for device {device!r}; set it to False."
            )
        options["fused_optimizer"] = False
    amp = options["precision"]
    dtype = resolve_amp_dtype(None if amp == "float32" else amp, device)
    options["precision"] = "float32" if dtype is None else str(dtype).split(".")[-1]
    options["fast_prelu"] = options["fast_prelu"] and cpu
    if level != "custom":
        options["int8_scoring"] = options["int8_scoring"] and cpu and int8_available()
    return {"level": level, **options}


def net_options(speed_: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~sk_asd.estimator.net.ASDNet` parameters for resolved options.

    Parameters
    ----------
    speed_ : dict
        Options as :func:`resolve_speed` returns them.

    Returns
    -------
    dict
        Keyword arguments of ``ASDNet`` (``module__`` ones routed to
        :class:`~sk_asd.nn.network.TASTgramMFN`).  ``loader_workers`` is not
        among them: it sets the DataLoaders' ``num_workers``, which the
        detector routes with its other loader settings.
    """
    return {
        "amp_dtype": None if speed_["precision"] == "float32" else speed_["precision"],
        "module__stft_precision": speed_["stft_precision"],
        "module__channels_last": bool(speed_["channels_last"]),
        "module__fast_prelu": bool(speed_["fast_prelu"]),
        "cache_logmel": bool(speed_["cache_logmel"]),
        "fold_batchnorm": bool(speed_["fold_batchnorm"]),
        "retain_heap": bool(speed_["retain_heap"]),
        # None, not False: an explicit False also switches AdamW off its
        # default multi-tensor path.  Records fitted before the option
        # existed lack it.
        "optimizer__fused": True if speed_.get("fused_optimizer") else None,
        "compile_backbone": bool(speed_["compile"]),
        "int8_scoring": bool(speed_["int8_scoring"]),
    }
