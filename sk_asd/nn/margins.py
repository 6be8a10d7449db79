"""Angular-margin classification heads.

ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition", CVPR 2019) adds a margin ``m`` to the angle between an
L2-normalised embedding and the centre of its own class.  Wilkinghoff & Kurth
(IEEE/ACM TASLP 32, 2024) show why this suits anomalous sound detection: the
margin loss with an auxiliary classification task makes normal data compact
around its class centre without the trivial collapse of a pure compactness
loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Smallest value kept under the square root of 1 - cos^2: the derivative of
# sqrt at 0 is infinite, and bf16/fp16 rounding can push cos^2 slightly above 1.
_SIN_FLOOR = 1e-6


class CosineHead(nn.Module):
    """Class centres on the unit sphere and the cosine of every embedding to them.

    Parameters
    ----------
    embedding_dim : int
        Size of the embeddings.
    n_classes : int
        Number of classes (machine IDs).
    trainable : bool, default=True
        Whether the centres are learnt.  ``False`` keeps fixed random centres,
        as Wilkinghoff & Kurth recommend.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_classes, embedding_dim)
        The class centres, one per row (Xavier-uniform initialised, not
        normalised; ``forward`` normalises them).
    """

    def __init__(self, embedding_dim: int, n_classes: int, *, trainable: bool = True):
        super().__init__()
        weight = torch.empty(n_classes, embedding_dim)
        nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight, requires_grad=trainable)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarities, shape (n_samples, n_classes), in float32."""
        emb = F.normalize(embeddings.float(), dim=1)
        centres = F.normalize(self.weight.float(), dim=1)
        return emb @ centres.T


def add_angular_margin(
    cosine: torch.Tensor, target: torch.Tensor, margin: float, scale: float
) -> torch.Tensor:
    """ArcFace logits: ``scale * cos(theta_y + margin)`` at the target class.

    The other classes keep ``scale * cos(theta_j)``.  Where ``theta_y + margin``
    would pass pi, the usual fallback ``cos(theta_y) - sin(pi - m) * m`` keeps
    the logit monotonic in the angle.

    Parameters
    ----------
    cosine : Tensor of shape (n_samples, n_classes)
        Cosine similarities to the class centres.
    target : LongTensor of shape (n_samples,)
        The class that receives the margin.
    margin, scale : float
        ArcFace ``m`` (radians) and ``s``.

    Returns
    -------
    Tensor of shape (n_samples, n_classes)
        The scaled logits, in float32.
    """
    cosine = cosine.float().clamp(-1.0, 1.0)
    index = target.long().view(-1, 1)
    cos_t = cosine.gather(1, index)
    sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(_SIN_FLOOR))
    cos_tm = cos_t * math.cos(margin) - sin_t * math.sin(margin)
    fallback = cos_t - math.sin(math.pi - margin) * margin
    cos_tm = torch.where(cos_t > math.cos(math.pi - margin), cos_tm, fallback)
    return scale * cosine.scatter(1, index, cos_tm)
