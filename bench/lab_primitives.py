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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--t", type=float, default=2.0)
    ap.add_argument("--accuracy", type=int, default=0, metavar="N",
                    help="measure the output change on N crops instead of timing")
    args = ap.parse_args()
    cv2.setNumThreads(1)
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
