"""The safe model format: hostile files execute nothing, real ones round-trip.

Issue 15, item 1: model files were pickles, so loading one ran any code it
held. These tests fail on the pickle-based format.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from sk_asd import AnomalousSoundDetector
from sk_asd.cli.main import main
from sk_asd.estimator.loss_params import LOSS_PARAMS
from sk_asd.io import ModelLoadError, ModelVersionWarning, load_model, save_model
from sk_asd.io.archive import read_archive, write_archive
from tests.conftest import FAST, tiny_clips

TINY = {**FAST, "max_epochs": 1}


class _Payload:
    """Unpickling this creates ``marker``: the stand-in for os.system(...)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def data():
    return tiny_clips(n_per_machine=6)


@pytest.fixture(scope="module")
def fitted(data):
    X, ids = data
    return AnomalousSoundDetector(**TINY).fit(X, ids)


def _malicious_model(path: Path, marker: Path, fitted) -> Path:
    """A file in the old format whose metadata runs code when unpickled."""
    joblib.dump(
        {
            "format": "sk_asd.model",
            "format_version": 1,
            "metadata": {"note": _Payload(marker)},
            "estimator": fitted,
        },
        path,
    )
    return path


def _rewrite(path: Path, edit) -> Path:
    """Rewrite a model file's document with ``edit(document, arrays)``."""
    document, arrays, state_dicts = read_archive(path)
    edit(document, arrays)
    return write_archive(path, document, arrays, state_dicts)


# ------------------------------------------------------------ hostile files
def test_malicious_pickle_is_refused_by_load_model(fitted, tmp_path):
    marker = tmp_path / "pwned"
    model = _malicious_model(tmp_path / "evil.skasd", marker, fitted)
    with pytest.raises(ModelLoadError, match="pickle.*arbitrary code") as info:
        load_model(model)
    assert not marker.exists()
    assert "trust_pickle=True" in str(info.value) and str(model) in str(info.value)
    # The file really is hostile: trusting it runs the payload.
    with pytest.warns(UserWarning, match="runs any code"):
        load_model(model, trust_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_malicious_pickle_is_refused_by_the_cli(fitted, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    model = _malicious_model(tmp_path / "evil.skasd", marker, fitted)
    # The model is loaded before any audio is looked at.
    argv = [command, str(model), str(tmp_path / "audio")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "sk-asd: error: Cannot load model file" in err
    assert "--trust-pickle" in err


def test_object_array_member_is_not_unpickled(fitted, tmp_path):
    marker = tmp_path / "pwned"
    model = save_model(fitted, tmp_path / "m.skasd")
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    # Replace the first array member with a pickled object array.
    tampered = tmp_path / "tampered.skasd"
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "data/0.npy":
                payload = buffer.getvalue()
            dst.writestr(info, payload)
    with pytest.raises(ModelLoadError, match="not a valid array"):
        load_model(tampered)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d, a: d["estimator"]["params"].update(
                evil={"kind": "json", "value": 1}
            ),
            "parameters this sk_asd does not have",
        ),
        (
            lambda d, a: d["estimator"]["attributes"].update(
                __class__={"kind": "json", "value": 1}
            ),
            "refused",
        ),
        (
            lambda d, a: d["estimator"]["attributes"].update(
                offset_={"kind": "json", "value": 1}
            ),
            "not a fitted attribute",
        ),
        (
            lambda d, a: d["estimator"]["params"].update(
                n_mels={"kind": "json", "value": "many"}
            ),
            "n_mels",
        ),
        (
            lambda d, a: d["estimator"]["params"].update(
                loss_params={
                    "kind": "mapping",
                    "items": {"margin": {"kind": "json", "value": 9.0}},
                }
            ),
            r"loss_params\['margin'\]",
        ),
        (
            lambda d, a: d["estimator"]["attributes"]["loss_params_"]["items"].update(
                scale={"kind": "json", "value": -1.0}
            ),
            "loss_params_ must give a valid value",
        ),
        (
            lambda d, a: d["estimator"]["attributes"]["speed_"]["items"].update(
                loader_workers={"kind": "json", "value": -3}
            ),
            r"speed_\['loader_workers'\]",
        ),
        (lambda d, a: d["estimator"].update(**{"class": "os.system"}), "unknown"),
        (lambda d, a: d["estimator"].pop("net"), "incomplete"),
    ],
)
def test_tampered_documents_are_refused_with_a_reason(fitted, tmp_path, edit, message):
    model = _rewrite(save_model(fitted, tmp_path / "m.skasd"), edit)
    with pytest.raises(ModelLoadError, match=message):
        load_model(model)


def test_weights_that_do_not_fit_the_network_are_refused(fitted, tmp_path):
    model = _rewrite(
        save_model(fitted, tmp_path / "m.skasd"),
        # The network is built from the fitted setting (n_mels_), not from
        # the parameter, which may be "auto".
        lambda d, a: d["estimator"]["attributes"].update(
            n_mels_={"kind": "json", "value": 16}
        ),
    )
    with pytest.raises(ModelLoadError, match="do not fit the network"):
        load_model(model)


# --------------------------------------------------------------- round trip
@pytest.mark.parametrize(
    "setting",
    [
        {},
        {"crop_seconds": 0.15},
        {"machines": ("only",)},
        {
            "loss": "subcluster_adacos",
            "loss_params": {"n_subclusters": 2, "bias_free": True},
        },
    ],
    ids=["two-machines", "crops", "one-machine", "adacos"],
)
def test_round_trip_scores_identically_for_every_backend(tmp_path, setting):
    setting = dict(setting)
    X, ids = tiny_clips(n_per_machine=6, machines=setting.pop("machines", ("a", "b")))
    det = AnomalousSoundDetector(**{**TINY, **setting}).fit(X, ids)
    loaded = load_model(save_model(det, tmp_path / "m.skasd"))
    assert loaded.get_params() == det.get_params()
    assert loaded.n_classes_ == det.n_classes_
    np.testing.assert_array_equal(loaded.machine_ids_, det.machine_ids_)
    assert len(loaded.net_.history) == len(det.net_.history)
    for backend in ("nll", "cosine", "kmeans"):
        det.set_params(scoring=backend)
        loaded.set_params(scoring=backend)
        np.testing.assert_array_equal(
            loaded.score_samples(X, ids), det.score_samples(X, ids), err_msg=backend
        )
        np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
        np.testing.assert_array_equal(loaded.predict(X, ids), det.predict(X, ids))
    np.testing.assert_array_equal(loaded.transform(X), det.transform(X))


# ------------------------------------------------ older parameter layouts
#: The criterion options that were constructor parameters of their own
#: before loss_params, as a model file of that release stored them.
OLD_LOSS_LAYOUT = {
    "margin": 0.5,
    "scale": 30.0,
    "mixup_alpha": 0.5,
    "trainable_centres": False,
    "n_subclusters": 16,
    "bias_free": False,
}


@pytest.fixture(scope="module")
def fitted_custom_loss(data):
    X, ids = data
    options = {"margin": 0.5, "trainable_centres": False}
    return AnomalousSoundDetector(**TINY, loss_params=options).fit(X, ids)


def _old_layout(n_loader_workers: int, loss_layout: dict):
    """A document edit: today's file as the release before loss_params wrote it."""

    def edit(document, arrays):
        params = document["estimator"]["params"]
        attributes = document["estimator"]["attributes"]
        params.pop("loss_params")
        params.update({k: {"kind": "json", "value": v} for k, v in loss_layout.items()})
        params["n_loader_workers"] = {"kind": "json", "value": n_loader_workers}
        attributes.pop("loss_params_")
        attributes["speed_"]["items"].pop("loader_workers")

    return edit


def test_files_in_the_old_parameter_layout_load_and_score_identically(
    fitted_custom_loss, data, tmp_path
):
    X, ids = data
    det = fitted_custom_loss
    model = _rewrite(
        save_model(det, tmp_path / "old.skasd"), _old_layout(0, OLD_LOSS_LAYOUT)
    )
    loaded = load_model(model)
    # Only the options that differ from the defaults are kept.
    assert loaded.loss_params == {"margin": 0.5, "trainable_centres": False}
    assert loaded.loss_params_ == det.loss_params_
    assert loaded.speed == "auto" and loaded.speed_ == det.speed_
    assert loaded.get_params() == det.get_params()
    assert loaded.net_.criterion_.margin == 0.5
    for backend in ("nll", "cosine", "kmeans", "fusion"):
        det.set_params(scoring=backend)
        loaded.set_params(scoring=backend)
        np.testing.assert_array_equal(
            loaded.score_samples(X, ids), det.score_samples(X, ids), err_msg=backend
        )
    det.set_params(scoring="auto")
    loaded.set_params(scoring="auto")
    # Saved again, it is a file of today's layout.
    again = load_model(save_model(loaded, tmp_path / "new.skasd"))
    assert again.get_params() == det.get_params()


def test_old_n_loader_workers_loads_as_a_speed_option(fitted, tmp_path):
    model = _rewrite(
        save_model(fitted, tmp_path / "old.skasd"), _old_layout(2, LOSS_PARAMS)
    )
    loaded = load_model(model)
    assert loaded.speed == {"level": "auto", "loader_workers": 2}
    assert loaded.speed_ == {**fitted.speed_, "loader_workers": 2}
    assert loaded.net_.iterator_valid__num_workers == 2
    # All criterion options at their defaults: loss_params=None.
    assert loaded.loss_params is None and loaded.loss_params_ == LOSS_PARAMS
    # Both the old and the new name: refused, not guessed.
    model = _rewrite(
        model,
        lambda d, a: d["estimator"]["params"].update(
            loss_params={"kind": "json", "value": None}
        ),
    )
    with pytest.raises(ModelLoadError, match="both 'loss_params'"):
        load_model(model)


def test_the_oldest_layout_maps_switches_and_loader_workers_onto_speed():
    from sk_asd.estimator.legacy import upgrade_params

    old = {"channels_last": True, "precision": "float32", "n_loader_workers": 2}
    assert upgrade_params({**old, "margin": 0.7, "bias_free": True}) == {
        "speed": {"level": "reference", "channels_last": True, "loader_workers": 2},
        "loss_params": {"bias_free": True},
    }
    # A level and no workers: speed unchanged; today's layout passes through.
    assert upgrade_params({"speed": "fastest", "n_loader_workers": 0}) == {
        "speed": "fastest"
    }
    today = {"speed": {"loader_workers": 1}, "loss_params": None}
    assert upgrade_params(today) == today


def test_pickles_in_the_old_parameter_layout_load(fitted_custom_loss, data):
    X, ids = data
    det = fitted_custom_loss
    old = pickle.loads(pickle.dumps(det))
    state = vars(old)
    del state["loss_params"], state["loss_params_"]
    state.update(OLD_LOSS_LAYOUT, n_loader_workers=0)
    state["speed_"] = {k: v for k, v in det.speed_.items() if k != "loader_workers"}
    loaded = pickle.loads(pickle.dumps(old))
    assert not hasattr(loaded, "margin") and not hasattr(loaded, "n_loader_workers")
    assert loaded.get_params() == det.get_params()
    assert loaded.loss_params_ == det.loss_params_ and loaded.speed_ == det.speed_
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), det.score_samples(X, ids)
    )


def test_loading_leaves_the_torch_random_stream_alone(fitted, tmp_path):
    model = save_model(fitted, tmp_path / "m.skasd")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model(model)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_random_state_instance_and_numpy_scalars_round_trip(data, tmp_path):
    X, ids = data
    det = AnomalousSoundDetector(**{**TINY, "random_state": np.random.RandomState(3)})
    det.fit(X, ids)
    det.n_mels = np.int64(det.n_mels)  # as a grid search may set it
    loaded = load_model(save_model(det, tmp_path / "m.skasd"))
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(1000) == det.random_state.randint(1000)
    assert loaded.n_mels == 32 and isinstance(loaded.n_mels, np.int64)


def test_fitted_attribute_of_unsupported_type_is_named(fitted, tmp_path):
    det = pickle.loads(pickle.dumps(fitted))
    det.lookup_ = {"a": object()}
    det.callback_ = print
    with pytest.raises(TypeError, match="attr.callback_.*attr.lookup_.a"):
        save_model(det, tmp_path / "m.skasd")
    assert not (tmp_path / "m.skasd").exists()


def test_new_fitted_arrays_and_scalars_are_saved_generically(fitted, tmp_path):
    det = pickle.loads(pickle.dumps(fitted))
    det.extra_arrays_ = (np.arange(3), np.ones((2, 2), dtype=np.float32))
    det.per_machine_ = {"a": np.array([1.5]), "b": np.array([2.5])}
    det.labels_ = np.array(["x", 3], dtype=object)
    det.note_ = "text"
    det.count_ = np.int32(7)
    loaded = load_model(save_model(det, tmp_path / "m.skasd"))
    assert isinstance(loaded.extra_arrays_, tuple)
    np.testing.assert_array_equal(loaded.extra_arrays_[1], det.extra_arrays_[1])
    assert loaded.extra_arrays_[1].dtype == np.float32
    np.testing.assert_array_equal(loaded.per_machine_["b"], [2.5])
    assert loaded.labels_.tolist() == ["x", 3]
    assert loaded.note_ == "text"
    assert loaded.count_ == 7 and isinstance(loaded.count_, np.int32)


def test_pickling_the_estimator_still_works(fitted, data, tmp_path):
    X, ids = data
    again = pickle.loads(pickle.dumps(fitted))
    joblib.dump(fitted, tmp_path / "det.joblib")
    again2 = joblib.load(tmp_path / "det.joblib")
    expected = fitted.score_samples(X, ids)
    np.testing.assert_array_equal(again.score_samples(X, ids), expected)
    np.testing.assert_array_equal(again2.score_samples(X, ids), expected)


# ----------------------------------------------------------------- versions
def test_versions_are_recorded(fitted, tmp_path):
    meta = load_model(save_model(fitted, tmp_path / "m.skasd"), return_metadata=True)[1]
    assert set(meta["versions"]) >= {"sk_asd", "torch", "scikit-learn", "skorch"}
    assert meta["versions"]["torch"] == torch.__version__


def test_other_major_version_warns(fitted, data, tmp_path):
    X, ids = data

    def older_torch(document, arrays):
        document["versions"]["torch"] = "1.13.1"

    model = _rewrite(save_model(fitted, tmp_path / "m.skasd"), older_torch)
    with pytest.warns(ModelVersionWarning, match=r"torch 1\.13\.1"):
        loaded = load_model(model)
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), fitted.score_samples(X, ids)
    )


def test_newer_format_warns_and_loads_when_it_can(fitted, tmp_path):
    def newer(document, arrays):
        document["format_version"] = 99

    model = _rewrite(save_model(fitted, tmp_path / "m.skasd"), newer)
    with pytest.warns(ModelVersionWarning, match="newer"):
        load_model(model)

    def newer_and_different(document, arrays):
        document["estimator"]["attributes"]["machine_ids_"] = {"kind": "v3"}

    _rewrite(model, newer_and_different)
    with (
        pytest.warns(ModelVersionWarning),
        pytest.raises(ModelLoadError, match="upgrade"),
    ):
        load_model(model)
