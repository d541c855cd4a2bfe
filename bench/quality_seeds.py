"""The default profile over seeds: what SHAMISA training adds, with its spread.

Trains the default CPU profile (``cpu-small``) once per seed on one corpus and scores each
encoder, its ImageNet twin (the same network before SHAMISA training) and its random-init twin
on the full proxy (every proxy reference, 26 types x 5 levels; standard protocol, 10
reference-disjoint splits). Prints the per-seed JSON lines of ``profile_sweep.py`` and its
summary line: mean +- std over seeds of SRCC/PLCC, of the gain over each twin, and of the
per-split gain over all seeds x splits. README "Quality over seeds" reports this table.

    python bench/quality_seeds.py --corpus outputs/corpus/cpu-small [--seeds 27 28 29] [--crop 224]

The evaluation crop defaults to the profile's own (``model.eval_crop``, else its training patch:
96 px for ``cpu-small``), the crop ``make run`` evaluates with; ``--crop 224`` gives the paper's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_sweep  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", default="outputs/quality_seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=[27, 28, 29])
    p.add_argument("--crop", type=int, default=None, help="default: the profile's evaluation crop")
    p.add_argument("--profile", default="cpu-small")
    args = p.parse_args()
    if args.crop is None:
        from shamisa_core.config import load_profile

        cfg = load_profile(args.profile)
        args.crop = cfg.model.eval_crop or cfg.group.patch_size
    profile_sweep.main(["--corpus", args.corpus, "--out", args.out, "--profile", args.profile,
                        "--crop", str(args.crop), "--seeds", *map(str, args.seeds),
                        "--variant", f"{args.profile}="])


if __name__ == "__main__":
    main()
