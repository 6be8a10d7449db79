"""Tests for sk_asd.estimator.speed: the speed levels and their resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sk_asd import AnomalousSoundDetector
from sk_asd.estimator import speed as speed_module
from sk_asd.estimator.legacy import ENGINE_SWITCHES
from sk_asd.estimator.net import cpu_supports_bf16
from sk_asd.estimator.persistence import decode_detector, encode_detector
from sk_asd.estimator.speed import SPEEDS, net_options, resolve_speed
from tests.conftest import FAST, tiny_clips


def test_levels_share_one_set_of_options_and_only_add_speed_ups():
    names = set(SPEEDS["reference"])
    assert all(set(options) == names for options in SPEEDS.values())
    # Each level keeps what the one before it switched on.
    levels = list(SPEEDS)
    assert levels[:2] == ["reference", "auto"]
    for slower, faster in zip(levels, levels[1:], strict=False):
        for name, value in SPEEDS[slower].items():
            if value is True:
                assert SPEEDS[faster][name] is True, (faster, name)
    assert SPEEDS["reference"]["precision"] == "float32"
    assert not any(v is True for v in SPEEDS["reference"].values())
    # compile and int8 are opt-in: the default compiles nothing.
    assert not SPEEDS["auto"]["compile"] and not SPEEDS["auto"]["int8_scoring"]


def test_auto_resolves_to_what_this_platform_runs():
    resolved = resolve_speed("auto", "cpu")
    assert resolved["level"] == "auto"
    assert resolved["precision"] == ("bfloat16" if cpu_supports_bf16() else "float32")
    assert resolved["fast_prelu"] is True
    # On a GPU: no CPU-only PReLU, no int8, even at the fastest level.
    assert resolve_speed("fastest", "cuda")["int8_scoring"] is False
    assert resolve_speed("auto", "cuda")["fast_prelu"] is False


def test_auto_uses_float32_where_bfloat16_would_be_emulated(monkeypatch):
    monkeypatch.setattr("sk_asd.estimator.net.cpu_supports_bf16", lambda: False)
    assert resolve_speed("auto", "cpu")["precision"] == "float32"


def test_fastest_drops_int8_where_torch_lacks_it(monkeypatch):
    monkeypatch.setattr(speed_module, "int8_available", lambda: False)
    assert resolve_speed("fastest", "cpu")["int8_scoring"] is False
    # A dict asks explicitly: kept, so that fit explains why it cannot run.
    assert resolve_speed({"int8_scoring": True}, "cpu")["int8_scoring"] is True


def test_a_dict_overrides_a_level():
    resolved = resolve_speed({"level": "reference", "stft_precision": "float64"}, "cpu")
    assert resolved == {
        **SPEEDS["reference"],
        "level": "custom",
        "stft_precision": "float64",
    }
    # The level defaults to "auto".
    assert resolve_speed({"retain_heap": False}, "cpu")["channels_last"] is True


@pytest.mark.parametrize(
    "speed, message",
    [
        ("turbo", "not a speed level"),
        ({"level": "turbo"}, "not a speed level"),
        ({"warp": True}, "unknown option 'warp'"),
        ({"precision": "int4"}, "precision"),
        ({"int8_scoring": "yes"}, "int8_scoring"),
    ],
)
def test_bad_speeds_are_rejected_with_the_choices(speed, message):
    with pytest.raises(ValueError, match=message):
        resolve_speed(speed, "cpu")


def test_net_options_route_every_option_to_the_net():
    options = net_options(resolve_speed("fastest", "cpu"))
    assert options["module__channels_last"] and options["compile_backbone"]
    assert net_options(resolve_speed("reference", "cpu"))["amp_dtype"] is None
    # Every option but the DataLoaders' workers, which the detector routes.
    assert len(options) == len(SPEEDS["reference"]) - 1
    assert not any("worker" in name for name in options)
    # Fused AdamW where torch has it; the reference passes None (AdamW's own
    # default), never False, which would change AdamW's default path.
    assert options["optimizer__fused"] is (
        True if speed_module.fused_adamw_available("cpu") else None
    )
    assert net_options(resolve_speed("reference", "cpu"))["optimizer__fused"] is None
    # A record fitted before the option existed builds AdamW as it did.
    old_record = resolve_speed("auto", "cpu")
    del old_record["fused_optimizer"]
    assert net_options(old_record)["optimizer__fused"] is None


def test_fused_optimizer_is_dropped_where_torch_has_none(monkeypatch):
    monkeypatch.setattr(speed_module, "fused_adamw_available", lambda device: False)
    assert resolve_speed("auto", "cpu")["fused_optimizer"] is False
    # A dict that asks for it explicitly is told why it cannot have it.
    with pytest.raises(ValueError, match=r"fused_optimizer.*no fused AdamW"):
        resolve_speed({"fused_optimizer": True}, "cpu")
    assert resolve_speed({"fused_optimizer": False}, "cpu")["fused_optimizer"] is False
    # A dict that only inherits it from its level drops it like the level.
    assert resolve_speed({"loader_workers": 1}, "cpu")["fused_optimizer"] is False


def test_fused_adamw_availability_is_checked_on_the_device():
    assert isinstance(speed_module.fused_adamw_available("cpu"), bool)
    if not torch.cuda.is_available():
        # No such device here: not available, and no exception.
        assert speed_module.fused_adamw_available("cuda") is False
        assert resolve_speed("auto", "cuda")["fused_optimizer"] is False


def test_loader_workers_is_a_count_of_every_level():
    assert all(options["loader_workers"] == 0 for options in SPEEDS.values())
    resolved = resolve_speed({"loader_workers": 2}, "cpu")
    assert resolved["loader_workers"] == 2 and resolved["channels_last"] is True
    assert resolve_speed({"loader_workers": np.int64(1)}, "cpu")["loader_workers"] == 1
    for bad in (-1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match=r"loader_workers.*int >= 0"):
            resolve_speed({"loader_workers": bad}, "cpu")


def test_detector_records_the_resolved_speed_and_builds_the_net_from_it():
    X, ids = tiny_clips(n_per_machine=4)
    det = AnomalousSoundDetector(**FAST).fit(X, ids)
    assert det.speed == "auto" and det.speed_ == resolve_speed("auto", "cpu")
    assert det.net_.cache_logmel and det.net_.fold_batchnorm
    assert det.net_.module_.backbone.channels_last
    fused = det.speed_["fused_optimizer"]
    assert det.net_.optimizer_.defaults["fused"] is (True if fused else None)
    ref = AnomalousSoundDetector(**FAST, speed="reference").fit(X, ids)
    assert ref.net_.optimizer_.defaults["fused"] is None
    with pytest.raises(ValueError, match="unknown option"):
        AnomalousSoundDetector(**FAST, speed={"turbo": True}).fit(X, ids)
    with pytest.raises(ValueError, match="speed"):
        AnomalousSoundDetector(**FAST, speed="turbo").fit(X, ids)


def test_models_written_with_the_old_engine_switches_load_as_speed(tmp_path):
    X, ids = tiny_clips(n_per_machine=4)
    det = AnomalousSoundDetector(**FAST, speed="reference").fit(X, ids)
    document, arrays, state_dicts = encode_detector(det)
    # What a file of the previous release held: the switches, no speed.
    old = {
        name: {"kind": "json", "value": SPEEDS["reference"][name]}
        for name in ENGINE_SWITCHES
    }
    old["channels_last"] = {"kind": "json", "value": True}
    document["params"].pop("speed")
    document["params"].update(old)
    document["attributes"].pop("speed_")
    loaded = decode_detector(document, arrays, state_dicts)
    assert loaded.speed == {"level": "reference", "channels_last": True}
    assert loaded.net_.module_.backbone.channels_last
    np.testing.assert_allclose(
        loaded.score_samples(X, ids), det.score_samples(X, ids), rtol=1e-5
    )
    # All at the old defaults: the reference level, scores unchanged.
    old["channels_last"] = {"kind": "json", "value": False}
    document["params"].update(old)
    loaded = decode_detector(document, arrays, state_dicts)
    assert loaded.speed == "reference"
    np.testing.assert_array_equal(
        loaded.score_samples(X, ids), det.score_samples(X, ids)
    )
