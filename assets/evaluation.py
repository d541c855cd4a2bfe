"""Evaluation stage (METHOD.md §7): benchmark_catalog -> benchmark_datasets[dataset] ->
benchmark_features[dataset] -> quality_regressors -> cross_dataset_table (+ the optional
full_reference_table) -> evaluation_table.

Each asset unpacks its resources, calls one stage function of
``shamisa_core.evaluation.staged_run`` (the same stages as ``shamisa evaluate``) and returns
metadata. Large artefacts (proxy images, splits, features, regressors, result JSON) live
under ``OutputPaths`` (``outputs/benchmarks``, ``outputs/evaluation``), never in the I/O
manager. Partitions of ``benchmark_datasets``/``benchmark_features`` are the dataset names
(dynamic: ``proxy`` plus each configured root), added by ``benchmark_catalog`` and by the
``new_dataset_root`` sensor. The unpartitioned assets use every dataset whose features exist
for the current encoder and say which were skipped and why.
"""

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipelines.resources import (DatasetRoots, EvaluationSettings, MlflowTracking, OutputPaths,
                                 code_version)
from shamisa_core.evaluation import report as rp
from shamisa_core.evaluation.roots import PROXY

if TYPE_CHECKING:
    from shamisa_core.evaluation import staged_run as sr

BENCHMARK_PARTITIONS = DynamicPartitionsDefinition(name="benchmark_dataset")
ENCODER_KEY = AssetKey("encoder")
GROUP = "evaluation"


# ----------------------------------------------------------------------------------------------
# Resources -> shamisa_core arguments


def proxy_base(paths: OutputPaths) -> Path:
    """Where proxy benchmarks are built: ``<outputs>/benchmarks/proxy/<spec id>``."""
    return paths.root_path / "benchmarks" / PROXY


def dataset_plan(evaluation: EvaluationSettings, paths: OutputPaths) -> "sr.DatasetPlan":
    """Where datasets are prepared (cache, proxy base and spec, split seed)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    return sr.DatasetPlan(paths.eval_dir(), proxy_base(paths), evaluation.proxy_spec(),
                          evaluation.seed)


def open_run(evaluation: EvaluationSettings, paths: OutputPaths,
             mlflow_tracking: MlflowTracking) -> "sr.EvaluationRun":
    """The encoder under evaluation with its twins (``Failure`` naming the fix if absent)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    from shamisa_core.artifacts import is_mlflow_uri

    uri = evaluation.encoder_uri(paths.models_dir())
    if not is_mlflow_uri(uri) and not Path(uri).exists():
        raise Failure(description=f"no encoder at {uri}: materialize the `encoder` asset first "
                                  "(or set SHAMISA_EVAL_ENCODER to a path or MLflow URI)")
    return sr.open_run(uri, dataset_plan(evaluation, paths),
                       crop_size=evaluation.crop_size or None, tracking_uri=mlflow_tracking.uri())


def encoder_provenance(context: AssetExecutionContext) -> dict[str, Any]:
    """Run id and version-like metadata of the latest ``encoder`` materialization, if any."""
    event = context.instance.get_latest_materialization_event(ENCODER_KEY)
    if event is None or event.asset_materialization is None:
        return {}
    out: dict[str, Any] = {"encoder_run_id": event.run_id}
    for key, value in event.asset_materialization.metadata.items():
        if "version" in key or key in ("step", "fingerprint", "sha256"):
            out[f"encoder_{key}"] = getattr(value, "value", value)
    return out


def _partitions(context: AssetExecutionContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name))


def _or_nan(value: float | None) -> float:
    """A metadata float: None (nothing scored) as NaN, and 0.0 kept as 0.0."""
    return float("nan") if value is None else float(value)


def _skipped(skipped: dict[str, str]) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in skipped.items()) or "none")


def _file_version(path: Path) -> DataVersion:
    return DataVersion(hashlib.sha256(path.read_bytes()).hexdigest()[:16])


def _stage(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    try:
        return fn(*args, **kwargs)
    except (sr.StageError, FileNotFoundError, KeyError) as exc:
        raise Failure(description=str(exc.args[0]) if exc.args else str(exc)) from None


# ----------------------------------------------------------------------------------------------
# Assets


@asset(group_name=GROUP, code_version=code_version("benchmark", "2"))
def benchmark_catalog(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                      evaluation: EvaluationSettings) -> MaterializeResult:
    """The benchmark partitions: ``proxy`` plus every dataset with a root in the config folder
    (``SHAMISA_DATASETS_DIR``, default ``config/datasets``; one ``<name>.yaml`` each)."""
    from shamisa_core.evaluation.prepared import proxy_spec_id
    from shamisa_core.evaluation.roots import benchmark_roots

    scan = dataset_roots.scan()
    roots = benchmark_roots(scan)
    known = set(context.instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name))
    new = [n for n in roots if n not in known]
    if new:
        context.instance.add_dynamic_partitions(BENCHMARK_PARTITIONS.name, new)
    rows = [{"dataset": n,
             "root": root or f"built: {proxy_spec_id(evaluation.proxy_spec())}",
             "config file": str(scan.roots[n].config_file) if n in scan.roots else "-",
             "partition": "added" if n in new else "known"} for n, root in roots.items()]
    rows += [{"dataset": n, "root": "-", "config file": "-",
              "partition": "known, no longer configured"} for n in sorted(known - set(roots))]
    return MaterializeResult(metadata={
        "datasets": MetadataValue.md(rp.records_table(rows)),
        "n_configured": len(scan.roots),
        "n_partitions": len(known | set(roots)),
        "added_partitions": ", ".join(new) or "none",
        "config_dir": MetadataValue.path(str(scan.config_dir)),
        "problems": MetadataValue.md(rp.records_table(
            [{"file": f, "problem": r} for f, r in scan.problems])),
    })


@asset(group_name=GROUP, code_version=code_version("benchmark", "2"),
       partitions_def=BENCHMARK_PARTITIONS, deps=[benchmark_catalog])
def benchmark_datasets(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths) -> MaterializeResult:
    """One benchmark, validated (METHOD.md §7.1), with its versioned splits parquet (§7.2);
    ``proxy`` is built here (pseudo-MOS, KADID-10K layout)."""
    from shamisa_core.evaluation.prepared import proxy_spec_of

    root = _stage(dataset_roots.root_of, context.partition_key)
    prep = dataset_plan(evaluation, paths).prepare(context.partition_key, root, build=True)
    info = prep.to_json()
    types = prep.table["distortion_type"].value_counts().sort_index()
    return MaterializeResult(
        metadata={
            "dataset": MetadataValue.md(rp.records_table(
                [{"key": k, "value": info[k]} for k in ("dataset", "kind", "label",
                 "lower_is_better", "version", "splits_version", "splits_method")])),
            "n_images": prep.dataset.n_images,
            "n_missing": prep.dataset.n_missing,
            "n_references": int(prep.table["reference"].nunique()),
            "missing": MetadataValue.md("\n".join(f"- {m}" for m in prep.dataset.missing[:20]) or "none"),
            "distortion_types": MetadataValue.md(rp.records_table(
                [{"type": k, "images": v} for k, v in types.items()])),
            "splits": MetadataValue.md(rp.records_table(
                [{"split": i, **s} for i, s in enumerate(prep.splits.to_json()["sizes"])])),
            "splits_path": MetadataValue.path(str(prep.splits_path)),
            "root": MetadataValue.path(str(prep.dataset.root)),
            "dataset_version": prep.version,
            "proxy_spec": MetadataValue.json(proxy_spec_of(prep.dataset.root) or {}),
        },
        data_version=DataVersion(f"{prep.version}:{prep.splits.version}"),
    )


@asset(group_name=GROUP, code_version=code_version("features", "2"),
       partitions_def=BENCHMARK_PARTITIONS, deps=[benchmark_datasets, ENCODER_KEY], pool="gpu")
def benchmark_features(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """5 crops x 2 scales features (§7.3) of one benchmark for the current encoder, its init
    twin and its random twin, cached by content key (images, encoder, crop, code version)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    root = _stage(dataset_roots.root_of, context.partition_key)
    run = open_run(evaluation, paths, mlflow_tracking)
    prep = _stage(run.plan.prepare, context.partition_key, root, build=False)
    sets = sr.features_stage(run, prep, log=context.log.warning)
    labels = {e.role: e for e in run.encoders}
    rows = [{"encoder": labels[role].label, "fingerprint": f"`{fs.encoder_fingerprint}`",
             "cache": "hit" if fs.cache_hit else "computed", "seconds": round(fs.seconds, 1),
             "failed": fs.n_failed, "file": fs.path.name} for role, fs in sets.items()]
    trained = sets[run.trained.role]
    return MaterializeResult(
        metadata={
            "features": MetadataValue.md(rp.records_table(rows)),
            "encoder": MetadataValue.json(run.trained.to_json()),
            "encoder_fingerprint": run.trained.fingerprint,
            "twins": ", ".join(f"{t.label}: {t.fingerprint}" for t in run.twins),
            "crop_size": run.crop,
            "shape": str(tuple(trained.features.shape)),
            "dataset_version": prep.version,
            "n_failed": trained.n_failed,
            "failed": MetadataValue.md("\n".join(f"- {p}: {r}" for p, r in trained.failed[:20]) or "none"),
            "path": MetadataValue.path(str(trained.path)),
            **encoder_provenance(context),
        },
        data_version=DataVersion(":".join(fs.key for fs in sets.values())),
    )


@asset(group_name=GROUP, code_version=code_version("results", "2"), deps=[benchmark_features])
def quality_regressors(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """Per dataset: the ridge alpha chosen by median val SRCC over the splits (§7.4,
    DECISIONS 13) with the per-split test metrics, for the encoder and its twins, and the
    final regressor fitted on all data at that alpha (saved beside the features)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    run = open_run(evaluation, paths, mlflow_tracking)
    data = _stage(sr.standard_stage, run, dataset_roots.roots(), _partitions(context),
                  log=context.log.info)
    trained = data["sections"][run.trained.role]
    rows = [{"dataset": n, "alpha": e["alpha"], "median val SRCC": e["median_val_srcc"],
             **{f"{t.label} alpha": data["sections"][t.role][n]["alpha"] for t in run.twins},
             "train images (split 0)": e["splits"][0]["n_train"],
             "regressor": Path(e["regressor"]).name, "sha256": f"`{e['regressor_sha256']}`"}
            for n, e in trained.items()]
    path = run.file(sr.STANDARD_FILE)
    return MaterializeResult(
        metadata={
            "regressors": MetadataValue.md(rp.records_table(rows)),
            "datasets": ", ".join(trained),
            "n_datasets": len(trained),
            "skipped": _skipped(data["skipped"]),
            "encoder_fingerprint": run.trained.fingerprint,
            "crop_size": run.crop,
            "results": MetadataValue.path(str(path)),
        },
        data_version=_file_version(path),
    )


@asset(group_name=GROUP, code_version=code_version("results", "2"), deps=[quality_regressors])
def cross_dataset_table(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                        evaluation: EvaluationSettings, paths: OutputPaths,
                        mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """source x target SRCC/PLCC (§7.7) for the encoder and its twins; the diagonal shows
    the standard protocol's value (marked)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    if not evaluation.cross:
        return MaterializeResult(metadata={"cross": MetadataValue.md("disabled (evaluation.cross=false)")})
    run = open_run(evaluation, paths, mlflow_tracking)
    data = _stage(sr.cross_stage, run, dataset_roots.roots(), log=context.log.info)
    standard = sr.read_stage(run, sr.STANDARD_FILE) or {}
    sections = {role: {**standard["sections"][role], "cross": sec}
                for role, sec in data["sections"].items()}
    result = {**sections.pop(run.trained.role), "twins": sections, "meta": standard["meta"]}
    path = run.file(sr.CROSS_FILE)
    metadata: dict[str, Any] = {
        "srcc": MetadataValue.md(rp.cross_markdown(result)),
        "plcc": MetadataValue.md(rp.cross_markdown(result, "plcc")),
        "pairs": MetadataValue.md(rp.markdown_table(rp.cross_frame(result))),
        "n_pairs": len(rp.cross_frame(result)),
        "skipped": _skipped(data["skipped"]),
        "results": MetadataValue.path(str(path)),
    }
    for twin in run.twins:
        metadata[f"{twin.role}_srcc"] = MetadataValue.md(rp.cross_markdown(result, role=twin.role))
    return MaterializeResult(metadata=metadata, data_version=_file_version(path))


@asset(group_name=GROUP, code_version=code_version("results", "1"), deps=[quality_regressors])
def full_reference_table(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                         evaluation: EvaluationSettings, paths: OutputPaths,
                         mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """The full-reference protocol (§7.8) on ``|h_ref - h_dist|`` for the synthetic datasets,
    encoder and twins; runs when ``evaluation.fr`` (``SHAMISA_EVAL_FR=1``)."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    if not evaluation.fr:
        return MaterializeResult(metadata={"fr": MetadataValue.md(
            "disabled (evaluation.fr=false; set SHAMISA_EVAL_FR=1)")})
    run = open_run(evaluation, paths, mlflow_tracking)
    data = _stage(sr.fr_stage, run, dataset_roots.roots(), log=context.log.info)
    labels = {e.role: e.label for e in run.encoders}
    rows = [{"dataset": n, **{f"{labels[r]} {m}": sec[n].get(m) for r, sec in data["sections"].items()
                              for m in ("srcc", "plcc")}}
            for n in data["sections"][run.trained.role]]
    path = run.file(sr.FR_FILE)
    return MaterializeResult(metadata={
        "fr": MetadataValue.md(rp.records_table(rows)),
        "skipped": _skipped(data["skipped"]),
        "results": MetadataValue.path(str(path)),
    }, data_version=_file_version(path))


@asset(group_name=GROUP, code_version=code_version("results", "2"),
       deps=[quality_regressors, cross_dataset_table, full_reference_table])
def evaluation_table(context: AssetExecutionContext, evaluation: EvaluationSettings,
                     paths: OutputPaths, mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """datasets x {SRCC, PLCC} for the encoder, its init twin and its random twin (§7.6),
    logged to MLflow (parent run + nested run per dataset, tables, metrics), registered as
    pyfunc ``shamisa-iqa``; the ``champion`` alias moves only by the champion rule."""
    from shamisa_core.evaluation import staged_run as sr  # imports torch: on first use
    from shamisa_core.evaluation.mlflow_eval import log_evaluation

    from shamisa_core.evaluation.pictures import markdown_images

    run = open_run(evaluation, paths, mlflow_tracking)
    result, files = _stage(sr.report_stage, run)
    pictures = sr.pictures_stage(run, result)
    context.log.info("\n" + rp.format_table(result))
    log = log_evaluation(result, mlflow_dir=mlflow_tracking.path,
                         experiment=mlflow_tracking.experiment, register=evaluation.register_model,
                         tags={"shamisa.dagster_run_id": context.run.run_id}, pictures=pictures)
    decision = log.decision
    if decision is not None:
        context.log.info(f"champion: {decision.reason}")
    metadata: dict[str, Any] = {
        "table": MetadataValue.md(rp.markdown_table(rp.summary_frame(result))),
        "mean_srcc": _or_nan(rp.mean_srcc(result)),
        **{f"{t.role}_mean_srcc": _or_nan(rp.mean_srcc(result, t.role)) for t in run.twins},
        "twins": ", ".join(t.label for t in run.twins) or "none",
        "n_datasets": len(rp.dataset_names(result)),
        "datasets": ", ".join(rp.dataset_names(result)),
        "cross_included": "cross" in result,
        "fr_included": "fr" in result,
        "skipped": _skipped(result["meta"].get("skipped") or {}),
        "mlflow_run_id": log.parent_run_id,
        "mlflow_experiment_id": log.experiment_id,
        "mlflow_tracking_uri": log.tracking_uri,
        "results": MetadataValue.path(str(files["results"])),
        "table_text": MetadataValue.path(str(files["table_text"])),
        "encoder_fingerprint": run.trained.fingerprint,
        "pictures": MetadataValue.md(markdown_images(pictures)),
        **{f"picture_{k}": MetadataValue.path(str(v)) for k, v in pictures.items()},
    }
    if decision is not None:
        metadata.update({
            "model_version": log.model_version or "-",
            "model_uri": log.model_uri or "-",
            "champion_moved": decision.moved,
            "champion_reason": decision.reason,
            "champion_decision": MetadataValue.md(decision.markdown()),
        })
    else:
        metadata["champion_decision"] = "registration disabled (evaluation.register_model=false)"
    return MaterializeResult(metadata=metadata)


EVALUATION_ASSETS = [benchmark_catalog, benchmark_datasets, benchmark_features,
                     quality_regressors, cross_dataset_table, full_reference_table,
                     evaluation_table]
