"""The quality head: a ridge regressor on test-time features, saved as ``regressor.npz``.

``fit_regressor`` is the "final regressor on all data, fitted only for saving" of METHOD.md
§7.4; :class:`Regressor` predicts **higher = better** scores (DECISIONS 16) and records what it
was fitted on.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shamisa_core.atomic import atomic_write_bytes

from .ridge import crop_level_path

REGRESSOR_FORMAT = "shamisa-regressor/1"


@dataclass(frozen=True, eq=False)
class Regressor:
    """A ridge regressor on test-time features (METHOD.md §7.4), with its provenance.

    ``coef`` (d,) and ``intercept`` map an image's mean crop feature to the label scale of the
    training datasets (``score_range``). ``lower_is_better`` records a DMOS label; :meth:`predict`
    then mirrors the prediction inside ``score_range`` so that it reads higher = better
    (DECISIONS 16). ``crop_size`` is the crop the features were taken at.
    """

    coef: np.ndarray
    intercept: float
    alpha: float
    crop_size: int
    lower_is_better: bool = False
    score_range: tuple[float, float] = (0.0, 1.0)
    datasets: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Feature dimension (2 x encoder width)."""
        return int(self.coef.shape[0])

    @property
    def orientation(self) -> str:
        """``"flipped"`` when the training label was DMOS (predictions are mirrored), else
        ``"as_trained"`` (DECISIONS 16)."""
        return "flipped" if self.lower_is_better else "as_trained"

    def predict_raw(self, features: np.ndarray) -> np.ndarray:
        """Predictions on the training label scale: mean over crops of ``x @ coef + b`` (§7.4).

        ``features`` is (n, crops, d) or (n, d); NaN rows give NaN.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 3:
            x = x.mean(axis=1)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features of shape {np.shape(features)} for a regressor of dim {self.dim}")
        return x @ self.coef + self.intercept

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores, higher = better (DMOS-trained predictions mirrored, DECISIONS 16)."""
        raw = self.predict_raw(features)
        if not self.lower_is_better:
            return raw
        lo, hi = self.score_range
        return (lo + hi) - raw

    def to_json(self) -> dict[str, Any]:
        """Everything but the coefficients (for metadata and logs)."""
        return {"format": REGRESSOR_FORMAT, "alpha": self.alpha, "crop_size": self.crop_size,
                "lower_is_better": self.lower_is_better, "orientation": self.orientation,
                "score_range": list(self.score_range), "datasets": list(self.datasets),
                "dim": self.dim, "intercept": self.intercept, "sha256": self.digest(),
                **dict(self.extra)}

    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the coefficients, intercept and alpha."""
        h = hashlib.sha256(np.ascontiguousarray(self.coef, dtype=np.float64).tobytes())
        h.update(repr((float(self.intercept), float(self.alpha), self.lower_is_better)).encode())
        return h.hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` atomically: coef, intercept, alpha, crop size, orientation,
        score range, training dataset names (and a JSON ``meta`` blob)."""
        target = Path(path)
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.array(REGRESSOR_FORMAT),
            coef=np.asarray(self.coef, dtype=np.float64),
            intercept=np.array(float(self.intercept)),
            alpha=np.array(float(self.alpha)),
            crop_size=np.array(int(self.crop_size)),
            lower_is_better=np.array(bool(self.lower_is_better)),
            orientation=np.array(self.orientation),
            score_range=np.asarray(self.score_range, dtype=np.float64),
            datasets=np.array(list(self.datasets), dtype=str),
            meta=np.array(json.dumps(dict(self.extra), sort_keys=True, default=str)),
        )
        atomic_write_bytes(target, buf.getvalue())
        return target

    @classmethod
    def load(cls, path: str | Path) -> Regressor:
        """Read a regressor written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            if str(z["format"]) != REGRESSOR_FORMAT:
                raise ValueError(f"{path} is not a {REGRESSOR_FORMAT} file")
            return cls(
                coef=np.asarray(z["coef"], dtype=np.float64),
                intercept=float(z["intercept"]),
                alpha=float(z["alpha"]),
                crop_size=int(z["crop_size"]),
                lower_is_better=bool(z["lower_is_better"]),
                score_range=(float(z["score_range"][0]), float(z["score_range"][1])),
                datasets=tuple(str(s) for s in z["datasets"].tolist()),
                extra=json.loads(str(z["meta"])) if "meta" in z.files else {},
            )


def fit_regressor(features: np.ndarray, scores: Sequence[float] | np.ndarray, alpha: float, *,
                  crop_size: int = 224, lower_is_better: bool = False,
                  score_range: tuple[float, float] | None = None,
                  datasets: Sequence[str] = (), extra: Mapping[str, Any] | None = None,
                  ) -> Regressor:
    """Ridge(alpha) with intercept on every crop of every usable image (METHOD.md §7.4).

    This is the "final regressor on all data, fitted only for saving" of §7.4: each crop of
    ``features`` (n, crops, d) inherits its image's score; rows with non-finite features (images
    that failed to load) are left out. Equal to ``sklearn.linear_model.Ridge(alpha)``.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim == 2:
        feats = feats[:, None, :]
    y = np.asarray(scores, dtype=np.float64).ravel()
    if feats.shape[0] != y.shape[0]:
        raise ValueError(f"{feats.shape[0]} feature rows for {y.shape[0]} scores")
    usable = np.flatnonzero(np.all(np.isfinite(feats.reshape(feats.shape[0], -1)), axis=1)
                            & np.isfinite(y))
    if usable.size < 2:
        raise ValueError("a regressor needs at least two usable images")
    path = crop_level_path(feats, y, usable)
    coef = path.coef([alpha])[:, 0]
    intercept = float(path.intercept([alpha])[0])
    rng = score_range if score_range is not None else (float(y[usable].min()), float(y[usable].max()))
    return Regressor(coef=coef, intercept=intercept, alpha=float(alpha), crop_size=int(crop_size),
                     lower_is_better=bool(lower_is_better),
                     score_range=(float(rng[0]), float(rng[1])), datasets=tuple(datasets),
                     extra=dict(extra or {}, n_images=int(usable.size)))
