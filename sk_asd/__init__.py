"""sk_asd: machine anomalous sound detection for scikit-learn.

The detector trains the TASTgram-MFN network with the Noisy-ArcMix loss
(Choi & Choi, ICASSP 2024) on raw waveforms of normal machine sounds.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["AnomalousSoundDetector", "__version__"]

#: Modules that register model-file codecs with :mod:`sk_asd.io.model` when
#: imported.  ``sk_asd.io`` imports them by these names when it first needs a
#: codec, so that it never imports the estimator layer above it, and
#: ``import sk_asd`` (the ``sk-asd`` command starts with it) stays free of
#: torch until the detector is used.
CODEC_MODULES: tuple[str, ...] = ("sk_asd.estimator",)


def __getattr__(name: str) -> Any:
    # The detector is imported on first use: torch takes seconds to import,
    # and ``sk-asd --help`` should answer at once.
    if name == "AnomalousSoundDetector":
        from sk_asd.estimator.detector import AnomalousSoundDetector

        return AnomalousSoundDetector
    raise AttributeError(f"module 'sk_asd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "AnomalousSoundDetector"])
