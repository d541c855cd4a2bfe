"""Training stage: corpus_manifest -> encoder (MLflow-tracked; torchrun via Dagster Pipes)."""

import base64
import os
import sys
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
)

from assets.corpus import corpus_manifest
from pipelines.eval_resources import MlflowTracking
from pipelines.resources import OutputPaths, ShamisaSettings
from pipelines.versions import code_version
from shamisa_core.atomic import file_sha256
from shamisa_core.tracking import read_jsonl
from shamisa_core.training.mlflow_train import log_training
from shamisa_core.training.health import assess
from shamisa_core.training.report import branch_edges, final_terms

HEALTH_CHECK = "representation_alive"


def _point_latest(models_dir: Path, run_dir: Path) -> Path:
    """Atomically point ``models_dir/latest`` at ``run_dir`` (a relative symlink)."""
    latest = models_dir / "latest"
    tmp = models_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, latest)
    return latest


@asset(
    group_name="training",
    code_version=code_version("training", "2"),
    deps=[corpus_manifest],
    pool="gpu",
    check_specs=[AssetCheckSpec(HEALTH_CHECK, asset="encoder",
                                description="The collapse guard: effective rank of h and std of z "
                                            "at the end of training (shamisa_core/training/health.py)")],
)
def encoder(
    context: AssetExecutionContext,
    settings: ShamisaSettings,
    paths: OutputPaths,
    mlflow_tracking: MlflowTracking,
    pipes_subprocess_client: PipesSubprocessClient,
) -> MaterializeResult:
    """Train the encoder on the corpus (METHOD.md §6) and register it as ``shamisa-encoder``."""
    cfg = settings.config()
    corpus_dir = paths.corpus_dir(cfg.profile)
    run_dir = paths.models_dir() / f"{cfg.profile}-{context.run.run_id[:8]}"
    overrides = [*settings.overrides, f"corpus.pristine={settings.pristine}"]
    if settings.world_size > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={settings.world_size}",
               "-m", "pipelines.torchrun_entry", "--corpus", str(corpus_dir), "--out", str(run_dir),
               "--profile", cfg.profile, *[a for o in overrides for a in ("--set", o)]]
        pipes_subprocess_client.run(command=cmd, context=context).get_materialize_result()
    else:
        from shamisa_core.training import train

        def on_log(row: dict) -> None:
            context.log.info(
                f"step {row['step']}: loss {row['loss']:.4f}, h erank {row.get('h/erank', float('nan')):.2f}, "
                f"{row['crops_per_s']:.0f} crops/s"
            )

        train(cfg, corpus_dir, run_dir, on_log=on_log)
    tracked = log_training(
        mlflow_tracking.path, cfg.to_dict(), run_dir,
        run_name=run_dir.name, tags={"dagster_run_id": context.run.run_id, "profile": cfg.profile},
    )
    latest = _point_latest(paths.models_dir(), run_dir)
    rows = read_jsonl(run_dir / "train_log.jsonl")
    last = rows[-1] if rows else {}
    plot_md = ""
    if tracked.loss_curve is not None:
        b64 = base64.b64encode(tracked.loss_curve.read_bytes()).decode()
        plot_md = f"![loss curve](data:image/png;base64,{b64})"
    edges = branch_edges(rows)
    health = assess(rows)
    check = AssetCheckResult(
        check_name=HEALTH_CHECK, passed=bool(health["passed"]), severity=AssetCheckSeverity.ERROR,
        metadata={"h_effective_rank": round(float(health["h_erank"]), 3),
                  "h_std_mean": round(float(health["h_std"]), 5),
                  "z_std_mean": round(float(health["z_std"]), 5),
                  "reasons": "; ".join(health["reasons"]) or "none",
                  "thresholds": MetadataValue.json(health["thresholds"])},
    )
    return MaterializeResult(
        check_results=[check],
        metadata={
            "encoder": MetadataValue.path(str(run_dir / "encoder.pt")),
            "latest": MetadataValue.path(str(latest / "encoder.pt")),
            "steps": int(last.get("step", 0)),
            "wall_s": round(float(last.get("wall_s", 0.0)), 1),
            "crops_per_s": round(float(last.get("crops_per_s", 0.0)), 1),
            "h_effective_rank": round(float(last.get("h/erank", float("nan"))), 3),
            "final_loss_terms": MetadataValue.json({k: round(v, 6) for k, v in final_terms(rows).items()}),
            "edges_per_branch": MetadataValue.md(
                "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4g} |" for k, v in edges.items())
            ),
            "loss_curve": MetadataValue.md(plot_md or "no log rows"),
            "mlflow_run_id": tracked.run_id,
            "mlflow_model_version": tracked.model_version or "not registered",
        },
        data_version=DataVersion(file_sha256(run_dir / "encoder.pt")[:16]),
    )
