"""Prepared datasets: a loaded benchmark with its versioned splits and its work folder.

``prepare_dataset(name, root, cache_dir)`` loads and validates a benchmark (METHOD.md §7.1)
and makes or reads its splits (§7.2, DECISIONS 14) in ``<cache>/<name>/<dataset version>/``.
The dataset version hashes the annotation rows, labels included (``table_version``), so a
change of a score gives a new folder. Name ``proxy`` is the embedded pseudo-MOS benchmark
(``proxy.build_proxy``), built on demand in ``<proxy base>/<spec id>/`` and read in the
KADID-10K layout; its distortion types come from the ``type`` column the builder writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .datasets import LOADERS, load_dataset
from .datasets.base import DatasetInfo, LoadedDataset, finalise
from .proxy import ProxySpec, build_proxy
from .roots import DATASET_NAMES, PROXY
from .splits import SplitConfig, Splits, make_splits, read_splits, write_splits

# The proxy that `make run` and `shamisa evaluate --dataset proxy` use by default: 8 photos x
# 26 types x 5 levels (t = 0..4) = 1,040 images (10,400 crops per encoder). Measured on 2
# cores: ~45 s of features per encoder (resnet18, crop 96) and ~75 s to build it once.
# Reference-disjoint splits of 8 references are 6/1/1 (§7.2).
DEFAULT_PROXY_SPEC = ProxySpec()  # every proxy reference (pristine.PROXY_PHOTOS)

PROXY_INFO = DatasetInfo(
    name=PROXY,
    kind="synthetic",
    score_range=(1.0, 5.0),
    lower_is_better=False,
    label="MOS",
    layout="dmos.csv (dist_img, ref_img, dmos[, type, level]) with images/ (proxy.build_proxy)",
)


# ----------------------------------------------------------------------------------------------
# The proxy benchmark


def proxy_spec_with(refs: int | None = None, types: Sequence[str] | None = None,
                    levels: Sequence[float] | None = None) -> ProxySpec:
    """``DEFAULT_PROXY_SPEC`` with the given fields replaced (None/empty: keep the default).

    Types are checked against the distortion registry and levels against [0, 4].
    """
    spec = DEFAULT_PROXY_SPEC
    if refs:
        spec = dataclasses.replace(spec, n_refs=int(refs))
    if types:
        from shamisa_core.distortions.registry import get_type

        for t in types:
            get_type(t)  # KeyError names the known types
        spec = dataclasses.replace(spec, types=tuple(types))
    if levels:
        lv = tuple(float(v) for v in levels)
        if any(not 0.0 <= v <= 4.0 for v in lv):
            raise ValueError(f"proxy levels must lie in [0, 4], got {lv}")
        spec = dataclasses.replace(spec, levels=lv)
    return spec


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
    """Read a built proxy with the KADID-10K loader (its layout) as dataset ``proxy``."""
    from .datasets import kadid10k

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
        """Content hash of the annotation rows (names, references, types, levels, scores)."""
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


def default_proxy_base(cache_dir: str | Path) -> Path:
    """``<cache_dir>/benchmarks/proxy``: where a proxy goes when no base is given."""
    return Path(cache_dir) / "benchmarks" / PROXY


def prepare_dataset(name: str, root: str | Path | None, cache_dir: str | Path, *,
                    proxy_base: str | Path | None = None, proxy_spec: ProxySpec | None = None,
                    split_config: SplitConfig = SplitConfig(), build: bool = True,
                    ) -> PreparedDataset:
    """Load a dataset and make (``build``) or read its versioned splits file (§7.2).

    The splits parquet sits beside the features in the dataset version's work folder; an
    existing file is verified against the table and version (``read_splits``); an unreadable
    one is rebuilt with a warning that names it. With ``build=False`` nothing is created: a
    missing proxy or splits file is an error. Splits depend on the annotation rows only (the
    dataset version), never on the image bytes.
    """
    base = Path(proxy_base) if proxy_base is not None else default_proxy_base(cache_dir)
    dataset = load_named_dataset(name, root, proxy_base=base, proxy_spec=proxy_spec, build=build)
    work = dataset_work_dir(cache_dir, dataset)
    tag = "" if split_config == SplitConfig() else "-" + hashlib.sha256(
        repr(split_config).encode()).hexdigest()[:8]
    path = work / f"splits{tag}.parquet"
    splits = None
    if path.is_file():
        try:
            splits = read_splits(path, dataset.table, dataset_version=dataset.version)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file is rebuilt
            if not build:
                raise
            import warnings

            warnings.warn(f"unreadable splits file {path} ({type(exc).__name__}: {exc}); "
                          "rebuilding it", stacklevel=2)
    if splits is None:
        if not build:
            raise FileNotFoundError(f"no splits file {path}; materialize "
                                    f"benchmark_datasets[{name}] first")
        splits = make_splits(dataset.table, dataset.info, config=split_config,
                             dataset_version=dataset.version)
        write_splits(path, splits)
    return PreparedDataset(dataset=dataset, splits=splits, splits_path=path, work_dir=work)
