"""Interruptions, bad input and bad paths (issue 15, items 2-9).

Each test failed on the code before the fix; the comment above it says how.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sk_asd import AnomalousSoundDetector
from sk_asd.cli.main import main
from sk_asd.estimator.guards import NonFiniteScoreWarning
from sk_asd.estimator.net import ASDNet, NonFiniteLossError
from sk_asd.io import AudioLoadError, load_audio, load_audios, load_model, write_audio
from tests.conftest import FAST, SR, tiny_clips
from tests.test_cli import FAST_TRAIN, _write_dcase2020

TINY = {**FAST, "max_epochs": 1}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return tiny_clips(n_per_machine=6)


@pytest.fixture(scope="module")
def fitted(data):
    X, ids = data
    return AnomalousSoundDetector(**TINY).fit(X, ids)


@pytest.fixture(scope="module")
def dcase_root(tmp_path_factory) -> Path:
    return _write_dcase2020(tmp_path_factory.mktemp("dev_data"))


@pytest.fixture(scope="module")
def cli_model(dcase_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "fan.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(out), "-q"]
    assert main([*argv, *FAST_TRAIN]) == 0
    return out


def _one_hz_wav(path: Path) -> Path:
    """A 100 kB WAV whose header declares 1 Hz (it used to ask for 11.9 GiB)."""
    sf.write(path, np.zeros(50_000, dtype=np.int16), 1, subtype="PCM_16")
    return path


def _interrupt_in_epoch(monkeypatch, epoch: int = 1) -> None:
    """Ctrl+C during the first training step of ``epoch``."""
    original = ASDNet.train_step

    def train_step(self, batch, **fit_params):
        if len(self.history) == epoch:
            raise KeyboardInterrupt
        return original(self, batch, **fit_params)

    monkeypatch.setattr(ASDNet, "train_step", train_step)


# -------------------------------------------------------- 2. interruptions
def test_interrupted_fit_raises_and_leaves_nothing_fitted(data, monkeypatch):
    # Before: skorch swallowed the KeyboardInterrupt and fit returned normally.
    X, ids = data
    _interrupt_in_epoch(monkeypatch, epoch=2)
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 3})
    with pytest.raises(KeyboardInterrupt, match="epoch 2 of 3"):
        det.fit(X, ids)
    with pytest.raises(NotFittedError):
        check_is_fitted(det)


def test_interrupted_cli_train_exits_130_and_keeps_the_old_model(
    dcase_root, tmp_path, monkeypatch, capsys
):
    existing = tmp_path / "fan.skasd"
    existing.write_bytes(b"the previous model")
    _interrupt_in_epoch(monkeypatch)
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(existing), "--force"]
    assert main([*argv, *FAST_TRAIN, "-q"]) == 130
    assert existing.read_bytes() == b"the previous model"
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fan.skasd"]


def test_train_refuses_to_overwrite_without_force(dcase_root, tmp_path, capsys):
    existing = tmp_path / "fan.skasd"
    existing.write_bytes(b"the previous model")
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(existing)]
    assert main([*argv, *FAST_TRAIN]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert "training on" not in err  # refused before any work
    assert existing.read_bytes() == b"the previous model"
    assert main([*argv, *FAST_TRAIN, "--force", "-q"]) == 0
    assert load_model(existing).max_epochs == 1


def test_sigint_during_cli_training_exits_130_and_keeps_the_file(dcase_root, tmp_path):
    # A real SIGINT (what Ctrl+C sends), sent by the process to itself at its
    # first training step.
    existing = tmp_path / "existing.skasd"
    existing.write_bytes(b"the previous model")
    script = (
        "import os, signal, sys\n"
        "from sk_asd.estimator.net import ASDNet\n"
        "original = ASDNet.train_step\n"
        "def train_step(self, batch, **kw):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return original(self, batch, **kw)\n"
        "ASDNet.train_step = train_step\n"
        "from sk_asd.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(existing), "--force"]
    result = subprocess.run(
        [sys.executable, "-c", script, *argv, *FAST_TRAIN],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 130, result.stderr
    assert "interrupted" in result.stderr
    assert existing.read_bytes() == b"the previous model"


# -------------------------------------------------- 3. memory from headers
def test_implausible_sample_rate_is_refused_by_name(tmp_path):
    bad = _one_hz_wav(tmp_path / "one_hz.wav")
    with pytest.raises(AudioLoadError, match="implausible sample rate of 1 Hz") as info:
        load_audio(bad)
    assert info.value.path == str(bad)
    good = write_audio(tmp_path / "good.wav", np.zeros(400))
    batch = load_audios([bad, good], skip_bad=True)
    assert batch.paths == [str(good)]
    assert "1 Hz" in batch.skipped[0].reason


def test_cli_skip_bad_skips_a_one_hz_file_and_counts_it(cli_model, tmp_path, capsys):
    bad = _one_hz_wav(tmp_path / "normal_id_00_99999999.wav")
    good = write_audio(tmp_path / "normal_id_00_00000001.wav", np.zeros(SR // 4))
    argv = ["score", str(cli_model), str(bad), str(good), "--skip-bad"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}" in err and "1 Hz" in err
    assert "skipped 1 of 2 file(s)" in err


def test_fit_on_files_refuses_a_bad_header_before_training(tmp_path, monkeypatch):
    good = [
        write_audio(tmp_path / f"{i}.wav", 0.1 * np.sin(np.arange(4000) * (i + 1)))
        for i in range(3)
    ]
    bad = _one_hz_wav(tmp_path / "bad.wav")

    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ASDNet, "initialize", fail)
    with pytest.raises(AudioLoadError, match="bad.wav.*1 Hz"):
        AnomalousSoundDetector(**TINY).fit([*good, bad, *good])


def test_only_the_needed_frames_are_decoded(tmp_path):
    # Before: the whole file was decoded as float64 to keep its first seconds.
    rng = np.random.RandomState(0)
    long_stereo = 0.1 * rng.randn(30 * 44100, 2)
    path = write_audio(tmp_path / "long.wav", long_stereo, sample_rate=44100)
    n = 4000
    full = load_audio(path)
    tracemalloc.start()
    try:
        head = load_audio(path, max_samples=n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(head, full[:n])  # same values as a full decode
    # Decoding all 30 s of float64 stereo alone would take 21 MB.
    assert peak < 2_000_000, peak
    batch = load_audios([path], target_length=n)
    assert batch.waves.shape == (1, n)
    assert batch.lengths.tolist() == [full.shape[0]]  # the file's real length


# ---------------------------------------------------- 4. non-finite values
def test_nan_scores_are_never_predicted_normal(fitted, data):
    # Before: predict compared NaN < 0 (False) and called the clips normal.
    X, ids = data
    X = X.copy()
    X[:2] *= 1e30
    with pytest.warns(NonFiniteScoreWarning, match="row 0, row 1"):
        labels = fitted.predict(X, ids)
    assert labels[:2].tolist() == [-1, -1]
    assert np.isnan(fitted.score_samples(X, ids)[:2]).all()


def test_cli_reports_nan_scores_as_anomalous(cli_model, tmp_path, capsys):
    huge = write_audio(
        tmp_path / "normal_id_00_00000001.wav",
        np.full(SR // 4, 1e20),
        subtype="FLOAT",
    )
    out = tmp_path / "scores.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteScoreWarning)  # reported, not warned
        assert main(["score", str(cli_model), str(huge), "--csv", str(out)]) == 0
    err = capsys.readouterr().err
    assert "NaN or infinite anomaly score" in err and str(huge) in err
    with out.open() as fh:
        row = next(csv.DictReader(fh))
    assert row["decision"] == "anomalous"


def test_huge_input_stops_training_at_once_naming_the_cause(data):
    # Before: training ran to the end and failed inside KMeans.
    X, ids = data
    with pytest.raises(NonFiniteLossError, match="learning rate.*outside \\[-1, 1\\]"):
        AnomalousSoundDetector(**{**FAST, "max_epochs": 50}).fit(X * 1e30, ids)


def test_huge_learning_rate_stops_training_naming_it(data):
    X, ids = data
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 4, "lr": 1e6})
    with pytest.raises(NonFiniteLossError, match="lr=1000000.0"):
        det.fit(X, ids)
    assert len(det.__dict__) == len(AnomalousSoundDetector().get_params())


# ---------------------------------------------- 5. silent changes of meaning
def test_scoring_at_another_sample_rate_raises(fitted, data):
    X, ids = data
    assert fitted.sample_rate_ == 16000
    det = AnomalousSoundDetector(**TINY).fit(X, ids)
    det.set_params(sample_rate=8000)
    with pytest.raises(ValueError, match="fitted on clips at 16000 Hz"):
        det.predict(X, ids)


def test_saved_model_keeps_the_fitted_rate(fitted, tmp_path):
    from sk_asd.io import save_model

    meta = load_model(save_model(fitted, tmp_path / "m.skasd"), return_metadata=True)
    assert meta[0].sample_rate_ == 16000 and meta[1]["sample_rate"] == 16000


def test_fit_on_files_uses_the_median_length_and_names_outliers(tmp_path):
    # Before: the first file's length (here 1 sample) set every clip's length.
    tiny = write_audio(tmp_path / "tiny.wav", np.zeros(1))
    rng = np.random.RandomState(0)
    others = [
        write_audio(tmp_path / f"{i}.wav", 0.1 * rng.randn(4000)) for i in range(4)
    ]
    with pytest.warns(UserWarning, match="median.*tiny.wav"):
        det = AnomalousSoundDetector(**TINY).fit([tiny, *others])
    assert det.n_features_in_ == 4000


def test_cli_train_uses_the_median_length(dcase_root, tmp_path, capsys):
    # Before: one long file made every training clip as long as it.
    root = tmp_path / "data"
    import shutil

    shutil.copytree(dcase_root, root)
    long = root / "fan" / "train" / "normal_id_00_00000099.wav"
    write_audio(long, np.zeros(SR * 5))
    out = tmp_path / "m.skasd"
    assert main(["train", str(root), "-m", "fan", "-o", str(out), *FAST_TRAIN]) == 0
    assert load_model(out).n_features_in_ == SR // 4
    assert "median length" in capsys.readouterr().err


# ------------------------------------------ 6. errors early, types kept
def test_unwritable_csv_fails_before_the_model_is_loaded(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    argv = ["score", str(tmp_path / "missing.skasd"), "x.wav"]
    assert main([*argv, "--csv", str(blocker / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "--csv" in err and "cannot be written" in err


def test_unwritable_model_path_fails_before_training(dcase_root, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(blocker / "m.skasd")]
    assert main([*argv, *FAST_TRAIN]) == 1
    err = capsys.readouterr().err
    assert "-o" in err and "cannot be written" in err
    assert "training on" not in err


# ------------------------------------------------------- 7. atomic --csv
def test_failed_csv_write_keeps_the_previous_file(
    cli_model, dcase_root, tmp_path, monkeypatch
):
    cli = sys.modules["sk_asd.cli.main"]

    out = tmp_path / "scores.csv"
    out.write_text("previous results\n")
    calls = {"n": 0}
    original = cli._csv_cell

    def failing_cell(value):
        calls["n"] += 1
        if calls["n"] > 12:
            raise OSError(28, "No space left on device")
        return original(value)

    monkeypatch.setattr(cli, "_csv_cell", failing_cell)
    files = sorted(str(p) for p in (dcase_root / "fan" / "test").glob("*.wav"))
    assert main(["score", str(cli_model), *files, "--csv", str(out), "-q"]) == 1
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


# ----------------------------------------------------- 8. clearer errors
def test_none_among_machine_ids_is_named(data):
    X, ids = data
    ids = ids.astype(object)
    ids[3] = None
    with pytest.raises(ValueError, match=r"None at position\(s\) \[3\]"):
        AnomalousSoundDetector(**TINY).fit(X, ids)


def test_unsortable_machine_ids_are_a_clear_type_error(data):
    X, _ = data
    ids = np.array([("a",) if i % 2 else 1 for i in range(len(X))], dtype=object)
    with pytest.raises(TypeError, match="cannot be compared"):
        AnomalousSoundDetector(**TINY).fit(X, ids)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_file_names_that_are_not_utf8(cli_model, tmp_path, capsys):
    raw = os.fsencode(tmp_path) + b"/normal_id_00_\xff.wav"
    name = os.fsdecode(raw)
    try:
        write_audio(tmp_path / "ok.wav", np.zeros(SR // 4))
        os.rename(tmp_path / "ok.wav", raw)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    assert load_audio(name).shape == (SR // 4,)
    broken = os.fsdecode(os.fsencode(tmp_path) + b"/broken_\xfe.wav")
    Path(broken).write_bytes(b"not audio")
    argv = ["score", str(cli_model), name, broken, "--skip-bad", "--csv", "-"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "skipped 1 of 2" in captured.err and "\\xfe" in captured.err


def test_symlink_loop_and_dangling_link_are_named(tmp_path):
    loop_a, loop_b = tmp_path / "a.wav", tmp_path / "b.wav"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(AudioLoadError, match="loop of symbolic links"):
        load_audio(loop_a)
    dangling = tmp_path / "d.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(FileNotFoundError, match="symbolic link"):
        load_audio(dangling)
    model = tmp_path / "m.skasd"
    model.symlink_to(model)
    with pytest.raises(ValueError, match="loop of symbolic links"):
        load_model(model)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads files whatever their permissions",
)
def test_permission_denied_is_not_called_corrupt(tmp_path):
    path = write_audio(tmp_path / "locked.wav", np.zeros(100))
    path.chmod(0)
    try:
        with pytest.raises(AudioLoadError, match="permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_single_path_arguments_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match="single path"):
        load_audios("a.wav")
    with pytest.raises(TypeError, match="single path"):
        AnomalousSoundDetector(**TINY).fit(str(tmp_path))


def test_bogus_device_is_a_value_error(data):
    X, ids = data
    with pytest.raises(ValueError, match="not a torch device"):
        AnomalousSoundDetector(**{**TINY, "device": "bogus"}).fit(X, ids)


# ---------------------------------------------------------- 9. smaller
def test_csv_cells_cannot_become_formulas(cli_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_audio(tmp_path / "=1+2.wav", np.zeros(SR // 4))
    assert main(["score", str(cli_model), "=1+2.wav", "--csv", "out.csv", "-q"]) == 0
    with (tmp_path / "out.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["path"] == "'=1+2.wav"
    float(row["anomaly_score"])  # numbers, negative ones too, stay numbers


def test_a_bad_file_keeps_its_error_type_across_loader_workers(tmp_path):
    # Before: a DataLoader worker's AudioLoadError arrived as a RuntimeError.
    rng = np.random.RandomState(0)
    good = [write_audio(tmp_path / f"{i}.wav", 0.1 * rng.randn(4000)) for i in range(5)]
    # A sound header (passes the up-front check) over NaN samples.
    nan_file = tmp_path / "nan.wav"
    sf.write(nan_file, np.full(4000, np.nan), SR, subtype="FLOAT")
    det = AnomalousSoundDetector(**{**TINY, "speed": {"loader_workers": 1}})
    with pytest.raises(AudioLoadError, match="nan.wav"):
        det.fit([*good, nan_file])
