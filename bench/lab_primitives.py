"""Benchmark of the four Lab-based primitives and their colour-space helpers (issue 11).

Prints JSON: {"threads": 1, "size": 224, "reps": n, "ms": {name: best CPU ms}}. One thread
(``cv2.setNumThreads(1)``, OMP/OPENBLAS/MKL = 1 set before NumPy is imported); each entry is
the best ``time.process_time`` of ``reps`` calls on a natural 224x224x3 float32 crop, at the
registry's t = 2 value (``--t`` to change). Compare runs on the same machine only.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--t", type=float, default=2.0)
    args = ap.parse_args()
    cv2.setNumThreads(1)

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
