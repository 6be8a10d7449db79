"""Saving and loading fitted detectors.

A model file (suggested extension ``.skasd``) is an archive written by
:mod:`sk_asd.io.archive`: one zip file holding a JSON document and plain
arrays. The document is::

    {
        "format": "sk_asd.model",
        "format_version": 2,
        "versions": {"sk_asd": ..., "torch": ..., "scikit-learn": ...,
                     "skorch": ..., "numpy": ...},
        "metadata": {...},          # plain values, see save_model
        "estimator": {"class": "AnomalousSoundDetector", ...},
    }

Loading one executes nothing from the file: JSON is parsed, arrays are read
with ``numpy.load(allow_pickle=False)``, and the detector is rebuilt from its
parameters, fitted arrays and network weights. This module does not know what
a detector is: the estimator layer registers a :class:`ModelCodec` that maps
one to and from ``(document, arrays, state dicts)``
(:mod:`sk_asd.estimator.persistence`).

Model files written by sk_asd 0.1 were pickles (``joblib.dump``), as is a
plain ``joblib.dump(detector, path)``. Loading a pickle can run arbitrary
code, so :func:`load_model` refuses them unless called with
``trust_pickle=True`` (``--trust-pickle`` on the command line); re-save such
a file with :func:`save_model` to convert it.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sk_asd.io.archive import ArchiveError, is_archive, read_archive, write_archive

if TYPE_CHECKING:  # the estimator layer imports sk_asd.io, not the reverse
    from sk_asd.estimator.detector import AnomalousSoundDetector

__all__ = [
    "MODEL_SUFFIX",
    "ModelCodec",
    "ModelFileNotFoundError",
    "ModelLoadError",
    "ModelVersionWarning",
    "load_model",
    "register_model_codec",
    "save_model",
]

PathLike = str | os.PathLike[str]

#: Suggested file extension of model files.
MODEL_SUFFIX = ".skasd"

_FORMAT = "sk_asd.model"
#: Bumped when the layout of the document changes incompatibly. Version 1
#: was the pickled wrapper dictionary of sk_asd 0.1.
_FORMAT_VERSION = 2
_PICKLE_FORMAT_VERSION = 1

#: Distributions whose versions are recorded in every model file and
#: compared, by major version, on loading.
_RECORDED_DISTRIBUTIONS = ("torch", "scikit-learn", "skorch", "numpy")


class ModelVersionWarning(UserWarning):
    """A model file was written in a newer format or under other major versions.

    The model usually still loads and scores; the warning says what differs
    so that a changed result can be traced to it.

    Parameters
    ----------
    *args : str
        The message, as for any warning.

    Attributes
    ----------
    args : tuple of str
        The message.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("saved under torch 1.13", ModelVersionWarning)
    >>> caught[0].category.__name__
    'ModelVersionWarning'
    """


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


@dataclass(frozen=True)
class ModelCodec:
    """How one estimator class maps to and from a model file's contents.

    Parameters
    ----------
    name : str
        Stored as the document's ``estimator.class``; selects the codec on
        loading (never a class to import).
    cls : type
        The estimator class it saves.
    encode : callable
        ``encode(estimator) -> (document, arrays, state_dicts)``: a JSON
        document, named numpy arrays and named torch state dicts.
    decode : callable
        ``decode(document, arrays, state_dicts) -> estimator``; raises
        ``ValueError`` or ``TypeError`` for content it cannot use.
    describe : callable
        ``describe(estimator) -> dict`` of plain metadata that the estimator
        itself defines (for a detector: sample rate, clip length, machine
        IDs); it takes precedence over stored metadata.

    Examples
    --------
    >>> from sk_asd.io.model import ModelCodec
    >>> sorted(ModelCodec.__dataclass_fields__)
    ['cls', 'decode', 'describe', 'encode', 'name']
    """

    name: str
    cls: type
    encode: Callable[[Any], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]
    decode: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]
    describe: Callable[[Any], dict[str, Any]]


_CODECS: dict[str, ModelCodec] = {}


def _registered_codecs() -> dict[str, ModelCodec]:
    """The codecs, after importing the modules that register them.

    Those modules are named by the package root (``sk_asd.CODEC_MODULES``),
    not imported here by name of a layer above this one.
    """
    import importlib

    from sk_asd import CODEC_MODULES

    for name in CODEC_MODULES:
        importlib.import_module(name)
    return _CODECS


def register_model_codec(codec: ModelCodec) -> None:
    """Make :func:`save_model` and :func:`load_model` handle ``codec.cls``.

    The estimator layer registers the detector's codec on import, so that
    this module needs no import of it.

    Parameters
    ----------
    codec : ModelCodec
        The codec; replaces one registered under the same name.
    """
    _CODECS[codec.name] = codec


def _codec_for(estimator: Any) -> ModelCodec:
    for codec in _CODECS.values():
        if isinstance(estimator, codec.cls):
            return codec
    names = ", ".join(sorted(_CODECS)) or "AnomalousSoundDetector"
    raise TypeError(
        f"save_model expects a fitted sk_asd {names}, got {type(estimator).__name__}"
    )


def _versions() -> dict[str, str | None]:
    """The versions of sk_asd and its numeric stack, as recorded in files."""
    from sk_asd import __version__

    found: dict[str, str | None] = {"sk_asd": __version__}
    for name in _RECORDED_DISTRIBUTIONS:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            found[name] = None
    return found


def _major(version: Any) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _check_versions(path: Path, recorded: Any) -> None:
    """Warn when a recorded major version differs from the installed one."""
    if not isinstance(recorded, dict):
        return
    current = _versions()
    differ = [
        f"{name} {recorded[name]} (installed: {current[name]})"
        for name in current
        if name in recorded
        and _major(recorded[name]) is not None
        and _major(current[name]) is not None
        and _major(recorded[name]) != _major(current[name])
    ]
    if differ:
        warnings.warn(
            f"Model file '{path}' was saved under other major versions: "
            f"{', '.join(differ)}; it loaded, but check its scores before relying "
            "on them.",
            ModelVersionWarning,
            stacklevel=3,
        )


def _check_fitted(estimator: Any) -> Any:
    check_is_fitted(estimator)
    return estimator


def save_model(
    detector: AnomalousSoundDetector,
    path: PathLike,
    *,
    machine_type: str | None = None,
    training_paths: Iterable[PathLike] | None = None,
    data_dir: PathLike | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a fitted detector with a small metadata record, in a safe format.

    Parameters
    ----------
    detector : AnomalousSoundDetector
        A fitted detector.
    path : str or os.PathLike
        Destination file; ``.skasd`` is the suggested extension (none is
        added). Parent folders are created. The file is written to a
        temporary name first and then renamed, so an interrupted save never
        leaves a half-written model under ``path`` (and an existing file
        there stays as it was).
    machine_type : str, optional
        Machine type the detector was trained for, e.g. ``"fan"``.
    training_paths : iterable of str or os.PathLike, optional
        The audio files the detector was trained on. ``sk-asd evaluate``
        leaves these files out when scoring. Stored relative to
        ``data_dir`` when given and the file lies inside it (so that no
        absolute path of the training machine is kept), else as given.
    data_dir : str or os.PathLike, optional
        The dataset folder the training paths are relative to. Only its
        name is stored, as ``"data_dir_name"``.
    extra : mapping, optional
        Further metadata entries (plain values: str, numbers, lists, dicts),
        e.g. the split. They cannot override the entries listed under Notes.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If ``detector`` is not an :class:`AnomalousSoundDetector`, or holds
        a fitted attribute the format cannot store (the message names it).
    sklearn.exceptions.NotFittedError
        If ``detector`` is not fitted.

    Notes
    -----
    The metadata dictionary always holds ``"sk_asd_version"``,
    ``"sample_rate"``, ``"n_features_in"`` (clip length in samples),
    ``"machine_ids"``, ``"machine_type"`` (or None), ``"training_paths"``
    (list of str, or None when not given) and ``"training_paths_relative"``
    (whether they are relative to the dataset folder), plus the ``extra``
    entries. Read it back with ``load_model(path, return_metadata=True)``.

    The versions of sk_asd, torch, scikit-learn, skorch and numpy are
    recorded too; :func:`load_model` warns (:class:`ModelVersionWarning`)
    when a major version differs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sk_asd import AnomalousSoundDetector
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
    codec = _codec_for(detector)
    _check_fitted(detector)
    versions = _versions()
    paths, relative = _stored_training_paths(training_paths, data_dir)
    metadata: dict[str, Any] = _plain(dict(extra or {}))
    metadata.update(
        {
            "sk_asd_version": versions["sk_asd"],
            **codec.describe(detector),
            "machine_type": None if machine_type is None else str(machine_type),
            "training_paths": paths,
            "training_paths_relative": relative,
        }
    )
    if data_dir is not None:
        metadata["data_dir_name"] = Path(data_dir).resolve().name
    estimator_doc, arrays, state_dicts = codec.encode(detector)
    document = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "versions": versions,
        "metadata": metadata,
        "estimator": {**estimator_doc, "class": codec.name},
    }
    return write_archive(path, document, arrays, state_dicts)


def _stored_training_paths(
    training_paths: Iterable[PathLike] | None, data_dir: PathLike | None
) -> tuple[list[str] | None, bool]:
    """Training paths as stored: relative to ``data_dir`` where possible."""
    if training_paths is None:
        return None, False
    paths = [Path(p) for p in training_paths]
    if data_dir is None:
        return [os.fspath(p) for p in paths], False
    root = Path(data_dir).resolve()
    stored: list[str] = []
    for p in paths:
        try:
            stored.append(p.resolve().relative_to(root).as_posix())
        except ValueError:
            # Outside the dataset folder: nothing to be relative to.
            return [os.fspath(q) for q in paths], False
    return stored, True


def _unwrap(path: Path, obj: Any) -> tuple[Any, dict[str, Any]]:
    """Split an unpickled object (legacy format) into (estimator, metadata)."""
    classes = tuple(c.cls for c in _registered_codecs().values())
    if classes and isinstance(obj, classes):
        # A bare joblib.dump(det, path): no record of how it was trained.
        return obj, {
            "sk_asd_version": None,
            "machine_type": None,
            "training_paths": None,
        }
    if isinstance(obj, dict) and obj.get("format") == _FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > _PICKLE_FORMAT_VERSION:
            raise ModelLoadError(
                path,
                f"it uses model format version {version!r}, newer than this "
                f"sk_asd supports ({_PICKLE_FORMAT_VERSION}); upgrade sk_asd",
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


def _load_pickle(path: Path) -> tuple[Any, dict[str, Any]]:
    """The legacy loader: unpickles the file (runs whatever it holds)."""
    import joblib

    warnings.warn(
        f"Loading '{path}' as a pickle (trust_pickle=True): this runs any code "
        "the file holds. Re-save the model with save_model to convert it to "
        "the safe format.",
        UserWarning,
        stacklevel=3,
    )
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
    return _unwrap(path, obj)


#: First bytes of a pickle (protocol 2+) and of the compressed containers
#: joblib writes (zlib, gzip, bz2, xz, lz4).
_PICKLE_STARTS = (
    b"\x80",
    b"\x78",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x04\x22\x4d\x18",
)


def _refuse_pickle(path: Path) -> ModelLoadError:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(_PICKLE_STARTS):
        return ModelLoadError(path, "the file is corrupt or not an sk_asd model file")
    return ModelLoadError(
        path,
        "it is a pickle (a model file of sk_asd 0.1 or a joblib.dump), and "
        "loading a pickle can run arbitrary code, so it was not loaded. If you "
        "trust its source, load it with load_model(path, trust_pickle=True) or "
        "'sk-asd ... --trust-pickle', then re-save it with save_model to convert "
        "it to the safe format",
    )


def _check_path(path: Path) -> None:
    """Fail with a message that names the actual problem with ``path``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ModelFileNotFoundError(
                path, "it is a symbolic link to a file that does not exist"
            ) from None
        raise ModelFileNotFoundError(path) from None
    except PermissionError:
        raise ModelLoadError(
            path, "permission denied (check the file's and its folders' permissions)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(path, "it is a loop of symbolic links") from None
        raise ModelLoadError(path, f"it cannot be accessed ({exc.strerror})") from None
    if path.is_dir():
        raise ModelLoadError(path, "the path is a folder, not a model file")
    if info.st_size == 0:
        raise ModelLoadError(path, "the file is empty")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(path, "permission denied (the file is not readable)")


def _load_archive(path: Path) -> tuple[Any, dict[str, Any]]:
    try:
        document, arrays, state_dicts = read_archive(path)
    except ArchiveError as exc:
        raise ModelLoadError(path, str(exc)) from None
    if document.get("format") != _FORMAT:
        raise ModelLoadError(path, "it is an archive but not an sk_asd model file")
    version = document.get("format_version")
    if not isinstance(version, int) or version < _FORMAT_VERSION:
        raise ModelLoadError(path, f"it has an invalid format version {version!r}")
    newer = version > _FORMAT_VERSION
    if newer:
        warnings.warn(
            f"Model file '{path}' uses model format version {version}, newer than "
            f"this sk_asd writes ({_FORMAT_VERSION}); trying to load it anyway. "
            "Upgrade sk_asd if it fails or scores differ.",
            ModelVersionWarning,
            stacklevel=3,
        )
    _check_versions(path, document.get("versions"))
    estimator_doc = document.get("estimator")
    metadata = document.get("metadata")
    if not isinstance(estimator_doc, dict) or not isinstance(metadata, dict):
        raise ModelLoadError(path, "the model record is incomplete")
    codec = _registered_codecs().get(str(estimator_doc.get("class")))
    if codec is None:
        raise ModelLoadError(
            path, f"it holds an unknown estimator {estimator_doc.get('class')!r}"
        )
    try:
        estimator = codec.decode(estimator_doc, arrays, state_dicts)
        check_is_fitted(estimator)
        codec.describe(estimator)
    except Exception as exc:
        # Whatever a malformed document makes the decoder trip over (KeyError,
        # TypeError, torch's RuntimeError, ...) means the same to the user.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        hint = "; the file is newer than this sk_asd, upgrade it" if newer else ""
        raise ModelLoadError(path, f"{reason.rstrip('.')}{hint}") from exc
    metadata = dict(metadata)
    metadata["versions"] = document.get("versions")
    return estimator, metadata


def load_model(
    path: PathLike, *, return_metadata: bool = False, trust_pickle: bool = False
) -> AnomalousSoundDetector | tuple[AnomalousSoundDetector, dict[str, Any]]:
    """Load a detector saved by :func:`save_model` or ``sk-asd train``.

    Parameters
    ----------
    path : str or os.PathLike
        Model file.
    return_metadata : bool, default=False
        Also return the metadata dictionary (see :func:`save_model`), with
        the recorded library versions under ``"versions"``. For a bare
        pickled detector (``trust_pickle=True``) it is rebuilt from the
        estimator, with ``"sk_asd_version"``, ``"machine_type"`` and
        ``"training_paths"`` set to None.
    trust_pickle : bool, default=False
        Also load pickle-based files: model files of sk_asd 0.1 and plain
        ``joblib.dump(detector, path)`` files. **Loading a pickle runs any
        code the file holds**; only set this for files you made yourself or
        received from a source you trust. A warning is issued.

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
        If the file is a folder, empty, unreadable, corrupt, a pickle while
        ``trust_pickle`` is False, holds something other than a fitted
        detector, or cannot be rebuilt. The message names the file.

    Warns
    -----
    ModelVersionWarning
        If the file was written in a newer format, or under another major
        version of sk_asd, torch, scikit-learn, skorch or numpy.

    Notes
    -----
    A model file in the safe format executes nothing when loaded: its JSON
    is parsed, its arrays are read with ``numpy.load(allow_pickle=False)``,
    and the detector is rebuilt from its parameters and weights. A detector
    trained on a GPU loads on a CPU-only machine (with a warning) and scores
    on the CPU; its ``device`` parameter keeps the value it was trained
    with, so refitting it there needs ``detector.set_params(device="cpu")``.

    Examples
    --------
    >>> try:
    ...     load_model("no-such-model.skasd")
    ... except FileNotFoundError as err:
    ...     print(err)
    Cannot load model file 'no-such-model.skasd': the file does not exist.
    """
    path = Path(path)
    _check_path(path)
    try:
        safe = is_archive(path)
    except OSError as exc:
        raise ModelLoadError(path, f"it cannot be read ({exc.strerror})") from None
    if safe:
        estimator, metadata = _load_archive(path)
    elif trust_pickle:
        estimator, metadata = _load_pickle(path)
    else:
        raise _refuse_pickle(path)

    codec = _codec_for_loaded(path, estimator)
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise ModelLoadError(path, "it holds a detector that was never fitted") from exc
    # The estimator is the source of truth for what scoring needs.
    metadata.update(codec.describe(estimator))
    if return_metadata:
        return estimator, metadata
    return estimator


def _codec_for_loaded(path: Path, estimator: Any) -> ModelCodec:
    try:
        return _codec_for(estimator)
    except TypeError:
        raise ModelLoadError(
            path,
            f"its estimator is a {type(estimator).__name__}, not an "
            "AnomalousSoundDetector",
        ) from None
