"""Train/val/test splits of a benchmark, stored as versioned data files (METHOD.md §7.2,
DECISIONS 14).

* Synthetic sets: reference-disjoint splits. The unique references, sorted, are permuted with
  ``numpy.random.default_rng(seed + s)`` for split ``s``; the first ``round(0.7 n)`` go to train,
  the next ``round(0.1 n)`` to val, the rest to test; every image follows its reference.
* Authentic sets: the same rule applied to the images themselves (random 70/10/20 splits).
* FLIVE: its official split (one split) where the annotation gives it (table column
  ``official_split``), otherwise random splits.

``round`` is Python's (half to even), which gives the reference's 20/3/6, 21/3/6, 18/2/5 and
57/8/16 references for LIVE, CSIQ, TID2013 and KADID-10k. No padding entries (DECISIONS 14):
every image appears exactly once per split.

Files are parquet tables with columns ``split``, ``image_index``, ``image`` (the table's
``name``, i.e. relative path) and ``role``; the schema metadata holds the dataset name, method,
seed, dataset version and the content hash that is the splits' version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shamisa_core.atomic import atomic_open

from .datasets.base import DatasetInfo, LoadedDataset

ROLES: tuple[str, ...] = ("train", "val", "test")
SplitMethod = Literal["reference_disjoint", "random", "official"]
_META_KEY = b"shamisa_splits"


class SplitError(ValueError):
    """A split file or split assignment is inconsistent with its dataset."""


@dataclass(frozen=True)
class SplitConfig:
    """How splits are made (DECISIONS 14 defaults)."""

    n_splits: int = 10
    seed: int = 27
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    use_official: bool = True


@dataclass(frozen=True, eq=False)
class Splits:
    """All splits of one dataset: a long table (split, image_index, image, role) + provenance."""

    frame: pd.DataFrame
    dataset: str
    method: SplitMethod
    seed: int
    dataset_version: str
    version: str

    @property
    def n_splits(self) -> int:
        """Number of splits."""
        return int(self.frame["split"].max()) + 1 if len(self.frame) else 0

    def indices(self, split: int, role: str) -> np.ndarray:
        """Sorted image indices of ``role`` in split ``split``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        sel = (self.frame["split"].to_numpy() == split) & (self.frame["role"].to_numpy() == role)
        return np.sort(self.frame["image_index"].to_numpy(np.int64)[sel])

    def as_index_list(self) -> list[dict[str, np.ndarray]]:
        """``[{role: indices}]`` per split, the form ``ridge.fit_splits`` takes."""
        return [{r: self.indices(s, r) for r in ROLES} for s in range(self.n_splits)]

    def to_json(self) -> dict[str, object]:
        """Summary: method, version and per-split role sizes."""
        sizes = [{r: int(self.indices(s, r).size) for r in ROLES} for s in range(self.n_splits)]
        return {"dataset": self.dataset, "method": self.method, "seed": self.seed,
                "n_splits": self.n_splits, "version": self.version,
                "dataset_version": self.dataset_version, "sizes": sizes}


def role_counts(n: int, train_fraction: float = 0.7, val_fraction: float = 0.1,
                ) -> tuple[int, int, int]:
    """(train, val, test) counts: ``round(0.7 n)``, ``round(0.1 n)``, the rest (§7.2)."""
    n_train = int(round(train_fraction * n))
    n_val = int(round(val_fraction * n))
    n_val = min(n_val, n - n_train)
    return n_train, n_val, n - n_train - n_val


def permuted_roles(units: Sequence[str] | np.ndarray, split: int, config: SplitConfig,
                   ) -> dict[str, str]:
    """Role of each unique unit (reference id or image) in split ``split`` (§7.2).

    Units are sorted, permuted with ``default_rng(config.seed + split)`` and cut by
    ``role_counts``.
    """
    ordered = np.array(sorted(set(map(str, units))), dtype=object)
    order = np.random.default_rng(config.seed + split).permutation(ordered.size)
    n_train, n_val, _ = role_counts(ordered.size, config.train_fraction, config.val_fraction)
    roles = np.empty(ordered.size, dtype=object)
    roles[order[:n_train]] = "train"
    roles[order[n_train:n_train + n_val]] = "val"
    roles[order[n_train + n_val:]] = "test"
    return dict(zip(ordered.tolist(), roles.tolist(), strict=True))


def choose_method(table: pd.DataFrame, info: DatasetInfo, config: SplitConfig) -> SplitMethod:
    """reference_disjoint for synthetic sets, official where the table has it, else random."""
    if info.is_synthetic:
        return "reference_disjoint"
    if config.use_official and "official_split" in table.columns:
        return "official"
    return "random"


def make_splits(table: pd.DataFrame, info: DatasetInfo, *, config: SplitConfig = SplitConfig(),
                dataset_version: str = "") -> Splits:
    """Make the splits of a dataset table (DECISIONS 14)."""
    method = choose_method(table, info, config)
    names = table["name"].astype(str).to_numpy()
    n = len(table)
    rows: list[pd.DataFrame] = []
    if method == "official":
        roles = table["official_split"].astype(str).to_numpy()
        bad = sorted(set(roles.tolist()) - set(ROLES))
        if bad:
            raise SplitError(f"{info.name}: official_split has values {bad}")
        rows.append(_frame(0, np.arange(n), names, roles))
    else:
        units = (table["reference"] if method == "reference_disjoint" else table["name"])
        units_arr = units.astype(str).to_numpy()
        for s in range(config.n_splits):
            mapping = permuted_roles(units_arr, s, config)
            rows.append(_frame(s, np.arange(n), names,
                               np.array([mapping[u] for u in units_arr], dtype=object)))
    frame = pd.concat(rows, ignore_index=True)
    return _finish(frame, info.name, method, config.seed, dataset_version)


def splits_for(dataset: LoadedDataset, config: SplitConfig = SplitConfig()) -> Splits:
    """``make_splits`` for a loaded dataset, versioned with the dataset's version."""
    return make_splits(dataset.table, dataset.info, config=config,
                       dataset_version=dataset.version)


def _frame(split: int, index: np.ndarray, names: np.ndarray, roles: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "split": np.full(index.size, split, dtype=np.int64),
        "image_index": index.astype(np.int64),
        "image": names[index].astype(str),
        "role": np.asarray(roles, dtype=object).astype(str),
    })


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["split", "image_index"], kind="stable").reset_index(drop=True)


def content_hash(frame: pd.DataFrame, dataset: str, method: str, dataset_version: str) -> str:
    """SHA-256 (16 hex digits) of the split rows and their provenance: the splits' version."""
    digest = hashlib.sha256(f"{dataset}\n{method}\n{dataset_version}\n".encode())
    canon = _canonical(frame)
    for row in canon[["split", "image_index", "image", "role"]].itertuples(index=False):
        digest.update(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]}\n".encode())
    return digest.hexdigest()[:16]


def _finish(frame: pd.DataFrame, dataset: str, method: SplitMethod, seed: int,
            dataset_version: str) -> Splits:
    frame = _canonical(frame)
    return Splits(frame=frame, dataset=dataset, method=method, seed=seed,
                  dataset_version=dataset_version,
                  version=content_hash(frame, dataset, method, dataset_version))


def validate_splits(splits: Splits, table: pd.DataFrame) -> None:
    """Check splits against a table: same images, each image exactly once per split, roles
    valid, and (reference-disjoint) no reference in two roles. Raises ``SplitError``.
    """
    n = len(table)
    names = table["name"].astype(str).to_numpy()
    refs = table["reference"].astype(str).to_numpy()
    frame = splits.frame
    if not set(frame["role"].unique()) <= set(ROLES):
        raise SplitError(f"{splits.dataset}: unknown roles {sorted(set(frame['role']))}")
    for s in range(splits.n_splits):
        part = frame[frame["split"] == s]
        idx = part["image_index"].to_numpy(np.int64)
        if idx.size != n or not np.array_equal(np.sort(idx), np.arange(n)):
            raise SplitError(
                f"{splits.dataset} split {s}: covers {np.unique(idx).size} distinct of {n} "
                f"images in {idx.size} rows (each image must appear exactly once)"
            )
        if not np.array_equal(part["image"].astype(str).to_numpy(), names[idx]):
            raise SplitError(f"{splits.dataset} split {s}: image names do not match the table")
        if splits.method == "reference_disjoint":
            seen: dict[str, str] = {}
            for ref, role in zip(refs[idx], part["role"].to_numpy(), strict=True):
                if seen.setdefault(ref, role) != role:
                    raise SplitError(
                        f"{splits.dataset} split {s}: reference {ref!r} in {seen[ref]} and {role}"
                    )


def write_splits(path: str | Path, splits: Splits) -> Path:
    """Write splits to a parquet file atomically (temp file in the same folder, then
    ``os.replace``). Returns the path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": splits.dataset, "method": splits.method, "seed": splits.seed,
            "dataset_version": splits.dataset_version, "version": splits.version}
    arrow = pa.Table.from_pandas(splits.frame, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           _META_KEY: json.dumps(meta).encode()})
    with atomic_open(target, "wb") as fh:
        pq.write_table(arrow, fh)
    return target


def read_splits(path: str | Path, table: pd.DataFrame | None = None,
                *, dataset_version: str | None = None) -> Splits:
    """Read a splits file; verify its content hash, and, if given, its table and version."""
    source = Path(path)
    if not source.is_file():
        raise SplitError(f"missing splits file {source}")
    arrow = pq.read_table(source)
    raw_meta = (arrow.schema.metadata or {}).get(_META_KEY)
    if raw_meta is None:
        raise SplitError(f"{source}: not a shamisa splits file (no provenance metadata)")
    meta = json.loads(raw_meta)
    frame = arrow.to_pandas()
    missing = [c for c in ("split", "image_index", "image", "role") if c not in frame.columns]
    if missing:
        raise SplitError(f"{source}: missing column(s) {missing}")
    splits = _finish(frame[["split", "image_index", "image", "role"]], meta["dataset"],
                     meta["method"], int(meta["seed"]), meta["dataset_version"])
    if splits.version != meta["version"]:
        raise SplitError(
            f"{source}: content hash {splits.version} differs from the recorded version "
            f"{meta['version']} (file edited or corrupted)"
        )
    if dataset_version is not None and dataset_version != splits.dataset_version:
        raise SplitError(
            f"{source}: made for dataset version {splits.dataset_version}, "
            f"not {dataset_version}"
        )
    if table is not None:
        validate_splits(splits, table)
    return splits


def index_lists(splits: Splits | Sequence[Mapping[str, np.ndarray]],
                ) -> list[dict[str, np.ndarray]]:
    """Normalise ``Splits`` or a list of ``{role: indices}`` to the latter."""
    if isinstance(splits, Splits):
        return splits.as_index_list()
    return [{r: np.asarray(s[r], dtype=np.int64) for r in ROLES} for s in splits]
