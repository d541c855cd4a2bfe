"""Corpus build throughput against the number of worker processes (``build_corpus(workers=N)``).

For each worker count the same corpus is built from scratch into its own folder; the JSON
gives wall seconds, shards/s, groups/s and crops/s, the speed-up over the first worker count, and
``same_bytes``: whether every shard's sha256 equals the one-worker build's. ``cpu_seconds`` is
the CPU time of this process and its worker processes during the build, and
``cpu_utilisation`` = cpu_seconds / (seconds x workers): near 1 means every worker had a core
to itself; on a shared machine (see the 1-minute load average, printed before and after) other
jobs take the cores and the wall-clock speed-up says little, while ``shards_per_cpu_s``
(shards per CPU second) still compares the work per shard.

The bench **asserts** that every worker count wrote the same bytes (exit status 1 and
``"same_bytes": false`` otherwise): the build is reproducible whatever the parallelism.
``--workers`` defaults to 1, 2, 4, ... up to the cores this process may use
(``os.sched_getaffinity``), always including that number; the shard count defaults to that
number too, so each worker count has enough shards to keep its workers busy.

    .venv/bin/python bench/corpus_scaling.py [--profile paper] [--shards N] \
        [--groups-per-shard 1] [--workers 1,2,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="paper", help="config profile (paper: 126 crops of 224 px a group)")
    p.add_argument("--shards", type=int, default=0, help="0 = as many as the largest worker count")
    p.add_argument("--groups-per-shard", type=int, default=1)
    p.add_argument("--workers", default="", help="comma-separated worker counts (default 1, 2, 4, ... cores)")
    args = p.parse_args()

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import available_cores, build_corpus

    cores = available_cores()
    if args.workers:
        counts = [int(w) for w in args.workers.split(",")]
    else:
        counts = sorted({min(2**i, cores) for i in range(cores.bit_length() + 1)})
    args.shards = args.shards or max(counts)
    from shamisa_core.pristine import export_default, scan_folder

    cfg = load_profile(args.profile)
    cfg = replace(cfg, corpus=replace(cfg.corpus, n_shards=args.shards, groups_per_shard=args.groups_per_shard))
    src_dir = export_default(Path(os.environ.get("SHAMISA_OUTPUTS", "outputs")) / "pristine" / "default")
    sources = [i.path for i in scan_folder(src_dir).images]
    load_before = os.getloadavg()[0]
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for workers in counts:
            out = Path(tmp) / f"w{workers}"
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            results = build_corpus(sources, cfg, out, workers=workers)
            dt = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            shas = [r.sha256 for r in sorted(results, key=lambda r: r.shard)]
            reference = reference or shas
            groups = sum(r.n_groups for r in results)
            rows.append({
                "workers": workers,
                "seconds": round(dt, 2),
                "shards_per_s": round(len(results) / dt, 4),
                "groups_per_s": round(groups / dt, 3),
                "crops_per_s": round(sum(r.n_crops for r in results) / dt, 1),
                "cpu_seconds": round(cpu, 2),
                "cpu_utilisation": round(cpu / (dt * workers), 2),
                "shards_per_cpu_s": round(len(results) / cpu, 4),
                "same_bytes": shas == reference,
            })
    for row in rows:
        row["speedup_vs_first_run"] = round(rows[0]["seconds"] / row["seconds"], 2)
    same = all(r["same_bytes"] for r in rows)
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {cores} available",
        "same_bytes_all_worker_counts": same,
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
        "profile": args.profile,
        "shards": args.shards,
        "groups_per_shard": args.groups_per_shard,
        "crops_per_group": cfg.group.crops_per_group,
        "runs": rows,
    }, indent=1))
    if not same:
        sys.exit("corpus_scaling: the shards differ between worker counts (see same_bytes)")


if __name__ == "__main__":
    main()
