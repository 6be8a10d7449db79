"""The skorch network that trains TASTgram-MFN with a margin criterion.

skorch runs the epochs, batching, learning-rate schedule, validation split and
history.  This subclass adds what skorch does not know about: mixup of each
training batch (ArcMix / Noisy-ArcMix need both label sets and the mixing
weight inside the criterion), random crops, a stop on a non-finite loss, and
keeping the weights of the best epoch (:class:`RestoreBestWeights`).

It also holds the engine options of :mod:`sk_asd.estimator.speed` that are
not part of the module (those are ``module__channels_last`` and
``module__fast_prelu``): mixed precision (autocast, with a gradient scaler
for float16), the torch thread count and glibc heap thresholds for the
duration of ``fit`` / ``forward``, log-mels computed once per fit and
``torch.compile`` of the training backbone.  The copies of the network that
scoring runs (BatchNorm folded, compiled, int8) live in
:mod:`sk_asd.estimator.inference`, with the callback that calibrates int8.
All options are off by default; each one is measured by
``benchmarks/bench_throughput.py``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_tensor

from sk_asd.estimator.crops import grid_crops, is_croppable, random_crops
from sk_asd.estimator.inference import Int8Calibration, ScoringCopies
from sk_asd.estimator.threads import retained_heap, torch_threads
from sk_asd.nn.quantization import int8_available

#: Values accepted by ``ASDNet(amp_dtype=...)``.
AMP_DTYPES = ("auto", "bfloat16", "float16")


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16/AMX).

    Without them bfloat16 is emulated and slower than float32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp_dtype(amp_dtype: str | None, device: str) -> torch.dtype | None:
    """The autocast dtype for ``amp_dtype`` on ``device`` (``None``: float32).

    ``"auto"`` picks bfloat16 on CUDA GPUs that support it (float16
    otherwise) and on CPUs with native bfloat16 kernels, and float32 on other
    CPUs, where bfloat16 is emulated and slower.

    Parameters
    ----------
    amp_dtype : {None, "auto", "bfloat16", "float16"}
        The requested precision.
    device : str
        A torch device string ("cpu", "cuda", "cuda:1", ...).

    Returns
    -------
    torch.dtype or None
    """
    if amp_dtype is None:
        return None
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(
            f"amp_dtype must be None or one of {AMP_DTYPES}, got {amp_dtype!r}."
        )
    device_type = torch.device(device).type
    if amp_dtype == "auto":
        if device_type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device_type == "cpu":
            return torch.bfloat16 if cpu_supports_bf16() else None
        return None
    return torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16


class NonFiniteLossError(ValueError):
    """The training or validation loss became NaN or infinite; training stopped."""


class _TrainingInterrupted(BaseException):  # noqa: N818 - an internal signal
    """A KeyboardInterrupt in flight through skorch's loop, which would eat it."""


def _batch_peak(batch: Any) -> float:
    """Largest absolute waveform sample of a batch, NaN when not found."""
    Xi = batch[0] if isinstance(batch, tuple | list) and batch else batch
    if isinstance(Xi, Mapping):
        Xi = Xi.get("waves")
    if isinstance(Xi, torch.Tensor) and Xi.numel():
        return float(Xi.detach().abs().max())
    return float("nan")


class ASDNet(NeuralNet):
    """skorch ``NeuralNet`` whose module returns embeddings and whose criterion
    holds the class centres.

    Parameters
    ----------
    mixup_alpha : float, default=0.5
        Mixing weights are drawn from ``Beta(mixup_alpha, mixup_alpha)`` for
        every training batch when the criterion uses mixup.
    amp_dtype : {None, "auto", "bfloat16", "float16"}, default=None
        Run the module under ``torch.autocast`` in this dtype (training and
        inference); the criterion and the log-mel stay in float32/float64.
        ``"float16"`` adds a gradient scaler.  ``"auto"``: see
        :func:`resolve_amp_dtype`.  ``None`` is float32 throughout.
    n_threads : int or None, default=None
        torch intra-op threads during ``fit``, ``partial_fit`` and
        ``forward``; the previous count is restored afterwards.  ``None``
        leaves torch's setting alone.
    retain_heap : bool, default=False
        During ``fit``, ``partial_fit`` and ``forward``, keep freed tensor
        memory in the process instead of returning it to the system after
        every operation (glibc only; see
        :func:`sk_asd.estimator.threads.retained_heap`).
    cache_logmel : bool, default=False
        In ``fit``/``partial_fit`` on an array of waveforms, compute every
        clip's log-mel once up front (in batches) instead of once per epoch;
        costs ``n_mels * n_frames * 4`` bytes per clip.  Needs a module with
        ``padded_logmel`` and a ``logmel`` forward argument (TASTgramMFN).
    fold_batchnorm : bool, default=False
        For inference (``forward``/``predict``), use a copy of the backbone
        with BatchNorm folded into the convolutions (rebuilt whenever the
        weights change).  Same results to float rounding.
    compile_backbone : bool, default=False
        ``torch.compile`` the backbone (not the log-mel, whose precision
        fallback is data-dependent).  Training and inference each compile
        once, in about 10-60 s on 2 CPU cores; if compiling fails, a warning
        is issued and the eager backbone is used.  Scoring (``forward``)
        runs a compiled, BatchNorm-folded copy of the backbone (a new copy
        when the weights change, reusing the compiled code) and compiles
        the module's ``images`` after an eager log-mel; validation
        passes inside ``fit`` run the training backbone's compiled graph in
        evaluation mode.
    crop_samples : int or None, default=None
        Train on one random crop of this many samples per clip and batch
        (starting on a log-mel hop, see
        :func:`sk_asd.estimator.crops.random_crops`); in inference, embed
        every clip as evenly spaced crops that cover it
        (:func:`~sk_asd.estimator.crops.grid_crops`), so that ``forward``
        returns embeddings of shape ``(n_clips, n_crops, embedding_dim)``.
        Clips not longer than the crop are used whole.  ``None`` uses whole
        clips throughout.
    int8_scoring : bool, default=False
        Score (``forward``) with the 1x1 convolutions of the BatchNorm-folded
        backbone in int8 (CPU only, see :mod:`sk_asd.nn.quantization`),
        always compiled.  Every ``fit``/``partial_fit`` ends by calibrating
        their input ranges on :data:`INT8_CALIBRATION_CLIPS` training clips;
        if the weights change otherwise (``load_params``), scoring warns and
        runs in floating point until the next fit.  Validation passes inside
        ``fit`` are not affected.
    *args, **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        *args: Any,
        mixup_alpha: float = 0.5,
        amp_dtype: str | None = None,
        n_threads: int | None = None,
        retain_heap: bool = False,
        cache_logmel: bool = False,
        fold_batchnorm: bool = False,
        compile_backbone: bool = False,
        crop_samples: int | None = None,
        int8_scoring: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mixup_alpha = mixup_alpha
        self.amp_dtype = amp_dtype
        self.n_threads = n_threads
        self.retain_heap = retain_heap
        self.cache_logmel = cache_logmel
        self.fold_batchnorm = fold_batchnorm
        self.compile_backbone = compile_backbone
        self.crop_samples = crop_samples
        self.int8_scoring = int8_scoring

    # --------------------------------------------------------- run settings
    @contextmanager
    def runtime(self) -> Iterator[None]:
        """Threads and heap settings of this net, for the duration of a block."""
        with ExitStack() as stack:
            stack.enter_context(torch_threads(self.n_threads))
            stack.enter_context(retained_heap(self.retain_heap))
            yield

    def autocast(self) -> AbstractContextManager[Any]:
        """Autocast in ``amp_dtype``, or nothing for float32."""
        dtype = resolve_amp_dtype(self.amp_dtype, self.device)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=dtype)

    def _grad_scaler(self) -> torch.amp.GradScaler | None:
        """The gradient scaler for float16 training, created on first use."""
        if resolve_amp_dtype(self.amp_dtype, self.device) != torch.float16:
            return None
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            scaler = torch.amp.GradScaler(torch.device(self.device).type)
            self.grad_scaler_ = scaler
        return scaler

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> ASDNet:
        self._check_int8()  # before initialize() moves anything to a device
        with self.runtime():
            return super().fit(X, y, **fit_params)

    def partial_fit(
        self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any
    ) -> ASDNet:
        self._check_int8()
        with self.runtime():
            if not self.initialized_:
                self.initialize()
            if self.cache_logmel:
                X = self._with_logmels(X)
            try:
                super().partial_fit(X, y, classes, **fit_params)
            except _TrainingInterrupted as exc:
                raise KeyboardInterrupt(
                    f"training interrupted during epoch {len(self.history)} of "
                    f"{self.max_epochs}"
                ) from exc.__cause__
            return self

    def fit_loop(self, X: Any, y: Any = None, **fit_params: Any) -> ASDNet:
        # skorch's partial_fit swallows a KeyboardInterrupt raised here and
        # returns as if training had finished (so Ctrl+C would yield, and a
        # CLI save, a model trained for a fraction of its epochs). Passed
        # through skorch as another exception, it reaches partial_fit above
        # and is raised again as a KeyboardInterrupt.
        try:
            return super().fit_loop(X, y, **fit_params)
        except KeyboardInterrupt as exc:
            raise _TrainingInterrupted() from exc

    def on_batch_end(
        self, net: NeuralNet, batch: Any = None, training: bool = False, **kwargs: Any
    ) -> None:
        # A NaN or infinite loss poisons every weight at the next step and
        # only surfaced at the end of fit, deep inside KMeans; stop at once.
        # skorch reads the loss with .item() for its history anyway, so the
        # check adds no device synchronisation of its own.
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        loss = kwargs.get("loss")
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        self._raise_non_finite(
            f"The {'training' if training else 'validation'} loss became "
            f"{float(loss.detach().float().mean())} in epoch {len(self.history)} "
            f"(peak |sample| of the batch: {_batch_peak(batch):.3g})"
        )

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        # The last optimizer step of an epoch can turn the weights into
        # NaN/inf (lr=1e6) without any later loss to show it; one check per
        # epoch (a single device sync) catches that before scoring does.
        super().on_epoch_end(net, **kwargs)
        params = [
            p.detach()
            for part in (self.module_, self.criterion_)
            for p in part.parameters()
        ]
        if params and not bool(torch.stack([p.isfinite().all() for p in params]).all()):
            self._raise_non_finite(
                f"The network weights became NaN or infinite in epoch "
                f"{len(self.history)}"
            )

    def _raise_non_finite(self, what: str) -> None:
        raise NonFiniteLossError(
            f"{what}; training was stopped. Likely causes: a learning rate too "
            f"high (lr={self.lr}), or waveforms far outside [-1, 1] (scale the "
            "input, e.g. int16 PCM / 32768)."
        )

    def forward(self, X: Any, training: bool = False, device: str = "cpu") -> Any:
        # Inference on fixed weights (scoring), as opposed to the validation
        # passes inside fit, whose weights change every epoch: the compiled
        # and int8 copies are used only here.
        copies = getattr(self, "scoring_copies_", None)  # None: not initialised
        with self.runtime(), copies.scoring_call() if copies else nullcontext():
            return super().forward(X, training=training, device=device)

    # ------------------------------------------------------------ log-mels
    def _with_logmels(self, X: Any) -> Any:
        """``{"waves": X, "logmel": log-mels of X}``, or ``X`` if not applicable."""
        module = self.module_
        if not hasattr(module, "padded_logmel"):
            return X
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            return X
        batch = max(1, int(self.batch_size) if self.batch_size != -1 else len(X))
        mels = []
        with torch.no_grad():
            for start in range(0, len(X), batch):
                waves = to_tensor(X[start : start + batch], device=self.device)
                mels.append(module.padded_logmel(waves).cpu().numpy())
        return {"waves": X, "logmel": np.concatenate(mels)}

    # --------------------------------------------------------------- steps
    def initialize_module(self) -> ASDNet:
        super().initialize_module()
        # The inference copies of the previous module, if any, are dropped.
        self.scoring_copies_ = ScoringCopies()
        if self.compile_backbone:
            backbone = getattr(self.module_, "backbone", None)
            if isinstance(backbone, torch.nn.Module) and hasattr(backbone, "compile"):
                backbone.compile()
        return self

    def initialize_callbacks(self) -> ASDNet:
        super().initialize_callbacks()
        # Last, after RestoreBestWeights: it calibrates the weights scoring
        # will use.  It does nothing unless int8_scoring is on.
        self.callbacks_.append(("int8_calibration", Int8Calibration().initialize()))
        return self

    def _uncompile(self) -> None:
        """Drop the compiled training backbone (its compile failed)."""
        # nn.Module.compile() stores the compiled call here; None restores the
        # eager call (the attribute is also dropped when pickling).
        self.module_.backbone._compiled_call_impl = None

    def to_device(self, x: Any) -> Any:
        """``x`` (a tensor, a mapping of them, or an array) on the net's device.

        Pinned CPU tensors (``pin_memory`` loaders on CUDA) are copied with
        ``non_blocking=True``, so the copy overlaps the work already queued
        on the GPU.
        """
        if isinstance(x, Mapping):
            return {key: self.to_device(value) for key, value in x.items()}
        if isinstance(x, torch.Tensor):
            return x.to(self.device, non_blocking=x.is_pinned())
        return to_tensor(x, device=self.device)

    def infer(self, x: Any, **fit_params: Any) -> torch.Tensor:
        x = self.to_device(x)
        with self.autocast():
            if not self._backbone_compiled():
                return super().infer(x, **fit_params)

            def eager() -> torch.Tensor:
                self._uncompile()
                return super(ASDNet, self).infer(x, **fit_params)

            return self.scoring_copies_.run(
                "backbone", lambda: super(ASDNet, self).infer(x, **fit_params), eager
            )

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if is_croppable(Xi, self.crop_samples):
            Xi = random_crops(self.to_device(Xi), self.crop_samples, self._hop())
        if self.criterion_.uses_mixup and self.mixup_alpha > 0 and len(yi) > 1:
            y = to_tensor(yi, device=self.device)
            # Drawn from torch's generator so that the fit's seed controls it.
            lam = float(
                torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample()
            )
            perm = torch.randperm(len(y)).to(self.device)
            y_pred = self.infer(Xi, mixup=(perm, lam), **fit_params)
            loss = self.criterion_(y_pred, y, y[perm], lam)
        else:
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler = self._grad_scaler()
        (loss if scaler is None else scaler.scale(loss)).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        scaler = self._grad_scaler()
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # skorch's step passes a closure to optimizer.step, which GradScaler
        # does not accept: the same sequence, written out with the scaler.
        step_accumulator = self.get_train_step_accumulator()
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        step_accumulator.store_step(step)
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        for optimizer in optimizers:
            scaler.unscale_(optimizer)  # callbacks (e.g. clipping) see true grads
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        return step_accumulator.get_step()

    # ------------------------------------------------------------- int8
    def _check_int8(self) -> None:
        """Fail before training when int8 scoring cannot run here."""
        if not self.int8_scoring:
            return
        if torch.device(self.device).type != "cpu":
            raise ValueError(
                f"int8_scoring runs on the CPU only, but device={self.device!r}; "
                "set int8_scoring=False (on a GPU, bfloat16/float16 autocast is "
                "the fast path) or device='cpu'."
            )
        if not int8_available():
            raise ValueError(
                "int8_scoring needs torch's oneDNN quantised convolution "
                "(torch.ops.onednn.qconv_pointwise), which this torch build "
                "lacks; set int8_scoring=False."
            )

    def _backbone_compiled(self) -> bool:
        backbone = getattr(self.module_, "backbone", None)
        return getattr(backbone, "_compiled_call_impl", None) is not None

    def _hop(self) -> int:
        """The log-mel hop of the module (crops start on it), 1 without one."""
        logmel = getattr(self.module_, "logmel", None)
        return int(getattr(logmel, "hop_length", 1))

    def evaluation_step(self, batch: Any, training: bool = False) -> torch.Tensor:
        Xi, yi = unpack_data(batch)
        if not is_croppable(Xi, self.crop_samples):
            return self._evaluate_clips(batch, training)
        # A cached log-mel (validation during fit) covers the whole clip; the
        # crops' own log-mels are computed instead.
        waves = self.to_device(Xi["waves"] if isinstance(Xi, Mapping) else Xi)
        crops = grid_crops(waves, self.crop_samples)
        embeddings = self._evaluate_clips((crops, yi), training)
        return embeddings.reshape(len(waves), -1, embeddings.shape[-1])

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        if isinstance(y_pred, torch.Tensor) and y_pred.ndim == 3:
            # Validation on crops: every crop is scored against its clip's label.
            n_crops = y_pred.shape[1]
            y_pred = y_pred.flatten(0, 1)
            y_true = to_tensor(y_true, device=y_pred.device).repeat_interleave(n_crops)
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def _evaluate_clips(self, batch: Any, training: bool = False) -> torch.Tensor:
        """Embeddings of a batch of whole clips (or of crops made into clips)."""
        if training or not hasattr(self.module_, "images"):
            return super().evaluation_step(batch, training=training)
        plan = self.scoring_copies_.plan(
            self.module_,
            fold=self.fold_batchnorm,
            compile=self.compile_backbone,
            int8=self.int8_scoring,
            calibration=getattr(self, "int8_calibration_", None),
        )
        if plan is None:
            return super().evaluation_step(batch, training=training)
        self.check_is_fitted()
        Xi, _ = unpack_data(batch)
        with torch.no_grad(), self.autocast():
            self._set_training(False)
            return self.scoring_copies_.embed(
                plan, self.module_, self.module_inputs(Xi)
            )

    def module_inputs(self, Xi: Any) -> dict[str, Any]:
        """The module's keyword inputs for a batch ``Xi``, on the device."""
        x = self.to_device(Xi)
        return dict(x) if isinstance(x, Mapping) else {"waves": x}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # (scoring_copies_ pickles as its failure record only: the copies are
        # caches, and the int8 copy is rebuilt from int8_calibration_.)
        # Holds device tensors; a new one is made if training resumes.
        state.pop("grad_scaler_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Nets pickled before the speed switches existed load as plain fp32.
        # The defaults are read from the signature: a new option is one
        # keyword of __init__, not a second table to keep in step.
        for name, parameter in inspect.signature(ASDNet.__init__).parameters.items():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                state.setdefault(name, parameter.default)
        # Nets pickled before ScoringCopies held its caches as attributes.
        for old in (
            "folded_backbone_",
            "compiled_scoring_backbone_",
            "compiled_images_",
            "int8_backbone_",
            "_scoring",
            "_images_compile_failed_",
        ):
            state.pop(old, None)
        failed = state.pop("_compile_failed_", False)
        if "module_" in state and "scoring_copies_" not in state:
            copies = ScoringCopies()
            copies.failed = {"backbone"} if failed else set()
            state["scoring_copies_"] = copies
        super().__setstate__(state)


class RestoreBestWeights(Callback):
    """Keep, in memory, the module and criterion weights of the epoch with the
    lowest ``monitor`` value, and load them when training ends.

    Choi & Choi select the model by the lowest cross-entropy on held-out normal
    clips; this callback does it without writing checkpoint files.
    """

    def __init__(self, monitor: str = "valid_loss") -> None:
        self.monitor = monitor

    def initialize(self) -> RestoreBestWeights:
        self.best_score_ = np.inf
        self.best_epoch_: int | None = None
        self.best_state_: dict[str, dict[str, torch.Tensor]] | None = None
        return self

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        score = net.history[-1, self.monitor]
        if score < self.best_score_:
            self.best_score_ = score
            self.best_epoch_ = len(net.history)
            self.best_state_ = {
                "module": copy.deepcopy(net.module_.state_dict()),
                "criterion": copy.deepcopy(net.criterion_.state_dict()),
            }

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_["module"])
            net.criterion_.load_state_dict(self.best_state_["criterion"])
            # The copies are not needed once loaded; do not pickle them.
            self.best_state_ = None
