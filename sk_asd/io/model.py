"""Saving and loading fitted detectors.

A model file (suggested extension ``.skasd``) is a :func:`joblib.dump` of a
small dictionary::

    {
        "format": "sk_asd.model",
        "format_version": 1,
        "metadata": {...},          # plain Python values, see save_model
        "estimator": AnomalousSoundDetector(...),
    }

The same files are written by ``sk-asd train`` and by :func:`save_model`, so
models move freely between the command line and Python. :func:`load_model`
also accepts a file holding a bare fitted detector (``joblib.dump(det,
path)``); its metadata is then rebuilt from the estimator.

.. warning::
   Like every pickle-based format, loading a model file can run arbitrary
   code. Only load model files from sources you trust.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:  # the estimator layer imports sk_asd.io, not the reverse
    from sk_asd.estimator.detector import AnomalousSoundDetector

__all__ = [
    "MODEL_SUFFIX",
    "ModelFileNotFoundError",
    "ModelLoadError",
    "load_model",
    "save_model",
]

PathLike = str | os.PathLike[str]

#: Suggested file extension of model files.
MODEL_SUFFIX = ".skasd"

_FORMAT = "sk_asd.model"
#: Bumped when the layout of the wrapper dictionary changes incompatibly.
_FORMAT_VERSION = 1


class ModelLoadError(ValueError):
    """A model file could not be turned into a fitted detector.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    reason : str
        What is wrong with it, without the path.

    Attributes
    ----------
    path : str
        The model file.
    reason : str
        What is wrong with it.

    Examples
    --------
    >>> err = ModelLoadError("fan.skasd", "the file is empty")
    >>> str(err)
    "Cannot load model file 'fan.skasd': the file is empty."
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.message = f"Cannot load model file '{self.path}': {reason}."
        super().__init__(self.message)

    def __str__(self) -> str:
        # Without this, the FileNotFoundError subclass would print OSError's
        # "[Errno None] None: ..." instead of the message.
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # The two-argument __init__ would break default exception pickling.
        return (type(self), (self.path, self.reason))


class ModelFileNotFoundError(ModelLoadError, FileNotFoundError):
    """The model file does not exist.

    Subclass of both :class:`ModelLoadError` and :class:`FileNotFoundError`.

    Parameters
    ----------
    path : str or os.PathLike
        The missing file.
    reason : str, default="the file does not exist"
        What is wrong.

    Attributes
    ----------
    path : str
        The missing file.
    filename : str
        The same path, where :class:`FileNotFoundError` handlers look for it.
    reason : str
        What is wrong.

    Examples
    --------
    >>> err = ModelFileNotFoundError("gone.skasd")
    >>> isinstance(err, FileNotFoundError), isinstance(err, ModelLoadError)
    (True, True)
    """

    def __init__(self, path: PathLike, reason: str = "the file does not exist") -> None:
        super().__init__(path, reason)
        self.filename = self.path


def _plain(value: Any) -> Any:
    """Return ``value`` as plain Python data (numpy scalars become Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _estimator_metadata(detector: AnomalousSoundDetector) -> dict[str, Any]:
    """The metadata that can be read off a fitted detector itself."""
    return {
        "sample_rate": int(detector.sample_rate),
        "n_features_in": int(detector.n_features_in_),
        "machine_ids": [_plain(m) for m in detector.machine_ids_.tolist()],
    }


def _detector_class() -> type:
    from sk_asd.estimator.detector import AnomalousSoundDetector

    return AnomalousSoundDetector


def _check_detector(detector: Any) -> AnomalousSoundDetector:
    if not isinstance(detector, _detector_class()):
        raise TypeError(
            "save_model expects a fitted sk_asd.AnomalousSoundDetector, got "
            f"{type(detector).__name__}"
        )
    check_is_fitted(detector)
    return detector


def save_model(
    detector: AnomalousSoundDetector,
    path: PathLike,
    *,
    machine_type: str | None = None,
    training_paths: Iterable[PathLike] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a fitted detector with a small metadata record.

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.
    path : str or os.PathLike
        Destination file; ``.skasd`` is the suggested extension (none is
        added). Parent folders are created. The file is written to a
        temporary name first and then renamed, so an interrupted save never
        leaves a half-written model under ``path``.
    machine_type : str, optional
        Machine type the detector was trained for, e.g. ``"fan"``.
    training_paths : iterable of str or os.PathLike, optional
        The audio files the detector was trained on. ``sk-asd evaluate``
        leaves these files out when scoring. Stored as absolute paths.
    extra : mapping, optional
        Further metadata entries (plain values: str, numbers, lists, dicts),
        e.g. the dataset folder and split. They cannot override the entries
        listed under Notes.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If ``detector`` is not an :class:`AnomalousSoundDetector`.
    sklearn.exceptions.NotFittedError
        If ``detector`` is not fitted.

    Notes
    -----
    The metadata dictionary always holds ``"sk_asd_version"``,
    ``"sample_rate"``, ``"n_features_in"`` (clip length in samples),
    ``"machine_ids"``, ``"machine_type"`` (or None) and
    ``"training_paths"`` (list of str, or None when not given), plus the
    ``extra`` entries. Read it back with
    ``load_model(path, return_metadata=True)``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> X = np.random.RandomState(0).randn(8, 4000).astype(np.float32) * 0.1
    >>> det = AnomalousSoundDetector(max_epochs=1, n_mels=32, device="cpu",
    ...                              random_state=0)
    >>> det = det.fit(X, ["a"] * 4 + ["b"] * 4)
    >>> out = save_model(det, pathlib.Path(tempfile.mkdtemp()) / "m.skasd",
    ...                  machine_type="fan")
    >>> loaded, meta = load_model(out, return_metadata=True)
    >>> meta["machine_type"], meta["n_features_in"]
    ('fan', 4000)
    """
    from sk_asd import __version__

    detector = _check_detector(detector)
    metadata: dict[str, Any] = _plain(dict(extra or {}))
    metadata.update(
        {
            "sk_asd_version": __version__,
            **_estimator_metadata(detector),
            "machine_type": None if machine_type is None else str(machine_type),
            "training_paths": (
                None
                if training_paths is None
                else [str(Path(p).resolve()) for p in training_paths]
            ),
        }
    )
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "metadata": metadata,
        "estimator": detector,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600), and a model file
    # should get the same permissions as any other file the user writes.
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        joblib.dump(payload, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path


def _unwrap(path: Path, obj: Any) -> tuple[Any, dict[str, Any]]:
    """Split a loaded object into (estimator, metadata)."""
    if isinstance(obj, _detector_class()):
        # A bare joblib.dump(det, path): no record of how it was trained.
        return obj, {
            "sk_asd_version": None,
            "machine_type": None,
            "training_paths": None,
        }
    if isinstance(obj, dict) and obj.get("format") == _FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise ModelLoadError(
                path,
                f"it uses model format version {version!r}, newer than this "
                f"sk_asd supports ({_FORMAT_VERSION}); upgrade sk_asd",
            )
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or "estimator" not in obj:
            raise ModelLoadError(path, "the model record is incomplete")
        return obj["estimator"], dict(metadata)
    raise ModelLoadError(
        path,
        f"it holds a {type(obj).__module__}.{type(obj).__qualname__}, not an "
        "sk_asd model (a file written by save_model or 'sk-asd train', or a "
        "joblib.dump of a fitted AnomalousSoundDetector)",
    )


def load_model(
    path: PathLike, *, return_metadata: bool = False
) -> AnomalousSoundDetector | tuple[AnomalousSoundDetector, dict[str, Any]]:
    """Load a detector saved by :func:`save_model` or ``sk-asd train``.

    Parameters
    ----------
    path : str or os.PathLike
        Model file. A file holding a bare fitted detector written with
        ``joblib.dump(detector, path)`` is accepted too.
    return_metadata : bool, default=False
        Also return the metadata dictionary (see :func:`save_model`). For a
        bare detector it is rebuilt from the estimator, with
        ``"sk_asd_version"``, ``"machine_type"`` and ``"training_paths"``
        set to None.

    Returns
    -------
    detector : AnomalousSoundDetector
        The fitted detector.
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    ModelFileNotFoundError
        If ``path`` does not exist (also a :class:`FileNotFoundError`).
    ModelLoadError
        If the file is a folder, empty, corrupt, holds something other than
        a fitted detector, or was written in a newer format. The message
        names the file.

    Notes
    -----
    A detector trained on a GPU loads on a CPU-only machine: skorch maps
    its network, criterion and optimizer to the CPU (emitting a
    ``skorch.exceptions.DeviceWarning``), and the few CUDA tensors it does
    not manage are mapped to the CPU by this function. Scoring then runs on
    the CPU. The detector's ``device`` parameter keeps the value it was
    trained with, so refitting the loaded detector on that machine needs
    ``detector.set_params(device="cpu")`` first.

    Loading a model file can run arbitrary code (it is a pickle); load
    files from trusted sources only.

    Examples
    --------
    >>> try:
    ...     load_model("no-such-model.skasd")
    ... except FileNotFoundError as err:
    ...     print(err)
    Cannot load model file 'no-such-model.skasd': the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileNotFoundError(path)
    if path.is_dir():
        raise ModelLoadError(path, "the path is a folder, not a model file")
    if path.stat().st_size == 0:
        raise ModelLoadError(path, "the file is empty")
    try:
        # A CUDA-trained net maps itself to the CPU when no GPU is visible
        # (skorch's __setstate__); the detector keeps no other CUDA tensor.
        obj = joblib.load(path)
    except Exception as exc:
        # Unpickling arbitrary bytes can fail with almost any exception type
        # (UnpicklingError, EOFError, KeyError, zlib.error, ImportError, ...);
        # all of them mean the same thing to the user.
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(".")
        raise ModelLoadError(
            path,
            "the file is corrupt or not a model file written by sk_asd or "
            f"joblib ({reason})",
        ) from exc

    detector, metadata = _unwrap(path, obj)
    if not isinstance(detector, _detector_class()):
        raise ModelLoadError(
            path,
            f"its estimator is a {type(detector).__name__}, not an "
            "AnomalousSoundDetector",
        )
    try:
        check_is_fitted(detector)
    except NotFittedError as exc:
        raise ModelLoadError(path, "it holds a detector that was never fitted") from exc
    # The estimator is the source of truth for what scoring needs.
    metadata.update(_estimator_metadata(detector))
    if return_metadata:
        return detector, metadata
    return detector
