"""Scoring throughput of ``shamisa score`` / ``serving.score`` on this CPU (images/s).

A model folder is made from a random-init encoder (``--arch``, crop ``--crop``) and a ridge
head fitted on random features (throughput does not depend on the weights); ``--n`` images
of ``--size`` px are scored in batches of ``--batch`` images, best of ``--repeat``. Prints JSON.
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


def main() -> int:
    """Time scoring and print JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from shamisa_core.evaluation.regressor import fit_regressor
    from shamisa_core.serving.api import load_model, score
    from shamisa_core.serving.fit import demo_encoder

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="shamisa-score-bench-"))
    demo_encoder(tmp / "model" / "encoder.pt", patch_size=args.crop)
    rng = np.random.default_rng(0)
    fit_regressor(rng.normal(size=(20, 5, 1024)), rng.normal(size=20), 1.0,
                  crop_size=args.crop).save(tmp / "model" / "regressor.npz")
    paths = []
    for i in range(args.n):
        path = tmp / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    model = load_model(tmp / "model")
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        s = score(model, paths, batch_images=args.batch)
        best = min(best, time.perf_counter() - t0)
    assert np.isfinite(s).all()
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared, loaded by other jobs)",
        "torch_threads": args.threads, "arch": "resnet18", "crop": args.crop,
        "image_size": args.size, "images": args.n, "seconds": round(best, 2),
        "images_per_s": round(args.n / best, 2),
        "note": "10 crops per image (5 crops x 2 scales, METHOD.md §7.3)"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
