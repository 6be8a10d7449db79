"""Speed options: each one keeps the numbers sane, and training with it runs.

The options are measured by ``benchmarks/bench_throughput.py``; here they are
only checked for what they must not change: exact options (FastPReLU, cached
log-mels, heap settings, folded BatchNorm) give the fp32 results to float
rounding, channels-last to 1e-5, bfloat16 keeps the ranking of the scores.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skorch.callbacks import Callback

from sk_asd.estimator import inference, threads
from sk_asd.estimator.net import (
    ASDNet,
    cpu_supports_bf16,
    resolve_amp_dtype,
)
from sk_asd.estimator.threads import retained_heap, torch_threads
from sk_asd.nn import mobilefacenet
from sk_asd.nn.losses import MarginLoss
from sk_asd.nn.mobilefacenet import (
    ConvBlock,
    DepthwiseConv2d,
    FastPReLU,
    MobileFaceNet,
    fold_batchnorm,
)
from sk_asd.nn.network import TASTgramMFN
from tests.conftest import tiny_clips

N_MELS = 32


@pytest.fixture(scope="module")
def data():
    X, ids = tiny_clips(n_per_machine=8)
    codes = np.unique(ids, return_inverse=True)[1].astype(np.int64)
    return X, codes


def _net(**options) -> ASDNet:
    """A small ASDNet set up like AnomalousSoundDetector's."""
    return ASDNet(
        module=TASTgramMFN,
        module__n_mels=N_MELS,
        criterion=MarginLoss,
        criterion__n_classes=2,
        optimizer=torch.optim.AdamW,
        lr=1e-3,
        max_epochs=2,
        batch_size=4,
        iterator_train__shuffle=True,
        train_split=None,
        device="cpu",
        verbose=0,
        **options,
    )


def _fit_scores(data, **options) -> tuple[ASDNet, np.ndarray]:
    X, y = data
    torch.manual_seed(0)
    net = _net(**options).fit(X, y)
    emb = net.forward(X)
    scores = net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()
    assert torch.isfinite(emb).all() and np.isfinite(scores).all()
    return net, scores


@pytest.fixture(scope="module")
def fp32_scores(data):
    return _fit_scores(data)[1]


# ------------------------------------------------------------------ PReLU
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("n_parameters", [1, 6])
def test_fast_prelu_is_bitwise_prelu(channels_last, n_parameters):
    torch.manual_seed(0)
    ref, fast = torch.nn.PReLU(n_parameters), FastPReLU(n_parameters)
    with torch.no_grad():
        ref.weight.uniform_(-0.5, 0.5)
        fast.weight.copy_(ref.weight)
    x = torch.randn(3, 6, 5, 7)
    x[0, 0, 0, :3] = 0.0  # x == 0 takes the slope side, as in F.prelu
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yf = ref(xr), fast(xf)
    yr.backward(grad)
    yf.backward(grad)
    assert torch.equal(yr, yf)
    assert torch.equal(xr.grad, xf.grad)
    torch.testing.assert_close(ref.weight.grad, fast.weight.grad)
    assert yf.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_fast_prelu_under_bf16_autocast_matches_autocast_prelu():
    torch.manual_seed(0)
    ref, fast = torch.nn.PReLU(4), FastPReLU(4)
    x = torch.randn(2, 4, 8, 8)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yr, yf = ref(xr), fast(xf)
    assert yf.dtype == yr.dtype == torch.bfloat16
    assert torch.equal(yr, yf)
    yr.float().sum().backward()
    yf.float().sum().backward()
    assert torch.equal(xr.grad, xf.grad)
    # The fast path sums the slope gradient in float32 (the native one in
    # bfloat16): equal to bfloat16 rounding.
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("shape", [(3, 6, 5, 7), (2, 300, 9, 11), (1, 1, 4, 4)])
def test_piecewise_float32_sum_equals_the_float64_sum(
    dtype, layout, per_channel, shape, monkeypatch
):
    # Small pieces, so that every case is summed in several of them.
    monkeypatch.setattr(mobilefacenet, "_SUM_PIECE", 600)
    torch.manual_seed(0)
    t = torch.randn(shape).to(dtype)
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        t = torch.randn(shape[0], shape[1], 2 * shape[2], shape[3]).to(dtype)[:, :, ::2]
    dims = [d for d in range(4) if not (per_channel and d == 1)]
    expected = t.double().sum(dims)
    out = mobilefacenet._sum_to_channels_float32(t, per_channel)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-4)


def test_piecewise_sum_is_one_reduction_when_traced_by_torch_compile(monkeypatch):
    # Traced pieces would become one kernel each (training with compile
    # fell from ~29 to ~17 clips/s); Inductor fuses the cast by itself.
    monkeypatch.setattr(mobilefacenet, "_SUM_PIECE", 64)
    graphs = []

    def count_nodes(gm, example_inputs):
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    t = (
        torch.randn(2, 8, 6, 10)
        .bfloat16()
        .contiguous(memory_format=torch.channels_last)
    )
    traced = torch.compile(
        lambda x: mobilefacenet._sum_to_channels_float32(x, True),
        backend=count_nodes,
        fullgraph=True,
    )
    torch.testing.assert_close(traced(t), t.float().sum([0, 2, 3]))
    assert graphs and graphs[0] <= 4  # input, sum, output (and no pieces)
    torch._dynamo.reset()


def test_fast_prelu_keeps_the_state_dict():
    a = TASTgramMFN(n_mels=N_MELS)
    b = TASTgramMFN(n_mels=N_MELS, fast_prelu=True)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    assert any(isinstance(m, FastPReLU) for m in b.modules())


# ------------------------------------------------------ depthwise convolution
def _depthwise_pair(
    channels: int, stride: int
) -> tuple[torch.nn.Conv2d, DepthwiseConv2d]:
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
    fast = DepthwiseConv2d(channels, 3, stride, 1)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("stride", "size"), [(2, (9, 15)), (2, (8, 14)), (3, (7, 11))])
def test_strided_depthwise_gradients_equal_the_convolution_under_bf16(
    channels_last, stride, size
):
    ref, fast = _depthwise_pair(16, stride)
    x = torch.randn(3, 16, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yr, yf = ref(xr), fast(xf)
    assert yf.dtype == torch.bfloat16
    assert torch.equal(yr, yf)
    grad = torch.randn_like(yr)
    yr.backward(grad)
    yf.backward(grad)
    # The input gradient is summed in float32 by both kernels (at most
    # ceil(3 / stride)**2 products per element) before rounding.
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-2, atol=1e-3)
    assert torch.equal(fast.weight.grad, ref.weight.grad)
    assert xf.grad.shape == x.shape


def test_strided_depthwise_input_gradient_is_float32_exact():
    # Against a float64 reference the fast path is the float32 sum rounded
    # once to bfloat16: within half a bfloat16 ulp (2**-9 relative).
    _, fast = _depthwise_pair(8, 2)
    fast.bfloat16()  # a bfloat16 module, without autocast
    x = torch.randn(2, 8, 11, 13).bfloat16().requires_grad_()
    grad = torch.randn(2, 8, 6, 7).bfloat16()
    fast(x).backward(grad)
    x64 = x.detach().double().requires_grad_()
    torch.nn.functional.conv2d(
        x64, fast.weight.detach().double(), None, 2, 1, 1, 8
    ).backward(grad.double())
    exact = x64.grad
    assert torch.all((x.grad.double() - exact).abs() <= exact.abs() * 2**-8 + 1e-30)


def test_depthwise_is_plain_conv2d_where_the_backward_is_not_needed():
    ref, fast = _depthwise_pair(4, 2)
    x = torch.randn(2, 4, 9, 9)
    calls = []
    original = mobilefacenet._StridedDepthwiseFunction.apply
    try:
        mobilefacenet._StridedDepthwiseFunction.apply = lambda *a: (
            calls.append(1) or original(*a)
        )
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(fast(x), ref(x))
        assert torch.equal(fast(x.requires_grad_()), ref(x))  # float32
        assert calls == []
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast(x)
        assert calls == [1]
    finally:
        mobilefacenet._StridedDepthwiseFunction.apply = original


@pytest.mark.skipif(
    not hasattr(torch.library, "opcheck"),
    reason="torch.library.opcheck needs torch>=2.4",
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_input_gradient_op_passes_opcheck(channels_last):
    # The op is opaque to torch.compile, which trusts its fake (meta) version
    # for shapes and strides: opcheck compares the two.
    grad = torch.randn(2, 8, 5, 6).bfloat16()
    if channels_last:
        grad = grad.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(8, 1, 3, 3).bfloat16()
    torch.library.opcheck(
        mobilefacenet._depthwise_input_grad,
        (grad, weight, [2, 8, 9, 11], [2, 2], [1, 1]),
        test_utils=("test_schema", "test_faketensor"),
    )


def test_backbone_uses_the_depthwise_module_and_old_state_dicts_load():
    backbone = MobileFaceNet(n_mels=N_MELS)
    strided = [m for m in backbone.modules() if isinstance(m, DepthwiseConv2d)]
    assert len(strided) == 1 + 6  # stem_dw and one per bottleneck
    plain = MobileFaceNet(n_mels=N_MELS)
    for module in plain.modules():
        for name, child in module.named_children():
            if isinstance(child, DepthwiseConv2d):
                conv = torch.nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    3,
                    child.stride,
                    1,
                    groups=child.groups,
                    bias=False,
                )
                setattr(module, name, conv)
    backbone.load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match="as many output as input channels"):
        ConvBlock(4, 8, 3, depthwise=True)


# -------------------------------------------------------------- the module
def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    "options",
    [
        {"channels_last": True},
        {"fast_prelu": True},
        {"channels_last": True, "fast_prelu": True},
    ],
)
def test_module_options_match_the_plain_module(options):
    torch.manual_seed(0)
    plain = TASTgramMFN(n_mels=N_MELS)
    fast = TASTgramMFN(n_mels=N_MELS, **options)
    fast.load_state_dict(plain.state_dict())
    waves, weights = torch.randn(4, 4000), torch.randn(4, 128)
    # Training mode: embeddings to float rounding, and the gradients (a
    # random projection of the embeddings, as a sum would be annihilated by
    # the final BatchNorm) to float rounding of their overall size.
    (plain(waves) * weights).sum().backward()
    (fast(waves) * weights).sum().backward()
    g_plain, g_fast = _grads(plain), _grads(fast)
    assert (g_plain - g_fast).norm() <= 1e-4 * g_plain.norm()
    plain.eval()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(waves), plain(waves), rtol=0, atol=1e-5)


def test_precomputed_logmel_gives_the_same_embeddings():
    torch.manual_seed(0)
    net = TASTgramMFN(n_mels=N_MELS).eval()
    waves = torch.randn(3, 1500)  # shorter than n_fft: padded either way
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        mel = net.padded_logmel(waves)
        assert torch.equal(net(waves), net(waves, logmel=mel))
        assert torch.equal(
            net(waves, mixup=(perm, 0.3)), net(waves, mixup=(perm, 0.3), logmel=mel)
        )


def test_fold_batchnorm_matches_eval_and_leaves_the_original_alone():
    torch.manual_seed(0)
    net = TASTgramMFN(n_mels=N_MELS, channels_last=True)
    net(torch.randn(6, 4000))  # one training pass: non-trivial running stats
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net.backbone)
    images = net.images(torch.randn(3, 4000)).detach()
    with torch.no_grad():
        torch.testing.assert_close(
            folded(images), net.backbone(images), atol=1e-5, rtol=1e-5
        )
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(
        isinstance(m[1], torch.nn.BatchNorm2d)
        for m in folded.modules()
        if isinstance(m, ConvBlock)
    )
    assert not any(p.requires_grad for p in folded.parameters())


# ------------------------------------------------------------ ASDNet fits
@pytest.mark.parametrize(
    "options",
    [
        {"module__fast_prelu": True},
        {"cache_logmel": True},
        {"fold_batchnorm": True},
        {"retain_heap": True},
    ],
    ids=lambda o: next(iter(o)),
)
def test_exact_options_reproduce_the_fp32_fit(data, fp32_scores, options):
    _, scores = _fit_scores(data, **options)
    # FastPReLU's backward sums the weight gradient in another order, so its
    # gradients equal PReLU's only to float32 rounding (checked directly in
    # the PReLU tests above); two epochs at scale 30 amplify that to about
    # 0.3 % of the scores. The other options compute the same operations.
    rtol = 1e-2 if "module__fast_prelu" in options else 1e-4
    np.testing.assert_allclose(scores, fp32_scores, rtol=rtol, atol=1e-5)


def _scores(net: ASDNet, data) -> np.ndarray:
    X, y = data
    emb = net.forward(X)
    return net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()


def test_non_exact_options_fit_and_score_sensibly(data, fp32_scores):
    # Trained with every CPU option: the fit is not the fp32 fit (AdamW
    # turns rounding-level differences of near-zero gradients into full
    # steps), but it learns the same thing: the two machines' scores.
    net, scores = _fit_scores(
        data,
        amp_dtype="auto",
        module__channels_last=True,
        module__fast_prelu=True,
        cache_logmel=True,
        fold_batchnorm=True,
        retain_heap=True,
        n_threads=1,
    )
    assert len(net.history) == 2
    assert np.corrcoef(scores, fp32_scores)[0, 1] > 0.99


def test_channels_last_scores_equal_fp32_on_the_same_weights(data):
    net, scores = _fit_scores(data)
    net.module_.backbone.channels_last = True
    np.testing.assert_allclose(_scores(net, data), scores, rtol=1e-5, atol=1e-5)


def test_bfloat16_scores_keep_the_ranking_on_the_same_weights(data):
    net, scores = _fit_scores(data)
    net.amp_dtype = "bfloat16"
    bf16 = _scores(net, data)
    assert np.isfinite(bf16).all()
    # bfloat16 keeps 8 bits of mantissa: scores within a few per cent.
    np.testing.assert_allclose(bf16, scores, rtol=0.05)
    # Scored against the other machine as well, every clip must stay closer
    # to its own machine in bf16 exactly when it is in fp32. (Within one
    # machine the fp32 scores of these near-identical clips differ by less
    # than bf16's resolution, so their order there is not a fair test.)
    X, y = data
    emb = net.forward(X)
    other = net.criterion_.anomaly_score(emb, torch.as_tensor(1 - y)).numpy()
    net.amp_dtype = None
    emb32 = net.forward(X)
    other32 = net.criterion_.anomaly_score(emb32, torch.as_tensor(1 - y)).numpy()
    np.testing.assert_array_equal(other > bf16, other32 > scores)
    both, both32 = np.r_[bf16, other], np.r_[scores, other32]
    assert spearmanr(both, both32).statistic > 0.9


def test_float16_trains_with_a_grad_scaler(data):
    # float16 autocast is meant for CUDA; on the CPU it runs (slowly), which
    # is enough to exercise the scaler path of train_step.
    with warnings.catch_warnings():
        # Skipped steps (inf gradients at the first scale) make torch warn
        # that the LR scheduler stepped before the optimizer.
        warnings.simplefilter("ignore", UserWarning)
        net, _ = _fit_scores(data, amp_dtype="float16")
    assert net.grad_scaler_ is not None
    assert np.isfinite(net.history[:, "train_loss"]).all()
    clone = pickle.loads(pickle.dumps(net))
    assert getattr(clone, "grad_scaler_", None) is None


def test_folded_backbone_follows_the_weights_and_is_not_pickled(data):
    X, _ = data
    net, _ = _fit_scores(data, fold_batchnorm=True)
    first = net.forward(X[:4])
    assert "folded" in net.scoring_copies_.cached(net.module_.backbone)
    with torch.no_grad():
        net.module_.backbone.stem[0].weight.mul_(1.1)
    changed = net.forward(X[:4])
    net.fold_batchnorm = False
    torch.testing.assert_close(changed, net.forward(X[:4]), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(first, changed)
    clone = pickle.loads(pickle.dumps(net))
    assert clone.scoring_copies_.cached(clone.module_.backbone) == {}


def test_scoring_runs_the_backbone_on_sub_batches_with_the_same_result(
    data, monkeypatch
):
    X, _ = data
    net, _ = _fit_scores(data, fold_batchnorm=True)
    net.batch_size = 8  # one scoring batch of 8 clips
    whole = net.forward(X[:8])
    sizes: list[int] = []
    folded = net.scoring_copies_.folded(net.module_.backbone)
    hook = folded.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))
    # A budget of three images of these clips: sub-batches of 3, 3 and 2.
    images = net.module_.images(torch.as_tensor(X[:1]))
    monkeypatch.setattr(inference, "BACKBONE_CHUNK_PIXELS", 3 * images[0, 0].numel())
    chunked = net.forward(X[:8])
    hook.remove()
    assert sizes == [3, 3, 2]
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_failed_compile_falls_back_to_eager(data, fp32_scores, monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no compiler here")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile of the backbone failed"):
        net, scores = _fit_scores(data, compile_backbone=True)
    assert "backbone" in net.scoring_copies_.failed
    np.testing.assert_allclose(scores, fp32_scores, rtol=1e-4, atol=1e-5)


def test_compiled_backbone_scores_like_eager_without_folding(data, fp32_scores):
    # Validation inside fit runs the training backbone's compiled graph in
    # evaluation mode; only that graph is compiled here (the fit is eager).
    X, y = data
    net, _ = _fit_scores(data, fold_batchnorm=True)
    net.module_.backbone.compile()
    net.scoring_copies_.clear()  # built by _fit_scores' eager scoring
    emb = net.evaluation_step((torch.from_numpy(X), None), training=False)
    scores = net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()
    assert not net.scoring_copies_.failed
    # The compiled backbone folds itself.
    assert "folded" not in net.scoring_copies_.cached(net.module_.backbone)
    np.testing.assert_allclose(scores, fp32_scores, rtol=1e-4, atol=1e-5)


def test_scoring_compiles_the_folded_backbone_and_follows_the_weights(
    data, fp32_scores
):
    X, y = data
    net, _ = _fit_scores(data, fold_batchnorm=True)
    net.compile_backbone = True  # scoring only: the fit above was eager
    emb = net.forward(X)
    assert not net.scoring_copies_.failed
    first = net.scoring_copies_.cached(net.module_.backbone)["compiled"]
    scores = net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(scores, fp32_scores, rtol=1e-4, atol=1e-5)
    # A weight change must give a new folded copy and its compiled wrapper,
    # not stale scores.
    with torch.no_grad():
        net.module_.backbone.stem[0].weight.mul_(1.1)
    changed = net.forward(X)
    assert net.scoring_copies_.cached(net.module_.backbone)["compiled"] is not first
    net.compile_backbone = net.fold_batchnorm = False
    torch.testing.assert_close(changed, net.forward(X), atol=1e-4, rtol=1e-4)
    clone = pickle.loads(pickle.dumps(net))
    assert clone.scoring_copies_.cached(clone.module_.backbone) == {}


def test_failed_scoring_compile_falls_back_once_to_the_folded_copy(
    data, fp32_scores, monkeypatch
):
    # The one fallback path of ScoringCopies: each compiled part that fails
    # warns once, is recorded, and its eager twin scores from then on.
    calls: list[int] = []

    def broken_compile(fn, *args, **kwargs):
        def call(*a, **k):
            calls.append(1)
            raise RuntimeError("no compiler here")

        return call

    X, y = data
    net, _ = _fit_scores(data, fold_batchnorm=True)
    net.compile_backbone = True  # scoring only: the fit above was eager
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning) as seen:
        emb = net.forward(X)
    messages = [str(w.message) for w in seen]
    assert sum("scoring backbone failed" in m for m in messages) == 1
    assert sum("scoring front end failed" in m for m in messages) == 1
    assert net.scoring_copies_.failed == {"scoring", "front_end"}
    tried = len(calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        again = net.forward(X)
    assert len(calls) == tried  # not compiled again
    torch.testing.assert_close(again, emb)
    scores = net.criterion_.anomaly_score(emb, torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(scores, fp32_scores, rtol=1e-4, atol=1e-5)


def test_compiled_scoring_front_end_matches_eager_and_falls_back(data, monkeypatch):
    X = torch.from_numpy(data[0])
    net, _ = _fit_scores(data, fold_batchnorm=True)
    net.compile_backbone = True
    with torch.no_grad():
        eager = net.module_.images(X)
        compiled = net.scoring_copies_.front_end(net.module_)(waves=X)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    assert pickle.loads(pickle.dumps(net)).scoring_copies_._front_end is None

    def broken_compile(fn, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no compiler here")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    copies = net.scoring_copies_
    copies.clear()
    with pytest.warns(RuntimeWarning, match="scoring front end failed"):
        with torch.no_grad():
            again = copies.run(
                "front_end", copies.front_end(net.module_), net.module_.images, waves=X
            )
    assert copies.failed == {"front_end"}
    torch.testing.assert_close(again, eager)


def test_amp_dtype_resolution():
    assert resolve_amp_dtype(None, "cpu") is None
    assert resolve_amp_dtype("bfloat16", "cpu") is torch.bfloat16
    assert resolve_amp_dtype("float16", "cuda:0") is torch.float16
    auto = resolve_amp_dtype("auto", "cpu")
    assert auto is (torch.bfloat16 if cpu_supports_bf16() else None)
    with pytest.raises(ValueError, match="amp_dtype"):
        resolve_amp_dtype("fp8", "cpu")


# ------------------------------------------------------ threads and heap
def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), torch_threads(target):
        raise KeyError("restored on errors too")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads"):
        torch_threads(0).__enter__()  # the check runs on entering the block


class _RecordThreads(Callback):
    def on_epoch_begin(self, net, **kwargs):
        net.threads_seen_ = torch.get_num_threads()


def test_asdnet_uses_n_threads_only_inside_fit_and_forward(data):
    X, y = data
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    net = _net(n_threads=target, callbacks=[("record", _RecordThreads())])
    net.fit(X, y)
    assert net.threads_seen_ == target
    assert torch.get_num_threads() == before
    net.forward(X[:2])
    assert torch.get_num_threads() == before


def test_retained_heap_nests_and_restores():
    with retained_heap():
        with retained_heap():
            assert threads._heap_depth == (2 if threads.heap_tuning_available() else 0)
        assert threads._heap_depth == (1 if threads.heap_tuning_available() else 0)
        x = torch.ones(1 << 20).sum()  # allocations still work
    assert threads._heap_depth == 0
    assert float(x) == float(1 << 20)
    with retained_heap(enabled=False):
        assert threads._heap_depth == 0


def test_stft_precision_reaches_the_log_mel_and_keeps_the_scores():
    from sk_asd import AnomalousSoundDetector
    from tests.conftest import FAST, tiny_clips

    X, ids = tiny_clips()
    dets = {
        # The paper's recipe (lr 1e-4, nll): rounding grows slowly.
        p: AnomalousSoundDetector(
            **FAST, recipe="paper", speed={"level": "reference", "stft_precision": p}
        ).fit(X, ids)
        for p in ("adaptive", "float64")
    }
    for p, det in dets.items():
        assert det.net_.module_.logmel.stft_precision == p
    # Log-mels within 1e-5 dB of each other; two epochs keep scores close.
    np.testing.assert_allclose(
        dets["adaptive"].score_samples(X, ids),
        dets["float64"].score_samples(X, ids),
        rtol=1e-3,
    )


def test_cuda_nets_pin_batches_and_copy_them_without_blocking():
    from sk_asd import AnomalousSoundDetector

    det = AnomalousSoundDetector(speed={"loader_workers": 2})
    cuda = det._loader_params("cuda")
    assert cuda["iterator_train__pin_memory"] and cuda["iterator_valid__pin_memory"]
    assert cuda["iterator_train__num_workers"] == 2
    assert not any("pin_memory" in key for key in det._loader_params("cpu"))
    # The copy helper keeps values and structure, for tensors, mappings and
    # arrays alike (on the CPU the copy is a no-op).
    net = _net()
    x = torch.randn(2, 3)
    assert net.to_device(x) is x
    moved = net.to_device({"waves": x, "logmel": np.ones((2, 1), np.float32)})
    assert moved["waves"] is x and isinstance(moved["logmel"], torch.Tensor)
