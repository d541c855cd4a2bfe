"""``shamisa train``: pre-train the encoder on a built corpus (METHOD.md §6).

    shamisa train --corpus DIR --out DIR --profile cpu-small|paper [--steps N]
                  [--resume | --overwrite] [--skip-bad-shards] [--set section.field=value ...]

Also runs as DDP under ``torchrun --nproc_per_node=K -m shamisa_core.cli train ...``.
Writes ``checkpoint.pt``, ``encoder.pt`` and ``train_log.jsonl`` into ``--out``; prints one
progress line per log step on stderr and a JSON summary on stdout (rank 0 only). A folder that
already holds a run is refused unless ``--resume`` (continue it) or ``--overwrite`` (replace it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shamisa_core.config import load_profile


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="pre-train the encoder on a corpus (DDP under torchrun)")
    p.add_argument("--corpus", required=True, help="a corpus folder built by `shamisa corpus build`")
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, encoder.pt, train_log.jsonl)")
    p.add_argument("--profile", default="cpu-small", choices=["cpu-small", "paper"])
    p.add_argument("--steps", type=int, help="optimiser steps (default: the profile's train.steps)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoint.pt")
    mode.add_argument("--overwrite", action="store_true", help="replace the run already in OUT")
    p.add_argument("--skip-bad-shards", action="store_true",
                   help="leave out shards that do not match the manifest or do not decode, and "
                        "groups with wrong array shapes (counted in the log) instead of stopping")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. train.lr=1e-3")


def _progress(record: dict[str, Any]) -> None:
    """One short human-readable line per log record."""
    print(
        f"step {record['step']} loss {record['loss']:.4f} lr {record['lr']:.3g} "
        f"h erank {record['h/erank']:.2f} z erank {record['z/erank']:.2f} "
        f"{record['crops_per_s']:.1f} crops/s",
        file=sys.stderr,
        flush=True,
    )


def run_train(args: argparse.Namespace) -> int:
    """Build the config from ``--profile`` and overrides, train, print a JSON summary."""
    from shamisa_core.training.distributed import dist_info_from_env
    from shamisa_core.training.loop import NonFiniteLossError, train

    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    cfg = load_profile(args.profile, overrides)
    if not hasattr(cfg, "train"):
        raise ValueError("this build's ShamisaConfig has no train/model/graph/loss sections")
    main = dist_info_from_env().is_main
    try:
        result = train(cfg, args.corpus, args.out, resume=args.resume, on_log=_progress if main else None,
                       overwrite=getattr(args, "overwrite", False),
                       skip_bad_shards=getattr(args, "skip_bad_shards", False))
    except NonFiniteLossError as exc:
        print(f"shamisa: error: {exc}", file=sys.stderr)
        return 3
    if main:
        print(json.dumps({
            "steps": result.steps,
            "final_loss": result.final_loss,
            "wall_s": round(result.wall_s, 2),
            "crops_per_s": round(result.crops_per_s, 2),
            "checkpoint": str(result.checkpoint),
            "encoder": str(result.encoder),
            "log": str(result.log),
            "skipped_shards": result.skipped_shards,
            "skipped_groups": result.skipped_groups,
        }))
    return 0
