"""Corpus manifest (shard list, counts, hashes, config hash) and the group rule checks
(METHOD.md §2.3 "one factor varies at a time"; §1.6 one member per family)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # the config imports the training package, which imports the reader
    from shamisa_core.config import ShamisaConfig
from shamisa_core.distortions.registry import FAMILY_OF
from shamisa_core.atomic import atomic_write_bytes

MANIFEST_NAME = "manifest.json"


def corpus_config_hash(cfg: "ShamisaConfig") -> str:
    """Hash of everything that determines the corpus bytes."""
    return cfg.section_hash("engine", "group", "corpus")


def write_manifest(
    out_dir: Path, cfg: "ShamisaConfig", shards: Sequence[dict[str, Any]], sources: Sequence[str]
) -> Path:
    """Write ``manifest.json`` atomically; ``shards`` are dicts with shard/path/sha256/counts."""
    shards = sorted(shards, key=lambda s: s["shard"])
    manifest = {
        "format": "shamisa-corpus/1",
        "profile": cfg.profile,
        "config": cfg.to_dict(),
        "config_hash": corpus_config_hash(cfg),
        "n_shards": len(shards),
        "n_groups": sum(int(s["n_groups"]) for s in shards),
        "n_crops": sum(int(s["n_crops"]) for s in shards),
        "crops_per_group": cfg.group.crops_per_group,
        "n_sources": len(sources),
        "shards": [
            {
                "shard": int(s["shard"]),
                "file": Path(s["path"]).name,
                "sha256": s["sha256"],
                "n_groups": int(s["n_groups"]),
                "n_crops": int(s["n_crops"]),
            }
            for s in shards
        ],
    }
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_bytes(path, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return path


def read_manifest(corpus_dir: Path) -> dict[str, Any]:
    """Read a corpus manifest, with a clear error when the corpus is missing or empty."""
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / MANIFEST_NAME
    if not corpus_dir.is_dir():
        raise FileNotFoundError(
            f"corpus folder {corpus_dir} does not exist; build it with `shamisa corpus build "
            f"--out {corpus_dir}` or materialize the corpus assets"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: {corpus_dir} is not a built corpus (or its build did not finish); "
            f"rebuild it with `shamisa corpus build --out {corpus_dir}`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        from shamisa_core.errors import CorpusIntegrityError

        raise CorpusIntegrityError(
            f"corpus manifest {path} is damaged ({type(exc).__name__}: {exc}); rebuild the corpus "
            f"with `shamisa corpus build --out {corpus_dir}`"
        ) from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a corpus manifest; rebuild the corpus")
    if not manifest.get("shards"):
        raise ValueError(f"corpus manifest {path} lists no shards; rebuild the corpus")
    return manifest


def verify_shards(corpus_dir: Path, manifest: dict[str, Any]) -> list[tuple[Path, str]]:
    """Every shard listed in ``manifest`` that is missing or whose sha256 differs from the
    manifest's, as ``(path, reason)`` pairs (empty when the corpus is intact).

    Run when training starts (issue 8 defect 4): a truncated, damaged or swapped shard is
    named before any step instead of failing mid-run or training silently on other data.
    Costs one sequential read of the corpus (``bench/shard_check.py`` measures it).
    """
    from shamisa_core.atomic import file_sha256

    problems: list[tuple[Path, str]] = []
    for entry in manifest["shards"]:
        path = Path(corpus_dir) / entry["file"]
        if not path.is_file():
            problems.append((path, "missing"))
            continue
        digest = file_sha256(path)
        if digest != entry["sha256"]:
            size = path.stat().st_size
            problems.append((path, f"sha256 {digest[:12]}... differs from the manifest's "
                                   f"{entry['sha256'][:12]}... ({size} bytes: truncated, damaged or swapped)"))
    return problems


def unlisted_shards(corpus_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """``shard-*.tar`` files in ``corpus_dir`` that ``manifest`` does not list (left over by
    an earlier build with more shards)."""
    listed = {entry["file"] for entry in manifest["shards"]}
    return sorted(p for p in Path(corpus_dir).glob("shard-*.tar") if p.name not in listed)


def expected_array_shapes(record: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(ref, dist)`` array shapes a group record promises: ``(2R, P, P, 3)`` and
    ``(2R, C, L, P, P, 3)`` (views: R references at full and at half scale)."""
    P = int(record["patch_size"])
    R = len(record["references"])
    C = len(record["compositions"])
    L = len(record["compositions"][0]["levels"]) if C else 0
    return (2 * R, P, P, 3), (2 * R, C, L, P, P, 3)


def check_arrays(record: dict[str, Any], ref_shape: Sequence[int], dist_shape: Sequence[int]) -> list[str]:
    """Shape mismatches between a group's member arrays and its record (empty when they agree)."""
    gid = record.get("group_id", "?")
    try:
        want_ref, want_dist = expected_array_shapes(record)
    except (KeyError, TypeError, IndexError) as exc:
        return [f"{gid}: record lacks the fields that fix the array shapes ({type(exc).__name__}: {exc})"]
    errors = []
    if tuple(ref_shape) != want_ref:
        errors.append(f"{gid}: ref array {tuple(ref_shape)}, record says {want_ref}")
    if tuple(dist_shape) != want_dist:
        errors.append(f"{gid}: dist array {tuple(dist_shape)}, record says {want_dist}")
    return errors


def check_record(record: dict[str, Any], cfg: "ShamisaConfig | None" = None) -> list[str]:
    """All rule violations of one group record (empty list when the group is valid).

    Rules: counts match the config; no family repeats in a chain; within each composition only
    the varying slot's ``t`` differs across levels; levels are sorted by ``t``; the recipe of each
    (composition, level) is identical across references and scales.
    """
    errors: list[str] = []
    gid = record.get("group_id", "?")
    comps = record["compositions"]
    if cfg is not None:
        g = cfg.group
        if len(record["references"]) != g.n_refs:
            errors.append(f"{gid}: {len(record['references'])} references, expected {g.n_refs}")
        if len(comps) != g.n_comps:
            errors.append(f"{gid}: {len(comps)} compositions, expected {g.n_comps}")
        if record["patch_size"] != g.patch_size:
            errors.append(f"{gid}: patch {record['patch_size']}, expected {g.patch_size}")
    for c, comp in enumerate(comps):
        fams = [FAMILY_OF.get(s["type"], "?") for s in comp["slots"]]
        if len(set(fams)) != len(fams):
            errors.append(f"{gid} comp {c}: a family repeats in the chain {fams}")
        if cfg is not None and len(comp["levels"]) != cfg.group.n_levels:
            errors.append(f"{gid} comp {c}: {len(comp['levels'])} levels, expected {cfg.group.n_levels}")
        k = comp["varying_slot"]
        if not 0 <= k < len(comp["slots"]):
            errors.append(f"{gid} comp {c}: varying slot {k} outside the chain")
            continue
        first = comp["levels"][0]
        for l, lv in enumerate(comp["levels"]):
            for s in range(len(comp["slots"])):
                if s != k and (lv["t"][s] != first["t"][s] or lv["value"][s] != first["value"][s]):
                    errors.append(f"{gid} comp {c} level {l}: fixed slot {s} differs across levels")
        ts = [lv["t"][k] for lv in comp["levels"]]
        if ts != sorted(ts):
            errors.append(f"{gid} comp {c}: levels are not sorted by t")
    recipes: dict[tuple[int, int], set[str]] = {}
    for crop in record.get("crops", []):
        recipes.setdefault((crop["composition"], crop["level"]), set()).add(crop["recipe"])
    for (c, l), digests in sorted(recipes.items()):
        if len(digests) != 1:
            errors.append(f"{gid} comp {c} level {l}: recipe differs across references/scales")
    if cfg is not None:
        expected = 2 * cfg.group.n_refs * cfg.group.n_comps * cfg.group.n_levels
        if len(record.get("crops", [])) != expected:
            errors.append(f"{gid}: {len(record.get('crops', []))} crop entries, expected {expected}")
    return errors
