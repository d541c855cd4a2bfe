"""Storage format of corpus crops: raw uint8 ``.npy`` against lossless PNG.

Prints JSON with the bytes per group and the time to decode one group in each format, for a
group of the ``cpu-small`` shape read from a built shard (or generated when none is given).
The corpus stores ``.npy`` because it decodes faster (see ``shamisa_core/corpus/shards.py``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _png_blobs(arr: np.ndarray) -> list[bytes]:
    flat = arr.reshape(-1, *arr.shape[-3:])
    out = []
    for crop in flat:
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shard", help="a built shard (default: generate one cpu-small group)")
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    if args.shard:
        from shamisa_core.corpus.shards import iter_samples

        sample = next(iter_samples(Path(args.shard)))
        ref, dist = sample.ref, sample.dist
    else:
        from shamisa_core.config import load_profile
        from shamisa_core.corpus.groups import build_group, default_loader
        from shamisa_core.pristine import export_default, scan_folder

        cfg = load_profile("cpu-small")
        src = [i.path for i in scan_folder(export_default(Path("outputs/pristine/default"))).images]
        g = build_group(src, default_loader, 27, 0, 0, 1, cfg.group, cfg.engine)
        ref, dist = g.ref, g.dist
    npy = []
    for arr in (ref, dist):
        buf = io.BytesIO()
        np.save(buf, arr)
        npy.append(buf.getvalue())
    pngs = _png_blobs(ref) + _png_blobs(dist)

    t0 = time.perf_counter()
    for _ in range(args.reps):
        for blob in npy:
            np.load(io.BytesIO(blob))
    t_npy = (time.perf_counter() - t0) / args.reps
    t0 = time.perf_counter()
    for _ in range(args.reps):
        for blob in pngs:
            np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    t_png = (time.perf_counter() - t0) / args.reps
    print(json.dumps({
        "crops_per_group": int(ref.shape[0] + np.prod(dist.shape[:3])),
        "npy_bytes": sum(map(len, npy)), "png_bytes": sum(map(len, pngs)),
        "npy_decode_ms": round(1000 * t_npy, 3), "png_decode_ms": round(1000 * t_png, 3),
        "npy_speedup": round(t_png / max(t_npy, 1e-9), 1),
    }))


if __name__ == "__main__":
    main()
