"""The public Python API: load a quality model, score images, fit a regressor.

A SHAMISA quality model is a frozen encoder (``encoder.pt``, METHOD.md §5) followed by a linear
ridge regressor on its test-time features (5 crops x 2 scales, METHOD.md §7.3-7.4). Every score
this module returns is **higher = better** (DECISIONS 16): a regressor trained on a DMOS dataset
is mirrored inside its label range before it is shown, and the regressor file records that.

    model = load_model("models:/shamisa-iqa@champion")   # or a folder, or a runs:/ URI
    scores = score(model, ["a.png", "b.png"])            # numpy array, higher = better

The same model is registered in MLflow as the pyfunc :class:`ShamisaIQAModel` (artefacts
``encoder`` = ``encoder.pt`` and ``regressor`` = ``regressor.npz``), whose ``predict`` takes a
DataFrame with an ``image`` column of file paths, or a list of paths / HxWx3 uint8 arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from shamisa_core.atomic import atomic_write_bytes

from shamisa_core import tracking  # noqa: F401  (sets MLFLOW_DISABLE_TELEMETRY before mlflow)

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402

from shamisa_core.evaluation.features import N_CROPS, image_crops, load_rgb, normalise  # noqa: E402
from shamisa_core.evaluation.ridge import crop_level_path  # noqa: E402

REGRESSOR_FORMAT = "shamisa-regressor/1"
ENCODER_FILE = "encoder.pt"
REGRESSOR_FILE = "regressor.npz"
MLFLOW_SCHEMES: tuple[str, ...] = ("models:/", "runs:/", "mlflow-artifacts:/", "dbfs:/", "s3://",
                                   "gs://", "wasbs://", "file://")

ImageInput = str | os.PathLike | np.ndarray | Image.Image


# ----------------------------------------------------------------------------------------------
# The regressor


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
        target.parent.mkdir(parents=True, exist_ok=True)
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


# ----------------------------------------------------------------------------------------------
# Resolving model locations (paths and MLflow URIs)


def is_mlflow_uri(text: str | os.PathLike) -> bool:
    """True for ``models:/...``, ``runs:/...`` and other artefact-store URIs."""
    return isinstance(text, str) and text.startswith(MLFLOW_SCHEMES)


def _download_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def concrete_model_uri(uri: str, tracking_uri: str | None = None) -> str:
    """Resolve an alias or "latest" in a ``models:/`` URI to ``models:/name/<version>``.

    Other URIs are returned unchanged. Needed so that downloads are cached per version, never
    per moving alias.
    """
    if not uri.startswith("models:/"):
        return uri
    from mlflow.tracking import MlflowClient

    body = uri[len("models:/"):].strip("/")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if "@" in body:
        name, alias = body.split("@", 1)
        return f"models:/{name}/{client.get_model_version_by_alias(name, alias).version}"
    parts = body.split("/")
    if len(parts) == 2 and parts[1].lower() == "latest":
        versions = client.search_model_versions(f"name='{parts[0]}'")
        if not versions:
            raise ValueError(f"registered model {parts[0]!r} has no versions")
        return f"models:/{parts[0]}/{max(int(v.version) for v in versions)}"
    return uri


def resolve_artifacts(uri_or_path: str | os.PathLike, *, tracking_uri: str | None = None,
                      download_dir: str | os.PathLike | None = None) -> Path:
    """A local file or folder for a path or an MLflow URI (models:/, runs:/, ...).

    URIs are downloaded once into ``download_dir/<hash of the concrete URI>`` (a temporary
    folder when ``download_dir`` is None); aliases are resolved to versions first.
    """
    if not is_mlflow_uri(uri_or_path):
        path = Path(uri_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        return path
    from mlflow.artifacts import download_artifacts

    uri = concrete_model_uri(str(uri_or_path), tracking_uri)
    # Absolute: MLflow returns absolute paths, which must stay relative_to() the temp folder.
    base = (Path(download_dir) if download_dir is not None else Path(tempfile.mkdtemp(prefix="shamisa-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    target = base / _download_key(f"{tracking_uri or ''}|{uri}")
    done = target / ".complete"
    if done.is_file():
        return target / done.read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=base))
    try:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=str(tmp), tracking_uri=tracking_uri))
        rel = local.relative_to(tmp) if local != tmp else Path(".")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        (target / ".complete").write_text(str(rel))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target / rel


def find_file(location: Path, name: str) -> Path:
    """``location`` itself when it is a file called ``name``, else the single ``name`` below it
    (shallowest first); ``FileNotFoundError`` lists what was there."""
    if location.is_file():
        if location.name == name or (name == ENCODER_FILE and location.suffix == ".pt"):
            return location
        raise FileNotFoundError(f"{location} is a file, expected {name} or a folder holding it")
    hits = sorted(location.rglob(name), key=lambda p: (len(p.parts), str(p)))
    if not hits:
        found = sorted(str(p.relative_to(location)) for p in location.rglob("*") if p.is_file())
        raise FileNotFoundError(f"no {name} under {location} (found: {found[:20]})")
    return hits[0]


# ----------------------------------------------------------------------------------------------
# The model and scoring


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


def _to_pil(image: ImageInput) -> Image.Image:
    """A path, PIL image or HxWx3 (or HxW) uint8 array as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"image arrays must be HxWx3, got shape {arr.shape}")
        return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]))
    return load_rgb(Path(os.fspath(image)))


def image_features(images: Iterable[ImageInput], encoder: torch.nn.Module, crop_size: int, *,
                   batch_images: int = 16, device: str = "cpu") -> np.ndarray:
    """Test-time features (n, 5, 2d) of in-memory or on-disk images (METHOD.md §7.3).

    Same crops as :func:`shamisa_core.evaluation.features.extract_features`; an image that
    cannot be read gives a NaN row (its score is NaN).
    """
    items = list(images)
    rows: dict[int, np.ndarray] = {}
    pending: list[tuple[int, np.ndarray]] = []
    dim: int | None = None

    def flush() -> int:
        x = normalise(np.concatenate([c for _, c in pending])).to(device)
        h = encoder(x).detach().to("cpu", torch.float64).numpy()
        for j, (i, _) in enumerate(pending):
            block = h[j * 2 * N_CROPS:(j + 1) * 2 * N_CROPS]
            rows[i] = np.concatenate([block[:N_CROPS], block[N_CROPS:]], axis=1)
        pending.clear()
        return int(h.shape[1])

    was_training = bool(getattr(encoder, "training", False))
    encoder.eval()
    try:
        with torch.inference_mode():
            for i, image in enumerate(items):
                try:
                    full, half = image_crops(_to_pil(image), crop_size)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                    continue
                pending.append((i, np.concatenate([full, half])))
                if len(pending) >= batch_images:
                    dim = flush()
            if pending:
                dim = flush()
    finally:
        encoder.train(was_training)
    if dim is None:
        dim = int(getattr(encoder, "feature_dim", 0)) or 1
    out = np.full((len(items), N_CROPS, 2 * dim), np.nan)
    for i, row in rows.items():
        out[i] = row
    return out


def _as_image_list(images: Any) -> list[ImageInput]:
    """Normalise the accepted inputs to a list of images (see :class:`ShamisaIQAModel`)."""
    import pandas as pd

    if isinstance(images, pd.DataFrame):
        column = "image" if "image" in images.columns else images.columns[0]
        return list(images[column])
    if isinstance(images, pd.Series):
        return list(images)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in (2, 3)):
        return [images]
    if isinstance(images, Mapping) and "image" in images:
        return _as_image_list(images["image"])
    return list(images)


def score(model: IQAModel, images: Any, *, batch_images: int = 16) -> np.ndarray:
    """Quality scores of ``images``, higher = better (DECISIONS 16); float64, NaN for unreadable.

    ``images``: a path, a list of paths / HxWx3 uint8 arrays / PIL images, an (N, H, W, 3)
    uint8 array, or a DataFrame with an ``image`` column.
    """
    items = _as_image_list(images)
    feats = image_features(items, model.encoder, model.crop_size, batch_images=batch_images)
    if feats.shape[2] != model.regressor.dim:  # nothing could be read: no feature width seen
        return np.full(len(items), np.nan)
    return model.regressor.predict(feats)


# ----------------------------------------------------------------------------------------------
# MLflow pyfunc


class ShamisaIQAModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc flavour of a SHAMISA quality model (artefacts ``encoder``, ``regressor``).

    ``predict`` takes a DataFrame with an ``image`` column of file paths, or a list of paths /
    HxWx3 uint8 arrays, and returns a float64 array of scores, higher = better.
    """

    # MLflow wraps ``predict`` to validate inputs against its type hints; this model takes
    # several input kinds on purpose (DataFrame, paths, arrays), so it opts out as MLflow's
    # own ChatModel does.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Rebuild the encoder and the regressor from the logged artefacts."""
        from shamisa_core.training.checkpoint import load_encoder

        encoder, meta = load_encoder(Path(context.artifacts["encoder"]))
        regressor = Regressor.load(context.artifacts["regressor"])
        self._model = IQAModel(encoder=encoder, regressor=regressor, encoder_meta=meta,
                               source="mlflow")

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (pyfunc API)
        """Scores of ``model_input`` (higher = better)."""
        model = getattr(self, "_model", None)
        if model is None:
            self.load_context(context)
            model = self._model
        return score(model, model_input)


__all__ = [
    "ENCODER_FILE",
    "REGRESSOR_FILE",
    "IQAModel",
    "Regressor",
    "ShamisaIQAModel",
    "concrete_model_uri",
    "find_file",
    "fit_regressor",
    "image_features",
    "is_mlflow_uri",
    "load_model",
    "resolve_artifacts",
    "score",
]
