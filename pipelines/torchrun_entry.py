"""Entry point of a multi-process training launched by the `encoder` asset through Dagster
Pipes: `python -m torch.distributed.run --nproc_per_node=K -m pipelines.torchrun_entry ...`.

Every rank trains (DDP); rank 0 opens the Pipes channel, forwards the log and reports the
materialization metadata back to the Dagster run.
"""

from __future__ import annotations

import argparse
import os
import sys

from shamisa_core.config import load_profile
from shamisa_core.training import train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--profile", default="cpu-small")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    cfg = load_profile(args.profile, args.set)
    if int(os.environ.get("RANK", "0")) != 0:
        train(cfg, args.corpus, args.out)
        return 0
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        result = train(cfg, args.corpus, args.out, on_log=lambda r: pipes.log.info(
            f"step {r['step']}: loss {r['loss']:.4f}, {r['crops_per_s']:.0f} crops/s"))
        pipes.report_asset_materialization(
            metadata={"steps": result.steps, "final_loss": result.final_loss,
                      "crops_per_s": result.crops_per_s, "wall_s": result.wall_s,
                      "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
