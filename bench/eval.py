"""Benchmark: the all-alpha ridge search (DECISIONS 13) vs one scikit-learn fit per alpha.

KADID-sized random problem: 10,125 images x 5 crops x 1,024-d features, random scores,
reference-disjoint splits over 81 references (10 splits, 70/10/20), 100 alphas in [1e-3, 1e3].

* ours: ``ridge.search_alpha`` over all splits and alphas (fit, val + test predictions, val
  SRCC, median, argmax) - the complete search.
* sklearn: ``Ridge(alpha).fit`` on the same crop-level train set, then val + test predictions
  and val SRCC, for a subset of alphas (``--sklearn-alphas``, spread over the grid) on every
  split; its time is extrapolated linearly to all 100 alphas (reported in the JSON).

Prints one JSON object. Uses at most 2 BLAS/OpenMP threads.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from shamisa_core.evaluation.datasets import LOADERS  # noqa: E402
from shamisa_core.evaluation.metrics import srcc_columns  # noqa: E402
from shamisa_core.evaluation.ridge import DEFAULT_ALPHAS, search_alpha  # noqa: E402
from shamisa_core.evaluation.splits import SplitConfig, make_splits  # noqa: E402


def make_problem(n_refs: int, per_ref: int, n_crops: int, dim: int, seed: int,
                 ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Random features and scores with a KADID-like reference structure."""
    rng = np.random.default_rng(seed)
    n = n_refs * per_ref
    features = rng.standard_normal(size=(n, n_crops, dim))
    scores = rng.uniform(1.0, 5.0, size=n)
    refs = np.repeat([f"I{r + 1:02d}" for r in range(n_refs)], per_ref)
    names = [f"images/{r}_{i:03d}.png" for i, r in enumerate(refs)]
    table = pd.DataFrame({"name": names, "reference": refs, "score": scores})
    return features, scores, table


def sklearn_search(features: np.ndarray, scores: np.ndarray, splits: list[dict[str, np.ndarray]],
                   alphas: np.ndarray) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """The same search with one sklearn fit per (split, alpha); returns the predictions."""
    n_crops, dim = features.shape[1], features.shape[2]
    out: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for s, split in enumerate(splits):
        x = features[split["train"]].reshape(-1, dim)
        y = np.repeat(scores[split["train"]], n_crops)
        for j, alpha in enumerate(alphas):
            model = Ridge(alpha=float(alpha), fit_intercept=True).fit(x, y)
            preds = {}
            for role in ("val", "test"):
                flat = features[split[role]].reshape(-1, dim)
                preds[role] = model.predict(flat).reshape(-1, n_crops).mean(axis=1)
            srcc_columns(preds["val"][:, None], scores[split["val"]])
            out[(s, j)] = preds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=81)
    parser.add_argument("--per-ref", type=int, default=125)
    parser.add_argument("--crops", type=int, default=5)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--sklearn-alphas", type=int, default=5,
                        help="alphas (spread over the grid) timed with sklearn, then extrapolated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    features, scores, table = make_problem(args.refs, args.per_ref, args.crops, args.dim,
                                           args.seed)
    splits = make_splits(table, LOADERS["kadid10k"].info,
                         config=SplitConfig(n_splits=args.splits)).as_index_list()
    alphas = np.asarray(DEFAULT_ALPHAS)
    subset = np.unique(np.linspace(0, alphas.size - 1, args.sklearn_alphas).round().astype(int))

    with threadpool_limits(limits=2):
        start = time.perf_counter()
        choice, fits = search_alpha(features, scores, splits, alphas)
        ours_s = time.perf_counter() - start

        start = time.perf_counter()
        reference = sklearn_search(features, scores, splits, alphas[subset])
        sklearn_timed_s = time.perf_counter() - start

    max_diff = 0.0
    for (s, j), preds in reference.items():
        for role in ("val", "test"):
            ours = fits[s].predictions[role][:, subset[j]]
            max_diff = max(max_diff, float(np.max(np.abs(ours - preds[role]))))
    sklearn_s = sklearn_timed_s * alphas.size / subset.size
    result = {
        "n_images": int(features.shape[0]),
        "n_crops": int(features.shape[1]),
        "dim": int(features.shape[2]),
        "n_refs": args.refs,
        "n_splits": len(splits),
        "n_alphas": int(alphas.size),
        "ours_s": round(ours_s, 3),
        "sklearn_s": round(sklearn_s, 3),
        "sklearn_alphas_timed": int(subset.size),
        "sklearn_timed_s": round(sklearn_timed_s, 3),
        "sklearn_extrapolated": bool(subset.size < alphas.size),
        "speedup": round(sklearn_s / ours_s, 2),
        "max_abs_diff": max_diff,
        "chosen_alpha": choice.alpha,
        "threads": 2,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, no GPU used",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
