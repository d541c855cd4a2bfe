"""IQA benchmark loaders: one module per dataset, all returning the same table (METHOD.md §7.1).

``load_dataset(name, root)`` reads a benchmark's official annotation files, checks that the
listed images exist and returns a ``LoadedDataset`` (table of present images, the list of
missing ones, a content version). ``LOADERS`` maps the dataset names to their loaders.
"""

from __future__ import annotations

from pathlib import Path

from . import clive, csiq, flive, kadid10k, koniq10k, live, spaq, tid2013
from .base import (
    OPTIONAL_COLUMNS,
    TABLE_COLUMNS,
    UNKNOWN_LEVEL,
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    LoadedDataset,
    finalise,
    table_version,
    to_higher_is_better,
)

LOADERS: dict[str, DatasetLoader] = {
    module.LOADER.info.name: module.LOADER
    for module in (live, csiq, tid2013, kadid10k, koniq10k, clive, spaq, flive)
}
SYNTHETIC: tuple[str, ...] = tuple(n for n, ld in LOADERS.items() if ld.info.kind == "synthetic")
AUTHENTIC: tuple[str, ...] = tuple(n for n, ld in LOADERS.items() if ld.info.kind == "authentic")


def dataset_info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of a registered benchmark (``KeyError`` lists the known names)."""
    try:
        return LOADERS[name].info
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(LOADERS)}") from None


def load_dataset(name: str, root: str | Path) -> LoadedDataset:
    """Read and validate benchmark ``name`` stored under ``root`` (METHOD.md §7.1).

    Raises ``DatasetError`` (a ``ValueError``) naming the file when an annotation file is
    missing or malformed. Listed images absent on disk are counted in ``n_missing`` and listed
    in ``missing``; the returned table holds only the present ones.
    """
    loader = LOADERS.get(name)
    if loader is None:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(LOADERS)}")
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise DatasetError(
            f"dataset folder {root_path} does not exist: expected {loader.info.layout}"
        )
    return finalise(loader.info, root_path, loader.read(root_path))


__all__ = [
    "AUTHENTIC",
    "LOADERS",
    "OPTIONAL_COLUMNS",
    "SYNTHETIC",
    "TABLE_COLUMNS",
    "UNKNOWN_LEVEL",
    "DatasetError",
    "DatasetInfo",
    "DatasetLoader",
    "LoadedDataset",
    "dataset_info",
    "load_dataset",
    "table_version",
    "to_higher_is_better",
]
