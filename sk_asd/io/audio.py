"""Reading and writing raw audio clips.

The detector works on 1-D mono waveforms at one fixed sample rate. This module
turns audio files of any layout that libsndfile understands (WAV, FLAC, OGG,
...) into exactly that, through three documented rules and nothing else:

1. **Scaling.** Samples are read as floating point. libsndfile maps integer
   PCM onto ``[-1, 1)`` (int16 is divided by ``2**15``, int32 by ``2**31``);
   float files keep their values. No normalisation, no DC removal.
2. **Channels.** A multichannel file is reduced to one channel by the
   ``channel`` rule: ``"mean"`` averages all channels, an integer picks one
   channel (Python indexing, so ``-1`` is the last channel). ``"each"``
   keeps every channel: :func:`load_audio` returns ``(n_channels,
   n_samples)`` and :func:`load_audios` makes each channel its own clip,
   with ``AudioBatch.indices`` and ``AudioBatch.channels`` mapping every row
   back to its file and channel (for near/far or array microphones whose
   scores are combined per file afterwards).
3. **Sample rate.** A file at another rate is resampled to ``sample_rate`` with
   :func:`scipy.signal.resample_poly`, using the exact rational factor
   ``sample_rate / file_rate`` reduced by their greatest common divisor.

Anything that would need a guess (a missing, unreadable, truncated or empty
file, a file with NaN or infinite samples, a channel that does not exist, a
header that declares an implausible sample rate) raises
:class:`AudioLoadError`, whose message names the file, the reason and what to
do about it.

Only as much of a file is decoded as the result needs: with ``max_samples``
(and ``load_audios(..., target_length=...)``) the frames past the requested
length are never read, so scoring the first seconds of an hour-long file
costs the memory of those seconds; multichannel files are mixed to mono
block by block.
"""

from __future__ import annotations

import errno
import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

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
    "probe_audio",
    "write_audio",
]

PathLike = str | os.PathLike[str]
Channel = Literal["mean", "each"] | int
LengthRule = Literal["pad", "crop", "list"]

_LENGTH_RULES = ("pad", "crop", "list")

#: Sample rates a file header may declare. Outside this range the header is
#: broken or hostile: a "1 Hz" file would be resampled 16,000-fold (an 11.9
#: GiB allocation from a 100 kB file). 384 kHz is the highest rate of
#: common audio hardware.
MIN_FILE_SAMPLE_RATE = 1000
MAX_FILE_SAMPLE_RATE = 384_000

#: Frames decoded at a time when mixing a multichannel file down to mono, so
#: that only one block of all channels is held at once.
_BLOCK_FRAMES = 1 << 18


class AudioLoadError(ValueError):
    """An audio file could not be turned into a waveform.

    Parameters
    ----------
    path : str or os.PathLike
        The file that failed.
    reason : str, optional
        Short description of what is wrong with the file, without the path;
        it is what a command-line tool prints after ``"skipped <path>: "``.
        Without it, ``path`` is taken as a complete message: the form in
        which torch's DataLoader re-raises an error from a worker process,
        which thus keeps its type (``path`` is then empty).
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

    def __init__(
        self, path: PathLike, reason: str | None = None, hint: str = ""
    ) -> None:
        if reason is None:
            self.path, self.reason, self.hint = "", str(path), hint
            super().__init__(str(path))
            return
        self.path = os.fspath(path)
        self.reason = reason
        self.hint = hint
        message = f"Cannot load audio file '{self.path}': {reason}."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        # The custom __init__ signature would break the default pickling that
        # joblib's process backends use to send exceptions back to the parent.
        if not self.path:
            return (type(self), (self.reason, None, self.hint))
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
    channels : numpy.ndarray of int or None, default=None
        Channel of each clip in its file, with ``channel="each"``.

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
    channels : numpy.ndarray of int or None
        With ``channel="each"``, the channel each row holds (0 for a mono
        file); a file of ``C`` channels gives ``C`` consecutive rows with
        the same ``paths`` and ``indices`` entry. None for the other rules.

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
    channels: np.ndarray | None = None

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
    if isinstance(channel, str) and channel in ("mean", "each"):
        return channel
    if isinstance(channel, int | np.integer) and not isinstance(channel, bool):
        return int(channel)
    raise ValueError(f"channel must be 'mean', 'each' or an int index, got {channel!r}")


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


def _check_path(path: Path) -> None:
    """Raise an :class:`AudioLoadError` naming what is wrong with ``path``."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioFileNotFoundError(
                path, "it is a symbolic link to a file that does not exist"
            ) from None
        raise AudioFileNotFoundError(
            path, hint="Check the path and that the dataset was fully extracted."
        ) from None
    except PermissionError:
        raise AudioLoadError(
            path,
            "permission denied",
            hint="Check the permissions of the file and of its folders.",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioLoadError(path, "it is a loop of symbolic links") from None
        raise AudioLoadError(path, f"it cannot be accessed ({exc.strerror})") from None
    if not path.is_file():
        raise AudioLoadError(path, "the path is not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioLoadError(
            path,
            "permission denied (the file is not readable)",
            hint="Check the permissions of the file.",
        )


def _sf_path(path: Path) -> str | bytes:
    """``path`` as libsndfile should get it.

    soundfile encodes a str path strictly, so a file name that is not valid
    UTF-8 (kept by Python as surrogate escapes) raised UnicodeEncodeError;
    the bytes the OS gave are what it needs on POSIX.
    """
    return os.fsencode(path) if os.name == "posix" else os.fspath(path)


def _check_file_rate(path: Path, file_rate: int) -> None:
    if not MIN_FILE_SAMPLE_RATE <= file_rate <= MAX_FILE_SAMPLE_RATE:
        raise AudioLoadError(
            path,
            f"its header declares an implausible sample rate of {file_rate} Hz "
            f"(expected {MIN_FILE_SAMPLE_RATE} to {MAX_FILE_SAMPLE_RATE} Hz)",
            hint="The file is corrupt or mislabelled; re-export or remove it.",
        )


def _unreadable(path: Path, exc: BaseException) -> AudioLoadError:
    return AudioLoadError(
        path,
        f"the file is not readable audio or is corrupt ({exc})",
        hint="Re-download or re-export the file, or remove it.",
    )


def probe_audio(path: PathLike) -> tuple[int, int, int]:
    """Check a file's header without decoding it.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.

    Returns
    -------
    n_frames, n_channels, sample_rate : int
        As the header declares them.

    Raises
    ------
    AudioFileNotFoundError
        If ``path`` does not exist.
    AudioLoadError
        If it cannot be opened as audio, is truncated, holds no frames or
        declares an implausible sample rate.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = write_audio(pathlib.Path(tempfile.mkdtemp()) / "z.wav", np.zeros(8))
    >>> probe_audio(out)
    (8, 1, 16000)
    """
    path = Path(path)
    _check_path(path)
    try:
        info = sf.info(_sf_path(path))
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc
    _check_file_rate(path, int(info.samplerate))
    if info.format == "WAV":
        truncation = _wav_truncation(path)
        if truncation is not None:
            raise AudioLoadError(
                path, truncation, hint="Re-download or re-export the file."
            )
    if info.frames == 0:
        raise AudioLoadError(
            path,
            "the file contains no audio frames (0 samples)",
            hint="Remove the file or replace it with a real recording.",
        )
    return int(info.frames), int(info.channels), int(info.samplerate)


def _frames_needed(max_samples: int, sample_rate: int, file_rate: int) -> int:
    """Input frames that determine the first ``max_samples`` output samples.

    Resampling by ``up/down`` with :func:`~scipy.signal.resample_poly`'s
    default filter (half-length ``10 * max(up, down)`` taps at the upsampled
    rate) lets output sample ``n`` depend on input frames up to about
    ``(n * down + 10 * max(up, down)) / up``; a margin beyond that keeps the
    first ``max_samples`` samples exactly what decoding the whole file gives.
    """
    if file_rate == sample_rate:
        return max_samples
    g = math.gcd(sample_rate, file_rate)
    up, down = sample_rate // g, file_rate // g
    reach = (max_samples * down + 10 * max(up, down)) / up
    return int(math.ceil(reach)) + 16


def _read_float(
    path: Path, channel: Channel, frames_for: int | None = None
) -> tuple[np.ndarray, int, int]:
    """Read a file as a float64 mono ``(n,)`` wave, its rate and its frames.

    With ``channel="each"`` the wave is ``(n, n_channels)`` instead.

    ``frames_for`` (output samples at ``sample_rate``, see ``_read_mono``)
    limits decoding to the frames that matter; the frame count returned is
    the whole file's.
    """
    _check_path(path)
    try:
        with sf.SoundFile(_sf_path(path)) as fh:
            file_rate = int(fh.samplerate)
            # Checked before any decoding or allocation.
            _check_file_rate(path, file_rate)
            is_wav = fh.format == "WAV"
            n_frames = int(fh.frames)
            n_channels = int(fh.channels)
            if not isinstance(channel, str) and not -n_channels <= channel < n_channels:
                raise AudioLoadError(
                    path,
                    f"channel {channel} was requested but the file has "
                    f"{n_channels} channel(s)",
                    hint=f"Use an index in [0, {n_channels - 1}] or channel='mean'.",
                )
            to_read = n_frames if frames_for is None else min(n_frames, frames_for)
            mono = _read_mono(fh, to_read, channel)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc
    if is_wav:
        truncation = _wav_truncation(path)
        if truncation is not None:
            raise AudioLoadError(
                path, truncation, hint="Re-download or re-export the file."
            )
    if n_frames == 0 or mono.shape[0] == 0:
        raise AudioLoadError(
            path,
            "the file contains no audio frames (0 samples)",
            hint="Remove the file or replace it with a real recording.",
        )
    if not np.isfinite(mono).all():
        raise AudioLoadError(
            path,
            "the file contains NaN or infinite samples",
            hint="Fix or remove the file; non-finite values would poison training.",
        )
    return mono, file_rate, n_frames


def _read_mono(fh: sf.SoundFile, n_frames: int, channel: Channel) -> np.ndarray:
    """Up to ``n_frames`` frames of an open file as a float64 mono wave.

    float64 keeps int32 PCM exact through channel mixing and resampling; the
    caller casts to the requested dtype at the end. Multichannel files are
    decoded one block at a time, so all channels of the whole file are never
    held at once.
    """
    if channel == "each":
        # Every channel is kept, so there is nothing to save by blocks.
        return fh.read(frames=n_frames, dtype="float64", always_2d=True)
    if fh.channels == 1:
        return fh.read(frames=n_frames, dtype="float64", always_2d=True)[:, 0]
    out = np.empty(n_frames, dtype=np.float64)
    filled = 0
    while filled < n_frames:
        block = fh.read(
            frames=min(_BLOCK_FRAMES, n_frames - filled),
            dtype="float64",
            always_2d=True,
        )
        if block.shape[0] == 0:  # fewer frames than the header declared
            break
        part = block.mean(axis=1) if channel == "mean" else block[:, channel]
        out[filled : filled + part.shape[0]] = part
        filled += part.shape[0]
    return out[:filled]


def load_audio(
    path: PathLike,
    *,
    sample_rate: int = 16000,
    channel: Channel = "mean",
    dtype: np.dtype | type = np.float32,
    max_samples: int | None = None,
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
    channel : "mean", "each" or int, default="mean"
        How a multichannel file becomes mono: ``"mean"`` averages all
        channels; an int selects that channel (0-based, negative values count
        from the end). Mono files accept ``"mean"``, ``0`` and ``-1``.
        ``"each"`` keeps every channel (all are decoded at once).
    dtype : numpy dtype, default=numpy.float32
        Floating dtype of the returned array.
    max_samples : int, optional
        Return at most the first ``max_samples`` samples (at
        ``sample_rate``), decoding only the frames they depend on; they are
        the same values as the start of the full waveform. ``None`` decodes
        the whole file.

    Returns
    -------
    wave : numpy.ndarray of shape (n_samples,)
        The waveform; ``(n_channels, n_samples)`` with ``channel="each"``
        (``(1, n_samples)`` for a mono file). Integer PCM is scaled to
        ``[-1, 1)``; float files keep their values. After resampling, ``n_samples`` is
        ``ceil(n_frames * sample_rate / file_rate)`` (at most
        ``max_samples``).

    Raises
    ------
    AudioFileNotFoundError
        If ``path`` does not exist (also a :class:`FileNotFoundError`).
    AudioLoadError
        If the file is not readable audio, is corrupt or truncated, holds no
        frames, contains NaN/inf samples (in the decoded part), has no
        channel ``channel``, or its header declares a sample rate outside
        ``MIN_FILE_SAMPLE_RATE`` to ``MAX_FILE_SAMPLE_RATE`` (1 kHz to 384
        kHz); nothing is decoded in that case.
    ValueError
        If ``channel``, ``sample_rate``, ``dtype`` or ``max_samples`` is
        invalid.

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
    >>> load_audio(tmp, channel="each").shape
    (2, 16000)
    """
    sample_rate = _check_sample_rate(sample_rate)
    channel = _check_channel(channel)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    if max_samples is not None:
        max_samples = _check_positive_int(max_samples, "max_samples")
    return _load(Path(path), sample_rate, channel, dtype, max_samples)[0]


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _load(
    path: Path,
    sample_rate: int,
    channel: Channel,
    dtype: np.dtype,
    max_samples: int | None,
) -> tuple[np.ndarray, int]:
    """The (possibly cut) wave and the full length it would have, in samples."""
    # The frame budget needs the file's rate, which the open file tells;
    # _read_float checks it before decoding anything.
    frames_for = None
    if max_samples is not None:
        file_rate = _header_rate(path)
        frames_for = _frames_needed(max_samples, sample_rate, file_rate)
    mono, file_rate, n_frames = _read_float(path, channel, frames_for)
    full_length = n_frames
    if file_rate != sample_rate:
        # Dividing by the gcd gives the smallest exact up/down pair, which
        # keeps resample_poly's polyphase filter short.
        g = math.gcd(sample_rate, file_rate)
        up, down = sample_rate // g, file_rate // g
        mono = resample_poly(mono, up, down)
        full_length = -(-n_frames * up // down)  # ceil, as resample_poly
    if max_samples is not None:
        mono = mono[:max_samples]
    # channel="each": (n_samples, n_channels) -> one row per channel.
    return np.ascontiguousarray(mono.T, dtype=dtype), int(full_length)


def _header_rate(path: Path) -> int:
    """The sample rate a file's header declares (0 when it cannot be read:
    _read_float then reports the problem)."""
    try:
        return int(sf.info(_sf_path(path)).samplerate)
    except (sf.SoundFileError, RuntimeError, OSError):
        return 0


def _load_or_reason(
    path: PathLike,
    sample_rate: int,
    channel: Channel,
    dtype: np.dtype,
    max_samples: int | None = None,
) -> tuple[np.ndarray, int] | AudioLoadError:
    # Returning the error instead of raising lets skip_bad collect every bad
    # file in one pass rather than stopping at the first.
    try:
        return _load(Path(path), sample_rate, channel, dtype, max_samples)
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
    progress: Callable[[int, int], None] | None = None,
) -> AudioBatch:
    """Load many audio files with :func:`load_audio` and align their lengths.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Files to load, in the order the rows of the result should have.
    sample_rate : int, default=16000
        Sample rate of every returned waveform; see :func:`load_audio`.
    channel : "mean", "each" or int, default="mean"
        Multichannel rule; see :func:`load_audio`. With ``"each"`` every
        channel of a file becomes its own clip (row), and
        ``batch.channels`` and ``batch.indices`` say which channel of which
        input it is, e.g. to average the scores of a file's channels.
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
    progress : callable, optional
        Called as ``progress(done, total)`` after every file, in input order
        (skipped files count as done), e.g. to show a person how far loading
        has got.

    Returns
    -------
    batch : AudioBatch
        ``batch.waves`` is an ``(n_clips, n_samples)`` array (``"pad"``,
        ``"crop"``) or a list of 1-D arrays (``"list"``), with ``batch.paths``,
        ``batch.indices``, ``batch.lengths``, ``batch.sample_rate``,
        ``batch.skipped`` and ``batch.channels`` alongside.

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
    >>> c = write_audio(tmp / "c.wav", np.full((4, 2), 0.5))  # two channels
    >>> each = load_audios([a, c], channel="each")
    >>> each.waves.shape, each.indices.tolist(), each.channels.tolist()
    ((3, 4), [0, 1, 1], [0, 0, 1])
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

    if isinstance(paths, str | bytes | os.PathLike):
        # A str is iterable: without this, "a.wav" became five one-letter paths.
        raise TypeError(
            f"load_audios takes a sequence of paths, got the single path "
            f"{os.fsdecode(paths)!r}; use load_audio(path) or load_audios([path])."
        )
    path_list = [os.fspath(p) for p in paths]
    if not path_list:
        raise ValueError("load_audios needs at least one path; got none")
    # With a target length, nothing past it is decoded.
    max_samples = target_length if length == "pad" else None

    if n_jobs is None or n_jobs == 1:
        loaded: Iterable[Any] = (
            _load_or_reason(p, sample_rate, channel, dtype, max_samples)
            for p in path_list
        )
    else:
        from joblib import Parallel, delayed

        # A generator, so that progress is reported as files arrive.
        loaded = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
            delayed(_load_or_reason)(p, sample_rate, channel, dtype, max_samples)
            for p in path_list
        )
    results = []
    for result in loaded:
        results.append(result)
        if progress is not None:
            progress(len(results), len(path_list))

    waves: list[np.ndarray] = []
    full_lengths: list[int] = []
    kept: list[int] = []
    channels: list[int] = []
    skipped: list[SkippedFile] = []
    for i, result in enumerate(results):
        if isinstance(result, AudioLoadError):
            if not skip_bad:
                raise result
            skipped.append(SkippedFile(path_list[i], result.reason))
        elif channel == "each":
            # One row per channel, all mapped back to the same input.
            for c, wave in enumerate(result[0]):
                waves.append(wave)
                full_lengths.append(result[1])
                kept.append(i)
                channels.append(c)
        else:
            waves.append(result[0])
            full_lengths.append(result[1])
            kept.append(i)
    del results

    if not waves:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        raise ValueError(
            f"none of the {len(path_list)} audio files could be loaded: {shown}{more}"
        )

    # The length of the whole file, also where only its start was decoded.
    lengths = np.array(full_lengths, dtype=np.int64)
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
        channels=np.array(channels, dtype=np.int64) if channel == "each" else None,
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
