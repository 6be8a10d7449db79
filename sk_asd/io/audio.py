"""Reading and writing raw audio clips.

The detector works on 1-D mono waveforms at one fixed sample rate. This module
turns audio files of any layout that libsndfile understands (WAV, FLAC, OGG,
...) into exactly that, through three documented rules and nothing else:

1. **Scaling.** Samples are read as floating point. libsndfile maps integer
   PCM onto ``[-1, 1)`` (int16 is divided by ``2**15``, int32 by ``2**31``);
   float files keep their values. No normalisation, no DC removal.
2. **Channels.** A multichannel file is reduced to one channel by the
   ``channel`` rule: ``"mean"`` averages all channels, an integer picks one
   channel (Python indexing, so ``-1`` is the last channel).
3. **Sample rate.** A file at another rate is resampled to ``sample_rate`` with
   :func:`scipy.signal.resample_poly`, using the exact rational factor
   ``sample_rate / file_rate`` reduced by their greatest common divisor.

Anything that would need a guess (a missing, unreadable, truncated or empty
file, a file with NaN or infinite samples, a channel that does not exist)
raises :class:`AudioLoadError`, whose message names the file, the reason and
what to do about it.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = [
    "AudioBatch",
    "AudioFileNotFoundError",
    "AudioLoadError",
    "SkippedFile",
    "load_audio",
    "load_audios",
    "write_audio",
]

PathLike = str | os.PathLike[str]
Channel = Literal["mean"] | int
LengthRule = Literal["pad", "crop", "list"]

_LENGTH_RULES = ("pad", "crop", "list")


class AudioLoadError(ValueError):
    """An audio file could not be turned into a waveform.

    Parameters
    ----------
    path : str or os.PathLike
        The file that failed.
    reason : str
        Short description of what is wrong with the file, without the path;
        it is what a command-line tool prints after ``"skipped <path>: "``.
    hint : str, default=""
        What the user can do about it.

    Attributes
    ----------
    path : str
        The file that failed.
    reason : str
        Short description of the failure.
    hint : str
        Suggested remedy (may be empty).

    Examples
    --------
    >>> err = AudioLoadError("a.wav", "the file contains no audio frames")
    >>> err.path, err.reason
    ('a.wav', 'the file contains no audio frames')
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, path: PathLike, reason: str, hint: str = "") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.hint = hint
        message = f"Cannot load audio file '{self.path}': {reason}."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # The custom __init__ signature would break the default pickling that
        # joblib's process backends use to send exceptions back to the parent.
        return (type(self), (self.path, self.reason, self.hint))

    def __str__(self) -> str:
        # OSError (a base of AudioFileNotFoundError) would otherwise print
        # "[Errno None] ..." instead of the message.
        return str(self.args[0]) if self.args else super().__str__()


class AudioFileNotFoundError(AudioLoadError, FileNotFoundError):
    """The audio file does not exist.

    Subclass of both :class:`AudioLoadError` and :class:`FileNotFoundError`, so
    callers can catch either.

    Parameters
    ----------
    path : str or os.PathLike
        The missing file.
    reason : str, default="the file does not exist"
        Short description of the failure.
    hint : str, default=""
        Suggested remedy.

    Attributes
    ----------
    path : str
        The missing file.
    filename : str
        The same path, where :class:`FileNotFoundError` handlers look for it.
    reason : str
        Short description of the failure.
    hint : str
        Suggested remedy (may be empty).

    Examples
    --------
    >>> err = AudioFileNotFoundError("gone.wav")
    >>> isinstance(err, FileNotFoundError), isinstance(err, AudioLoadError)
    (True, True)
    """

    def __init__(
        self,
        path: PathLike,
        reason: str = "the file does not exist",
        hint: str = "",
    ) -> None:
        super().__init__(path, reason, hint)
        self.filename = self.path


class SkippedFile(NamedTuple):
    """A file left out by ``load_audios(..., skip_bad=True)``.

    Parameters
    ----------
    path : str
        The file that was skipped.
    reason : str
        Why it was skipped.

    Attributes
    ----------
    path : str
        The file that was skipped.
    reason : str
        Why it was skipped (the :attr:`AudioLoadError.reason`).

    Examples
    --------
    >>> s = SkippedFile("b.wav", "the file contains no audio frames")
    >>> print(f"skipped {s.path}: {s.reason}")
    skipped b.wav: the file contains no audio frames
    """

    path: str
    reason: str


@dataclass
class AudioBatch:
    """The result of :func:`load_audios`.

    A dataclass whose fields are given by keyword (or in the order below)
    and kept as attributes of the same names.

    Parameters
    ----------
    waves : numpy.ndarray or list of numpy.ndarray
        The loaded clips.
    paths : list of str
        The files that were loaded.
    indices : numpy.ndarray of int
        Position of each loaded file in the input sequence.
    lengths : numpy.ndarray of int
        Length of each clip after resampling, before padding or cropping.
    sample_rate : int
        Sample rate of ``waves`` in Hz.
    skipped : list of SkippedFile, default=[]
        Files that could not be loaded.

    Attributes
    ----------
    waves : numpy.ndarray or list of numpy.ndarray
        ``(n_clips, n_samples)`` array for the ``"pad"`` and ``"crop"`` length
        rules, a list of 1-D arrays for ``"list"``. Row ``i`` comes from
        ``paths[i]``.
    paths : list of str
        The files that were loaded, in input order.
    indices : numpy.ndarray of int
        Position of each loaded file in the input sequence, so metadata that
        runs parallel to the input can be filtered with ``meta[indices]``.
    lengths : numpy.ndarray of int
        Length in samples of each clip after resampling and before padding
        or cropping; compare with ``waves.shape[1]`` to see what changed.
    sample_rate : int
        Sample rate of ``waves`` in Hz.
    skipped : list of SkippedFile
        Files left out because they could not be loaded (only ever non-empty
        with ``skip_bad=True``).

    Examples
    --------
    >>> batch = AudioBatch(
    ...     waves=np.zeros((1, 4), dtype=np.float32),
    ...     paths=["a.wav"],
    ...     indices=np.array([0]),
    ...     lengths=np.array([3]),
    ...     sample_rate=16000,
    ... )
    >>> len(batch), batch.skipped
    (1, [])
    """

    waves: np.ndarray | list[np.ndarray]
    paths: list[str]
    indices: np.ndarray
    lengths: np.ndarray
    sample_rate: int
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def _check_sample_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise TypeError(
            f"sample_rate must be a positive int, got {type(sample_rate).__name__}"
        )
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate}")
    return int(sample_rate)


def _check_channel(channel: Channel) -> Channel:
    # bool is an int subclass; channel=True almost certainly is a mistake.
    if channel == "mean":
        return channel
    if isinstance(channel, int | np.integer) and not isinstance(channel, bool):
        return int(channel)
    raise ValueError(f"channel must be 'mean' or an int index, got {channel!r}")


def _wav_truncation(path: Path) -> str | None:
    """Return why a RIFF/WAVE file is truncated, or None when it looks whole.

    libsndfile quietly returns the frames that are present when a WAV file
    was cut short (an interrupted download or copy), which would hand a
    shorter clip to the model. The data chunk's declared size tells us.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # RF64 and other containers: trust libsndfile.
            # A well-formed file has a handful of chunks; the bound guards
            # against looping on garbage.
            for _ in range(64):
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    available = size - fh.tell()
                    # Streaming writers leave 0 or 0xFFFFFFFF when the length
                    # was unknown; those sizes say nothing about truncation.
                    if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= available:
                        return None
                    return (
                        f"the file is truncated: its header declares {chunk_size} "
                        f"bytes of audio data but only {available} are present"
                    )
                fh.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return None  # libsndfile will report the I/O problem itself.
    return None


def _read_float(path: Path) -> tuple[np.ndarray, int]:
    """Read a file as ``(n_frames, n_channels)`` float64 plus its sample rate."""
    if not path.exists():
        raise AudioFileNotFoundError(
            path, hint="Check the path and that the dataset was fully extracted."
        )
    if not path.is_file():
        raise AudioLoadError(path, "the path is not a regular file")
    try:
        with sf.SoundFile(path) as fh:
            file_rate = int(fh.samplerate)
            is_wav = fh.format == "WAV"
            # float64 keeps int32 PCM exact through channel mixing and
            # resampling; the caller casts to the requested dtype at the end.
            data = fh.read(dtype="float64", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioLoadError(
            path,
            f"the file is not readable audio or is corrupt ({exc})",
            hint="Re-download or re-export the file, or remove it.",
        ) from exc
    if is_wav:
        truncation = _wav_truncation(path)
        if truncation is not None:
            raise AudioLoadError(
                path, truncation, hint="Re-download or re-export the file."
            )
    if data.shape[0] == 0:
        raise AudioLoadError(
            path,
            "the file contains no audio frames (0 samples)",
            hint="Remove the file or replace it with a real recording.",
        )
    if not np.isfinite(data).all():
        raise AudioLoadError(
            path,
            "the file contains NaN or infinite samples",
            hint="Fix or remove the file; non-finite values would poison training.",
        )
    return data, file_rate


def load_audio(
    path: PathLike,
    *,
    sample_rate: int = 16000,
    channel: Channel = "mean",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Load one audio file as a 1-D mono waveform at ``sample_rate``.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file in any format libsndfile reads (WAV, FLAC, OGG, ...).
    sample_rate : int, default=16000
        Sample rate of the returned waveform in Hz. Files at another rate are
        resampled with :func:`scipy.signal.resample_poly` by the exact
        rational factor ``sample_rate / file_rate``.
    channel : "mean" or int, default="mean"
        How a multichannel file becomes mono: ``"mean"`` averages all
        channels; an int selects that channel (0-based, negative values count
        from the end). Mono files accept ``"mean"``, ``0`` and ``-1``.
    dtype : numpy dtype, default=numpy.float32
        Floating dtype of the returned array.

    Returns
    -------
    wave : numpy.ndarray of shape (n_samples,)
        The waveform. Integer PCM is scaled to ``[-1, 1)``; float files keep
        their values. After resampling, ``n_samples`` is
        ``ceil(n_frames * sample_rate / file_rate)``.

    Raises
    ------
    AudioFileNotFoundError
        If ``path`` does not exist (also a :class:`FileNotFoundError`).
    AudioLoadError
        If the file is not readable audio, is corrupt or truncated, holds no
        frames, contains NaN/inf samples, or has no channel ``channel``.
    ValueError
        If ``channel``, ``sample_rate`` or ``dtype`` is invalid.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp()) / "tone.wav"
    >>> t = np.arange(44100) / 44100
    >>> stereo = 0.5 * np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1)
    >>> _ = write_audio(tmp, stereo, sample_rate=44100)
    >>> wave = load_audio(tmp)  # averaged to mono, resampled to 16 kHz
    >>> wave.shape, wave.dtype
    ((16000,), dtype('float32'))
    """
    sample_rate = _check_sample_rate(sample_rate)
    channel = _check_channel(channel)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")

    path = Path(path)
    data, file_rate = _read_float(path)

    n_channels = data.shape[1]
    if channel == "mean":
        mono = data.mean(axis=1)
    else:
        if not -n_channels <= channel < n_channels:
            raise AudioLoadError(
                path,
                f"channel {channel} was requested but the file has "
                f"{n_channels} channel(s)",
                hint=f"Use an index in [0, {n_channels - 1}] or channel='mean'.",
            )
        mono = data[:, channel]

    if file_rate != sample_rate:
        # Dividing by the gcd gives the smallest exact up/down pair, which
        # keeps resample_poly's polyphase filter short.
        g = math.gcd(sample_rate, file_rate)
        mono = resample_poly(mono, sample_rate // g, file_rate // g)

    return np.ascontiguousarray(mono, dtype=dtype)


def _load_or_reason(
    path: PathLike, sample_rate: int, channel: Channel, dtype: np.dtype
) -> np.ndarray | AudioLoadError:
    # Returning the error instead of raising lets skip_bad collect every bad
    # file in one pass rather than stopping at the first.
    try:
        return load_audio(path, sample_rate=sample_rate, channel=channel, dtype=dtype)
    except AudioLoadError as exc:
        return exc


def load_audios(
    paths: Iterable[PathLike],
    *,
    sample_rate: int = 16000,
    channel: Channel = "mean",
    length: LengthRule = "pad",
    target_length: int | None = None,
    skip_bad: bool = False,
    dtype: np.dtype | type = np.float32,
    n_jobs: int | None = None,
) -> AudioBatch:
    """Load many audio files with :func:`load_audio` and align their lengths.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Files to load, in the order the rows of the result should have.
    sample_rate : int, default=16000
        Sample rate of every returned waveform; see :func:`load_audio`.
    channel : "mean" or int, default="mean"
        Multichannel rule; see :func:`load_audio`.
    length : {"pad", "crop", "list"}, default="pad"
        How clips of different lengths are combined:

        - ``"pad"``: every clip is zero-padded at the end, or cut at the end,
          to ``target_length`` samples. By default ``target_length`` is the
          longest clip, so nothing is cut unless asked for.
        - ``"crop"``: every clip is cut at the end to the shortest clip.
        - ``"list"``: clips are returned unchanged as a list of 1-D arrays.

        Equal-length inputs come back unchanged under every rule; compare
        ``AudioBatch.lengths`` with the output width to see what changed.
    target_length : int, optional
        Output length in samples for ``length="pad"``. Not allowed with the
        other rules, where it would be ignored.
    skip_bad : bool, default=False
        If False, the first file that cannot be loaded raises. If True, such
        files are left out and listed in ``AudioBatch.skipped`` as
        ``(path, reason)`` pairs, and ``AudioBatch.indices`` tells which
        inputs were kept.
    dtype : numpy dtype, default=numpy.float32
        Floating dtype of the waveforms.
    n_jobs : int, optional
        Number of threads reading files in parallel (joblib semantics: None
        means 1, -1 means all cores). Decoding is I/O and C bound, so threads
        are enough.

    Returns
    -------
    batch : AudioBatch
        ``batch.waves`` is an ``(n_clips, n_samples)`` array (``"pad"``,
        ``"crop"``) or a list of 1-D arrays (``"list"``), with ``batch.paths``,
        ``batch.indices``, ``batch.lengths``, ``batch.sample_rate`` and
        ``batch.skipped`` alongside.

    Raises
    ------
    AudioLoadError
        If a file cannot be loaded and ``skip_bad`` is False (see
        :func:`load_audio` for the cases).
    ValueError
        If ``paths`` is empty, every file was skipped, or an argument is
        invalid.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> a = write_audio(tmp / "a.wav", np.full(3, 0.5))
    >>> b = write_audio(tmp / "b.wav", np.full(5, 0.25))
    >>> load_audios([a, b]).waves.shape  # padded to the longest clip
    (2, 5)
    >>> load_audios([a, b], length="crop").waves.shape
    (2, 3)
    >>> (tmp / "bad.wav").write_bytes(b"not audio")
    9
    >>> batch = load_audios([a, tmp / "bad.wav"], skip_bad=True)
    >>> batch.waves.shape, [pathlib.Path(s.path).name for s in batch.skipped]
    ((1, 3), ['bad.wav'])
    """
    sample_rate = _check_sample_rate(sample_rate)
    channel = _check_channel(channel)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    if length not in _LENGTH_RULES:
        raise ValueError(f"length must be one of {_LENGTH_RULES}, got {length!r}")
    if target_length is not None:
        if length != "pad":
            raise ValueError(
                f"target_length is only used with length='pad', not {length!r}"
            )
        if (
            isinstance(target_length, bool)
            or not isinstance(target_length, int | np.integer)
            or target_length <= 0
        ):
            raise ValueError(
                f"target_length must be a positive int, got {target_length!r}"
            )
        target_length = int(target_length)

    path_list = [os.fspath(p) for p in paths]
    if not path_list:
        raise ValueError("load_audios needs at least one path; got none")

    if n_jobs is None or n_jobs == 1:
        results = [_load_or_reason(p, sample_rate, channel, dtype) for p in path_list]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_load_or_reason)(p, sample_rate, channel, dtype) for p in path_list
        )

    waves: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[SkippedFile] = []
    for i, result in enumerate(results):
        if isinstance(result, AudioLoadError):
            if not skip_bad:
                raise result
            skipped.append(SkippedFile(path_list[i], result.reason))
        else:
            waves.append(result)
            kept.append(i)
    del results

    if not waves:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        raise ValueError(
            f"none of the {len(path_list)} audio files could be loaded: {shown}{more}"
        )

    lengths = np.array([w.shape[0] for w in waves], dtype=np.int64)
    if length == "list":
        out: np.ndarray | list[np.ndarray] = waves
    else:
        if length == "crop":
            n_samples = int(lengths.min())
        else:
            n_samples = target_length if target_length else int(lengths.max())
        out = np.zeros((len(waves), n_samples), dtype=dtype)
        # Popping from the end frees each clip once it is copied, so peak
        # memory stays near one copy of the data instead of two.
        while waves:
            row = len(waves) - 1
            wave = waves.pop()
            n = min(n_samples, wave.shape[0])
            out[row, :n] = wave[:n]

    return AudioBatch(
        waves=out,
        paths=[path_list[i] for i in kept],
        indices=np.array(kept, dtype=np.int64),
        lengths=lengths,
        sample_rate=sample_rate,
        skipped=skipped,
    )


def write_audio(
    path: PathLike,
    wave: np.ndarray,
    sample_rate: int = 16000,
    subtype: str | None = "PCM_16",
) -> Path:
    """Write a waveform to an audio file (a thin wrapper of :func:`soundfile.write`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the format follows the extension (``.wav``, ``.flac``,
        ``.ogg``, ...). Parent folders are created.
    wave : array-like of shape (n_samples,) or (n_samples, n_channels)
        Samples. Float values are written as they are; for integer PCM
        subtypes they must lie in ``[-1, 1]``.
    sample_rate : int, default=16000
        Sample rate in Hz stored in the file.
    subtype : str or None, default="PCM_16"
        libsndfile subtype such as ``"PCM_16"``, ``"PCM_32"`` or ``"FLOAT"``;
        None uses the format's default.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        If ``wave`` is not 1-D or 2-D, holds NaN/inf values, or exceeds
        ``[-1, 1]`` for a PCM subtype (libsndfile would wrap, not clip).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = write_audio(pathlib.Path(tempfile.mkdtemp()) / "z.wav", np.zeros(8))
    >>> load_audio(out).shape
    (8,)
    """
    sample_rate = _check_sample_rate(sample_rate)
    wave = np.asarray(wave)
    if wave.ndim not in (1, 2):
        raise ValueError(
            f"wave must be 1-D or (n_samples, n_channels), got shape {wave.shape}"
        )
    if wave.dtype.kind == "f":
        if not np.isfinite(wave).all():
            raise ValueError("wave contains NaN or infinite values")
        if subtype and subtype.upper().startswith("PCM") and wave.size:
            peak = float(np.max(np.abs(wave)))
            if peak > 1.0:
                raise ValueError(
                    f"wave peaks at {peak:.3g}, outside [-1, 1] required by "
                    f"subtype {subtype}; scale it or use subtype='FLOAT'"
                )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sample_rate, subtype=subtype)
    return path
