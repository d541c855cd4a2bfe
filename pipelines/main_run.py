"""The main job of `make run`: materialize the whole default pipeline, stage by stage.

Each stage is a real `dagster asset materialize` run against the instance in $DAGSTER_HOME,
so every run, materialization and check shows in `dagster dev` afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from pipelines.resources import REPO_ROOT, env_config


IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def stages() -> list[list[str]]:
    """The `dagster asset materialize` argument lists, in dependency order."""
    n = env_config().corpus.n_shards
    return [
        ["--select", "pristine_images"],
        ["--select", "corpus_shards", "--partition-range", f"shard-000000...shard-{n - 1:06d}"],
        ["--select", "corpus_manifest"],
        ["--select", "encoder", "--config-json", IN_PROCESS],
        ["--select", "benchmark_catalog"],
        ["--select", "benchmark_datasets,benchmark_features", "--partition", "proxy", "--config-json", IN_PROCESS],
        ["--select", "quality_regressors,cross_dataset_table,full_reference_table,evaluation_table",
         "--config-json", IN_PROCESS],
    ]


def materialize_stages(stage_args: Iterable[list[str]], label: str = "") -> int:
    """``dagster asset materialize`` of each stage in turn, against the instance in
    ``$DAGSTER_HOME`` (the repository's ``dagster_home`` when unset); the exit code of the
    first stage that fails (named on stderr after ``label``), 0 when every stage ran."""
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(REPO_ROOT / "dagster_home")
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    for args in stage_args:
        cmd = [dagster, "asset", "materialize", "-m", "pipelines.definitions", *args]
        print("+", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=REPO_ROOT)
        if rc != 0:
            print(f"{label}stage {' '.join(args)} failed (exit {rc})", file=sys.stderr)
            return rc
    return 0


def main() -> int:
    """Run every stage; stop at the first failure."""
    rc = materialize_stages(stages())
    if rc != 0:
        return rc
    outputs = Path(os.environ.get("SHAMISA_OUTPUTS", REPO_ROOT / "outputs"))
    table = outputs / "evaluation" / "evaluation_table.txt"
    if table.exists():
        cfg = env_config()
        print(f"\nProxy benchmark (pseudo-MOS, not human scores; references never trained on): profile "
              f"{cfg.profile}, {cfg.model.arch} init={cfg.model.init}, training seed {cfg.train.seed}, "
              f"corpus seed {cfg.corpus.seed}. One run: see README 'The CPU profile'.")
        print(table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
