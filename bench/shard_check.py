"""Cost of the shard sha256 check at the start of a training run (issue 8 defect 4), against
a cpu-small run. Prints JSON.

The check reads every shard once (``shamisa_core.corpus.manifest.verify_shards``); its cost
depends only on the corpus bytes. The bench builds a real cpu-small group to get the bytes
per group, writes a corpus of that size (8 shards x 32 groups), times ``verify_shards`` on
it (page cache warm, as right after a build, and after ``posix_fadvise(DONTNEED)``, close to
cold), and times real cpu-small training steps on a small real corpus to project the
200-step run.

    .venv/bin/python bench/shard_check.py [--steps 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _drop_cache(folder: Path) -> None:
    for p in folder.glob("shard-*.tar"):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4, help="timed training steps (after 1 warm-up)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from shamisa_core.atomic import file_sha256
    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.corpus.manifest import verify_shards
    from shamisa_core.corpus.shards import shard_name
    from shamisa_core.pristine import export_default, scan_folder
    from shamisa_core.training import train

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg = load_profile("cpu-small")
    n_shards, gps = cfg.corpus.n_shards, cfg.corpus.groups_per_shard
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = export_default(tmp / "photos")
        sources = [i.path for i in scan_folder(photos, cfg.corpus.min_side).images]
        # a small real cpu-small corpus: bytes per group, and real training steps
        small = dataclasses.replace(cfg, corpus=dataclasses.replace(cfg.corpus, n_shards=1, groups_per_shard=8))
        build_corpus(sources, small, tmp / "small")
        bytes_per_group = (tmp / "small" / shard_name(0)).stat().st_size / 8
        # a corpus of the full cpu-small size (content does not change sha256's cost)
        full = tmp / "full"
        full.mkdir()
        rng = np.random.default_rng(0)
        shard_bytes = int(bytes_per_group * gps)
        manifest = {"shards": []}
        for s in range(n_shards):
            p = full / shard_name(s)
            p.write_bytes(rng.integers(0, 256, shard_bytes, dtype=np.uint8).tobytes())
            manifest["shards"].append({"file": p.name, "sha256": file_sha256(p)})
        t0 = time.perf_counter()
        assert verify_shards(full, manifest) == []
        warm = time.perf_counter() - t0
        _drop_cache(full)
        t0 = time.perf_counter()
        assert verify_shards(full, manifest) == []
        cold = time.perf_counter() - t0

        steps = args.steps + 1
        tc = dataclasses.replace(small.train, steps=steps, log_every=1, checkpoint_every=10**6)
        rows: list[dict] = []
        train(dataclasses.replace(small, train=tc), tmp / "small", tmp / "run", on_log=rows.append)
        per_step = (rows[-1]["wall_s"] - rows[0]["wall_s"]) / (len(rows) - 1)
        run_s = per_step * cfg.train.steps
    print(json.dumps({
        "corpus_bytes": shard_bytes * n_shards,
        "n_shards": n_shards,
        "check_warm_s": round(warm, 3),
        "check_cold_s": round(cold, 3),
        "sha256_MBps_warm": round(shard_bytes * n_shards / warm / 1e6, 1),
        "train_s_per_step": round(per_step, 3),
        "projected_run_s": round(run_s, 1),
        "run_steps": cfg.train.steps,
        "cost_pct_warm": round(100 * warm / run_s, 3),
        "cost_pct_cold": round(100 * cold / run_s, 3),
        "cpu_count": os.cpu_count(),
        "load_avg": os.getloadavg()[0],
    }, indent=1))


if __name__ == "__main__":
    main()
