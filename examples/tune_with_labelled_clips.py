"""
Tune the detector on labelled validation clips
==============================================

The detector learns from normal clips only, but its settings are best
chosen by the figure it will be judged on: the AUC of normal against
anomalous clips, per machine ID. When some clips with known anomaly labels
are at hand (the labelled test clips of a DCASE development set, or the
synthetic ones here), :class:`~sklearn.model_selection.GridSearchCV` can
tune the detector on them with two pieces from :mod:`sk_asd.model_selection`:

* :class:`~sk_asd.model_selection.NormalOnlyTrainSplit` trains every fold on
  normal clips only and validates it on normal and anomalous clips of the
  same machines;
* :func:`~sk_asd.model_selection.anomaly_auc_scorer` scores a fold by the
  mean per-machine AUC of ``-decision_function``.

Both receive the labels, ``is_anomaly``, through scikit-learn's metadata
routing, which has to be switched on. ``y`` is the machine IDs, as in
``AnomalousSoundDetector.fit``.

Here two options of the training criterion are tuned, ``margin`` (the
ArcFace angular margin) and ``mixup_alpha``: both are keys of the detector's
``loss_params`` dict, so the grid lists whole dicts (keys left out keep
their defaults).
The full run trains 12 detectors for the search, about three minutes on
one CPU core (mean AUC about 0.7 on these synthetic machines); run
``python tune_with_labelled_clips.py --quick`` (or set
``SK_ASD_EXAMPLE_QUICK=1``) for tiny settings that finish in seconds and
only show the mechanics.
"""

import os
import sys

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sk_asd import AnomalousSoundDetector
from sk_asd.datasets import make_machine_sounds
from sk_asd.model_selection import NormalOnlyTrainSplit, anomaly_auc_scorer

QUICK = "--quick" in sys.argv or os.environ.get("SK_ASD_EXAMPLE_QUICK") == "1"
if QUICK:  # tiny clips and networks, only to show that everything runs
    DATA = dict(n_normal_train=6, n_normal_test=4, n_anomalous_test=4, duration=0.25)
    MODEL = dict(max_epochs=2, n_mels=32, batch_size=16)
else:
    DATA = dict(n_normal_train=30, n_normal_test=10, n_anomalous_test=10, duration=1.0)
    MODEL = dict(max_epochs=10, n_mels=64)

# %%
# The labels reach the splitter and the scorer only with routing enabled.
sklearn.set_config(enable_metadata_routing=True)

# Pool the normal training clips with the labelled test clips; the splitter
# keeps every anomalous clip out of the training folds.
data = make_machine_sounds(n_machines=3, random_state=0, **DATA)
X = np.concatenate([data.X_train, data.X_test])
machine_ids = np.concatenate([data.machine_ids_train, data.machine_ids_test])
is_anomaly = np.concatenate([np.zeros(len(data.X_train), int), data.is_anomaly_test])

# The k-means back-end scores best after short CPU training runs like these.
detector = AnomalousSoundDetector(
    scoring="kmeans", device="cpu", random_state=0, **MODEL
)
search = GridSearchCV(
    detector,
    {
        "loss_params": [
            {"margin": margin, "mixup_alpha": alpha}
            for margin in (0.3, 0.7)
            for alpha in (0.0, 0.5)
        ]
    },
    scoring=anomaly_auc_scorer(),  # mean per-machine AUC, anomalies positive
    cv=NormalOnlyTrainSplit(n_splits=2 if QUICK else 3, shuffle=True, random_state=0),
    refit=False,  # a refit here would train on the anomalous clips too
)
search.fit(X, machine_ids, is_anomaly=is_anomaly)  # y = machine IDs

# %%
# The cross-validation table, best first, and the winning settings.
results = search.cv_results_
print("rank  margin  mixup_alpha  mean AUC  std AUC")
for i in np.argsort(results["rank_test_score"], kind="stable"):
    params = results["params"][i]["loss_params"]
    print(
        f"{results['rank_test_score'][i]:>4}  {params['margin']:>6}  "
        f"{params['mixup_alpha']:>11}  {results['mean_test_score'][i]:>8.3f}  "
        f"{results['std_test_score'][i]:>7.3f}"
    )
print(f"best params: {search.best_params_} (mean AUC {search.best_score_:.3f})")

# %%
# Train the chosen settings on the normal clips alone.
normal = is_anomaly == 0
best = clone(detector).set_params(**search.best_params_)
best.fit(X[normal], machine_ids[normal])
