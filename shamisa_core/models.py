"""Encoder, projector, prototype head and branch aggregator (METHOD.md §4.1, §4.5, §5, §3.4.2, §3.5).

* Encoder: torchvision ResNet-18/50 with the classification layer removed; the pooled
  feature ``f`` is L2-normalised to the representation ``h = f/||f||`` (METHOD §4.5, §5).
* Projector: ``Linear(F -> 1.5F) -> ReLU -> Linear(1.5F -> 0.375F)`` on ``h`` (2048 -> 3072
  -> 768 for ResNet-50, 512 -> 768 -> 192 for ResNet-18); ``z`` is not normalised.
* Prototype head: bias-free ``Linear(F -> K)``, U(-1/sqrt(F), 1/sqrt(F)) initialisation,
  weight-normalised per prototype row (METHOD §3.4.2).
* Aggregator: ``LayerNorm(2nb) -> Linear(2nb, 4nb) -> LayerNorm -> PReLU -> Linear(4nb, nb)``
  (METHOD §3.5).

ImageNet initialisation never downloads (DECISIONS.md 10): it reads the torchvision weight
file from the local torch hub cache or an explicit path and otherwise raises
:class:`FileNotFoundError` naming the expected file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.nn.utils import parametrizations

Arch = Literal["resnet18", "resnet50"]
Init = Literal["random", "imagenet"]

_FEATURE_DIMS: dict[str, int] = {"resnet18": 512, "resnet50": 2048}
_PROJ_HIDDEN_RATIO = 3072 / 2048  # METHOD §4.5
_PROJ_OUT_RATIO = 768 / 2048


@dataclass(frozen=True)
class ModelConfig:
    """Model settings; defaults are the paper's A0 model (METHOD §4.5, §5; DECISIONS 9-10).

    ``projector_hidden`` / ``projector_out`` default (None) to the paper's sizes scaled by
    the backbone's feature width. ``n_branches`` sizes the aggregator (2*nb statistics in, nb
    weights out); use ``len(GraphConfig.active_branches())``. ``n_branches=0`` builds no
    aggregator (``model.aggregator is None``): the ``uniform``/``none`` weightings do not use
    it, and an unused module would trip DDP's unused-parameter check.
    """

    arch: Arch = "resnet50"
    init: Init = "imagenet"
    weights_path: str | None = None
    projector_hidden: int | None = None
    projector_out: int | None = None
    n_prototypes: int = 32
    n_branches: int = 6
    projector_input: Literal["h", "f"] = "h"
    projector_scale: float = 1.0

    def __post_init__(self) -> None:
        """Validate the enumerated fields."""
        if self.projector_input not in ("h", "f"):
            raise ValueError(f"ModelConfig.projector_input={self.projector_input!r}; expected 'h' or 'f'")
        if self.arch not in _FEATURE_DIMS:
            raise ValueError(f"ModelConfig.arch={self.arch!r}; expected one of {tuple(_FEATURE_DIMS)}")
        if self.init not in ("random", "imagenet"):
            raise ValueError(f"ModelConfig.init={self.init!r}; expected 'random' or 'imagenet'")
        if self.n_prototypes < 1 or self.n_branches < 0:
            raise ValueError("n_prototypes must be >= 1 and n_branches >= 0")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled backbone feature (and of ``h``)."""
        return _FEATURE_DIMS[self.arch]

    @property
    def hidden_dim(self) -> int:
        """Projector hidden width (3072 for ResNet-50, 768 for ResNet-18 by default)."""
        return self.projector_hidden or round(self.feature_dim * _PROJ_HIDDEN_RATIO)

    @property
    def out_dim(self) -> int:
        """Projector output width ``D_z`` (768 for ResNet-50, 192 for ResNet-18 by default)."""
        return self.projector_out or round(self.feature_dim * _PROJ_OUT_RATIO)


def _torchvision_weights(arch: Arch) -> torchvision.models.WeightsEnum:
    """The torchvision ImageNet weight enum used by the paper (IMAGENET1K_V1)."""
    if arch == "resnet50":
        return torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    return torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def expected_weights_file(arch: Arch) -> Path:
    """Where torchvision would cache the ImageNet weights: ``<hub>/checkpoints/<file>``."""
    filename = os.path.basename(_torchvision_weights(arch).url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_weights_path(cfg: ModelConfig) -> Path:
    """Locate the ImageNet weights locally (DECISIONS 10); never downloads.

    Raises :class:`FileNotFoundError` naming the expected file when absent.
    """
    path = Path(cfg.weights_path) if cfg.weights_path else expected_weights_file(cfg.arch)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {cfg.arch} not found at {path} (expected file "
            f"{path.name!r}). Place torchvision's file there (or set ModelConfig.weights_path), "
            f"or use init='random'. Nothing is downloaded."
        )
    return path


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """torchvision ResNet with ``fc`` replaced by identity; returns pooled features (§5)."""
    ctor = torchvision.models.resnet50 if cfg.arch == "resnet50" else torchvision.models.resnet18
    net = ctor(weights=None)
    if cfg.init == "imagenet":
        state = torch.load(resolve_weights_path(cfg), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        bad_missing = [k for k in missing if not k.startswith("fc.")]
        if bad_missing or unexpected:
            raise RuntimeError(f"weight file mismatch: missing {bad_missing}, unexpected {unexpected}")
    net.fc = nn.Identity()
    return net


def build_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear -> ReLU -> Linear``, no BatchNorm, un-normalised output (METHOD §4.5)."""
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
        self.projector = build_projector(cfg.feature_dim, cfg.hidden_dim, cfg.out_dim)
        self.proto_head = build_prototype_head(cfg.feature_dim, cfg.n_prototypes)
        self.aggregator = BranchAggregator(cfg.n_branches) if cfg.n_branches > 0 else None

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
