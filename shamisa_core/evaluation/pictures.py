"""Pictures of an evaluation (PNG): what a model does, beside the numbers.

* ``per_type_srcc.png``: per distortion type, SRCC bars of the trained encoder and its twins
  (the synthetic datasets' ``per_type`` medians, METHOD.md §7.6);
* ``scatter_<dataset>.png``: predicted against true score on the test images of split 0
  (higher = better, DECISIONS 16);
* ``tsne_<dataset>.png``: a 2-D t-SNE embedding (scikit-learn) of the trained encoder's
  benchmark features (mean over crops), coloured by distortion type and by score.

The training diagnostics over steps are ``training.report.diagnostics_png``.
Everything is drawn with matplotlib's Agg backend and written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shamisa_core.atomic import atomic_write_bytes

from .report import dataset_names, label, section, twin_roles

MAX_TSNE_POINTS = 1500


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def per_type_bars(result: Mapping[str, Any], path: Path) -> Path | None:
    """SRCC per distortion type, trained vs twins (None when no dataset has types)."""
    names = [n for n in dataset_names(result) if result[n].get("per_type")]
    if not names:
        return None
    plt = _plt()
    roles = ["trained", *twin_roles(result)]
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6, 0.45 * max(
        len(result[n]["per_type"]) for n in names) + 2), 3.2 * len(names)), squeeze=False)
    width = 0.8 / len(roles)
    for ax, name in zip(axes[:, 0], names):
        types = sorted(result[name]["per_type"])
        x = np.arange(len(types))
        for k, role in enumerate(roles):
            per_type = (section(result, role).get(name) or {}).get("per_type") or {}
            values = [per_type.get(t, {}).get("srcc") for t in types]
            ax.bar(x + k * width, [np.nan if v is None else v for v in values], width,
                   label=label(result, role))
        ax.set_xticks(x + width * (len(roles) - 1) / 2, types, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("median SRCC")
        ax.set_title(f"{name}: SRCC per distortion type")
        ax.axhline(0, color="black", lw=0.5)
        ax.legend(fontsize=7)
    return _save(fig, path)


def scatter(result: Mapping[str, Any], name: str, path: Path) -> Path | None:
    """Predicted vs true score on split 0's test images (None without recorded points)."""
    points = result[name].get("test_points") or {}
    if not points.get("prediction"):
        return None
    plt = _plt()
    pred, true = np.asarray(points["prediction"], float), np.asarray(points["label"], float)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.scatter(true, pred, s=8, alpha=0.6)
    lo, hi = np.nanmin([true.min(), pred.min()]), np.nanmax([true.max(), pred.max()])
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("true score (higher = better)")
    ax.set_ylabel("predicted score")
    srcc = result[name].get("srcc")
    ax.set_title(f"{name}: split 0 test images" + (f" (median SRCC {srcc:.3f})" if srcc is not None else ""))
    return _save(fig, path)


def tsne(features: np.ndarray, types: np.ndarray, scores: np.ndarray, title: str, path: Path,
         seed: int = 0) -> Path:
    """t-SNE of per-image features (mean over crops), coloured by type and by score.

    The embedding runs on one thread: scikit-learn's Barnes-Hut gradient sums in OpenMP threads,
    so the layout would depend on the core count, and on a busy 2-core machine the threads made
    it ~20x slower (7 s against 0.35 s)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    plt = _plt()
    x = np.asarray(features, float)
    x = x.mean(axis=1) if x.ndim == 3 else x
    keep = np.flatnonzero(np.isfinite(x).all(axis=1))
    if keep.size > MAX_TSNE_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(keep, MAX_TSNE_POINTS, replace=False))
    x, types, scores = x[keep], np.asarray(types)[keep], np.asarray(scores, float)[keep]
    perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
    with threadpool_limits(limits=1):
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca",
                   random_state=seed).fit_transform(x)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    kinds = sorted(set(types.tolist()))
    cmap = plt.get_cmap("tab20", max(len(kinds), 1))
    for i, kind in enumerate(kinds):
        m = types == kind
        axes[0].scatter(emb[m, 0], emb[m, 1], s=6, color=cmap(i), label=str(kind))
    if len(kinds) <= 30:
        axes[0].legend(fontsize=5, ncol=2, markerscale=2)
    axes[0].set_title(f"{title}: by distortion type")
    sc = axes[1].scatter(emb[:, 0], emb[:, 1], s=6, c=scores, cmap="viridis")
    fig.colorbar(sc, ax=axes[1], label="score (higher = better)")
    axes[1].set_title(f"{title}: by score")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def make_pictures(result: Mapping[str, Any], out_dir: str | Path,
                  tables: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Every picture of a result in ``out_dir``: ``{name: png}``. ``tables`` maps dataset
    names to their tables (``distortion_type``, ``score``) for the t-SNE of the trained
    encoder's cached features."""
    out = Path(out_dir)
    pictures: dict[str, Path] = {}
    bars = per_type_bars(result, out / "per_type_srcc.png")
    if bars is not None:
        pictures["per_type_srcc"] = bars
    for name in dataset_names(result):
        sc = scatter(result, name, out / f"scatter_{name}.png")
        if sc is not None:
            pictures[f"scatter_{name}"] = sc
        feats_path = (result[name].get("features") or {}).get("path")
        table = (tables or {}).get(name)
        if table is not None and feats_path and Path(feats_path).is_file():
            feats = np.load(feats_path, allow_pickle=False)
            if len(feats) == len(table) and len(table) >= 8:
                scores = table["score"].to_numpy(float)
                if result[name].get("lower_is_better"):
                    scores = -scores  # colour higher = better (DECISIONS 16)
                pictures[f"tsne_{name}"] = tsne(feats, table["distortion_type"].astype(str).to_numpy(),
                                                scores, name, out / f"tsne_{name}.png")
    return pictures


def tables_from_meta(result: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset tables of a result, reloaded from the roots its ``meta`` records (the
    annotation rows only; datasets that cannot be reloaded are left out)."""
    from .prepared import load_named_dataset

    out = {}
    for name, info in ((result.get("meta") or {}).get("datasets") or {}).items():
        try:
            ds = load_named_dataset(name, info.get("root"), proxy_base=info.get("root") or ".",
                                    build=False)
        except (OSError, ValueError, KeyError):
            continue
        if ds.version == info.get("version"):
            out[name] = ds.table
    return out


def markdown_images(pictures: Mapping[str, Path]) -> str:
    """The pictures inlined as markdown (base64 PNG), for Dagster metadata."""
    import base64

    return "\n\n".join(f"**{name}**\n\n![{name}](data:image/png;base64,"
                       f"{base64.b64encode(Path(p).read_bytes()).decode()})"
                       for name, p in pictures.items()) or "none"
