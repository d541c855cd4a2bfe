"""Seeded sweep of CPU training variants, each scored against its twins on the proxy.

For every variant (config overrides on a profile) and every seed: train on a built corpus, then
score the trained encoder, its init twin (the same model before SHAMISA training: the ImageNet
encoder for ``init=imagenet``) and its random-init twin on the proxy (standard protocol, 10
reference-disjoint splits). Prints one JSON line per (variant, seed) and one summary line per
variant (mean/std over seeds of SRCC, PLCC and the gains). Variants that fail or diverge are
reported too. This is how the cpu-small profile was chosen (README, "The CPU profile").

    python bench/profile_sweep.py --corpus outputs/corpus/cpu-small --seeds 27 28 29 \\
        --variant base= --variant b7=ablation=B7 --variant lr5=train.lr=0.005
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _proxy_eval as pe  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", default="outputs/sweep")
    p.add_argument("--profile", default="cpu-small")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--seeds", type=int, nargs="+", default=[27])
    p.add_argument("--crop", type=int, default=224, help="evaluation crop size (the paper: 224)")
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0])
    p.add_argument("--proxy-refs", type=int, default=None)
    p.add_argument("--no-random-twin", action="store_true")
    p.add_argument("--variant", action="append", required=True,
                   help="NAME=override;override (overrides separated by ';')")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from shamisa_core.config import load_profile
    from shamisa_core.evaluation.proxy import ProxySpec
    from shamisa_core.tracking import read_jsonl
    from shamisa_core.training import train

    spec = ProxySpec(levels=tuple(args.levels))
    if args.proxy_refs:
        spec = ProxySpec(n_refs=args.proxy_refs, levels=tuple(args.levels))
    out_root = Path(args.out)
    tag = f"r{spec.n_refs}-l{len(spec.levels)}"
    dataset = pe.load_proxy_dataset(out_root / f"_proxy-{tag}", spec)
    crops = pe.ProxyCrops(dataset, args.crop)
    twins: dict[tuple[str, int | None], dict] = {}
    print(json.dumps({"proxy": tag, "images": len(dataset.table), "crop": args.crop}), flush=True)
    for item in args.variant:
        name, _, rest = item.partition("=")
        rows = []
        for seed in args.seeds:
            overrides = [o for o in rest.split(";") if o] + [f"train.seed={seed}"]
            if args.steps:
                overrides.append(f"train.steps={args.steps}")
            cfg = load_profile(args.profile, overrides)
            run = out_root / f"{name}-s{seed}"
            t0 = time.perf_counter()
            try:
                result = train(cfg, args.corpus, run) if not (run / "encoder.pt").is_file() else None
            except Exception as exc:  # a diverged variant is a result too
                print(json.dumps({"variant": name, "seed": seed, "overrides": overrides,
                                  "error": f"{type(exc).__name__}: {exc}"}), flush=True)
                continue
            train_s = time.perf_counter() - t0
            log = read_jsonl(run / "train_log.jsonl")
            enc, meta = pe.trained(run / "encoder.pt")
            row = {"variant": name, "seed": seed, "overrides": overrides, "trained": crops.score(enc)}
            mc = meta["model_config"]
            keys = [("init_twin", mc["init"], None if mc["init"] == "imagenet" else seed)]
            if not args.no_random_twin and mc["init"] != "random":
                keys.append(("random_twin", "random", seed))
            for label, init, tseed in keys:
                k = (f"{mc['arch']}/{init}", tseed)
                if k not in twins:
                    twins[k] = crops.score(pe.twin(mc, seed, init=init))
                row[label] = twins[k]
            last = log[-1] if log else {}
            row.update({
                "h_erank_last": last.get("h/erank"), "z_std_last": last.get("z/std_mean"),
                "loss_last": last.get("loss"), "train_s": round(train_s, 1),
                "crops_per_s": round(result.crops_per_s, 1) if result else None,
            })
            row["gain_init_srcc"] = round(row["trained"]["srcc"] - row["init_twin"]["srcc"], 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if rows:
            summary = {"variant": name, "summary": True, "seeds": [r["seed"] for r in rows]}
            for key in ("srcc", "plcc"):
                summary[f"trained_{key}"] = pe.summarise([r["trained"][key] for r in rows])
                summary[f"init_twin_{key}"] = pe.summarise([r["init_twin"][key] for r in rows])
                summary[f"gain_init_{key}"] = pe.summarise([r["trained"][key] - r["init_twin"][key] for r in rows])
                if all("random_twin" in r for r in rows):
                    summary[f"gain_random_{key}"] = pe.summarise(
                        [r["trained"][key] - r["random_twin"][key] for r in rows])
            summary["gain_init_srcc_splits"] = pe.summarise(
                [a - b for r in rows for a, b in zip(r["trained"]["split_srcc"], r["init_twin"]["split_srcc"])])
            summary["h_erank_last"] = [r["h_erank_last"] for r in rows]
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
