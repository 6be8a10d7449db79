"""The copies of the network that scoring runs: folded, compiled, int8.

Scoring a fitted network never changes its weights, so it can run copies
of the backbone prepared for inference: BatchNorm folded into the
convolutions (:func:`~sk_asd.nn.mobilefacenet.fold_batchnorm`), that copy
compiled with ``torch.compile``, and a copy whose 1x1 convolutions run in
int8 (:mod:`sk_asd.nn.quantization`).  :class:`ScoringCopies` owns them all
with **one cache key** (the identity and version counter of every weight and
buffer of the backbone: every optimizer step or ``load_state_dict`` changes
it, and then every copy is rebuilt) and **one fallback path**
(:meth:`ScoringCopies.run`: a compiled copy that fails is recorded, a
warning names it, and its eager twin runs from then on).

:class:`Int8Calibration` is the skorch callback that measures the input
ranges of the int8 convolutions at the end of every ``fit``/``partial_fit``.

Which copy a call uses (:meth:`ScoringCopies.plan`):

- validation passes inside ``fit`` (weights change every epoch): the folded
  backbone when ``fold_batchnorm`` is on and the training backbone is not
  compiled, otherwise skorch's own step;
- scoring (``forward`` on fitted weights): the int8 copy (compiled) when
  ``int8_scoring`` is on and calibrated for these weights, else the compiled
  folded copy when ``compile_backbone`` is on, else the folded copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.dataset import unpack_data

from sk_asd.estimator.crops import grid_crops, is_croppable
from sk_asd.nn.mobilefacenet import MobileFaceNet, fold_batchnorm
from sk_asd.nn.quantization import (
    calibrate_input_ranges,
    int8_available,
    quantize_backbone,
)

__all__ = [
    "BACKBONE_CHUNK_PIXELS",
    "INT8_CALIBRATION_CLIPS",
    "Int8Calibration",
    "Plan",
    "ScoringCopies",
    "in_chunks",
    "weights_fingerprint",
]

#: Scoring on a CPU runs the backbone on sub-batches of about this many image
#: pixels (8 ten-second clips of 128 mels x 313 frames): the widest
#: activations of such a sub-batch stay near 20 MB, so the memory-bound
#: depthwise convolutions and activations work from the cache instead of RAM.
#: Measured on 2 cores, 3 alternating runs: 6.8-7.2 vs 7.0-7.7 ms per clip
#: for sub-batches of 8 vs the whole batch of 16 with the compiled backbone
#: (sub-batches of 4: 7.0-7.4), 2.5 % less eager; a later in-process
#: comparison put 8 and 16 within its noise.
#: Embeddings do not depend on the sub-batch (no BatchNorm statistics at
#: inference).
BACKBONE_CHUNK_PIXELS = 8 * 128 * 313

#: Training clips, spread evenly over the training set, whose activations set
#: the input ranges of int8 scoring.
INT8_CALIBRATION_CLIPS = 64

#: The compiled parts and the names their warnings give them.
_PARTS = {
    "backbone": "backbone",
    "scoring": "scoring backbone",
    "int8": "int8 scoring backbone",
    "front_end": "scoring front end",
}


def chunk_size(images: torch.Tensor) -> int:
    """Images per CPU sub-batch of about :data:`BACKBONE_CHUNK_PIXELS`."""
    return max(1, BACKBONE_CHUNK_PIXELS // (images.shape[-2] * images.shape[-1]))


def in_chunks(backbone: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor):
    """``backbone(images)``, on CPU sub-batches of :data:`BACKBONE_CHUNK_PIXELS`."""
    chunk = chunk_size(images)
    if images.device.type != "cpu" or len(images) <= chunk:
        return backbone(images)
    return torch.cat([backbone(part) for part in images.split(chunk)])


def weights_fingerprint(module: torch.nn.Module) -> tuple[float, ...]:
    """Sum of every floating-point tensor of ``module``'s state, in float64.

    Survives pickling (unlike tensor ids and version counters), so a stored
    calibration can tell whether the weights are still those it saw.
    """
    return tuple(
        float(t.detach().double().sum())
        for t in module.state_dict().values()
        if t.is_floating_point()
    )


def _weights_key(backbone: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    # Every in-place update (optimizer step, load_state_dict) bumps a
    # tensor's version counter: the key changes whenever the weights do.
    return tuple(
        (id(t), t._version) for t in (*backbone.parameters(), *backbone.buffers())
    )


@dataclass(frozen=True)
class Plan:
    """How one inference batch is embedded.

    Attributes
    ----------
    backbone : callable
        Runs the backbone on the stacked images.
    eager : callable
        What runs instead when ``backbone`` is a compiled copy that fails
        (``backbone`` itself for an eager copy).
    part : str
        The key of ``backbone`` in :data:`_PARTS` (for the failure record).
    compiled_front_end : bool
        Whether the images are made by the compiled front end.
    """

    backbone: Callable[[torch.Tensor], torch.Tensor]
    eager: Callable[[torch.Tensor], torch.Tensor]
    part: str
    compiled_front_end: bool


class ScoringCopies:
    """The inference copies of a network's backbone and front end.

    Holds no fitted state of its own: everything is rebuilt on demand from
    the module, so a pickle keeps only the record of which compiled parts
    failed (``failed``).

    Attributes
    ----------
    failed : set of str
        Compiled parts that failed on this platform (keys of ``_PARTS``);
        their eager twins run from then on.
    scoring : bool
        ``True`` inside :meth:`scoring_call` (the weights are fixed): the
        compiled and int8 copies are used only then, never for the
        validation passes inside ``fit``.
    """

    def __init__(self) -> None:
        self.failed: set[str] = set()
        self.scoring = False
        self._key: tuple[tuple[int, int], ...] | None = None
        self._copies: dict[str, Any] = {}
        self._front_end: tuple[torch.nn.Module, Callable[..., Any]] | None = None

    # ------------------------------------------------------------ caching
    def _cache(self, backbone: torch.nn.Module) -> dict[str, Any]:
        """The copies of ``backbone``'s current weights (emptied on change)."""
        key = _weights_key(backbone)
        if key != self._key:
            self._key, self._copies = key, {}
        return self._copies

    def cached(self, backbone: torch.nn.Module) -> dict[str, Any]:
        """The copies built so far for ``backbone``'s current weights
        (``"folded"``, ``"compiled"``, ``"int8"``), without building any."""
        return dict(self._cache(backbone))

    def clear(self) -> None:
        """Forget every copy (a new module); failures stay recorded."""
        self._key, self._copies, self._front_end = None, {}, None

    def folded(self, backbone: MobileFaceNet) -> MobileFaceNet:
        """The BatchNorm-folded copy of ``backbone``."""
        cache = self._cache(backbone)
        if "folded" not in cache:
            cache["folded"] = fold_batchnorm(backbone)
        return cache["folded"]

    def compiled(self, backbone: MobileFaceNet) -> Callable[..., Any]:
        """The folded copy, compiled for scoring (no autograd).

        The elementwise work between the convolutions (bias, PReLU, residual
        adds, dtype casts) runs in generated, fused kernels.  The weights are
        inputs of the compiled graph, so the wrapper made for new weights
        reuses the compiled code instead of compiling again.

        Inductor's weight freezing (``options={"freezing": True}``) is not
        used: ``torch.compile`` options reach Inductor but not the tracer,
        which decides whether weights become constants, so the option alone
        changes nothing (torch 2.13); switched on globally, it gave no
        measurable gain here and would recompile after every weight change.
        """
        folded = self.folded(backbone)
        cache = self._cache(backbone)
        if "compiled" not in cache:
            cache["compiled"] = torch.compile(folded)
        return cache["compiled"]

    def int8(
        self, backbone: MobileFaceNet, calibration: Any
    ) -> tuple[Callable[..., Any], torch.nn.Module] | None:
        """``(compiled, eager)`` int8 copies, or ``None`` (warned once per
        weights) when ``calibration`` does not belong to these weights or
        int8 cannot run here.

        The int8 copy is always compiled: run eagerly, quantising each
        input is a pass of its own over memory, and the eager int8 backbone
        measured slower than the eager bfloat16 one.
        """
        folded = self.folded(backbone)
        cache = self._cache(backbone)
        # Keyed on the calibration too: every fit/partial_fit makes a new one.
        if "int8" in cache and cache["int8"][0] is calibration:
            return cache["int8"][1]
        problem = None
        if calibration is None or calibration[0] != weights_fingerprint(backbone):
            problem = (
                "the weights changed since the last fit/partial_fit calibrated "
                "the int8 input ranges; scoring in floating point until the next "
                "fit or partial_fit."
            )
        elif not int8_available():  # e.g. a model loaded under another torch build
            problem = (
                "this torch build lacks oneDNN's quantised convolution; scoring "
                "in floating point."
            )
        if problem is not None:
            warnings.warn(f"int8_scoring: {problem}", RuntimeWarning, stacklevel=4)
            # Cached for these weights: checked and warned once, not per batch.
            cache["int8"] = (calibration, None)
            return None
        quantized = quantize_backbone(folded, calibration[1])
        cache["int8"] = (calibration, (torch.compile(quantized), quantized))
        return cache["int8"][1]

    def front_end(self, module: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """``module.images`` for compiled scoring.

        The log-mel runs eagerly (its float64 fallback depends on the data);
        everything after it (the Tgram's normalisations and activations, the
        temporal attention, the stacking) runs in one compiled graph.  On 2
        cores that part took 0.62-0.64 instead of 0.77-0.78 ms per 10 s clip
        (bfloat16, 16 clips).  The module's weights are graph inputs, so one
        compiled function serves every weight update of the same module.
        """
        if not hasattr(module, "padded_logmel"):
            return module.images
        if self._front_end is None or self._front_end[0] is not module:
            self._front_end = (module, torch.compile(module.images))
        compiled = self._front_end[1]

        def images(**kwargs: Any) -> torch.Tensor:
            if kwargs.get("logmel") is None:
                kwargs = {**kwargs, "logmel": module.padded_logmel(kwargs["waves"])}
            return compiled(**kwargs)

        return images

    # ----------------------------------------------------------- choosing
    def plan(
        self,
        module: torch.nn.Module,
        *,
        fold: bool,
        compile: bool,
        int8: bool,
        calibration: Any = None,
    ) -> Plan | None:
        """The copies for the next batch, or ``None`` for skorch's own step.

        Parameters
        ----------
        module : torch.nn.Module
            The network (a TASTgramMFN: a MobileFaceNet ``backbone`` and an
            ``images`` method); anything else gets ``None``.
        fold, compile, int8 : bool
            The net's ``fold_batchnorm``, ``compile_backbone`` and
            ``int8_scoring``.
        calibration : tuple or None
            The net's ``int8_calibration_``.
        """
        backbone = getattr(module, "backbone", None)
        if not isinstance(backbone, MobileFaceNet) or not hasattr(module, "images"):
            return None
        # A compiled training backbone (validation inside fit) fuses
        # BatchNorm into the activation kernels itself; a folded copy would
        # be a new module to compile again after every weight update.
        training_compiled = getattr(backbone, "_compiled_call_impl", None) is not None
        front_end = "front_end" not in self.failed
        if self.scoring and int8:
            copies = self.int8(backbone, calibration)
            if copies is not None:
                compiled, eager = copies
                return Plan(compiled, eager, "int8", front_end)
        if self.scoring and compile and not self.failed & {"backbone", "scoring"}:
            return Plan(
                self.compiled(backbone), self.folded(backbone), "scoring", front_end
            )
        if fold and not training_compiled:
            folded = self.folded(backbone)
            return Plan(folded, folded, "folded", False)
        return None

    # ------------------------------------------------------------ running
    @contextmanager
    def scoring_call(self) -> Iterator[None]:
        """Mark a block as scoring on fixed weights (``forward``)."""
        previous, self.scoring = self.scoring, True
        try:
            yield
        finally:
            self.scoring = previous

    def run(
        self,
        part: str,
        compiled: Callable[..., Any],
        eager: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """``compiled(*args, **kwargs)``; if it fails, record ``part`` as
        failed, warn, and return ``eager(*args, **kwargs)``.

        The one fallback path of every compiled copy: ``torch.compile``
        fails late (at the first call) and with many exception types.
        """
        if compiled is eager or part in self.failed:
            return eager(*args, **kwargs)
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # torch.compile failures have many types
            self.failed.add(part)
            warnings.warn(
                f"torch.compile of the {_PARTS.get(part, part)} failed "
                f"({type(exc).__name__}: {exc}); continuing without it.",
                RuntimeWarning,
                stacklevel=3,
            )
            return eager(*args, **kwargs)

    def embed(
        self, plan: Plan, module: torch.nn.Module, inputs: Mapping[str, Any]
    ) -> torch.Tensor:
        """Embeddings of a batch of module ``inputs`` along ``plan``."""
        if plan.compiled_front_end:
            images = self.run(
                "front_end", self.front_end(module), module.images, **inputs
            )
        else:
            images = module.images(**inputs)
        return self.run(
            plan.part,
            partial(in_chunks, plan.backbone),
            partial(in_chunks, plan.eager),
            images,
        )

    def __getstate__(self) -> dict[str, Any]:
        # Copies are caches, rebuilt on demand (and oneDNN's packed int8
        # weights do not pickle); what failed on this platform is kept.
        return {"failed": set(self.failed)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()
        self.failed = set(state.get("failed", ()))


class Int8Calibration(Callback):
    """Measure the input ranges of the int8 convolutions when training ends.

    Runs at ``on_train_end`` of every ``fit``/``partial_fit`` of a net with
    ``int8_scoring`` on, after every other callback (so after
    :class:`~sk_asd.estimator.net.RestoreBestWeights` has loaded the weights
    scoring will use), on :data:`INT8_CALIBRATION_CLIPS` training clips
    spread evenly over the training set: normal clips, so that anomalous
    ones are quantised on the same grid.  The result, with a fingerprint of
    the weights it belongs to, is the net's ``int8_calibration_``.
    """

    def on_train_end(self, net: Any, X: Any = None, y: Any = None, **kwargs: Any):
        if not getattr(net, "int8_scoring", False) or X is None:
            return
        module = net.module_
        backbone = getattr(module, "backbone", None)
        if not isinstance(backbone, MobileFaceNet) or not hasattr(module, "images"):
            raise ValueError(
                "int8_scoring needs a module with a MobileFaceNet backbone and "
                "an images() method (TASTgramMFN)."
            )
        folded = net.scoring_copies_.folded(backbone)
        with torch.no_grad(), net.autocast():
            module.eval()
            ranges = calibrate_input_ranges(folded, calibration_images(net, X, y))
        net.int8_calibration_ = (weights_fingerprint(backbone), ranges)


def calibration_images(net: Any, X: Any, y: Any) -> Iterator[torch.Tensor]:
    """Backbone inputs of the calibration clips, as scoring makes them."""
    dataset = net.get_dataset(X, y)
    n = len(dataset)
    indices = np.unique(
        np.linspace(0, n - 1, min(n, INT8_CALIBRATION_CLIPS)).round().astype(int)
    )
    subset = torch.utils.data.Subset(dataset, indices.tolist())
    for batch in net.get_iterator(subset, training=False):
        Xi, _ = unpack_data(batch)
        if is_croppable(Xi, net.crop_samples):
            # As evaluation_step does: the crops scoring will embed.
            waves = net.to_device(Xi["waves"] if isinstance(Xi, Mapping) else Xi)
            Xi = grid_crops(waves, net.crop_samples)
        images = net.module_.images(**net.module_inputs(Xi))
        yield from images.split(chunk_size(images))
