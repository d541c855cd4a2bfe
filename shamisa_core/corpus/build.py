"""Build shards and whole corpora from a pristine source (METHOD.md §2; DECISIONS 5, 12)."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from shamisa_core.config import ShamisaConfig
from shamisa_core.corpus.groups import build_group, default_loader
from shamisa_core.corpus.manifest import write_manifest
from shamisa_core.corpus.shards import shard_name, write_shard


@dataclass(frozen=True)
class ShardResult:
    """What building one shard produced."""

    shard: int
    path: str
    sha256: str
    n_groups: int
    n_crops: int
    seconds: float


def build_shard(
    sources: Sequence[str], cfg: ShamisaConfig, shard: int, out_dir: Path
) -> ShardResult:
    """Build shard ``shard`` of the corpus described by ``cfg`` into ``out_dir``."""
    import cv2

    cv2.setNumThreads(1)
    start = time.perf_counter()
    gps = cfg.corpus.groups_per_shard
    groups = [
        build_group(
            list(sources), default_loader, cfg.corpus.seed, shard, g, gps, cfg.group, cfg.engine
        )
        for g in range(gps)
    ]
    path = Path(out_dir) / shard_name(shard)
    sha = write_shard(path, groups)
    return ShardResult(
        shard=shard,
        path=str(path),
        sha256=sha,
        n_groups=len(groups),
        n_crops=len(groups) * cfg.group.crops_per_group,
        seconds=time.perf_counter() - start,
    )


def _build_one(args: tuple[list[str], ShamisaConfig, int, str]) -> ShardResult:
    sources, cfg, shard, out = args
    return build_shard(sources, cfg, shard, Path(out))


def build_corpus(
    sources: Sequence[str], cfg: ShamisaConfig, out_dir: Path, workers: int = 1
) -> list[ShardResult]:
    """Build every shard (in ``workers`` processes) and the manifest."""
    out_dir = Path(out_dir)
    jobs = [(list(sources), cfg, s, str(out_dir)) for s in range(cfg.corpus.n_shards)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_build_one, jobs))
    else:
        results = [_build_one(j) for j in jobs]
    write_manifest(out_dir, cfg, [asdict(r) for r in results], sources)
    return results
