"""Training-batch reader over corpus shards (METHOD.md §2.4-2.5; DECISIONS 12).

A ``torch.utils.data.IterableDataset`` that yields one group at a time as tensors plus
metadata. Per epoch the shard order is a permutation drawn from ``(seed, epoch)``; shards are
split across distributed ranks and then DataLoader workers; inside a worker a seeded shuffle
buffer mixes groups. The same (seed, epoch, rank, world, workers) always yields the same order.
A damaged shard raises :class:`ShardError` naming it, or is skipped and counted when
``on_error="skip"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from shamisa_core.corpus.manifest import read_manifest
from shamisa_core.corpus.shards import ShardError, _decode, iter_raw

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SLOTS = 7


def list_shards(corpus_dir: Path) -> list[Path]:
    """The shard files of a built corpus, in manifest order (clear error when missing/empty)."""
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    paths = [corpus_dir / s["file"] for s in manifest["shards"]]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"corpus {corpus_dir} lists shards that are missing: {', '.join(missing[:5])}; "
            "rebuild them (re-materialize their corpus_shards partitions)"
        )
    return paths


def record_metadata(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Graph metadata of one group: indices (C, L, 7), values (C, L, 7), n_dist, var_dist."""
    comps = record["compositions"]
    C, L = len(comps), len(comps[0]["levels"])
    indices = np.full((C, L, MAX_SLOTS), -1.0, dtype=np.float32)
    values = np.full((C, L, MAX_SLOTS), -1.0, dtype=np.float32)
    n_dist = np.zeros(C, dtype=np.int64)
    var_dist = np.zeros(C, dtype=np.int64)
    for c, comp in enumerate(comps):
        n = len(comp["slots"])
        n_dist[c] = n
        var_dist[c] = comp["varying_slot"]
        for l, lv in enumerate(comp["levels"]):
            indices[c, l, :n] = lv["t"]
            values[c, l, :n] = lv["value"]
    return {"indices": indices, "values": values, "n_dist": n_dist, "var_dist": var_dist}


def to_tensor_images(arr: np.ndarray, normalize: bool = True) -> torch.Tensor:
    """uint8 (..., P, P, 3) -> float32 (..., 3, P, P) in [0,1], ImageNet-normalised if asked."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).movedim(-1, -3).float().div_(255.0)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        t = (t - mean) / std
    return t


@dataclass
class ReaderStats:
    """Counters of one iteration (per worker)."""

    groups: int = 0
    skipped_shards: list[str] = field(default_factory=list)


class CorpusDataset(IterableDataset):
    """Iterate groups of a corpus as training samples.

    Each item is a dict: ``ref`` (V, 3, P, P) float32, ``dist`` (V, C, L, 3, P, P) float32,
    ``indices`` (C, L, 7), ``values`` (C, L, 7), ``n_dist`` (C,), ``var_dist`` (C,), ``key`` str.
    Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        shards: Sequence[Path | str],
        seed: int = 27,
        shuffle: bool = True,
        shuffle_buffer: int = 16,
        rank: int = 0,
        world_size: int = 1,
        on_error: Literal["raise", "skip"] = "raise",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if not shards:
            raise ValueError("CorpusDataset needs at least one shard")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.shards = [Path(s) for s in shards]
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.rank = rank
        self.world_size = world_size
        self.on_error = on_error
        self.normalize = normalize
        self.epoch = 0
        self.stats = ReaderStats()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows."""
        self.epoch = int(epoch)

    def shard_order(self) -> list[Path]:
        """This epoch's shard order (before rank/worker splitting)."""
        if not self.shuffle:
            return list(self.shards)
        rng = np.random.default_rng([self.seed, self.epoch])
        return [self.shards[i] for i in rng.permutation(len(self.shards))]

    def my_shards(self, worker_id: int = 0, num_workers: int = 1) -> list[Path]:
        """Shards for one (rank, worker): round-robin over ``world_size * num_workers``."""
        order = self.shard_order()
        slots = self.world_size * num_workers
        slot = self.rank * num_workers + worker_id
        mine = order[slot::slots]
        if not mine and order:
            raise ValueError(
                f"{len(order)} shards cannot feed {slots} readers (ranks x workers); "
                "build more shards or use fewer workers"
            )
        return mine

    def _raw_stream(self, shards: list[Path]) -> Iterator[tuple[Path, str, dict[str, bytes]]]:
        for path in shards:
            try:
                for key, parts in iter_raw(path):
                    yield path, key, parts
            except ShardError:
                if self.on_error == "raise":
                    raise
                self.stats.skipped_shards.append(str(path))

    def _ordered(self, worker_id: int, num_workers: int) -> Iterator[tuple[Path, str, dict[str, bytes]]]:
        stream = self._raw_stream(self.my_shards(worker_id, num_workers))
        if not self.shuffle:
            yield from stream
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker_id, 1])
        buf: list[tuple[Path, str, dict[str, bytes]]] = []
        for item in stream:
            buf.append(item)
            if len(buf) >= self.shuffle_buffer:
                yield buf.pop(int(rng.integers(len(buf))))
        while buf:
            yield buf.pop(int(rng.integers(len(buf))))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for path, key, parts in self._ordered(wid, nw):
            try:
                sample = _decode(path, key, parts)
            except ShardError:
                if self.on_error == "raise":
                    raise
                self.stats.skipped_shards.append(str(path))
                continue
            self.stats.groups += 1
            meta = record_metadata(sample.record)
            yield {
                "key": sample.key,
                "ref": to_tensor_images(sample.ref, self.normalize),
                "dist": to_tensor_images(sample.dist, self.normalize),
                **{k: torch.from_numpy(v) for k, v in meta.items()},
            }


def collate_groups(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack B groups into one batch: ref (B, V, 3, P, P), dist (B, V, C, L, 3, P, P), ..."""
    out: dict[str, Any] = {"keys": [it["key"] for it in items]}
    for name in ("ref", "dist", "indices", "values", "n_dist", "var_dist"):
        out[name] = torch.stack([it[name] for it in items])
    return out
