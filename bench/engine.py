"""Distortion-engine benchmark: ms per crop per type at 224², and groups/s for two shapes.

Prints JSON: {"threads": n, "per_type_ms": {type: ms}, "groups": {"paper": {...},
"cpu-small": {...}}}. ``--threads N`` sets OpenCV/torch/BLAS threads for the per-type timing
and the number of worker processes for the group timing.

Each group entry gives wall-clock rates (``groups_per_s``, ``crops_per_s``) and CPU-time rates
(``crops_per_cpu_s``: crops per second of the workers' own CPU time, which a busy machine
disturbs much less), plus ``jpeg2000_encodes_per_group``: the encodes the measured groups'
compositions need (prefix slots once, the varying slot once with ``engine.j2k_shared_levels``
(else once per level), later slots once per level), the
one number that varies most between groups. ``native`` names the native library that ran
(DECISIONS E14), or says why none did; ``SHAMISA_NATIVE=0`` measures the pure-Python paths. The per-type times are CPU times too (best of
``reps``). Groups are ``0..n-1`` of seed 27; the paper shape needs about 16 groups for a
representative mix (groups 0-3 alone need 40 codec calls a group, the average is about 23).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    import cv2
    import torch

    cv2.setNumThreads(n)
    torch.set_num_threads(n)


def per_type_ms(size: int = 224, reps: int = 20) -> dict[str, float]:
    """Best CPU ms of each primitive on a natural size x size crop at t = 2."""
    import numpy as np

    from shamisa_core.distortions.registry import REGISTRY
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import embedded_default_images

    img = embedded_default_images()[0][1][:size, :size].astype(np.float32) / 255.0
    img = np.ascontiguousarray(img)
    out: dict[str, float] = {}
    for key, d in REGISTRY.items():
        _, value = index_to_value(d, 2.0)
        rng = np.random.default_rng(0)
        d.fn(img, value, rng)  # warm-up (kernels, LUT caches)
        times = []
        for _ in range(reps):
            t0 = time.process_time()
            d.fn(img, value, rng)
            times.append(time.process_time() - t0)
        out[key] = round(1000 * float(np.min(times)), 3)
    return out


def _j2k_encodes(record: dict, shared_levels: bool) -> int:
    """jpeg2000 encodes a group's compositions need (before level de-duplication): one per
    view for a prefix slot, and for the varying slot too with ``engine.j2k_shared_levels``
    where every level's byte budget allows the shared codestream."""
    from shamisa_core.distortions.primitives.compression import _J2K_SHARED_MIN_BUDGET_BYTES

    calls = 0
    for comp in record["compositions"]:
        types = [s["type"] for s in comp["slots"]]
        if "jpeg2000" in types:
            i, k = types.index("jpeg2000"), comp["varying_slot"]
            ratios = [max(int(lv["value"][i]), 1) for lv in comp["levels"]]
            budget = record["patch_size"] ** 2 * 3 / max(ratios)
            shared = shared_levels and budget >= _J2K_SHARED_MIN_BUDGET_BYTES
            once = i < k or (i == k and shared)
            calls += (1 if once else len(comp["levels"])) * 2 * record["n_refs"]
    return calls


def _groups_worker(args: tuple[str, list[str], int, int, list[str]]) -> tuple[int, int, float, int]:
    profile, sources, start, count, overrides = args
    _limit_threads(1)
    from shamisa_core.config import load_profile
    from shamisa_core.corpus.groups import build_group, default_loader

    cfg = load_profile(profile, overrides)
    crops, j2k = 0, 0
    cpu0 = time.process_time()
    for g in range(start, start + count):
        grp = build_group(sources, default_loader, 27, 0, g, 10**6, cfg.group, cfg.engine)
        crops += grp.ref.shape[0] + int(np.prod(grp.dist.shape[:3]))
        j2k += _j2k_encodes(grp.record, cfg.engine.j2k_shared_levels)
    return count, crops, time.process_time() - cpu0, j2k


import numpy as np  # noqa: E402  (used by the worker)


def groups_rate(
    profile: str, sources: list[str], n_groups: int, workers: int, overrides: list[str] | None = None
) -> dict[str, float]:
    """Groups/s and crops/s building ``n_groups`` groups of ``profile`` in ``workers`` processes."""
    per = [n_groups // workers + (1 if i < n_groups % workers else 0) for i in range(workers)]
    starts = np.cumsum([0] + per[:-1])
    ov = list(overrides or [])
    jobs = [(profile, sources, int(s), int(c), ov) for s, c in zip(starts, per) if c > 0]
    _groups_worker((profile, sources, 10**5, 1, ov))  # warm caches in this process
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            res = list(pool.map(_groups_worker, jobs))
    else:
        res = [_groups_worker(j) for j in jobs]
    dt = time.perf_counter() - t0
    groups = sum(r[0] for r in res)
    crops = sum(r[1] for r in res)
    cpu = sum(r[2] for r in res)
    return {
        "groups_per_s": round(groups / dt, 3),
        "crops_per_s": round(crops / dt, 1),
        "crops_per_cpu_s": round(crops / cpu, 1),
        "groups": groups,
        "seconds": round(dt, 2),
        "cpu_seconds": round(cpu, 2),
        "jpeg2000_encodes_per_group": round(sum(r[3] for r in res) / groups, 2),
    }


def paired_speedups(profile: str, sources: list[str], n_groups: int, seed: int = 0) -> dict:
    """The native library and the clamp skip (DECISIONS E14-E16), on and off, group by group.

    "on" is the engine as it is: the native library (DECISIONS E14 jpeg2000 encoder, E15
    box_muller uniforms) and the skipped chain clamps (E16). "off" is ``SHAMISA_NATIVE=0`` and
    a clamp after every type. Each group is built both ways, in random order, so slow and fast
    spells of a shared machine fall on both alike; both ways must give the same bytes, which
    is asserted. Returns crops per CPU-second each way, their ratio, and the median of the
    per-group ratios.
    """
    import hashlib

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.groups import build_group, default_loader
    from shamisa_core.distortions import registry

    cfg = load_profile(profile, [])
    clamped = registry.CLAMPED_KEYS
    order_rng = np.random.default_rng(seed)
    cpu = {"on": 0.0, "off": 0.0}
    ratios, crops = [], 0
    build_group(sources, default_loader, 27, 0, 10**5, 10**6, cfg.group, cfg.engine)  # warm
    previous = os.environ.get("SHAMISA_NATIVE")
    try:
        for g in range(n_groups):
            took, digests = {}, {}
            for mode in order_rng.permutation(["on", "off"]):
                os.environ["SHAMISA_NATIVE"] = "1" if mode == "on" else "0"
                registry.CLAMPED_KEYS = clamped if mode == "on" else frozenset()
                t0 = time.process_time()
                grp = build_group(sources, default_loader, 27, 0, g, 10**6, cfg.group, cfg.engine)
                took[mode] = time.process_time() - t0
                digests[mode] = hashlib.sha256(grp.ref.tobytes() + grp.dist.tobytes()).hexdigest()
            if digests["on"] != digests["off"]:
                raise AssertionError(f"group {g}: the two ways gave different bytes")
            crops += grp.ref.shape[0] + int(np.prod(grp.dist.shape[:3]))
            for mode in took:
                cpu[mode] += took[mode]
            ratios.append(took["off"] / took["on"])
    finally:
        registry.CLAMPED_KEYS = clamped
        if previous is None:
            os.environ.pop("SHAMISA_NATIVE", None)
        else:
            os.environ["SHAMISA_NATIVE"] = previous
    return {
        "groups": n_groups,
        "crops_per_cpu_s_on": round(crops / cpu["on"], 1),
        "crops_per_cpu_s_off": round(crops / cpu["off"], 1),
        "speedup": round(cpu["off"] / cpu["on"], 3),
        "median_group_speedup": round(float(np.median(ratios)), 3),
        "same_bytes": True,
    }


def _native_state() -> str:
    """Which encoder paths ran: the native library's file name, or why not (DECISIONS E14)."""
    from shamisa_core import native
    from shamisa_core.native.build import library_path

    if not native.enabled():
        return "off (SHAMISA_NATIVE=0)"
    return library_path().name if native.library() is not None else "not built"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--paper-groups", type=int, default=16)
    p.add_argument("--small-groups", type=int, default=40)
    p.add_argument("--override", action="append", default=[],
                   help="config override for the group timing, e.g. engine.j2k_shared_levels=false")
    p.add_argument("--skip-per-type", action="store_true")
    p.add_argument("--paired", type=int, default=0, metavar="N",
                   help="also time N paper-shape groups with the native library and the clamp skip "
                        "(E14-E16) on and off, alternated group by group (paired_speedups)")
    args = p.parse_args()
    _limit_threads(args.threads)
    from shamisa_core.pristine import export_default, scan_folder

    src_dir = export_default(Path(os.environ.get("SHAMISA_OUTPUTS", "outputs")) / "pristine" / "default")
    sources = [i.path for i in scan_folder(src_dir).images]
    result = {
        "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "native": _native_state(),
        "overrides": args.override,
        "per_type_ms": {} if args.skip_per_type else per_type_ms(),
        "groups": {
            "paper": groups_rate("paper", sources, args.paper_groups, args.threads, args.override),
            "cpu-small": groups_rate("cpu-small", sources, args.small_groups, args.threads, args.override),
        },
    }
    from shamisa_core.distortions.primitives.compression import J2K_NATIVE_STATS

    # This process's native jpeg2000 encodes (all of them with --threads 1) and how many the
    # rate allocator's check sent back for a second or third encode (DECISIONS E14).
    result["jpeg2000_native_encodes"] = dict(J2K_NATIVE_STATS)
    if args.paired:
        result["paired_e14_e16"] = paired_speedups("paper", sources, args.paired)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
