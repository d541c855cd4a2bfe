"""Cost of the content-addressed evaluation cache keys (issue 8 defect 1).

Builds (or reuses) the default proxy benchmark (1,040 PNG images, 8 photos x 26 types x 5
levels) and times, per dataset: the image identity of the key with ``stat`` (path, size,
mtime: the default) and with ``sha256`` (every byte read), the whole key, a cache hit (key +
load), and the feature extraction the key guards (a random-init resnet18 at crop 96, 64 crops
per call; ``--extract-images N`` encodes the first N images and extrapolates).

Prints one JSON object. Run: ``.venv/bin/python bench/eval_cache_keys.py [--proxy DIR]``.
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


def _best(fn, repeat: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    """Time the key parts and print JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--proxy", default="outputs/benchmarks/proxy",
                   help="proxy base folder (built there if absent)")
    p.add_argument("--extract-images", type=int, default=60)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--full", action="store_true", help="extract the whole dataset (slow)")
    p.add_argument("--refs", type=int, default=0,
                   help="proxy photos (default: the default spec's 8; fewer = a quicker run)")
    p.add_argument("--levels", default="", help="proxy levels, e.g. 0,2,4 (default: 0..4)")
    args = p.parse_args()

    import torch

    from shamisa_core.evaluation.cache import encode_dataset, features_key, image_identity, key_parts
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.features import FeatureConfig, extract_features
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.serving.fit import demo_encoder

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="shamisa-bench-cache-"))
    from shamisa_core.evaluation.prepared import proxy_spec_with

    spec = proxy_spec_with(args.refs or None, None,
                           [float(v) for v in args.levels.split(",") if v.strip()] or None)
    prep = prepare_dataset("proxy", None, work / "cache", proxy_base=args.proxy, proxy_spec=spec)
    paths = prep.table["image"].tolist()
    nbytes = sum(os.path.getsize(x) for x in paths)
    enc = load_trained(demo_encoder(work / "enc.pt", patch_size=args.crop))
    stat_s = _best(lambda: image_identity(paths, "stat"))
    sha_s = _best(lambda: image_identity(paths, "sha256"))
    key_s = _best(lambda: features_key(key_parts(prep, enc, args.crop)))
    subset = paths[: args.extract_images]
    cfg = FeatureConfig(crop_size=args.crop, batch_size=64)
    t0 = time.perf_counter()
    extract_features(subset, enc.module, cfg)
    per_image = (time.perf_counter() - t0) / len(subset)
    extract_all = per_image * len(paths)
    if args.full:  # a real miss then a real hit on the whole dataset
        t0 = time.perf_counter()
        encode_dataset(prep, enc, args.crop)
        first = time.perf_counter() - t0
        hit_s = _best(lambda: encode_dataset(prep, enc, args.crop))
    else:  # extraction extrapolated from the subset; a hit = key + loading an equal array
        import numpy as np

        first = extract_all
        dim = 2 * int(enc.meta.get("feature_dim") or 512)
        np.save(work / "hit.npy", np.zeros((len(paths), 5, dim)))
        hit_s = _best(lambda: (features_key(key_parts(prep, enc, args.crop)),
                               np.load(work / "hit.npy")))
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared, loaded by other jobs)",
        "images": len(paths), "megabytes": round(nbytes / 1e6, 2),
        "identity_stat_us_per_image": round(1e6 * stat_s / len(paths), 1),
        "identity_sha256_us_per_image": round(1e6 * sha_s / len(paths), 1),
        "extract_ms_per_image": round(1e3 * per_image, 1),
        "identity_stat_s": round(stat_s, 4), "identity_sha256_s": round(sha_s, 4),
        "whole_key_stat_s": round(key_s, 4),
        "cache_hit_total_s": round(hit_s, 4),
        "extract_features_s": round(first, 2),
        "extract_features_measured_on_images": len(paths) if args.full else len(subset),
        "stat_key_vs_extraction_pct": round(100 * key_s / first, 3),
        "sha256_vs_extraction_pct": round(100 * sha_s / first, 3),
        "sha256_vs_hit_ratio": round(sha_s / max(hit_s, 1e-9), 2),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
