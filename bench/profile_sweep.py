"""Sweep cpu-small training variants and score each on the proxy benchmark.

For every variant (a list of config overrides): train on a built corpus, then evaluate the
encoder and its untrained twin on the proxy with the standard protocol. Prints one JSON line
per variant: median SRCC/PLCC trained vs baseline, effective rank of h, wall times. This is
how the cpu-small profile was chosen (see the issue notes); it needs minutes per variant.

    python bench/profile_sweep.py --corpus outputs/corpus/cpu-small --steps 200 \
        --variant base= --variant k7=graph.knn_k=7 --variant b7=ablation=B7
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", default="outputs/sweep")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--variant", action="append", required=True,
                   help="NAME=override;override (overrides separated by ';')")
    args = p.parse_args()

    from shamisa_core.config import load_profile
    from shamisa_core.evaluation.benchmark import evaluate_encoder
    from shamisa_core.tracking import read_jsonl
    from shamisa_core.training import train

    for spec in args.variant:
        name, _, rest = spec.partition("=")
        overrides = [o for o in rest.split(";") if o] + [f"train.steps={args.steps}"]
        cfg = load_profile("cpu-small", overrides)
        out = Path(args.out) / name
        t0 = time.perf_counter()
        try:
            result = train(cfg, args.corpus, out)
        except Exception as exc:  # a diverged variant is a result too
            print(json.dumps({"variant": name, "overrides": overrides, "error": str(exc)}), flush=True)
            continue
        t_train = time.perf_counter() - t0
        rows = read_jsonl(out / "train_log.jsonl")
        ev = evaluate_encoder(out / "encoder.pt", {"proxy": None}, cache_dir=Path(args.out) / "_eval")
        print(json.dumps({
            "variant": name, "overrides": overrides,
            "srcc": ev["proxy"]["srcc"], "plcc": ev["proxy"]["plcc"],
            "baseline_srcc": ev["baseline"]["proxy"]["srcc"], "baseline_plcc": ev["baseline"]["proxy"]["plcc"],
            "h_erank_last": rows[-1].get("h/erank"), "loss_last": rows[-1].get("loss"),
            "train_s": round(t_train, 1), "crops_per_s": round(result.crops_per_s, 1),
            "eval_s": ev.get("meta", {}).get("total_seconds"),
        }), flush=True)


if __name__ == "__main__":
    main()
