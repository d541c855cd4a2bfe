"""Benchmark an encoder: the evaluation protocol of METHOD.md §7 behind one call.

    result = evaluate_encoder("outputs/models/latest/encoder.pt", {"proxy": None,
                              "kadid10k": "/data/KADID10K"}, cross=True, fr=False,
                              cache_dir="outputs/evaluation")

For every dataset: load and validate it (§7.1), make or read its versioned splits (§7.2,
DECISIONS 14), extract 5-crop x 2-scale features (§7.3) with an on-disk cache keyed by encoder
fingerprint + dataset version + crop size, choose the ridge alpha and report the median over
splits of SRCC/PLCC (§7.4-7.6, DECISIONS 13), fit the final regressor on all data (§7.4), and
optionally the cross-dataset (§7.7) and full-reference (§7.8) protocols. The same protocol runs
on the **untrained twin** (same architecture, random init, same seed) as the baseline.

Result schema (``SCHEMA``): one entry per dataset name with ``srcc``, ``plcc``, ``srcc_splits``,
``plcc_splits``, ``alpha``, ``n_images``, ``n_missing`` (and the rest of
``StandardResult.to_json``); ``"cross"`` -> ``{source: {target: entry}}`` when asked; ``"fr"`` ->
``{dataset: entry}`` when asked; ``"baseline"`` -> the same keys for the twin; ``"meta"`` -> the
encoders, crop size, seeds, dataset versions and timings.

Name ``proxy`` is the embedded pseudo-MOS benchmark (``proxy.build_proxy``), built on demand in
``<proxy base>/<spec id>/`` and read in the KADID-10K layout; its distortion types come from the
``type`` column the builder writes (the engine has 26 types, KADID-10K's loader knows 25).

Work folder layout (``cache_dir``)::

    <dataset>/<dataset version>/splits.parquet          versioned splits (DECISIONS 14)
    <dataset>/<dataset version>/features/<key>.npy      features (+ <key>.json provenance)
    <dataset>/<dataset version>/regressors/<fp>-p<P>.npz final regressors (all data)
    benchmarks/proxy/<spec id>/                          the proxy (unless proxy_dir is given)
    downloads/                                           encoders fetched from MLflow URIs
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shamisa_core.atomic import atomic_write_bytes
from shamisa_core.models import ModelConfig, build_backbone
from shamisa_core.scoring import ENCODER_FILE, Regressor, find_file, fit_regressor, resolve_artifacts
from shamisa_core.training.checkpoint import Encoder, load_encoder

from .datasets import LOADERS, load_dataset
from .datasets.base import DatasetInfo, LoadedDataset, finalise
from .features import (
    FeatureConfig,
    encoder_fingerprint,
    extract_features,
    extract_reference_features,
    feature_cache_key,
)
from .protocol import CrossResult, StandardResult, evaluate_cross, evaluate_fr, evaluate_standard
from .proxy import ProxySpec, build_proxy
from .ridge import DEFAULT_ALPHAS
from .splits import SplitConfig, Splits, make_splits, read_splits, write_splits

SCHEMA = "shamisa-evaluation/1"
PROXY = "proxy"
DATASET_NAMES: tuple[str, ...] = (*LOADERS, PROXY)
RESERVED_KEYS: tuple[str, ...] = ("cross", "fr", "baseline", "meta")
# Which dataset's final regressor goes into the registered model (first one evaluated wins):
# in-the-wild sets first (the model scores arbitrary photos), the pseudo-MOS proxy last.
REGRESSOR_PREFERENCE: tuple[str, ...] = ("koniq10k", "spaq", "flive", "clive", "kadid10k",
                                         "tid2013", "csiq", "live", PROXY)
# The proxy that `make run` and `shamisa evaluate --dataset proxy` use by default: 8 photos x
# 26 types x 5 levels (t = 0..4) = 1,040 images (10,400 crops per encoder). Measured on 2
# cores: ~45 s of features per encoder (resnet18, crop 96) and ~75 s to build it once.
# Reference-disjoint splits of 8 references are 6/1/1 (§7.2).
DEFAULT_PROXY_SPEC = ProxySpec(n_refs=8)
DEFAULT_FEATURE_BATCH = 64  # crops per encoder call (6 images x 10 crops; 64-320 measured equal)

PROXY_INFO = DatasetInfo(
    name=PROXY,
    kind="synthetic",
    score_range=(1.0, 5.0),
    lower_is_better=False,
    label="MOS",
    layout="dmos.csv (dist_img, ref_img, dmos[, type, level]) with images/ (proxy.build_proxy)",
)

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ----------------------------------------------------------------------------------------------
# Dataset roots from a config folder


@dataclass(frozen=True)
class DatasetRoot:
    """One configured dataset: ``<config_dir>/<name>.yaml`` (or .json) with ``root: /path``."""

    name: str
    root: Path | None
    config_file: Path | None
    digest: str

    def to_json(self) -> dict[str, str | None]:
        """Plain dict."""
        return {"name": self.name, "root": str(self.root) if self.root else None,
                "config_file": str(self.config_file) if self.config_file else None,
                "digest": self.digest}


@dataclass(frozen=True)
class RootsScan:
    """The configured dataset roots of a folder, and the files that could not be used."""

    config_dir: Path
    roots: Mapping[str, DatasetRoot]
    problems: tuple[tuple[str, str], ...] = ()


def _parse_root_file(path: Path) -> Mapping[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("root"), str) or not data["root"]:
        raise ValueError("expected a mapping with a non-empty string `root: /path/to/dataset`")
    return data


def scan_dataset_roots(config_dir: str | Path) -> RootsScan:
    """Read every ``<name>.yaml|.yml|.json`` of ``config_dir`` (DECISIONS 15 dataset names).

    ``name`` must be one of ``DATASET_NAMES``; a relative ``root`` is taken relative to the
    config folder. Unusable files are returned in ``problems`` (file, reason), never raised, so
    that one bad file does not hide the others. A missing folder configures nothing.
    """
    folder = Path(config_dir).expanduser()
    roots: dict[str, DatasetRoot] = {}
    problems: list[tuple[str, str]] = []
    if not folder.is_dir():
        return RootsScan(folder, roots, ())
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".yaml", ".yml", ".json") or path.name.startswith("."):
            continue
        name = path.stem.lower()
        if name not in DATASET_NAMES:
            problems.append((str(path), f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}"))
            continue
        if name in roots:
            problems.append((str(path), f"{name} is already configured by {roots[name].config_file}"))
            continue
        try:
            data = _parse_root_file(path)
        except Exception as exc:  # noqa: BLE001 - any parse error is reported, not raised
            problems.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        root = Path(str(data["root"])).expanduser()
        root = root if root.is_absolute() else (folder / root)
        digest = hashlib.sha256(f"{name}\n{root}\n".encode() + path.read_bytes()).hexdigest()[:16]
        roots[name] = DatasetRoot(name=name, root=root, config_file=path, digest=digest)
    return RootsScan(folder, roots, tuple(problems))


# ----------------------------------------------------------------------------------------------
# The proxy benchmark


def proxy_spec_id(spec: ProxySpec) -> str:
    """Readable, content-addressed id of a proxy spec, e.g. ``r8-t26-l3-1a2b3c4d``."""
    blob = json.dumps({"n_refs": spec.n_refs, "types": list(spec.types),
                       "levels": list(spec.levels), "seed": spec.seed}, sort_keys=True)
    return (f"r{spec.n_refs}-t{len(spec.types)}-l{len(spec.levels)}-"
            f"{hashlib.sha256(blob.encode()).hexdigest()[:8]}")


def proxy_dir(base: str | Path, spec: ProxySpec) -> Path:
    """Where the proxy of ``spec`` lives under ``base`` (one folder per spec, never mixed)."""
    return Path(base) / proxy_spec_id(spec)


def load_proxy(root: str | Path) -> LoadedDataset:
    """Read a built proxy with the KADID-10K loader (its layout) as dataset ``proxy``.

    Distortion types come from the ``type`` column ``build_proxy`` writes (engine keys).
    """
    from shamisa_core.evaluation.datasets import kadid10k

    root = Path(root).expanduser().resolve()
    return finalise(PROXY_INFO, root, kadid10k.read(root))


def proxy_spec_of(folder: str | Path) -> dict[str, Any] | None:
    """The spec a proxy folder was built with (``proxy_spec.json``), None if unrecorded."""
    path = Path(folder) / "proxy_spec.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_proxy(folder: str | Path, spec: ProxySpec | None) -> Path:
    """Build the proxy into ``folder`` unless it is there (``spec`` None: use what is there,
    or build ``DEFAULT_PROXY_SPEC`` when the folder is empty). Returns the folder."""
    folder = Path(folder)
    if spec is None and (folder / "dmos.csv").is_file():
        return folder
    build_proxy(folder, spec or DEFAULT_PROXY_SPEC)
    return folder


# ----------------------------------------------------------------------------------------------
# Datasets and their versioned splits


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """A loaded dataset with its splits and its work folder (``<cache>/<name>/<version>``)."""

    dataset: LoadedDataset
    splits: Splits
    splits_path: Path
    work_dir: Path

    @property
    def name(self) -> str:
        """Dataset name (``info.name``)."""
        return self.dataset.info.name

    @property
    def info(self) -> DatasetInfo:
        """Dataset description."""
        return self.dataset.info

    @property
    def table(self) -> pd.DataFrame:
        """The table of present images (row i = image i everywhere downstream)."""
        return self.dataset.table

    @property
    def version(self) -> str:
        """Content hash of the annotation rows."""
        return self.dataset.version

    def to_json(self) -> dict[str, Any]:
        """Summary for metadata and logs."""
        return {"dataset": self.name, "root": str(self.dataset.root), "version": self.version,
                "n_images": self.dataset.n_images, "n_missing": self.dataset.n_missing,
                "label": self.info.label, "lower_is_better": self.info.lower_is_better,
                "kind": self.info.kind, "splits_version": self.splits.version,
                "splits_method": self.splits.method, "n_splits": self.splits.n_splits,
                "splits_path": str(self.splits_path)}


def load_named_dataset(name: str, root: str | Path | None, *, proxy_base: str | Path,
                       proxy_spec: ProxySpec | None = None, build: bool = True) -> LoadedDataset:
    """Load benchmark ``name`` from ``root``; for ``proxy`` build it first when ``build``.

    ``proxy`` with no root (or ``"default"``) lives in ``proxy_dir(proxy_base, spec)``; with a
    root, that folder holds (or receives) the proxy.
    """
    if name == PROXY:
        spec = proxy_spec or DEFAULT_PROXY_SPEC
        explicit = root not in (None, "", "default")
        folder = Path(str(root)) if explicit else proxy_dir(proxy_base, spec)
        if build:
            # An explicit folder is rebuilt only for an explicitly requested spec.
            ensure_proxy(folder, proxy_spec if explicit else spec)
        elif not (folder / "dmos.csv").is_file():
            raise FileNotFoundError(f"proxy benchmark not built at {folder}; materialize "
                                    "benchmark_datasets[proxy] (or run `shamisa evaluate`) first")
        return load_proxy(folder)
    if name not in LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    if root in (None, ""):
        raise ValueError(f"dataset {name} needs a root folder ({LOADERS[name].info.layout})")
    return load_dataset(name, root)


def dataset_work_dir(cache_dir: str | Path, dataset: LoadedDataset) -> Path:
    """``<cache_dir>/<name>/<version>``: splits, features and regressors of this version."""
    return Path(cache_dir) / dataset.info.name / dataset.version


def prepare_dataset(name: str, root: str | Path | None, cache_dir: str | Path, *,
                    proxy_base: str | Path | None = None, proxy_spec: ProxySpec | None = None,
                    split_config: SplitConfig = SplitConfig(), build: bool = True,
                    ) -> PreparedDataset:
    """Load a dataset and make (``build``) or read its versioned splits file (§7.2).

    The splits parquet sits beside the features in the dataset version's work folder; an
    existing file is verified against the table and version (``read_splits``). With
    ``build=False`` nothing is created: a missing proxy or splits file is an error.
    """
    base = Path(proxy_base) if proxy_base is not None else Path(cache_dir) / "benchmarks" / PROXY
    dataset = load_named_dataset(name, root, proxy_base=base, proxy_spec=proxy_spec, build=build)
    work = dataset_work_dir(cache_dir, dataset)
    tag = "" if split_config == SplitConfig() else "-" + hashlib.sha256(
        repr(split_config).encode()).hexdigest()[:8]
    path = work / f"splits{tag}.parquet"
    if path.is_file():
        splits = read_splits(path, dataset.table, dataset_version=dataset.version)
    elif build:
        splits = make_splits(dataset.table, dataset.info, config=split_config,
                             dataset_version=dataset.version)
        write_splits(path, splits)
    else:
        raise FileNotFoundError(f"no splits file {path}; materialize benchmark_datasets[{name}] first")
    return PreparedDataset(dataset=dataset, splits=splits, splits_path=path, work_dir=work)


# ----------------------------------------------------------------------------------------------
# Encoders: the trained one and its untrained twin


@dataclass(frozen=True, eq=False)
class EncoderHandle:
    """An evaluation encoder (x -> h), its file meta and its fingerprint."""

    role: str
    module: torch.nn.Module
    meta: Mapping[str, Any]
    fingerprint: str
    source: str
    path: Path | None = None
    seed: int | None = None

    @property
    def patch_size(self) -> int | None:
        """The training patch size recorded in ``encoder.pt`` (default crop size)."""
        value = self.meta.get("patch_size")
        return int(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        """Summary: role, source, fingerprint, architecture, patch size, step, seed."""
        cfg = self.meta.get("model_config", {})
        return {"role": self.role, "source": self.source, "fingerprint": self.fingerprint,
                "path": str(self.path) if self.path else None, "arch": cfg.get("arch"),
                "init": cfg.get("init") if self.role == "trained" else "random",
                "patch_size": self.patch_size, "step": self.meta.get("step"), "seed": self.seed}


def load_trained(encoder: str | os.PathLike, *, download_dir: str | Path | None = None,
                 tracking_uri: str | None = None) -> EncoderHandle:
    """Load ``encoder.pt`` from a path, a folder holding it, or an MLflow URI
    (``models:/shamisa-encoder/3``, ``models:/shamisa-iqa@champion``, ``runs:/<id>/...``)."""
    location = resolve_artifacts(encoder, tracking_uri=tracking_uri, download_dir=download_dir)
    path = find_file(location, ENCODER_FILE).resolve()  # through models/latest -> run folder
    module, meta = load_encoder(path)
    return EncoderHandle(role="trained", module=module, meta=meta,
                         fingerprint=encoder_fingerprint(module), source=str(encoder), path=path)


def training_seed(meta: Mapping[str, Any], default: int) -> int:
    """The seed the encoder was initialised with (``config.train.seed`` in ``encoder.pt``)."""
    train = (meta.get("config") or {}).get("train") or {}
    seed = train.get("seed") if isinstance(train, Mapping) else None
    return int(seed) if seed is not None else int(default)


def untrained_twin(trained: EncoderHandle, seed: int) -> EncoderHandle:
    """The baseline: the same architecture, randomly initialised with ``seed`` (§5 baseline).

    Built as training builds its model (``torch.manual_seed(seed)`` then the backbone first),
    so with the training seed it is the trained encoder's exact starting point. The global
    torch RNG is forked, never changed.
    """
    cfg = dataclasses.replace(ModelConfig(**trained.meta["model_config"]), init="random",
                              weights_path=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        backbone = build_backbone(cfg)
    module = Encoder(backbone).eval()
    module.requires_grad_(False)
    meta = {k: v for k, v in trained.meta.items() if k in ("model_config", "patch_size", "arch",
                                                           "feature_dim", "format")}
    meta["model_config"] = dataclasses.asdict(cfg)
    return EncoderHandle(role="baseline", module=module, meta=meta,
                         fingerprint=encoder_fingerprint(module),
                         source=f"untrained-twin({cfg.arch}, seed={seed})", seed=int(seed))


# ----------------------------------------------------------------------------------------------
# Features with an on-disk cache


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features (n, 5, 2d) float64 of one dataset under one encoder, and where they live."""

    features: np.ndarray
    key: str
    path: Path
    cache_hit: bool
    failed: tuple[tuple[str, str], ...]
    encoder_fingerprint: str
    crop_size: int
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        """Images that could not be read (NaN rows)."""
        return len(self.failed)

    def to_json(self) -> dict[str, Any]:
        """Provenance: key, path, hit, failures, shape, time."""
        return {"key": self.key, "path": str(self.path), "cache_hit": self.cache_hit,
                "n_failed": self.n_failed, "failed": [list(f) for f in self.failed[:20]],
                "encoder_fingerprint": self.encoder_fingerprint, "crop_size": self.crop_size,
                "shape": list(self.features.shape), "seconds": round(self.seconds, 3)}


_atomic_bytes = atomic_write_bytes


def _save_features(path: Path, features: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(features, dtype=np.float64), allow_pickle=False)
    _atomic_bytes(path, buf.getvalue())


def features_key(prepared: PreparedDataset, fingerprint: str, crop_size: int,
                 kind: str = "nr") -> str:
    """Cache key: encoder fingerprint + dataset version + crop size (+ kind, resize rule)."""
    extra = f"{kind}|resize={prepared.info.resize_short_side}"
    return feature_cache_key(fingerprint, prepared.version, crop_size, extra)


def encode_dataset(prepared: PreparedDataset, encoder: EncoderHandle, crop_size: int, *,
                   kind: str = "nr", batch_size: int = DEFAULT_FEATURE_BATCH,
                   device: str = "cpu", compute: bool = True) -> FeatureSet | None:
    """Features of every image (``kind="nr"``) or of each row's reference (``"ref"``, §7.8).

    Read from ``<work>/features/<key>.npy`` when present; otherwise extracted (§7.3) and
    written atomically with a JSON sidecar (failures, encoder, crop). ``compute=False``
    returns None instead of extracting.
    """
    key = features_key(prepared, encoder.fingerprint, crop_size, kind)
    path = prepared.work_dir / "features" / f"{key}.npy"
    sidecar = path.with_suffix(".json")
    if path.is_file():
        info = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        feats = np.load(path, allow_pickle=False)
        if feats.shape[0] == len(prepared.table):
            return FeatureSet(feats, key, path, True,
                              tuple(tuple(f) for f in info.get("failed", [])),
                              encoder.fingerprint, crop_size, 0.0)
    if not compute:
        return None
    config = FeatureConfig(crop_size=crop_size, batch_size=batch_size, device=device,
                           resize_short_side=prepared.info.resize_short_side)
    start = time.perf_counter()
    if kind == "ref":
        result = extract_reference_features(prepared.table["reference_image"].tolist(),
                                            encoder.module, config)
    else:
        result = extract_features(prepared.table["image"].tolist(), encoder.module, config)
    seconds = time.perf_counter() - start
    _save_features(path, result.features)
    side = {"dataset": prepared.name, "dataset_version": prepared.version, "kind": kind,
            "encoder_fingerprint": encoder.fingerprint, "encoder_role": encoder.role,
            "crop_size": crop_size, "shape": list(result.features.shape),
            "failed": [list(f) for f in result.failed], "seconds": round(seconds, 3)}
    _atomic_bytes(sidecar, json.dumps(side, indent=1).encode())
    return FeatureSet(result.features, key, path, False, result.failed, encoder.fingerprint,
                      crop_size, seconds)


# ----------------------------------------------------------------------------------------------
# Protocols -> JSON entries


def run_standard(prepared: PreparedDataset, features: FeatureSet,
                 alphas: Sequence[float] = DEFAULT_ALPHAS) -> StandardResult:
    """Standard protocol (§7.4-7.6): alpha by median val SRCC, medians over test splits."""
    return evaluate_standard(features.features, prepared.table, prepared.info, prepared.splits,
                             alphas, n_missing=prepared.dataset.n_missing)


def standard_entry(result: StandardResult, prepared: PreparedDataset,
                   features: FeatureSet) -> dict[str, Any]:
    """The JSON entry of one dataset: ``StandardResult.to_json`` + dataset/feature provenance."""
    entry = result.to_json()
    entry["dataset_version"] = prepared.version
    entry["features"] = features.to_json()
    return entry


def run_fr(prepared: PreparedDataset, dist: FeatureSet, ref: FeatureSet,
           alphas: Sequence[float] = DEFAULT_ALPHAS) -> StandardResult:
    """Full-reference protocol (§7.8) on ``|h_ref - h_dist|``.

    The exported ``encoder.pt`` carries the backbone only, so the FR features use the
    representation ``h`` (both scales, 2 x d) instead of the projector output ``z``.
    """
    return evaluate_fr(dist.features, ref.features, prepared.table, prepared.info,
                       prepared.splits, alphas, n_missing=prepared.dataset.n_missing)


def run_cross(prepared: Mapping[str, PreparedDataset], features: Mapping[str, FeatureSet],
              source_alphas: Mapping[str, float], *, log: Log = _quiet,
              ) -> dict[str, dict[str, dict[str, Any]]]:
    """Cross-dataset protocol (§7.7) for every ordered pair; ``{source: {target: entry}}``.

    The alpha of a source is the one its own standard search chose (the same search §7.7
    runs), passed in ``source_alphas``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for src, sp in prepared.items():
        out[src] = {}
        for tgt, tp in prepared.items():
            res: CrossResult = evaluate_cross(
                features[src].features, sp.table, sp.info, sp.splits,
                features[tgt].features, tp.table, tp.info,
                alpha=source_alphas[src], tgt_n_missing=tp.dataset.n_missing)
            entry = res.to_json()
            entry["alpha_source"] = "source_standard_search"
            out[src][tgt] = entry
            log(f"cross {src} -> {tgt}: SRCC {_fmt(res.srcc)} PLCC {_fmt(res.plcc)}")
    return out


def regressor_path(prepared: PreparedDataset, fingerprint: str, crop_size: int) -> Path:
    """Where the final regressor of an encoder on a dataset is written."""
    return prepared.work_dir / "regressors" / f"{fingerprint}-p{crop_size}.npz"


def final_regressor(prepared: PreparedDataset, features: FeatureSet, alpha: float,
                    encoder_fingerprint_: str) -> Regressor:
    """The regressor on all images at the chosen alpha (§7.4 "fitted only for saving")."""
    return fit_regressor(
        features.features, prepared.table["score"].to_numpy(np.float64), alpha,
        crop_size=features.crop_size, lower_is_better=prepared.info.lower_is_better,
        score_range=prepared.info.score_range, datasets=(prepared.name,),
        extra={"dataset_version": prepared.version, "encoder_fingerprint": encoder_fingerprint_,
               "splits_version": prepared.splits.version})


def primary_dataset(names: Sequence[str]) -> str:
    """The dataset whose regressor goes into the registered model (``REGRESSOR_PREFERENCE``)."""
    for name in REGRESSOR_PREFERENCE:
        if name in names:
            return name
    if not names:
        raise ValueError("no dataset evaluated")
    return sorted(names)[0]


# ----------------------------------------------------------------------------------------------
# The entry point


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def evaluate_encoder(encoder: str | os.PathLike, datasets: Mapping[str, str | os.PathLike | None],
                     *, cross: bool = False, fr: bool = False, baseline: bool = True,
                     cache_dir: str | os.PathLike, crop_size: int | None = None, seed: int = 27,
                     proxy_spec: ProxySpec | None = None, proxy_base: str | os.PathLike | None = None,
                     tracking_uri: str | None = None, batch_size: int = DEFAULT_FEATURE_BATCH,
                     device: str = "cpu", alphas: Sequence[float] = DEFAULT_ALPHAS,
                     log: Log = _quiet) -> dict[str, Any]:
    """Evaluate an encoder (and its untrained twin) on ``datasets`` (METHOD.md §7).

    ``datasets`` maps a name of ``DATASET_NAMES`` to its root (``proxy``: None, ``"default"``
    or a folder). ``crop_size`` defaults to the encoder's training patch size. ``seed`` seeds
    the splits (27 + split index, DECISIONS 14) and, when ``encoder.pt`` does not record its
    training seed, the twin. Returns the ``SCHEMA`` dict (module docstring); the trained
    encoder's final regressors are written and their paths given per dataset.
    """
    t0 = time.perf_counter()
    cache = Path(cache_dir)
    unknown = [n for n in datasets if n not in DATASET_NAMES]
    if unknown:
        raise KeyError(f"unknown dataset(s) {unknown}; known: {', '.join(DATASET_NAMES)}")
    if not datasets:
        raise ValueError("no dataset to evaluate on")
    split_config = SplitConfig(seed=seed)
    timings: dict[str, float] = {}

    trained = load_trained(encoder, download_dir=cache / "downloads", tracking_uri=tracking_uri)
    crop = int(crop_size or trained.patch_size or 224)
    encoders = [trained]
    if baseline:
        encoders.append(untrained_twin(trained, training_seed(trained.meta, seed)))

    prepared: dict[str, PreparedDataset] = {}
    for name, root in datasets.items():
        start = time.perf_counter()
        prepared[name] = prepare_dataset(name, root, cache, proxy_base=proxy_base,
                                         proxy_spec=proxy_spec, split_config=split_config)
        timings[f"prepare/{name}"] = time.perf_counter() - start
        log(f"{name}: {prepared[name].dataset.n_images} images, "
            f"{prepared[name].dataset.n_missing} missing, version {prepared[name].version}")

    sections: dict[str, dict[str, Any]] = {}
    for enc in encoders:
        feats: dict[str, FeatureSet] = {}
        for name, prep in prepared.items():
            fs = encode_dataset(prep, enc, crop, batch_size=batch_size, device=device)
            assert fs is not None
            feats[name] = fs
            timings[f"features/{enc.role}/{name}"] = fs.seconds
        start = time.perf_counter()
        sec = standard_section(prepared, feats, enc, alphas, log=log)
        timings[f"standard/{enc.role}"] = time.perf_counter() - start
        if cross:
            start = time.perf_counter()
            sec["cross"] = run_cross(prepared, feats, {n: sec[n]["alpha"] for n in prepared},
                                     log=lambda m, r=enc.role: log(f"[{r}] {m}"))
            timings[f"cross/{enc.role}"] = time.perf_counter() - start
        if fr:
            sec["fr"] = fr_section(prepared, feats, enc, crop, alphas, batch_size=batch_size,
                                   device=device, log=log)
        sections[enc.role] = sec

    meta = evaluation_meta(trained, encoders[1] if baseline else None, crop, seed, prepared,
                           fr=fr, alphas=alphas)
    meta["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    meta["total_seconds"] = round(time.perf_counter() - t0, 3)
    return assemble_result(sections["trained"], sections.get("baseline"), meta)


def standard_section(prepared: Mapping[str, PreparedDataset], features: Mapping[str, FeatureSet],
                     encoder: EncoderHandle, alphas: Sequence[float] = DEFAULT_ALPHAS, *,
                     regressors: bool | None = None, log: Log = _quiet) -> dict[str, Any]:
    """``{dataset: entry}`` of the standard protocol for one encoder (§7.4-7.6).

    With ``regressors`` (default: for the trained encoder) the final regressor on all data at
    the chosen alpha is written beside the dataset's features and its path recorded.
    """
    fit_final = encoder.role == "trained" if regressors is None else regressors
    out: dict[str, Any] = {}
    for name, prep in prepared.items():
        fs = features[name]
        res = run_standard(prep, fs, alphas)
        out[name] = standard_entry(res, prep, fs)
        if fit_final:
            reg = final_regressor(prep, fs, res.alpha, encoder.fingerprint)
            path = reg.save(regressor_path(prep, encoder.fingerprint, fs.crop_size))
            out[name]["regressor"] = str(path)
            out[name]["regressor_sha256"] = reg.digest()
        log(f"[{encoder.role}] {name}: SRCC {_fmt(res.srcc)} PLCC {_fmt(res.plcc)} "
            f"alpha {res.alpha:.4g} ({'cached' if fs.cache_hit else f'{fs.seconds:.1f}s'} features)")
    return out


def fr_section(prepared: Mapping[str, PreparedDataset], features: Mapping[str, FeatureSet],
               encoder: EncoderHandle, crop: int, alphas: Sequence[float] = DEFAULT_ALPHAS, *,
               batch_size: int = DEFAULT_FEATURE_BATCH, device: str = "cpu",
               log: Log = _quiet) -> dict[str, Any]:
    """``{dataset: entry}`` of the full-reference protocol (§7.8) for the synthetic sets."""
    out: dict[str, Any] = {}
    for name, prep in prepared.items():
        if not prep.info.is_synthetic:
            log(f"[{encoder.role}] fr {name}: skipped (no reference images)")
            continue
        ref = encode_dataset(prep, encoder, crop, kind="ref", batch_size=batch_size,
                             device=device)
        assert ref is not None
        res = run_fr(prep, features[name], ref, alphas)
        out[name] = standard_entry(res, prep, ref)
        log(f"[{encoder.role}] fr {name}: SRCC {_fmt(res.srcc)} PLCC {_fmt(res.plcc)}")
    return out


def evaluation_meta(trained: EncoderHandle, twin: EncoderHandle | None, crop: int, seed: int,
                    prepared: Mapping[str, PreparedDataset], *, fr: bool = False,
                    alphas: Sequence[float] = DEFAULT_ALPHAS) -> dict[str, Any]:
    """The ``meta`` block of a result: encoders, crop size, seeds, datasets, proxy spec."""
    return {
        "schema": SCHEMA,
        "encoder": trained.to_json(),
        "baseline_encoder": twin.to_json() if twin is not None else None,
        "crop_size": crop,
        "seed": seed,
        "datasets": {n: p.to_json() for n, p in prepared.items()},
        "primary_dataset": primary_dataset(list(prepared)),
        "proxy_spec": proxy_spec_of(prepared[PROXY].dataset.root) if PROXY in prepared else None,
        "alphas": {"count": len(alphas), "min": float(min(alphas)), "max": float(max(alphas))},
        "fr_features": "abs(h_ref - h_dist), both scales" if fr else None,
    }


def assemble_result(trained: Mapping[str, Any], baseline: Mapping[str, Any] | None,
                    meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SCHEMA`` dict: dataset entries (+ cross, fr), ``baseline`` and ``meta``."""
    result: dict[str, Any] = dict(trained)
    if baseline is not None:
        result["baseline"] = dict(baseline)
    result["meta"] = dict(meta)
    return result


# ----------------------------------------------------------------------------------------------
# Reading results: tables


def dataset_names(result: Mapping[str, Any]) -> list[str]:
    """The dataset entries of a result (keys that are not ``RESERVED_KEYS``)."""
    return [k for k in result if k not in RESERVED_KEYS]


def summary_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """datasets x {SRCC, PLCC} for the trained encoder and the baseline, with alphas and counts."""
    base = result.get("baseline") or {}
    rows = []
    for name in dataset_names(result):
        e = result[name]
        b = base.get(name, {})
        rows.append({"dataset": name, "srcc": e.get("srcc"), "plcc": e.get("plcc"),
                     "baseline_srcc": b.get("srcc"), "baseline_plcc": b.get("plcc"),
                     "alpha": e.get("alpha"), "baseline_alpha": b.get("alpha"),
                     "n_images": e.get("n_images"), "n_missing": e.get("n_missing")})
    return pd.DataFrame(rows, columns=["dataset", "srcc", "plcc", "baseline_srcc",
                                       "baseline_plcc", "alpha", "baseline_alpha", "n_images",
                                       "n_missing"])


def cross_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of the cross-dataset results: source, target, SRCC/PLCC trained and baseline."""
    cross = result.get("cross") or {}
    base = (result.get("baseline") or {}).get("cross") or {}
    rows = []
    for src, targets in cross.items():
        for tgt, e in targets.items():
            b = base.get(src, {}).get(tgt, {})
            rows.append({"source": src, "target": tgt, "srcc": e.get("srcc"), "plcc": e.get("plcc"),
                         "baseline_srcc": b.get("srcc"), "baseline_plcc": b.get("plcc"),
                         "alpha": e.get("alpha"), "same_dataset": src == tgt,
                         "orientation_flipped": e.get("orientation_flipped")})
    return pd.DataFrame(rows, columns=["source", "target", "srcc", "plcc", "baseline_srcc",
                                       "baseline_plcc", "alpha", "same_dataset",
                                       "orientation_flipped"])


def cross_matrix(result: Mapping[str, Any], metric: str = "srcc", baseline: bool = False,
                 ) -> pd.DataFrame:
    """source x target matrix of one metric (rows: training set, columns: test set)."""
    cross = ((result.get("baseline") or {}) if baseline else result).get("cross") or {}
    names = list(cross)
    return pd.DataFrame([[cross[s].get(t, {}).get(metric) for t in names] for s in names],
                        index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))


def mean_srcc(result: Mapping[str, Any], baseline: bool = False) -> float | None:
    """Mean over datasets of the median SRCC (§7.6 global mean), None if nothing is finite."""
    section = (result.get("baseline") or {}) if baseline else result
    values = [section[n]["srcc"] for n in dataset_names(result)
              if n in section and section[n].get("srcc") is not None]
    return float(np.mean(values)) if values else None


def markdown_table(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub markdown table (floats rounded, None/NaN as ``-``)."""
    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.3g}" if v != 0 and abs(float(v)) < 1e-3 else f"{float(v):.{digits}f}"
        return str(v)

    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = ([str(idx)] if index else []) + [cell(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(result: Mapping[str, Any]) -> str:
    """The plain-text table ``shamisa evaluate`` prints: trained vs baseline per dataset."""
    frame = summary_frame(result)
    has_base = bool(result.get("baseline"))
    head = f"{'dataset':<10} {'SRCC':>7} {'PLCC':>7}"
    head += f" {'base SRCC':>10} {'base PLCC':>10}" if has_base else ""
    head += f" {'alpha':>9} {'images':>7} {'missing':>7}"
    lines = [head, "-" * len(head)]
    for r in frame.itertuples(index=False):
        line = f"{r.dataset:<10} {_fmt(r.srcc):>7} {_fmt(r.plcc):>7}"
        if has_base:
            line += f" {_fmt(r.baseline_srcc):>10} {_fmt(r.baseline_plcc):>10}"
        line += f" {r.alpha:>9.3g} {r.n_images:>7} {r.n_missing:>7}"
        lines.append(line)
    mean = mean_srcc(result)
    if mean is not None and len(frame) > 1:
        base_mean = mean_srcc(result, baseline=True)
        lines.append(f"{'mean SRCC':<10} {mean:>7.4f}" + (
            f" {'':>7} {base_mean:>10.4f}" if has_base and base_mean is not None else ""))
    if result.get("cross"):
        lines += ["", "cross-dataset SRCC (rows: trained on, columns: tested on)"]
        mat = cross_matrix(result)
        lines.append(f"{'':<10}" + "".join(f" {c:>9}" for c in mat.columns))
        for src, row in mat.iterrows():
            lines.append(f"{src:<10}" + "".join(f" {_fmt(v):>9}" for v in row.tolist()))
    if result.get("fr"):
        lines += ["", "full-reference (|h_ref - h_dist|) SRCC / PLCC"]
        base_fr = (result.get("baseline") or {}).get("fr") or {}
        for name, e in result["fr"].items():
            b = base_fr.get(name, {})
            lines.append(f"{name:<10} {_fmt(e.get('srcc')):>7} {_fmt(e.get('plcc')):>7}"
                         + (f" {_fmt(b.get('srcc')):>10} {_fmt(b.get('plcc')):>10}" if b else ""))
    return "\n".join(lines)


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON through a temp file and ``os.replace``."""
    target = Path(path)
    _atomic_bytes(target, (json.dumps(data, indent=1, default=_json_default) + "\n").encode())
    return target


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` through a temp file and ``os.replace``."""
    target = Path(path)
    _atomic_bytes(target, text.encode())
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
