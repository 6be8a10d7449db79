"""Front ends of TASTgram-MFN: log-mel spectrogram, Tgram and temporal attention.

The network of Choi & Choi (Noisy-ArcMix, ICASSP 2024) stacks three 2-D
"images" of shape ``(n_mels, n_frames)``:

* the **Sgram**, a log-mel spectrogram (:class:`LogMelSpectrogram`);
* the **Tgram**, a learned front end on the raw waveform introduced with
  STgram-MFN by Liu et al. (ICASSP 2022) (:class:`Tgram`);
* the **TAgram**, the Sgram re-weighted frame by frame by a parameter-free
  temporal attention (:class:`TemporalAttention`).

All three give ``1 + n_samples // hop_length`` frames (:func:`n_frames`), so
they can be stacked as channels for any clip length, not only the 10 s clips
the authors' code was tied to.

Only torch is needed at run time; the mel filter bank is built with numpy from
Slaney's definition (Auditory Toolbox, Interval Research Technical Report
1998-010) rather than taken from an audio library.

References
----------
.. [1] S. Choi and J.-W. Choi, "Noisy-ArcMix: Additive noisy angular margin
   loss combined with mixup for anomalous sound detection", ICASSP 2024,
   pp. 516-520.
.. [2] Y. Liu, J. Guan, Q. Zhu and W. Wang, "Anomalous sound detection using
   spectral-temporal information fusion", ICASSP 2022, pp. 816-820.
.. [3] M. Slaney, "Auditory Toolbox, version 2", Interval Research
   Corporation, Technical Report 1998-010, 1998.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LogMelSpectrogram",
    "TemporalAttention",
    "Tgram",
    "TimeLayerNorm",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "n_frames",
]

# Slaney's mel scale [3]: linear (200/3 Hz per mel) up to 1 kHz, logarithmic
# above with 27 mels per factor of 6.4 in frequency, which makes the two parts
# meet continuously at 1 kHz = 15 mel.
_F_SP = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def n_frames(n_samples: int, hop_length: int = 512) -> int:
    """Number of frames the front ends give for a clip.

    Both the centred STFT (``n_fft // 2`` zeros on each side, even ``n_fft``)
    and the Tgram's strided convolution (padding ``win_length // 2``) give
    ``1 + n_samples // hop_length`` frames, e.g. 313 for 160 000 samples.

    Parameters
    ----------
    n_samples : int
        Length of the waveform in samples (at least 1).
    hop_length : int, default=512
        Hop between frames in samples.

    Returns
    -------
    int
        The number of frames.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    if hop_length < 1:
        raise ValueError(f"hop_length must be >= 1, got {hop_length}.")
    return 1 + int(n_samples) // int(hop_length)


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Convert frequencies in Hz to Slaney mels (Slaney, 1998).

    Parameters
    ----------
    freq : array-like of float
        Frequencies in Hz (non-negative).

    Returns
    -------
    ndarray of float64
        The same frequencies in mels.
    """
    f = np.asarray(freq, dtype=np.float64)
    # np.maximum keeps log() away from 0 in the branch np.where discards.
    log_part = _BREAK_MEL + np.log(np.maximum(f, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(f >= _BREAK_HZ, log_part, f / _F_SP)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Convert Slaney mels to frequencies in Hz (inverse of :func:`hz_to_mel`).

    Parameters
    ----------
    mel : array-like of float
        Mel values (non-negative).

    Returns
    -------
    ndarray of float64
        The same points in Hz.
    """
    m = np.asarray(mel, dtype=np.float64)
    log_part = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(m, _BREAK_MEL) - _BREAK_MEL))
    return np.where(m >= _BREAK_MEL, log_part, m * _F_SP)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Triangular mel filter bank on the Slaney scale with area normalisation.

    ``n_mels + 2`` points equally spaced in Slaney mels (Slaney, 1998) between ``fmin``
    and ``fmax`` define the feet and peaks of ``n_mels`` overlapping
    triangles. Triangle ``i`` rises from 0 at point ``i`` to 1 at point
    ``i + 1`` and falls back to 0 at point ``i + 2``, and is then scaled by
    ``2 / (f[i + 2] - f[i])`` (Hz) so that every filter has the same area
    (Slaney normalisation). The triangles are sampled at the FFT bin
    frequencies ``k * sample_rate / n_fft``, ``k = 0 .. n_fft // 2``, i.e.
    ``linspace(0, sample_rate / 2, n_fft // 2 + 1)`` for even ``n_fft``.

    This is the filter bank of Choi & Choi (2024) and Liu et al. (2022) (the one
    ``librosa.filters.mel(htk=False, norm="slaney")`` computes), written
    from Slaney's definition.

    Parameters
    ----------
    sample_rate : int
        Sampling rate in Hz.
    n_fft : int
        FFT length; the bank has ``n_fft // 2 + 1`` columns.
    n_mels : int
        Number of mel bands (rows).
    fmin : float, default=0.0
        Lowest edge of the first triangle in Hz.
    fmax : float or None, default=None
        Highest edge of the last triangle in Hz; ``None`` means
        ``sample_rate / 2``.

    Returns
    -------
    ndarray of float64, shape (n_mels, n_fft // 2 + 1)
        Non-negative filter weights. A band narrower than the bin spacing can
        be all zero (too many bands for ``n_fft``); this is not an error.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}.")
    if n_fft < 1 or n_mels < 1:
        raise ValueError(f"n_fft and n_mels must be >= 1, got {n_fft}, {n_mels}.")
    if fmax is None:
        fmax = sample_rate / 2.0
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"Need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}.")

    # Corner frequencies in Hz: equally spaced in mels, shape (n_mels + 2,).
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    corners = mel_to_hz(mels)
    lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]

    bins = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    # Rising and falling edges of every triangle, evaluated at every bin; the
    # triangle is the smaller of the two, clipped at zero outside its support.
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling))

    # Slaney normalisation: scale each triangle to the same area.
    weights *= 2.0 / (hi - lo)
    return weights


# "adaptive" log-mel: frames whose weakest mel band is below this fraction of
# the frame's summed mel power (70 dB) are recomputed in float64. Measured on
# real DCASE clips, frames above it keep float32 errors under 1.9e-4 dB, five
# times below the 1e-3 dB the front end promises.
_FLOAT32_SAFE_RANGE = 1e-7

# The float32 STFT runs on a few clips at a time: frames, spectrum and power
# of about this many samples (4 MiB of float32) stay in the CPU's cache
# between the steps, which measured 30 % faster than one pass over a batch
# of 16 ten-second clips.
_CHUNK_SAMPLES = 1 << 20

# Mel bands are projected in groups of this many: each group only multiplies
# the FFT bins under its filters (the Slaney bank is ~98 % zeros).
_BAND_GROUP = 16


def _centred_frames(wave: Tensor, length: int, hop: int) -> Tensor:
    """Frames of ``length`` samples every ``hop``, centred on the hops.

    ``length // 2`` zeros pad each side, so frame ``t`` is centred on sample
    ``t * hop`` and there are ``1 + T // hop`` frames (even ``length``).  A
    strided view of shape ``(B, n_frames, length)``: no copy of the frames.
    """
    half = length // 2
    return F.pad(wave, (half, half)).unfold(-1, length, hop)


@functools.lru_cache(maxsize=16)
def _hann_window(n_fft: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Periodic Hann window of ``n_fft`` samples, built once per dtype and device.

    Shared and cached: callers must not modify it in place.
    """
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device)


def _band_blocks(fb: np.ndarray, group: int = _BAND_GROUP) -> list[tuple[int, ...]]:
    """``(first_band, end_band, first_bin, end_bin)`` covering every nonzero.

    Consecutive mel bands are grouped; a group's bins are the union of its
    filters' supports, so multiplying only those bins gives the same sums as
    the dense product (the skipped terms are exact zeros).
    """
    blocks = []
    for start in range(0, fb.shape[0], group):
        end = min(start + group, fb.shape[0])
        bins = np.flatnonzero(np.any(fb[start:end] != 0, axis=0))
        if bins.size:
            blocks.append((start, end, int(bins[0]), int(bins[-1]) + 1))
    return blocks


class LogMelSpectrogram(nn.Module):
    """Log-mel spectrogram (the "Sgram" of STgram-MFN and TASTgram-MFN).

    STFT with a periodic Hann window of length ``n_fft``, centred frames
    (``n_fft // 2`` *zeros* on each side), power spectrum, projection on the
    Slaney mel filter bank (:func:`mel_filterbank`) and
    ``10 * log10(mel + eps)``.

    Precision (``stft_precision``). Measured on a 2 s log sine sweep (50 Hz
    to 7.9 kHz at 16 kHz), a float32 STFT is off by up to 27 dB in the bands
    far from the sweep, where the Hann side-lobe leakage lies 150 dB and more
    below the frame's power, under float32's rounding noise; float64 keeps
    the result within 1e-5 dB of a float64 numpy reference. Real recordings
    almost never have such a range. Over 54,149 frames (the 93 DCASE 2020
    clips in ``shared/data/dcase2020-mini`` and 10 s synthetic clips) the
    float32 error was below 1.9e-4 dB in every frame whose weakest mel band
    is within 70 dB of the frame's summed mel power (ratio >= 1e-7), and
    below 5.7e-4 dB in all frames. ``"adaptive"`` (default) therefore
    computes the STFT in float32 and recomputes in float64 only the frames
    whose weakest band lies more than 70 dB below (7 % of those frames);
    ``"float64"`` computes everything in
    float64 (about 2.5x the time of the adaptive front end). Autocast is disabled in
    both, so no op here is ever routed to bf16/fp16.

    Parameters
    ----------
    sample_rate : int, default=16000
        Sampling rate in Hz.
    n_fft : int, default=2048
        FFT and window length in samples; must be even so that the number of
        frames is ``1 + n_samples // hop_length``.
    hop_length : int, default=512
        Hop between frames in samples.
    n_mels : int, default=128
        Number of mel bands.
    fmin : float, default=0.0
        Lowest frequency of the filter bank in Hz.
    fmax : float or None, default=None
        Highest frequency of the filter bank in Hz (``None``: Nyquist).
    eps : float, default=2.2e-16
        Added to the mel power before the logarithm, so that digital silence
        maps to ``10 * log10(eps)`` (about -156.6 dB) instead of ``-inf``.
    stft_precision : {"adaptive", "float64"}, default="adaptive"
        ``"adaptive"``: float32 STFT, with float64 for the frames where
        float32 rounding could show (see above); ``"float64"``: float64
        throughout.

    Attributes
    ----------
    mel_fb : Tensor of shape (n_mels, n_fft // 2 + 1)
        The filter bank, built in float64 and stored in float32 as a
        non-persistent buffer: it is rebuilt from the constructor arguments,
        so it stays out of ``state_dict`` yet moves with ``.to(device)`` and
        survives pickling.

    Notes
    -----
    Any clip with ``T >= 1`` samples works: with zero padding a clip shorter
    than ``n_fft`` simply gives ``1 + T // hop_length`` frames whose windows
    are mostly zeros. Callers that want every frame to see ``n_fft`` real
    samples should pad the clip to at least ``n_fft`` themselves.

    Casting the module (``.half()``, ``.to(torch.bfloat16)``) also casts the
    filter bank buffer and costs accuracy; keep this module in float32.
    """

    mel_fb: Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        eps: float = 2.2e-16,
        stft_precision: str = "adaptive",
    ) -> None:
        super().__init__()
        if stft_precision not in ("adaptive", "float64"):
            raise ValueError(
                "stft_precision must be 'adaptive' or 'float64', got "
                f"{stft_precision!r}."
            )
        self.stft_precision = stft_precision
        if n_fft < 2 or n_fft % 2:
            raise ValueError(f"n_fft must be even and >= 2, got {n_fft}.")
        if hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {hop_length}.")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}.")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.eps = eps
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
        # float32 storage as in the reference recipe; it is promoted to
        # float64 in forward. Non-persistent: it is a pure function of the
        # constructor arguments, so checkpoints need not carry it.
        self.register_buffer(
            "mel_fb", torch.from_numpy(fb).to(torch.float32), persistent=False
        )
        self._blocks = _band_blocks(fb)

    def forward(self, wave: Tensor) -> Tensor:
        """Compute the log-mel spectrogram.

        Parameters
        ----------
        wave : Tensor of shape (B, T) or (T,)
            Waveforms, any real floating dtype, ``T >= 1``.

        Returns
        -------
        Tensor of float32, shape (B, n_mels, 1 + T // hop_length)
            Log-mel power in dB (a 1-D input gives ``(n_mels, n_frames)``).
        """
        if wave.shape[-1] < 1:
            raise ValueError("wave must hold at least one sample.")
        # Autocast is switched off so that no op here (float32 STFT and
        # logarithm included) is ever routed to bf16/fp16 (3 significant
        # digits), whatever the autocast policy of the device.
        with torch.autocast(device_type=wave.device.type, enabled=False):
            # getattr: modules pickled before the option existed lack it.
            if getattr(self, "stft_precision", "float64") == "float64":
                mel = self._mel_power(wave.to(torch.float64))
            else:
                mel = self._mel_power_adaptive(wave)
            logmel = 10.0 * torch.log10(mel + self.eps)
        return logmel.to(torch.float32)

    def _frames(self, wave: Tensor) -> Tensor:
        """Zero-padded centred frames, a view of shape (B, n_frames, n_fft)."""
        return _centred_frames(wave, self.n_fft, self.hop_length)

    def _power_spectrum(self, frames: Tensor) -> Tensor:
        """One-sided power spectrum of Hann-windowed frames, in their dtype."""
        window = _hann_window(self.n_fft, frames.dtype, frames.device)
        spec = torch.fft.rfft(frames * window, dim=-1)
        # |X|^2 as re^2 + im^2 (abs() would take a square root only to square
        # it again), squared in place on the interleaved (re, im) pairs: two
        # passes over the spectrum instead of three.
        squares = torch.view_as_real(spec).square_()
        return squares[..., 0] + squares[..., 1]

    def _mel_power(self, wave: Tensor) -> Tensor:
        """Mel power spectrogram (B, n_mels, n_frames) in the dtype of ``wave``.

        On the CPU it runs a few clips at a time, so that frames, spectrum and
        power stay in cache, and projects on the filter bank band group by
        band group (the same sums as the dense product, without its zeros).
        Each group is written straight into its rows of the output, which is
        already in the (bands, frames) layout the network takes.
        """
        if wave.ndim == 1:
            return self._mel_power(wave[None])[0]
        frames = self._frames(wave)
        n_clips, n_frames = frames.shape[:2]
        fb = self.mel_fb.to(wave.dtype)
        # getattr: modules pickled before the band blocks existed lack them.
        blocks = getattr(self, "_blocks", None) or _band_blocks(
            self.mel_fb.cpu().double().numpy()
        )
        # On a GPU one pass over the batch is faster than a loop.
        chunk = (
            n_clips
            if wave.device.type != "cpu"
            else max(1, _CHUNK_SAMPLES // (n_frames * self.n_fft))
        )
        mel = wave.new_empty(n_clips, self.n_mels, n_frames)
        for start in range(0, n_clips, chunk):
            power = self._power_spectrum(frames[start : start + chunk])
            out = mel[start : start + chunk]
            for band0, band1, bin0, bin1 in blocks:
                weights = fb[band0:band1, bin0:bin1]
                if len(power) == 1:
                    # One clip (10 s clips on a CPU): a plain product written
                    # in place, without a temporary and a copy.
                    torch.mm(weights, power[0, :, bin0:bin1].T, out=out[0, band0:band1])
                else:
                    out[:, band0:band1] = weights @ power[..., bin0:bin1].mT
        return mel

    def _mel_power_adaptive(self, wave: Tensor) -> Tensor:
        """float32 mel power, with float64 frames where float32 could show.

        The logarithm is then taken in float32 too: its rounding (about 1e-5
        dB) is far inside the 1e-3 dB the front end promises.
        """
        if wave.ndim == 1:
            return self._mel_power_adaptive(wave[None])[0]
        mel = self._mel_power(wave.to(torch.float32))
        # The mel bands sum to the frame's power (up to the filter weights),
        # so the weakest band over the frame's total measures how far below
        # the frame's rounding noise a band may lie.
        total = mel.sum(dim=-2)
        weak = mel.amin(dim=-2) < _FLOAT32_SAFE_RANGE * total
        if not bool(weak.any()):
            return mel
        clip, frame = weak.nonzero(as_tuple=True)
        frames = self._frames(wave.to(torch.float64))[clip, frame]
        power = self._power_spectrum(frames)
        # Exact now, the mel power of these frames is only rounded to float32
        # (relative 6e-8, i.e. 3e-7 dB) when stored.
        mel[clip, :, frame] = (power @ self.mel_fb.to(torch.float64).T).float()
        return mel

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}, "
            f"fmin={self.fmin}, fmax={self.fmax}, eps={self.eps}"
        )


class TimeLayerNorm(nn.Module):
    """Normalise every channel over its time axis, then a per-channel affine.

    For an input ``x`` of shape ``(B, C, T)`` each ``x[b, c, :]`` is shifted
    to zero mean and scaled to unit (biased) variance, then multiplied by
    ``weight[c]`` and shifted by ``bias[c]``.

    Liu et al. (2022) and Choi & Choi (2024) use ``nn.LayerNorm(313)`` here,
    whose affine has one weight per *time step* and so only accepts 10 s
    clips at 16 kHz. The statistics are the same; putting the affine on the
    channels instead makes the layer independent of the clip length.

    Parameters
    ----------
    n_channels : int
        Number of channels ``C``.
    eps : float, default=1e-5
        Added to the variance for numerical stability.
    affine : bool, default=True
        Learn the per-channel scale ``weight`` (initialised to 1).
    bias : bool, default=True
        Learn the per-channel shift ``bias`` (initialised to 0). Only used
        when ``affine`` is true; ``bias=False`` gives a bias-free layer, for
        networks that must not be able to learn a constant output.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_channels,) or None
        Per-channel scale; ``None`` when ``affine=False``.
    bias : torch.nn.Parameter of shape (n_channels,) or None
        Per-channel shift; ``None`` when ``affine=False`` or ``bias=False``.

    Notes
    -----
    A single frame has zero variance and is normalised to 0 (then to
    ``bias``); this is what happens for clips shorter than one hop.
    """

    def __init__(
        self,
        n_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(n_channels))
            self.bias = nn.Parameter(torch.zeros(n_channels)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(B, C, T)`` over ``T``; same shape out."""
        # F.layer_norm over the last dimension takes whatever T the input
        # has, and autocast runs it in float32, which keeps the statistics
        # accurate under bf16/fp16 training.
        y = F.layer_norm(x, (x.shape[-1],), eps=self.eps)
        if self.weight is not None:
            y = y * self.weight[:, None]
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.n_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class Tgram(nn.Module):
    """Learned waveform front end (the "Tgram" of Liu et al., ICASSP 2022).

    A strided Conv1d turns the waveform into ``n_channels`` feature
    sequences with one frame per hop, aligned with the log-mel frames; then
    ``n_blocks`` blocks of [:class:`TimeLayerNorm`, LeakyReLU(0.2),
    Conv1d(kernel 3, padding 1)] refine them. All convolutions are bias-free,
    as in Liu et al. (2022) and Choi & Choi (2024).

    Parameters
    ----------
    n_channels : int, default=128
        Output channels; equals ``n_mels`` when stacked with the log-mel.
    win_length : int, default=1024
        Kernel size of the first convolution; its padding is
        ``win_length // 2``.
    hop_length : int, default=512
        Stride of the first convolution. With even ``win_length`` the output
        has ``1 + T // hop_length`` frames.
    n_blocks : int, default=3
        Number of [norm, activation, conv] blocks.
    affine : bool, default=True
        Passed to :class:`TimeLayerNorm`.
    bias : bool, default=True
        Passed to :class:`TimeLayerNorm`; ``False`` gives a Tgram without any
        additive parameter.

    Attributes
    ----------
    conv_extractor : torch.nn.Conv1d
        The strided, bias-free first convolution on the waveform.
    blocks : torch.nn.Sequential
        The ``n_blocks`` [norm, LeakyReLU, conv] blocks.

    Notes
    -----
    The input is cast to the dtype of the convolution weights (float32
    unless the module was cast); under autocast the convolutions then run in
    the autocast dtype as usual.
    """

    def __init__(
        self,
        n_channels: int = 128,
        win_length: int = 1024,
        hop_length: int = 512,
        n_blocks: int = 3,
        *,
        affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if win_length < 2 or win_length % 2:
            raise ValueError(f"win_length must be even and >= 2, got {win_length}.")
        if hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {hop_length}.")
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}.")
        self.n_channels = n_channels
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_blocks = n_blocks
        self.conv_extractor = nn.Conv1d(
            1,
            n_channels,
            kernel_size=win_length,
            stride=hop_length,
            padding=win_length // 2,
            bias=False,
        )
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    TimeLayerNorm(n_channels, affine=affine, bias=bias),
                    nn.LeakyReLU(0.2),
                    nn.Conv1d(n_channels, n_channels, 3, padding=1, bias=False),
                )
                for _ in range(n_blocks)
            )
        )

    def forward(self, wave: Tensor) -> Tensor:
        """Compute the Tgram.

        Parameters
        ----------
        wave : Tensor of shape (B, T)
            Waveforms, ``T >= 1``.

        Returns
        -------
        Tensor of shape (B, n_channels, 1 + T // hop_length)
            Learned features, one frame per hop.
        """
        x = wave.to(self.conv_extractor.weight.dtype)
        if torch.is_grad_enabled():
            # Training: the convolution's backward beats the GEMM's, which
            # has to materialise the overlapping frames for the weight grad.
            return self.blocks(self.conv_extractor(x.unsqueeze(1)))
        return self.blocks(self._extract(x))

    def _extract(self, wave: Tensor) -> Tensor:
        """The strided first convolution, as one matrix product over frames.

        Used for inference (no autograd); training calls the convolution.

        Each output frame is the product of the kernel with one window of
        the zero-padded waveform, so the windows (a strided view) times the
        kernel matrix give the convolution exactly (up to float rounding).
        On 2 CPU cores one GEMM of (frames, window) x (window, channels) took
        4.3-4.6 ms against 6.3-6.9 ms for the 1-channel strided convolution
        (bf16, 16 ten-second clips).  Its (frames, channels) result is
        returned as a (channels, frames) view: the time normalisation that
        follows reads it once anyway (converting it to float32 under
        autocast), so a copy here would be a pass for nothing.
        """
        frames = _centred_frames(wave, self.win_length, self.hop_length)
        kernel = self.conv_extractor.weight.squeeze(1)  # (channels, window)
        return F.linear(frames, kernel).transpose(1, 2)


class TemporalAttention(nn.Module):
    """Parameter-free temporal attention (the "TAgram" of Choi & Choi, 2024).

    For every frame ``t`` of a log-mel ``x`` of shape ``(B, F, T)`` the
    weight ``sigmoid(max_f x[:, f, t] + mean_f x[:, f, t])`` is computed and
    every band of that frame is multiplied by it, emphasising loud frames.
    The output has the input's shape and dtype.

    The constructor takes no arguments.

    Attributes
    ----------
    training : bool
        Inherited from :class:`torch.nn.Module`; the attention computes the
        same in training and in evaluation mode, and it has no parameters
        or buffers.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Re-weight the frames of ``x`` (shape ``(B, F, T)``)."""
        weight = torch.sigmoid(
            x.amax(dim=1, keepdim=True) + x.mean(dim=1, keepdim=True)
        )
        return x * weight
