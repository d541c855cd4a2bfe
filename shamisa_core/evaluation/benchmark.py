"""Benchmark an encoder: one import for the evaluation protocol of METHOD.md §7.

The work is split by concern; this module re-exports the public names so that
``from shamisa_core.evaluation import benchmark as bm; bm.evaluate_encoder(...)`` keeps
working:

* ``roots.py``      configured dataset roots (``scan_dataset_roots``, ``benchmark_roots``);
* ``prepared.py``   loaded datasets with versioned splits, the proxy benchmark;
* ``encoders.py``   the trained encoder and its init / random twins;
* ``cache.py``      features with content-addressed cache keys;
* ``stages.py``     the protocol stages and ``evaluate_encoder``;
* ``staged_run.py`` the same stages over a run folder (the Dagster assets);
* ``report.py``     summary / cross tables, markdown, the printed table.
"""

from __future__ import annotations

from shamisa_core.atomic import atomic_write_json as write_json_atomic
from shamisa_core.atomic import atomic_write_text as write_text_atomic

from .cache import DEFAULT_FEATURE_BATCH, FeatureSet, encode_dataset
from .encoders import (
    INIT_TWIN,
    RANDOM_TWIN,
    EncoderHandle,
    init_twin,
    load_trained,
    make_twins,
    random_twin,
    training_seed,
    untrained_twin,
)
from .prepared import (
    DEFAULT_PROXY_SPEC,
    PROXY_INFO,
    PreparedDataset,
    dataset_work_dir,
    ensure_proxy,
    load_named_dataset,
    load_proxy,
    prepare_dataset,
    proxy_dir,
    proxy_spec_id,
    proxy_spec_of,
    proxy_spec_with,
)
from .report import (
    RESERVED_KEYS,
    cross_frame,
    cross_markdown,
    cross_matrix,
    dataset_names,
    format_table,
    markdown_table,
    mean_srcc,
    summary_frame,
)
from .roots import DATASET_NAMES, PROXY, DatasetRoot, RootsScan, benchmark_roots, scan_dataset_roots
from .stages import (
    REGRESSOR_PREFERENCE,
    SCHEMA,
    assemble_result,
    evaluate_encoder,
    evaluation_meta,
    final_regressor,
    fr_section,
    primary_dataset,
    regressor_path,
    run_cross,
    run_fr,
    run_standard,
    standard_entry,
    standard_section,
)

__all__ = [
    "DATASET_NAMES", "DEFAULT_FEATURE_BATCH", "DEFAULT_PROXY_SPEC", "INIT_TWIN", "PROXY",
    "PROXY_INFO", "RANDOM_TWIN", "REGRESSOR_PREFERENCE", "RESERVED_KEYS", "SCHEMA",
    "DatasetRoot", "EncoderHandle", "FeatureSet", "PreparedDataset", "RootsScan",
    "assemble_result", "benchmark_roots", "cross_frame", "cross_markdown", "cross_matrix",
    "dataset_names", "dataset_work_dir", "encode_dataset", "ensure_proxy", "evaluate_encoder",
    "evaluation_meta", "final_regressor", "format_table", "fr_section", "init_twin",
    "load_named_dataset", "load_proxy", "load_trained", "make_twins", "markdown_table",
    "mean_srcc", "prepare_dataset", "primary_dataset", "proxy_dir", "proxy_spec_id",
    "proxy_spec_of", "proxy_spec_with", "random_twin", "regressor_path", "run_cross", "run_fr",
    "run_standard", "scan_dataset_roots", "standard_entry", "standard_section", "summary_frame",
    "training_seed", "untrained_twin", "write_json_atomic", "write_text_atomic",
]
