"""How close scoring comes to what this CPU can do at all.

Prints, in one run:

1. the **work of one scoring pass** per 10 s clip (16 kHz, 128 mels,
   TASTgram-MFN), counted with forward hooks on the network as scoring runs
   it: multiply-accumulates (MACs) of the 1x1 convolutions (the ones int8
   scoring runs), of the depthwise convolutions, of the other convolutions
   and products (stem, Tgram), the log-mel's FFT and mel projection, and the
   bytes of every activation the backbone writes;
2. the **peaks this CPU reaches** with the threads in use, measured on large
   matrix products (float32, bfloat16, int8 through ``torch._int_mm``) and a
   large copy (memory bandwidth, read + write);
3. the **limit**: the time one clip needs if every part ran at its peak (1x1
   convolutions at the int8 rate where int8 runs, the rest of the backbone
   at the bfloat16 rate, the front end at the float32 rate) plus, for the
   upper estimate, every activation written to and read from memory once at
   the measured bandwidth;
4. **measured** scoring throughput (``ASDNet.forward``, batch 16, best of
   ``--repeats`` after warm-up and any compiling) at the ``--levels`` given,
   as a fraction of that limit.

The limit is a floor no implementation can beat on this machine, not a
target: depthwise convolutions and element-wise work are bound by memory,
not arithmetic, and small matrices run below the large-product peak.

Examples
--------
``python benchmarks/bench_cpu_limit.py``                    (auto and fastest)
``python benchmarks/bench_cpu_limit.py --levels reference auto compiled fastest``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sk_asd.estimator.speed import resolve_speed

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import (  # noqa: E402 - a sibling script
    N_CLASSES,
    SAMPLE_RATE,
    Package,
    level_options,
    make_data,
)


def best_seconds(fn: Any, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measured_peaks(repeats: int) -> dict[str, float]:
    """Operations per second of large products, and copy bandwidth."""
    n = 2048
    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        seconds = best_seconds(lambda a=a, b=b: torch.mm(a, b), repeats)
        peaks[name] = 2 * n**3 / seconds
    a8 = torch.randint(-64, 64, (n, n), dtype=torch.int8)
    b8 = torch.randint(-64, 64, (n, n), dtype=torch.int8)
    try:
        seconds = best_seconds(lambda: torch._int_mm(a8, b8), repeats)
        peaks["int8"] = 2 * n**3 / seconds
    except RuntimeError:  # builds without an int8 product on the CPU
        peaks["int8"] = peaks["bfloat16"]
    big = torch.empty(64 * 2**20, dtype=torch.float32)  # 256 MiB
    out = torch.empty_like(big)
    seconds = best_seconds(lambda: out.copy_(big), repeats)
    peaks["bandwidth"] = 2 * big.numel() * 4 / seconds
    return peaks


def count_work(net: Any, waves: torch.Tensor) -> dict[str, float]:
    """MACs per class and activation bytes (bfloat16) of one scoring pass."""
    from sk_asd.nn.quantization import quantizable_convs

    module = net.module_
    folded = net.scoring_copies_.folded(module.backbone)
    int8_names = set(quantizable_convs(folded))
    work = {
        "pointwise": 0.0,
        "depthwise": 0.0,
        "other_backbone": 0.0,
        "front_end": 0.0,
        "activation_bytes": 0.0,
    }

    def conv_hook(name: str, part: str):  # noqa: ANN202 - a forward hook
        def hook(mod: torch.nn.Module, args: Any, out: torch.Tensor) -> None:
            if isinstance(mod, torch.nn.Linear):
                macs = out.numel() * mod.in_features
            else:
                k = int(np.prod(mod.kernel_size))
                macs = out.numel() * (mod.in_channels // mod.groups) * k
            if part == "front_end":
                work["front_end"] += macs
                return
            work["activation_bytes"] += 2 * out.numel()
            if name in int8_names:
                work["pointwise"] += macs
            elif mod.groups > 1 and mod.groups == mod.in_channels:
                work["depthwise"] += macs
            else:
                work["other_backbone"] += macs

        return hook

    handles = []
    for name, mod in folded.named_modules():
        if isinstance(mod, torch.nn.Conv2d | torch.nn.Linear):
            handles.append(mod.register_forward_hook(conv_hook(name, "backbone")))
    for name, mod in module.named_modules():
        if name.startswith("backbone"):
            continue
        if isinstance(mod, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
            handles.append(mod.register_forward_hook(conv_hook(name, "front_end")))
    try:
        with torch.no_grad():
            images = module.images(waves=waves)
            folded(images)
    finally:
        for handle in handles:
            handle.remove()
    # The log-mel is an FFT plus a projection on the filters' nonzeros, and
    # the Tgram's first convolution runs at inference as a product over
    # frames (no module call): counted from their sizes.
    logmel = module.logmel
    n_frames = 1 + waves.shape[-1] // logmel.hop_length
    n_fft = logmel.n_fft
    fft_macs = 1.25 * n_fft * np.log2(n_fft)  # real FFT: ~2.5 N log2 N flops
    mel_macs = float((logmel.mel_fb != 0).sum())
    extractor = module.tgram.conv_extractor
    tgram_macs = extractor.out_channels * extractor.kernel_size[0]
    work["front_end"] += len(waves) * n_frames * (fft_macs + mel_macs + tgram_macs)
    images_bytes = 2 * images.numel()
    work["activation_bytes"] += images_bytes
    return {key: value / len(waves) for key, value in work.items()}


def measure_scoring(level: str, waves: np.ndarray, labels: np.ndarray, repeats: int):
    """Clips/s of ``ASDNet.forward`` at ``level``; the fitted net."""
    package = Package(16, len(waves), len(waves), level_options(level), None)
    package.waves, package.labels = waves, labels
    net = package.net = package.build(1)
    torch.manual_seed(0)
    net.fit(waves[:32], labels[:32])
    net.forward(waves[:16])  # warm-up, and compiling where the level compiles
    seconds = best_seconds(lambda: net.forward(waves), repeats)
    return len(waves) / seconds, net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--levels", nargs="+", default=["auto", "fastest"], help="speed levels"
    )
    parser.add_argument("--clips", type=int, default=64, help="clips scored (64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (3)")
    args = parser.parse_args(argv)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peaks = measured_peaks(args.repeats)
    print(
        "measured peaks: "
        f"float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
        f"bfloat16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s, "
        f"int8 {peaks['int8'] / 1e9:.0f} GOP/s, "
        f"copy {peaks['bandwidth'] / 1e9:.1f} GB/s (read + write)"
    )
    waves, labels = make_data(args.clips)
    labels = labels % N_CLASSES
    results = {}
    work = None
    for level in args.levels:
        clips_per_s, net = measure_scoring(level, waves, labels, args.repeats)
        results[level] = clips_per_s
        if work is None:
            work = count_work(net, torch.as_tensor(waves[:16]))
    assert work is not None
    print(f"\nwork per {len(waves[0]) / SAMPLE_RATE:.0f} s clip:")
    for key in ("pointwise", "depthwise", "other_backbone", "front_end"):
        print(f"  {key:<15} {work[key] / 1e6:8.1f} M MACs")
    print(f"  activations     {work['activation_bytes'] / 1e6:8.1f} MB (bfloat16)")

    def limit(int8: bool) -> tuple[float, float]:
        pointwise_rate = peaks["int8"] if int8 else peaks["bfloat16"]
        compute = (
            2 * work["pointwise"] / pointwise_rate
            + 2 * (work["depthwise"] + work["other_backbone"]) / peaks["bfloat16"]
            + 2 * work["front_end"] / peaks["float32"]
        )
        memory = 2 * work["activation_bytes"] / peaks["bandwidth"]
        return compute, compute + memory

    print("\nlimit (clips/s): compute only / compute + every activation via RAM")
    for name, int8 in (("bfloat16", False), ("int8 1x1 convolutions", True)):
        fast, slow = limit(int8)
        print(f"  {name:<22} {1 / fast:7.0f} / {1 / slow:7.0f}")
    print("\nmeasured scoring (clips/s, best of repeats) and share of the limit:")
    for level, clips_per_s in results.items():
        int8 = bool(resolve_speed(level, "cpu")["int8_scoring"])
        fast, slow = limit(int8)
        print(
            f"  {level:<10} {clips_per_s:7.1f}   {100 * clips_per_s * fast:5.1f} % of "
            f"the compute limit, {100 * clips_per_s * slow:5.1f} % of the "
            "compute + memory one"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
