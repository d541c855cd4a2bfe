"""Frozen-encoder inference speed on this CPU, every option side by side (shamisa_core.inference).

For each backbone (ResNet-18, EfficientNet-Lite0) and evaluation crop size, crops/s of the
evaluation encoder in eager fp32, with ``channels_last``, with BN folding, with bf16 autocast,
and all together; plus the process CPU seconds per crop (a check on wall-clock figures taken
on a shared machine). The proxy costs 10 crops per image (5 crops x 2 scales, METHOD.md §7.3).

    python bench/infer_speed.py [--threads 2] [--batch 32] [--crops 128 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from shamisa_core.inference import InferenceOptions, cpu_has_native_bf16  # noqa: E402
from shamisa_core.models import ModelConfig, build_backbone  # noqa: E402
from shamisa_core.training.checkpoint import Encoder  # noqa: E402

OPTIONS = {
    "eager_fp32": InferenceOptions(fold_bn=False, channels_last=False, bf16=False),
    "channels_last": InferenceOptions(fold_bn=False, channels_last=True, bf16=False),
    "fold_bn+channels_last": InferenceOptions(fold_bn=True, channels_last=True, bf16=False),
    "bf16+channels_last": InferenceOptions(fold_bn=False, channels_last=True, bf16=True),
    "bf16+channels_last+fold_bn": InferenceOptions(fold_bn=True, channels_last=True, bf16=True),
}


def time_encoder(enc: Encoder, batch: int, crop: int, repeats: int) -> dict:
    """Best-of-``repeats`` wall time of one batch (after a warm-up), and its CPU time."""
    x = torch.randn(batch, 3, crop, crop)
    walls, cpus = [], []
    with torch.inference_mode():
        enc(x)
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            enc(x)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    best = min(walls)
    return {"crops_per_s": round(batch / best, 1), "cpu_ms_per_crop": round(1000 * min(cpus) / batch, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crops", type=int, nargs="+", default=[128, 224])
    p.add_argument("--archs", nargs="+", default=["resnet18", "efficientnet_lite0"])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"threads": torch.get_num_threads(), "batch": args.batch,
                 "native_bf16": cpu_has_native_bf16(), "results": {}}
    for arch in args.archs:
        torch.manual_seed(0)
        bb = build_backbone(ModelConfig(arch=arch, init="random", n_branches=0)).eval()
        for crop in args.crops:
            key = f"{arch}@{crop}"
            out["results"][key] = {name: time_encoder(Encoder(bb, opt), args.batch, crop, args.repeats)
                                   for name, opt in OPTIONS.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
