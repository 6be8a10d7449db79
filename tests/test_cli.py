"""Tests for the ``sk-asd`` command line (sk_asd.cli.main), run in-process."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pytest

from sk_asd import AnomalousSoundDetector, __version__
from sk_asd.cli.main import main
from sk_asd.datasets import load_dcase
from sk_asd.io import (
    ModelFileNotFoundError,
    load_audios,
    load_model,
    save_model,
    write_audio,
)
from tests.conftest import CLIP_SECONDS, FAST, SR

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcase2020-mini"

#: Training options that keep every CLI training run to about a second.
FAST_TRAIN = ["--epochs", "1", "--n-mels", "32", "--batch-size", "16"]
FAST_TRAIN += ["--device", "cpu", "--seed", "0"]


def _clip(rng: np.random.RandomState, freq: float, anomalous: bool) -> np.ndarray:
    n = int(SR * CLIP_SECONDS)
    t = np.arange(n) / SR
    wave = 0.2 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.randn(n)
    if anomalous:
        wave += 0.2 * np.sin(2 * np.pi * 3000 * t) + 0.1 * rng.randn(n)
    return np.clip(wave, -1, 1)


def _write_dcase2020(root: Path, machine_type: str = "fan") -> Path:
    """2 machine IDs; train: 6 normal each; test: 3 normal + 3 anomalous each."""
    rng = np.random.RandomState(0)
    for k, machine_id in enumerate(("00", "02")):
        freq = 300 + 500 * k
        for i in range(6):
            name = f"normal_id_{machine_id}_{i:08d}.wav"
            write_audio(root / machine_type / "train" / name, _clip(rng, freq, False))
        for i in range(3):
            for label in ("normal", "anomaly"):
                name = f"{label}_id_{machine_id}_{i:08d}.wav"
                wave = _clip(rng, freq, label == "anomaly")
                write_audio(root / machine_type / "test" / name, wave)
    return root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _error_line(err: str) -> str:
    """The single error line, checking that there is exactly one."""
    lines = [line for line in err.splitlines() if line.startswith("sk-asd: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def dcase_root(tmp_path_factory) -> Path:
    return _write_dcase2020(tmp_path_factory.mktemp("dev_data"))


@pytest.fixture(scope="module")
def cli_model(dcase_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "fan.skasd"
    argv = ["train", str(dcase_root), "--machine-type", "fan", "-o", str(out)]
    assert main([*argv, *FAST_TRAIN, "--quiet"]) == 0
    return out


def _test_files(dcase_root: Path) -> list[str]:
    return sorted(str(p) for p in (dcase_root / "fan" / "test").glob("*.wav"))


# --------------------------------------------------------------- train
def test_train_writes_a_model_that_python_can_load(cli_model, dcase_root):
    det, meta = load_model(cli_model, return_metadata=True)
    assert isinstance(det, AnomalousSoundDetector)
    assert det.machine_ids_.tolist() == ["id_00", "id_02"]
    assert det.n_features_in_ == int(SR * CLIP_SECONDS)
    assert (det.max_epochs, det.n_mels, det.random_state) == (1, 32, 0)
    assert meta["machine_type"] == "fan"
    assert meta["split"] == "train"
    # Relative to the dataset folder: no absolute path of this machine.
    train_files = sorted(
        p.relative_to(dcase_root).as_posix()
        for p in (dcase_root / "fan" / "train").glob("*")
    )
    assert sorted(meta["training_paths"]) == train_files
    assert meta["training_paths_relative"] is True
    assert str(dcase_root) not in cli_model.read_bytes().decode("latin-1")


def test_train_crop_seconds_reaches_the_detector(dcase_root, tmp_path, capsys):
    out = tmp_path / "crops.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(out), "-q"]
    assert main([*argv, *FAST_TRAIN, "--crop-seconds", "0.2"]) == 0
    det = load_model(out)
    assert det.crop_seconds == 0.2 and det.net_.crop_samples == int(0.2 * SR)
    # Shorter than one STFT window: one error line that says what to use.
    bad = [*argv, *FAST_TRAIN, "--crop-seconds", "0.05", "--force"]
    assert main(bad) != 0
    assert "crop_seconds >= 0.128" in _error_line(capsys.readouterr().err)


def test_train_streams_large_training_sets_from_the_files(
    dcase_root, tmp_path, capsys, monkeypatch
):
    import importlib

    cli = importlib.import_module("sk_asd.cli.main")
    monkeypatch.setattr(cli, "STREAM_BYTES", 0)  # every set counts as large
    out = tmp_path / "streamed.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(out), *FAST_TRAIN]
    assert main(argv) == 0
    assert "streaming 12 clip(s) from their files" in capsys.readouterr().err
    det, meta = load_model(out, return_metadata=True)
    assert len(meta["training_paths"]) == 12
    assert det.n_features_in_ == int(SR * CLIP_SECONDS)
    assert np.isfinite(det.score_samples(_test_files(dcase_root))).all()


def test_train_quiet_prints_nothing(dcase_root, tmp_path, capsys):
    out = tmp_path / "m.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(out), "-q"]
    assert main([*argv, *FAST_TRAIN]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert out.is_file()


def test_train_verbose_shows_the_epoch_table_on_stderr(dcase_root, tmp_path, capsys):
    out = tmp_path / "m.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "-o", str(out), "--verbose"]
    assert main([*argv, *FAST_TRAIN]) == 0
    captured = capsys.readouterr()
    # stdout stays clean for results; skorch's table goes to stderr.
    assert captured.out == ""
    assert "train_loss" in captured.err and "saved model to" in captured.err


def test_split_test_trains_on_the_first_normal_clips_and_evaluate_skips_them(
    dcase_root, tmp_path, capsys
):
    out = tmp_path / "half.skasd"
    argv = ["train", str(dcase_root), "-m", "fan", "--split", "test", "-o", str(out)]
    assert main([*argv, "--train-fraction", "0.34", *FAST_TRAIN]) == 0
    err = capsys.readouterr().err
    # 3 normal clips per ID: 0.34 of them is the first one of each.
    assert "training on 2" in err and "saved model to" in err
    expected = [
        str(dcase_root / "fan" / "test" / f"normal_id_{m}_00000000.wav")
        for m in ("00", "02")
    ]
    assert load_model(out, return_metadata=True)[1]["training_paths"] == [
        f"fan/test/normal_id_{m}_00000000.wav" for m in ("00", "02")
    ]

    scores_csv = tmp_path / "scores.csv"
    argv = ["evaluate", str(out), str(dcase_root), "--scores-csv", str(scores_csv)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "excluded 2 clip(s) the model was trained on" in captured.err
    assert "id_00" in captured.out and "id_02" in captured.out
    rows = _read_csv(scores_csv)
    assert len(rows) == 10
    assert not set(expected) & {row["path"] for row in rows}

    # A copy of the dataset elsewhere: the training clips are still recognised
    # by their place in the dataset folder.
    moved = tmp_path / "moved"
    shutil.copytree(dcase_root, moved)
    assert main(["evaluate", str(out), str(moved), "-m", "fan"]) == 0
    assert "excluded 2 clip(s)" in capsys.readouterr().err


def test_train_on_an_unknown_machine_type_suggests_one(dcase_root, tmp_path, capsys):
    argv = ["train", str(dcase_root), "-m", "fna", "-o", str(tmp_path / "x.skasd")]
    assert main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    assert "'fna'" in line and "Did you mean 'fan'" in line
    assert not (tmp_path / "x.skasd").exists()


# ------------------------------------------------------------ evaluate
def test_evaluate_prints_the_dcase2020_table(cli_model, dcase_root, tmp_path, capsys):
    table_csv = tmp_path / "table.csv"
    scores_csv = tmp_path / "scores.csv"
    argv = ["evaluate", str(cli_model), str(dcase_root), "--csv", str(table_csv)]
    assert main([*argv, "--scores-csv", str(scores_csv)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("DCASE 2020 Task 2")
    for text in ("id_00", "id_02", "mAUC", "all"):
        assert text in captured.out
    # Trained on the train split: nothing of the test split is excluded.
    assert "excluded 0 clip(s)" in captured.err

    table = _read_csv(table_csv)
    assert [(r["machine_type"], r["machine_id"]) for r in table] == [
        ("fan", "id_00"),
        ("fan", "id_02"),
        ("fan", "mean"),
        ("all", "mean"),
    ]
    assert all(0.0 <= float(r["AUC"]) <= 1.0 for r in table)
    assert table[-1]["mAUC"] != ""

    rows = _read_csv(scores_csv)
    assert [r["path"] for r in rows] == _test_files(dcase_root)
    assert [int(r["is_anomaly"]) for r in rows] == [
        int(Path(r["path"]).name.startswith("anomaly")) for r in rows
    ]
    # The scores are the detector's own, -score_samples with the IDs.
    det = load_model(cli_model)
    X = load_audios([r["path"] for r in rows]).waves
    ids = [r["machine_id"] for r in rows]
    np.testing.assert_allclose(
        [float(r["anomaly_score"]) for r in rows],
        -det.score_samples(X, ids),
        rtol=1e-6,
    )


def test_evaluate_dcase2021_names_use_the_year_rules(tmp_path, capsys):
    rng = np.random.RandomState(1)
    root = tmp_path / "dev2023"
    for k, section in enumerate(("00", "01")):
        freq = 300 + 500 * k
        for domain, n in (("source", 5), ("target", 1)):
            for i in range(n):
                name = f"section_{section}_{domain}_train_normal_{i:04d}_a_1.wav"
                write_audio(root / "pump" / "train" / name, _clip(rng, freq, False))
            for label in ("normal", "anomaly"):
                for i in range(2):
                    name = f"section_{section}_{domain}_test_{label}_{i:04d}_a_1.wav"
                    wave = _clip(rng, freq, label == "anomaly")
                    write_audio(root / "pump" / "test" / name, wave)
    model = tmp_path / "pump.skasd"
    argv = ["train", str(root), "-m", "pump", "-o", str(model), "-q", *FAST_TRAIN]
    assert main(argv) == 0
    assert load_model(model).machine_ids_.tolist() == ["section_00", "section_01"]

    table_csv = tmp_path / "t.csv"
    assert main(["evaluate", str(model), str(root), "--csv", str(table_csv)]) == 0
    out = capsys.readouterr().out
    assert "hmean" in out and "target" in out
    rows = _read_csv(table_csv)
    assert {r["section"] for r in rows} == {"00", "01", "hmean"}
    # 2023 rules: one pAUC per section, in its "all" row.
    assert any(r["domain"] == "all" and r["pAUC"] for r in rows)

    # --year must match the naming scheme of the files.
    assert main(["evaluate", str(model), str(root), "--year", "2020"]) == 1
    assert "year=2020" in _error_line(capsys.readouterr().err)


def test_evaluate_with_a_python_model_warns_that_nothing_is_excluded(
    dcase_root, tmp_path, capsys
):
    data = load_dcase(dcase_root, "fan", split="train")
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 1})
    det.fit(data.clips, data.machine_ids)
    model = save_model(det, tmp_path / "py.skasd")  # no machine type recorded
    assert main(["evaluate", str(model), str(dcase_root)]) == 1
    assert "--machine-type" in _error_line(capsys.readouterr().err)
    assert main(["evaluate", str(model), str(dcase_root), "-m", "fan"]) == 0
    captured = capsys.readouterr()
    assert "records no training files" in captured.err
    assert "id_02" in captured.out


# --------------------------------------------------------------- score
def test_score_a_folder_matches_python(cli_model, dcase_root, tmp_path, capsys):
    out_csv = tmp_path / "scores.csv"
    test_dir = dcase_root / "fan" / "test"
    assert main(["score", str(cli_model), str(test_dir), "--csv", str(out_csv)]) == 0
    assert capsys.readouterr().out == ""
    rows = _read_csv(out_csv)
    files = _test_files(dcase_root)
    assert [r["path"] for r in rows] == files
    assert list(rows[0]) == [
        "path",
        "machine_id",
        "anomaly_score",
        "decision",
        "machine_id_source",
    ]
    assert [r["machine_id"] for r in rows] == [Path(f).name[-18:-13] for f in files]
    assert {r["machine_id_source"] for r in rows} == {"filename"}

    det = load_model(cli_model)
    X = load_audios(files).waves
    ids = [r["machine_id"] for r in rows]
    np.testing.assert_allclose(
        [float(r["anomaly_score"]) for r in rows], -det.score_samples(X, ids), rtol=1e-6
    )
    expected = np.where(det.predict(X, ids) == -1, "anomalous", "normal")
    assert [r["decision"] for r in rows] == expected.tolist()


def test_score_prints_a_table_without_csv(cli_model, dcase_root, capsys):
    wav = dcase_root / "fan" / "test" / "anomaly_id_02_00000001.wav"
    assert main(["score", str(cli_model), str(wav)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "path",
        "machine_id",
        "anomaly_score",
        "decision",
        "machine_id_source",
    ]
    assert len(lines) == 2 and lines[1].split()[:2] == [str(wav), "id_02"]


def test_score_best_match_and_machine_id_option(cli_model, dcase_root, tmp_path):
    clip = tmp_path / "recording.wav"
    shutil.copy(dcase_root / "fan" / "test" / "normal_id_02_00000000.wav", clip)
    det = load_model(cli_model)
    X = load_audios([clip]).waves

    out = tmp_path / "best.csv"
    assert main(["score", str(cli_model), str(clip), "--csv", str(out), "-q"]) == 0
    (row,) = _read_csv(out)
    assert row["machine_id_source"] == "best-match"
    assert row["machine_id"] in ("id_00", "id_02")
    # The best match is what score_samples(machine_ids=None) picks.
    np.testing.assert_allclose(
        float(row["anomaly_score"]), -det.score_samples(X)[0], rtol=1e-6
    )
    np.testing.assert_allclose(
        float(row["anomaly_score"]),
        -det.score_samples(X, [row["machine_id"]])[0],
        rtol=1e-6,
    )

    argv = ["score", str(cli_model), str(clip), "--csv", str(out), "-q"]
    assert main([*argv, "--machine-id", "id_00"]) == 0
    (row,) = _read_csv(out)
    assert (row["machine_id"], row["machine_id_source"]) == ("id_00", "option")
    np.testing.assert_allclose(
        float(row["anomaly_score"]), -det.score_samples(X, ["id_00"])[0], rtol=1e-6
    )


def test_score_unknown_machine_id_lists_the_known_ones(cli_model, dcase_root, capsys):
    wav = dcase_root / "fan" / "test" / "normal_id_00_00000000.wav"
    assert main(["score", str(cli_model), str(wav), "--machine-id", "id_99"]) == 1
    line = _error_line(capsys.readouterr().err)
    assert "id_99" in line and "['id_00', 'id_02']" in line


def test_score_pads_short_and_cuts_long_clips(cli_model, tmp_path, capsys):
    rng = np.random.RandomState(3)
    short = write_audio(tmp_path / "short.wav", 0.1 * rng.randn(SR // 10))
    # Another sample rate too: resampled to the model's 16 kHz first.
    long = write_audio(tmp_path / "long.flac", 0.1 * rng.randn(8000), 8000)
    out = tmp_path / "s.csv"
    argv = ["score", str(cli_model), str(short), str(long), "--csv", str(out)]
    assert main(argv) == 0
    assert [r["path"] for r in _read_csv(out)] == [str(short), str(long)]
    assert "2 clip(s) zero-padded or cut" in capsys.readouterr().err


@pytest.fixture()
def folder_with_a_bad_file(dcase_root, tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("normal_id_00_00000000.wav", "anomaly_id_02_00000000.wav"):
        shutil.copy(dcase_root / "fan" / "test" / name, folder / name)
    bad = folder / "broken_clip.wav"
    bad.write_bytes(b"RIFF this is not audio")
    (folder / "notes.txt").write_text("ignored: not an audio suffix")
    return folder, bad


def test_score_fails_on_a_corrupt_file_naming_it(
    cli_model, folder_with_a_bad_file, capsys
):
    folder, bad = folder_with_a_bad_file
    assert main(["score", str(cli_model), str(folder)]) == 1
    captured = capsys.readouterr()
    line = _error_line(captured.err)
    assert str(bad) in line
    assert captured.out == ""


def test_score_skip_bad_scores_the_rest(
    cli_model, folder_with_a_bad_file, tmp_path, capsys
):
    folder, bad = folder_with_a_bad_file
    out = tmp_path / "s.csv"
    argv = ["score", str(cli_model), str(folder), "--skip-bad", "--csv", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}: " in err
    assert "error" not in err
    rows = _read_csv(out)
    assert [Path(r["path"]).name for r in rows] == [
        "anomaly_id_02_00000000.wav",
        "normal_id_00_00000000.wav",
    ]


def test_score_csv_to_stdout(cli_model, dcase_root, capsys):
    wav = dcase_root / "fan" / "test" / "normal_id_00_00000001.wav"
    assert main(["score", str(cli_model), str(wav), "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,machine_id,anomaly_score,decision,machine_id_source"
    assert lines[1].startswith(f"{wav},id_00,")


def test_empty_folder_is_an_error(cli_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["score", str(cli_model), str(tmp_path / "empty")]) == 1
    assert "No audio files" in _error_line(capsys.readouterr().err)


# ------------------------------------------- models between CLI and Python
def test_python_saved_and_bare_models_score_identically_in_the_cli(
    dcase_root, tmp_path
):
    data = load_dcase(dcase_root, "fan", split="train")
    det = AnomalousSoundDetector(**{**FAST, "max_epochs": 1})
    det.fit(data.clips, data.machine_ids)
    files = _test_files(dcase_root)
    X = load_audios(files).waves
    ids = [Path(f).name[-18:-13] for f in files]
    expected = -det.score_samples(X, ids)

    saved = save_model(det, tmp_path / "py.skasd", machine_type="fan")
    bare = tmp_path / "bare.joblib"
    joblib.dump(det, bare)
    for model in (saved, bare):
        out = tmp_path / f"{model.name}.csv"
        argv = ["score", str(model), *files, "--csv", str(out), "-q"]
        if model == bare:
            # A pickle: only on request (and with a warning).
            assert main(argv) == 1
            with pytest.warns(UserWarning, match="pickle"):
                assert main([*argv, "--trust-pickle"]) == 0
        else:
            assert main(argv) == 0
        rows = _read_csv(out)
        np.testing.assert_allclose(
            [float(r["anomaly_score"]) for r in rows], expected, rtol=1e-6
        )


@pytest.mark.parametrize("content", [None, b"", b"definitely not a model"])
def test_missing_or_corrupt_model_file(dcase_root, tmp_path, capsys, content):
    model = tmp_path / "model.skasd"
    if content is not None:
        model.write_bytes(content)
    wav = dcase_root / "fan" / "test" / "normal_id_00_00000000.wav"
    assert main(["score", str(model), str(wav)]) == 1
    line = _error_line(capsys.readouterr().err)
    assert f"Cannot load model file '{model}'" in line
    assert ("does not exist" in line) == (content is None)


def test_debug_shows_the_exception(tmp_path):
    missing = str(tmp_path / "missing.skasd")
    with pytest.raises(ModelFileNotFoundError):
        main(["score", missing, "x.wav", "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "score", missing, "x.wav"])


# ------------------------------------------------------- parser and demo
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sk-asd {__version__}"


@pytest.mark.parametrize("command", [None, "train", "score", "evaluate", "demo"])
def test_help_on_every_command(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = "usage: sk-asd" + ("" if command is None else f" {command}")
    assert out.startswith(expected)
    assert "--quiet" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["train"], "required"),
        (["train", "d", "-m", "fan", "--train-fraction", "1.5"], "(0, 1]"),
        (["train", "d", "-m", "fan", "--batch-size", "1"], ">= 2"),
        (["score", "model.skasd"], "required"),
        (["bogus"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_demo_forwards_its_options(monkeypatch):
    calls = []

    def run_demo(**kwargs):
        calls.append(kwargs)
        return 3

    fake = types.ModuleType("sk_asd.cli.demo")
    fake.run_demo = run_demo
    monkeypatch.setitem(sys.modules, "sk_asd.cli.demo", fake)
    assert main(["demo", "--epochs", "2", "--seed", "5", "--quick"]) == 3
    assert main(["demo"]) == 3
    assert calls == [{"epochs": 2, "seed": 5, "quick": True}, {"quick": False}]


def test_python_m_sk_asd_help():
    result = subprocess.run(
        [sys.executable, "-m", "sk_asd", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: sk-asd")
    for command in ("train", "score", "evaluate", "demo"):
        assert command in result.stdout


# ------------------------------------------------------------ real data
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"{REAL_DATA} not present")
def test_train_and_evaluate_on_the_dcase2020_mini_toycar(tmp_path, capsys):
    model = tmp_path / "ToyCar.skasd"
    argv = ["train", str(REAL_DATA), "-m", "ToyCar", "--split", "test"]
    argv += ["--train-fraction", "0.5", "-o", str(model), *FAST_TRAIN]
    assert main(argv) == 0
    det, meta = load_model(model, return_metadata=True)
    assert det.n_features_in_ == 11 * SR  # 11 s ToyCar clips
    n_trained = len(meta["training_paths"])
    assert n_trained >= 1
    assert all("/normal_" in p for p in meta["training_paths"])
    capsys.readouterr()

    assert main(["evaluate", str(model), str(REAL_DATA)]) == 0
    captured = capsys.readouterr()
    assert f"excluded {n_trained} clip(s)" in captured.err
    assert "ToyCar" in captured.out and "mean" in captured.out
    for machine_id in det.machine_ids_:
        assert machine_id in captured.out


# ------------------------------------------------ DCASE 2023-style folders
@pytest.fixture(scope="module")
def dcase2023_run(tmp_path_factory):
    """A generated 2023-style folder (anonymous test names plus a ground
    truth), a model trained on it by the CLI, and the same test clips under
    development names in a second folder."""
    from sk_asd.datasets import make_machine_sounds, write_dcase2023_folder

    data = make_machine_sounds(
        2,
        n_normal_train=6,
        n_target_train=2,
        n_normal_test=2,
        n_anomalous_test=2,
        attributes=True,
        duration=CLIP_SECONDS,
        sample_rate=SR,
        random_state=0,
    )
    root = tmp_path_factory.mktemp("eval2023")
    written = write_dcase2023_folder(root, data, machine_type="synth")
    named = tmp_path_factory.mktemp("dev2023")
    write_dcase2023_folder(named, data, machine_type="synth", anonymous_test=False)
    model = root / "synth.skasd"
    argv = ["train", str(root), "-m", "synth", "-o", str(model), "-q", *FAST_TRAIN]
    assert main(argv) == 0
    return types.SimpleNamespace(
        root=root, named=named, model=model, ground_truth=Path(written.ground_truth)
    )


def test_train_reads_attributes_and_domains_from_2023_names(dcase2023_run, tmp_path):
    run = dcase2023_run
    model = load_model(run.model)
    # Machine x attribute classes from the names, target clips kept apart.
    assert model.class_machine_.size > model.machine_ids_.size
    assert all(a.startswith("spd_") for a in model.class_attributes_)
    assert model.n_target_clips_.tolist() == [2, 2]
    plain = tmp_path / "plain.skasd"
    argv = ["train", str(run.root), "-m", "synth", "-o", str(plain), "-q"]
    assert main([*argv, *FAST_TRAIN, "--no-attributes", "--no-domains"]) == 0
    model = load_model(plain)
    assert model.class_machine_.tolist() == [0, 1]
    assert model.n_target_clips_.tolist() == [0, 0]


def _official_score(out: str) -> float:
    lines = [line for line in out.splitlines() if line.startswith("official score:")]
    assert len(lines) == 1, out
    return float(lines[0].split(":")[1])


def test_train_then_evaluate_with_labels_on_a_2023_style_folder(
    dcase2023_run, tmp_path, capsys
):
    run = dcase2023_run
    assert load_model(run.model).machine_ids_.tolist() == ["section_00", "section_01"]
    table_csv = tmp_path / "table.csv"
    argv = ["evaluate", str(run.model), str(run.root), "--labels"]
    argv += [str(run.ground_truth), "--csv", str(table_csv)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out
    # The organisers' layout: one row per section, both domain AUCs and pAUC.
    assert "AUC (source)" in out and "AUC (target)" in out and "pAUC" in out
    for section in ("00", "01", "hmean"):
        assert any(line.split()[1:2] == [section] for line in out.splitlines()[2:])
    score = _official_score(out)
    rows = _read_csv(table_csv)
    overall = [r for r in rows if r["machine_type"] == "all" and r["domain"] == "all"]
    assert score == pytest.approx(100 * float(overall[0]["score"]), abs=0.006)
    assert "16 clip(s): 8 normal, 8 anomalous" in captured.err

    # The same clips under development names, without a ground truth, get
    # the same scores: the labels file stood in for the names exactly.
    argv = ["evaluate", str(run.model), str(run.named), "-m", "synth"]
    assert main(argv) == 0
    assert _official_score(capsys.readouterr().out) == score


def test_evaluate_anonymous_names_without_labels_says_what_to_pass(
    dcase2023_run, capsys
):
    run = dcase2023_run
    assert main(["evaluate", str(run.model), str(run.root)]) == 1
    err = _error_line(capsys.readouterr().err)
    assert "No labelled clips" in err and "--labels FILE" in err


def test_evaluate_labels_without_domains_then_with_the_domain_file(
    dcase2023_run, tmp_path, capsys
):
    run = dcase2023_run
    rows = list(csv.reader(run.ground_truth.open()))
    labels = tmp_path / "ground_truth_data.csv"
    domains = tmp_path / "ground_truth_domain.csv"
    # The organisers ship label and domain in separate headerless files.
    labels.write_text("".join(f"{name},{label}\n" for name, label, _ in rows))
    domains.write_text("".join(f"{name},{int(d == 'target')}\n" for name, _, d in rows))
    argv = ["evaluate", str(run.model), str(run.root), "--labels", str(labels)]
    assert main(argv) == 1
    assert "--domains" in _error_line(capsys.readouterr().err)
    assert main([*argv, "--domains", str(domains)]) == 0
    out = capsys.readouterr().out
    full = [
        "evaluate",
        str(run.model),
        str(run.root),
        "--labels",
        str(run.ground_truth),
    ]
    assert main(full) == 0
    assert _official_score(out) == _official_score(capsys.readouterr().out)


def test_evaluate_labels_for_part_of_the_sections_is_refused(
    dcase2023_run, tmp_path, capsys
):
    run = dcase2023_run
    rows = run.ground_truth.read_text().splitlines()
    partial = tmp_path / "section_00_only.csv"
    partial.write_text("\n".join(r for r in rows if r.startswith("section_00_")))
    argv = ["evaluate", str(run.model), str(run.root), "--labels", str(partial)]
    assert main(argv) == 1
    err = _error_line(capsys.readouterr().err)
    assert "8 clip(s)" in err and "section_01_0000.wav" in err
    # Both sections' files, given one after the other, are merged.
    other = tmp_path / "section_01_only.csv"
    other.write_text("\n".join(r for r in rows if r.startswith("section_01_")))
    assert main([*argv, "--labels", str(other)]) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ("section_00_0000.wav,1,target,extra\n", "line 1 has 4 cell"),
        ("section_00_0000.wav,maybe,source\n", "line 1: label 'maybe'"),
        ("section_00_0000.wav,1,left\n", "domain 'left'"),
        ("id_00_00000000.wav,1,source\n", "name none of the 16 clip"),
        ("section_00_0000.wav,1\nsection_00_0000.wav,0\n", "line 2 lists"),
        ("filename,label,domain\n", "lists no clips"),
    ],
)
def test_evaluate_malformed_labels_file(
    dcase2023_run, tmp_path, capsys, content, message
):
    run = dcase2023_run
    bad = tmp_path / "gt.csv"
    bad.write_text(content)
    argv = ["evaluate", str(run.model), str(run.root), "--labels", str(bad)]
    assert main(argv) == 1
    assert message in _error_line(capsys.readouterr().err)


def test_evaluate_missing_labels_file(dcase2023_run, tmp_path, capsys):
    run = dcase2023_run
    argv = ["evaluate", str(run.model), str(run.root)]
    assert main([*argv, "--labels", str(tmp_path / "nope.csv")]) == 1
    assert "does not exist" in _error_line(capsys.readouterr().err)


# ------------------------------------------------- plain and MIMII folders
def _write_mimii(root: Path) -> Path:
    """MIMII's layout: fan/id_XX/{normal,abnormal}/NNNNNNNN.wav, 2 IDs."""
    rng = np.random.RandomState(1)
    fan = root / "fan"
    for k, machine_id in enumerate(("id_00", "id_04")):
        for i in range(6):
            wave = _clip(rng, 300 + 500 * k, False)
            write_audio(fan / machine_id / "normal" / f"{i:08d}.wav", wave)
        for i in range(2):
            wave = _clip(rng, 300 + 500 * k, True)
            write_audio(fan / machine_id / "abnormal" / f"{i:08d}.wav", wave)
    return fan


def test_train_on_a_plain_folder_of_one_machine(tmp_path, capsys):
    rng = np.random.RandomState(2)
    folder = tmp_path / "pump_7"
    for i in range(6):
        write_audio(folder / f"rec{i}.wav", _clip(rng, 400, False))
    out = tmp_path / "pump.skasd"
    assert main(["train", str(folder), "-o", str(out), *FAST_TRAIN]) == 0
    assert "1 machine ID(s) (pump_7), a plain folder" in capsys.readouterr().err
    det, meta = load_model(out, return_metadata=True)
    assert det.machine_ids_.tolist() == ["pump_7"]
    assert meta["machine_type"] == "pump_7" and meta["split"] is None
    # Scored back from the same folder: the folder names the machine ID.
    csv_out = tmp_path / "s.csv"
    assert main(["score", str(out), str(folder), "--csv", str(csv_out), "-q"]) == 0
    rows = _read_csv(csv_out)
    assert len(rows) == 6 and {r["machine_id_source"] for r in rows} == {"folder"}


def test_train_and_score_a_mimii_style_tree(tmp_path, capsys):
    fan = _write_mimii(tmp_path)
    out = tmp_path / "m.skasd"
    assert main(["train", str(fan), "-o", str(out), *FAST_TRAIN]) == 0
    err = capsys.readouterr().err
    assert "12 normal clip(s) of 2 machine ID(s) (id_00, id_04)" in err
    det, meta = load_model(out, return_metadata=True)
    assert det.machine_ids_.tolist() == ["id_00", "id_04"]
    assert meta["machine_type"] == "fan"
    # abnormal/ clips are never trained on.
    assert not any("abnormal" in p for p in meta["training_paths"])
    # Without --recursive a machine folder holds no audio of its own.
    assert main(["score", str(out), str(fan), "-q"]) == 1
    assert "--recursive" in _error_line(capsys.readouterr().err)
    csv_out = tmp_path / "s.csv"
    argv = ["score", str(out), str(fan), "-r", "--csv", str(csv_out), "-q"]
    assert main(argv) == 0
    rows = _read_csv(csv_out)
    assert len(rows) == 16
    for row in rows:
        assert row["machine_id_source"] == "folder"
        assert row["machine_id"] == Path(row["path"]).parent.parent.name


def test_train_folder_without_audio_says_what_to_do(tmp_path, capsys):
    (tmp_path / "empty" / "id_00").mkdir(parents=True)
    assert main(["train", str(tmp_path / "empty"), *FAST_TRAIN]) == 1
    assert "--recursive" in _error_line(capsys.readouterr().err)


def test_score_scoring_option_switches_the_back_end(cli_model, dcase_root, tmp_path):
    files = _test_files(dcase_root)[:4]
    det = load_model(cli_model)
    X = load_audios(files).waves
    ids = [Path(f).name.split("_", 1)[1][:5] for f in files]
    out = tmp_path / "km.csv"
    argv = ["score", str(cli_model), *files, "--scoring", "kmeans"]
    assert main([*argv, "--csv", str(out), "-q"]) == 0
    expected = -det.set_params(scoring="kmeans").score_samples(X, ids)
    got = [float(r["anomaly_score"]) for r in _read_csv(out)]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_score_table_keeps_six_significant_digits(cli_model, dcase_root, capsys):
    wav = dcase_root / "fan" / "test" / "normal_id_00_00000000.wav"
    assert main(["score", str(cli_model), str(wav), "--scoring", "kmeans"]) == 0
    printed = capsys.readouterr().out.splitlines()[1].split()[2]
    det = load_model(cli_model).set_params(scoring="kmeans")
    value = -det.score_samples(load_audios([wav]).waves, ["id_00"])[0]
    assert printed == f"{value:.6g}"
    assert float(printed) != 0.0


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["--help"], "score"),
        (["train", "--help"], "noisy_arcmix"),
        (["score", "--help"], "fusion"),
        (["evaluate", "--help"], "--labels"),
        (["demo", "--help"], "usage"),
        (["train"], "required"),  # a usage error: no torch either
    ],
)
def test_help_imports_neither_torch_nor_the_estimator(argv, shown):
    code = (
        "import sys; from sk_asd.cli.main import main; "
        f"status = main({argv!r}); "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'sk_asd.estimator' not in sys.modules; sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode in (0, 2), done.stderr
    assert "torch imported" not in done.stderr
    assert shown in done.stdout + done.stderr


def test_help_constants_read_from_source_match_the_modules():
    # The command line reads defaults and choices from the source without
    # importing torch; they must equal what the modules define.
    from sk_asd import AnomalousSoundDetector
    from sk_asd.cli.constants import detector_defaults, package_constant
    from sk_asd.estimator.backends import SCORING_BACKENDS
    from sk_asd.io.model import MODEL_SUFFIX
    from sk_asd.nn.losses import LOSSES

    assert detector_defaults() == AnomalousSoundDetector().get_params()
    assert package_constant("estimator.backends", "SCORING_BACKENDS") == (
        SCORING_BACKENDS
    )
    assert package_constant("nn.losses", "LOSSES") == LOSSES
    assert package_constant("io.model", "MODEL_SUFFIX") == MODEL_SUFFIX
    # A value that is not a literal falls back to importing the module.
    from sk_asd.estimator.inference import BACKBONE_CHUNK_PIXELS

    assert package_constant("estimator.inference", "BACKBONE_CHUNK_PIXELS") == (
        BACKBONE_CHUNK_PIXELS
    )


def test_load_progress_prints_plain_lines_at_intervals(capsys):
    import importlib

    cli = importlib.import_module("sk_asd.cli.main")
    clock = iter([0.0, 0.5, 2.5, 3.0, 5.0, 5.5]).__next__
    progress = cli._Progress(cli._Reporter(quiet=False), clock=clock)  # at 0.0
    for done in range(1, 6):
        progress(done, 5)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "sk-asd: loaded 2/5 clip(s), 2 s elapsed, about 4 s left",
        "sk-asd: loaded 4/5 clip(s), 5 s elapsed, about 1 s left",
        "sk-asd: loaded 5/5 clip(s), 6 s elapsed",
    ]
    # A load that ends within the interval shows nothing; --quiet nothing.
    quick = cli._Progress(
        cli._Reporter(quiet=False), clock=iter([0.0, 0.1, 0.2]).__next__
    )
    quick(1, 2)
    quick(2, 2)
    silent = cli._Progress(
        cli._Reporter(quiet=True), "scored", clock=iter([0.0, 9.0]).__next__
    )
    silent(1, 1)
    assert capsys.readouterr().err == ""


def test_scoring_in_progress_chunks_gives_the_scores_of_one_call(
    cli_model, dcase_root, monkeypatch, capsys
):
    import importlib

    cli = importlib.import_module("sk_asd.cli.main")
    det = load_model(cli_model)
    files = sorted((dcase_root / "fan" / "test").glob("*.wav"))
    X = load_audios(files).waves
    ids = ["id_00"] * (len(files) - 2) + [None, None]
    whole = cli._score_clips(det, X, ids)
    # Chunks of one batch each: several score_details calls.
    monkeypatch.setattr(cli, "PROGRESS_BATCHES", 1)
    monkeypatch.setattr(det, "batch_size_", 2)
    seen: list[int] = []
    real = det.score_details

    def spy(X_part, machine_ids=None):
        seen.append(len(X_part))
        return real(X_part, machine_ids=machine_ids)

    monkeypatch.setattr(det, "score_details", spy)
    chunked = cli._score_clips(det, X, ids, report=cli._Reporter(quiet=True))
    assert len(seen) > 2 and max(seen) <= 2
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5, atol=1e-6)
    assert chunked[1] == whole[1]
    np.testing.assert_array_equal(chunked[2], whole[2])


def test_channel_option_for_multichannel_files(tmp_path, capsys, monkeypatch):
    import importlib

    rng = np.random.RandomState(3)
    folder = tmp_path / "valve"
    for i in range(6):
        near, far = _clip(rng, 300, False), _clip(rng, 900, True)
        write_audio(folder / f"rec{i}.wav", np.stack([near, far], axis=1))
    out = tmp_path / "valve.skasd"
    argv = ["train", str(folder), "-o", str(out), *FAST_TRAIN]
    assert main([*argv, "--channel", "each"]) == 0
    assert "2 channels per file, each kept" in capsys.readouterr().err
    det = load_model(out)
    assert det.channels == "each"
    # Scored per file: each (the mean of the channels' scores), mean or one.
    scores = {}
    for rule in ("each", "mean", "1"):
        csv_out = tmp_path / f"{rule}.csv"
        argv = ["score", str(out), str(folder), "--channel", rule]
        assert main([*argv, "--csv", str(csv_out), "-q"]) == 0
        rows = _read_csv(csv_out)
        assert len(rows) == 6
        scores[rule] = np.array([float(r["anomaly_score"]) for r in rows])
    X = load_audios(sorted(folder.glob("*.wav")), channel="each").waves
    expected = -det.score_samples(X.reshape(6, 2, -1), ["valve"] * 6)
    np.testing.assert_allclose(scores["each"], expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(scores["each"], scores["1"])
    # A bad rule is a usage error; mixed channel counts name the fix.
    assert main(["score", str(out), str(folder), "--channel", "left"]) == 2
    assert "not 'mean', 'each' or a channel index" in capsys.readouterr().err
    write_audio(folder / "mono.wav", _clip(rng, 300, False))
    assert main(["score", str(out), str(folder), "--channel", "each"]) == 1
    assert "--channel mean" in _error_line(capsys.readouterr().err)
    # Training sets too large for memory are read as the channel mean.
    cli = importlib.import_module("sk_asd.cli.main")
    monkeypatch.setattr(cli, "STREAM_BYTES", 1)
    argv = ["train", str(folder), "-o", str(tmp_path / "x.skasd"), *FAST_TRAIN]
    assert main([*argv, "--channel", "each"]) == 1
    assert "--channel mean" in _error_line(capsys.readouterr().err)
