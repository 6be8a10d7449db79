"""TASTgram-MFN: stacked spectrogram images on a MobileFaceNet backbone.

Choi & Choi (ICASSP 2024) feed MobileFaceNet three images of the clip: the
log-mel spectrogram (Sgram), a learned Tgram of the raw waveform (Liu et al.,
ICASSP 2022) and the temporally attended log-mel (TAgram).  ``frontend``
selects the stack: ``"tastgram"`` (all three), ``"stgram"`` (Sgram + Tgram,
Liu et al.) or ``"sgram"`` (log-mel only), for ablations.

``channels_last`` and ``fast_prelu`` are passed to the backbone; they change
speed, not the function computed (see :mod:`sk_asd.nn.mobilefacenet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sk_asd.nn.frontend import LogMelSpectrogram, TemporalAttention, Tgram, n_frames
from sk_asd.nn.mobilefacenet import MobileFaceNet, downsampled_size

FRONTENDS = {"tastgram": 3, "stgram": 2, "sgram": 1}

#: STFT window of the log-mel in samples (METHOD.md section 1).
DEFAULT_N_FFT = 2048


class TASTgramMFN(nn.Module):
    """Waveforms in, embeddings out.

    Parameters
    ----------
    frontend : {"tastgram", "stgram", "sgram"}, default="tastgram"
        Which images are stacked as input channels.
    sample_rate : int, default=16000
        Sample rate of the waveforms.
    n_fft : int, default=2048
        STFT size and window length.  Clips shorter than this are zero-padded.
    hop_length : int, default=512
        STFT hop, also the Tgram stride.
    n_mels : int, default=128
        Mel bands (height of every image).
    embedding_dim : int, default=128
        Size of the output embedding.
    reference_seconds : float, default=10.0
        Clip length for which the global depthwise kernel has one time tap per
        frame of the final map (20 taps for 10 s at 16 kHz, the authors'
        kernel).  Other lengths work; the taps are resampled.
    channels_last : bool, default=False
        Run the backbone on channels-last (NHWC) tensors, faster with oneDNN
        on the CPU.
    fast_prelu : bool, default=False
        Use the PReLU with the vectorised backward pass
        (:class:`~sk_asd.nn.mobilefacenet.FastPReLU`); same gradients.
    stft_precision : {"adaptive", "float64"}, default="adaptive"
        Precision of the log-mel's STFT, see
        :class:`~sk_asd.nn.frontend.LogMelSpectrogram`.
    bias_free : bool, default=False
        No learnable additive term anywhere: the shift of every BatchNorm is
        frozen at zero and the Tgram's time normalisation has none (all
        convolutions are bias-free already).  Wilkinghoff & Kurth (TASLP
        2024), after Ruff et al. (Deep SVDD, ICML 2018), recommend this
        against the trivial solution in which every input maps to one point.

    Attributes
    ----------
    logmel : LogMelSpectrogram
        The log-mel front end (Sgram).
    tgram : Tgram or None
        The learned waveform front end; ``None`` for ``frontend="sgram"``.
    attention : TemporalAttention or None
        The temporal attention (TAgram); set only for
        ``frontend="tastgram"``.
    backbone : MobileFaceNet
        The backbone that maps the stacked images to the embedding.
    """

    def __init__(
        self,
        *,
        frontend: str = "tastgram",
        sample_rate: int = 16000,
        n_fft: int = DEFAULT_N_FFT,
        hop_length: int = 512,
        n_mels: int = 128,
        embedding_dim: int = 128,
        reference_seconds: float = 10.0,
        channels_last: bool = False,
        fast_prelu: bool = False,
        bias_free: bool = False,
        stft_precision: str = "adaptive",
    ) -> None:
        super().__init__()
        if frontend not in FRONTENDS:
            raise ValueError(
                f"frontend must be one of {sorted(FRONTENDS)}, got {frontend!r}."
            )
        self.frontend = frontend
        self.n_fft = n_fft
        self.logmel = LogMelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            stft_precision=stft_precision,
        )
        self.tgram = (
            Tgram(n_channels=n_mels, hop_length=hop_length, bias=not bias_free)
            if frontend != "sgram"
            else None
        )
        self.attention = TemporalAttention() if frontend == "tastgram" else None
        reference_frames = n_frames(
            int(round(reference_seconds * sample_rate)), hop_length
        )
        self.backbone = MobileFaceNet(
            FRONTENDS[frontend],
            n_mels=n_mels,
            time_taps=downsampled_size(reference_frames, 4),
            embedding_dim=embedding_dim,
            channels_last=channels_last,
            fast_prelu=fast_prelu,
        )
        if bias_free:
            for layer in self.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    # Zero-initialised; freezing keeps it zero (AdamW skips
                    # parameters without gradients, weight decay included).
                    layer.bias.requires_grad_(False)

    def padded_logmel(self, waves: torch.Tensor) -> torch.Tensor:
        """Log-mel of ``waves`` (n_clips, n_samples), as :meth:`images` computes it.

        Clips shorter than ``n_fft`` are zero-padded first.  A training loop
        can compute it once per clip and pass it to :meth:`forward` as
        ``logmel``.
        """
        if waves.shape[1] < self.n_fft:
            waves = F.pad(waves, (0, self.n_fft - waves.shape[1]))
        return self.logmel(waves)

    def images(
        self,
        waves: torch.Tensor,
        mixup: tuple[torch.Tensor, float] | None = None,
        logmel: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The (n_clips, n_channels, n_mels, n_frames) input stack.

        In the channels-last memory format when the backbone runs in it.

        With ``mixup=(permutation, lam)`` the waveforms and their log-mels are
        each mixed with the permuted batch, as Choi & Choi do: mixing the
        log-mels (rather than taking the log-mel of the mixed waveform) keeps
        the mix linear in the image the backbone sees.

        ``logmel``, when given, must be ``self.logmel`` of the (padded)
        ``waves``, computed earlier: the log-mel has no parameters, so a
        training loop may compute it once per clip rather than once per
        epoch.  It is used as is; nothing checks that it matches.
        """
        if waves.ndim != 2:
            raise ValueError(
                "expected waveforms of shape (n_clips, n_samples), got "
                f"{tuple(waves.shape)}"
            )
        if waves.shape[1] < self.n_fft:
            waves = F.pad(waves, (0, self.n_fft - waves.shape[1]))
        mel = self.logmel(waves) if logmel is None else logmel.to(torch.float32)
        if mixup is not None:
            perm, lam = mixup
            waves = lam * waves + (1.0 - lam) * waves[perm]
            mel = lam * mel + (1.0 - lam) * mel[perm]
        channels = [mel]
        if self.tgram is not None:
            channels.append(self.tgram(waves))
        if self.attention is not None:
            channels.append(self.attention(mel))
        if getattr(self.backbone, "channels_last", False):
            # Stacked along a new last axis and viewed as (B, C, H, W): the
            # channels-last layout the backbone wants, made in the stacking
            # pass.  Stacking along axis 1 and converting later took twice as
            # long (16 ten-second clips, 2 cores: 0.046 vs 0.097 ms per clip).
            return torch.stack(channels, dim=-1).permute(0, 3, 1, 2)
        return torch.stack(channels, dim=1)

    def forward(
        self,
        waves: torch.Tensor,
        mixup: tuple[torch.Tensor, float] | None = None,
        logmel: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings of shape (n_clips, embedding_dim).

        ``logmel`` is an optional precomputed log-mel of ``waves`` (see
        :meth:`images`).
        """
        return self.backbone(self.images(waves, mixup, logmel))
