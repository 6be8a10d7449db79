"""int8 scoring: quantised 1x1 convolutions, their calibration, the net's path.

int8 changes numerics by design; these tests check that the change stays at
the size quantisation explains (about a per cent per layer, a fraction of a
per cent on embeddings) and that the calibration belongs to the weights it
was made on.  Its effect on AUC over seeds is measured by
``benchmarks/bench_speed_auc.py``.
"""

from __future__ import annotations

import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from sk_asd import AnomalousSoundDetector
from sk_asd.estimator import inference
from sk_asd.estimator.inference import INT8_CALIBRATION_CLIPS, weights_fingerprint
from sk_asd.estimator.net import ASDNet
from sk_asd.io import load_model, save_model
from sk_asd.nn.mobilefacenet import MobileFaceNet, fold_batchnorm
from sk_asd.nn.quantization import (
    Int8Conv2d,
    calibrate_input_ranges,
    int8_available,
    quantizable_convs,
    quantize_backbone,
)
from tests.conftest import FAST, tiny_clips
from tests.test_performance_options import _net

pytestmark = pytest.mark.skipif(
    not int8_available(), reason="torch build without oneDNN's int8 convolution"
)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.fixture
def eager_compile(monkeypatch):
    """``torch.compile`` as the identity: the int8 path runs eagerly (fast tests)."""
    monkeypatch.setattr(torch, "compile", lambda module, *args, **kwargs: module)


# ------------------------------------------------------------ the layer
@pytest.mark.parametrize("bias", [False, True])
def test_int8_conv_matches_the_float_conv_to_quantisation_error(bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 1, bias=bias).eval()
    x = torch.randn(2, 16, 5, 7) + 0.3
    layer = Int8Conv2d(conv, (float(x.min()), float(x.max())))
    with torch.no_grad():
        ref, out = conv(x), layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = layer(x)
    assert out.dtype == torch.float32 and out_bf16.dtype == torch.bfloat16
    assert out.shape == ref.shape
    # 8-bit inputs and weights: about 1 % (0.0 would mean no quantisation).
    assert 1e-4 < _relative_error(out, ref) < 0.03
    assert _relative_error(out_bf16, ref) < 0.03
    assert not conv.weight.requires_grad or conv.weight.grad is None


def test_int8_conv_clips_inputs_to_the_calibrated_range():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 1, bias=False).eval()
    x = torch.randn(1, 8, 4, 4)
    layer = Int8Conv2d(conv, (-1.0, 1.0))
    with torch.no_grad():
        clipped = conv(x.clamp(-1.0, 1.0))
        assert _relative_error(layer(x), clipped) < 0.03
        assert _relative_error(layer(x), conv(x)) > 0.05  # x leaves the range
    # Zero stays on the grid even for an all-positive range.
    assert int(Int8Conv2d(conv, (0.5, 2.0)).input_zero_point) == 0


def test_int8_conv_rejects_other_kernels():
    with pytest.raises(ValueError, match="1x1"):
        Int8Conv2d(nn.Conv2d(4, 4, 3), (-1.0, 1.0))


# ------------------------------------------------------- the backbone
@pytest.fixture(scope="module")
def folded():
    torch.manual_seed(0)
    backbone = MobileFaceNet(n_mels=32, embedding_dim=16, channels_last=True)
    backbone.train()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for _ in range(3):
            backbone(torch.randn(4, 3, 32, 40))
    return fold_batchnorm(backbone)


def test_quantizable_convs_are_the_1x1_convs_except_the_projection(folded):
    names = quantizable_convs(folded)
    assert names and not any(name.startswith("project") for name in names)
    for conv in names.values():
        assert conv.kernel_size == (1, 1) and conv.groups == 1
    n_1x1 = sum(
        1
        for name, m in folded.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
    )
    assert len(names) == n_1x1 - 1  # all but the embedding projection


def test_calibration_records_every_input_range_and_removes_its_hooks(folded):
    images = [torch.randn(3, 3, 32, 40), torch.randn(2, 3, 32, 40) * 2]
    ranges = calibrate_input_ranges(folded, images)
    assert set(ranges) == set(quantizable_convs(folded))
    seen = []
    conv = folded.expand[0]
    hook = conv.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        for x in images:
            folded(x)
    hook.remove()
    lo = min(float(t.min()) for t in seen)
    hi = max(float(t.max()) for t in seen)
    assert ranges["expand.0"] == pytest.approx((lo, hi))
    assert not any(m._forward_pre_hooks for m in folded.modules())


def test_quantized_backbone_embeds_like_the_float_one(folded):
    torch.manual_seed(1)
    calibration = [torch.randn(4, 3, 32, 40)]
    ranges = calibrate_input_ranges(folded, calibration)
    quantized = quantize_backbone(folded, ranges)
    n_int8 = sum(isinstance(m, Int8Conv2d) for m in quantized.modules())
    assert n_int8 == len(ranges)
    assert not any(isinstance(m, Int8Conv2d) for m in folded.modules())
    x = torch.randn(3, 3, 32, 40)
    with torch.no_grad():
        ref, out = folded(x), quantized(x)
    assert 1e-5 < _relative_error(out, ref) < 0.05
    # A convolution without a range stays in floating point.
    partial = quantize_backbone(folded, {"expand.0": ranges["expand.0"]})
    assert sum(isinstance(m, Int8Conv2d) for m in partial.modules()) == 1


# ------------------------------------------------------------- the net
@pytest.fixture(scope="module")
def data():
    X, ids = tiny_clips(n_per_machine=8)
    codes = np.unique(ids, return_inverse=True)[1].astype(np.int64)
    return X, codes


def _fit(data, **options) -> ASDNet:
    X, y = data
    torch.manual_seed(0)
    return _net(fold_batchnorm=True, **options).fit(X, y)


def _scores(net: ASDNet, X, y) -> np.ndarray:
    emb = net.forward(X)
    return net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()


def test_int8_scoring_is_calibrated_by_fit_and_scores_like_float(data):
    # The real path, compiled as it runs for users.
    X, y = data
    net = _fit(data, int8_scoring=True, amp_dtype="bfloat16")
    fingerprint, ranges = net.int8_calibration_
    assert fingerprint == weights_fingerprint(net.module_.backbone)
    copies = net.scoring_copies_
    assert set(ranges) == set(quantizable_convs(copies.folded(net.module_.backbone)))
    emb = net.forward(X)
    int8 = copies.cached(net.module_.backbone)["int8"][1]
    assert any(isinstance(m, Int8Conv2d) for m in int8[1].modules())
    net.int8_scoring = False
    ref = net.forward(X)
    cosine = torch.nn.functional.cosine_similarity(emb.float(), ref.float())
    assert cosine.min() > 0.999
    assert not torch.equal(emb, ref)  # int8 did run
    net.int8_scoring = True
    scores = _scores(net, X, y)
    net.int8_scoring = False
    np.testing.assert_allclose(scores, _scores(net, X, y), rtol=0.05, atol=1e-3)
    # A new calibration (every fit) reuses the compiled code: the scales are
    # tensors, not constants baked into the graph.
    net.int8_scoring = True
    graphs = counters["stats"]["unique_graphs"]
    net.partial_fit(X, y)
    assert "int8" not in copies.cached(net.module_.backbone)
    net.forward(X)
    assert "int8" in copies.cached(net.module_.backbone)
    assert counters["stats"]["unique_graphs"] == graphs


def test_calibration_spreads_over_the_training_clips(data, eager_compile, monkeypatch):
    seen: list[int] = []
    original = inference.calibration_images

    def spy(net, X, y):
        for images in original(net, X, y):
            seen.append(len(images))
            yield images

    monkeypatch.setattr(inference, "calibration_images", spy)
    _fit(data, int8_scoring=True)
    assert sum(seen) == min(len(data[0]), INT8_CALIBRATION_CLIPS)


def test_int8_scoring_on_crops(data, eager_compile):
    # Calibrated on the crops scoring embeds, scored crop by crop.
    X, _ = data
    crop = len(X[0]) // 2
    net = _fit(data, int8_scoring=True, crop_samples=crop)
    emb = net.forward(X)
    assert emb.ndim == 3 and emb.shape[0] == len(X)
    net.int8_scoring = False
    ref = net.forward(X)
    cosine = torch.nn.functional.cosine_similarity(emb, ref, dim=-1)
    assert cosine.min() > 0.999


def test_int8_scoring_warns_and_scores_in_float_when_weights_change(
    data, eager_compile
):
    X, _ = data
    net = _fit(data, int8_scoring=True)
    net.forward(X[:4])
    with torch.no_grad():
        net.module_.backbone.stem[0].weight.mul_(1.1)
    with pytest.warns(
        RuntimeWarning, match="weights changed since the last fit"
    ) as seen:
        changed = net.forward(X[:4])
        net.forward(X)  # several batches of the same weights: no new warning
    assert sum("weights changed" in str(w.message) for w in seen) == 1
    net.int8_scoring = False
    torch.testing.assert_close(changed, net.forward(X[:4]), atol=1e-5, rtol=1e-5)
    # partial_fit recalibrates: no warning afterwards.
    net.int8_scoring = True
    net.partial_fit(X, data[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        net.forward(X[:4])


def test_int8_calibration_survives_pickling(data, eager_compile):
    X, _ = data
    net = _fit(data, int8_scoring=True)
    emb = net.forward(X)
    clone = pickle.loads(pickle.dumps(net))
    assert clone.scoring_copies_.cached(clone.module_.backbone) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        torch.testing.assert_close(clone.forward(X), emb)


def test_failed_int8_compile_falls_back_to_eager_int8(data, monkeypatch):
    def broken_compile(module, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no compiler here")

        return call

    X, _ = data
    monkeypatch.setattr(torch, "compile", broken_compile)
    net = _fit(data, int8_scoring=True)
    with pytest.warns(RuntimeWarning, match="int8 scoring backbone failed"):
        emb = net.forward(X)
    assert "int8" in net.scoring_copies_.failed
    monkeypatch.setattr(torch, "compile", lambda module, *a, **k: module)
    net.scoring_copies_.clear()
    net.scoring_copies_.failed.clear()
    torch.testing.assert_close(net.forward(X), emb)


def test_int8_scoring_without_onednn_warns_and_scores_in_float(
    data, eager_compile, monkeypatch
):
    X, _ = data
    net = _fit(data, int8_scoring=True)
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    net.scoring_copies_.clear()
    with pytest.warns(RuntimeWarning, match="lacks oneDNN"):
        emb = net.forward(X[:4])
    net.int8_scoring = False
    torch.testing.assert_close(emb, net.forward(X[:4]))


def test_int8_scoring_refuses_a_gpu_device_before_training(data):
    net = _net(int8_scoring=True)
    net.device = "cuda"
    with pytest.raises(ValueError, match="CPU only"):
        net.fit(*data)
    assert not getattr(net, "initialized_", False)


def test_detector_with_int8_scoring(eager_compile):
    X, ids = tiny_clips(n_per_machine=8)
    det = AnomalousSoundDetector(speed="fastest", **FAST).fit(X, ids)
    ref = AnomalousSoundDetector(speed="compiled", **FAST).fit(X, ids)
    assert det.speed_["int8_scoring"] and not ref.speed_["int8_scoring"]
    assert det.net_.int8_calibration_ is not None
    scores, ref_scores = det.score_samples(X, ids), ref.score_samples(X, ids)
    assert np.isfinite(scores).all()
    # Same training (int8 only scores): the embeddings agree to quantisation
    # error ...
    embeddings = torch.as_tensor(det.net_.forward(X)).float().flatten(1)
    ref_embeddings = torch.as_tensor(ref.net_.forward(X)).float().flatten(1)
    cosine = torch.nn.functional.cosine_similarity(embeddings, ref_embeddings)
    assert cosine.min() > 0.999
    # ... and so do the scores within each machine.  Across machines the
    # fused score standardises by a within-machine spread that is nearly 0
    # for these near-identical tiny clips, so that the same tiny error can
    # shift a machine's scores as a whole (by ~2 % here), which leaves the
    # machine's ranking unchanged.
    for machine in np.unique(ids):
        own = ids == machine
        np.testing.assert_allclose(
            scores[own] - scores[own].mean(),
            ref_scores[own] - ref_scores[own].mean(),
            atol=0.05,
        )
    # A saved and loaded detector rebuilds the int8 copy from its calibration.
    loaded = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(loaded.score_samples(X, ids), scores)
    # So does one loaded from a (pickle-free) model file: the calibration is
    # stored as JSON and still matches the loaded weights (no warning).
    with tempfile.TemporaryDirectory() as tmp:
        from_file = load_model(save_model(det, Path(tmp) / "int8.skasd"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        np.testing.assert_array_equal(from_file.score_samples(X, ids), scores)
    with pytest.raises(ValueError, match="int8_scoring"):
        AnomalousSoundDetector(speed={"int8_scoring": "yes"}, **FAST).fit(X, ids)
