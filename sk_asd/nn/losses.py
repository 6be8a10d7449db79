"""Training criteria: softmax, ArcFace, ArcMix, Noisy-ArcMix, sub-cluster AdaCos.

All five are cross-entropies on class logits.  They differ in where the
angular margin goes and in whether mixup is used (Choi & Choi, "Noisy-ArcMix:
Additive Noisy Angular Margin Loss Combined with Mixup for Anomalous Sound
Detection", ICASSP 2024, pp. 516-520):

* ``"softmax"``: a plain linear classifier, no margin, no mixup (ablation).
* ``"arcface"``: margin on the true class, no mixup.
* ``"arcmix"``: mixup of two clips with weight ``lam``; logits computed twice,
  with the margin on label a and on label b;
  ``lam * CE(logits_a, y_a) + (1 - lam) * CE(logits_b, y_b)``.
* ``"noisy_arcmix"``: the same mixup, logits computed *once* with the margin on
  label a only; ``lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b)``.  The
  margin seen by the y_b term is an inconsistent, "noisy" margin that
  regularises the decision boundary.
* ``"subcluster_adacos"``: ``K`` centres per class and no margin; a class's
  probability is the sum of the softmax over its sub-centres, and the scale
  is adapted in every training step (AdaCos, Zhang et al., CVPR 2019) so that
  it need not be tuned.  Mixup uses soft labels,
  ``-lam * log p(y_a) - (1 - lam) * log p(y_b)`` (Wilkinghoff, "Sub-Cluster
  AdaCos: Learning Representations for Anomalous Sound Detection", IJCNN
  2021; Wilkinghoff & Kurth, IEEE/ACM TASLP 32, 2024).

The criterion holds the class centres, so skorch optimises them together with
the network (skorch passes the labels to the criterion, which ArcFace needs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sk_asd.nn.margins import CosineHead, add_angular_margin

LOSSES = ("noisy_arcmix", "arcmix", "arcface", "softmax", "subcluster_adacos")
MIXUP_LOSSES = ("noisy_arcmix", "arcmix", "subcluster_adacos")


class MarginLoss(nn.Module):
    """Classification criterion over machine IDs with an optional angular margin.

    Parameters
    ----------
    n_classes : int
        Number of machine IDs (classes).
    embedding_dim : int, default=128
        Size of the embeddings produced by the network.
    loss : {"noisy_arcmix", "arcmix", "arcface", "softmax", \
            "subcluster_adacos"}, default="noisy_arcmix"
        Which criterion (see :mod:`sk_asd.nn.losses`).
    margin : float, default=0.7
        Additive angular margin ``m`` in radians (not used by softmax and
        sub-cluster AdaCos).
    scale : float, default=30.0
        Logit scale ``s`` (sub-cluster AdaCos adapts its own).
    trainable_centres : bool, default=True
        Whether class centres are learnt or fixed random unit vectors.
    n_subclusters : int, default=16
        Centres per class for ``loss="subcluster_adacos"``; 1 for the others.

    Attributes
    ----------
    head : CosineHead or torch.nn.Linear
        Holds the class centres (``head.weight``, ``n_subclusters`` rows per
        class, class-major); a plain linear layer for ``loss="softmax"``.
    adaptive_scale : Tensor of shape ()
        The current AdaCos scale (a buffer, saved with the model); only for
        ``loss="subcluster_adacos"``.
    """

    def __init__(
        self,
        n_classes: int,
        embedding_dim: int = 128,
        *,
        loss: str = "noisy_arcmix",
        margin: float = 0.7,
        scale: float = 30.0,
        trainable_centres: bool = True,
        n_subclusters: int = 16,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
        self.loss = loss
        self.margin = margin
        self.scale = scale
        self.n_classes = n_classes
        self.n_subclusters = n_subclusters if loss == "subcluster_adacos" else 1
        if loss == "softmax":
            self.head: nn.Module = nn.Linear(embedding_dim, n_classes)
        else:
            self.head = CosineHead(
                embedding_dim,
                n_classes * self.n_subclusters,
                trainable=trainable_centres,
            )
        if loss == "subcluster_adacos":
            # AdaCos's fixed starting point, sqrt(2) * log(n_centres - 1), is
            # the scale that puts the logit of a random embedding's target
            # at the decision boundary when all angles are near pi/2.
            start = math.sqrt(2.0) * math.log(max(n_classes * n_subclusters - 1, 2))
            self.register_buffer("adaptive_scale", torch.tensor(start))

    @property
    def uses_mixup(self) -> bool:
        """Whether training batches are mixed (ArcMix and Noisy-ArcMix)."""
        return self.loss in MIXUP_LOSSES

    def centres(self) -> torch.Tensor:
        """The class directions, one row per class (not normalised).

        With sub-clusters, the mean direction of each class's unit sub-centres.
        """
        weight = self.head.weight
        if self.n_subclusters == 1:
            return weight
        unit = F.normalize(weight.float(), dim=1)
        return unit.view(self.n_classes, self.n_subclusters, -1).mean(dim=1)

    def class_cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding to each class, shape (n_samples, n_classes).

        With sub-clusters, the cosine to the class's nearest sub-centre.
        """
        if self.loss == "softmax":
            centres = F.normalize(self.head.weight.float(), dim=1)
            return F.normalize(embeddings.float(), dim=1) @ centres.T
        cosine = self.head(embeddings)
        if self.n_subclusters == 1:
            return cosine
        return cosine.view(len(cosine), self.n_classes, -1).amax(dim=2)

    def _class_log_probs(self, cosine: torch.Tensor) -> torch.Tensor:
        """Sub-cluster AdaCos: log of each class's summed sub-centre softmax.

        ``cosine`` holds the cosines to every sub-centre (``self.head``).
        """
        logits = self.adaptive_scale * cosine
        log_p = torch.log_softmax(logits, dim=1)
        return log_p.view(len(log_p), self.n_classes, -1).logsumexp(dim=2)

    @torch.no_grad()
    def _update_adaptive_scale(
        self, cosine: torch.Tensor, weights: torch.Tensor
    ) -> None:
        """AdaCos rule: ``s = log(B_avg) / cos(min(pi/4, theta_med))``.

        ``weights`` (n_samples, n_classes) are the soft labels. ``B_avg`` is
        the batch mean of ``sum_j (1 - w_class(j)) exp(s cos_j)`` over all
        sub-centres ``j``, and ``theta_med`` the median angle between an
        embedding and the nearest sub-centre of its dominant class.
        """
        off_target = 1.0 - weights.repeat_interleave(self.n_subclusters, dim=1)
        b_avg = (off_target * torch.exp(self.adaptive_scale * cosine)).sum(1).mean()
        own = weights.argmax(dim=1)
        nearest = cosine.view(len(cosine), self.n_classes, -1).amax(dim=2)
        theta = torch.acos(nearest.gather(1, own[:, None]).clamp(-1.0, 1.0))
        theta_med = torch.clamp(theta.median(), max=math.pi / 4)
        # log(B_avg) <= 0 happens only when every off-target centre is far
        # away already; keep the scale positive and finite then.
        scale = torch.log(b_avg.clamp_min(1.0 + 1e-6)) / torch.cos(theta_med)
        if torch.isfinite(scale):
            self.adaptive_scale.copy_(scale.clamp(1e-2, 1e3))

    def logits(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Class logits with the margin (if any) on ``target``.

        For sub-cluster AdaCos, the class log-probabilities (softmax logits
        up to a constant), with no margin.
        """
        if self.loss == "softmax":
            # The criterion runs in float32 outside the backbone's autocast;
            # a bfloat16 embedding would not meet the float32 weights.
            return self.head(embeddings.float()).float()
        if self.loss == "subcluster_adacos":
            return self._class_log_probs(self.head(embeddings))
        return add_angular_margin(
            self.head(embeddings), target, self.margin, self.scale
        )

    def _adacos_loss(
        self,
        embeddings: torch.Tensor,
        y_a: torch.Tensor,
        y_b: torch.Tensor | None,
        lam: float | None,
    ) -> torch.Tensor:
        weights = F.one_hot(y_a.long(), self.n_classes).float()
        if y_b is not None and lam is not None:
            weights = (
                lam * weights
                + (1.0 - lam) * F.one_hot(y_b.long(), self.n_classes).float()
            )
        cosine = self.head(embeddings)  # once, for the scale and the loss
        if self.training:
            self._update_adaptive_scale(cosine, weights)
        return -(weights * self._class_log_probs(cosine)).sum(dim=1).mean()

    def forward(
        self,
        embeddings: torch.Tensor,
        y_a: torch.Tensor,
        y_b: torch.Tensor | None = None,
        lam: float | None = None,
    ) -> torch.Tensor:
        """Mean loss of a batch; pass ``y_b`` and ``lam`` for a mixed batch."""
        if self.loss == "subcluster_adacos":
            return self._adacos_loss(embeddings, y_a, y_b, lam)
        if y_b is None or lam is None or not self.uses_mixup:
            return F.cross_entropy(self.logits(embeddings, y_a), y_a)
        logits_a = self.logits(embeddings, y_a)
        loss_a = F.cross_entropy(logits_a, y_a)
        if self.loss == "noisy_arcmix":
            loss_b = F.cross_entropy(logits_a, y_b)
        else:
            loss_b = F.cross_entropy(self.logits(embeddings, y_b), y_b)
        return lam * loss_a + (1.0 - lam) * loss_b

    @torch.no_grad()
    def anomaly_score(
        self, embeddings: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Per-clip cross-entropy at ``target``, margin included (the paper's score).

        Higher means more anomalous.
        """
        logits = self.logits(embeddings, target)
        return F.cross_entropy(logits, target, reduction="none")
