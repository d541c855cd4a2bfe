"""Common table schema, dataset descriptions and file validation for the IQA benchmarks.

Implements the shared part of METHOD.md §7.1 (benchmarks and annotation formats) and
DECISIONS 15 (the eight benchmarks) and 16 (label orientation is recorded, never hidden).

Every loader turns its dataset's official annotation files into one table with the columns of
``TABLE_COLUMNS``:

* ``image``: absolute path of the image that is scored;
* ``name``: the same path relative to the dataset root (POSIX separators), used for hashing and
  for the split files, so both stay valid when the dataset folder moves;
* ``reference``: the reference (pristine content) id for synthetic sets; for authentic sets the
  image's own ``name`` (every image is its own content);
* ``reference_image``: absolute path of the reference image (authentic sets: the image itself);
* ``distortion_type``: a short type name (``"authentic"`` for authentic sets);
* ``level``: the distortion level as published (``-1`` where the dataset has none);
* ``score``: the label exactly as published (MOS or DMOS; ``DatasetInfo`` says which).

A loader may add an ``official_split`` column (values ``train``/``val``/``test``) where the
annotation file carries one (FLIVE, METHOD.md §7.2).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd

TABLE_COLUMNS: tuple[str, ...] = (
    "image",
    "name",
    "reference",
    "reference_image",
    "distortion_type",
    "level",
    "score",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("official_split",)
UNKNOWN_LEVEL = -1


class DatasetError(ValueError):
    """A dataset's annotation files are missing or malformed. The message names the file."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a benchmark is: its label type, range and orientation (METHOD.md §7.1).

    ``lower_is_better`` is true for DMOS datasets; DECISIONS 16 asks every score shown to a
    user to be "higher = better", so reports flip these (see ``to_higher_is_better``).
    ``resize_short_side`` asks feature extraction to resize images first (SPAQ: 512).
    """

    name: str
    kind: Literal["synthetic", "authentic"]
    score_range: tuple[float, float]
    lower_is_better: bool
    label: Literal["MOS", "DMOS"]
    layout: str = ""
    resize_short_side: int | None = None

    @property
    def is_synthetic(self) -> bool:
        """True for datasets with reference images (reference-disjoint splits, per-type metrics)."""
        return self.kind == "synthetic"


@dataclass(frozen=True)
class DatasetLoader:
    """A registered benchmark: its description and a function reading its annotation files.

    ``read(root)`` returns the raw table (``TABLE_COLUMNS``, every listed image, present or not);
    ``load_dataset`` then checks the images on disk.
    """

    info: DatasetInfo
    read: Callable[[Path], pd.DataFrame]


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """A validated benchmark: the table of images found on disk and those that were not.

    ``missing`` lists (relative names of) images the annotation file lists but the disk lacks;
    they are kept out of ``table`` and counted, never silently dropped. ``version`` is a content
    hash of the annotation rows (``table_version``), used to version splits and feature caches.
    """

    info: DatasetInfo
    root: Path
    table: pd.DataFrame
    missing: tuple[str, ...]
    version: str

    @property
    def n_images(self) -> int:
        """Number of images present on disk (rows of ``table``)."""
        return int(len(self.table))

    @property
    def n_missing(self) -> int:
        """Number of listed images that are missing on disk."""
        return len(self.missing)


# ----------------------------------------------------------------------------------------------
# File access helpers


def require_file(root: Path, candidates: Sequence[str], expected: str) -> Path:
    """Return the first existing ``root / candidate``, or raise ``DatasetError`` naming them.

    ``expected`` says, in words, what the file should contain (shown in the error).
    """
    for cand in candidates:
        path = root / cand
        if path.is_file():
            return path
    names = " or ".join(str(root / c) for c in candidates)
    raise DatasetError(f"missing annotation file {names}: expected {expected}")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    """Raise ``DatasetError`` naming ``path`` if ``frame`` lacks one of ``columns``."""
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DatasetError(
            f"malformed annotation file {path}: missing column(s) {absent}; "
            f"found {list(map(str, frame.columns))}"
        )


def read_csv_checked(path: Path, columns: Sequence[str], **kwargs: object) -> pd.DataFrame:
    """Read a CSV file and check it has ``columns`` and at least one row."""
    try:
        frame = pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"malformed annotation file {path}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    require_columns(frame, columns, path)
    if len(frame) == 0:
        raise DatasetError(f"malformed annotation file {path}: no rows")
    return frame


def parse_scores(values: Iterable[object], path: Path, column: str) -> np.ndarray:
    """Convert a column of labels to float64; a non-numeric or non-finite label is an error."""
    raw = list(values)
    scores = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"malformed annotation file {path}: column {column!r} row {i} has non-numeric "
            f"score {raw[i]!r} ({bad.size} bad row(s))"
        )
    return scores


def strip_first_component(path: str) -> str:
    """``'LIVE/jp2k/img2.bmp' -> 'jp2k/img2.bmp'`` (collection lists, METHOD.md §7.1)."""
    parts = PurePosixPath(path.replace("\\", "/").strip()).parts
    if len(parts) < 2:
        raise DatasetError(f"path {path!r} has no dataset folder to strip")
    return str(PurePosixPath(*parts[1:]))


def locate(root: Path, relative: str) -> Path:
    """``root / relative``, or its case-insensitive match on disk (e.g. TID2013 ``I01.BMP``).

    Returns the exact path when nothing matches, so a missing file stays visible as missing.
    """
    exact = root / relative
    if exact.exists():
        return exact
    current = root
    for part in PurePosixPath(relative).parts:
        candidate = current / part
        if not candidate.exists():
            match = _case_insensitive_child(current, part)
            if match is None:
                return exact
            candidate = match
        current = candidate
    return current


def _case_insensitive_child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` whose name equals ``name`` ignoring case, if exactly one."""
    try:
        entries = _listing(str(folder))
    except OSError:
        return None
    hits = entries.get(name.lower(), ())
    return folder / hits[0] if len(hits) == 1 else None


_LISTINGS: dict[tuple[str, int], dict[str, tuple[str, ...]]] = {}


def _listing(folder: str) -> dict[str, tuple[str, ...]]:
    """Lower-case name -> actual names in ``folder``; cached per folder modification time."""
    key = (folder, os.stat(folder).st_mtime_ns)
    if key not in _LISTINGS:
        table: dict[str, list[str]] = {}
        for entry in os.listdir(folder):
            table.setdefault(entry.lower(), []).append(entry)
        _LISTINGS[key] = {k: tuple(v) for k, v in table.items()}
    return _LISTINGS[key]


# ----------------------------------------------------------------------------------------------
# Table construction and validation


def make_table(
    root: Path,
    names: Sequence[str],
    scores: np.ndarray,
    *,
    references: Sequence[str] | None = None,
    reference_names: Sequence[str] | None = None,
    distortion_types: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    resolve_case: bool = False,
) -> pd.DataFrame:
    """Build a table in the common schema from per-image fields (names relative to ``root``).

    Authentic datasets pass no references: each image is its own reference. ``resolve_case``
    looks files up case-insensitively where the exact name is absent (``locate``).
    """
    n = len(names)
    root = root.resolve()
    to_path = (lambda rel: locate(root, rel)) if resolve_case else (lambda rel: root / rel)
    images = [str(to_path(rel)) for rel in names]
    if references is None:
        references = list(names)
        reference_images = list(images)
    else:
        if reference_names is None or len(reference_names) != n or len(references) != n:
            raise ValueError("references and reference_names must both have one entry per image")
        reference_images = [str(to_path(rel)) for rel in reference_names]
    table = pd.DataFrame(
        {
            "image": images,
            "name": [str(PurePosixPath(r)) for r in names],
            "reference": [str(r) for r in references],
            "reference_image": reference_images,
            "distortion_type": (
                [str(t) for t in distortion_types] if distortion_types is not None
                else ["authentic"] * n
            ),
            "level": np.asarray(
                levels if levels is not None else [UNKNOWN_LEVEL] * n, dtype=np.int64
            ),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    return table


def check_table(table: pd.DataFrame, source: str) -> None:
    """Validate a loader's table: schema, at least one row, finite scores, unique images."""
    missing_cols = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing_cols:
        raise DatasetError(f"{source}: table lacks column(s) {missing_cols}")
    if len(table) == 0:
        raise DatasetError(f"{source}: annotation lists no images")
    if not np.all(np.isfinite(table["score"].to_numpy(np.float64))):
        raise DatasetError(f"{source}: non-finite scores")
    dup = table["name"][table["name"].duplicated()]
    if len(dup):
        raise DatasetError(f"{source}: image(s) listed twice, e.g. {dup.iloc[0]!r}")


def table_version(info: DatasetInfo, table: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of the annotation rows, independent of the dataset root.

    Hashes the dataset name and, per row, ``name``, ``reference``, ``distortion_type``,
    ``level`` and ``score`` (``repr`` of the float), plus ``official_split`` if present.
    """
    digest = hashlib.sha256()
    digest.update(f"{info.name}\n".encode())
    cols = ["name", "reference", "distortion_type", "level", "score"]
    if "official_split" in table.columns:
        cols.append("official_split")
    for row in table[cols].itertuples(index=False):
        digest.update(("\t".join(repr(v) if isinstance(v, float) else str(v) for v in row)
                       + "\n").encode())
    return digest.hexdigest()[:16]


def finalise(info: DatasetInfo, root: Path, table: pd.DataFrame) -> LoadedDataset:
    """Check a loader's table against the disk and return the ``LoadedDataset``.

    Images listed but absent are removed from the table and listed in ``missing``; the table's
    index is reset so row ``i`` is image ``i`` everywhere downstream (features, splits). The
    version hashes the present rows, so a dataset with missing images gets another version.
    """
    check_table(table, f"{info.name} at {root}")
    present = np.array([os.path.isfile(p) for p in table["image"]], dtype=bool)
    missing = tuple(table.loc[~present, "name"].tolist())
    kept = table.loc[present].reset_index(drop=True)
    if len(kept) == 0:
        raise DatasetError(
            f"{info.name} at {root}: none of the {len(table)} listed images exists "
            f"(first expected: {table['image'].iloc[0]})"
        )
    kept.attrs["n_missing"] = len(missing)
    kept.attrs["dataset"] = info.name
    return LoadedDataset(
        info=info, root=root.resolve(), table=kept, missing=missing,
        version=table_version(info, kept),
    )


def to_higher_is_better(scores: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Scores in "higher = better" orientation (DECISIONS 16).

    DMOS datasets are mirrored inside their range (``lo + hi - s``); MOS datasets are returned
    unchanged. Callers must record that a flip happened (``info.lower_is_better``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not info.lower_is_better:
        return scores
    lo, hi = info.score_range
    return (lo + hi) - scores


COLLECTION_COLUMNS: tuple[str, ...] = ("dis_img_path", "ref_img_path", "score")


def read_collection_list(path: Path) -> pd.DataFrame:
    """Read a collection list (``LIVE.txt``, ``CSIQ.txt``; METHOD.md §7.1).

    CSV with ``dis_img_path``, ``ref_img_path``, ``score`` and optionally ``dis_type``; paths
    start with the dataset folder, which is stripped (``strip_first_component``). Returns the
    frame with ``dis_rel``/``ref_rel`` (relative paths) and a float ``score`` column.
    """
    frame = read_csv_checked(path, COLLECTION_COLUMNS)
    frame["score"] = parse_scores(frame["score"], path, "score")
    try:
        frame["dis_rel"] = [strip_first_component(str(p)) for p in frame["dis_img_path"]]
        frame["ref_rel"] = [strip_first_component(str(p)) for p in frame["ref_img_path"]]
    except DatasetError as exc:
        raise DatasetError(f"malformed annotation file {path}: {exc}") from exc
    return frame


def read_mat_variable(path: Path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB file, flattened; ``DatasetError`` names file and key."""
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path))
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        msg = f"malformed annotation file {path}: cannot read MATLAB file ({exc})"
        raise DatasetError(msg) from exc
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DatasetError(f"malformed annotation file {path}: no variable {key!r} (found {found})")
    return np.asarray(content[key]).ravel()


def mat_cell_string(cell: object) -> str:
    """The string inside one MATLAB cell as scipy loads it (nested one-element arrays)."""
    value = cell
    while isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        value = value.ravel()[0]
    return str(value).strip()
