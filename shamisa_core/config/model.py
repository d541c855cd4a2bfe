"""Model settings (METHOD.md §4.5, §5; DECISIONS.md 9-10) as one frozen dataclass.

Torch-free, so that reading a configuration imports no deep-learning stack; the modules that
build the model are :mod:`shamisa_core.models` and :mod:`shamisa_core.backbones`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Arch = Literal["resnet18", "resnet50", "efficientnet_lite0"]
Init = Literal["random", "imagenet"]

#: Width of the pooled backbone feature ``f`` (and of ``h``) per architecture (METHOD §5).
FEATURE_DIMS: dict[str, int] = {"resnet18": 512, "resnet50": 2048, "efficientnet_lite0": 1280}

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
    projector_norm: Literal["none", "bn"] = "none"
    freeze_stages: int = 0
    channels_last: bool = False
    bn_eval: bool = False
    eval_crop: int = 0  # evaluation crop size written to encoder.pt; 0 = the training patch size

    def __post_init__(self) -> None:
        """Validate the enumerated fields."""
        if self.projector_input not in ("h", "f"):
            raise ValueError(f"ModelConfig.projector_input={self.projector_input!r}; expected 'h' or 'f'")
        if self.arch not in FEATURE_DIMS:
            raise ValueError(f"ModelConfig.arch={self.arch!r}; expected one of {tuple(FEATURE_DIMS)}")
        if self.init not in ("random", "imagenet"):
            raise ValueError(f"ModelConfig.init={self.init!r}; expected 'random' or 'imagenet'")
        if self.projector_norm not in ("none", "bn"):
            raise ValueError(f"ModelConfig.projector_norm={self.projector_norm!r}; expected 'none' or 'bn'")
        if self.freeze_stages < 0:
            raise ValueError(f"ModelConfig.freeze_stages={self.freeze_stages}; expected >= 0")
        if self.n_prototypes < 1 or self.n_branches < 0:
            raise ValueError("n_prototypes must be >= 1 and n_branches >= 0")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled backbone feature (and of ``h``)."""
        return FEATURE_DIMS[self.arch]

    @property
    def hidden_dim(self) -> int:
        """Projector hidden width (3072 for ResNet-50, 768 for ResNet-18 by default)."""
        return self.projector_hidden or round(self.feature_dim * _PROJ_HIDDEN_RATIO)

    @property
    def out_dim(self) -> int:
        """Projector output width ``D_z`` (768 for ResNet-50, 192 for ResNet-18 by default)."""
        return self.projector_out or round(self.feature_dim * _PROJ_OUT_RATIO)
