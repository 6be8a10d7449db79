"""MobileFaceNet backbone, made independent of the clip length.

MobileFaceNet (Chen et al., "MobileFaceNets: Efficient CNNs for Accurate
Real-Time Face Verification on Mobile Devices", CCBR 2018) was brought to
anomalous sound detection by Liu et al. (STgram-MFN, ICASSP 2022) and kept by
Choi & Choi (Noisy-ArcMix, ICASSP 2024).  The layout follows METHOD.md: a
strided 3x3 stem, a depthwise 3x3 block, three groups of inverted-residual
bottlenecks, a 1x1 expansion to 512 channels, a *global depthwise* convolution
over the remaining (frequency, time) map and a linear 1x1 projection to the
embedding.

The authors' global depthwise kernel is fixed to (8, 20), which ties their
network to 10 s clips.  :class:`GlobalDepthwiseConv` keeps the same learnable
kernel (and so the same parameter count) but resamples its time taps to the
length of the map it sees, so any clip length works and 10 s clips see exactly
the authors' operator.

Two switches change speed, not results: ``channels_last`` runs the backbone in
the NHWC memory format, which oneDNN's CPU convolutions prefer, and
``fast_prelu`` replaces the backward pass of PReLU (see :class:`FastPReLU`).
The strided depthwise convolutions are :class:`DepthwiseConv2d`, whose input
gradient avoids a slow bfloat16 CPU kernel (same gradients, always on).
:func:`fold_batchnorm` gives an inference copy with every BatchNorm folded
into the convolution before it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: (expansion t, output channels c, repeats n, first stride s) per group.
BOTTLENECK_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (2, 128, 2, 2),
    (4, 128, 2, 2),
    (4, 128, 2, 2),
)


def downsampled_size(size: int, n_halvings: int) -> int:
    """Size of an axis after ``n_halvings`` convolutions (kernel 3, stride 2, pad 1).

    Each such convolution maps a length ``n`` to ``(n + 1) // 2``.

    Parameters
    ----------
    size : int
        Length of the axis before the convolutions.
    n_halvings : int
        Number of stride-2 convolutions applied.

    Returns
    -------
    int
        Length of the axis after them.
    """
    for _ in range(n_halvings):
        size = (size + 1) // 2
    return size


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or ``None``."""
    try:
        if not torch.is_autocast_enabled(device_type):
            return None
        return torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions
        if device_type == "cpu":
            enabled, dtype = torch.is_autocast_cpu_enabled, torch.get_autocast_cpu_dtype
        else:
            enabled, dtype = torch.is_autocast_enabled, torch.get_autocast_gpu_dtype
        return dtype() if enabled() else None


def _autocast_inputs(
    x: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``weight`` in the active autocast dtype of ``x``'s device.

    Custom autograd functions are not on autocast's op lists, so the cast
    autocast would make for the built-in op is made here (unchanged without
    autocast or for non-floating ``x``).
    """
    dtype = _autocast_dtype(x.device.type)
    if dtype is None or not x.is_floating_point():
        return x, weight
    return x.to(dtype), weight.to(dtype)


class _PReLUFunction(torch.autograd.Function):
    """PReLU whose backward pass is built from vectorised ATen kernels.

    The CPU kernel behind ``F.prelu``'s backward (``_prelu_kernel_backward``)
    is slow: on a (16, 128, 64, 157) activation it took 170-240 ms here,
    whether torch ran 1 or 2 threads and in float32 or bfloat16, against
    13 ms for the forward pass.  The same gradients written as four
    whole-tensor kernels took 75-140 ms in float32 and 75-80 ms in bfloat16
    on the same tensors, and are bitwise equal: ``pos + w * neg`` picks
    exactly one of ``g`` and ``w * g`` per element.
    """

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)  # type: ignore[attr-defined]
        return F.prelu(x, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        per_channel = weight.numel() > 1
        shape = [1] * x.ndim
        if per_channel:
            shape[1] = -1
        # threshold_backward is ReLU's backward: grad where x > 0, else 0,
        # exactly PReLU's "x > 0" branch (x == 0 goes to the slope side).
        pos = torch.ops.aten.threshold_backward(grad, x, 0)
        neg = grad - pos  # grad where x <= 0, else 0; exact
        grad_x = torch.addcmul(pos, neg, weight.view(shape).to(grad.dtype))
        # In-place on a temporary we own; summed in float32 whatever the dtype.
        grad_w = _sum_to_channels_float32(neg.mul_(x), per_channel)
        return grad_x, grad_w.reshape(weight.shape).to(weight.dtype)


#: Elements per piece when a bfloat16/float16 tensor is summed in float32:
#: each piece's float32 copy (512 KiB) stays in the core's cache.
_SUM_PIECE = 1 << 17


def _compiling() -> bool:
    """Whether torch.compile is tracing the calling code."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def _sum_to_channels_float32(t: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Float32 sum of ``t`` over all dims but 1 (``per_channel``) or all dims.

    ``sum(dtype=torch.float32)`` of a bfloat16 tensor first writes a whole
    float32 copy: for a (16, 512, 32, 79) activation of a training step that
    took 8.4 ms here, summing cache-sized pieces 2.4 ms.  Float32 tensors,
    and layouts other than contiguous or channels-last, are summed in one call.
    """
    dims = [d for d in range(t.ndim) if not (per_channel and d == 1)]
    # Under torch.compile Inductor fuses the cast into its reduction anyway,
    # and traced pieces would become hundreds of small kernels.
    if t.dtype == torch.float32 or t.ndim < 2 or _compiling():
        return t.sum(dims, dtype=torch.float32)
    if not per_channel and t.is_contiguous():
        t = t.reshape(-1, 1, 1)  # one "channel"
    channels = t.shape[1]
    if t.movedim(1, -1).is_contiguous():
        # Channels last (or one channel): (pixels, channels) rows.
        rows = t.movedim(1, -1).reshape(-1, channels)
        pieces = rows.split(max(1, _SUM_PIECE // channels))
        total = torch.stack([p.sum(0, dtype=torch.float32) for p in pieces]).sum(0)
    elif t.is_contiguous():
        # (images x channels, pixels) rows.
        rows = t.reshape(t.shape[0] * channels, -1)
        pieces = rows.split(max(1, _SUM_PIECE // rows.shape[1]))
        sums = torch.cat([p.sum(1, dtype=torch.float32) for p in pieces])
        total = sums.view(t.shape[0], channels).sum(0)
    else:
        return t.sum(dims, dtype=torch.float32)
    return total if per_channel else total.sum()


class FastPReLU(nn.PReLU):
    """``nn.PReLU`` with a faster backward pass.

    Same parameter (``weight``), same ``state_dict``, same outputs and
    gradients; only the backward kernel differs: the gradients are built
    from a few whole-tensor kernels instead of the slow CPU kernel behind
    ``F.prelu``'s backward, and are bitwise equal to it.  Under autocast the
    input and slopes are cast to the autocast dtype, as autocast does for
    ``F.prelu``.  Without autograd (inference) it is plain ``F.prelu``.

    Parameters
    ----------
    num_parameters : int, default=1
        Number of learnable slopes: 1, or the number of input channels.
    init : float, default=0.25
        Initial value of the slopes.
    device, dtype : optional
        Where and in which dtype the slopes are created, as for
        :class:`torch.nn.PReLU`.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (num_parameters,)
        The learnable negative slopes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or not (
            x.requires_grad or self.weight.requires_grad
        ):
            return F.prelu(x, self.weight)
        x, weight = _autocast_inputs(x, self.weight)
        return _PReLUFunction.apply(x, weight)


def _depthwise_input_grad_impl(
    grad: torch.Tensor,
    weight: torch.Tensor,
    input_shape: list[int],
    stride: list[int],
    padding: list[int],
) -> torch.Tensor:
    """Input gradient of a depthwise convolution, summed in float32."""
    # The strided convolution drops the last input rows/columns that complete
    # no window; output_padding gives them back.
    kernel = weight.shape[-2:]
    extra = [
        input_shape[2 + i]
        - ((grad.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + kernel[i])
        for i in range(2)
    ]
    grad_x = F.conv_transpose2d(
        grad.float(), weight.float(), None, stride, padding, extra, input_shape[1]
    )
    return grad_x.to(grad.dtype).contiguous(memory_format=_memory_format(grad))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for NHWC tensors, else the default (contiguous)."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


if hasattr(torch.library, "custom_op"):  # torch >= 2.4
    # An opaque op for torch.compile: Inductor otherwise lowers the float32
    # transposed convolution itself and picks a path that took 104 ms where
    # eager took 9 (2 cores, (16, 512, 16, 40) gradient, stride 2).
    _depthwise_input_grad = torch.library.custom_op(
        "sk_asd::depthwise_input_grad", mutates_args=()
    )(_depthwise_input_grad_impl)

    @_depthwise_input_grad.register_fake
    def _(
        grad: torch.Tensor,
        weight: torch.Tensor,
        input_shape: list[int],
        stride: list[int],
        padding: list[int],
    ) -> torch.Tensor:
        return grad.new_empty(input_shape).contiguous(
            memory_format=_memory_format(grad)
        )
else:  # pragma: no cover - older torch: no compile-time boundary needed
    _depthwise_input_grad = _depthwise_input_grad_impl


class _StridedDepthwiseFunction(torch.autograd.Function):
    """Strided depthwise convolution with its input gradient in float32.

    oneDNN's bfloat16 CPU kernel for the input gradient of a *strided*
    depthwise convolution is slow: on 2 cores, for a (16, 512, 32, 79)
    input with stride 2, it took 88-100 ms against 5-6 ms for the forward
    pass, and 38-63 ms for the two other strided depthwise layers of the
    backbone, about a fifth of a bf16 training step.  The same gradient is a
    transposed convolution of the output gradient with the kernel; computed
    in float32 and rounded to bfloat16 it took 13, 11 and 2 ms and equalled
    the bfloat16 kernel's result bit for bit (both sum the at most four
    products per element in float32).  Inside real training steps the
    three layers' input gradients took about 200 ms per step before and 28 ms
    after, casts included.  Stride-1 layers do not need this (their bfloat16
    input gradient took 1.5-4.4 ms); float32's own kernel is not slow either
    (11.2, 7.4 and 1.4 ms against 6.8, 7.9 and 1.2 for the transposed
    convolution), so float32 keeps ATen's path.  The weight gradient stays
    with ATen's kernel.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        stride, padding, groups = list(ctx.stride), list(ctx.padding), x.shape[1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _depthwise_input_grad(grad, weight, list(x.shape), stride, padding)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                stride,
                padding,
                [1, 1],
                False,
                [0, 0],
                groups,
                [False, True, False],
            )[1]
        return grad_x, grad_w, None, None


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise ``nn.Conv2d`` (one group per channel), fast to train on CPUs.

    Same parameters, ``state_dict`` and outputs as the ``nn.Conv2d`` it
    replaces.  When it is strided, has no bias, runs on the CPU in bfloat16
    (bfloat16 input or bfloat16 autocast) and autograd is recording, the
    backward pass computes the input gradient as a float32 transposed
    convolution instead of the slow bfloat16 kernel (see
    ``_StridedDepthwiseFunction``); in every other case it is plain
    ``nn.Conv2d``.

    Parameters
    ----------
    channels : int
        Input and output channels.
    kernel_size : int or tuple of (int, int)
        Size of the kernel.
    stride : int, default=1
        Convolution stride.
    padding : int, default=0
        Zero padding on each side.
    bias : bool, default=False
        Learnable bias (the backbone folds one in for inference only).

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (channels, 1, kernel_height, kernel_width)
        The per-channel kernels.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool = False,
    ) -> None:
        super().__init__(
            channels, channels, kernel_size, stride, padding, groups=channels, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.stride == (1, 1)
            or self.bias is not None
            or x.device.type != "cpu"
            or not torch.is_grad_enabled()
            or not (x.requires_grad or self.weight.requires_grad)
        ):
            return super().forward(x)
        x, weight = _autocast_inputs(x, self.weight)
        if x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16:
            return super().forward(x)
        return _StridedDepthwiseFunction.apply(x, weight, self.stride, self.padding)


class ConvBlock(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d, followed by PReLU unless ``linear``.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    kernel_size : int or tuple of (int, int)
        Size of the convolution kernel.
    stride : int, default=1
        Convolution stride.
    padding : int, default=0
        Zero padding on each side.
    depthwise : bool, default=False
        Depthwise convolution (one group per input channel).
    linear : bool, default=False
        Leave out the PReLU (a "linear" block).
    fast_prelu : bool, default=False
        Use :class:`FastPReLU` (same parameters, faster backward).

    Attributes
    ----------
    [0] : torch.nn.Conv2d or DepthwiseConv2d
        The bias-free convolution (the block is an ``nn.Sequential``, so its
        layers are reached by index).
    [1] : torch.nn.BatchNorm2d
        The batch normalisation.
    [2] : torch.nn.PReLU or FastPReLU
        The activation; absent when ``linear=True``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        *,
        depthwise: bool = False,
        linear: bool = False,
        fast_prelu: bool = False,
    ) -> None:
        if depthwise and in_channels != out_channels:
            raise ValueError(
                "A depthwise block needs as many output as input channels, got "
                f"{in_channels} and {out_channels}."
            )
        conv = (
            DepthwiseConv2d(in_channels, kernel_size, stride, padding)
            if depthwise
            else nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, bias=False
            )
        )
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_channels)]
        if not linear:
            layers.append((FastPReLU if fast_prelu else nn.PReLU)(out_channels))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear projection.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int
        Stride of the depthwise convolution.
    expansion : int
        Factor by which the 1x1 convolution widens the input
        (``in_channels * expansion`` hidden channels).
    fast_prelu : bool, default=False
        Use :class:`FastPReLU` in the activations.

    Attributes
    ----------
    body : torch.nn.Sequential
        The three :class:`ConvBlock` layers.
    residual : bool
        Whether the input is added to the output (``stride == 1`` and as many
        input as output channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expansion: int,
        *,
        fast_prelu: bool = False,
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.body = nn.Sequential(
            ConvBlock(in_channels, hidden, 1, fast_prelu=fast_prelu),
            ConvBlock(
                hidden, hidden, 3, stride, 1, depthwise=True, fast_prelu=fast_prelu
            ),
            ConvBlock(hidden, out_channels, 1, linear=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class GlobalDepthwiseConv(nn.Module):
    """Depthwise convolution whose kernel spans the whole feature map.

    The kernel has ``freq_size x time_taps`` weights per channel, as in the
    authors' code for a 10 s clip.  For a map with ``T`` frames the time taps
    are resampled to ``T`` (linear interpolation when stretching, averaging
    when shrinking) and rescaled by ``time_taps / T`` so that a stationary
    input gives the same output whatever the clip length.  Followed by
    BatchNorm, no activation (a "linear" block).

    Parameters
    ----------
    channels : int
        Number of channels (512 in MobileFaceNet).
    freq_size : int
        Height of the map, fixed by the number of mel bands.
    time_taps : int
        Number of learnable time taps (20 for 10 s clips at 16 kHz).

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (channels, freq_size, time_taps)
        The learnable kernel.
    bn : torch.nn.BatchNorm2d
        The batch normalisation after the convolution.
    """

    def __init__(self, channels: int, freq_size: int, time_taps: int) -> None:
        super().__init__()
        self.freq_size = freq_size
        self.time_taps = time_taps
        self.weight = nn.Parameter(torch.empty(channels, freq_size, time_taps))
        # Same initialisation as a Conv2d with fan_in = freq_size * time_taps.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bn = nn.BatchNorm2d(channels)

    def kernel_for(self, n_frames: int) -> torch.Tensor:
        """The (channels, freq, n_frames) kernel applied to a map of ``n_frames``.

        The taps are read as a piecewise-constant function over the clip and
        averaged over each of the ``n_frames`` output cells (exact area
        resampling), then rescaled by ``time_taps / n_frames``: the sum of the
        kernel over time, and so the response to a stationary map, is kept.
        """
        if n_frames == self.time_taps:
            return self.weight
        edges_in = torch.linspace(
            0.0, 1.0, self.time_taps + 1, device=self.weight.device
        )
        edges_out = torch.linspace(0.0, 1.0, n_frames + 1, device=self.weight.device)
        overlap = (
            torch.minimum(edges_in[1:, None], edges_out[None, 1:])
            - torch.maximum(edges_in[:-1, None], edges_out[None, :-1])
        ).clamp_min(0.0)
        # overlap * n_frames averages over an output cell; * taps / n_frames
        # keeps the sum: together, overlap * taps.
        return self.weight @ (overlap * self.time_taps).to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.freq_size:
            raise ValueError(
                f"GlobalDepthwiseConv expects {self.freq_size} frequency rows, "
                f"got {x.shape[2]}: the backbone was built for another n_mels."
            )
        kernel = self.kernel_for(x.shape[3]).to(x.dtype)
        if not torch.is_grad_enabled():
            # Inference: the same sums as a depthwise convolution whose kernel
            # covers the map.  On 2 cores, for 8 ten-second clips in bfloat16
            # channels-last, it took 0.105 ms against 0.70 ms for the einsum,
            # which first copies the map into a (channels, clips, pixels)
            # layout for a batched product; the embeddings came out bitwise
            # equal.  Training keeps the einsum: the two backward passes were
            # not compared.
            out = F.conv2d(x, kernel[:, None], None, 1, 0, 1, kernel.shape[0])
            return self.bn(out)
        out = torch.einsum("bcft,cft->bc", x, kernel)
        return self.bn(out[:, :, None, None])


class MobileFaceNet(nn.Module):
    """MobileFaceNet over a (channels, n_mels, n_frames) stack of spectrograms.

    Parameters
    ----------
    in_channels : int, default=3
        Number of stacked input images (3 for TASTgram).
    n_mels : int, default=128
        Height of the input images.
    time_taps : int, default=20
        Learnable time taps of the global depthwise convolution.
    embedding_dim : int, default=128
        Size of the output embedding.
    bottleneck_setting : sequence of (t, c, n, s), default=BOTTLENECK_SETTING
        Inverted-residual groups: expansion ``t``, output channels ``c``,
        repeats ``n`` and stride ``s`` of the first block of each group;
        the default is ``((2, 128, 2, 2), (4, 128, 2, 2), (4, 128, 2, 2))``.
    channels_last : bool, default=False
        Run the convolutions on channels-last (NHWC) tensors.  Same results
        (to float rounding); oneDNN's CPU kernels are faster on this layout.
    fast_prelu : bool, default=False
        Use :class:`FastPReLU`, whose backward pass is faster on the CPU.

    Attributes
    ----------
    stem, stem_dw : ConvBlock
        The strided 3x3 stem and the depthwise 3x3 block after it.
    blocks : torch.nn.Sequential
        The inverted-residual :class:`Bottleneck` blocks.
    expand : ConvBlock
        The 1x1 expansion to 512 channels.
    gdc : GlobalDepthwiseConv
        The global depthwise convolution.
    project : ConvBlock
        The linear 1x1 projection to ``embedding_dim``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        n_mels: int = 128,
        time_taps: int = 20,
        embedding_dim: int = 128,
        bottleneck_setting: Sequence[tuple[int, int, int, int]] = BOTTLENECK_SETTING,
        channels_last: bool = False,
        fast_prelu: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.stem = ConvBlock(in_channels, 64, 3, 2, 1, fast_prelu=fast_prelu)
        self.stem_dw = ConvBlock(64, 64, 3, 1, 1, depthwise=True, fast_prelu=fast_prelu)
        blocks: list[nn.Module] = []
        channels = 64
        for expansion, out_channels, repeats, stride in bottleneck_setting:
            for i in range(repeats):
                blocks.append(
                    Bottleneck(
                        channels,
                        out_channels,
                        stride if i == 0 else 1,
                        expansion,
                        fast_prelu=fast_prelu,
                    )
                )
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.expand = ConvBlock(channels, 512, 1, fast_prelu=fast_prelu)
        n_halvings = 1 + sum(1 for *_, s in bottleneck_setting if s == 2)
        self.gdc = GlobalDepthwiseConv(
            512, downsampled_size(n_mels, n_halvings), time_taps
        )
        self.project = ConvBlock(512, embedding_dim, 1, linear=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # getattr: backbones pickled before the option existed lack it.
        if getattr(self, "channels_last", False):
            # Converting the input is enough: convolutions, BatchNorm and
            # element-wise ops keep the layout of their input, so every
            # activation (and its gradient) stays NHWC.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem_dw(self.stem(x))
        x = self.expand(self.blocks(x))
        x = self.project(self.gdc(x))
        return x.flatten(1)


def fold_batchnorm(backbone: MobileFaceNet) -> MobileFaceNet:
    """An inference copy of ``backbone`` with BatchNorm folded into the convs.

    In eval mode BatchNorm is an affine map per channel, so it can be merged
    into the weights and a bias of the convolution in front of it: one
    memory-bound pass over every activation less (about 20 % of a scoring
    pass here).  The result equals the original to float rounding.  The copy
    is in eval mode and shares nothing with ``backbone``; its parameters do
    not require gradients.  The BatchNorm of the global depthwise convolution
    is kept (it acts on a 1x1 map).

    Parameters
    ----------
    backbone : MobileFaceNet
        The trained backbone; it is not modified.

    Returns
    -------
    MobileFaceNet
        The folded copy, in eval mode.
    """
    folded = copy.deepcopy(backbone).eval()
    for module in folded.modules():
        if isinstance(module, ConvBlock):
            conv, bn = module[0], module[1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[0] = fuse_conv_bn_eval(conv, bn)
                module[1] = nn.Identity()
    folded.requires_grad_(False)
    return folded
