"""Corpus stage: pristine_images -> corpus_shards[shard] -> corpus_manifest (+ checks)."""


import json
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
    multi_asset_check,
)

from pipelines.resources import OutputPaths, ShamisaSettings, env_config
from pipelines.versions import code_version
from pydantic import Field

from shamisa_core.corpus.build import ShardResult, build_shard, build_shards, resolve_workers
from shamisa_core.corpus.manifest import check_record, read_manifest, write_manifest
from shamisa_core.atomic import file_sha256
from shamisa_core.corpus.shards import ShardError, iter_samples, shard_name
from shamisa_core.pristine import (
    export_default,
    read_pristine_manifest,
    scan_folder,
    write_pristine_manifest,
)

SHARD_PARTITIONS = StaticPartitionsDefinition(
    [f"shard-{i:06d}" for i in range(env_config().corpus.n_shards)]
)


def _shard_index(partition_key: str) -> int:
    return int(partition_key.split("-")[1])


@asset(group_name="corpus", code_version=code_version("pristine", "1"))
def pristine_images(settings: ShamisaSettings, paths: OutputPaths) -> MaterializeResult:
    """The usable pristine photos (folder or packaged default) as a parquet manifest."""
    cfg = settings.config()
    if cfg.corpus.pristine == "default":
        source = export_default(paths.pristine_default_dir())
    else:
        source = Path(cfg.corpus.pristine)
    scan = scan_folder(source, cfg.corpus.min_side)
    out = write_pristine_manifest(scan, paths.corpus_dir(cfg.profile) / "pristine.parquet")
    skipped_md = "\n".join(f"| {p} | {r} |" for p, r in scan.skipped) or "| - | - |"
    return MaterializeResult(
        metadata={
            "source": str(source),
            "manifest": MetadataValue.path(str(out)),
            "n_images": len(scan.images),
            "n_skipped": len(scan.skipped),
            "skipped": MetadataValue.md("| file | reason |\n|---|---|\n" + skipped_md),
            "content_hash": scan.version,
        },
        data_version=DataVersion(scan.version),
    )


class CorpusBuildConfig(Config):
    """Run config of ``corpus_shards`` (how the build runs; the shard bytes never depend on it)."""

    workers: int = Field(
        default=0,
        description="Processes building the shards of one run: 0 = every core this process may "
        "use (os.sched_getaffinity), capped at the number of partitions in the run.",
    )


@asset(
    group_name="corpus",
    code_version=code_version("corpus", "2"),
    deps=[pristine_images],
    partitions_def=SHARD_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
)
def corpus_shards(
    context: AssetExecutionContext,
    config: CorpusBuildConfig,
    settings: ShamisaSettings,
    paths: OutputPaths,
) -> MaterializeResult:
    """One WebDataset tar per partition; a range of partitions is built in one run, in
    ``config.workers`` processes (default: one per available core)."""
    cfg = settings.config()
    out_dir = paths.corpus_dir(cfg.profile)
    sources = read_pristine_manifest(out_dir / "pristine.parquet")
    shards = [_shard_index(k) for k in context.partition_keys]
    workers = resolve_workers(config.workers, len(shards))
    if workers > 1:
        results = build_shards(sources, cfg, shards, out_dir, workers)
    else:
        results = [build_shard(sources, cfg, s, out_dir) for s in shards]
    for r in results:
        context.log.info(f"{Path(r.path).name}: {r.n_groups} groups, {r.n_crops} crops, {r.seconds:.1f}s")
    total_s = sum(r.seconds for r in results)
    crops = sum(r.n_crops for r in results)
    return MaterializeResult(
        metadata={
            "shards": MetadataValue.md(
                "| shard | groups | crops | seconds | sha256 |\n|---|---|---|---|---|\n"
                + "\n".join(
                    f"| {Path(r.path).name} | {r.n_groups} | {r.n_crops} | {r.seconds:.1f} | `{r.sha256[:16]}` |"
                    for r in results
                )
            ),
            "n_groups": sum(r.n_groups for r in results),
            "n_crops": crops,
            "workers": workers,
            "crops_per_s_per_process": round(crops / max(total_s, 1e-9), 1),
            "sha256": results[0].sha256 if len(results) == 1 else ",".join(r.sha256[:16] for r in results),
        },
        data_version=DataVersion(results[0].sha256) if len(results) == 1 else None,
    )


@asset(group_name="corpus", code_version=code_version("corpus", "2"), deps=[corpus_shards])
def corpus_manifest(settings: ShamisaSettings, paths: OutputPaths) -> MaterializeResult:
    """manifest.json: the shard list, counts, sha256 of each shard and the config hash."""
    cfg = settings.config()
    out_dir = paths.corpus_dir(cfg.profile)
    sources = read_pristine_manifest(out_dir / "pristine.parquet")
    results = []
    missing = []
    for s in range(cfg.corpus.n_shards):
        path = out_dir / shard_name(s)
        if not path.exists():
            missing.append(path.name)
            continue
        results.append(
            ShardResult(s, str(path), file_sha256(path), cfg.corpus.groups_per_shard,
                        cfg.corpus.groups_per_shard * cfg.group.crops_per_group, 0.0).__dict__
        )
    if missing:
        raise FileNotFoundError(
            f"corpus {out_dir} lacks {len(missing)} shard(s): {', '.join(missing[:8])}; "
            "materialize their corpus_shards partitions first"
        )
    path = write_manifest(out_dir, cfg, results, sources)
    manifest = json.loads(path.read_text())
    return MaterializeResult(
        metadata={
            "manifest": MetadataValue.path(str(path)),
            "n_shards": manifest["n_shards"],
            "n_groups": manifest["n_groups"],
            "n_crops": manifest["n_crops"],
            "config_hash": manifest["config_hash"],
            "profile": cfg.profile,
        },
        data_version=DataVersion(manifest["config_hash"] + ":" + ",".join(s["sha256"][:12] for s in manifest["shards"])),
    )


_CHECKS = {
    "shards_decode": "every shard decodes",
    "counts_match_config": "group and crop counts match the config",
    "one_factor_rule": "within each composition only the varying slot's t differs across levels",
    "recipe_shared": "the recipe is identical across references and scales",
    "no_family_repeats": "no family repeats in a chain",
}


@multi_asset_check(
    specs=[AssetCheckSpec(name, asset=AssetKey("corpus_manifest"), description=d) for name, d in _CHECKS.items()]
)
def corpus_rules(settings: ShamisaSettings, paths: OutputPaths):
    """Decode every shard once and check the group rules (METHOD.md §2.3)."""
    cfg = settings.config()
    out_dir = paths.corpus_dir(cfg.profile)
    manifest = read_manifest(out_dir)
    bad_shards: list[str] = []
    problems: dict[str, list[str]] = {k: [] for k in _CHECKS}
    n_groups = 0
    for entry in manifest["shards"]:
        try:
            samples = list(iter_samples(out_dir / entry["file"]))
        except ShardError as exc:
            bad_shards.append(str(exc))
            continue
        if len(samples) != entry["n_groups"]:
            problems["counts_match_config"].append(f"{entry['file']}: {len(samples)} groups, manifest says {entry['n_groups']}")
        for sample in samples:
            n_groups += 1
            V, C, L = 2 * cfg.group.n_refs, cfg.group.n_comps, cfg.group.n_levels
            P = cfg.group.patch_size
            if sample.dist.shape != (V, C, L, P, P, 3) or sample.ref.shape != (V, P, P, 3):
                problems["counts_match_config"].append(f"{sample.key}: arrays {sample.ref.shape} {sample.dist.shape}")
            for err in check_record(sample.record, cfg):
                if "family repeats" in err:
                    problems["no_family_repeats"].append(err)
                elif "recipe differs" in err:
                    problems["recipe_shared"].append(err)
                elif "differs across levels" in err or "not sorted" in err or "varying slot" in err:
                    problems["one_factor_rule"].append(err)
                else:
                    problems["counts_match_config"].append(err)
    expected_groups = cfg.corpus.n_shards * cfg.corpus.groups_per_shard
    if not bad_shards and n_groups != expected_groups:
        problems["counts_match_config"].append(f"{n_groups} groups, config expects {expected_groups}")
    yield AssetCheckResult(
        check_name="shards_decode", passed=not bad_shards, asset_key="corpus_manifest",
        metadata={"n_shards": len(manifest["shards"]), "errors": "\n".join(bad_shards[:20]) or "none"},
    )
    for name in list(_CHECKS)[1:]:
        yield AssetCheckResult(
            check_name=name, passed=not problems[name], asset_key="corpus_manifest",
            metadata={"n_groups": n_groups, "violations": len(problems[name]), "first": "\n".join(problems[name][:10]) or "none"},
        )
