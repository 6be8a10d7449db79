"""Tests for sk_asd.io.model: save_model / load_model and their errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
import torch.serialization

import sk_asd
from sk_asd import AnomalousSoundDetector
from sk_asd.io import (
    MODEL_SUFFIX,
    ModelFileNotFoundError,
    ModelLoadError,
    load_model,
    save_model,
)
from tests.conftest import FAST, tiny_clips

TINY = {**FAST, "max_epochs": 1}


@pytest.fixture(scope="module")
def data():
    return tiny_clips(n_per_machine=6)


@pytest.fixture(scope="module")
def fitted(data):
    X, ids = data
    return AnomalousSoundDetector(**TINY).fit(X, ids)


def test_round_trip_gives_identical_scores_and_metadata(fitted, data, tmp_path):
    X, ids = data
    out = save_model(
        fitted,
        tmp_path / f"fan{MODEL_SUFFIX}",
        machine_type="fan",
        training_paths=["a.wav", tmp_path / "b.wav"],
        extra={"split": "test", "n": np.int64(3)},
    )
    assert out == tmp_path / "fan.skasd" and out.is_file()
    loaded, meta = load_model(out, return_metadata=True)
    assert isinstance(loaded, AnomalousSoundDetector)
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), fitted.score_samples(X, ids)
    )
    np.testing.assert_array_equal(loaded.predict(X, ids), fitted.predict(X, ids))
    assert meta["sk_asd_version"] == sk_asd.__version__
    assert meta["sample_rate"] == fitted.sample_rate == 16000
    assert meta["n_features_in"] == fitted.n_features_in_ == X.shape[1]
    assert meta["machine_type"] == "fan"
    assert meta["machine_ids"] == ["a", "b"]
    # Without a dataset folder, training paths are stored as given: no
    # absolute path of the training machine is added behind the user's back.
    assert meta["training_paths"] == ["a.wav", str(tmp_path / "b.wav")]
    assert meta["training_paths_relative"] is False
    # Extra entries are kept, as plain Python values.
    assert meta["split"] == "test" and type(meta["n"]) is int
    # No stray temporary file is left next to the model.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fan.skasd"]


def test_metadata_is_optional_and_load_returns_the_detector_alone(fitted, tmp_path):
    out = save_model(fitted, tmp_path / "sub" / "dir" / "m.skasd")
    loaded = load_model(out)
    assert isinstance(loaded, AnomalousSoundDetector)
    meta = load_model(out, return_metadata=True)[1]
    assert meta["machine_type"] is None and meta["training_paths"] is None


def test_model_file_gets_ordinary_permissions(fitted, tmp_path):
    out = save_model(fitted, tmp_path / "m.skasd")
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_training_paths_are_stored_relative_to_the_dataset_folder(fitted, tmp_path):
    root = tmp_path / "data"
    paths = [root / "fan" / "train" / "a.wav", root / "fan" / "train" / "b.wav"]
    out = save_model(fitted, tmp_path / "m.skasd", training_paths=paths, data_dir=root)
    meta = load_model(out, return_metadata=True)[1]
    assert meta["training_paths"] == ["fan/train/a.wav", "fan/train/b.wav"]
    assert meta["training_paths_relative"] is True
    assert meta["data_dir_name"] == "data"
    assert str(tmp_path) not in out.read_bytes().decode("latin-1")


def test_a_bare_joblib_dump_loads_only_when_trusted(fitted, data, tmp_path):
    X, ids = data
    joblib.dump(fitted, tmp_path / "bare.joblib")
    with pytest.raises(ModelLoadError, match="trust_pickle=True"):
        load_model(tmp_path / "bare.joblib")
    with pytest.warns(UserWarning, match="runs any code"):
        loaded, meta = load_model(
            tmp_path / "bare.joblib", return_metadata=True, trust_pickle=True
        )
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), fitted.score_samples(X, ids)
    )
    assert meta["sk_asd_version"] is None
    assert meta["training_paths"] is None
    assert meta["n_features_in"] == X.shape[1]
    assert meta["machine_ids"] == ["a", "b"]


def test_saving_needs_a_fitted_detector(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_model(AnomalousSoundDetector(), tmp_path / "m.skasd")
    with pytest.raises(TypeError, match="AnomalousSoundDetector"):
        save_model(object(), tmp_path / "m.skasd")
    assert not (tmp_path / "m.skasd").exists()


def test_missing_file_is_a_file_not_found_error_naming_it(tmp_path):
    missing = tmp_path / "nope.skasd"
    with pytest.raises(ModelFileNotFoundError) as info:
        load_model(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ModelLoadError)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    ("content", "trust", "reason"),
    [
        (b"", False, "empty"),
        (b"this is not a model", False, "corrupt"),
        (b"\x80\x04\x95garbage-after-a-pickle-header", False, "pickle"),
        (b"\x80\x04\x95garbage-after-a-pickle-header", True, "corrupt"),
        (b"PK\x03\x04 a zip header and nothing else", False, "corrupt"),
    ],
)
def test_corrupt_file_names_the_file(tmp_path, content, trust, reason):
    bad = tmp_path / "bad.skasd"
    bad.write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as info:
        if trust:
            with pytest.warns(UserWarning, match="pickle"):
                load_model(bad, trust_pickle=True)
        else:
            load_model(bad)
    assert str(bad) in str(info.value)


def test_truncated_model_file_is_reported(fitted, tmp_path):
    good = save_model(fitted, tmp_path / "good.skasd")
    cut = tmp_path / "cut.skasd"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt") as info:
        load_model(cut)
    assert "cut.skasd" in str(info.value)


def test_folder_is_not_a_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="folder"):
        load_model(tmp_path)


def test_other_pickled_objects_are_refused(tmp_path):
    other = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2, 3]}, other)
    with (
        pytest.raises(ModelLoadError, match="not an sk_asd model") as info,
        pytest.warns(UserWarning, match="pickle"),
    ):
        load_model(other, trust_pickle=True)
    assert str(other) in str(info.value)


def test_unfitted_detector_file_is_refused(tmp_path):
    path = tmp_path / "unfitted.joblib"
    joblib.dump(AnomalousSoundDetector(), path)
    with (
        pytest.raises(ModelLoadError, match="never fitted"),
        pytest.warns(UserWarning, match="pickle"),
    ):
        load_model(path, trust_pickle=True)


def test_newer_pickle_format_version_asks_for_an_upgrade(fitted, tmp_path):
    path = tmp_path / "future.skasd"
    joblib.dump(
        {
            "format": "sk_asd.model",
            "format_version": 99,
            "metadata": {},
            "estimator": fitted,
        },
        path,
    )
    with (
        pytest.raises(ModelLoadError, match="upgrade sk_asd"),
        pytest.warns(UserWarning, match="pickle"),
    ):
        load_model(path, trust_pickle=True)


def test_load_error_pickles():
    err = ModelFileNotFoundError("x.skasd")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ModelFileNotFoundError
    assert (
        str(again)
        == str(err)
        == ("Cannot load model file 'x.skasd': the file does not exist.")
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_trained_model_loads_on_a_cpu_only_machine(data, tmp_path):
    X, ids = data
    det = AnomalousSoundDetector(**{**TINY, "device": "cuda"}).fit(X, ids)
    path = save_model(det, tmp_path / "cuda.skasd")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", det.score_samples(X, ids))
    # A child process that sees no GPU plays the CPU-only machine.
    script = (
        "import numpy as np, sys\n"
        "from sk_asd.io import load_model\n"
        "d = sys.argv[1]\n"
        "det = load_model(d + '/cuda.skasd')\n"
        "assert str(det.net_.device) == 'cpu', det.net_.device\n"
        "X = np.load(d + '/X.npy')\n"
        "got = det.score_samples(X, ['a'] * 6 + ['b'] * 6)\n"
        "np.testing.assert_allclose(got, np.load(d + '/expected.npy'), rtol=1e-3)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert path.is_file()


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="simulates a machine without a CUDA GPU"
)
def test_cuda_model_file_loads_on_this_cpu_only_machine(fitted, data, tmp_path):
    # The safe format records the net's device; tensors are stored as arrays.
    X, ids = data
    as_if_cuda = pickle.loads(pickle.dumps(fitted))
    as_if_cuda.net_.device = "cuda"
    as_if_cuda.set_params(device="cuda")
    path = save_model(as_if_cuda, tmp_path / "cuda.skasd")
    with pytest.warns(UserWarning, match="no CUDA GPU"):
        loaded = load_model(path)
    assert str(loaded.net_.device) == "cpu" and loaded.device == "cuda"
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), fitted.score_samples(X, ids)
    )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="simulates a machine without a CUDA GPU"
)
def test_pickled_file_with_cuda_tensors_loads_on_this_cpu_only_machine(
    fitted, data, tmp_path, monkeypatch
):
    # What a CUDA-trained detector pickles: a net whose device is "cuda" and
    # storages tagged "cuda:0" (torch.save records location_tag(storage)).
    X, ids = data
    as_if_cuda = pickle.loads(pickle.dumps(fitted))
    as_if_cuda.net_.device = "cuda"
    as_if_cuda.set_params(device="cuda")
    path = tmp_path / "cuda.joblib"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        joblib.dump(as_if_cuda, path)

    with pytest.warns(UserWarning) as record:
        loaded = load_model(path, trust_pickle=True)
    # skorch says it maps the network to the CPU.
    assert any("no CUDA devices" in str(w.message) for w in record)
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), fitted.score_samples(X, ids)
    )
