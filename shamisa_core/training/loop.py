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
import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from shamisa_core.corpus.manifest import read_manifest, verify_shards
from shamisa_core.corpus.reader import CorpusDataset, collate_groups, list_shards
from shamisa_core.corpus.shards import shard_name
from shamisa_core.errors import CorpusIntegrityError, RunFolderError
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

CHECKPOINT_NAME = "checkpoint.pt"
ENCODER_NAME = "encoder.pt"
LOG_NAME = "train_log.jsonl"
# What a run folder may hold: --overwrite removes only these (anything else -> refuse).
RUN_FILES = frozenset({CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME, "loss_curve.png"})
# Train fields that may change between a run and its resumption (they do not alter the
# trajectory of the steps already defined).
_RESUMABLE_CHANGES = frozenset({"steps", "epochs", "checkpoint_every", "log_every", "device"})


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


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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


def config_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a (dataclass) config."""
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.SGD:
    """SGD over all parameters, weight decay on all (METHOD §6.2); no-grad ones are skipped."""
    return torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)


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


# ----------------------------------------------------------------------------- data
def _passthrough(item: dict[str, Any]) -> dict[str, Any]:
    """Per-sample ``collate_fn``: groups are batched in the main process (see batch_stream)."""
    return item


def make_dataset(shards: list[Path], tc: TrainConfig, info: DistInfo, skip_bad: bool = False) -> CorpusDataset:
    """This rank's corpus reader: shards split by rank, shuffled per epoch (METHOD §2.1);
    ``skip_bad`` skips (and counts) shards that fail to decode instead of stopping."""
    return CorpusDataset(
        shards, seed=tc.seed, shuffle=True, shuffle_buffer=tc.shuffle_buffer,
        rank=info.rank, world_size=info.world_size, on_error="skip" if skip_bad else "raise",
    )


def steps_per_epoch(shard_sizes: list[int], batch_size: int, world_size: int = 1, num_workers: int = 0) -> int:
    """Steps per epoch: ``floor(groups / B)`` (METHOD §6.2), for the rank with the fewest groups.

    All ranks must take the same number of steps. The reader deals each epoch's shard
    permutation round-robin to ``world_size * workers`` slots, so a rank always receives the
    same number of shards; the bound assumes it gets the smallest ones, whatever the epoch.
    """
    workers = max(1, num_workers)
    slots, smallest = world_size * workers, sorted(shard_sizes)
    per_rank = []
    for rank in range(world_size):
        k = sum(len(range(s, len(smallest), slots)) for s in range(rank * workers, (rank + 1) * workers))
        per_rank.append(sum(smallest[:k]))
    return min(per_rank) // batch_size


def make_loader(dataset: CorpusDataset, tc: TrainConfig, epoch: int) -> DataLoader:
    """A fresh per-epoch DataLoader of single groups; workers are spawned (safe inside
    threaded hosts such as Dagster), not persistent, and seeded from (seed, epoch)."""
    dataset.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=None,
        collate_fn=_passthrough,
        num_workers=tc.num_workers,
        multiprocessing_context="spawn" if tc.num_workers > 0 else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(tc.seed * 100_003 + epoch),
    )


def check_item_shapes(item: Mapping[str, Any], group_cfg: Any, corpus_dir: Path | None = None) -> str | None:
    """Why a decoded group does not have the array shapes of ``group_cfg`` (None if it does).

    The message names the group and its shard file (the key ``s<shard>_g<group>`` fixes it),
    so a wrong-shape member fails with its shard's name, not with an ``IndexError`` later.
    """
    V, C, L, P = 2 * group_cfg.n_refs, group_cfg.n_comps, group_cfg.n_levels, group_cfg.patch_size
    want = {"ref": (V, 3, P, P), "dist": (V, C, L, 3, P, P), "indices": (C, L), "n_dist": (C,)}
    bad = [f"{k} {tuple(item[k].shape)} (expected {w})" for k, w in want.items()
           if tuple(item[k].shape[: len(w)]) != w or item[k].dim() != len(w) + (k == "indices")]
    if not bad:
        return None
    key = str(item.get("key", "?"))
    shard = key[1:7] if key.startswith("s") and key[1:7].isdigit() else None
    where = f"shard {Path(corpus_dir or '.') / shard_name(int(shard))}" if shard is not None else "a shard"
    return (f"group {key} in {where} has wrong array shapes: {'; '.join(bad)}. Rebuild the corpus "
            "for this config (`shamisa corpus build`), or pass --skip-bad-shards to leave such groups out")


def batch_stream(
    dataset: CorpusDataset, start: Position, spe: int, tc: TrainConfig,
    group_cfg: Any = None, skip_bad: bool = False, corpus_dir: Path | None = None,
    skipped: list[str] | None = None,
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield ``(epoch, batch_index, batch)`` from ``start`` onwards, epoch after epoch.

    Each epoch re-creates its iterator and, when resuming mid-epoch, reads and discards the
    batches already consumed, so the order is exactly that of an uninterrupted run.
    With ``group_cfg`` every group's array shapes are checked (:func:`check_item_shapes`);
    with ``skip_bad`` a bad group is left out (its reason appended to ``skipped``) and an
    epoch that runs short of groups ends early instead of failing.
    """
    epoch, skip = start.epoch, start.batch_in_epoch
    while True:
        items = iter(make_loader(dataset, tc, epoch))
        for b in range(spe):
            group: list[dict[str, Any]] = []
            for item in items:
                reason = check_item_shapes(item, group_cfg, corpus_dir) if group_cfg is not None else None
                if reason is None:
                    group.append(item)
                elif skip_bad:
                    if skipped is not None:
                        skipped.append(reason)
                else:
                    raise CorpusIntegrityError(reason)
                if len(group) == tc.batch_size:
                    break
            if len(group) < tc.batch_size:
                if skip_bad and b > 0:
                    break  # bad groups were left out: this epoch is shorter
                raise RuntimeError(f"corpus ran out in epoch {epoch} after {b} of {spe} batches"
                                   + ("; every group was skipped as bad" if skip_bad else ""))
            if b >= skip:
                yield epoch, b, collate_groups(group)
        del items
        epoch, skip = epoch + 1, 0


def open_corpus(
    corpus_dir: Path, cfg: Any, info: DistInfo, skip_bad: bool = False, bad_shards: list[str] | None = None,
) -> tuple[CorpusDataset, int, dict[str, Any]]:
    """This rank's reader, the steps per epoch and the manifest, with clear errors for a
    missing or empty corpus, one built for another group shape, or one too small.

    Every shard's sha256 is checked against the manifest first (:func:`verify_shards`): a
    missing, truncated or swapped shard stops the run naming it, or with ``skip_bad`` is left
    out (named in ``bad_shards``) and the steps per epoch count only the shards kept.
    """
    manifest = read_manifest(corpus_dir)
    built, wanted = manifest["config"]["group"], dataclasses.asdict(cfg.group)
    if built != wanted:
        raise ValueError(f"corpus {corpus_dir} was built with group {built}, but training expects {wanted}")
    problems = verify_shards(corpus_dir, manifest)
    if problems and not skip_bad:
        path, reason = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorpusIntegrityError(
            f"shard {path} does not match the corpus manifest: {reason}{more}. Rebuild the corpus "
            f"(`shamisa corpus build --out {corpus_dir}`) or pass --skip-bad-shards to train without it"
        )
    bad = {p.name for p, _ in problems}
    if bad_shards is not None:
        bad_shards.extend(f"{p}: {r}" for p, r in problems)
    kept = [s for s in manifest["shards"] if s["file"] not in bad]
    if not kept:
        raise CorpusIntegrityError(f"every shard of corpus {corpus_dir} is bad; rebuild the corpus")
    shards = [Path(corpus_dir) / s["file"] for s in kept] if bad else list_shards(corpus_dir)
    tc: TrainConfig = cfg.train
    sizes = [int(s["n_groups"]) for s in kept]
    spe = steps_per_epoch(sizes, tc.batch_size, info.world_size, tc.num_workers)
    if spe < 1:
        raise ValueError(f"corpus {corpus_dir} has {manifest['n_groups']} groups: too few for "
                         f"batch_size={tc.batch_size} x {info.world_size} rank(s)")
    return make_dataset(shards, tc, info, skip_bad), spe, manifest


def group_meta(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Graph metadata of a collated batch: indices, var_dist, n_dist and ints B, R, C, L."""
    B, V, C, L = batch["dist"].shape[:4]
    meta: dict[str, Any] = {k: batch[k].to(device) for k in ("indices", "var_dist", "n_dist")}
    meta.update(B=int(B), R=int(V) // 2, C=int(C), L=int(L))
    return meta


# ----------------------------------------------------------------------------- model step
class TrainStep(nn.Module):
    """Model forward + objective in one ``forward`` (one DDP call per step, METHOD §4.1).

    Returns ``(total, terms, h, z, diagnostics)``; the objective itself runs in float32
    (DECISIONS 11).
    """

    def __init__(self, model: SHAMISAModel, graph_cfg: Any, loss_cfg: Any, dtype: torch.dtype | None):
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


# ----------------------------------------------------------------------------- diagnostics
def effective_rank(x: Tensor, center: bool = True) -> float:
    """``exp(entropy(s / sum(s)))`` of the singular values ``s`` of ``x`` (rows = samples).

    1 = all rows on one line (collapse); at most ``min(x.shape)``.
    """
    x = x.detach().float()
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def term_floats(terms: Mapping[str, Tensor], prefix: str = "loss/") -> dict[str, float]:
    """Loss terms as plain floats (one host transfer)."""
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).cpu().tolist()
    return {prefix + k: v for k, v in zip(terms, values)}


def representation_stats(h: Tensor, z: Tensor) -> dict[str, float]:
    """Per-dimension std (mean, min) and effective rank (centred and raw) of ``h`` and ``z``."""
    out: dict[str, float] = {}
    for name, x in (("h", h), ("z", z)):
        x = x.detach().float()
        std = x.std(dim=0)
        out[f"{name}/std_mean"] = float(std.mean())
        out[f"{name}/std_min"] = float(std.min())
        out[f"{name}/erank"] = effective_rank(x, center=True)
        out[f"{name}/erank_raw"] = effective_rank(x, center=False)
    return out


# ----------------------------------------------------------------------------- resume
def check_resume_compatible(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every setting that differs in a way that breaks resume."""
    diffs = []
    for section in ("group", "model", "graph", "loss", "train"):
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "train" and key in _RESUMABLE_CHANGES:
                continue
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: checkpoint {a.get(key)!r} vs now {b.get(key)!r}")
    if diffs:
        raise ValueError("cannot resume: the config differs from the checkpoint's: " + "; ".join(diffs))


def _truncate_log(path: Path, step: int) -> None:
    """Keep only log lines up to ``step`` (a crashed run may have logged past its checkpoint).

    A torn last line (the run was killed while writing it) is dropped with a warning naming
    the file; a damaged line elsewhere is an error naming the file and the line. The
    shortened log replaces the old one atomically.
    """
    from shamisa_core.atomic import atomic_write_bytes

    if not path.exists():
        return
    lines = path.read_text(errors="replace").splitlines()
    keep = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            row = json.loads(ln)
            row_step = int(row["step"])
        except (ValueError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:
                print(f"shamisa: warning: {path}: dropped a torn last line ({len(ln)} characters) "
                      "left by an interrupted run", file=sys.stderr)
                continue
            raise RunFolderError(
                f"{path} line {i + 1} is damaged ({type(exc).__name__}); fix or delete that line, "
                "then resume again"
            ) from None
        if row_step <= step:
            keep.append(ln)
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files of killed checkpoint/encoder/log writes (``.checkpoint.pt.*.tmp``,
    ...) in a run folder; returns what was removed. Only the process that owns the run
    folder calls this, at the start of a run."""
    removed = []
    for name in (CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME):
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _is_temp(name: str) -> bool:
    return any(name.startswith(f".{n}.") and name.endswith(".tmp") for n in (CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME))


def prepare_run_folder(out_dir: Path, resume: bool, overwrite: bool, mutate: bool = True) -> None:
    """Make ``out_dir`` ready for a run, never mixing two runs' files (issue 8 defect 4).

    * ``resume``: the folder must hold the run to continue (``checkpoint.pt`` is read later).
    * a new run: the folder must be absent or empty (after removing stale temp files);
      with ``overwrite`` the previous run's files (:data:`RUN_FILES`) are deleted first,
      but a folder holding anything else is refused, so a mistyped ``--out`` deletes nothing.

    Every rank checks; only ``mutate`` (rank 0) deletes anything.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"--out {out_dir} is an existing file, not a folder; give a folder path")
    if not out_dir.exists():
        if resume:
            raise RunFolderError(f"no run to resume in {out_dir} (the folder does not exist); run without --resume")
        return
    entries = sorted(p.name for p in out_dir.iterdir() if not _is_temp(p.name))
    if resume or not entries:
        if mutate:
            remove_stale_temp_files(out_dir)
        return
    if not overwrite:
        raise RunFolderError(
            f"{out_dir} already holds a run ({', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}); "
            "pass --resume to continue it, --overwrite to replace it, or pick a new --out folder"
        )
    foreign = [e for e in entries if e not in RUN_FILES]
    if foreign:
        raise RunFolderError(
            f"--overwrite refused: {out_dir} holds files that are not part of a shamisa run "
            f"({', '.join(foreign[:4])}); pick a new --out folder"
        )
    if mutate:
        remove_stale_temp_files(out_dir)
        for e in entries:
            (out_dir / e).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the loop
def train(
    cfg: Any,
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
    cfg: Any, corpus_dir: Path, out_dir: Path, resume: bool,
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
            total, terms, h, z, diag = step_fn(ref, dist, group_meta(batch, device))
            loss_value = float(mean_across_ranks(total.detach().float(), info))
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(pos.step + 1, epoch, loss_value, term_floats(terms, prefix=""))
            scaler.scale(total).backward()
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
        from shamisa_core.training.health import assess  # the collapse guard (health.py)

        health = assess([json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()])
        enc_path = save_encoder(out_dir / ENCODER_NAME, model, cfg.model, cfg.group.patch_size,
                                {"step": pos.step, "config": cfg_dict, "corpus_hash": manifest["config_hash"],
                                 "health": health})
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
