"""Ridge regression for every alpha at once, and the alpha search (METHOD.md §7.4, DECISIONS 13).

The regressor is ``sklearn.linear_model.Ridge(alpha, fit_intercept=True)`` fitted on crop-level
features of a split's train images; its prediction for an image is the mean of its crops'
predictions. Here one eigendecomposition per split gives the solution for every alpha:

* centre the train features ``X`` and labels ``y`` (this is exactly how scikit-learn handles the
  intercept: ``w`` solves ``(Xc^T Xc + alpha I) w = Xc^T yc`` and ``b = mean(y) - mean(X) w``);
* if ``n >= d`` decompose ``Xc^T Xc = V diag(lam) V^T`` and ``w(alpha) = V diag(1/(lam+alpha))
  V^T Xc^T yc``; if ``n < d`` decompose ``Xc Xc^T = U diag(lam) U^T`` and ``w(alpha) = Xc^T U
  diag(1/(lam+alpha)) U^T yc``. Both are ``w(alpha) = M diag(1/(lam+alpha)) c``;
* predictions of all alphas are ``(X' - mean(X)) M  @  (c / (lam + alpha))  + mean(y)``.

Because the model is linear, the mean of an image's crop predictions equals the prediction of
its mean crop feature, which is what ``predict_images`` uses.

The alpha is chosen by the median over splits of the validation SRCC, argmax over the grid
(first maximum on ties), DECISIONS 13: 100 values log-spaced in [1e-3, 1e3].
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from .metrics import srcc_columns

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 3, 100))
ROLES: tuple[str, ...] = ("train", "val", "test")


def alpha_grid(low: float = 1e-3, high: float = 1e3, count: int = 100) -> tuple[float, ...]:
    """``count`` values log-spaced in [low, high] (DECISIONS 13 default: 1e-3, 1e3, 100)."""
    return tuple(float(a) for a in np.logspace(np.log10(low), np.log10(high), count))


@dataclass(frozen=True, eq=False)
class RidgePath:
    """A ridge fit for every alpha: ``w(alpha) = basis @ (coords / (eigenvalues + alpha))``."""

    x_mean: np.ndarray
    y_mean: float
    basis: np.ndarray
    eigenvalues: np.ndarray
    coords: np.ndarray

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.x_mean.shape[0])

    def shrink(self, alphas: Sequence[float] | np.ndarray) -> np.ndarray:
        """``coords / (eigenvalues + alpha)`` for each alpha: (rank, n_alphas)."""
        a = np.asarray(alphas, dtype=np.float64).ravel()
        return self.coords[:, None] / (self.eigenvalues[:, None] + a[None, :])

    def coef(self, alphas: Sequence[float] | np.ndarray) -> np.ndarray:
        """Coefficient vectors, one column per alpha: (d, n_alphas)."""
        return self.basis @ self.shrink(alphas)

    def intercept(self, alphas: Sequence[float] | np.ndarray) -> np.ndarray:
        """Intercepts, one per alpha: ``mean(y) - mean(X) @ w``."""
        return self.y_mean - self.x_mean @ self.coef(alphas)

    def predict(self, x: np.ndarray, alphas: Sequence[float] | np.ndarray) -> np.ndarray:
        """Predictions for rows of ``x`` (n, d): (n, n_alphas)."""
        x = np.asarray(x, dtype=np.float64)
        projected = (x - self.x_mean) @ self.basis
        return projected @ self.shrink(alphas) + self.y_mean


def _gram(a: np.ndarray) -> np.ndarray:
    """``a^T a`` (symmetric; one BLAS matrix product)."""
    return a.T @ a


def _eigh(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of a symmetric matrix (LAPACK divide and conquer).

    Runs on one BLAS thread: multi-threaded OpenBLAS eigensolvers can be tens of times slower
    when another process holds a core (measured: 0.3 s vs 9 s for d = 1024 on 2 cores).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return scipy.linalg.eigh(sym, driver="evd", overwrite_a=True, check_finite=False)


def fit_ridge_path(x: np.ndarray, y: np.ndarray, *, overwrite_x: bool = False) -> RidgePath:
    """Fit ridge with intercept for all alphas at once (one eigendecomposition; module doc).

    ``overwrite_x`` lets the fit centre ``x`` in place (saves a copy of the training matrix).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (n, d) with n = len(y); got {x.shape} and {y.shape}")
    if x.shape[0] < 2:
        raise ValueError("ridge needs at least two training samples")
    x_mean = x.mean(axis=0)
    y_mean = float(y.mean())
    if overwrite_x and x.flags.c_contiguous and x.flags.writeable:
        xc = x
        xc -= x_mean
    else:
        xc = np.ascontiguousarray(x - x_mean)
    yc = y - y_mean
    n, d = xc.shape
    if n >= d:
        lam, vecs = _eigh(_gram(xc))
        basis = vecs
        coords = vecs.T @ (xc.T @ yc)
    else:
        lam, vecs = _eigh(_gram(xc.T))
        basis = xc.T @ vecs
        coords = vecs.T @ yc
    lam = np.maximum(lam, 0.0)  # round-off can make tiny eigenvalues negative
    return RidgePath(x_mean=x_mean, y_mean=y_mean, basis=basis, eigenvalues=lam, coords=coords)


def crop_level_path(features: np.ndarray, scores: np.ndarray, index: np.ndarray) -> RidgePath:
    """Fit on the crops of images ``index``; every crop inherits its image's score (§7.4)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 3:
        raise ValueError(f"features must be (n_images, n_crops, d), got {feats.shape}")
    idx = np.asarray(index, dtype=np.int64)
    n_crops = feats.shape[1]
    x = feats[idx].reshape(idx.size * n_crops, feats.shape[2])
    y = np.repeat(np.asarray(scores, dtype=np.float64)[idx], n_crops)
    return fit_ridge_path(x, y, overwrite_x=True)  # x is a fresh copy (fancy indexing)


def predict_images(path: RidgePath, features: np.ndarray,
                   alphas: Sequence[float] | np.ndarray,
                   index: np.ndarray | None = None) -> np.ndarray:
    """Per-image predictions = mean of the crops' predictions: (n_images, n_alphas) (§7.4)."""
    feats = np.asarray(features, dtype=np.float64)
    if index is not None:
        feats = feats[np.asarray(index, dtype=np.int64)]
    return path.predict(feats.mean(axis=1), alphas)


@dataclass(frozen=True, eq=False)
class SplitFit:
    """One split's ridge path and the predictions (all alphas) of its evaluated roles."""

    split: int
    train_index: np.ndarray
    index: Mapping[str, np.ndarray]
    predictions: Mapping[str, np.ndarray]
    path: RidgePath | None = None


def fit_splits(features: np.ndarray, scores: np.ndarray,
               splits: Sequence[Mapping[str, np.ndarray]],
               alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
               *, roles: Sequence[str] = ("val", "test"), keep_paths: bool = False,
               ) -> list[SplitFit]:
    """For each split: fit on its train images, predict its ``roles`` for every alpha.

    ``splits[s][role]`` are image indices into ``features`` (n_images, n_crops, d).
    """
    fits: list[SplitFit] = []
    for s, split in enumerate(splits):
        train = np.asarray(split["train"], dtype=np.int64)
        path = crop_level_path(features, scores, train)
        index = {r: np.asarray(split[r], dtype=np.int64) for r in roles}
        preds = {r: predict_images(path, features, alphas, index[r]) for r in roles}
        fits.append(SplitFit(split=s, train_index=train, index=index, predictions=preds,
                             path=path if keep_paths else None))
    return fits


@dataclass(frozen=True, eq=False)
class AlphaChoice:
    """The chosen alpha and the evidence: val SRCC per split and alpha, and its median."""

    alphas: np.ndarray
    val_srcc: np.ndarray
    median_val_srcc: np.ndarray = field(repr=False)
    index: int
    alpha: float

    @property
    def best_median_val_srcc(self) -> float:
        """Median val SRCC at the chosen alpha."""
        return float(self.median_val_srcc[self.index])


def select_alpha(fits: Sequence[SplitFit], scores: np.ndarray,
                 alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                 role: str = "val") -> AlphaChoice:
    """Choose alpha = argmax over the grid of the median over splits of val SRCC (DECISIONS 13).

    NaN SRCCs (constant predictions) are ignored in the median; ties go to the first alpha.
    """
    a = np.asarray(alphas, dtype=np.float64).ravel()
    y = np.asarray(scores, dtype=np.float64)
    table = np.vstack([srcc_columns(f.predictions[role], y[f.index[role]]) for f in fits])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        med = np.nanmedian(table, axis=0)
    if np.all(np.isnan(med)):
        raise ValueError("validation SRCC is undefined for every alpha (constant predictions?)")
    best = int(np.nanargmax(med))
    return AlphaChoice(alphas=a, val_srcc=table, median_val_srcc=np.asarray(med), index=best,
                       alpha=float(a[best]))


def search_alpha(features: np.ndarray, scores: np.ndarray,
                 splits: Sequence[Mapping[str, np.ndarray]],
                 alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                 ) -> tuple[AlphaChoice, list[SplitFit]]:
    """The whole alpha search of DECISIONS 13 over all splits; also returns the split fits."""
    fits = fit_splits(features, scores, splits, alphas, roles=("val", "test"))
    return select_alpha(fits, scores, alphas), fits
