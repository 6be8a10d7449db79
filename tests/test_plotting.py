"""Tests for sk_asd.plotting and ``sk-asd evaluate --plot``: what the figures show."""

from __future__ import annotations

import doctest
import re
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

import sk_asd.plotting  # noqa: E402
from sk_asd import AnomalousSoundDetector  # noqa: E402
from sk_asd.cli.main import main  # noqa: E402
from sk_asd.datasets import make_machine_sounds  # noqa: E402
from sk_asd.metrics import auc_pauc, dcase2020_table  # noqa: E402
from sk_asd.plotting import (  # noqa: E402
    plot_angle_histogram,
    plot_roc,
    plot_score_histogram,
    plot_training_curve,
    require_matplotlib,
)
from tests.conftest import FAST  # noqa: E402
from tests.test_cli import FAST_TRAIN, _error_line, _read_csv, _write_dcase2020  # noqa: E402

HINT = 'pip install "sk-asd[plot]"'


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    # 2 machines; test: 3 normal + 3 anomalous clips each.
    return make_machine_sounds(
        2,
        n_normal_train=6,
        n_normal_test=3,
        n_anomalous_test=3,
        duration=0.25,
        anomaly_strength=2.0,
        random_state=0,
    )


@pytest.fixture(scope="module")
def detector(data):
    det = AnomalousSoundDetector(**FAST)
    return det.fit(data.X_train, data.machine_ids_train)


def _curves(ax):
    """The ROC curves: the labelled lines (the chance diagonal is '_chance')."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def _legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def _bars(ax):
    """Bar heights of each histogram, by legend label."""
    return {
        c.get_label(): np.array([bar.get_height() for bar in c]) for c in ax.containers
    }


def _x_span(ax, artist):
    """x extent of an artist in data coordinates."""
    x0, x1 = artist.get_window_extent().intervalx
    return ax.transData.inverted().transform([(x0, 0), (x1, 0)])[:, 0]


# ------------------------------------------------------------------- ROC
def _scores(seed=0):
    rng = np.random.RandomState(seed)
    ids = np.repeat(["id_04", "id_00", "id_02"], 20)
    labels = np.tile(np.repeat([0, 1], 10), 3)
    scores = rng.randn(60) + labels * np.repeat([0.5, 1.5, 3.0], 20)
    return labels, scores, ids


@pytest.mark.parametrize("max_fpr", [0.1, 0.25])
def test_roc_one_curve_per_machine_with_the_metrics_in_the_legend(max_fpr):
    labels, scores, ids = _scores()
    ax = plot_roc(labels, scores, ids, max_fpr=max_fpr)
    curves = _curves(ax)
    assert [c.get_label().split(":")[0] for c in curves] == ["id_00", "id_02", "id_04"]
    texts = _legend_texts(ax)
    for curve in curves:
        machine = curve.get_label().split(":")[0]
        keep = ids == machine
        auc, pauc = auc_pauc(labels[keep], scores[keep], max_fpr=max_fpr)
        assert f"{machine}: AUC {auc:.3f}, pAUC {pauc:.3f}" in texts
        fpr, tpr, _ = roc_curve(labels[keep], scores[keep])
        np.testing.assert_allclose(curve.get_xdata(), fpr)
        np.testing.assert_allclose(curve.get_ydata(), tpr)

    (band,) = [p for p in ax.patches if p.get_label().startswith("pAUC region")]
    np.testing.assert_allclose(_x_span(ax, band), [0.0, max_fpr], atol=1e-9)
    assert texts[-1] == band.get_label()
    assert f"{max_fpr:g}" in band.get_label()
    # The band covers the whole height of the plot.
    y0, y1 = band.get_window_extent().intervaly
    np.testing.assert_allclose([y0, y1], ax.bbox.intervaly)


def test_roc_legend_matches_the_dcase_table():
    labels, scores, ids = _scores(seed=1)
    table = dcase2020_table(labels, scores, None, ids)
    texts = _legend_texts(plot_roc(labels, scores, ids))
    for machine in ("id_00", "id_02", "id_04"):
        row = table[("-", machine)]
        assert f"{machine}: AUC {row['AUC']:.3f}, pAUC {row['pAUC']:.3f}" in texts


def test_roc_draws_into_the_given_axes_and_pools_without_ids():
    labels, scores, _ = _scores()
    _, (left, right) = plt.subplots(1, 2)
    assert plot_roc(labels, scores, None, ax=right) is right
    assert not left.get_lines()
    (curve,) = _curves(right)
    auc, pauc = auc_pauc(labels, scores)
    assert curve.get_label() == f"all clips: AUC {auc:.3f}, pAUC {pauc:.3f}"


def test_roc_refuses_bad_input_before_drawing():
    labels, scores, ids = _scores()
    only_normal = labels.copy()
    only_normal[ids == "id_02"] = 0
    with pytest.raises(ValueError, match="'id_02' has 20 normal and 0 anomalous"):
        plot_roc(only_normal, scores, ids)
    with pytest.raises(ValueError, match=r"\(y == -1\)"):
        plot_roc(np.where(labels == 1, -1, 1), scores, ids)
    with pytest.raises(ValueError, match="one ID per clip"):
        plot_roc(labels, scores, ids[:-1])
    assert plt.get_fignums() == []


# ------------------------------------------------------------ histograms
def test_angle_histogram_counts_every_clip_at_its_angle(detector, data):
    X, y, ids = data.X_test, data.is_anomaly_test, data.machine_ids_test
    ax = plot_angle_histogram(detector, X, y, ids, bins=8)
    bars = _bars(ax)
    assert len(bars) == 2
    normal, anomalous = bars.values()
    assert normal.sum() == np.sum(y == 0) and anomalous.sum() == np.sum(y == 1)
    assert "degrees" in ax.get_xlabel()

    # The angles, computed here from the embeddings and the margin-head rows
    # in float64 (the detector works in float32: fixed 2-degree bins keep the
    # counts comparable, and the medians agree to the digits shown).
    emb = detector.transform(X)
    centres = detector.net_.criterion_.centres().detach().double().numpy()
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = centres[np.searchsorted(detector.machine_ids_, ids)]
    angles = np.degrees(np.arccos(np.clip(np.sum(emb * own, axis=1), -1, 1)))
    edges = np.linspace(0.0, 180.0, 91)
    ax = plot_angle_histogram(detector, X, y, ids, ax=plt.figure().gca(), bins=edges)
    normal, anomalous = _bars(ax).values()
    np.testing.assert_array_equal(normal, np.histogram(angles[y == 0], edges)[0])
    np.testing.assert_array_equal(anomalous, np.histogram(angles[y == 1], edges)[0])
    np.testing.assert_allclose([bar.get_x() for bar in ax.containers[0]], edges[:-1])
    medians = [float(t.split("median ")[1].rstrip("°)")) for t in _legend_texts(ax)]
    expected = [np.median(angles[y == 0]), np.median(angles[y == 1])]
    np.testing.assert_allclose(medians, expected, rtol=5e-3)


def test_angle_histogram_of_unlabelled_clips_best_match(detector, data):
    ax = plot_angle_histogram(detector, data.X_train, None, None)
    (counts,) = _bars(ax).values()
    assert counts.sum() == len(data.X_train)
    assert _legend_texts(ax)[0].startswith(f"normal (n={len(data.X_train)},")
    with pytest.raises(ValueError, match="Unknown machine ID"):
        plot_angle_histogram(detector, data.X_train, None, ["id_99"] * 12)


def test_score_histogram_with_the_threshold_line(detector, data):
    X, y, ids = data.X_test, data.is_anomaly_test, data.machine_ids_test
    ax = plot_score_histogram(detector, X, y, ids, bins=5)
    decision = detector.decision_function(X, ids)
    edges = np.histogram_bin_edges(decision, bins=5)
    normal, anomalous = _bars(ax).values()
    np.testing.assert_array_equal(normal, np.histogram(decision[y == 0], edges)[0])
    np.testing.assert_array_equal(anomalous, np.histogram(decision[y == 1], edges)[0])
    assert normal.sum() + anomalous.sum() == len(X)
    # Different colours for the two classes.
    assert ax.containers[0][0].get_facecolor() != ax.containers[1][0].get_facecolor()

    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("threshold")]
    np.testing.assert_array_equal(line.get_xdata(), [0.0, 0.0])
    n_flagged = int(np.sum(detector.predict(X, ids) == -1))
    assert f"({n_flagged} of {len(X)} clips flagged)" in line.get_label()


# --------------------------------------------------------- training curve
def test_training_curve_has_one_point_per_epoch(detector):
    ax = plot_training_curve(detector)
    (line,) = ax.get_lines()
    assert line.get_label() == "train_loss"
    np.testing.assert_array_equal(
        line.get_xdata(), np.arange(1, FAST["max_epochs"] + 1)
    )
    np.testing.assert_allclose(line.get_ydata(), detector.net_.history[:, "train_loss"])
    assert _legend_texts(ax) == ["train_loss"]


def test_training_curve_with_validation_marks_the_kept_epoch(data):
    det = AnomalousSoundDetector(
        **{**FAST, "max_epochs": 3, "validation_fraction": 0.25}
    ).fit(data.X_train, data.machine_ids_train)
    ax = plot_training_curve(det)
    lines = {line.get_label(): line for line in ax.get_lines()}
    valid = det.net_.history[:, "valid_loss"]
    assert len(lines["train_loss"].get_xdata()) == 3
    np.testing.assert_allclose(lines["valid_loss"].get_ydata(), valid)
    best = int(np.argmin(valid)) + 1
    marker = lines[f"lowest valid_loss (epoch {best})"]
    np.testing.assert_array_equal(marker.get_xdata(), [best, best])


def test_unfitted_detector_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        plot_training_curve(AnomalousSoundDetector())


# ------------------------------------------------------ missing matplotlib
def test_missing_matplotlib_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    with pytest.raises(ImportError, match=re.escape(HINT)):
        require_matplotlib()
    labels, scores, ids = _scores()
    with pytest.raises(ImportError, match="sk-asd"):
        plot_roc(labels, scores, ids)


def test_module_docstring_example():
    result = doctest.testmod(sk_asd.plotting, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------ CLI --plot
@pytest.fixture(scope="module")
def dcase_model(tmp_path_factory):
    root = _write_dcase2020(tmp_path_factory.mktemp("dev_data"))
    model = tmp_path_factory.mktemp("models") / "fan.skasd"
    argv = ["train", str(root), "-m", "fan", "-o", str(model), "-q", *FAST_TRAIN]
    assert main(argv) == 0
    return root, model


def test_evaluate_plot_writes_a_png(dcase_model, tmp_path, monkeypatch, capsys):
    root, model = dcase_model
    drawn = []  # the Axes the CLI draws into, to read its legend

    def recording_plot_roc(*args, **kwargs):
        drawn.append(plot_roc(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(sk_asd.plotting, "plot_roc", recording_plot_roc)
    png = tmp_path / "figures" / "roc.png"  # the folder is created
    table_csv = tmp_path / "table.csv"
    argv = ["evaluate", str(model), str(root), "--plot", str(png)]
    assert main([*argv, "--csv", str(table_csv)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("DCASE 2020 Task 2")  # the table as before
    assert f"saved ROC curves to {png}" in captured.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and min(image.shape[:2]) > 300
    assert image.std() > 0  # not a blank canvas

    # One curve per machine ID, with the numbers of the printed table.
    (ax,) = drawn
    assert len(_curves(ax)) == 2
    texts = _legend_texts(ax)
    for row in _read_csv(table_csv)[:2]:
        auc, pauc = float(row["AUC"]), float(row["pAUC"])
        assert f"{row['machine_id']}: AUC {auc:.3f}, pAUC {pauc:.3f}" in texts
    assert ax.get_title() == "fan, test split: ROC per machine ID"
    assert plt.get_fignums() == []  # drawn without pyplot


def test_evaluate_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "roc.png"
    # Checked before the model is even loaded, so no model is needed.
    argv = ["evaluate", str(tmp_path / "none.skasd"), str(tmp_path), "--plot", str(png)]
    assert main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    assert "--plot needs matplotlib" in line and HINT in line
    assert not png.exists()
