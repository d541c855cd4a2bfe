"""Evaluation of frozen encoders on IQA benchmarks (METHOD.md §7, DECISIONS 13-16).

Modules: ``datasets`` (loaders, one table schema), ``splits`` (versioned split files),
``features`` (5 crops x 2 scales extraction and cache; imports torch, so it is not imported
here), ``ridge`` (all-alpha ridge and alpha search), ``metrics`` and ``protocol`` (standard,
cross-dataset and full-reference protocols).

Typical use::

    ds = load_dataset("kadid10k", root)
    splits = splits_for(ds)
    feats = features.extract_features(ds.table["image"], encoder, FeatureConfig()).features
    result = evaluate_standard(feats, ds.table, ds.info, splits)
    print(result.to_json())
"""

from .datasets import (
    LOADERS,
    DatasetError,
    DatasetInfo,
    LoadedDataset,
    dataset_info,
    load_dataset,
    to_higher_is_better,
)
from .metrics import Metrics, compute_metrics, krcc, plcc, rmse, srcc
from .protocol import (
    CrossResult,
    StandardResult,
    aggregate,
    evaluate_cross,
    evaluate_fr,
    evaluate_standard,
    fr_features,
    map_to_target,
)
from .ridge import DEFAULT_ALPHAS, fit_ridge_path, search_alpha
from .splits import (
    SplitConfig,
    SplitError,
    Splits,
    make_splits,
    read_splits,
    splits_for,
    validate_splits,
    write_splits,
)

__all__ = [
    "DEFAULT_ALPHAS",
    "LOADERS",
    "CrossResult",
    "DatasetError",
    "DatasetInfo",
    "LoadedDataset",
    "Metrics",
    "SplitConfig",
    "SplitError",
    "Splits",
    "StandardResult",
    "aggregate",
    "compute_metrics",
    "dataset_info",
    "evaluate_cross",
    "evaluate_fr",
    "evaluate_standard",
    "fit_ridge_path",
    "fr_features",
    "krcc",
    "load_dataset",
    "make_splits",
    "map_to_target",
    "plcc",
    "read_splits",
    "rmse",
    "search_alpha",
    "splits_for",
    "srcc",
    "to_higher_is_better",
    "validate_splits",
    "write_splits",
]
