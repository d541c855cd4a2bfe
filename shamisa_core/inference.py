"""Fast frozen-encoder inference on the CPU: BN folding, ``channels_last``, bf16 autocast.

The evaluation protocol (METHOD.md §7.3) runs a frozen encoder over 10 crops per image, which
dominates the CPU budget. Three switches, measured side by side in ``bench/infer_speed.py``:

* ``fold_bn``: every BatchNorm that directly follows a convolution is folded into it
  (``W' = W * g/sqrt(v+eps)``, ``b' = (b - m) * g/sqrt(v+eps) + beta``); timm's
  ``BatchNormAct2d`` leaves its activation behind. Exact in fp32 up to rounding.
* ``channels_last``: NHWC memory format for weights and inputs (oneDNN's fast path).
* ``bf16``: ``torch.autocast`` to bfloat16 on CPUs that run it natively (AVX512-BF16/AMX);
  features are returned as float32. This changes features by bf16 rounding (about 1e-2
  relative), so it is part of every feature-cache key through :func:`inference_tag`.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class InferenceOptions:
    """How a frozen encoder runs; ``auto`` defaults are the fast path where it is native."""

    fold_bn: bool = True
    channels_last: bool = True
    bf16: bool | None = None  # None = when the CPU runs bf16 natively (never on CUDA)

    def resolved_bf16(self, device: torch.device | str = "cpu") -> bool:
        """Whether bf16 autocast is used on ``device``."""
        if torch.device(device).type != "cpu":
            return False
        if self.bf16 is None:
            return cpu_has_native_bf16()
        return bool(self.bf16)


EXACT = InferenceOptions(fold_bn=False, channels_last=False, bf16=False)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - builds without mkldnn
        return False


def inference_tag(options: InferenceOptions, device: torch.device | str = "cpu") -> str:
    """Short string naming what changes the features' bytes (folding, bf16); for cache keys."""
    return f"fold={int(options.fold_bn)};bf16={int(options.resolved_bf16(device))}"


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d)


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval statistics) into ``conv``'s weight and bias, in place."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + bn.bias
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype), requires_grad=False)


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of a BN after folding: timm's BatchNormAct2d keeps its activation."""
    act = getattr(bn, "act", None)
    return act if isinstance(act, nn.Module) else nn.Identity()


def fold_batchnorm(module: nn.Module) -> int:
    """Fold each BatchNorm2d that follows a Conv2d among the same parent's children; returns count.

    "Follows" means the BN is registered right after the conv in the same parent module, which is
    how torchvision's ResNets and timm's EfficientNets build their conv/BN pairs; the result is
    checked numerically against the unfolded model in ``tests/test_backbones.py``.
    """
    count = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (_, prev), (name, child) in zip(children, children[1:]):
            if _is_bn(child) and isinstance(prev, nn.Conv2d) and prev.out_channels == child.num_features:
                if not child.track_running_stats or child.running_mean is None:
                    continue
                _fold_into(prev, child)
                setattr(parent, name, _bn_replacement(child))
                count += 1
    return count


def optimize_for_inference(backbone: nn.Module, options: InferenceOptions) -> nn.Module:
    """A copy of ``backbone`` in eval mode with BN folded and/or ``channels_last`` as asked."""
    net = copy.deepcopy(backbone).eval()
    if options.fold_bn:
        fold_batchnorm(net)
    if options.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.requires_grad_(False)
    return net


@contextlib.contextmanager
def autocast_for(options: InferenceOptions, device: torch.device | str) -> Iterator[None]:
    """bf16 autocast when ``options`` asks for it on this device, else nothing."""
    dev = torch.device(device)
    if options.resolved_bf16(dev):
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def prepare_input(x: Tensor, options: InferenceOptions) -> Tensor:
    """Put a batch in the memory format the optimised backbone expects."""
    return x.contiguous(memory_format=torch.channels_last) if options.channels_last else x
