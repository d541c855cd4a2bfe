"""Training-step benchmark: crops/s of forward + backward + SGD step on synthetic batches.

Prints JSON ``{"threads": n, "device": ..., "amp": ..., "shapes": {name: {"arch", "patch",
"crops_per_step", "crops_per_s", "step_s", "graph_loss_share", "cpu_s_per_step"}}}``.
``graph_loss_share`` is the time spent in ``compute_objective`` (graphs + loss, forward) over
the whole step; ``cpu_s_per_step`` is process CPU time (all threads), a check on wall-clock
numbers taken on a shared machine (uncontended wall ~ cpu_s_per_step / threads). No corpus is
needed: images are random, the severity metadata is random but well-formed.

Shapes: ``cpu-small-96`` / ``cpu-small-128`` (ResNet-18, R=2, C=2, L=3, B=2: 56 crops/step),
``lite0-96`` / ``lite0-128`` / ``lite0-224`` (EfficientNet-Lite0, the same groups) and
``paper-b1`` (ResNet-50 at 224, R=3, C=4, L=5, B=1: 126 crops/step); with ``--device cuda``
also ``paper`` (B=2: 252 crops/step). ``--channels-last`` and ``--freeze N`` (stages kept
frozen, stem = 1) are the model switches of the same names.

    python bench/train_step.py [--threads 2] [--amp auto|off|bf16|fp16] [--device cpu|cuda] \
        [--channels-last] [--freeze 2] [--shapes lite0-96 lite0-128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from shamisa_core.graphs.config import GraphConfig  # noqa: E402
from shamisa_core.losses import LossConfig  # noqa: E402
from shamisa_core.models import ModelConfig, build_model  # noqa: E402
from shamisa_core.training import loop  # noqa: E402
from shamisa_core.training.config import TrainConfig  # noqa: E402

# name: (arch, patch, R, C, L, B)
SHAPES: dict[str, tuple[str, int, int, int, int, int]] = {
    "cpu-small-96": ("resnet18", 96, 2, 2, 3, 2),
    "cpu-small-128": ("resnet18", 128, 2, 2, 3, 2),
    "lite0-96": ("efficientnet_lite0", 96, 2, 2, 3, 2),
    "lite0-128": ("efficientnet_lite0", 128, 2, 2, 3, 2),
    "lite0-224": ("efficientnet_lite0", 224, 2, 2, 3, 2),
    "paper-b1": ("resnet50", 224, 3, 4, 5, 1),
    "paper": ("resnet50", 224, 3, 4, 5, 2),
}


def synthetic_batch(R: int, C: int, L: int, B: int, P: int, device: torch.device, seed: int = 0) -> tuple:
    """Random normalised crops and well-formed metadata (METHOD §2.4) for one step."""
    g = torch.Generator().manual_seed(seed)
    V = 2 * R
    ref = torch.randn(B, V, 3, P, P, generator=g)
    dist = torch.randn(B, V, C, L, 3, P, P, generator=g)
    n_dist = torch.randint(1, 8, (B, C), generator=g)
    var_dist = (torch.rand(B, C, generator=g) * n_dist).long()
    t = torch.rand(B, C, L, 7, generator=g) * 4
    t = torch.where(torch.arange(7).view(1, 1, 1, 7) < n_dist.view(B, C, 1, 1), t, torch.full_like(t, -1.0))
    meta = {"indices": t.to(device), "var_dist": var_dist.to(device), "n_dist": n_dist.to(device),
            "B": B, "R": R, "C": C, "L": L}
    return ref.to(device), dist.to(device), meta


def bench_shape(name: str, amp: str, device: torch.device, warmup: int, steps: int,
                channels_last: bool = False, freeze: int = 0) -> dict:
    """Median step time of one shape; the objective's share is timed by wrapping it."""
    arch, P, R, C, L, B = SHAPES[name]
    torch.manual_seed(0)
    mcfg = ModelConfig(arch=arch, init="random", channels_last=channels_last, freeze_stages=freeze)
    model = build_model(mcfg).to(device).train()
    tc = TrainConfig(amp=amp)
    dtype = loop.amp_dtype(amp, device)
    step_fn = loop.TrainStep(model, GraphConfig(), LossConfig(), dtype)
    opt = loop.build_optimizer(model, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    ref, dist, meta = synthetic_batch(R, C, L, B, P, device)

    objective_s = [0.0]
    real = loop.compute_objective

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = real(*args, **kwargs)
        objective_s[0] += time.perf_counter() - t0
        return out

    loop.compute_objective = timed
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step_times, cpu_times, shares = [], [], []
    try:
        for i in range(warmup + steps):
            objective_s[0] = 0.0
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            total, *_ = step_fn(ref, dist, meta)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
            sync()
            dt = time.perf_counter() - t0
            if i >= warmup:
                step_times.append(dt)
                cpu_times.append(time.process_time() - c0)
                shares.append(objective_s[0] / dt)
    finally:
        loop.compute_objective = real
    crops = B * 2 * R * (1 + C * L)
    step_s = statistics.median(step_times)
    return {"arch": arch, "patch": P, "channels_last": channels_last, "freeze_stages": freeze,
            "crops_per_step": crops, "crops_per_s": round(crops / step_s, 2),
            "step_s": round(step_s, 4), "graph_loss_share": round(statistics.median(shares), 4),
            "cpu_s_per_step": round(statistics.median(cpu_times), 4)}


def main() -> None:
    """Parse arguments, run the selected shapes, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shapes", nargs="*", help=f"subset of {list(SHAPES)}")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--freeze", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    default = ["cpu-small-96", "cpu-small-128", "paper-b1"] + (["paper"] if device.type == "cuda" else [])
    names = args.shapes or default
    dtype = loop.amp_dtype(args.amp, device)
    result = {
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "amp": args.amp,
        "autocast_dtype": str(dtype).replace("torch.", "") if dtype else "float32",
        "shapes": {n: bench_shape(n, args.amp, device, args.warmup, args.steps, args.channels_last, args.freeze)
                   for n in names},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
