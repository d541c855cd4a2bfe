"""Evaluation stage (METHOD.md §7): benchmark_catalog -> benchmark_datasets[dataset] ->
benchmark_features[dataset] -> quality_regressors -> cross_dataset_table -> evaluation_table.

Every asset is a thin call into ``shamisa_core.evaluation.benchmark`` (the same functions as
``shamisa evaluate``); large artefacts (proxy images, splits, features, regressors, result
JSON) live under ``OutputPaths`` (``outputs/benchmarks``, ``outputs/evaluation``), never in
the I/O manager. Partitions of ``benchmark_datasets``/``benchmark_features`` are the dataset
names (dynamic: ``proxy`` plus each configured root), added by ``benchmark_catalog`` and by the
``new_dataset_root`` sensor. The unpartitioned assets use every dataset whose features exist
for the current encoder and say which were skipped and why.
"""


import hashlib
import json
import time
from pathlib import Path
from typing import Any

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

from pipelines.eval_resources import DatasetRoots, EvaluationSettings, MlflowTracking
from pipelines.resources import OutputPaths
from pipelines.versions import code_version
from shamisa_core.evaluation import benchmark as bm
from shamisa_core.evaluation.splits import SplitConfig

BENCHMARK_PARTITIONS = DynamicPartitionsDefinition(name="benchmark_dataset")
ENCODER_KEY = AssetKey("encoder")
GROUP = "evaluation"


# ----------------------------------------------------------------------------------------------
# Helpers (thin: resources -> shamisa_core arguments)


def proxy_base(paths: OutputPaths) -> Path:
    """Where proxy benchmarks are built: ``<outputs>/benchmarks/proxy/<spec id>``."""
    return paths.root_path / "benchmarks" / bm.PROXY


def prepare(name: str, roots: DatasetRoots, evaluation: EvaluationSettings, paths: OutputPaths,
            *, build: bool) -> bm.PreparedDataset:
    """``benchmark.prepare_dataset`` for a partition (``build=False``: must exist already)."""
    try:
        root = roots.root_of(name)
    except KeyError as exc:
        raise Failure(description=str(exc.args[0])) from None
    # A configured proxy root is used as it is (built there with the spec only when empty).
    spec = evaluation.proxy_spec() if root is None else None
    return bm.prepare_dataset(name, root, paths.eval_dir(), proxy_base=proxy_base(paths),
                              proxy_spec=spec,
                              split_config=SplitConfig(seed=evaluation.seed), build=build)


def load_encoders(evaluation: EvaluationSettings, paths: OutputPaths,
                  mlflow_tracking: MlflowTracking) -> tuple[bm.EncoderHandle, bm.EncoderHandle, int]:
    """(trained encoder, untrained twin, crop size) of the encoder under evaluation."""
    from shamisa_core.scoring import is_mlflow_uri

    uri = evaluation.encoder_uri(paths.models_dir())
    if not is_mlflow_uri(uri) and not Path(uri).exists():
        raise Failure(description=f"no encoder at {uri}: materialize the `encoder` asset first "
                                  "(or set SHAMISA_EVAL_ENCODER to a path or MLflow URI)")
    trained = bm.load_trained(uri, download_dir=paths.eval_dir() / "downloads",
                              tracking_uri=mlflow_tracking.uri() if is_mlflow_uri(uri) else None)
    twin = bm.untrained_twin(trained, bm.training_seed(trained.meta, evaluation.seed))
    crop = int(evaluation.crop_size or trained.patch_size or 224)
    return trained, twin, crop


def run_dir(paths: OutputPaths, trained: bm.EncoderHandle, crop: int) -> Path:
    """Results of one encoder at one crop size: ``outputs/evaluation/runs/<fp>-p<crop>``."""
    return paths.eval_dir() / "runs" / f"{trained.fingerprint}-p{crop}"


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


def available(context: AssetExecutionContext, names: list[str], roots: DatasetRoots,
              evaluation: EvaluationSettings, paths: OutputPaths, trained: bm.EncoderHandle,
              twin: bm.EncoderHandle, crop: int,
              ) -> tuple[dict[str, bm.PreparedDataset], dict[str, dict[str, bm.FeatureSet]],
                         dict[str, str]]:
    """Datasets whose splits and features (trained and twin) are on disk; the rest with why."""
    prepared: dict[str, bm.PreparedDataset] = {}
    feats: dict[str, dict[str, bm.FeatureSet]] = {"trained": {}, "baseline": {}}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            prep = prepare(name, roots, evaluation, paths, build=False)
        except (Failure, FileNotFoundError, ValueError, KeyError) as exc:
            skipped[name] = getattr(exc, "description", None) or str(exc)
            continue
        pair = {enc.role: bm.encode_dataset(prep, enc, crop, compute=False) for enc in (trained, twin)}
        if any(fs is None for fs in pair.values()):
            skipped[name] = (f"features for encoder {trained.fingerprint} (crop {crop}) not "
                             f"materialized: run benchmark_features[{name}]")
            continue
        prepared[name] = prep
        for role, fs in pair.items():
            assert fs is not None
            feats[role][name] = fs
    if skipped:
        context.log.warning("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return prepared, feats, skipped


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _md_kv(rows: dict[str, Any]) -> str:
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ----------------------------------------------------------------------------------------------
# Assets


@asset(group_name=GROUP, code_version=code_version("benchmark"))
def benchmark_catalog(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                      evaluation: EvaluationSettings) -> MaterializeResult:
    """The benchmark partitions: ``proxy`` plus every dataset with a root in the config folder
    (``SHAMISA_DATASETS_DIR``, default ``config/datasets``; one ``<name>.yaml`` each)."""
    scan = dataset_roots.scan()
    names = [bm.PROXY, *[n for n in scan.roots if n != bm.PROXY]]
    known = set(context.instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name))
    new = [n for n in names if n not in known]
    if new:
        context.instance.add_dynamic_partitions(BENCHMARK_PARTITIONS.name, new)
    rows = ["| dataset | root | config file | partition |", "|---|---|---|---|"]
    for name in names:
        entry = scan.roots.get(name)
        root = str(entry.root) if entry else f"built: {bm.proxy_spec_id(evaluation.proxy_spec())}"
        rows.append(f"| {name} | {root} | {entry.config_file if entry else '-'} | "
                    f"{'added' if name in new else 'known'} |")
    for name in sorted(known - set(names)):
        rows.append(f"| {name} | - | - | known, no longer configured |")
    problems = "\n".join(f"| {f} | {r} |" for f, r in scan.problems) or "| - | - |"
    return MaterializeResult(metadata={
        "datasets": MetadataValue.md("\n".join(rows)),
        "n_configured": len(scan.roots),
        "n_partitions": len(known | set(names)),
        "added_partitions": ", ".join(new) or "none",
        "config_dir": MetadataValue.path(str(scan.config_dir)),
        "problems": MetadataValue.md("| file | problem |\n|---|---|\n" + problems),
    })


@asset(group_name=GROUP, code_version=code_version("benchmark"), partitions_def=BENCHMARK_PARTITIONS,
       deps=[benchmark_catalog])
def benchmark_datasets(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths) -> MaterializeResult:
    """One benchmark, validated (METHOD.md §7.1), with its versioned splits parquet (§7.2);
    ``proxy`` is built here (pseudo-MOS, KADID-10K layout)."""
    start = time.perf_counter()
    prep = prepare(context.partition_key, dataset_roots, evaluation, paths, build=True)
    table = prep.table
    types = table["distortion_type"].value_counts().sort_index()
    sizes = prep.splits.to_json()["sizes"]
    split_md = "| split | train | val | test |\n|---|---|---|---|\n" + "\n".join(
        f"| {i} | {s['train']} | {s['val']} | {s['test']} |" for i, s in enumerate(sizes))
    missing = "\n".join(f"- {m}" for m in prep.dataset.missing[:20]) or "none"
    info = prep.to_json()
    return MaterializeResult(
        metadata={
            "dataset": MetadataValue.md(_md_kv({k: info[k] for k in (
                "dataset", "kind", "label", "lower_is_better", "version", "splits_version",
                "splits_method")})),
            "n_images": prep.dataset.n_images,
            "n_missing": prep.dataset.n_missing,
            "n_references": int(table["reference"].nunique()),
            "missing": MetadataValue.md(missing),
            "distortion_types": MetadataValue.md(
                "| type | images |\n|---|---|\n"
                + "\n".join(f"| {k} | {v} |" for k, v in types.items())),
            "splits": MetadataValue.md(split_md),
            "splits_path": MetadataValue.path(str(prep.splits_path)),
            "root": MetadataValue.path(str(prep.dataset.root)),
            "dataset_version": prep.version,
            "proxy_spec": MetadataValue.json(bm.proxy_spec_of(prep.dataset.root) or {}),
            "seconds": round(time.perf_counter() - start, 2),
        },
        data_version=DataVersion(f"{prep.version}:{prep.splits.version}"),
    )


@asset(group_name=GROUP, code_version=code_version("features"), partitions_def=BENCHMARK_PARTITIONS,
       deps=[benchmark_datasets, ENCODER_KEY], pool="gpu")
def benchmark_features(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """5 crops x 2 scales features (§7.3) of one benchmark for the current encoder and its
    untrained twin, cached on disk by encoder fingerprint + dataset version + crop size."""
    prep = prepare(context.partition_key, dataset_roots, evaluation, paths, build=False)
    trained, twin, crop = load_encoders(evaluation, paths, mlflow_tracking)
    rows = ["| encoder | fingerprint | cache | seconds | crops/s | failed | file |",
            "|---|---|---|---|---|---|---|"]
    sets = {}
    for enc in (trained, twin):
        fs = bm.encode_dataset(prep, enc, crop)
        assert fs is not None
        sets[enc.role] = fs
        rate = (10 * prep.dataset.n_images / fs.seconds) if fs.seconds else None
        rows.append(f"| {enc.role} | `{enc.fingerprint}` | {'hit' if fs.cache_hit else 'computed'} "
                    f"| {fs.seconds:.1f} | {f'{rate:.0f}' if rate else '-'} | {fs.n_failed} "
                    f"| {fs.path.name} |")
        context.log.info(f"{enc.role}: {fs.path} ({'cache hit' if fs.cache_hit else f'{fs.seconds:.1f}s'})")
    failed = sets["trained"].failed
    return MaterializeResult(
        metadata={
            "features": MetadataValue.md("\n".join(rows)),
            "encoder": MetadataValue.json(trained.to_json()),
            "encoder_fingerprint": trained.fingerprint,
            "baseline_fingerprint": twin.fingerprint,
            "crop_size": crop,
            "shape": str(tuple(sets["trained"].features.shape)),
            "dataset_version": prep.version,
            "n_failed": len(failed),
            "failed": MetadataValue.md("\n".join(f"- {p}: {r}" for p, r in failed[:20]) or "none"),
            "path": MetadataValue.path(str(sets["trained"].path)),
            **encoder_provenance(context),
        },
        data_version=DataVersion(f"{trained.fingerprint}:{twin.fingerprint}:{prep.version}:p{crop}"),
    )


@asset(group_name=GROUP, code_version=code_version("results"), deps=[benchmark_features])
def quality_regressors(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                       evaluation: EvaluationSettings, paths: OutputPaths,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """Per dataset: the ridge alpha chosen by median val SRCC over the splits (§7.4,
    DECISIONS 13) with the per-split test metrics, for the encoder and its twin, and the
    final regressor fitted on all data at that alpha (saved beside the features)."""
    trained, twin, crop = load_encoders(evaluation, paths, mlflow_tracking)
    names = sorted(context.instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name))
    prepared, feats, skipped = available(context, names, dataset_roots, evaluation, paths,
                                         trained, twin, crop)
    if not prepared:
        raise Failure(description="no benchmark has features for this encoder: "
                                  + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    sections = {enc.role: bm.standard_section(prepared, feats[enc.role], enc,
                                              log=context.log.info) for enc in (trained, twin)}
    meta = bm.evaluation_meta(trained, twin, crop, evaluation.seed, prepared)
    out = run_dir(paths, trained, crop)
    path = bm.write_json_atomic(out / "standard.json", {**sections, "meta": meta,
                                                        "skipped": skipped})
    rows = ["| dataset | alpha | median val SRCC | baseline alpha | train images (split 0) | "
            "regressor | sha256 |", "|---|---|---|---|---|---|---|"]
    for name in prepared:
        e, b = sections["trained"][name], sections["baseline"][name]
        rows.append(f"| {name} | {e['alpha']:.4g} | {_num(e['median_val_srcc'])} | "
                    f"{b['alpha']:.4g} | {e['splits'][0]['n_train']} | "
                    f"{Path(e['regressor']).name} | `{e['regressor_sha256']}` |")
    return MaterializeResult(
        metadata={
            "regressors": MetadataValue.md("\n".join(rows)),
            "datasets": ", ".join(prepared),
            "n_datasets": len(prepared),
            "skipped": MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in skipped.items())
                                        or "none"),
            "encoder_fingerprint": trained.fingerprint,
            "crop_size": crop,
            "results": MetadataValue.path(str(path)),
        },
        data_version=DataVersion(hashlib.sha256(path.read_bytes()).hexdigest()[:16]),
    )


@asset(group_name=GROUP, code_version=code_version("results"), deps=[quality_regressors])
def cross_dataset_table(context: AssetExecutionContext, dataset_roots: DatasetRoots,
                        evaluation: EvaluationSettings, paths: OutputPaths,
                        mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """source x target SRCC/PLCC (§7.7): ridge on the source's train splits at its chosen
    alpha, predictions on all target images, orientation and range mapped; medians over the
    source's splits. For the encoder and its twin."""
    trained, twin, crop = load_encoders(evaluation, paths, mlflow_tracking)
    out = run_dir(paths, trained, crop)
    standard = _read_json(out / "standard.json")
    if standard is None:
        raise Failure(description=f"no {out / 'standard.json'}: materialize quality_regressors first")
    if not evaluation.cross:
        return MaterializeResult(metadata={"cross": MetadataValue.md("disabled (evaluation.cross=false)")})
    names = [n for n in standard["trained"]]
    prepared, feats, skipped = available(context, names, dataset_roots, evaluation, paths,
                                         trained, twin, crop)
    cross = {}
    for enc in (trained, twin):
        alphas = {n: standard[enc.role][n]["alpha"] for n in prepared}
        cross[enc.role] = bm.run_cross(prepared, feats[enc.role], alphas,
                                       log=lambda m, r=enc.role: context.log.info(f"[{r}] {m}"))
    path = bm.write_json_atomic(out / "cross.json", {"datasets": list(prepared), **cross})
    result = bm.assemble_result({**standard["trained"], "cross": cross["trained"]},
                                {**standard["baseline"], "cross": cross["baseline"]}, {})
    return MaterializeResult(
        metadata={
            "srcc": MetadataValue.md(bm.markdown_table(bm.cross_matrix(result), index=True)),
            "plcc": MetadataValue.md(bm.markdown_table(bm.cross_matrix(result, "plcc"), index=True)),
            "baseline_srcc": MetadataValue.md(bm.markdown_table(
                bm.cross_matrix(result, baseline=True), index=True)),
            "pairs": MetadataValue.md(bm.markdown_table(bm.cross_frame(result))),
            "n_pairs": len(prepared) ** 2,
            "skipped": ", ".join(skipped) or "none",
            "results": MetadataValue.path(str(path)),
        },
        data_version=DataVersion(hashlib.sha256(path.read_bytes()).hexdigest()[:16]),
    )


@asset(group_name=GROUP, code_version=code_version("results"), deps=[quality_regressors, cross_dataset_table])
def evaluation_table(context: AssetExecutionContext, evaluation: EvaluationSettings,
                     paths: OutputPaths, mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """datasets x {SRCC, PLCC} for the encoder and its untrained twin (§7.6), logged to MLflow
    (parent run + nested run per dataset, both tables, metrics srcc/<dataset>), registered as
    pyfunc ``shamisa-iqa``; the ``champion`` alias moves only on a higher mean SRCC."""
    from shamisa_core.evaluation.mlflow_eval import log_evaluation

    trained, twin, crop = load_encoders(evaluation, paths, mlflow_tracking)
    out = run_dir(paths, trained, crop)
    standard = _read_json(out / "standard.json")
    if standard is None:
        raise Failure(description=f"no {out / 'standard.json'}: materialize quality_regressors first")
    cross = _read_json(out / "cross.json")
    names = list(standard["trained"])
    trained_sec, base_sec = dict(standard["trained"]), dict(standard["baseline"])
    if cross is not None and cross.get("datasets") == names:
        trained_sec["cross"], base_sec["cross"] = cross["trained"], cross["baseline"]
    result = bm.assemble_result(trained_sec, base_sec, standard["meta"])
    path = bm.write_json_atomic(out / "evaluation.json", result)
    text = bm.format_table(result)
    table_txt = paths.eval_dir() / "evaluation_table.txt"  # the latest table, for `make run`
    bm.write_text_atomic(table_txt, text + "\n")
    bm.write_text_atomic(paths.eval_dir() / "evaluation_table.md",
                         bm.markdown_table(bm.summary_frame(result)) + "\n")
    context.log.info("\n" + text)
    log = log_evaluation(result, mlflow_dir=mlflow_tracking.path,
                         experiment=mlflow_tracking.experiment, register=evaluation.register_model,
                         tags={"shamisa.dagster_run_id": context.run.run_id})
    decision = log.decision
    if decision is not None:
        context.log.info(f"champion: {decision.reason}")
    mean = bm.mean_srcc(result)
    base_mean = bm.mean_srcc(result, baseline=True)
    metadata: dict[str, Any] = {
        "table": MetadataValue.md(bm.markdown_table(bm.summary_frame(result))),
        "mean_srcc": mean if mean is not None else float("nan"),
        "baseline_mean_srcc": base_mean if base_mean is not None else float("nan"),
        "n_datasets": len(names),
        "datasets": ", ".join(names),
        "cross_included": "cross" in trained_sec,
        "skipped": MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in
                                              (standard.get("skipped") or {}).items()) or "none"),
        "mlflow_run_id": log.parent_run_id,
        "mlflow_experiment_id": log.experiment_id,
        "mlflow_tracking_uri": log.tracking_uri,
        "results": MetadataValue.path(str(path)),
        "table_text": MetadataValue.path(str(table_txt)),
        "encoder_fingerprint": trained.fingerprint,
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
                     quality_regressors, cross_dataset_table, evaluation_table]
