"""Tests of the front ends (log-mel, Tgram, temporal attention)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from sk_asd.nn.frontend import (
    LogMelSpectrogram,
    TemporalAttention,
    Tgram,
    TimeLayerNorm,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    n_frames,
)

SR = 16000
N_FFT = 2048
HOP = 512
N_MELS = 128
TOL_DB = 1e-3


# --------------------------------------------------------------------------
# Independent float64 references, written differently from the package code.
# --------------------------------------------------------------------------
def _ref_hz_to_mel(f: float) -> float:
    # Slaney: 3 mels per 200 Hz below 1 kHz, 27 mels per factor 6.4 above.
    if f < 1000.0:
        return 3.0 * f / 200.0
    return 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def _ref_mel_to_hz(m: float) -> float:
    if m < 15.0:
        return 200.0 * m / 3.0
    return 1000.0 * 6.4 ** ((m - 15.0) / 27.0)


def _ref_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """One band at a time, triangles by linear interpolation."""
    fmax = sr / 2.0 if fmax is None else fmax
    m_lo, m_hi = _ref_hz_to_mel(fmin), _ref_hz_to_mel(fmax)
    step = (m_hi - m_lo) / (n_mels + 1)
    edges = [_ref_mel_to_hz(m_lo + k * step) for k in range(n_mels + 2)]
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    out = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        tri = np.interp(freqs, [lo, mid, hi], [0.0, 1.0, 0.0], left=0.0, right=0.0)
        out[i] = tri * 2.0 / (hi - lo)
    return out


def _ref_logmel(x, fb, n_fft=N_FFT, hop=HOP, eps=2.2e-16):
    """float64 log-mel with explicit framing and numpy.fft.rfft."""
    x = np.asarray(x, dtype=np.float64)
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    count = 1 + (padded.size - n_fft) // hop
    frames = np.stack([padded[k * hop : k * hop + n_fft] for k in range(count)])
    window = np.sin(np.pi * np.arange(n_fft) / n_fft) ** 2  # periodic Hann
    spec = np.fft.rfft(frames * window, axis=1)
    power = spec.real**2 + spec.imag**2
    return 10.0 * np.log10(fb @ power.T + eps)


def _sweep(seconds=2.0, f0=50.0, f1=7900.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    k = math.log(f1 / f0) / seconds
    return np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1.0) / k)


@pytest.fixture(scope="module")
def logmel():
    return LogMelSpectrogram()


@pytest.fixture(scope="module")
def fb_used(logmel):
    # The module stores the bank in float32; the reference uses those same
    # weights so that only the STFT/mel/log arithmetic is compared.
    return logmel.mel_fb.numpy().astype(np.float64)


# --------------------------------------------------------------------------
# Mel scale and filter bank
# --------------------------------------------------------------------------
def test_mel_scale_anchor_points_and_roundtrip():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)  # 27 mels per factor 6.4
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    f = np.array([0.0, 10.0, 999.0, 1000.0, 1001.0, 4321.0, 8000.0, 22050.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)
    expected = [_ref_hz_to_mel(v) for v in f]
    np.testing.assert_allclose(hz_to_mel(f), expected, rtol=1e-12)


def test_filterbank_shape_dtype_nonnegative():
    fb = mel_filterbank(SR, N_FFT, N_MELS)
    assert fb.shape == (N_MELS, N_FFT // 2 + 1)
    assert fb.dtype == np.float64
    assert (fb >= 0).all()
    # With 1025 bins every one of the 128 bands catches at least one bin.
    assert (fb.max(axis=1) > 0).all()
    # Bands are ordered: the peak bin never moves down.
    assert (np.diff(fb.argmax(axis=1)) >= 0).all()


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [
        (16000, 2048, 128, 0.0, None),
        (16000, 1024, 64, 20.0, 7000.0),
        (22050, 2048, 128, 0.0, None),
        (44100, 4096, 96, 50.0, 16000.0),
        (8000, 512, 40, 0.0, None),
    ],
)
def test_filterbank_matches_independent_reference(sr, n_fft, n_mels, fmin, fmax):
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = _ref_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert fb.shape == ref.shape
    np.testing.assert_allclose(fb, ref, rtol=1e-10, atol=1e-14)


def test_filterbank_slaney_area_normalisation():
    # On a very fine frequency grid every triangle's area (in Hz) is 1 and its
    # peak height is 2 / (width in Hz).
    sr, n_fft, n_mels = 16000, 2**16, 40
    fb = mel_filterbank(sr, n_fft, n_mels)
    df = sr / n_fft
    np.testing.assert_allclose(fb.sum(axis=1) * df, 1.0, rtol=2e-3)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    peak = 2.0 / (edges[2:] - edges[:-2])
    assert (fb.max(axis=1) <= peak * (1 + 1e-12)).all()
    np.testing.assert_allclose(fb.max(axis=1), peak, rtol=2e-2)


def test_filterbank_rejects_bad_range():
    with pytest.raises(ValueError):
        mel_filterbank(SR, N_FFT, N_MELS, fmin=9000.0)
    with pytest.raises(ValueError):
        mel_filterbank(SR, N_FFT, N_MELS, fmin=-1.0)


# --------------------------------------------------------------------------
# Log-mel spectrogram
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_samples", [16000, 36800])
def test_logmel_matches_float64_reference_noise(logmel, fb_used, seed, n_samples):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n_samples) * 10.0 ** rng.uniform(-3, 0)).astype(np.float32)
    out = logmel(torch.from_numpy(x)[None])
    assert out.dtype == torch.float32
    assert out.shape == (1, N_MELS, n_frames(n_samples, HOP))
    ref = _ref_logmel(x, fb_used)
    assert np.abs(out[0].numpy() - ref).max() < TOL_DB


def test_logmel_matches_float64_reference_sweep(logmel, fb_used):
    # Bands far from the sweep hold only window side-lobe leakage, 150+ dB
    # down: a float32 STFT gets them wrong by many dB.
    x32 = _sweep().astype(np.float32)
    ref = _ref_logmel(x32, fb_used)
    assert ref.min() < -120.0  # the hard, low-energy bands are really there
    out = logmel(torch.from_numpy(x32)[None])[0].numpy()
    assert np.abs(out - ref).max() < TOL_DB
    # A float64 input is used as is, not rounded to float32 first.
    x64 = _sweep()
    out64 = logmel(torch.from_numpy(x64)[None])[0].numpy()
    assert np.abs(out64 - _ref_logmel(x64, fb_used)).max() < TOL_DB


def test_logmel_batch_and_1d_input(logmel):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((3, 5000)).astype(np.float32))
    batch = logmel(x)
    assert batch.shape == (3, N_MELS, n_frames(5000))
    single = logmel(x[1])
    assert single.shape == (N_MELS, n_frames(5000))
    torch.testing.assert_close(single, batch[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("n_samples", [1, 100, 511, 512, 1000, 2047, 2048, 160000])
def test_logmel_frame_count_any_length(logmel, n_samples):
    x = torch.ones(2, n_samples)
    out = logmel(x)
    assert out.shape == (2, N_MELS, 1 + n_samples // HOP)
    assert torch.isfinite(out).all()


def test_logmel_silence_is_log_eps(logmel):
    out = logmel(torch.zeros(1, 4096))
    torch.testing.assert_close(
        out, torch.full_like(out, 10 * math.log10(2.2e-16)), rtol=0, atol=1e-4
    )


def test_logmel_under_cpu_bf16_autocast(logmel, fb_used):
    x = _sweep(seconds=1.0).astype(np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logmel(torch.from_numpy(x)[None])
    assert out.dtype == torch.float32
    assert np.abs(out[0].numpy() - _ref_logmel(x, fb_used)).max() < TOL_DB


def test_logmel_buffer_pickle_and_state_dict(logmel):
    assert "mel_fb" in dict(logmel.named_buffers())  # moves with .to(device)
    assert logmel.mel_fb.dtype == torch.float32
    assert logmel.mel_fb.shape == (N_MELS, N_FFT // 2 + 1)
    assert "mel_fb" not in logmel.state_dict()  # rebuilt from the arguments
    clone = pickle.loads(pickle.dumps(logmel))
    x = torch.randn(1, 3000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clone(x), logmel(x), rtol=0, atol=0)


def test_logmel_rejects_odd_n_fft():
    with pytest.raises(ValueError):
        LogMelSpectrogram(n_fft=2047)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_logmel_on_cuda(fb_used):
    module = LogMelSpectrogram().to("cuda")
    x = _sweep(seconds=1.0).astype(np.float32)
    with torch.autocast("cuda", dtype=torch.float16):
        out = module(torch.from_numpy(x)[None].to("cuda"))
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert np.abs(out[0].cpu().numpy() - _ref_logmel(x, fb_used)).max() < TOL_DB


# --------------------------------------------------------------------------
# Frame count helper
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n_samples, expected", [(160000, 313), (32000, 63), (2048, 5), (511, 1), (1, 1)]
)
def test_n_frames(n_samples, expected):
    assert n_frames(n_samples) == expected
    assert n_frames(n_samples, hop_length=256) == 1 + n_samples // 256


def test_n_frames_rejects_empty():
    with pytest.raises(ValueError):
        n_frames(0)


# --------------------------------------------------------------------------
# Tgram
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_samples", [1000, 2048, 16000, 36800, 160000])
def test_tgram_shape_matches_logmel(n_samples):
    torch.manual_seed(0)
    tgram = Tgram()
    x = torch.randn(2, n_samples)
    out = tgram(x)
    assert out.shape == (2, 128, n_frames(n_samples))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_tgram_structure_and_bias_free_variant():
    tgram = Tgram()
    n_params = sum(p.numel() for p in tgram.parameters())
    # conv 1x1024x128, 3 convs 128x128x3, 3 norms with 128 weights + 128 biases
    assert n_params == 1024 * 128 + 3 * 128 * 128 * 3 + 3 * 2 * 128
    assert tgram.conv_extractor.bias is None
    free = Tgram(bias=False)
    names = [name for name, _ in free.named_parameters()]
    assert not any(name.endswith("bias") for name in names)
    assert sum(p.numel() for p in free.parameters()) == n_params - 3 * 128
    bare = Tgram(affine=False)
    assert sum(p.numel() for p in bare.parameters()) == n_params - 3 * 2 * 128


@pytest.mark.parametrize("n_frames_", [2, 5, 313, 1000])
def test_time_layer_norm_is_length_agnostic(n_frames_):
    torch.manual_seed(1)
    norm = TimeLayerNorm(4)
    # parameters are per channel, whatever the number of frames
    assert norm.weight.shape == (4,) and norm.bias.shape == (4,)
    x = torch.randn(3, 4, n_frames_) * 5 + 2
    y = norm(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 4), rtol=0, atol=1e-5)
    # unit variance up to the eps added to the variance
    v = x.var(-1, unbiased=False)
    torch.testing.assert_close(
        y.var(-1, unbiased=False), v / (v + norm.eps), rtol=1e-4, atol=1e-5
    )
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        norm.bias.copy_(torch.tensor([0.0, -1.0, 1.0, 0.5]))
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    hand = (x - mean) / torch.sqrt(var + norm.eps)
    hand = hand * norm.weight[:, None] + norm.bias[:, None]
    torch.testing.assert_close(norm(x), hand, rtol=1e-5, atol=1e-5)


def test_tgram_same_model_accepts_different_lengths():
    torch.manual_seed(2)
    tgram = Tgram().eval()
    x = torch.randn(1, 48000)
    with torch.no_grad():
        long = tgram(x)
        short = tgram(x[:, :16000])
        # The conv front end is linear and bias-free and every block
        # normalises over time, so the Tgram ignores the input's scale.
        scaled = tgram(7.0 * x)
    assert long.shape[-1] == 94 and short.shape[-1] == 32
    torch.testing.assert_close(scaled, long, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_samples", [1, 700, 1024, 16001, 160000])
def test_tgram_inference_gemm_equals_the_convolution(n_samples):
    # Without autograd the strided convolution runs as one GEMM over the
    # frames; it must give the convolution's output on any length.
    torch.manual_seed(3)
    tgram = Tgram().eval()
    x = torch.randn(3, n_samples)
    conv = tgram.conv_extractor(x.unsqueeze(1))
    with torch.no_grad():
        gemm = tgram._extract(x)
        inference = tgram(x)
    torch.testing.assert_close(gemm, conv.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inference, tgram(x).detach(), rtol=1e-4, atol=1e-4)
    assert inference.shape == (3, 128, n_frames(n_samples))


def test_tgram_under_cpu_bf16_autocast():
    tgram = Tgram()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tgram(torch.randn(2, 8000))
    assert out.shape == (2, 128, n_frames(8000))
    assert torch.isfinite(out.float()).all()


# --------------------------------------------------------------------------
# Temporal attention
# --------------------------------------------------------------------------
def test_temporal_attention_hand_computation():
    x = torch.tensor([[[1.0, -2.0, 0.5], [3.0, 0.0, 0.5]]])  # (B=1, F=2, T=3)

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    # frame 0: max 3, mean 2; frame 1: max 0, mean -1; frame 2: max .5, mean .5
    w = [sig(3.0 + 2.0), sig(0.0 - 1.0), sig(0.5 + 0.5)]
    expected = torch.tensor([[[1.0 * w[0], -2.0 * w[1], 0.5 * w[2]],
                              [3.0 * w[0], 0.0 * w[1], 0.5 * w[2]]]])  # fmt: skip
    out = TemporalAttention()(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert len(list(TemporalAttention().parameters())) == 0


def test_adaptive_precision_recomputes_only_frames_that_need_float64(monkeypatch):
    from sk_asd.datasets import make_machine_sounds

    exact = LogMelSpectrogram(stft_precision="float64")
    fast = LogMelSpectrogram()  # "adaptive"
    assert fast.stft_precision == "adaptive"
    calls = []
    original = torch.fft.rfft

    def counting_rfft(x, *args, **kwargs):
        # Only the adaptive module's float64 recomputation: a stack of
        # single frames, shape (n_frames, n_fft).
        if x.dtype == torch.float64 and x.ndim == 2:
            calls.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(torch.fft, "rfft", counting_rfft)
    # A pure sweep has bands 150 dB below the frame: those frames go to float64.
    sweep = torch.from_numpy(_sweep(seconds=1.0).astype(np.float32))
    want = exact(sweep[None])
    calls.clear()
    got = fast(sweep[None])
    assert len(calls) == 1 and 0 < calls[0] <= got.shape[-1]
    assert (got - want).abs().max().item() < TOL_DB
    # Realistic machine sounds stay within the tolerance, mostly in float32.
    calls.clear()
    clips = make_machine_sounds(
        2,
        n_normal_train=2,
        n_normal_test=1,
        n_anomalous_test=1,
        duration=1.0,
        random_state=0,
    )
    x = torch.from_numpy(clips.X_test)
    want = exact(x)
    calls.clear()
    got = fast(x)
    assert (got - want).abs().max().item() < TOL_DB
    assert sum(calls) < 0.5 * got.shape[0] * got.shape[-1]
    # One clip as a 1-D tensor takes the same path.
    torch.testing.assert_close(fast(x[0]), got[0])


def test_unknown_stft_precision_is_rejected():
    with pytest.raises(ValueError, match="stft_precision"):
        LogMelSpectrogram(stft_precision="float16")
