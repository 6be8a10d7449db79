"""Save per-machine ROC curves and embedding angles as PNGs (needs matplotlib).

``python examples/plot_evaluation.py [OUT_DIR]`` (default: the current folder;
with ``SK_ASD_EXAMPLE_QUICK=1``, a tiny run into a temporary folder).
"""

import os
import sys
import tempfile
from pathlib import Path

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from sk_asd.plotting import plot_angle_histogram, plot_roc

quick = os.environ.get("SK_ASD_EXAMPLE_QUICK") == "1"
default_dir = tempfile.mkdtemp() if quick else "."
out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else default_dir)
out_dir.mkdir(parents=True, exist_ok=True)
data = make_machine_sounds(
    n_machines=3,
    n_normal_train=8 if quick else 40,
    n_normal_test=4 if quick else 20,
    n_anomalous_test=4 if quick else 20,
    duration=0.5 if quick else 2.0,
    anomaly_strength=2.0,
    random_state=0,
)
det = AnomalousSoundDetector(
    max_epochs=1 if quick else 20,
    lr=1e-3,
    n_mels=32 if quick else 64,
    scoring="kmeans",  # the back-end to use on small data (see the README)
    random_state=0,
)
det.fit(data.X_train, data.machine_ids_train)

# DCASE convention for the ROC: anomaly score = -score_samples (higher = worse).
anomaly_score = -det.score_samples(data.X_test, machine_ids=data.machine_ids_test)
ax = plot_roc(data.is_anomaly_test, anomaly_score, data.machine_ids_test)
ax.figure.savefig(out_dir / "roc.png", dpi=120)
# Angles to the class centres: how compact the margin loss made each machine.
ax = plot_angle_histogram(det, data.X_test, data.is_anomaly_test, data.machine_ids_test)
ax.figure.savefig(out_dir / "angles.png", dpi=120)
print(f"saved {out_dir / 'roc.png'} and {out_dir / 'angles.png'}")
