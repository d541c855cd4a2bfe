"""Evaluation of frozen encoders on IQA benchmarks (METHOD.md §7, DECISIONS 13-16).

Modules: ``datasets`` (loaders, one table schema), ``splits`` (versioned split files),
``features`` (5 crops x 2 scales extraction), ``cache`` (content-addressed feature cache),
``ridge`` (all-alpha ridge and alpha search), ``metrics``, ``results`` and ``protocol``
(standard, cross-dataset and full-reference protocols), ``regressor`` (the quality head),
``roots`` / ``prepared`` / ``encoders`` / ``stages`` / ``staged_run`` / ``report`` /
``pictures`` (the evaluation of an encoder, see ``stages``), ``mlflow_eval`` (logging).

Typical use::

    ds = load_dataset("kadid10k", root)
    splits = splits_for(ds)
    feats = features.extract_features(ds.table["image"], encoder, FeatureConfig()).features
    result = evaluate_standard(feats, ds.table, ds.info, splits)
    print(result.to_json())
"""

from typing import Any

# Names are imported lazily (PEP 562): `shamisa evaluate --help` and the dataset-name parsing
# must not pay for scipy, pyarrow or torch.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("LOADERS", "DatasetError", "DatasetInfo", "LoadedDataset", "dataset_info",
                     "load_dataset", "to_higher_is_better"), "datasets"),
    **dict.fromkeys(("Metrics", "compute_metrics", "krcc", "plcc", "rmse", "srcc"), "metrics"),
    **dict.fromkeys(("CrossResult", "StandardResult", "aggregate", "evaluate_cross",
                     "evaluate_fr", "evaluate_standard", "fr_features", "map_to_target"),
                    "protocol"),
    **dict.fromkeys(("DEFAULT_ALPHAS", "fit_ridge_path", "search_alpha"), "ridge"),
    **dict.fromkeys(("SplitConfig", "SplitError", "Splits", "make_splits", "read_splits",
                     "splits_for", "validate_splits", "write_splits"), "splits"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
