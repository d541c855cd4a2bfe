"""Fit a quality head on one's own labelled photos (``shamisa fit``, ``shamisa_core.fit``).

The labels CSV has a header with ``image`` (a path relative to the images folder) and
``score``, and optionally ``reference`` (the pristine source of a distorted image). The same
protocol as the benchmarks (METHOD.md §7.2-7.4): reference-disjoint splits when a reference
column exists, otherwise random splits; ridge alpha chosen on validation (median val SRCC over
the splits, DECISIONS 13); held-out SRCC/PLCC reported as the median over splits with their
spread; the final regressor fitted on all images at that alpha. Scores are stored
higher = better (``lower_is_better`` mirrors a DMOS-like label, DECISIONS 16).

Example (a tiny random encoder and twelve synthetic photos; real use passes a trained
encoder and real photos):

>>> import tempfile, numpy as np, pandas as pd
>>> from pathlib import Path
>>> from PIL import Image, ImageFilter
>>> from shamisa_core import fit, load_model
>>> from shamisa_core.serving.fit import demo_encoder
>>> tmp = Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(0)
>>> rows = []
>>> for i in range(12):
...     img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
...     img.filter(ImageFilter.GaussianBlur(i % 4)).save(tmp / f"p{i}.png")
...     rows.append({"image": f"p{i}.png", "score": 5.0 - i % 4})
>>> pd.DataFrame(rows).to_csv(tmp / "labels.csv", index=False)
>>> report = fit(tmp, tmp / "labels.csv", encoder=demo_encoder(tmp / "enc.pt"),
...              out=tmp / "model")
>>> report.n_images, report.split_method, len(report.srcc_splits)
(12, 'random', 10)
>>> model = load_model(tmp / "model")
>>> model.score([tmp / "p0.png", tmp / "missing.png"]).shape
(2,)
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shamisa_core.artifacts import ENCODER_FILE, MODEL_CARD_FILE, REGRESSOR_FILE
from shamisa_core.atomic import atomic_write_json

MIN_IMAGES = 10
DEFAULT_ENCODER = "models:/shamisa-iqa@champion"

Log = Callable[[str], None]


class LabelsError(ValueError):
    """The labels CSV cannot be used; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class FitReport:
    """What ``fit`` did: the held-out metrics (median and spread over splits) and the files."""

    out: str
    n_images: int
    split_method: str
    alpha: float
    srcc: float | None
    plcc: float | None
    srcc_splits: list[float | None]
    plcc_splits: list[float | None]
    srcc_iqr: float | None
    plcc_iqr: float | None
    lower_is_better: bool
    score_range: tuple[float, float]
    encoder: str
    encoder_fingerprint: str
    crop_size: int
    registered: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)

    def summary(self) -> str:
        """Two lines for the terminal."""
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        return (f"held-out SRCC {f(self.srcc)} (IQR {f(self.srcc_iqr)}), PLCC {f(self.plcc)} "
                f"(IQR {f(self.plcc_iqr)}) over {len(self.srcc_splits)} {self.split_method} "
                f"splits of {self.n_images} images; alpha {self.alpha:.4g}\nmodel: {self.out}"
                + (f" (registered {self.registered})" if self.registered else ""))


def read_labels(images: str | os.PathLike, labels: str | os.PathLike) -> pd.DataFrame:
    """The labels as a benchmark table (``datasets.base.TABLE_COLUMNS``); clear errors naming
    the CSV and the row (CSV line numbers, header = line 1)."""
    from shamisa_core.evaluation.datasets.base import UNKNOWN_LEVEL

    folder, csv = Path(images).expanduser(), Path(labels).expanduser()
    if not folder.is_dir():
        raise LabelsError(f"--images {folder} is not a folder")
    if not csv.is_file():
        raise LabelsError(f"--labels {csv} does not exist")
    try:
        raw = pd.read_csv(csv, dtype={"image": str, "reference": str})
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's CSV
        raise LabelsError(f"{csv}: cannot be read as CSV ({exc})") from None
    missing_cols = [c for c in ("image", "score") if c not in raw.columns]
    if missing_cols:
        raise LabelsError(f"{csv}: missing column(s) {missing_cols}; the header needs image,score"
                          "[,reference]")
    has_ref = "reference" in raw.columns
    rows = []
    for i, r in enumerate(raw.itertuples(index=False), start=2):
        name = getattr(r, "image")
        if not isinstance(name, str) or not name.strip():
            raise LabelsError(f"{csv} line {i}: empty image path")
        path = folder / name
        if not path.is_file():
            raise LabelsError(f"{csv} line {i}: image {name} not found in {folder}")
        try:
            score = float(getattr(r, "score"))
        except (TypeError, ValueError):
            raise LabelsError(f"{csv} line {i}: score {getattr(r, 'score')!r} is not a number") from None
        if not math.isfinite(score):
            raise LabelsError(f"{csv} line {i}: score of {name} is {score} (NaN or infinite)")
        ref = getattr(r, "reference") if has_ref else None
        if has_ref and (not isinstance(ref, str) or not ref.strip()):
            raise LabelsError(f"{csv} line {i}: empty reference for {name}")
        ref_path = folder / ref if has_ref and (folder / ref).is_file() else path
        rows.append({"image": str(path.resolve()), "name": Path(name).as_posix(),
                     "reference": ref if has_ref else Path(name).as_posix(),
                     "reference_image": str(ref_path.resolve()), "distortion_type": "user",
                     "level": UNKNOWN_LEVEL, "score": score})
    if len(rows) < MIN_IMAGES:
        raise LabelsError(f"{csv}: {len(rows)} labelled images; fitting needs at least {MIN_IMAGES}")
    table = pd.DataFrame(rows)
    dup = table["name"][table["name"].duplicated()]
    if len(dup):
        raise LabelsError(f"{csv}: image {dup.iloc[0]} is listed twice")
    table.attrs["has_reference"] = has_ref
    return table


def _iqr(values: list[float | None]) -> float | None:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    return float(np.subtract(*np.percentile(v, [75, 25]))) if v.size else None


def fit_model(images: str | os.PathLike, labels: str | os.PathLike, *,
              out: str | os.PathLike, encoder: str | os.PathLike = DEFAULT_ENCODER,
              lower_is_better: bool = False, crop_size: int | None = None, seed: int = 27,
              cache_dir: str | os.PathLike | None = None, tracking_uri: str | None = None,
              register: str | None = None, mlflow_dir: str | os.PathLike | None = None,
              device: str = "cpu", log: Log = lambda _m: None) -> FitReport:
    """Fit, report and save a quality model (module docstring); ``register`` names the MLflow
    registered model to add it to (store ``mlflow_dir``)."""
    from shamisa_core.evaluation.cache import encode_dataset
    from shamisa_core.evaluation.datasets.base import DatasetInfo, finalise
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import PreparedDataset
    from shamisa_core.evaluation.splits import SplitConfig, make_splits
    from shamisa_core.evaluation.stages import final_regressor, run_standard

    table = read_labels(images, labels)
    scores = table["score"].to_numpy(np.float64)
    info = DatasetInfo(name="user", kind="synthetic" if table.attrs["has_reference"] else "authentic",
                       score_range=(float(scores.min()), float(scores.max())),
                       lower_is_better=bool(lower_is_better),
                       label="DMOS" if lower_is_better else "MOS", layout="labels CSV")
    dataset = finalise(info, Path(images).expanduser(), table)
    units = table["reference"].nunique() if info.is_synthetic else len(table)
    # Small sets: 60/20/20 so that val and test hold at least two units (§7.2 uses 70/10/20).
    config = SplitConfig(seed=seed) if units >= 50 else SplitConfig(seed=seed, train_fraction=0.6,
                                                                    val_fraction=0.2)
    splits = make_splits(dataset.table, info, config=config, dataset_version=dataset.version)
    cache = Path(cache_dir) if cache_dir else Path(out) / ".cache"
    prepared = PreparedDataset(dataset, splits, cache / "splits.parquet",
                               cache / "user" / dataset.version)
    trained = load_trained(encoder, download_dir=cache / "downloads", tracking_uri=tracking_uri,
                           device=device)
    crop = int(crop_size or trained.patch_size or 224)
    log(f"{len(table)} images, {splits.method} splits, encoder {trained.fingerprint}, crop {crop}")
    feats = encode_dataset(prepared, trained, crop, device=device, log=log)
    assert feats is not None
    if feats.n_failed:
        bad = "; ".join(f"{p}: {r}" for p, r in feats.failed[:3])
        raise LabelsError(f"{labels}: {feats.n_failed} image(s) could not be read ({bad})")
    res = run_standard(prepared, feats)
    reg = final_regressor(prepared, feats, res.alpha, trained.fingerprint)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    reg.save(target / REGRESSOR_FILE)
    if trained.path is not None and trained.path.resolve() != (target / ENCODER_FILE).resolve():
        shutil.copyfile(trained.path, target / ENCODER_FILE)
    entry = res.to_json()
    report = FitReport(out=str(target), n_images=len(table), split_method=splits.method,
                       alpha=float(res.alpha), srcc=entry.get("srcc"), plcc=entry.get("plcc"),
                       srcc_splits=entry.get("srcc_splits") or [],
                       plcc_splits=entry.get("plcc_splits") or [],
                       srcc_iqr=_iqr(entry.get("srcc_splits") or []),
                       plcc_iqr=_iqr(entry.get("plcc_splits") or []),
                       lower_is_better=bool(lower_is_better), score_range=info.score_range,
                       encoder=str(encoder), encoder_fingerprint=trained.fingerprint,
                       crop_size=crop)
    if register:
        report = _register(report, target, register, mlflow_dir)
    atomic_write_json(target / MODEL_CARD_FILE, {"kind": "shamisa-fit", **report.to_json(),
                                                 "labels": str(labels), "images": str(images)})
    return report


def _register(report: FitReport, folder: Path, name: str,
              mlflow_dir: str | os.PathLike | None) -> FitReport:
    import dataclasses

    from shamisa_core import tracking
    from shamisa_core.serving.registry import register_model_dir

    store = Path(mlflow_dir) if mlflow_dir else Path("outputs/mlflow")
    exp = tracking.setup(store, "shamisa-fit")
    import mlflow

    with mlflow.start_run(experiment_id=exp, run_name=f"fit-{name}"):
        mlflow.log_params({"n_images": report.n_images, "split_method": report.split_method,
                           "alpha": report.alpha, "encoder": report.encoder,
                           "crop_size": report.crop_size})
        mlflow.log_metrics({k: v for k, v in (("srcc", report.srcc), ("plcc", report.plcc))
                            if v is not None})
        version = register_model_dir(folder, name, metadata={"kind": "shamisa-fit"})
    from mlflow.tracking import MlflowClient

    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.serving.registry import encoder_tags

    uri = tracking.tracking_uri(store)
    client = MlflowClient(uri, uri)
    trained = load_trained(Path(folder) / "encoder.pt")
    tags = {"srcc/user": repr(report.srcc), "plcc/user": repr(report.plcc),
            "mean_srcc": repr(report.srcc), "higher_is_better": "true", "kind": "shamisa-fit",
            **encoder_tags({**trained.meta, "fingerprint": trained.fingerprint})}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return dataclasses.replace(report, registered=f"models:/{name}/{version}")


def demo_encoder(path: str | os.PathLike, seed: int = 0, patch_size: int = 32) -> Path:
    """A random-init resnet18 ``encoder.pt`` (for examples and tests only: no training)."""
    import torch

    from shamisa_core.models import ModelConfig, build_model
    from shamisa_core.training.checkpoint import save_encoder

    cfg = ModelConfig(arch="resnet18", init="random", n_branches=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    return save_encoder(Path(path), model, cfg, patch_size)
