"""Corpus side of training: datasets, loaders, batch stream, shape checks, group metadata
(METHOD.md §2.4-2.5, §6.2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
from torch.utils.data import DataLoader

from shamisa_core.corpus.manifest import read_manifest, verify_shards
from shamisa_core.corpus.reader import CorpusDataset, collate_groups, list_shards
from shamisa_core.corpus.shards import shard_name
from shamisa_core.errors import CorpusIntegrityError
from shamisa_core.config import GroupConfig, ShamisaConfig
from shamisa_core.config.train import TrainConfig
from shamisa_core.training.distributed import DistInfo

if TYPE_CHECKING:  # pragma: no cover
    from shamisa_core.training.loop import Position

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


def check_item_shapes(item: Mapping[str, Any], group_cfg: GroupConfig, corpus_dir: Path | None = None) -> str | None:
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
    group_cfg: GroupConfig | None = None, skip_bad: bool = False, corpus_dir: Path | None = None,
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
    corpus_dir: Path, cfg: ShamisaConfig, info: DistInfo, skip_bad: bool = False, bad_shards: list[str] | None = None,
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


