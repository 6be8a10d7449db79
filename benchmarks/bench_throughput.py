"""Training and scoring throughput: plain fp32 PyTorch against the package.

Prints, in one run and side by side, for the paper's settings (10 s clips at
16 kHz, 128 mels, TASTgram-MFN, Noisy-ArcMix, AdamW):

(a) REFERENCE: the same architecture (this package's ``TASTgramMFN`` and
    ``MarginLoss`` with every speed option off) in a plain fp32 PyTorch loop,
    default memory format, log-mels computed once up front and cached (as
    Choi & Choi's code does), in a process whose allocator and threads are
    left at their defaults.  Its log-mel is the authors' kind too: a plain
    float32 ``torch.stft``, ``abs() ** 2`` and a dense product with the same
    Slaney filter bank (what torchaudio's ``MelSpectrogram`` computes), not
    the package's optimised front end.  Its Tgram always runs the strided
    ``Conv1d`` (the package switches to a GEMM without autograd);
(b) PACKAGE: ``ASDNet`` (the skorch net ``AnomalousSoundDetector`` trains)
    with the engine options of a speed level (``--speed``, default
    ``"auto"``, the detector's default; the options come from
    :data:`sk_asd.estimator.speed.SPEEDS`), training through ``fit`` and
    scoring through ``forward`` + ``anomaly_score`` as ``score_samples``
    does;
(c) OVERHEAD of skorch/scikit-learn: ``ASDNet.fit`` for one epoch against the
    same work (same module and options, same mixup, AdamW) in a plain loop.

The reference and the package run in two separate worker processes (so that
the package's scoped allocator settings can never reach the reference),
started afresh every round: a default process settles, depending on its
history, in a faster or a slower state of glibc's dynamic mmap threshold,
and new processes sample that.  Within a round the two take turns, one
measurement at a time, the order alternating between rounds.  The table
shows the best round of each side (the least disturbed estimate on a shared
machine) and the medians.  Every worker does warm-up steps first.

Throughputs: training clips/s is one epoch of ``--clips`` clips in steady
state (the reference's log-mel cache, the package's cache build and, with
``--int8``, its calibration are one-off costs per fit, reported separately;
the overhead (c) fits without int8, which does not change training);
scoring clips/s includes the log-mel of every clip; the real-time factor is
audio seconds per wall second.

Examples
--------
``python benchmarks/bench_throughput.py``                (speed="auto", < ~5 min)
``python benchmarks/bench_throughput.py --quick``        (smoke run)
``python benchmarks/bench_throughput.py --batch-size 16 64``
``python benchmarks/bench_throughput.py --ablation``     (one option at a time)
``python benchmarks/bench_throughput.py --speed compiled`` (adds torch.compile)
``python benchmarks/bench_throughput.py --speed fastest``  (and int8 scoring)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0
N_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
N_CLASSES = 41  # machine IDs of DCASE 2020 Task 2, as in the paper
LR = 1e-4
WEIGHT_DECAY = 0.01


def level_options(speed: Any) -> dict[str, Any]:
    """ASDNet parameters of a speed level (or dict) on the CPU, as the
    detector's ``fit`` resolves them; never re-typed here."""
    from sk_asd.estimator.speed import net_options, resolve_speed

    return net_options(resolve_speed(speed, "cpu"))


def level_steps(level: str) -> list[str]:
    """The options a level switches on over ``"reference"``, table order."""
    from sk_asd.estimator.speed import SPEEDS, resolve_speed

    resolved = resolve_speed(level, "cpu")
    reference = resolve_speed("reference", "cpu")
    return [name for name in SPEEDS[level] if resolved[name] != reference[name]]


# --------------------------------------------------------------------- data
def make_data(n_clips: int, seed: int = 0) -> tuple[Any, Any]:
    """Noise plus a few machine-like harmonics; float32 waves, int64 labels.

    The content does not change the cost of any layer; it only keeps the
    log-mel and the activations in a realistic range.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(N_SAMPLES, dtype=np.float32) / SAMPLE_RATE
    labels = rng.integers(0, N_CLASSES, n_clips)
    waves = 0.05 * rng.standard_normal((n_clips, N_SAMPLES), dtype=np.float32)
    for i, label in enumerate(labels):
        f0 = 30.0 + 2.0 * label
        for k in (1, 2, 3, 5):
            waves[i] += (0.1 / k) * np.sin(2 * np.pi * k * f0 * t, dtype=np.float32)
    return waves, labels.astype(np.int64)


# ------------------------------------------------------------------ workers
def plain_logmel(package_logmel: Any) -> Any:
    """The log-mel as the authors compute it (torchaudio style), float32.

    Same definition as the package's :class:`LogMelSpectrogram` (zero-padded
    centred frames, periodic Hann, Slaney filter bank, ``10 log10``), written
    the plain way: one ``torch.stft`` over the batch, ``abs() ** 2`` and a
    dense matrix product.
    """
    import torch

    class PlainLogMel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n_fft = package_logmel.n_fft
            self.hop_length = package_logmel.hop_length
            self.eps = package_logmel.eps
            self.register_buffer("fb", package_logmel.mel_fb.clone())
            self.register_buffer("window", torch.hann_window(self.n_fft))

        def forward(self, wave: Any) -> Any:
            spec = torch.stft(
                wave,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            power = spec.abs().pow(2.0)
            mel = torch.matmul(power.transpose(-1, -2), self.fb.T).transpose(-1, -2)
            return 10.0 * torch.log10(mel + self.eps)

    return PlainLogMel()


def plain_tgram(package_tgram: Any) -> Any:
    """The package's Tgram, its first layer always the strided ``Conv1d``.

    Same weights and blocks; only the inference shortcut (one GEMM over the
    frames, see ``Tgram._extract``) is taken away, as in the authors' code.
    """

    def forward(wave: Any) -> Any:
        x = wave.to(package_tgram.conv_extractor.weight.dtype).unsqueeze(1)
        return package_tgram.blocks(package_tgram.conv_extractor(x))

    package_tgram.forward = forward
    return package_tgram


class Reference:
    """Plain fp32 PyTorch: the authors' recipe on this package's modules."""

    def __init__(self, batch_size: int, n_clips: int, n_score: int) -> None:
        import torch

        from sk_asd.estimator.loss_params import LOSS_PARAMS
        from sk_asd.nn.losses import MarginLoss
        from sk_asd.nn.network import TASTgramMFN

        self.torch = torch
        self.mixup_alpha = LOSS_PARAMS["mixup_alpha"]  # the detector's default
        self.batch_size = batch_size
        waves, labels = make_data(max(n_clips, n_score))
        self.waves = torch.from_numpy(waves)
        self.labels = torch.from_numpy(labels)
        self.n_clips, self.n_score = n_clips, n_score
        torch.manual_seed(0)
        self.model = TASTgramMFN()
        self.model.logmel = plain_logmel(self.model.logmel)
        self.model.tgram = plain_tgram(self.model.tgram)
        self.criterion = MarginLoss(N_CLASSES)
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.criterion.parameters()],
            lr=LR,
            weight_decay=WEIGHT_DECAY,
        )
        start = time.perf_counter()
        self.mels = self._logmels(self.waves[:n_clips])
        self.cache_seconds = time.perf_counter() - start

    def _logmels(self, waves: Any) -> Any:
        torch = self.torch
        with torch.no_grad():
            return torch.cat(
                [
                    self.model.padded_logmel(waves[i : i + self.batch_size])
                    for i in range(0, len(waves), self.batch_size)
                ]
            )

    def _train_step(self, index: Any) -> None:
        torch = self.torch
        self.model.train()
        y = self.labels[index]
        alpha = self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(index))
        emb = self.model(self.waves[index], mixup=(perm, lam), logmel=self.mels[index])
        loss = self.criterion(emb, y, y[perm], lam)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def train_epoch(self, n_batches: int | None = None) -> float:
        """Seconds for one shuffled epoch (``n_batches`` of it if given)."""
        torch = self.torch
        order = torch.randperm(self.n_clips)
        batches = list(order.split(self.batch_size))
        batches = [b for b in batches if len(b) > 1][:n_batches]
        start = time.perf_counter()
        for index in batches:
            self._train_step(index)
        return time.perf_counter() - start

    def train(self) -> dict[str, float]:
        """One epoch; ``setup`` is the one-off log-mel cache of the clips."""
        return {"seconds": self.train_epoch(), "setup": self.cache_seconds}

    def score(self, n_clips: int | None = None) -> float:
        """Seconds to score ``n_clips`` clips (log-mel included)."""
        torch = self.torch
        n = self.n_score if n_clips is None else n_clips
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, n, self.batch_size):
                emb = self.model(self.waves[i : min(i + self.batch_size, n)])
                self.criterion.anomaly_score(emb, self.labels[i : i + len(emb)])
        return time.perf_counter() - start

    def warm_up(self) -> None:
        self.train_epoch(n_batches=2)
        self.score(self.batch_size)


class Package:
    """ASDNet with the speed options, as AnomalousSoundDetector builds it."""

    def __init__(
        self,
        batch_size: int,
        n_clips: int,
        n_score: int,
        options: dict[str, Any],
        n_threads: int,
    ) -> None:
        import torch

        self.torch = torch
        self.batch_size = batch_size
        self.n_clips, self.n_score = n_clips, n_score
        self.waves, self.labels = make_data(max(n_clips, n_score))
        self.options = dict(options)
        self.n_threads = n_threads
        self.net: Any = None

    def build(self, max_epochs: int, **extra: Any) -> Any:
        """The net of ``AnomalousSoundDetector._build_net`` (no validation)."""
        import torch
        from skorch.callbacks import LRScheduler

        from sk_asd.estimator.loss_params import net_params, resolve_loss_params
        from sk_asd.estimator.net import ASDNet
        from sk_asd.nn.losses import MarginLoss
        from sk_asd.nn.network import TASTgramMFN

        params = {**self.options, **extra}
        return ASDNet(
            module=TASTgramMFN,
            module__frontend="tastgram",
            module__sample_rate=SAMPLE_RATE,
            module__n_mels=128,
            module__embedding_dim=128,
            criterion=MarginLoss,
            criterion__n_classes=N_CLASSES,
            criterion__embedding_dim=128,
            criterion__loss="noisy_arcmix",
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=WEIGHT_DECAY,
            lr=LR,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__drop_last=self.n_clips % self.batch_size == 1,
            train_split=None,
            callbacks=[
                (
                    "lr_scheduler",
                    LRScheduler(
                        policy="CosineAnnealingLR", T_max=max_epochs, eta_min=0.1 * LR
                    ),
                )
            ],
            # The default criterion options (margin, scale, mixup_alpha, ...),
            # routed as the detector routes them.
            **net_params(resolve_loss_params(None)),
            device="cpu",
            verbose=0,
            n_threads=self.n_threads,
            **params,
        )

    def fit(
        self, max_epochs: int, n_clips: int | None = None, training_only: bool = False
    ) -> dict[str, float]:
        """Fit a fresh net; wall seconds and the duration of every epoch.

        ``training_only`` leaves out int8 scoring's calibration after the
        last epoch (scoring set-up, which the plain loop does not do).
        """
        n = self.n_clips if n_clips is None else n_clips
        self.torch.manual_seed(0)
        self.net = self.build(
            max_epochs, **({"int8_scoring": False} if training_only else {})
        )
        start = time.perf_counter()
        self.net.fit(self.waves[:n], self.labels[:n])
        wall = time.perf_counter() - start
        return {"wall": wall, "epochs": list(self.net.history[:, "dur"])}

    def train(self) -> dict[str, float]:
        """Steady-state epoch: the second epoch of a two-epoch fit."""
        result = self.fit(max_epochs=2)
        # One untimed batch: with --compile, scoring compiles the new weights
        # (a one-off per fitted model, like the log-mel cache per fit).
        self.score(self.batch_size)
        epoch_sum = sum(result["epochs"])
        return {
            "seconds": result["epochs"][-1],
            "first_epoch": result["epochs"][0],
            # fit's wall time outside the epochs: setup and the log-mel cache.
            "setup": result["wall"] - epoch_sum,
        }

    def score(self, n_clips: int | None = None) -> float:
        """Seconds to score clips as ``score_samples`` does (forward + CE)."""
        torch = self.torch
        n = self.n_score if n_clips is None else n_clips
        start = time.perf_counter()
        emb = self.net.forward(self.waves[:n], training=False)
        target = torch.as_tensor(self.labels[:n])
        self.net.criterion_.anomaly_score(emb, target)
        return time.perf_counter() - start

    def plain_loop(self) -> float:
        """One epoch of the same work as ``fit(max_epochs=1)``, without skorch.

        Same module and options (autocast, threads, heap, cached log-mels,
        ``torch.compile`` of the backbone, fused AdamW), same mixup and AdamW;
        batches are cut from a tensor.  Timed like ``fit``'s wall time:
        building the module and the cache included.
        """
        torch = self.torch
        from sk_asd.nn.losses import MarginLoss
        from sk_asd.nn.network import TASTgramMFN

        torch.manual_seed(0)
        shell = self.build(max_epochs=1)  # unfitted: only for its settings
        start = time.perf_counter()
        with shell.runtime():
            module_kwargs = shell.get_params_for("module")
            model = TASTgramMFN(**module_kwargs)
            if shell.compile_backbone:
                # As ASDNet.initialize_module does; the compiled code of the
                # warm-up is reused (parameters are graph inputs).
                model.backbone.compile()
            criterion = MarginLoss(**shell.get_params_for("criterion"))
            optimizer = torch.optim.AdamW(
                [*model.parameters(), *criterion.parameters()],
                lr=LR,
                weight_decay=WEIGHT_DECAY,
                # The level's fused AdamW, as the net builds it.
                fused=shell.get_params_for("optimizer").get("fused"),
            )
            waves = torch.from_numpy(self.waves[: self.n_clips])
            labels = torch.from_numpy(self.labels[: self.n_clips])
            mels = None
            if shell.cache_logmel:
                with torch.no_grad():
                    mels = torch.cat(
                        [
                            model.padded_logmel(waves[i : i + self.batch_size])
                            for i in range(0, len(waves), self.batch_size)
                        ]
                    )
            model.train()
            for index in torch.randperm(self.n_clips).split(self.batch_size):
                if len(index) < 2:
                    continue
                y = labels[index]
                alpha = shell.mixup_alpha
                lam = float(torch.distributions.Beta(alpha, alpha).sample())
                perm = torch.randperm(len(index))
                with shell.autocast():
                    emb = model(
                        waves[index],
                        mixup=(perm, lam),
                        logmel=None if mels is None else mels[index],
                    )
                loss = criterion(emb, y, y[perm], lam)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return time.perf_counter() - start

    def warm_up(self) -> None:
        self.fit(max_epochs=1, n_clips=2 * self.batch_size)
        self.score(self.batch_size)


def _worker(conn: Any, role: str, config: dict[str, Any]) -> None:
    """Serve measurement requests from the parent until told to stop."""
    if config.get("thp") and role == "package":
        # Read once by torch's CPU allocator, at its first allocation: it
        # must be set before torch is imported (it is not, in this process).
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    import torch

    torch.set_num_threads(config["threads"])
    if role == "reference":
        bench: Any = Reference(
            config["batch_size"], config["clips"], config["score_clips"]
        )
    else:
        bench = Package(
            config["batch_size"],
            config["clips"],
            config["score_clips"],
            config["options"],
            config["threads"],
        )
    bench.warm_up()
    conn.send({"ready": True})
    while True:
        command, args = conn.recv()
        if command == "stop":
            break
        try:
            result = getattr(bench, command)(**args)
        except Exception as exc:  # report, do not hang the parent
            result = {"error": f"{type(exc).__name__}: {exc}"}
        if not isinstance(result, dict):
            result = {"seconds": result}
        result["max_rss_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        )
        conn.send(result)
    conn.close()


class Worker:
    """A persistent benchmark process, driven one request at a time."""

    def __init__(self, role: str, config: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker, args=(child, role, config), daemon=True
        )
        self.process.start()
        self.role = role

    def wait_ready(self) -> None:
        reply = self.conn.recv()
        assert reply.get("ready"), reply

    def __call__(self, command: str, **args: Any) -> dict[str, Any]:
        self.conn.send((command, args))
        reply = self.conn.recv()
        if "error" in reply:
            raise RuntimeError(f"{self.role} worker, {command}: {reply['error']}")
        return reply

    def stop(self) -> None:
        self.conn.send(("stop", {}))
        self.process.join(timeout=60)


# ------------------------------------------------------------------ driver
def cpu_description() -> str:
    import torch

    from sk_asd.estimator.net import cpu_supports_bf16

    cap = torch.backends.cpu.get_cpu_capability()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({cap}), native bf16: "
        f"{'yes' if cpu_supports_bf16() else 'no'}"
    )


def load_average() -> str:
    """1, 5 and 15 minute load averages, or "n/a"."""
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def worker_config(
    args: argparse.Namespace, batch_size: int, n_clips: int, options: dict[str, Any]
) -> dict[str, Any]:
    """What a worker process needs to build its side of the comparison."""
    return {
        "batch_size": batch_size,
        "clips": n_clips,
        "score_clips": args.score_clips,
        "threads": args.threads,
        "options": options,
        "thp": args.thp,
    }


def run_batch_size(args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    """All measurements for one batch size; prints the table."""
    n_clips = max(args.clips, 2 * batch_size)
    # Whole batches only, so the two sides run the same number of steps.
    n_clips -= n_clips % batch_size
    config = worker_config(args, batch_size, n_clips, level_options(args.speed))
    print(
        f"\n== batch {batch_size}: {n_clips} training clips/epoch, "
        f"{args.score_clips} scored clips, {args.rounds} rounds; package "
        f"speed={args.speed!r}: {', '.join(extra_steps(args)) or 'no options'}"
        + ("; package worker with THP_MEM_ALLOC_ENABLE=1" if args.thp else "")
    )
    rows: dict[str, list[float]] = {
        k: [] for k in ("ref_train", "pkg_train", "ref_score", "pkg_score")
    }
    extra: dict[str, Any] = {}
    overhead = None
    for r in range(args.rounds):
        # Fresh processes every round: glibc's dynamic mmap threshold makes a
        # default process settle, depending on its history, in a fast or a
        # slow state for good (scoring in two identical runs: 26 and 53
        # clips/s); new workers sample that too.
        started = time.perf_counter()
        ref, pkg = Worker("reference", config), Worker("package", config)
        ref.wait_ready()
        pkg.wait_ready()
        warm = time.perf_counter() - started
        # Alternate which side goes first, so drifts in machine load do not
        # always favour the same one.
        pair = [(ref, "ref"), (pkg, "pkg")]
        for worker, key in pair if r % 2 == 0 else pair[::-1]:
            result = worker("train")
            rows[f"{key}_train"].append(n_clips / result["seconds"])
            extra[f"{key}_setup"] = result["setup"]
            extra[f"{key}_rss"] = result["max_rss_mb"]
        for worker, key in pair if r % 2 == 0 else pair[::-1]:
            result = worker("score")
            rows[f"{key}_score"].append(args.score_clips / result["seconds"])
            extra[f"{key}_rss"] = result["max_rss_mb"]
        print(
            f"   round {r + 1} (fresh workers, warmed up in {warm:.0f} s): train "
            f"{rows['ref_train'][-1]:.2f} vs {rows['pkg_train'][-1]:.2f} clips/s, "
            f"score {rows['ref_score'][-1]:.1f} vs {rows['pkg_score'][-1]:.1f} "
            "clips/s",
            flush=True,
        )
        if r == args.rounds - 1 and not args.skip_overhead:
            fits, loops = [], []
            for k in range(args.rounds):
                commands = ("fit", "plain_loop")
                for command in commands if k % 2 == 0 else commands[::-1]:
                    if command == "fit":
                        fit = pkg("fit", max_epochs=1, training_only=True)
                        fits.append(fit["wall"])
                    else:
                        loops.append(pkg("plain_loop")["seconds"])
            overhead = (min(fits), min(loops))
        ref.stop()
        pkg.stop()

    best = {k: max(v) for k, v in rows.items()}
    median = {k: statistics.median(v) for k, v in rows.items()}
    train_ratio = best["pkg_train"] / best["ref_train"]
    score_ratio = best["pkg_score"] / best["ref_score"]
    print(f"\n   batch {batch_size} (best of {args.rounds} rounds; median below)")
    print(f"   {'':34s}{'reference':>12s}{'package':>12s}{'ratio':>9s}")
    print(
        f"   {'train clips/s':34s}{best['ref_train']:12.2f}"
        f"{best['pkg_train']:12.2f}{'x' + format(train_ratio, '.2f'):>9s}"
    )
    print(
        f"   {'score clips/s':34s}{best['ref_score']:12.1f}"
        f"{best['pkg_score']:12.1f}{'x' + format(score_ratio, '.2f'):>9s}"
    )
    for key, label in (
        ("train", "  median train clips/s"),
        ("score", "  median score clips/s"),
    ):
        ratio = median[f"pkg_{key}"] / median[f"ref_{key}"]
        print(
            f"   {label:34s}{median[f'ref_{key}']:12.2f}"
            f"{median[f'pkg_{key}']:12.2f}{'x' + format(ratio, '.2f'):>9s}"
        )
    print(
        f"   {'score real-time factor':34s}"
        f"{best['ref_score'] * CLIP_SECONDS:12.0f}"
        f"{best['pkg_score'] * CLIP_SECONDS:12.0f}"
    )
    print(
        f"   {'one-off per fit, s (cache; int8 calib.)':34s}"
        f"{extra['ref_setup']:12.2f}{extra['pkg_setup']:12.2f}"
    )
    print(
        f"   {'peak RSS of the worker, MB':34s}"
        f"{extra['ref_rss']:12.0f}{extra['pkg_rss']:12.0f}"
    )
    result = {
        "batch_size": batch_size,
        **best,
        "train_ratio": train_ratio,
        "score_ratio": score_ratio,
        "median": median,
        "rounds": rows,
    }
    if overhead is not None:
        fit_s, loop_s = overhead
        pct = 100.0 * (fit_s / loop_s - 1.0)
        print(
            f"   skorch/sklearn overhead: ASDNet.fit, 1 epoch: {fit_s:.2f} s; "
            f"plain loop, same module and options: {loop_s:.2f} s -> {pct:+.1f} %"
        )
        result["overhead_pct"] = pct
    return result


def extra_steps(args: argparse.Namespace) -> list[str]:
    """The options the run's speed level switches on, in table order."""
    return level_steps(args.speed)


def run_ablation(args: argparse.Namespace, batch_size: int) -> None:
    """Package only: add one option at a time and measure train and score."""
    n_clips = max(args.clips, 2 * batch_size)
    n_clips -= n_clips % batch_size
    steps = ["none", *extra_steps(args)]
    print(
        f"\n== ablation, batch {batch_size}: options added one at a time "
        f"(cumulative), {args.rounds} rounds, best round shown"
    )
    results: dict[str, dict[str, list[float]]] = {
        s: {"train": [], "score": []} for s in steps
    }
    configs = {}
    from sk_asd.estimator.speed import resolve_speed

    level = resolve_speed(args.speed, "cpu")
    for i, step in enumerate(steps):
        # The level's own values of the options added so far, on "reference".
        speed = {"level": "reference", **{n: level[n] for n in steps[1 : i + 1]}}
        configs[step] = worker_config(args, batch_size, n_clips, level_options(speed))
    for r in range(args.rounds):
        # Fresh processes every round (see run_batch_size); they warm up
        # side by side, then measure one at a time.
        workers = {step: Worker("package", configs[step]) for step in steps}
        for worker in workers.values():
            worker.wait_ready()
        for step in steps if r % 2 == 0 else steps[::-1]:
            seconds = workers[step]("train")["seconds"]
            results[step]["train"].append(n_clips / seconds)
            seconds = workers[step]("score")["seconds"]
            results[step]["score"].append(args.score_clips / seconds)
        for worker in workers.values():
            worker.stop()
        print(f"   round {r + 1} done", flush=True)
    base_train = max(results["none"]["train"])
    base_score = max(results["none"]["score"])
    print(f"   {'+ option':18s}{'train/s':>10s}{'x':>7s}{'score/s':>10s}{'x':>7s}")
    for step in steps:
        train, score = max(results[step]["train"]), max(results[step]["score"])
        print(
            f"   {step:18s}{train:10.2f}{train / base_train:7.2f}"
            f"{score:10.1f}{score / base_score:7.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    # Imported here, not at the top: the spawned reference worker re-runs the
    # top of this file and should not import the package.
    from sk_asd.estimator.speed import SPEED_LEVELS

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clips", type=int, default=64, help="training clips per epoch (64)"
    )
    parser.add_argument(
        "--score-clips",
        type=int,
        default=128,
        help="clips per scoring call (128: a test set, not one batch)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[16],
        help="one or more batch sizes (16; the paper trains with 64)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch intra-op threads in both workers (all cores)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternations (3)")
    parser.add_argument(
        "--speed",
        choices=list(SPEED_LEVELS),
        default="auto",
        help="the package's speed level (auto, the detector's default); "
        "'compiled' adds torch.compile, 'fastest' int8 scoring as well",
    )
    parser.add_argument(
        "--thp",
        action="store_true",
        help="start the package worker with THP_MEM_ALLOC_ENABLE=1 (huge pages "
        "for torch's large CPU tensors; an environment setting, not an option)",
    )
    parser.add_argument(
        "--skip-overhead", action="store_true", help="skip the skorch overhead (c)"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="instead: package options added one at a time",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 rounds, few clips"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = min(args.rounds, 2)
        args.clips = min(args.clips, 32)
        args.score_clips = min(args.score_clips, 32)
    print(f"bench_throughput: {CLIP_SECONDS:g} s clips at {SAMPLE_RATE} Hz, 128 mels,")
    print(f"TASTgram-MFN + Noisy-ArcMix, AdamW; {args.threads} torch threads")
    print(cpu_description())
    load_before = load_average()
    print(f"load average before: {load_before} (other processes slow every figure)")
    start = time.perf_counter()
    for batch_size in args.batch_size:
        if args.ablation:
            run_ablation(args, batch_size)
        else:
            run_batch_size(args, batch_size)
    print(
        f"\ntotal {time.perf_counter() - start:.0f} s; python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
