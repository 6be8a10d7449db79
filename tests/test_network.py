"""TASTgram-MFN: size, clip lengths, front-end variants, mixup."""

from __future__ import annotations

import pytest
import torch

from sk_asd.nn.losses import MarginLoss
from sk_asd.nn.mobilefacenet import GlobalDepthwiseConv
from sk_asd.nn.network import TASTgramMFN


def _n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def test_parameter_count_matches_the_paper():
    # Paper settings: 128 mels, 10 s at 16 kHz, 41 machine IDs; about 1.16 M.
    total = _n_params(TASTgramMFN(), MarginLoss(41))
    assert abs(total - 1.16e6) / 1.16e6 < 0.02, total


def test_global_depthwise_kernel_is_the_authors_for_ten_seconds():
    net = TASTgramMFN()
    assert tuple(net.backbone.gdc.weight.shape[1:]) == (8, 20)


@pytest.mark.parametrize("seconds", [0.05, 0.1, 1.0, 10.0, 12.0])
def test_any_clip_length_gives_an_embedding(seconds):
    net = TASTgramMFN(n_mels=64).eval()
    with torch.no_grad():
        emb = net(torch.randn(2, int(seconds * 16000)))
    assert emb.shape == (2, 128)
    assert torch.isfinite(emb).all()


def test_short_clip_trains():
    net, crit = TASTgramMFN(n_mels=32), MarginLoss(2)
    loss = crit(net(torch.randn(4, 1600)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(
        torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None
    )


def test_short_clips_are_zero_padded_to_one_window():
    net = TASTgramMFN(n_mels=32).eval()
    wave = torch.randn(1, 1000)
    padded = torch.nn.functional.pad(wave, (0, 2048 - 1000))
    with torch.no_grad():
        torch.testing.assert_close(net(wave), net(padded))


@pytest.mark.parametrize(
    ("frontend", "channels"), [("tastgram", 3), ("stgram", 2), ("sgram", 1)]
)
def test_frontend_choices_stack_the_right_images(frontend, channels):
    net = TASTgramMFN(frontend=frontend, n_mels=32)
    images = net.images(torch.randn(2, 8000))
    assert images.shape == (2, channels, 32, 16)
    assert net.backbone.stem[0].in_channels == channels


@pytest.mark.parametrize("frontend", ["tastgram", "sgram"])
def test_images_come_in_the_backbones_memory_format(frontend):
    torch.manual_seed(0)
    net = TASTgramMFN(frontend=frontend, n_mels=32, channels_last=True)
    waves = torch.randn(2, 8000)
    images = net.images(waves)
    assert images.is_contiguous(memory_format=torch.channels_last)
    net.backbone.channels_last = False
    plain = net.images(waves)
    assert plain.is_contiguous()
    assert torch.equal(images, plain)


def test_mixup_mixes_waveforms_and_log_mels():
    net = TASTgramMFN(n_mels=32)
    waves = torch.randn(2, 8000)
    perm, lam = torch.tensor([1, 0]), 0.25
    mixed = net.images(waves, mixup=(perm, lam))
    plain = net.images(waves)
    # The log-mel channel is the mix of the two log-mels ...
    torch.testing.assert_close(
        mixed[:, 0], lam * plain[:, 0] + (1 - lam) * plain[perm, 0]
    )
    # ... and the Tgram is computed on the mixed waveform.
    tgram = net.tgram(lam * waves + (1 - lam) * waves[perm])
    torch.testing.assert_close(mixed[:, 1], tgram)


def test_gdc_resampling_preserves_a_constant_response():
    gdc = GlobalDepthwiseConv(4, freq_size=2, time_taps=20).eval()
    short, long = torch.ones(1, 4, 2, 7), torch.ones(1, 4, 2, 45)
    native = torch.ones(1, 4, 2, 20)
    # A stationary map gives the same output whatever its length.
    torch.testing.assert_close(gdc(short), gdc(native))
    torch.testing.assert_close(gdc(long), gdc(native))
    assert gdc.kernel_for(20) is gdc.weight


@pytest.mark.parametrize("n_frames", [7, 20, 45])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gdc_inference_path_equals_the_training_path(n_frames, channels_last):
    # Without autograd the map is reduced by a depthwise convolution, with
    # autograd by an einsum: the same sums, for any length and layout.
    torch.manual_seed(0)
    gdc = GlobalDepthwiseConv(6, freq_size=3, time_taps=20).eval()
    x = torch.randn(5, 6, 3, n_frames)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():
        trained = gdc(x)
    assert trained.requires_grad  # the einsum path ran
    with torch.no_grad():
        inferred = gdc(x)
    assert inferred.shape == trained.shape == (5, 6, 1, 1)
    torch.testing.assert_close(inferred, trained.detach())


def test_wrong_input_rank_is_rejected():
    with pytest.raises(ValueError, match="n_clips, n_samples"):
        TASTgramMFN(n_mels=32)(torch.randn(2, 1, 8000))


def test_bias_free_variant_has_no_trainable_shift():
    net = TASTgramMFN(n_mels=32, bias_free=True)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert not [n for n in trainable if n.endswith("bias")], trainable
    # The default network does learn BatchNorm shifts and the Tgram's.
    default = [n for n, p in TASTgramMFN(n_mels=32).named_parameters()]
    assert any(n.endswith("bn.bias") or n.endswith("1.bias") for n in default)
    assert any(n.startswith("tgram") and n.endswith("bias") for n in default)
    # A training step leaves every shift at exactly zero.
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-2)
    net(torch.randn(4, 8000)).pow(2).mean().backward()
    opt.step()
    shifts = [m.bias for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert shifts and all(torch.count_nonzero(b) == 0 for b in shifts)
