"""One file holding a JSON document, named numpy arrays and torch state dicts.

This is the container of sk_asd's model files. It knows nothing about
estimators: the estimator layer maps a fitted detector to and from
``(document, arrays, state_dicts)``.

Reading an archive never executes code from the file. The file is a zip
archive of

- ``manifest.json``: the archive's own table of contents (what member holds
  which array or tensor, with its dtype);
- ``document.json``: the caller's JSON document;
- ``data/<n>.npy``: one numpy array or tensor per member, read with
  ``numpy.load(..., allow_pickle=False)``.

Tensors are stored as plain ``.npy`` arrays too (dtypes that numpy lacks, such
as bfloat16, as raw integers of the same width), so neither :mod:`pickle`
nor ``torch.load`` is involved at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ARCHIVE_MAGIC",
    "ArchiveError",
    "is_archive",
    "read_archive",
    "write_archive",
]

PathLike = str | os.PathLike[str]

#: The first bytes of every archive (a zip file's local header signature).
ARCHIVE_MAGIC = b"PK\x03\x04"

_MANIFEST = "manifest.json"
_DOCUMENT = "document.json"
_ARCHIVE_FORMAT = "sk_asd.archive"
_ARCHIVE_VERSION = 1

#: Member sizes are checked before reading: a crafted zip cannot make the
#: reader allocate more than this per member, or expand far beyond the file.
_MAX_MEMBER_BYTES = 8 * 2**30
_MAX_JSON_BYTES = 256 * 2**20

#: numpy dtype kinds an array member may have (no objects, no void records):
#: bool, signed/unsigned ints, floats, complex, fixed-width str and bytes.
_ARRAY_KINDS = "biufcUS"

#: torch dtypes a state-dict tensor may have. Those numpy lacks are stored as
#: the integer type of the same width and viewed back on reading.
_TORCH_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
_STORED_AS = {"bfloat16": torch.int16}


class ArchiveError(ValueError):
    """An archive could not be read; the message says why (without the path)."""


def is_archive(path: PathLike) -> bool:
    """Whether ``path`` starts like an archive (a zip file).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    bool
    """
    with open(path, "rb") as fh:
        return fh.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _check_array(name: str, array: Any) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array {name!r} is a {type(array).__name__}, not an ndarray")
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(
            f"array {name!r} has dtype {array.dtype}; only numeric, bool and "
            "fixed-width string arrays can be stored (no object arrays)"
        )
    return array


def _tensor_array(name: str, tensor: Any) -> tuple[np.ndarray, str]:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"state-dict entry {name!r} is not a tensor")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _TORCH_DTYPES:
        raise TypeError(f"tensor {name!r} has unsupported dtype {tensor.dtype}")
    tensor = tensor.detach().cpu().contiguous()
    if dtype in _STORED_AS:
        tensor = tensor.view(_STORED_AS[dtype])
    return tensor.numpy(), dtype


def write_archive(
    path: PathLike,
    document: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray] | None = None,
    state_dicts: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """Write a JSON document, arrays and state dicts to one file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Parent folders are created. The archive is written to a
        temporary file next to it and renamed over ``path`` at the end, so an
        interrupted write leaves any previous file untouched.
    document : mapping
        JSON-serialisable document (str keys; NaN and infinity allowed).
    arrays : mapping of str to numpy.ndarray, optional
        Numeric, bool or fixed-width string arrays, by name.
    state_dicts : mapping of str to mapping of str to torch.Tensor, optional
        torch state dicts (e.g. ``module.state_dict()``), by name.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If the document is not JSON-serialisable, or an array or tensor has
        a dtype that cannot be stored.
    """
    document_json = json.dumps(document, sort_keys=True).encode("utf-8")
    members: dict[str, bytes] = {}
    manifest: dict[str, Any] = {
        "format": _ARCHIVE_FORMAT,
        "version": _ARCHIVE_VERSION,
        "arrays": {},
        "state_dicts": {},
    }
    for name, array in (arrays or {}).items():
        member = f"data/{len(members)}.npy"
        members[member] = _npy_bytes(_check_array(str(name), array))
        manifest["arrays"][str(name)] = member
    for sd_name, state in (state_dicts or {}).items():
        entries: dict[str, Any] = {}
        for key, tensor in state.items():
            array, dtype = _tensor_array(f"{sd_name}.{key}", tensor)
            member = f"data/{len(members)}.npy"
            members[member] = _npy_bytes(array)
            entries[str(key)] = {"member": member, "dtype": dtype}
        # A list keeps the state dict's order (load_state_dict does not care,
        # but a reader comparing keys might).
        manifest["state_dicts"][str(sd_name)] = [[k, v] for k, v in entries.items()]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600), and a model file
    # should get the same permissions as any other file the user writes.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        # Stored, not deflated: weights barely compress, and equal sizes on
        # disk and in memory make the reader's size checks exact.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, sort_keys=True))
            zf.writestr(_DOCUMENT, document_json)
            for member, data in members.items():
                zf.writestr(member, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ArchiveError(f"the archive lacks its member {name!r}") from None
    if info.file_size > limit:
        raise ArchiveError(
            f"member {name!r} claims {info.file_size} bytes, more than allowed"
        )
    data = zf.read(info)
    if len(data) != info.file_size:  # pragma: no cover - zipfile checks CRC/size
        raise ArchiveError(f"member {name!r} is truncated")
    return data


def _load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"its {what} is not valid JSON ({exc})") from None


def _load_npy(zf: zipfile.ZipFile, member: Any) -> np.ndarray:
    if not isinstance(member, str):
        raise ArchiveError("its manifest names an array member that is not a string")
    data = _read_member(zf, member, _MAX_MEMBER_BYTES)
    try:
        # allow_pickle=False: object arrays (the only pickled content an .npy
        # file can have) are refused instead of unpickled.
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArchiveError(f"member {member!r} is not a valid array ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in _ARRAY_KINDS:
        raise ArchiveError(f"member {member!r} holds an unsupported array")
    return array


def _to_tensor(zf: zipfile.ZipFile, entry: Any) -> torch.Tensor:
    if not isinstance(entry, dict) or entry.get("dtype") not in _TORCH_DTYPES:
        raise ArchiveError("its manifest describes a tensor it cannot read")
    array = _load_npy(zf, entry.get("member"))
    dtype = entry["dtype"]
    stored = _STORED_AS.get(dtype, _TORCH_DTYPES[dtype])
    tensor = torch.from_numpy(np.array(array, copy=True))
    if tensor.dtype != stored:
        raise ArchiveError(
            f"tensor member {entry.get('member')!r} has dtype {array.dtype}, "
            f"expected {dtype}"
        )
    return tensor.view(_TORCH_DTYPES[dtype]) if dtype in _STORED_AS else tensor


def read_archive(
    path: PathLike,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, dict[str, torch.Tensor]]]:
    """Read an archive written by :func:`write_archive`, executing nothing.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.

    Returns
    -------
    document : dict
        The JSON document.
    arrays : dict of str to numpy.ndarray
        The named arrays.
    state_dicts : dict of str to dict of str to torch.Tensor
        The named state dicts (CPU tensors).

    Raises
    ------
    ArchiveError
        If the file is not such an archive, is truncated or corrupt, or its
        members are malformed. The message does not name the file.
    OSError
        If the file cannot be opened.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _load_json(
                _read_member(zf, _MANIFEST, _MAX_JSON_BYTES), "manifest"
            )
            if (
                not isinstance(manifest, dict)
                or manifest.get("format") != _ARCHIVE_FORMAT
            ):
                raise ArchiveError("it is a zip file but not an sk_asd archive")
            version = manifest.get("version")
            if not isinstance(version, int) or version > _ARCHIVE_VERSION:
                raise ArchiveError(
                    f"its archive layout version {version!r} is newer than this "
                    f"sk_asd reads ({_ARCHIVE_VERSION}); upgrade sk_asd"
                )
            document = _load_json(
                _read_member(zf, _DOCUMENT, _MAX_JSON_BYTES), "document"
            )
            if not isinstance(document, dict):
                raise ArchiveError("its document is not a JSON object")
            listed = manifest.get("arrays", {})
            sds = manifest.get("state_dicts", {})
            if not isinstance(listed, dict) or not isinstance(sds, dict):
                raise ArchiveError("its manifest is malformed")
            arrays = {str(k): _load_npy(zf, m) for k, m in listed.items()}
            state_dicts: dict[str, dict[str, torch.Tensor]] = {}
            for name, entries in sds.items():
                if not isinstance(entries, list) or not all(
                    isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                    for e in entries
                ):
                    raise ArchiveError("its manifest is malformed")
                state_dicts[str(name)] = {k: _to_tensor(zf, e) for k, e in entries}
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"the file is corrupt or truncated ({exc})") from None
    except (
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        EOFError,
        zlib.error,
    ) as exc:
        # Unsupported compression or encryption, or a short read.
        raise ArchiveError(f"the archive cannot be read ({exc})") from None
    return document, arrays, state_dicts
