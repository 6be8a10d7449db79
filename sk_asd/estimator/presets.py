"""Training recipes: what ``"auto"`` parameters of the detector resolve to.

``recipe="auto"`` (default) is the recipe chosen by measurement for the data
our users have: tens to hundreds of clips per machine and a CPU
(``benchmarks/bench_quality.py``).  ``recipe="paper"`` is Choi & Choi's
(ICASSP 2024) for DCASE-size data on a GPU.  A parameter set explicitly
always wins over its recipe's value.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RECIPES", "auto_epochs"]

#: Training crops (clips and their speed-changed copies, once per epoch)
#: that ``max_epochs="auto"`` aims at with ``recipe="auto"``: 20 epochs for
#: 160 clips with four speed copies each, about a minute on two CPU cores.
CROP_BUDGET = 16000

RECIPES: dict[str, dict[str, Any]] = {
    # Small data, CPU: short random crops, a high learning rate, 64 mels,
    # every machine also played 0.9-1.1x as fast as pseudo machine IDs (a
    # richer auxiliary task), and the fusion of the embedding with clip
    # statistics.  Measured against the paper's settings and PyOD's audio
    # detectors in bench_quality.py.
    "auto": {
        "max_epochs": None,  # from the data size, see auto_epochs
        "lr": 1e-3,
        "batch_size": 32,
        "n_mels": 64,
        "crop_seconds": 0.5,
        "scoring": "fusion",
        "pseudo_speeds": (0.9, 0.95, 1.05, 1.1),
    },
    # Choi & Choi: whole clips, AdamW at 1e-4 for 300 epochs, batch 64,
    # 128 mels, the margin cross-entropy as the score.  One machine alone
    # still gets two speed-changed pseudo IDs (a one-class softmax learns
    # nothing).
    "paper": {
        "max_epochs": 300,
        "lr": 1e-4,
        "batch_size": 64,
        "n_mels": 128,
        "crop_seconds": None,
        "scoring": "nll",
        "pseudo_speeds": (),
    },
}

#: Speed factors of the pseudo machine IDs when a fit has one machine and
#: its recipe adds none.
SINGLE_MACHINE_SPEEDS = (0.9, 1.1)


def auto_epochs(n_training_clips: int) -> int:
    """Epochs for ``max_epochs="auto"``: about :data:`CROP_BUDGET` crops.

    Between 10 and 100 epochs: small sets get more passes, large ones fewer
    (each epoch of a large set already holds many steps).
    """
    return int(min(100, max(10, math.ceil(CROP_BUDGET / max(n_training_clips, 1)))))
