"""Reading a corpus: the project's own shard reader against the stock ``webdataset`` pipeline.

Both decode every group of every shard to numpy (``ref``, ``dist``) plus the JSON record:
the project reader with ``shamisa_core.corpus.shards.iter_samples`` (the loop of webdataset's
tar iterator over an unbuffered file, without importing webdataset), the stock pipeline with
``webdataset.WebDataset(urls, shardshuffle=False).decode()``. Prints JSON with groups/s and
MB/s of each (best of ``--reps`` alternating passes over a warm page cache, wall clock and
CPU time) and ``library_vs_project`` / ``library_vs_project_cpu`` (> 1: the stock pipeline
is faster). Without ``--corpus`` a temporary ``cpu-small``-shape corpus
of 4 shards x 16 groups is built first.

    .venv/bin/python bench/corpus_read.py [--corpus DIR] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _build(out: Path, shards: int, groups: int) -> None:
    from dataclasses import replace

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.pristine import export_default, scan_folder

    cfg = load_profile("cpu-small")
    cfg = replace(cfg, corpus=replace(cfg.corpus, n_shards=shards, groups_per_shard=groups))
    src = export_default(Path(os.environ.get("SHAMISA_OUTPUTS", "outputs")) / "pristine" / "default")
    build_corpus([i.path for i in scan_folder(src).images], cfg, out, workers=1)


def _project(paths: list[Path]) -> int:
    from shamisa_core.corpus.shards import iter_samples

    n = 0
    for p in paths:
        for s in iter_samples(p):
            assert s.ref.ndim == 4 and s.dist.ndim == 6 and "group_id" in s.record
            n += 1
    return n


def _library(paths: list[Path]) -> int:
    import webdataset as wds

    n = 0
    for s in wds.WebDataset([str(p) for p in paths], shardshuffle=False).decode():
        assert s["ref.npy"].ndim == 4 and s["dist.npy"].ndim == 6 and "group_id" in s["json"]
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="a built corpus folder (default: build a temporary one)")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            _build(corpus, shards=4, groups=16)
        manifest = json.loads((corpus / "manifest.json").read_text())
        paths = [corpus / s["file"] for s in manifest["shards"]]
        mb = sum(p.stat().st_size for p in paths) / 1e6
        for path in paths:  # warm the page cache so both read from memory
            path.read_bytes()
        _project(paths), _library(paths)  # warm imports
        results = {}
        # alternate the two, so that a change of machine load hits both alike
        times: dict[str, list[float]] = {"project": [], "library": []}
        cpu: dict[str, list[float]] = {"project": [], "library": []}
        counts = {}
        for _ in range(args.reps):
            for name, fn in (("project", _project), ("library", _library)):
                t0, c0 = time.perf_counter(), time.process_time()
                counts[name] = fn(paths)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        for name in ("project", "library"):
            best, best_cpu = min(times[name]), min(cpu[name])
            results[name] = {
                "groups": counts[name],
                "seconds_best": round(best, 4),
                "cpu_seconds_best": round(best_cpu, 4),
                "groups_per_s": round(counts[name] / best, 1),
                "mb_per_s": round(mb / best, 1),
                "mb_per_cpu_s": round(mb / best_cpu, 1),
            }
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "corpus_mb": round(mb, 1),
        "shards": len(paths),
        "group_shape": {k: manifest["config"]["group"][k] for k in ("patch_size", "n_refs", "n_comps", "n_levels")},
        "reps": args.reps,
        **results,
        "library_vs_project": round(results["project"]["seconds_best"] / results["library"]["seconds_best"], 3),
        "library_vs_project_cpu": round(
            results["project"]["cpu_seconds_best"] / results["library"]["cpu_seconds_best"], 3
        ),
    }, indent=1))


if __name__ == "__main__":
    main()
