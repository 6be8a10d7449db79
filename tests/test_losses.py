"""The margin heads and the five criteria, against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from sk_asd.nn.losses import MarginLoss
from sk_asd.nn.margins import add_angular_margin

S, M = 30.0, 0.7


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def _ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row of logits, written out."""
    top = max(logits)
    log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
    return log_norm - logits[target]


def _criterion(loss: str) -> MarginLoss:
    crit = MarginLoss(2, embedding_dim=2, loss=loss, margin=M, scale=S)
    with torch.no_grad():
        # Class centres on the x and y axes: angles are easy to read off.
        crit.head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))
    return crit


# Two clips: at 30 degrees (closer to class 0) and at 70 degrees (class 1).
ANGLES = (math.pi / 6, 7 * math.pi / 18)
EMB = torch.tensor([_unit(a) for a in ANGLES]) * torch.tensor([[3.0], [0.2]])


def _hand_logits(angle: float, margin_on: int) -> list[float]:
    """s*cos of the angle to each centre, with the margin added at one class."""
    theta = [angle, math.pi / 2 - angle]
    return [
        S * math.cos(t + (M if j == margin_on else 0.0)) for j, t in enumerate(theta)
    ]


def test_arcface_logits_match_hand_computation():
    target = torch.tensor([0, 1])
    got = add_angular_margin(torch.tensor([[0.8, 0.1], [0.2, 0.9]]), target, M, S)
    theta_0, theta_1 = math.acos(0.8), math.acos(0.9)
    expected = [
        [S * math.cos(theta_0 + M), S * 0.1],
        [S * 0.2, S * math.cos(theta_1 + M)],
    ]
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_arcface_fallback_when_angle_plus_margin_passes_pi():
    cos_t = math.cos(2.8)  # 2.8 + 0.7 > pi
    got = add_angular_margin(torch.tensor([[cos_t, 0.3]]), torch.tensor([0]), M, S)
    expected = S * (cos_t - math.sin(math.pi - M) * M)
    assert got[0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert got[0, 1].item() == pytest.approx(S * 0.3, rel=1e-6)


def test_arcface_loss():
    y = torch.tensor([0, 1])
    got = _criterion("arcface")(EMB, y).item()
    expected = sum(_ce(_hand_logits(a, t), t) for a, t in zip(ANGLES, [0, 1])) / 2
    assert got == pytest.approx(expected, rel=1e-5)


def test_noisy_arcmix_puts_the_margin_on_label_a_only():
    y_a, y_b, lam = torch.tensor([0, 1]), torch.tensor([1, 0]), 0.3
    got = _criterion("noisy_arcmix")(EMB, y_a, y_b, lam).item()
    expected = 0.0
    for angle, a, b in zip(ANGLES, [0, 1], [1, 0]):
        logits = _hand_logits(angle, margin_on=a)
        expected += lam * _ce(logits, a) + (1 - lam) * _ce(logits, b)
    assert got == pytest.approx(expected / 2, rel=1e-5)


def test_arcmix_puts_the_margin_on_each_label_in_turn():
    y_a, y_b, lam = torch.tensor([0, 1]), torch.tensor([1, 0]), 0.3
    got = _criterion("arcmix")(EMB, y_a, y_b, lam).item()
    expected = 0.0
    for angle, a, b in zip(ANGLES, [0, 1], [1, 0]):
        expected += lam * _ce(_hand_logits(angle, a), a)
        expected += (1 - lam) * _ce(_hand_logits(angle, b), b)
    assert got == pytest.approx(expected / 2, rel=1e-5)
    # With both labels equal, ArcMix and Noisy-ArcMix coincide with ArcFace.
    same = torch.tensor([0, 1])
    arcface = _criterion("arcface")(EMB, same).item()
    assert _criterion("arcmix")(EMB, same, same, lam).item() == pytest.approx(arcface)


def test_softmax_is_plain_cross_entropy_of_a_linear_layer():
    crit = MarginLoss(2, embedding_dim=2, loss="softmax")
    with torch.no_grad():
        crit.head.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
        crit.head.bias.copy_(torch.tensor([0.1, -0.2]))
    x = torch.tensor([[0.3, 0.4]])
    logits = [0.3 - 0.4 + 0.1, 0.15 + 0.8 - 0.2]
    assert crit(x, torch.tensor([1])).item() == pytest.approx(_ce(logits, 1), rel=1e-6)
    assert not crit.uses_mixup


def test_anomaly_score_is_per_clip_margin_cross_entropy():
    y = torch.tensor([0, 1])
    got = _criterion("noisy_arcmix").anomaly_score(EMB, y)
    expected = [_ce(_hand_logits(a, t), t) for a, t in zip(ANGLES, [0, 1])]
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_no_nan_gradient_when_embedding_sits_on_its_centre(dtype):
    crit = _criterion("noisy_arcmix")
    # Exactly on centre 0 (cos = 1) and exactly opposite centre 1 (cos = -1).
    emb = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=dtype, requires_grad=True)
    loss = crit(emb, torch.tensor([0, 1]), torch.tensor([1, 0]), 0.5)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(emb.grad).all()
    assert torch.isfinite(crit.head.weight.grad).all()


def test_fixed_centres_are_not_trained():
    crit = MarginLoss(3, embedding_dim=4, trainable_centres=False)
    assert not crit.head.weight.requires_grad
    assert all(p.requires_grad is False for p in crit.parameters())


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="loss must be one of"):
        MarginLoss(2, loss="cosface")


# Sub-cluster AdaCos: two classes with two sub-centres each, at 0 and 40
# degrees (class 0) and at 90 and 150 degrees (class 1).
SUB_ANGLES = (0.0, 2 * math.pi / 9, math.pi / 2, 5 * math.pi / 6)


def _adacos(n_classes: int = 2) -> MarginLoss:
    crit = MarginLoss(
        n_classes, embedding_dim=2, loss="subcluster_adacos", n_subclusters=2
    )
    with torch.no_grad():
        crit.head.weight.copy_(torch.tensor([_unit(a) for a in SUB_ANGLES]))
    return crit


def _hand_adacos(angle: float, scale: float) -> tuple[list[float], list[float]]:
    """Per-class probabilities (summed over sub-centres) and the raw cosines."""
    cos = [math.cos(angle - c) for c in SUB_ANGLES]
    exps = [math.exp(scale * c) for c in cos]
    total = sum(exps)
    return [(exps[0] + exps[1]) / total, (exps[2] + exps[3]) / total], cos


def test_subcluster_adacos_loss_sums_sub_centre_probabilities():
    crit = _adacos().eval()  # eval: the scale stays where it starts
    scale = crit.adaptive_scale.item()
    assert scale == pytest.approx(math.sqrt(2) * math.log(2 * 2 - 1))
    y_a, y_b, lam = torch.tensor([0, 1]), torch.tensor([1, 1]), 0.3
    got = crit(EMB, y_a, y_b, lam).item()
    expected = 0.0
    for angle, a, b in zip(ANGLES, [0, 1], [1, 1]):
        p, _ = _hand_adacos(angle, scale)
        expected -= lam * math.log(p[a]) + (1 - lam) * math.log(p[b])
    assert got == pytest.approx(expected / 2, rel=1e-5)
    # The nll back-end is -log p(own class), and the cosine back-end reads
    # the nearest sub-centre of each class.
    score = crit.anomaly_score(EMB, torch.tensor([0, 1]))
    hand = [-math.log(_hand_adacos(a, scale)[0][t]) for a, t in zip(ANGLES, [0, 1])]
    torch.testing.assert_close(score, torch.tensor(hand), rtol=1e-5, atol=1e-6)
    nearest = [
        [max(c[:2]), max(c[2:])] for c in (_hand_adacos(a, scale)[1] for a in ANGLES)
    ]
    torch.testing.assert_close(
        crit.class_cosine(EMB), torch.tensor(nearest), rtol=1e-5, atol=1e-6
    )


def test_subcluster_adacos_adapts_its_scale_in_training():
    crit = _adacos().train()
    s0 = crit.adaptive_scale.item()
    y = torch.tensor([0, 1])
    crit(EMB, y)
    # AdaCos: s = log(B_avg) / cos(min(pi/4, median angle to own class)).
    b_avg, thetas = 0.0, []
    for angle, t in zip(ANGLES, [0, 1]):
        _, cos = _hand_adacos(angle, s0)
        others = cos[2:] if t == 0 else cos[:2]
        b_avg += sum(math.exp(s0 * c) for c in others) / 2
        thetas.append(math.acos(max(cos[:2] if t == 0 else cos[2:])))
    # torch's median of an even count is the lower of the two middle values.
    theta_med = min(math.pi / 4, min(thetas))
    expected = math.log(b_avg) / math.cos(theta_med)
    assert crit.adaptive_scale.item() == pytest.approx(expected, rel=1e-5)
    assert crit.uses_mixup


def test_subcluster_adacos_gradients_stay_finite_on_a_centre():
    crit = _adacos()
    emb = torch.tensor([[1.0, 0.0], [0.0, -1.0]], requires_grad=True)
    loss = crit(emb, torch.tensor([0, 1]), torch.tensor([1, 0]), 0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert torch.isfinite(crit.adaptive_scale)


def test_centres_are_one_row_per_class_with_sub_clusters():
    centres = _adacos().centres()
    assert centres.shape == (2, 2)
    mean_0 = [(math.cos(0) + math.cos(SUB_ANGLES[1])) / 2, math.sin(SUB_ANGLES[1]) / 2]
    torch.testing.assert_close(centres[0], torch.tensor(mean_0), rtol=1e-6, atol=1e-6)


def test_the_detectors_loss_params_defaults_are_the_criterions():
    # The detector's table (sk_asd.estimator.loss_params) and the defaults of
    # the classes it routes the options to must not drift apart.
    import inspect

    from sk_asd.estimator.loss_params import LOSS_PARAMS, net_params
    from sk_asd.estimator.net import ASDNet
    from sk_asd.nn.network import TASTgramMFN

    targets = {
        "criterion": inspect.signature(MarginLoss).parameters,
        "module": inspect.signature(TASTgramMFN).parameters,
        "net": inspect.signature(ASDNet).parameters,
    }
    routed = net_params(LOSS_PARAMS)
    assert len(routed) == len(LOSS_PARAMS)
    for key, value in routed.items():
        prefix, _, name = key.rpartition("__")
        assert targets[prefix or "net"][name].default == value, key
        assert LOSS_PARAMS[name] == value
