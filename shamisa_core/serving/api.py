"""The public Python API: load a quality model, score images (higher = better).

A SHAMISA quality model is a frozen encoder (``encoder.pt``, METHOD.md §5) followed by a linear
ridge regressor on its test-time features (5 crops x 2 scales, METHOD.md §7.3-7.4). Every score
is **higher = better** (DECISIONS 16): a regressor trained on a DMOS dataset is mirrored inside
its label range, and the regressor file records that.

    model = load_model("models:/shamisa-iqa@champion")   # or a folder, or a runs:/ URI
    scores = score(model, ["a.png", "b.png"])            # numpy array, NaN where unreadable
    rows = score_items(model, ["a.png", "broken.png"])   # one row per item, with the reason

A score does not depend on the other images of its batch (each image's crops are encoded
with eval-mode BatchNorm).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from shamisa_core.artifacts import ENCODER_FILE, REGRESSOR_FILE, find_file, resolve_artifacts
from shamisa_core.evaluation.features import FeatureConfig, ImageInput, extract_features
from shamisa_core.evaluation.regressor import Regressor


@dataclass(frozen=True, eq=False)
class IQAModel:
    """An encoder (x -> h) and its regressor: everything :func:`score` needs."""

    encoder: torch.nn.Module
    regressor: Regressor
    encoder_meta: Mapping[str, Any]
    source: str = ""

    @property
    def crop_size(self) -> int:
        """The crop size features are taken at (the regressor's)."""
        return self.regressor.crop_size

    def score(self, images: Any, **kwargs: Any) -> Any:
        """:func:`score` with this model."""
        return score(self, images, **kwargs)

    def describe(self) -> dict[str, Any]:
        """What the scores mean: direction, scale, the data the head was fitted on."""
        return {"source": self.source, "higher_is_better": True,
                "score_range": list(self.regressor.score_range),
                "fitted_on": list(self.regressor.datasets), "crop_size": self.crop_size,
                "arch": self.encoder_meta.get("arch")}


@dataclass(frozen=True)
class ScoreRow:
    """One scored item: its name (path or ``<item i>``), score (NaN on failure), reason."""

    path: str
    score: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"path", "score", "error"}`` (score None when it failed)."""
        return {"path": self.path, "score": None if self.error else float(self.score),
                "error": self.error}


def load_model(uri_or_dir: str | os.PathLike, *, tracking_uri: str | None = None,
               download_dir: str | os.PathLike | None = None, device: str = "cpu") -> IQAModel:
    """Load a quality model from a folder (``encoder.pt`` + ``regressor.npz`` somewhere below),
    or an MLflow URI of a registered ``shamisa-iqa`` version (``models:/shamisa-iqa@champion``,
    ``models:/shamisa-iqa/3``, ``runs:/<id>/shamisa-iqa``)."""
    from shamisa_core.training.checkpoint import load_encoder

    location = resolve_artifacts(uri_or_dir, tracking_uri=tracking_uri, download_dir=download_dir)
    encoder, meta = load_encoder(find_file(location, ENCODER_FILE), device=device)
    regressor = Regressor.load(find_file(location, REGRESSOR_FILE))
    return IQAModel(encoder=encoder, regressor=regressor, encoder_meta=meta, source=str(uri_or_dir))


def as_image_list(images: Any) -> list[ImageInput]:
    """Normalise the accepted inputs to a list of images (see :func:`score`)."""
    import pandas as pd

    if isinstance(images, pd.DataFrame):
        column = "image" if "image" in images.columns else images.columns[0]
        return list(images[column])
    if isinstance(images, pd.Series):
        return list(images)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        return [images]
    if isinstance(images, Mapping) and "image" in images:
        return as_image_list(images["image"])
    return list(images)


def image_features(images: Any, encoder: torch.nn.Module, crop_size: int, *,
                   batch_images: int = 16, device: str = "cpu",
                   ) -> tuple[np.ndarray, list[str | None]]:
    """Test-time features (n, 5, 2d) of in-memory or on-disk images and a reason per item
    (None where it was read): ``features.extract_features`` on any input kind."""
    items = as_image_list(images)
    config = FeatureConfig(crop_size=crop_size, batch_size=max(1, batch_images) * 10, device=device)
    result = extract_features(items, encoder, config, allow_empty=True)
    reasons: list[str | None] = [None] * len(items)
    by_label = {}
    for label, why in result.failed:
        by_label.setdefault(label, []).append(why)
    for i, item in enumerate(items):
        key = str(item) if isinstance(item, (str, os.PathLike)) else f"<item {i}: {type(item).__name__}>"
        if key in by_label and by_label[key]:
            reasons[i] = by_label[key].pop(0)
    return result.features, reasons


def score(model: IQAModel, images: Any, *, batch_images: int = 16,
          return_errors: bool = False) -> Any:
    """Quality scores of ``images``, higher = better (DECISIONS 16); float64, NaN for unreadable.

    ``images``: a path, a list of paths / HxWx3 uint8 arrays / PIL images, an (N, H, W, 3)
    uint8 array, or a DataFrame with an ``image`` column. With ``return_errors`` the result is
    ``(scores, reasons)``: one reason (or None) per item, e.g. a missing file, a file that is
    not an image, or an array that is not uint8.
    """
    feats, reasons = image_features(images, model.encoder, model.crop_size,
                                    batch_images=batch_images)
    if feats.shape[2] != model.regressor.dim:  # nothing could be read: no feature width seen
        scores = np.full(len(reasons), np.nan)
    else:
        scores = model.regressor.predict(feats)
    return (scores, reasons) if return_errors else scores


def score_items(model: IQAModel, images: Any, *, batch_images: int = 16) -> list[ScoreRow]:
    """One :class:`ScoreRow` per item, failures with their reason (the others go on)."""
    items = as_image_list(images)
    scores, reasons = score(model, items, batch_images=batch_images, return_errors=True)
    return [ScoreRow(str(it) if isinstance(it, (str, os.PathLike)) else f"<item {i}>",
                     float(s), r) for i, (it, s, r) in enumerate(zip(items, scores, reasons))]
