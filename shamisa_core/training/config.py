"""Training settings (METHOD.md §6; DECISIONS.md 11-12) as one frozen dataclass.

Defaults are the paper configuration "A0" (METHOD §6.1): SGD lr 1.5e-3, momentum 0.9,
weight decay 1e-4, batch of B=2 groups, one epoch, CosineAnnealingWarmRestarts(T_0 = one
epoch, T_mult=2, eta_min=1e-6) stepped every iteration, seed 27.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Amp = Literal["auto", "off", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, precision, checkpointing and data-loading settings.

    * ``batch_size``: groups per optimiser step (B, METHOD §2.5).
    * ``steps``: total optimiser steps; ``None`` = ``epochs`` passes over the corpus of
      ``floor(groups / B)`` steps each (METHOD §6.2 "step budget").
    * ``t0_steps``: first cosine period in steps; ``None`` = one epoch (METHOD §6.2).
    * ``amp``: ``auto`` = bf16 autocast on CPUs with native bf16, fp16 + GradScaler on CUDA
      (DECISIONS 11); ``off`` = float32.
    * ``num_workers``: DataLoader worker processes (spawned; 0 = read in the main process).
    * ``backbone_lr_scale``: the backbone's lr is ``lr * backbone_lr_scale`` (1 = the paper:
      one lr for every parameter). Fine-tuning an ImageNet encoder for a few hundred CPU steps
      needs a smaller backbone lr than the freshly initialised heads (docs/DECISIONS.md P5).
    * ``head_warmup_steps``: the backbone takes no optimiser step for the first N steps, while
      the projector and heads start (0 = the paper; docs/DECISIONS.md P5).
    * ``clip_grad_norm``: clip the global gradient norm to this value before each step
      (0 = off, the paper: "no gradient clipping", METHOD §6.2; docs/DECISIONS.md P5).
    """

    batch_size: int = 2
    steps: int | None = None
    epochs: int = 1
    lr: float = 1.5e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    t0_steps: int | None = None
    t_mult: int = 2
    eta_min: float = 1e-6
    amp: Amp = "auto"
    seed: int = 27
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 0
    device: Device = "auto"
    shuffle_buffer: int = 16
    deterministic: bool = True
    backbone_lr_scale: float = 1.0
    head_warmup_steps: int = 0
    clip_grad_norm: float = 0.0

    def __post_init__(self) -> None:
        """Validate ranges and enumerations with readable messages."""
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"train.amp={self.amp!r}; expected auto, off, bf16 or fp16")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device={self.device!r}; expected auto, cpu or cuda")
        positive = {
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "checkpoint_every": self.checkpoint_every,
            "log_every": self.log_every,
            "shuffle_buffer": self.shuffle_buffer,
            "t_mult": self.t_mult,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"train.{name} must be >= 1, got {value}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"train.steps must be >= 1 or None, got {self.steps}")
        if self.t0_steps is not None and self.t0_steps < 1:
            raise ValueError(f"train.t0_steps must be >= 1 or None, got {self.t0_steps}")
        if self.num_workers < 0:
            raise ValueError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.backbone_lr_scale < 0 or self.head_warmup_steps < 0 or self.clip_grad_norm < 0:
            raise ValueError("train.backbone_lr_scale, head_warmup_steps and clip_grad_norm must be >= 0")
        if self.lr <= 0 or self.eta_min < 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("train.lr must be > 0; eta_min, momentum, weight_decay >= 0")
