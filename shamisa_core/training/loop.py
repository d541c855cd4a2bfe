"""The encoder pre-training loop (METHOD.md §4.1, §6; DECISIONS.md 10-12).

One step: B groups from the corpus reader -> encoder on the pristine and the distorted crops
(two backbone calls, METHOD §4.1) -> :func:`~shamisa_core.objective.compute_objective` ->
SGD step -> CosineAnnealingWarmRestarts step (every iteration, METHOD §6.2). Mixed precision
per DECISIONS 11. Seeded and deterministic: on CPU, ``2N`` steps in one go and ``N`` steps +
resume + ``N`` steps give bit-identical weights, because the checkpoint stores the corpus
position (epoch, batches consumed) and every RNG state, and the reader's order is a pure
function of (seed, epoch, rank, world size, workers).

Under ``torchrun`` the model runs as DDP (see :mod:`.distributed`); only rank 0 writes
``checkpoint.pt``, ``encoder.pt`` and ``train_log.jsonl`` in ``out_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from shamisa_core.config import GraphConfig, LossConfig, ShamisaConfig
from shamisa_core.inference import cpu_has_native_bf16  # noqa: F401 - one definition, re-exported
from shamisa_core.models import SHAMISAModel, build_model
from shamisa_core.objective import compute_objective
from shamisa_core.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_encoder,
)
from shamisa_core.training.config import TrainConfig
from shamisa_core.training.distributed import (
    DistInfo,
    barrier,
    broadcast_buffers,
    init_distributed,
    mean_across_ranks,
    shutdown_distributed,
    wrap_ddp,
)

from shamisa_core.training.data import (  # noqa: F401 - part of this module's API
    _passthrough, batch_stream, check_item_shapes, group_meta, make_dataset, make_loader,
    open_corpus, steps_per_epoch,
)
from shamisa_core.training.diagnostics import effective_rank, representation_stats, term_floats  # noqa: F401
from shamisa_core.training.run_folder import (  # noqa: F401
    _RESUMABLE_CHANGES, CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME, RUN_FILES, _is_temp, _truncate_log,
    check_resume_compatible, prepare_run_folder, remove_stale_temp_files,
)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; ``step`` is the 1-based optimiser step that produced it."""

    def __init__(self, step: int, epoch: int, value: float, terms: Mapping[str, float]):
        self.step = step
        bad = ", ".join(f"{k}={v:g}" for k, v in terms.items() if not math.isfinite(v)) or "none"
        super().__init__(
            f"non-finite loss ({value}) at step {step} (epoch {epoch}); non-finite terms: {bad}. "
            "Training stopped; lower train.lr, try train.amp=off, or resume from the last checkpoint."
        )


@dataclass(frozen=True)
class TrainResult:
    """What a run produced (paths are None on ranks other than 0)."""

    steps: int
    final_loss: float
    wall_s: float
    crops_per_s: float
    checkpoint: Path | None
    encoder: Path | None
    log: Path | None
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    skipped_shards: int = 0
    skipped_groups: int = 0


@dataclass
class Position:
    """Where the run is: optimiser steps done, current epoch, batches consumed in it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


# ----------------------------------------------------------------------------- set-up helpers
def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; one GPU per local rank under DDP."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("train.device=cuda but no CUDA device is available")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (DECISIONS 11): ``auto`` = fp16 on CUDA, bf16 on capable CPUs, else None."""
    if amp == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), NumPy's global RNG and Python ``random`` (METHOD §6.2)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def config_dict(cfg: ShamisaConfig) -> dict[str, Any]:
    """Plain nested dict of a (dataclass) config."""
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.SGD:
    """SGD over all parameters, weight decay on all (METHOD §6.2); no-grad ones are skipped.

    With ``tc.backbone_lr_scale != 1`` the parameters form two groups: group 0 the heads
    (projector, prototype head, aggregator) at ``lr``, group 1 the backbone at
    ``lr * backbone_lr_scale`` (docs/DECISIONS.md P5). The scheduler scales both alike.
    """
    kw = {"lr": tc.lr, "momentum": tc.momentum, "weight_decay": tc.weight_decay}
    backbone = getattr(model, "backbone", None)
    if tc.backbone_lr_scale == 1.0 or backbone is None:
        return torch.optim.SGD(model.parameters(), **kw)
    ids = {id(p) for p in backbone.parameters()}
    heads = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.SGD([{"params": heads},
                            {"params": list(backbone.parameters()), "lr": tc.lr * tc.backbone_lr_scale}], **kw)


def hold_backbone(model: nn.Module) -> None:
    """Drop the backbone's gradients so that this optimiser step leaves it (and its momentum
    and weight decay) untouched: the head warm-up (``train.head_warmup_steps``, P5). Works the
    same under DDP, where gradients are already reduced when this runs."""
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        for p in backbone.parameters():
            p.grad = None


def warmup_switch(model: nn.Module, distributed: bool) -> Callable[[bool], None]:
    """``switch(held)`` for the head warm-up. In one process, a held backbone also stops
    requiring gradients, which skips its backward pass (the same updates, a faster step);
    under DDP every parameter keeps requiring gradients (DDP's reducer expects them) and
    :func:`hold_backbone` drops them instead. Frozen stages stay frozen either way."""
    backbone = getattr(model, "backbone", None)
    trainable = [p for p in backbone.parameters() if p.requires_grad] if backbone is not None else []

    def switch(held: bool) -> None:
        if not distributed:
            for p in trainable:
                p.requires_grad_(not held)

    return switch


def build_scheduler(
    opt: torch.optim.Optimizer, t0_steps: int, tc: TrainConfig
) -> torch.optim.lr_scheduler.CosineAnnealingWarmRestarts:
    """CosineAnnealingWarmRestarts with T_0 in steps (METHOD §6.2).

    The loop calls ``step(g)`` after optimiser step ``g`` (0-based), the reference's
    ``step(epoch + i / steps_per_epoch)`` measured in steps instead of epochs.
    """
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=t0_steps, T_mult=tc.t_mult, eta_min=tc.eta_min
    )


# ----------------------------------------------------------------------------- model step
class TrainStep(nn.Module):
    """Model forward + objective in one ``forward`` (one DDP call per step, METHOD §4.1).

    Returns ``(total, terms, h, z, diagnostics)``; the objective itself runs in float32
    (DECISIONS 11).
    """

    def __init__(self, model: SHAMISAModel, graph_cfg: GraphConfig, loss_cfg: LossConfig,
                 dtype: torch.dtype | None):
        """Hold the model and the objective's settings."""
        super().__init__()
        self.model = model
        self.graph_cfg = graph_cfg
        self.loss_cfg = loss_cfg
        self.dtype = dtype

    def forward(
        self, ref: Tensor, dist: Tensor, meta: Mapping[str, Any]
    ) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor, dict[str, float]]:
        """Encode both crop sets under autocast, then compute the objective."""
        with torch.autocast(ref.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            h, z = self.model(ref, dist)
            out = compute_objective(
                h, z, meta, self.model.proto_head, self.model.aggregator, self.graph_cfg, self.loss_cfg
            )
        return out.total, out.terms, h, z, out.diagnostics


# ----------------------------------------------------------------------------- the loop
def train(
    cfg: ShamisaConfig,
    corpus_dir: Path | str,
    out_dir: Path | str,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    overwrite: bool = False,
    skip_bad_shards: bool = False,
) -> TrainResult:
    """Pre-train the encoder on a built corpus (METHOD §6). See the module docstring.

    ``cfg`` needs ``.train`` (:class:`TrainConfig`), ``.model``, ``.graph``, ``.loss`` and
    ``.group`` sections. ``on_log`` receives every log record (rank 0 only).

    ``out_dir`` must be new or empty unless ``resume`` (continue the run in it) or
    ``overwrite`` (replace it); see :func:`prepare_run_folder`. ``skip_bad_shards`` leaves
    out shards that fail the manifest check or do not decode, and groups with wrong array
    shapes, counting them in the log (``skipped_shards``, ``skipped_groups``).
    """
    tc: TrainConfig = cfg.train
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    info = init_distributed(resolve_device(tc.device, DistInfo()).type)
    try:
        if tc.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        return _train(cfg, Path(corpus_dir), Path(out_dir), resume, on_log, info, overwrite, skip_bad_shards)
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        shutdown_distributed(info)


def _train(
    cfg: ShamisaConfig, corpus_dir: Path, out_dir: Path, resume: bool,
    on_log: Callable[[dict[str, Any]], None] | None, info: DistInfo,
    overwrite: bool = False, skip_bad: bool = False,
) -> TrainResult:
    tc: TrainConfig = cfg.train
    device = resolve_device(tc.device, info)
    dtype = amp_dtype(tc.amp, device)
    cfg_dict = config_dict(cfg)

    bad_shards: list[str] = []
    dataset, spe, manifest = open_corpus(corpus_dir, cfg, info, skip_bad, bad_shards)
    if info.is_main:
        for line in bad_shards:
            print(f"shamisa: warning: skipping bad shard {line}", file=sys.stderr)
    prepare_run_folder(out_dir, resume, overwrite, mutate=info.is_main)
    barrier(info)
    total_steps = tc.steps or tc.epochs * spe

    # Model, optimiser, schedule, scaler.
    active = len(cfg.graph.active_branches())
    if cfg.graph.weighting in ("learned", "mlp_frozen") and cfg.model.n_branches != active:
        raise ValueError(f"model.n_branches={cfg.model.n_branches} but the graph has {active} active branches")
    seed_everything(tc.seed)
    model = build_model(cfg.model).to(device)
    opt = build_optimizer(model, tc)
    sched = build_scheduler(opt, tc.t0_steps or spe, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    pos = Position()
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped_groups: list[str] = []
    ckpt_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    if resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        check_resume_compatible(ckpt["config"], cfg_dict)
        if ckpt["world_size"] != info.world_size or ckpt["corpus_hash"] != manifest["config_hash"]:
            raise ValueError("cannot resume: world size or corpus differ from the checkpoint's")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        restore_rng_state(ckpt["rng"])
        pos = Position(ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"])
        if info.is_main:
            _truncate_log(log_path, pos.step)
    elif info.is_main:
        log_path.write_text("")
    barrier(info)

    warmup = warmup_switch(model, distributed=info.world_size > 1)
    step_fn = wrap_ddp(TrainStep(model, cfg.graph, cfg.loss, dtype), info, device)
    model.train()

    def save() -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                "step": pos.step, "epoch": pos.epoch, "batch_in_epoch": pos.batch_in_epoch,
                "rng": capture_rng_state(), "config": cfg_dict,
                "world_size": info.world_size, "corpus_hash": manifest["config_hash"],
            })

    crops_per_step = tc.batch_size * cfg.group.crops_per_group * info.world_size
    t_start = t_log = time.perf_counter()
    start_step = steps_at_log = pos.step
    loss_value = float("nan")
    with contextlib.closing(batch_stream(dataset, pos, spe, tc, cfg.group, skip_bad, corpus_dir,
                                         skipped_groups)) as stream:
        for epoch, b, batch in stream if pos.step < total_steps else ():
            ref = batch["ref"].to(device, non_blocking=True)
            dist = batch["dist"].to(device, non_blocking=True)
            lr = opt.param_groups[0]["lr"]
            opt.zero_grad(set_to_none=True)
            warmup(pos.step < tc.head_warmup_steps)
            total, terms, h, z, diag = step_fn(ref, dist, group_meta(batch, device))
            loss_value = float(mean_across_ranks(total.detach().float(), info))
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(pos.step + 1, epoch, loss_value, term_floats(terms, prefix=""))
            scaler.scale(total).backward()
            if pos.step < tc.head_warmup_steps:
                hold_backbone(model)
            if tc.clip_grad_norm > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_grad_norm)
            scaler.step(opt)
            scaler.update()
            sched.step(pos.step)
            pos.step += 1
            pos.epoch, pos.batch_in_epoch = (epoch, b + 1) if b + 1 < spe else (epoch + 1, 0)

            if info.is_main and (pos.step % tc.log_every == 0 or pos.step == total_steps):
                now = time.perf_counter()
                record = {
                    "step": pos.step, "epoch": pos.step / spe, "lr": lr, "loss": loss_value,
                    **term_floats(terms),
                    **diag, **representation_stats(h, z),
                    "crops_per_s": crops_per_step * (pos.step - steps_at_log) / max(now - t_log, 1e-9),
                    "wall_s": now - t_start,
                    "skipped_shards": len(bad_shards) + len(set(dataset.stats.skipped_shards)),
                    "skipped_groups": len(skipped_groups),
                }
                with log_path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if on_log is not None:
                    on_log(record)
                t_log, steps_at_log = now, pos.step
            if pos.step % tc.checkpoint_every == 0 or pos.step == total_steps:
                save()
            if pos.step >= total_steps:
                break

    wall = time.perf_counter() - t_start
    broadcast_buffers(model, info)
    enc_path = None
    if info.is_main:
        from shamisa_core.provenance import source_commit
        from shamisa_core.training.health import assess  # the collapse guard (health.py)

        health = assess([json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()])
        enc_path = save_encoder(out_dir / ENCODER_NAME, model, cfg.model, cfg.group.patch_size,
                                {"step": pos.step, "config": cfg_dict, "corpus_hash": manifest["config_hash"],
                                 "health": health, "git_commit": source_commit()})
    barrier(info)
    return TrainResult(
        steps=pos.step,
        final_loss=loss_value,
        wall_s=wall,
        crops_per_s=crops_per_step * (pos.step - start_step) / max(wall, 1e-9),
        checkpoint=ckpt_path if info.is_main else None,
        encoder=enc_path,
        log=log_path if info.is_main else None,
        model=model,
        skipped_shards=len(bad_shards) + len(set(dataset.stats.skipped_shards)),
        skipped_groups=len(skipped_groups),
    )
