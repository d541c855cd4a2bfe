"""Benchmark of the four Lab-based primitives and their colour-space helpers (issue 11).

Prints JSON: {"threads": 1, "size": 224, "reps": n, "ms": {name: best CPU ms}}. One thread
(``cv2.setNumThreads(1)``, OMP/OPENBLAS/MKL = 1 set before NumPy is imported); each entry is
the best ``time.process_time`` of ``reps`` calls on a natural 224x224x3 float32 crop, at the
registry's t = 2 value (``--t`` to change). Compare runs on the same machine only.

``--accuracy N``: instead, the output change against the former implementations (the oracle
in ``tests/test_lab_speed_equivalence.py``) on N natural 224-px crops at random positions of
the embedded pristine images (every fourth one first distorted by another primitive at a
random level, then clamped), at each of the 5 anchor values: per primitive and value, the
fraction of uint8 samples (``rint(clip(x, 0, 1) * 255)``) that change, the largest change in
uint8 steps, the mean absolute change in uint8 steps and the largest float change.

``--paired-groups N``: instead, in-context timing. The first N paper-shape groups of seed 27
are built (as ``bench/engine.py`` does) with each of the four primitives wrapped so that every
call also runs the former implementation on the same input, in random order; prints both
mean CPU ms per call and the saving, per primitive and for the four together.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

PRIMITIVES = ("brighten", "colordiff", "colorsat2", "highsharpen")


def _best_ms(fn, reps: int) -> float:
    fn()  # warm-up (caches, kernels)
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return round(1000.0 * float(np.min(times)), 3)


PRE_DISTORTIONS = ("jpeg", "gaublur", "whitenoise", "darken", "colorsat1", "lensblur")


def accuracy(n: int, size: int = 224, seed: int = 0) -> dict:
    """Output change of the four primitives against the former implementations."""
    from shamisa_core.distortions.registry import REGISTRY
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import embedded_default_images
    from tests.test_lab_speed_equivalence import OLD_PRIMITIVES

    rng = np.random.default_rng(seed)
    images = [arr for _, arr in embedded_default_images()]
    crops = []
    for i in range(n):
        arr = images[int(rng.integers(len(images)))]
        r = int(rng.integers(arr.shape[0] - size + 1))
        c = int(rng.integers(arr.shape[1] - size + 1))
        x = np.ascontiguousarray(arr[r : r + size, c : c + size].astype(np.float32) / 255.0)
        if i % 4 == 3:
            d = REGISTRY[PRE_DISTORTIONS[int(rng.integers(len(PRE_DISTORTIONS)))]]
            _, v = index_to_value(d, float(rng.uniform(0.0, 4.0)))
            x = np.clip(d.fn(x, v, rng), 0.0, 1.0).astype(np.float32)
        crops.append(x)
    result: dict = {}
    for key in PRIMITIVES:
        d = REGISTRY[key]
        old = OLD_PRIMITIVES[key]
        per_value = {}
        for value in d.anchors:
            changed = total = 0
            max_steps = 0.0
            sum_steps = 0.0
            max_float = 0.0
            for x in crops:
                new_out = d.fn(x, value, rng)
                old_out = old(x, value)
                u_new = np.rint(np.clip(new_out, 0.0, 1.0) * 255.0)
                u_old = np.rint(np.clip(old_out, 0.0, 1.0) * 255.0)
                steps = np.abs(u_new - u_old)
                changed += int(np.count_nonzero(steps))
                total += steps.size
                max_steps = max(max_steps, float(steps.max()))
                sum_steps += float(steps.sum())
                diff = np.abs(new_out.astype(np.float64) - old_out)
                max_float = max(max_float, float(diff.max()))
            per_value[str(value)] = {
                "fraction_uint8_changed": changed / total,
                "max_uint8_steps": max_steps,
                "mean_abs_uint8_steps": sum_steps / total,
                "max_abs_float": max_float,
            }
        result[key] = per_value
    return {"crops": n, "size": size, "seed": seed,
            "pre_distorted": sum(1 for i in range(n) if i % 4 == 3), "change": result}


def paired(n_groups: int, seed: int = 0) -> dict:
    """Mean CPU ms per call, former vs current, of the four primitives inside group builds."""
    import importlib
    import random

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.groups import build_group, default_loader
    from shamisa_core.distortions import registry
    from shamisa_core.distortions.registry import REGISTRY
    from shamisa_core.pristine import export_default, scan_folder
    from tests.test_lab_speed_equivalence import OLD_PRIMITIVES

    coin = random.Random(seed)
    acc = {k: [0.0, 0.0, 0] for k in PRIMITIVES}

    def wrap(key, fn):
        old = OLD_PRIMITIVES[key]

        def timed(img, value, rng):
            if coin.random() < 0.5:
                t0 = time.process_time()
                old(img, value)
                t1 = time.process_time()
                out = fn(img, value, rng)
                t_old, t_new = t1 - t0, time.process_time() - t1
            else:
                t0 = time.process_time()
                out = fn(img, value, rng)
                t1 = time.process_time()
                old(img, value)
                t_new, t_old = t1 - t0, time.process_time() - t1
            a = acc[key]
            a[0] += t_old
            a[1] += t_new
            a[2] += 1
            return out

        return timed

    modules = []
    for key in PRIMITIVES:
        name = registry._FAMILY_MODULE[REGISTRY[key].family]
        mod = importlib.import_module(f"shamisa_core.distortions.primitives.{name}")
        modules.append((mod, key, getattr(mod, key)))
        setattr(mod, key, wrap(key, getattr(mod, key)))
    registry._primitive.cache_clear()  # REGISTRY[key].fn resolves lazily and caches
    try:
        assert all(REGISTRY[k].fn.__name__ == "timed" for k in PRIMITIVES), "registry caches fn"
        outputs = Path(os.environ.get("SHAMISA_OUTPUTS", "outputs"))
        src = export_default(outputs / "pristine" / "default")
        sources = [i.path for i in scan_folder(src).images]
        cfg = load_profile("paper", [])
        build_group(sources, default_loader, 27, 0, 10**5, 10**6, cfg.group, cfg.engine)  # warm
        for a in acc.values():
            a[:] = [0.0, 0.0, 0]
        for g in range(n_groups):
            build_group(sources, default_loader, 27, 0, g, 10**6, cfg.group, cfg.engine)
    finally:
        for mod, key, fn in modules:
            setattr(mod, key, fn)
        registry._primitive.cache_clear()
    per = {
        k: {"calls": a[2], "former_ms": round(1000 * a[0] / a[2], 3),
            "current_ms": round(1000 * a[1] / a[2], 3),
            "saving_pct": round(100 * (1 - a[1] / a[0]), 1)}
        for k, a in acc.items() if a[2]
    }
    old_s = sum(a[0] for a in acc.values())
    new_s = sum(a[1] for a in acc.values())
    return {"groups": n_groups, "load_avg_1min": round(os.getloadavg()[0], 2), "per_primitive": per,
            "four_former_s": round(old_s, 3), "four_current_s": round(new_s, 3),
            "four_saving_pct": round(100 * (1 - new_s / old_s), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--t", type=float, default=2.0)
    ap.add_argument("--accuracy", type=int, default=0, metavar="N",
                    help="measure the output change on N crops instead of timing")
    ap.add_argument("--paired-groups", type=int, default=0, metavar="N",
                    help="former vs current CPU time per call inside N paper-shape groups")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.paired_groups:
        print(json.dumps(paired(args.paired_groups), indent=1))
        return
    if args.accuracy:
        print(json.dumps(accuracy(args.accuracy, args.size), indent=1))
        return

    from shamisa_core.distortions import colorspace as cs
    from shamisa_core.distortions import tone_curves as tc
    from shamisa_core.distortions.registry import REGISTRY
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import embedded_default_images

    s = args.size
    img = embedded_default_images()[0][1][:s, :s].astype(np.float32) / np.float32(255.0)
    img = np.ascontiguousarray(img)
    rng = np.random.default_rng(0)
    ms: dict[str, float] = {}
    for key in PRIMITIVES:
        d = REGISTRY[key]
        _, value = index_to_value(d, args.t)
        ms[key] = _best_ms(lambda d=d, value=value: d.fn(img, value, rng), args.reps)
    ms["sum_four"] = round(sum(ms[k] for k in PRIMITIVES), 3)
    lab = cs.rgb_to_lab(img)
    ms["rgb_to_lab"] = _best_ms(lambda: cs.rgb_to_lab(img), args.reps)
    ms["lab_to_rgb"] = _best_ms(lambda: cs.lab_to_rgb(lab), args.reps)
    ms["map_lab_lightness_identity"] = _best_ms(
        lambda: tc.map_lab_lightness(img, lambda lum: lum), args.reps
    )
    print(json.dumps({"threads": 1, "size": s, "t": args.t, "reps": args.reps, "ms": ms},
                     indent=1))


if __name__ == "__main__":
    main()
