"""Loaders for the DCASE Task 2 machine-sound datasets (2020 to 2024+).

All years share one folder layout, ``<root>/<machine_type>/<split>/<file>.wav``
with ``<split>`` either ``train`` or ``test`` (DCASE 2021 split the test data
into ``source_test`` and ``target_test``; both are read for ``split="test"``).
What changes between years is the file name, which carries the labels:

================  ==========================================================
Scheme            File names
================  ==========================================================
``"2020"``        ``{normal,anomaly}_id_<ID>_<N>.wav`` (labelled);
                  ``id_<ID>_<N>.wav`` (evaluation test data, no label)
``"2021+"``       ``section_<SS>_{source,target}_{train,test}_{normal,anomaly}
                  _<N>[_<attributes>].wav`` (labelled; attributes from 2022,
                  e.g. ``_car_A1_spd_28V_mic_1`` or ``_noAttribute``);
                  ``section_<SS>_<N>.wav`` (evaluation test data, no domain
                  and no label); any of the domain, split and label fields may
                  be absent
================  ==========================================================
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.utils import Bunch, check_random_state

from sk_asd.io.audio import Channel, LengthRule, load_audios, write_audio

__all__ = [
    "list_machine_types",
    "load_dcase",
    "parse_dcase_filename",
    "read_dcase_ground_truth",
    "write_dcase2023_folder",
]

PathLike = str | os.PathLike[str]

# Suffixes that count as audio clips; DCASE ships WAV, the others allow
# re-encoded copies of a dataset with the same names.
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_SPLIT_DIRS = ("train", "test", "source_test", "target_test")

_RE_2020 = re.compile(r"(?:(?P<label>normal|anomaly)_)?id_(?P<id>\d+)_(?P<index>\d+)")
_RE_2021 = re.compile(
    r"section_(?P<section>\d+)"
    r"(?:_(?P<domain>source|target))?"
    r"(?:_(?P<split>train|test))?"
    r"(?:_(?P<label>normal|anomaly))?"
    r"_(?P<index>\d+)"
    r"(?:_(?P<attributes>.+))?"
)

_EXPECTED_PATTERNS = (
    "'{normal,anomaly}_id_<ID>_<N>.wav' or 'id_<ID>_<N>.wav' (DCASE 2020), "
    "'section_<SS>_{source,target}_{train,test}_{normal,anomaly}_<N>"
    "[_<attributes>].wav' or 'section_<SS>_<N>.wav' (DCASE 2021 and later)"
)


def _strip_audio_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in _AUDIO_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse_dcase_filename(name: PathLike) -> dict[str, Any]:
    """Read the labels encoded in a DCASE Task 2 file name.

    Parameters
    ----------
    name : str or os.PathLike
        File name or path; only the final component is parsed and a
        ``.wav``/``.flac``/``.ogg`` suffix is optional.

    Returns
    -------
    info : dict
        With the keys

        - ``"scheme"``: ``"2020"`` or ``"2021+"``.
        - ``"machine_id"``: the per-machine class label, ``"id_<ID>"`` (2020)
          or ``"section_<SS>"`` (2021+), digits as written in the name.
        - ``"section"``: the section number as a string such as ``"00"``
          (2021+), None for 2020.
        - ``"domain"``: ``"source"``, ``"target"`` or None when the name does
          not say (always None for 2020, which had no domains).
        - ``"split"``: ``"train"``, ``"test"`` or None when the name does not
          say (always None for 2020).
        - ``"is_anomaly"``: 1 for ``anomaly``, 0 for ``normal``, None when the
          name carries no label (evaluation test data).
        - ``"index"``: the clip number as an int.
        - ``"attributes"``: the text after the clip number without the
          leading underscore, e.g. ``"car_A1_spd_28V_mic_1"``, or None.
          Kept verbatim, including the literal ``"noAttribute"``.

    Raises
    ------
    ValueError
        If the name matches none of the DCASE patterns; the message names the
        file and lists the expected patterns.

    Examples
    --------
    >>> parse_dcase_filename("anomaly_id_02_00000066.wav")["machine_id"]
    'id_02'
    >>> info = parse_dcase_filename(
    ...     "section_00_target_test_normal_0007_car_A1_spd_28V_mic_1.wav"
    ... )
    >>> info["domain"], info["is_anomaly"], info["attributes"]
    ('target', 0, 'car_A1_spd_28V_mic_1')
    >>> parse_dcase_filename("section_03_0042.wav")["is_anomaly"] is None
    True
    """
    base = Path(os.fspath(name)).name
    stem = _strip_audio_suffix(base)

    match = _RE_2020.fullmatch(stem)
    if match is not None:
        label = match["label"]
        return {
            "scheme": "2020",
            "machine_id": f"id_{match['id']}",
            "section": None,
            "domain": None,
            "split": None,
            "is_anomaly": None if label is None else int(label == "anomaly"),
            "index": int(match["index"]),
            "attributes": None,
        }

    match = _RE_2021.fullmatch(stem)
    if match is not None:
        label = match["label"]
        return {
            "scheme": "2021+",
            "machine_id": f"section_{match['section']}",
            "section": match["section"],
            "domain": match["domain"],
            "split": match["split"],
            "is_anomaly": None if label is None else int(label == "anomaly"),
            "index": int(match["index"]),
            "attributes": match["attributes"],
        }

    raise ValueError(
        f"File name '{base}' does not follow a DCASE Task 2 naming pattern; "
        f"expected {_EXPECTED_PATTERNS}. Rename the file or move it out of the "
        "dataset folder."
    )


def _check_root(root: PathLike) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(
            f"DCASE dataset root '{path}' does not exist or is not a folder; "
            "pass the folder that holds one sub-folder per machine type "
            "(e.g. 'dev_data' containing 'fan/', 'pump/', ...)."
        )
    return path


def list_machine_types(root: PathLike) -> list[str]:
    """List the machine types present in a DCASE dataset folder.

    A machine type is a non-hidden sub-folder of ``root`` that contains at
    least one of the split folders ``train``, ``test``, ``source_test`` or
    ``target_test``.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder laid out as ``<root>/<machine_type>/<split>/``.

    Returns
    -------
    machine_types : list of str
        Folder names sorted case-insensitively (e.g. ``["fan", "ToyCar"]``).

    Raises
    ------
    FileNotFoundError
        If ``root`` is not an existing folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "fan" / "train").mkdir(parents=True)
    >>> (root / "notes").mkdir()
    >>> list_machine_types(root)
    ['fan']
    """
    path = _check_root(root)
    found = [
        child.name
        for child in path.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and any((child / split).is_dir() for split in _SPLIT_DIRS)
    ]
    return sorted(found, key=lambda s: (s.lower(), s))


def _split_folders(machine_dir: Path, split: str) -> list[Path]:
    direct = machine_dir / split
    if direct.is_dir():
        return [direct]
    if split == "test":
        # DCASE 2021 kept the two domains in separate test folders.
        per_domain = [machine_dir / d for d in ("source_test", "target_test")]
        per_domain = [d for d in per_domain if d.is_dir()]
        if per_domain:
            return per_domain
    present = sorted(p.name for p in machine_dir.iterdir() if p.is_dir())
    raise FileNotFoundError(
        f"No '{split}' folder in '{machine_dir}'; sub-folders present: "
        f"{present or 'none'}. Choose another split or check the download."
    )


def _scheme_for_year(year: int) -> str:
    if isinstance(year, bool) or not isinstance(year, int | np.integer):
        raise TypeError(f"year must be an int such as 2020 or 2023, got {year!r}")
    if year < 2020:
        raise ValueError(
            f"year={year} is not supported; DCASE Task 2 machine-sound data "
            "starts in 2020"
        )
    return "2020" if year == 2020 else "2021+"


def load_dcase(
    root: PathLike,
    machine_type: str,
    *,
    split: Literal["train", "test"] = "train",
    year: int | None = None,
    return_paths: bool = False,
    sample_rate: int = 16000,
    channel: Channel = "mean",
    length: LengthRule = "pad",
    target_length: int | None = None,
    skip_bad: bool = False,
    n_jobs: int | None = None,
    labels: PathLike | Sequence[PathLike] | None = None,
    domains: PathLike | Sequence[PathLike] | None = None,
) -> Bunch:
    """Load one machine type and split of a DCASE Task 2 dataset.

    Files are read from ``<root>/<machine_type>/<split>/`` (for
    ``split="test"`` with DCASE 2021's layout, from ``source_test`` and
    ``target_test``), sorted by name, and labelled from their names with
    :func:`parse_dcase_filename`. Audio goes through
    :func:`sk_asd.io.load_audios`, so the channel, resampling and
    ragged-length rules documented there apply.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder holding one sub-folder per machine type.
    machine_type : str
        Machine-type folder name, e.g. ``"fan"`` or ``"ToyCar"``.
    split : {"train", "test"}, default="train"
        Which split folder to read.
    year : int, optional
        Challenge year. Only the naming scheme depends on it (2020 or
        2021-and-later); when given, files named in the other scheme raise.
        By default the scheme is detected from the names.
    return_paths : bool, default=False
        If True, do not read audio: ``clips`` is None and only paths and
        labels are returned (bad files are then not detected).
    sample_rate : int, default=16000
        Sample rate of the returned clips in Hz.
    channel : "mean", "each" or int, default="mean"
        Multichannel rule; see :func:`sk_asd.io.load_audio`. With ``"each"``
        every channel of a file is its own clip: all fields get one entry per
        channel (the file's labels repeated), and ``channel_index`` says
        which channel each clip is.
    length : {"pad", "crop", "list"}, default="pad"
        Ragged-length rule; see :func:`sk_asd.io.load_audios`.
    target_length : int, optional
        Clip length in samples for ``length="pad"``; default the longest clip.
    skip_bad : bool, default=False
        Leave out unreadable files instead of raising; they are listed in
        ``skipped`` and every other field covers only the kept files.
    n_jobs : int, optional
        Threads used to read files.
    labels : path or sequence of paths, optional
        Ground-truth CSV file(s) for clips whose names carry no label (the
        anonymous ``section_00_0000.wav`` of evaluation data), in any format
        that :func:`read_dcase_ground_truth` reads: the organisers'
        ``ground_truth_data`` files (``filename,label``), their
        ``ground_truth_attributes`` files (``filename,<full name>``, which
        also give the domain and attributes) or ``filename,label,domain``.
        Rows are matched to clips by file name (the audio suffix is
        ignored). Every clip without a label in its name must be listed;
        a label that contradicts the one in a clip's name is an error.
    domains : path or sequence of paths, optional
        The organisers' ``ground_truth_domain`` file(s), rows
        ``filename,domain`` with domain 0 (source) / 1 (target) or the
        words; they fill in the domain of clips whose names carry none.

    Returns
    -------
    data : sklearn.utils.Bunch
        With the fields

        - ``clips``: ``(n_clips, n_samples)`` float32 array (list of 1-D
          arrays for ``length="list"``), or None with ``return_paths=True``.
        - ``paths``: list of str, the file of each clip.
        - ``machine_ids``: str array, ``"id_XX"`` (2020) or ``"section_XX"``
          (2021+), the per-machine class label.
        - ``section``: object array of section strings (``"00"``), None for
          2020 data.
        - ``domain``: object array of ``"source"``/``"target"``/None.
        - ``is_anomaly``: int array, 1 anomaly, 0 normal, -1 when the name has
          no label (evaluation test data).
        - ``index``: int array of clip numbers.
        - ``attributes``: object array of attribute strings or None.
        - ``machine_type``, ``split``, ``scheme`` (``"2020"``/``"2021+"``),
          ``sample_rate``, ``skipped`` (list of
          :class:`sk_asd.io.SkippedFile`).
        - ``channel_index``: only with ``channel="each"``, the int array of
          each clip's channel in its file (rows of one file are adjacent).
        - ``unused_ground_truth``: only when ``labels`` or ``domains`` is
          given, the sorted names in those files that match no clip of the
          folder (a file may cover several sections).

    Raises
    ------
    FileNotFoundError
        If ``root``, the machine type or the split folder does not exist, or
        the split folder holds no audio files. The message lists what was
        found instead.
    ValueError
        If a file name follows no DCASE pattern, names mix the 2020 and
        2021+ schemes, or they do not match ``year``; if a ground-truth file
        is malformed, lists none of the clips, leaves a clip without a label
        or contradicts a clip's name.
    sk_asd.io.AudioLoadError
        If a file cannot be read and ``skip_bad`` is False.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sk_asd.io import write_audio
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["normal_id_00_00000000.wav", "anomaly_id_02_00000001.wav"]:
    ...     _ = write_audio(root / "fan" / "test" / name, np.zeros(160))
    >>> data = load_dcase(root, "fan", split="test")
    >>> data.clips.shape, data.machine_ids.tolist(), data.is_anomaly.tolist()
    ((2, 160), ['id_02', 'id_00'], [1, 0])
    """
    root_path = _check_root(root)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    expected_scheme = None if year is None else _scheme_for_year(year)

    machine_dir = root_path / machine_type
    if not machine_dir.is_dir():
        found = list_machine_types(root_path)
        close = difflib.get_close_matches(machine_type, found, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise FileNotFoundError(
            f"Machine type '{machine_type}' not found under '{root_path}'; "
            f"machine types found: {found or 'none'}.{hint}"
        )

    folders = _split_folders(machine_dir, split)
    files = sorted(
        (
            f
            for folder in folders
            for f in folder.iterdir()
            if f.is_file() and f.name.lower().endswith(_AUDIO_SUFFIXES)
        ),
        key=lambda f: f.name,
    )
    if not files:
        raise FileNotFoundError(
            f"No audio files ({', '.join(_AUDIO_SUFFIXES)}) in "
            f"{', '.join(repr(str(f)) for f in folders)}."
        )

    # Parse every name before reading any audio so a naming problem is
    # reported at once, not after minutes of decoding.
    infos = [parse_dcase_filename(f.name) for f in files]
    # One example file per scheme, for the error message below.
    examples: dict[str, str] = {}
    for f, info in zip(files, infos, strict=True):
        examples.setdefault(info["scheme"], f.name)
    if len(examples) > 1:
        shown = ", ".join(f"{s}: e.g. {name}" for s, name in sorted(examples.items()))
        raise ValueError(
            f"Files in {machine_dir} mix DCASE naming schemes ({shown}); "
            "keep one challenge year per dataset folder."
        )
    scheme = next(iter(examples))
    if expected_scheme is not None and scheme != expected_scheme:
        raise ValueError(
            f"year={year} expects DCASE {expected_scheme} file names but files "
            f"in {machine_dir} use the {scheme} scheme (e.g. {files[0].name}); "
            "pass the matching year or year=None to detect it."
        )

    unused: list[str] | None = None
    if labels is not None or domains is not None:
        unused = _apply_ground_truth(files, infos, labels, domains, machine_dir)

    paths = [str(f) for f in files]
    extra_fields: dict[str, Any] = {}
    clips = None
    skipped: list = []
    if not return_paths:
        batch = load_audios(
            paths,
            sample_rate=sample_rate,
            channel=channel,
            length=length,
            target_length=target_length,
            skip_bad=skip_bad,
            n_jobs=n_jobs,
        )
        clips = batch.waves
        skipped = batch.skipped
        if batch.channels is not None:
            extra_fields["channel_index"] = batch.channels
        infos = [infos[i] for i in batch.indices]
        paths = batch.paths

    def column(key: str) -> np.ndarray:
        # Object dtype keeps None distinguishable from a real value.
        values = np.empty(len(infos), dtype=object)
        values[:] = [info[key] for info in infos]
        return values

    if unused is not None:
        extra_fields["unused_ground_truth"] = unused
    return Bunch(
        **extra_fields,
        clips=clips,
        paths=paths,
        machine_ids=np.array([info["machine_id"] for info in infos], dtype=str),
        section=column("section"),
        domain=column("domain"),
        is_anomaly=np.array(
            [
                -1 if info["is_anomaly"] is None else info["is_anomaly"]
                for info in infos
            ],
            dtype=np.int64,
        ),
        index=np.array([info["index"] for info in infos], dtype=np.int64),
        attributes=column("attributes"),
        machine_type=machine_type,
        split=split,
        scheme=scheme,
        sample_rate=sample_rate,
        skipped=skipped,
    )


# ------------------------------------------------------------- ground truth
_LABEL_WORDS = {"0": 0, "1": 1, "normal": 0, "anomaly": 1, "anomalous": 1}
_DOMAIN_WORDS = {"0": "source", "1": "target", "source": "source", "target": "target"}
_GROUND_TRUTH_FORMATS = (
    "'filename,label' (label 0 normal, 1 anomalous), 'filename,label,domain' "
    "(domain source/target or 0/1), or the organisers' attribute files "
    "'filename,<full DCASE name>'"
)


def _clip_key(name: str) -> str:
    """Key matching a ground-truth row to a clip: base name, no audio suffix.

    Without the suffix, a data set re-encoded to FLAC still matches the
    organisers' ``.wav`` names.
    """
    return _strip_audio_suffix(Path(name.strip()).name)


def read_dcase_ground_truth(
    path: PathLike, *, column: Literal["label", "domain"] = "label"
) -> dict[str, dict[str, Any]]:
    """Read a DCASE ground-truth CSV file as the organisers ship them.

    The DCASE 2023 and 2024 evaluation data name their test clips
    anonymously (``section_00_0000.wav``) and give the truth in separate,
    headerless CSV files, one per machine type and section:
    ``ground_truth_data`` (``section_00_0000.wav,1``: the label),
    ``ground_truth_domain`` (``section_00_0000.wav,0``: the domain, 0 source,
    1 target) and ``ground_truth_attributes``
    (``section_00_0000.wav,section_00_target_test_normal_0000_vel_12``: the
    clip's full development-style name, hence label, domain and
    attributes). All three are read, as is a file with the columns
    ``filename,label,domain``.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file. An optional header line (a first row whose first cell
        is not a clip name, e.g. ``filename,label,domain``) is skipped, as
        are blank lines; a UTF-8 byte-order mark is ignored.
    column : {"label", "domain"}, default="label"
        What a bare second column means: ``"label"`` (0 normal, 1 anomalous,
        or ``normal``/``anomaly``) or ``"domain"`` (0 or ``source``, 1 or
        ``target``), for the organisers' ``ground_truth_domain`` files.

    Returns
    -------
    truth : dict of str to dict
        For each clip, keyed by its file name without folder and audio
        suffix (``"section_00_0000"``), a dict with ``"is_anomaly"`` (0, 1
        or None), ``"domain"`` (``"source"``, ``"target"`` or None) and
        ``"attributes"`` (str or None).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a row has fewer than two or more than three cells, a value is not
        a valid label or domain, a clip is listed twice with different
        values, or the file lists no clip. The message names the file and
        the line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> gt = pathlib.Path(tempfile.mkdtemp()) / "ground_truth.csv"
    >>> _ = gt.write_text("section_00_0000.wav,1\\nsection_00_0001.wav,0\\n")
    >>> read_dcase_ground_truth(gt)["section_00_0000"]["is_anomaly"]
    1
    >>> _ = gt.write_text("section_00_0000.wav,1\\n")
    >>> read_dcase_ground_truth(gt, column="domain")["section_00_0000"]["domain"]
    'target'
    """
    if column not in ("label", "domain"):
        raise ValueError(f"column must be 'label' or 'domain', got {column!r}")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"Ground-truth file '{file}' does not exist or is not a file; pass "
            "the CSV file shipped with the evaluation data (e.g. "
            "ground_truth_data/ground_truth_<machine>_section_00_test.csv)."
        )
    truth: dict[str, dict[str, Any]] = {}
    where_seen: dict[str, int] = {}
    with file.open(newline="", encoding="utf-8-sig") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            where = f"'{file}', line {line_no}"
            if line_no == 1 and not truth and _is_header(cells):
                continue
            if not 2 <= len(cells) <= 3 or not cells[0]:
                raise ValueError(
                    f"{where} has {len(cells)} cell(s): {','.join(row)!r}; "
                    f"expected {_GROUND_TRUTH_FORMATS}."
                )
            entry = _ground_truth_entry(cells, column, where)
            key = _clip_key(cells[0])
            if key in truth and truth[key] != entry:
                raise ValueError(
                    f"{where} lists '{cells[0]}' again with other values than "
                    f"line {where_seen[key]}; keep one row per clip."
                )
            truth[key] = entry
            where_seen[key] = line_no
    if not truth:
        raise ValueError(
            f"Ground-truth file '{file}' lists no clips; expected rows "
            f"{_GROUND_TRUTH_FORMATS}."
        )
    return truth


def _is_header(cells: list[str]) -> bool:
    """A first row is a header when its first cell is no clip name."""
    first = cells[0]
    if first.lower().endswith(_AUDIO_SUFFIXES):
        return False
    try:
        parse_dcase_filename(first)
    except ValueError:
        return True
    return False


def _ground_truth_entry(cells: list[str], column: str, where: str) -> dict[str, Any]:
    """The label, domain and attributes one ground-truth row gives."""
    entry: dict[str, Any] = {"is_anomaly": None, "domain": None, "attributes": None}
    value = cells[1].lower()
    if len(cells) == 2 and column == "domain":
        if value not in _DOMAIN_WORDS:
            raise ValueError(
                f"{where}: domain {cells[1]!r} is not 0/1 or source/target."
            )
        entry["domain"] = _DOMAIN_WORDS[value]
        return entry
    if value in _LABEL_WORDS:
        entry["is_anomaly"] = _LABEL_WORDS[value]
    elif len(cells) == 2:
        # The organisers' attribute files: the clip's development-style name.
        try:
            info = parse_dcase_filename(cells[1])
        except ValueError:
            info = None
        if info is None or info["is_anomaly"] is None:
            raise ValueError(
                f"{where}: {cells[1]!r} is neither a label (0 normal, 1 "
                "anomalous) nor a labelled DCASE name; expected "
                f"{_GROUND_TRUTH_FORMATS}."
            )
        entry.update(
            is_anomaly=info["is_anomaly"],
            domain=info["domain"],
            attributes=info["attributes"],
        )
        return entry
    else:
        raise ValueError(
            f"{where}: label {cells[1]!r} is not 0 (normal) or 1 (anomalous)."
        )
    if len(cells) == 3 and cells[2]:
        domain = cells[2].lower()
        if domain not in _DOMAIN_WORDS:
            raise ValueError(
                f"{where}: domain {cells[2]!r} is not source/target or 0/1."
            )
        entry["domain"] = _DOMAIN_WORDS[domain]
    return entry


def _read_ground_truths(
    paths: PathLike | Sequence[PathLike], column: Literal["label", "domain"]
) -> dict[str, tuple[dict[str, Any], str]]:
    """Merge ground-truth files: clip key -> (its values, the file)."""
    files = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    merged: dict[str, tuple[dict[str, Any], str]] = {}
    for file in files:
        for key, entry in read_dcase_ground_truth(file, column=column).items():
            if key in merged:
                other, other_file = merged[key]
                for field, value in entry.items():
                    if value is not None and other[field] not in (None, value):
                        raise ValueError(
                            f"'{key}' has {field} {other[field]!r} in "
                            f"'{other_file}' but {value!r} in '{file}'; pass "
                            "only the files of this machine type."
                        )
                entry = {f: other[f] if v is None else v for f, v in entry.items()}
            merged[key] = (entry, os.fspath(file))
    return merged


def _apply_ground_truth(
    files: list[Path],
    infos: list[dict[str, Any]],
    labels: PathLike | Sequence[PathLike] | None,
    domains: PathLike | Sequence[PathLike] | None,
    machine_dir: Path,
) -> list[str]:
    """Fill labels, domains and attributes of ``infos`` in place.

    Returns the names in the ground truth that match no clip.
    """
    truth: dict[str, tuple[dict[str, Any], str]] = {}
    for source, column in ((labels, "label"), (domains, "domain")):
        if source is None:
            continue
        for key, (entry, file) in _read_ground_truths(source, column).items():
            if key in truth:
                entry = {
                    f: truth[key][0][f] if v is None else v for f, v in entry.items()
                }
            truth[key] = (entry, file)
    keys = [_clip_key(f.name) for f in files]
    if not set(keys) & set(truth):
        example = next(iter(truth))
        raise ValueError(
            f"The ground-truth file(s) name none of the {len(files)} clip(s) in "
            f"{machine_dir} (e.g. they list '{example}', the folder holds "
            f"'{files[0].name}'); pass the files of this machine type and split."
        )
    for file, key, info in zip(files, keys, infos, strict=True):
        if key not in truth:
            continue
        entry, source = truth[key]
        for field in ("is_anomaly", "domain"):
            given = entry[field]
            if given is None:
                continue
            if info[field] is None:
                info[field] = given
            elif info[field] != given:
                raise ValueError(
                    f"'{file.name}' is {field}={info[field]!r} by its name but "
                    f"{given!r} in the ground truth ('{source}'); check that the "
                    "ground-truth files belong to this folder."
                )
        if info["attributes"] is None and entry["attributes"] is not None:
            info["attributes"] = entry["attributes"]
    missing = (
        [
            f.name
            for f, info in zip(files, infos, strict=True)
            if info["is_anomaly"] is None
        ]
        if labels is not None
        else []
    )
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} clip(s) in {machine_dir} have no label in their "
            f"names and none in the ground-truth file(s): {shown}. Pass the "
            "ground-truth files of every section of this machine type."
        )
    return sorted(set(truth) - set(keys))


# ------------------------------------------------------------ folder writer
def write_dcase2023_folder(
    root: PathLike,
    data: Mapping[str, Any],
    *,
    machine_type: str = "synth",
    anonymous_test: bool = True,
    subtype: str = "PCM_16",
    random_state: int | np.random.RandomState | None = 0,
) -> Bunch:
    """Write clips as a DCASE 2023-style machine-type folder.

    Meant for data from :func:`~sk_asd.datasets.make_machine_sounds`, so that
    the ``sk-asd`` command line and :func:`load_dcase` can be tried and
    tested on a folder laid out as the 2023 and 2024 challenges ship theirs.
    Each machine ID becomes a section (sorted IDs numbered ``00``,
    ``01``, ...). Training clips are named
    ``section_<SS>_<domain>_train_normal_<NNNN>_<attributes>.wav``, numbered
    per section and domain. Test clips are named either the development way
    (``section_<SS>_<domain>_test_<normal|anomaly>_<NNNN>_<attributes>.wav``)
    or, with ``anonymous_test=True``, the evaluation way
    (``section_<SS>_<NNNN>.wav``, in a shuffled order so that the numbers
    leak nothing), with the truth in a ground-truth CSV.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder to write into; ``<root>/<machine_type>/train`` and
        ``test`` are created. Existing files of the same names are
        overwritten.
    data : Bunch or mapping
        With ``X_train``, ``machine_ids_train``, ``X_test``,
        ``machine_ids_test``, ``is_anomaly_test`` and ``sample_rate``, and
        optionally ``domain_train``/``domain_test`` (default all
        ``"source"``) and ``attributes_train``/``attributes_test`` (default
        ``"noAttribute"``, as DCASE writes it). Clips of shape ``(n_clips,
        n_channels, n_samples)`` are written as multichannel files.
    machine_type : str, default="synth"
        Name of the machine-type folder.
    anonymous_test : bool, default=True
        Name the test clips anonymously and write the ground truth.
    subtype : str, default="PCM_16"
        Sample format, as for :func:`sk_asd.io.write_audio`.
    random_state : int, RandomState instance or None, default=0
        Order of the anonymous test names.

    Returns
    -------
    paths : sklearn.utils.Bunch
        ``train`` and ``test``: lists of the written files in the order of
        the clips in ``data``; ``ground_truth``: the path of
        ``<root>/ground_truth_<machine_type>_test.csv`` (rows
        ``filename,label,domain``, no header, sorted by name), or None when
        ``anonymous_test`` is False.

    Raises
    ------
    ValueError
        If a field is missing, its length does not match the clips, or a
        test clip's machine ID has no training clips.

    Examples
    --------
    >>> import tempfile
    >>> from sk_asd.datasets import make_machine_sounds
    >>> data = make_machine_sounds(1, n_normal_train=2, n_target_train=1,
    ...                            n_normal_test=1, n_anomalous_test=1,
    ...                            duration=0.1, random_state=0)
    >>> out = write_dcase2023_folder(tempfile.mkdtemp(), data)
    >>> [Path(p).name for p in out.train]  # doctest: +NORMALIZE_WHITESPACE
    ['section_00_source_train_normal_0000_spd_28V_load_1_mic_1.wav',
     'section_00_source_train_normal_0001_spd_28V_load_1_mic_1.wav',
     'section_00_target_train_normal_0000_spd_34V_load_3_mic_2.wav']
    >>> sorted(Path(p).name for p in out.test)
    ['section_00_0000.wav', 'section_00_0001.wav', 'section_00_0002.wav', \
'section_00_0003.wav']
    """
    required = (
        "X_train",
        "machine_ids_train",
        "X_test",
        "machine_ids_test",
        "is_anomaly_test",
        "sample_rate",
    )
    absent = [key for key in required if key not in data]
    if absent:
        raise ValueError(
            f"data lacks {absent}; pass the output of make_machine_sounds or a "
            f"mapping with the fields {list(required)}."
        )
    sample_rate = int(data["sample_rate"])
    section_of = {
        str(m): f"{k:02d}"
        for k, m in enumerate(
            sorted({str(m) for m in np.asarray(data["machine_ids_train"])})
        )
    }
    machine_dir = Path(root) / machine_type

    def column(key: str, n: int, default: str) -> list[str]:
        values = data.get(key)
        if values is None:
            return [default] * n
        values = [str(v) for v in np.asarray(values).tolist()]
        if len(values) != n:
            raise ValueError(f"data[{key!r}] has {len(values)} values for {n} clips.")
        return values

    def sections(key: str, n: int) -> list[str]:
        ids = column(key, n, "")
        unknown = sorted(set(ids) - set(section_of))
        if unknown:
            raise ValueError(
                f"machine IDs {unknown} of the test clips have no training "
                "clips; every section needs training clips."
            )
        return [section_of[m] for m in ids]

    def write(path: Path, wave: np.ndarray) -> str:
        # soundfile wants (n_samples, n_channels) for multichannel audio.
        write_audio(path, wave.T if wave.ndim == 2 else wave, sample_rate, subtype)
        return str(path)

    x_train = np.asarray(data["X_train"])
    n_train = x_train.shape[0]
    train_sections = sections("machine_ids_train", n_train)
    train_domains = column("domain_train", n_train, "source")
    train_attrs = column("attributes_train", n_train, "noAttribute")
    counter: dict[tuple[str, str], int] = {}
    train_paths = []
    for i in range(n_train):
        group = (train_sections[i], train_domains[i])
        index = counter.get(group, 0)
        counter[group] = index + 1
        name = (
            f"section_{group[0]}_{group[1]}_train_normal_{index:04d}_"
            f"{train_attrs[i]}.wav"
        )
        train_paths.append(write(machine_dir / "train" / name, x_train[i]))

    x_test = np.asarray(data["X_test"])
    n_test = x_test.shape[0]
    test_sections = sections("machine_ids_test", n_test)
    test_domains = column("domain_test", n_test, "source")
    test_attrs = column("attributes_test", n_test, "noAttribute")
    labels = [int(v) for v in column("is_anomaly_test", n_test, "")]
    test_paths = [""] * n_test
    rng = check_random_state(random_state)
    rows: list[tuple[str, int, str]] = []
    counter.clear()
    for section in sorted(set(test_sections)):
        members = [i for i in range(n_test) if test_sections[i] == section]
        if anonymous_test:
            # Shuffled, so that a clip's number says nothing of its label.
            members = [members[j] for j in rng.permutation(len(members))]
        for index, i in enumerate(members):
            if anonymous_test:
                name = f"section_{section}_{index:04d}.wav"
                rows.append((name, labels[i], test_domains[i]))
            else:
                group = (section, test_domains[i])
                index = counter.get(group, 0)
                counter[group] = index + 1
                label = "anomaly" if labels[i] else "normal"
                name = (
                    f"section_{section}_{test_domains[i]}_test_{label}_"
                    f"{index:04d}_{test_attrs[i]}.wav"
                )
            test_paths[i] = write(machine_dir / "test" / name, x_test[i])

    ground_truth = None
    if anonymous_test:
        ground_truth = Path(root) / f"ground_truth_{machine_type}_test.csv"
        with ground_truth.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(sorted(rows))
        ground_truth = str(ground_truth)
    return Bunch(train=train_paths, test=test_paths, ground_truth=ground_truth)
