"""Checkpoints and the exported encoder (METHOD.md §5, §6.2).

* ``checkpoint.pt``: everything needed to continue a run exactly: model, optimizer,
  scheduler and grad-scaler states, the step, the corpus position (epoch and batches consumed
  in it), every RNG state, the config and a format version. Modelled on torchvision's
  ``references/classification`` checkpoints.
* ``encoder.pt``: the backbone weights only plus what rebuilds it (architecture, model
  config, representation width, patch size, input normalisation); :func:`load_encoder` turns
  it into an eval-mode module for evaluation.

Files are written atomically (temporary file in the same folder + ``os.replace``) and read
with ``torch.load(weights_only=True)``: every value is a tensor or a plain Python object.
"""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shamisa_core.atomic import atomic_write_bytes
from shamisa_core.corpus.reader import IMAGENET_MEAN, IMAGENET_STD
from shamisa_core.inference import (
    InferenceOptions,
    autocast_for,
    inference_tag,
    optimize_for_inference,
    prepare_input,
)
from shamisa_core.errors import CheckpointError
from shamisa_core.models import ModelConfig, build_backbone

CHECKPOINT_FORMAT = "shamisa-checkpoint/1"
ENCODER_FORMAT = "shamisa-encoder/1"


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` into memory, then :func:`~shamisa_core.atomic.atomic_write_bytes`.

    Serialising first keeps torch's zip writer off the disk: a full disk then surfaces as the
    plain ``OSError`` naming ``path`` that ``atomic_open`` raises, not as torch's
    "unexpected pos" ``RuntimeError``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getbuffer())


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), NumPy legacy and Python ``random`` states."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Atomically write a resume checkpoint; ``payload`` keys: model, optimizer, scheduler,
    scaler, step, epoch, batch_in_epoch, rng, config (the format version is added)."""
    required = {"model", "optimizer", "scheduler", "step", "epoch", "batch_in_epoch", "rng", "config"}
    missing = required - set(payload)
    if missing:
        raise KeyError(f"checkpoint payload lacks {sorted(missing)}")
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def safe_torch_load(path: Path, what: str, fix: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` whose failures (0 bytes, truncated, garbage, not a
    torch file) become one :class:`~shamisa_core.errors.CheckpointError` naming ``path``."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, f"the {what} is empty (0 bytes)", fix)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zipfile, pickle, EOF, RuntimeError...: all damage
        raise CheckpointError(
            path, f"the {what} ({size} bytes) is truncated, damaged or not a torch file "
            f"({type(exc).__module__.split('.')[0]}.{type(exc).__name__})", fix) from None


_RESUME_FIX = ("Restore an intact copy, or start the run over with --overwrite "
               "(the weights of the interrupted run are lost)")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a missing, damaged or foreign
    file is a clear error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; nothing to resume (run without --resume)")
    ckpt = safe_torch_load(path, "checkpoint", _RESUME_FIX, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(path, f"it is not a {CHECKPOINT_FORMAT} checkpoint", _RESUME_FIX)
    return ckpt


def save_encoder(
    path: Path, model: nn.Module, model_cfg: ModelConfig, patch_size: int, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``encoder.pt``: backbone weights + what rebuilds it (METHOD §5).

    ``model`` is a :class:`~shamisa_core.models.SHAMISAModel` (unwrapped). The representation
    is ``h = f/||f||`` of the pooled backbone feature ``f`` (METHOD §4.5).
    """
    payload = {
        "format": ENCODER_FORMAT,
        "arch": model_cfg.arch,
        "model_config": dataclasses.asdict(model_cfg),
        "feature_dim": model_cfg.feature_dim,
        "patch_size": int(patch_size),
        "eval_crop": int(getattr(model_cfg, "eval_crop", 0) or patch_size),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "representation": "l2_normalized_pooled_feature",
        "state_dict": {k: v.detach().cpu() for k, v in model.backbone_state_dict().items()},
        **(extra or {}),
    }
    return atomic_torch_save(payload, path)


class Encoder(nn.Module):
    """Frozen evaluation encoder: ``x (N, 3, P, P) -> h = f/||f|| (N, feature_dim)`` (§4.5, §5).

    ``backbone`` is a pooled-feature backbone of :mod:`shamisa_core.backbones`. With
    ``options`` it runs the fast inference path of :mod:`shamisa_core.inference` (BN folded,
    ``channels_last``, bf16 autocast where native); ``inference_tag`` names what changes the
    features' bytes, for cache keys. ``h`` is always float32.
    """

    def __init__(self, backbone: nn.Module, options: InferenceOptions | None = None) -> None:
        """Wrap a pooled-feature backbone (a private optimised copy when ``options`` is given)."""
        super().__init__()
        self.options = options or InferenceOptions(fold_bn=False, channels_last=False, bf16=False)
        self.backbone = optimize_for_inference(backbone, self.options) if options else backbone
        self.inference_tag = inference_tag(self.options)

    def forward(self, x: Tensor) -> Tensor:
        """L2-normalised pooled features (float32)."""
        with autocast_for(self.options, x.device):
            f = self.backbone(prepare_input(x, self.options))
        return F.normalize(f.float(), dim=1)


def load_encoder(path: Path, device: str | torch.device = "cpu",
                 options: InferenceOptions | None = InferenceOptions()) -> tuple[Encoder, dict[str, Any]]:
    """Rebuild the encoder of ``encoder.pt`` in eval mode with gradients off.

    ``options`` selects the inference path (default: the fast one; ``None`` = exact fp32).

    Returns ``(encoder, meta)``: ``encoder(x)`` gives ``h``; ``encoder.backbone`` the raw
    pooled feature. ``meta`` holds everything in the file except the weights (arch,
    model_config, feature_dim, patch_size, normalization, step, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no encoder file at {path}; train one with `shamisa train`")
    fix = "Give the encoder.pt of a finished `shamisa train` run (or re-export it from its checkpoint)"
    blob = safe_torch_load(path, "encoder file", fix)
    if not isinstance(blob, dict) or blob.get("format") != ENCODER_FORMAT:
        raise CheckpointError(path, f"it is not a {ENCODER_FORMAT} file", fix)
    cfg = dataclasses.replace(ModelConfig(**blob["model_config"]), init="random", weights_path=None)
    backbone = build_backbone(cfg)
    backbone.load_state_dict(blob["state_dict"])
    encoder = Encoder(backbone.to(device), options).eval()
    encoder.requires_grad_(False)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return encoder, meta
