"""The evaluation protocol as stage functions (METHOD.md §7), shared by the CLI and Dagster.

    result = evaluate_encoder("outputs/models/latest/encoder.pt", {"proxy": None,
                              "kadid10k": "/data/KADID10K"}, cross=True, fr=False,
                              cache_dir="outputs/evaluation")

Stages, each a plain function on prepared datasets and feature sets:

1. ``prepare_dataset`` (``prepared.py``): load, validate, versioned splits (§7.1-7.2);
2. ``encode_dataset`` (``cache.py``): 5 crops x 2 scales features, content-addressed cache;
3. :func:`standard_section`: alpha by median val SRCC, medians over splits, final regressor
   on all data (§7.4-7.6, DECISIONS 13);
4. :func:`run_cross`: the cross-dataset protocol (§7.7) on every ordered pair of distinct sets;
5. :func:`fr_section`: the full-reference protocol (§7.8);
6. :func:`assemble_result`: the ``SCHEMA`` dict the report tables and MLflow read.

``shamisa evaluate`` runs them in memory (:func:`evaluate_encoder`); the Dagster assets run
them one asset each through ``staged_run.py``. Every stage runs for the trained encoder and
its twins (``encoders.make_twins``).

Result schema (``SCHEMA``): one entry per dataset name with ``srcc``, ``plcc``,
``srcc_splits``, ``plcc_splits``, ``alpha``, ``n_images``, ``n_missing`` (and the rest of
``StandardResult.to_json``); ``"cross"`` -> ``{source: {target: entry}}`` (source != target);
``"fr"`` -> ``{dataset: entry}``; ``"twins"`` -> ``{role: the same keys}``; ``"meta"`` -> the
encoders (with labels), crop size, seeds, dataset versions and timings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cache import DEFAULT_FEATURE_BATCH, FeatureSet, encode_dataset
from .encoders import TRAINED, EncoderHandle, load_trained, make_twins, training_seed
from .prepared import PreparedDataset, prepare_dataset, proxy_spec_of
from .protocol import CrossResult, StandardResult, evaluate_cross, evaluate_fr, evaluate_standard
from .proxy import ProxySpec
from .regressor import Regressor, fit_regressor
from .report import TWINS_KEY, fmt
from .ridge import DEFAULT_ALPHAS
from .roots import DATASET_NAMES, PROXY
from .splits import SplitConfig

SCHEMA = "shamisa-evaluation/2"
# Which dataset's final regressor goes into the registered model (first one evaluated wins):
# in-the-wild sets first (the model scores arbitrary photos), the pseudo-MOS proxy last.
REGRESSOR_PREFERENCE: tuple[str, ...] = ("koniq10k", "spaq", "flive", "clive", "kadid10k",
                                         "tid2013", "csiq", "live", PROXY)

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def primary_dataset(names: Sequence[str]) -> str:
    """The dataset whose regressor goes into the registered model (``REGRESSOR_PREFERENCE``)."""
    for name in REGRESSOR_PREFERENCE:
        if name in names:
            return name
    if not names:
        raise ValueError("no dataset evaluated")
    return sorted(names)[0]


# ----------------------------------------------------------------------------------------------
# One dataset, one encoder


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


def regressor_path(prepared: PreparedDataset, features: FeatureSet) -> Path:
    """Where the final regressor on a dataset's features is written (keyed by the features'
    content key, so it is never reused for other images, encoder or crop)."""
    return prepared.work_dir / "regressors" / f"{features.key}.npz"


def final_regressor(prepared: PreparedDataset, features: FeatureSet, alpha: float,
                    encoder_fingerprint_: str) -> Regressor:
    """The regressor on all images at the chosen alpha (§7.4 "fitted only for saving")."""
    return fit_regressor(
        features.features, prepared.table["score"].to_numpy(np.float64), alpha,
        crop_size=features.crop_size, lower_is_better=prepared.info.lower_is_better,
        score_range=prepared.info.score_range, datasets=(prepared.name,),
        extra={"dataset_version": prepared.version, "encoder_fingerprint": encoder_fingerprint_,
               "splits_version": prepared.splits.version, "features_key": features.key})


# ----------------------------------------------------------------------------------------------
# Stages over every dataset, for one encoder


def encode_all(prepared: Mapping[str, PreparedDataset], encoder: EncoderHandle, crop: int, *,
               batch_size: int = DEFAULT_FEATURE_BATCH, device: str = "cpu",
               compute: bool = True, log: Log = _quiet) -> dict[str, FeatureSet | None]:
    """``encode_dataset`` of every dataset for one encoder (``compute=False``: None if absent)."""
    return {name: encode_dataset(prep, encoder, crop, batch_size=batch_size, device=device,
                                 compute=compute, log=log)
            for name, prep in prepared.items()}


def standard_section(prepared: Mapping[str, PreparedDataset], features: Mapping[str, FeatureSet],
                     encoder: EncoderHandle, alphas: Sequence[float] = DEFAULT_ALPHAS, *,
                     regressors: bool | None = None, log: Log = _quiet) -> dict[str, Any]:
    """``{dataset: entry}`` of the standard protocol for one encoder (§7.4-7.6).

    With ``regressors`` (default: for the trained encoder) the final regressor on all data at
    the chosen alpha is written beside the dataset's features and its path recorded.
    """
    fit_final = encoder.role == TRAINED if regressors is None else regressors
    out: dict[str, Any] = {}
    for name, prep in prepared.items():
        fs = features[name]
        res = run_standard(prep, fs, alphas)
        out[name] = standard_entry(res, prep, fs)
        if fit_final and res.predictions is not None:  # split 0's test images, for the scatter
            first = res.predictions[res.predictions["split"] == res.predictions["split"].min()]
            out[name]["test_points"] = {"prediction": first["prediction"].astype(float).tolist(),
                                        "label": first["label"].astype(float).tolist()}
        if fit_final:
            reg = final_regressor(prep, fs, res.alpha, encoder.fingerprint)
            path = reg.save(regressor_path(prep, fs))
            out[name]["regressor"] = str(path)
            out[name]["regressor_sha256"] = reg.digest()
        failed = f", {fs.n_failed} failed" if fs.n_failed else ""
        log(f"[{encoder.label or encoder.role}] {name}: SRCC {fmt(res.srcc)} PLCC {fmt(res.plcc)} "
            f"alpha {res.alpha:.4g} ({'cached' if fs.cache_hit else f'{fs.seconds:.1f}s'} "
            f"features{failed})")
    return out


def run_cross(prepared: Mapping[str, PreparedDataset], features: Mapping[str, FeatureSet],
              source_alphas: Mapping[str, float], *, log: Log = _quiet,
              ) -> dict[str, dict[str, dict[str, Any]]]:
    """Cross-dataset protocol (§7.7) for every ordered pair of distinct datasets.

    Returns ``{source: {target: entry}}`` (no ``source == target`` entry: the report shows
    the standard protocol's value there). The alpha of a source is the one its own standard
    search chose, passed in ``source_alphas``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for src, sp in prepared.items():
        out[src] = {}
        for tgt, tp in prepared.items():
            if tgt == src:
                continue
            res: CrossResult = evaluate_cross(
                features[src].features, sp.table, sp.info, sp.splits,
                features[tgt].features, tp.table, tp.info,
                alpha=source_alphas[src], tgt_n_missing=tp.dataset.n_missing)
            entry = res.to_json()
            entry["alpha_source"] = "source_standard_search"
            out[src][tgt] = entry
            log(f"cross {src} -> {tgt}: SRCC {fmt(res.srcc)} PLCC {fmt(res.plcc)}")
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
                             device=device, log=log)
        assert ref is not None
        res = run_fr(prep, features[name], ref, alphas)
        out[name] = standard_entry(res, prep, ref)
        log(f"[{encoder.role}] fr {name}: SRCC {fmt(res.srcc)} PLCC {fmt(res.plcc)}")
    return out


def evaluation_meta(trained: EncoderHandle, twins: Sequence[EncoderHandle], crop: int, seed: int,
                    prepared: Mapping[str, PreparedDataset], *, fr: bool = False,
                    alphas: Sequence[float] = DEFAULT_ALPHAS) -> dict[str, Any]:
    """The ``meta`` block of a result: encoders, crop size, seeds, datasets, proxy spec."""
    return {
        "schema": SCHEMA,
        "encoder": trained.to_json(),
        TWINS_KEY: {t.role: t.to_json() for t in twins},
        "crop_size": crop,
        "seed": seed,
        "datasets": {n: p.to_json() for n, p in prepared.items()},
        "primary_dataset": primary_dataset(list(prepared)),
        "proxy_spec": proxy_spec_of(prepared[PROXY].dataset.root) if PROXY in prepared else None,
        "alphas": {"count": len(alphas), "min": float(min(alphas)), "max": float(max(alphas))},
        "fr_features": "abs(h_ref - h_dist), both scales" if fr else None,
    }


def assemble_result(trained: Mapping[str, Any], twins: Mapping[str, Mapping[str, Any]],
                    meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SCHEMA`` dict: dataset entries (+ cross, fr), ``twins`` and ``meta``."""
    result: dict[str, Any] = dict(trained)
    if twins:
        result[TWINS_KEY] = {role: dict(sec) for role, sec in twins.items()}
    result["meta"] = dict(meta)
    return result


# ----------------------------------------------------------------------------------------------
# The whole protocol in memory (``shamisa evaluate``)


def evaluate_encoder(encoder: str | os.PathLike, datasets: Mapping[str, str | os.PathLike | None],
                     *, cross: bool = False, fr: bool = False, twins: bool = True,
                     cache_dir: str | os.PathLike, crop_size: int | None = None, seed: int = 27,
                     proxy_spec: ProxySpec | None = None, proxy_base: str | os.PathLike | None = None,
                     tracking_uri: str | None = None, batch_size: int = DEFAULT_FEATURE_BATCH,
                     device: str = "cpu", alphas: Sequence[float] = DEFAULT_ALPHAS,
                     log: Log = _quiet, baseline: bool | None = None) -> dict[str, Any]:
    """Evaluate an encoder (and its twins) on ``datasets`` (METHOD.md §7).

    ``datasets`` maps a name of ``DATASET_NAMES`` to its root (``proxy``: None, ``"default"``
    or a folder). ``crop_size`` defaults to the encoder's training patch size. ``seed`` seeds
    the splits (27 + split index, DECISIONS 14) and, when ``encoder.pt`` does not record its
    training seed, the twins. ``baseline`` is the old name of ``twins``. Returns the
    ``SCHEMA`` dict; the trained encoder's final regressors are written and their paths given.
    """
    if baseline is not None:
        twins = baseline
    t0 = time.perf_counter()
    cache = Path(cache_dir)
    unknown = [n for n in datasets if n not in DATASET_NAMES]
    if unknown:
        raise KeyError(f"unknown dataset(s) {unknown}; known: {', '.join(DATASET_NAMES)}")
    if not datasets:
        raise ValueError("no dataset to evaluate on")
    split_config = SplitConfig(seed=seed)
    timings: dict[str, float] = {}

    trained = load_trained(encoder, download_dir=cache / "downloads", tracking_uri=tracking_uri,
                           device=device)
    crop = int(crop_size or trained.patch_size or 224)
    twin_list = make_twins(trained, training_seed(trained.meta, seed), device) if twins else []

    prepared: dict[str, PreparedDataset] = {}
    for name, root in datasets.items():
        start = time.perf_counter()
        prepared[name] = prepare_dataset(name, root, cache, proxy_base=proxy_base,
                                         proxy_spec=proxy_spec, split_config=split_config)
        timings[f"prepare/{name}"] = time.perf_counter() - start
        log(f"{name}: {prepared[name].dataset.n_images} images, "
            f"{prepared[name].dataset.n_missing} missing, version {prepared[name].version}")

    sections: dict[str, dict[str, Any]] = {}
    for enc in [trained, *twin_list]:
        feats = encode_all(prepared, enc, crop, batch_size=batch_size, device=device, log=log)
        for name, fs in feats.items():
            assert fs is not None
            timings[f"features/{enc.role}/{name}"] = fs.seconds
        start = time.perf_counter()
        sec = standard_section(prepared, feats, enc, alphas, log=log)  # type: ignore[arg-type]
        timings[f"standard/{enc.role}"] = time.perf_counter() - start
        if cross and len(prepared) > 1:
            start = time.perf_counter()
            sec["cross"] = run_cross(prepared, feats, {n: sec[n]["alpha"] for n in prepared},  # type: ignore[arg-type]
                                     log=lambda m, r=enc.role: log(f"[{r}] {m}"))
            timings[f"cross/{enc.role}"] = time.perf_counter() - start
        if fr:
            sec["fr"] = fr_section(prepared, feats, enc, crop, alphas, batch_size=batch_size,  # type: ignore[arg-type]
                                   device=device, log=log)
        sections[enc.role] = sec

    meta = evaluation_meta(trained, twin_list, crop, seed, prepared, fr=fr, alphas=alphas)
    meta["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    meta["total_seconds"] = round(time.perf_counter() - t0, 3)
    return assemble_result(sections[TRAINED], {t.role: sections[t.role] for t in twin_list}, meta)
