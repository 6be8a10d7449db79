"""int8 scoring of the backbone's 1x1 convolutions on the CPU (oneDNN).

Four fifths of the convolution time of a bfloat16 scoring pass of
TASTgram-MFN on a CPU (about 3.2 of 4 ms per 10 s clip on two cores) is
spent in the 1x1 ("pointwise") convolutions of MobileFaceNet, which run
near the bfloat16 peak of the cores.  CPUs with VNNI instructions multiply
int8 at up to twice that rate, so these convolutions are run as oneDNN's
quantised convolution (``torch.ops.onednn.qconv_pointwise``):

* **weights**: int8, symmetric, one scale per output channel (the scheme of
  Jacob et al., CVPR 2018, and of Krishnamoorthi, 2018);
* **inputs**: uint8 with one static scale and zero point per layer, taken
  from the range the layer's input covers on calibration clips (normal
  training clips, so that anomalous clips are quantised on the same grid);
* **outputs**: dequantised inside the convolution to bfloat16 (under
  bfloat16 autocast) or float32, with the folded BatchNorm bias added.

Quantising an input is a multiply, round and clamp: under ``torch.compile``
it fuses into the element-wise kernel that already produces the input
(PReLU, residual add), so it adds no pass over memory.  Run eagerly it is a
pass of its own, and the eager int8 backbone was slower than the eager
bfloat16 one in our measurements; the scoring path therefore always
compiles the quantised backbone.

The embedding projection (the last 1x1 convolution, on a 1x1 map) stays
in floating point: the embeddings are the scores' input.

References
----------
.. [1] B. Jacob et al., "Quantization and training of neural networks for
   efficient integer-arithmetic-only inference", CVPR 2018, pp. 2704-2713.
.. [2] R. Krishnamoorthi, "Quantizing deep convolutional networks for
   efficient inference: A whitepaper", arXiv:1806.08342, 2018.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = [
    "Int8Conv2d",
    "calibrate_input_ranges",
    "int8_available",
    "quantizable_convs",
    "quantize_backbone",
]

#: uint8 grid of the inputs: 256 levels.
_LEVELS = 255
#: int8 weights are kept in [-127, 127] (symmetric, so zero is exact).
_WEIGHT_MAX = 127


def int8_available() -> bool:
    """Whether this torch build has oneDNN's quantised convolution.

    Returns
    -------
    bool
        ``True`` when ``torch.ops.onednn.qconv_pointwise`` and its weight
        packing are available (CPU builds with oneDNN).
    """
    onednn = getattr(torch.ops, "onednn", None)
    return (
        torch.backends.mkldnn.is_available()
        and onednn is not None
        and hasattr(onednn, "qconv_pointwise")
        and hasattr(onednn, "qconv_prepack")
    )


def quantizable_convs(backbone: nn.Module) -> dict[str, nn.Conv2d]:
    """The 1x1, ungrouped convolutions of ``backbone`` that int8 scoring runs.

    The embedding projection (a submodule named ``project``) is left out:
    the embeddings are the scores' input, and it acts on a 1x1 map (a
    negligible part of the work).

    Parameters
    ----------
    backbone : torch.nn.Module
        A MobileFaceNet (folded or not).

    Returns
    -------
    dict of str to torch.nn.Conv2d
        ``{qualified name: convolution}``, in module order.
    """
    convs = {}
    for name, module in backbone.named_modules():
        if name.split(".")[0] == "project":
            continue
        if (
            type(module) is nn.Conv2d
            and module.kernel_size == (1, 1)
            and module.groups == 1
            and module.stride == (1, 1)
            and module.padding == (0, 0)
        ):
            convs[name] = module
    return convs


@torch.no_grad()
def calibrate_input_ranges(
    backbone: nn.Module, batches: Iterable[Tensor]
) -> dict[str, tuple[float, float]]:
    """Smallest and largest input value of every quantisable convolution.

    Parameters
    ----------
    backbone : torch.nn.Module
        The (BatchNorm-folded, evaluation-mode) backbone.
    batches : iterable of Tensor
        Inputs of ``backbone`` (the stacked front-end images), run under the
        caller's autocast, as scoring runs them.

    Returns
    -------
    dict of str to (float, float)
        ``{conv name: (min, max)}`` over all batches.
    """
    ranges: dict[str, list[float]] = {}
    handles = []

    def hook(name: str):  # noqa: ANN202 - a forward pre-hook
        def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            lo, hi = torch.aminmax(args[0].detach())
            seen = ranges.setdefault(name, [float(lo), float(hi)])
            seen[0] = min(seen[0], float(lo))
            seen[1] = max(seen[1], float(hi))

        return record

    for name, conv in quantizable_convs(backbone).items():
        handles.append(conv.register_forward_pre_hook(hook(name)))
    try:
        for images in batches:
            backbone(images)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (lo, hi) for name, (lo, hi) in ranges.items()}


class Int8Conv2d(nn.Module):
    """A 1x1 ``Conv2d`` run as oneDNN's int8 convolution (inference only).

    Parameters
    ----------
    conv : torch.nn.Conv2d
        The float convolution (1x1, stride 1, no padding, one group); its
        weight and bias are copied.
    input_range : (float, float)
        Smallest and largest input value to represent (from calibration);
        inputs outside it are clipped to it.

    Attributes
    ----------
    input_scale : Tensor of float32, shape ()
        Step of the uint8 input grid.
    input_inv_scale : Tensor of float32, shape ()
        ``1 / input_scale``.
    input_zero_point : Tensor of int64, shape ()
        The uint8 code of 0.0.
    weight_scales : Tensor of float32, shape (out_channels,)
        Step of every output channel's int8 weights.
    packed_weight : Tensor
        The int8 weights in oneDNN's blocked layout.
    bias : Tensor of float32 or None
        The convolution's bias.
    """

    def __init__(self, conv: nn.Conv2d, input_range: tuple[float, float]) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1) or conv.groups != 1:
            raise ValueError("Int8Conv2d takes 1x1 convolutions with one group.")
        # Zero is kept on the grid (it is where most PReLU outputs cluster).
        lo, hi = min(float(input_range[0]), 0.0), max(float(input_range[1]), 0.0)
        scale = max(hi - lo, 1e-8) / _LEVELS
        zero_point = min(_LEVELS, max(0, round(-lo / scale)))
        # Tensors, not Python numbers: torch.compile would bake numbers into
        # the graph and compile again for every new calibration (every fit).
        self.register_buffer("input_scale", torch.tensor(scale, dtype=torch.float32))
        # Multiplied, not divided: the compiled PReLU + quantise kernel on a
        # (8, 512, 32, 79) activation took 1.60-1.65 ms against 1.73-1.75 ms
        # with a division (best of 30, two runs, 2 cores).
        self.register_buffer(
            "input_inv_scale", torch.tensor(1.0 / scale, dtype=torch.float32)
        )
        self.register_buffer("input_zero_point", torch.tensor(zero_point))
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels

        weight = conv.weight.detach().to(torch.float32)
        scales = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / _WEIGHT_MAX
        codes = torch.round(weight / scales[:, None, None, None]).clamp_(
            -_WEIGHT_MAX, _WEIGHT_MAX
        )
        self.register_buffer("weight_scales", scales)
        self.register_buffer(
            "weight_zero_points", torch.zeros(len(scales), dtype=torch.int64)
        )
        self.register_buffer(
            "packed_weight",
            torch.ops.onednn.qconv_prepack(
                codes.to(torch.int8),
                scales,
                float(self.input_scale),
                zero_point,
                [1, 1],
                [0, 0],
                [1, 1],
                1,
                None,
            ),
        )
        bias = conv.bias
        self.register_buffer(
            "bias", None if bias is None else bias.detach().to(torch.float32)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Quantise ``x`` (NCHW, any float dtype), convolve, dequantise."""
        out_dtype = (
            torch.bfloat16
            if x.dtype == torch.bfloat16
            or (
                torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
            )
            else torch.float32
        )
        # float32 before scaling: in bfloat16 the product would carry an
        # error of up to half a step of the grid.
        codes = torch.clamp(
            torch.round(x.float() * self.input_inv_scale) + self.input_zero_point,
            0,
            _LEVELS,
        ).to(torch.uint8)
        return torch.ops.onednn.qconv_pointwise.tensor(
            codes.contiguous(memory_format=torch.channels_last),
            self.input_scale,
            self.input_zero_point,
            self.packed_weight,
            self.weight_scales,
            self.weight_zero_points,
            self.bias,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
            1.0,
            0,
            out_dtype,
            "none",
            [],
            None,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, "
            f"input_scale={float(self.input_scale):.3g}, "
            f"input_zero_point={int(self.input_zero_point)}"
        )


def quantize_backbone(
    backbone: nn.Module, input_ranges: dict[str, tuple[float, float]]
) -> nn.Module:
    """A copy of ``backbone`` whose calibrated 1x1 convolutions run in int8.

    Parameters
    ----------
    backbone : torch.nn.Module
        The BatchNorm-folded, evaluation-mode backbone; not modified.
    input_ranges : dict of str to (float, float)
        From :func:`calibrate_input_ranges`; convolutions without a range
        stay in floating point.

    Returns
    -------
    torch.nn.Module
        The copy, in evaluation mode, without gradients.
    """
    if not int8_available():
        raise RuntimeError(
            "int8 scoring needs torch's oneDNN quantised convolution "
            "(torch.ops.onednn.qconv_pointwise), which this torch build lacks; "
            "score in floating point instead."
        )
    quantized = copy.deepcopy(backbone).eval()
    for name, conv in quantizable_convs(quantized).items():
        if name not in input_ranges:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = quantized.get_submodule(parent_name) if parent_name else quantized
        setattr(parent, child, Int8Conv2d(conv, input_ranges[name]))
    quantized.requires_grad_(False)
    return quantized
