"""Tiny benchmark folders and encoders for the evaluation tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter


def _photo(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = 5 + 3 * (seed % 4)
    img = np.stack([0.5 + 0.4 * np.sin(xx / f + seed) * np.cos(yy / (f + 2)),
                    0.5 + 0.3 * np.cos((xx + yy) / (f + 5)),
                    0.5 + 0.2 * np.sin(yy / (3 + seed % 3))], axis=-1)
    img += rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _distort(img: np.ndarray, kind: int, level: int, seed: int) -> np.ndarray:
    if kind == 1:  # blur
        out = Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=0.8 * level))
        return np.asarray(out)
    rng = np.random.default_rng(seed)  # noise
    noisy = img.astype(np.float32) + rng.normal(0, 12.0 * level, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_kadid_like(root: Path, *, n_refs: int = 6, kinds: tuple[int, ...] = (1, 2),
                    levels: tuple[int, ...] = (1, 2, 3), size: tuple[int, int] = (48, 64),
                    proxy_columns: bool = False, seed: int = 0, drop: int = 0) -> Path:
    """A KADID-10K-layout folder (dmos.csv + images/); scores fall with the level.

    ``proxy_columns`` adds the ``type``/``level`` columns build_proxy writes; ``drop`` deletes
    that many distorted images after listing them (missing files).
    """
    h, w = size
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(seed)
    for r in range(1, n_refs + 1):
        ref = _photo(seed * 100 + r, h, w)
        Image.fromarray(ref).save(images / f"I{r:02d}.png")
        for t in kinds:
            for lv in levels:
                name = f"I{r:02d}_{t:02d}_{lv:02d}.png"
                Image.fromarray(_distort(ref, t, lv, seed + r * 31 + t * 7 + lv)).save(images / name)
                score = 5.0 - 1.2 * lv + 0.3 * rng.normal()
                rows.append({"dist_img": name, "ref_img": f"I{r:02d}.png",
                             "dmos": float(np.clip(score, 1, 5)),
                             "type": {1: "gaublur", 2: "whitenoise"}.get(t, f"t{t}"), "level": lv})
    frame = pd.DataFrame(rows)
    if not proxy_columns:
        frame = frame[["dist_img", "ref_img", "dmos"]]
    frame.to_csv(root / "dmos.csv", index=False)
    for name in frame["dist_img"].tolist()[:drop]:
        (images / name).unlink()
    return root


def make_encoder(path: Path, *, seed: int = 0, patch_size: int = 32, extra: dict | None = None) -> Path:
    """A random-init resnet18 saved with save_encoder (the 'trained' encoder of the tests)."""
    import torch

    from shamisa_core.models import ModelConfig, build_model
    from shamisa_core.training.checkpoint import save_encoder

    cfg = ModelConfig(arch="resnet18", init="random", n_branches=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    return save_encoder(path, model, cfg, patch_size, extra)


_MLFLOW_TEMPLATE: Path | None = None


def fresh_mlflow_dir(folder: Path) -> Path:
    """An MLflow store folder with an empty, already migrated ``mlflow.db``.

    Creating the SQLite schema takes seconds; it is done once per test process and copied.
    """
    import shutil
    import tempfile

    global _MLFLOW_TEMPLATE
    if _MLFLOW_TEMPLATE is None:
        from mlflow.tracking import MlflowClient

        from shamisa_core.tracking import tracking_uri

        template = Path(tempfile.mkdtemp(prefix="shamisa-mlflow-template-"))
        uri = tracking_uri(template)
        MlflowClient(uri, uri).search_experiments()  # creates and migrates the schema
        _MLFLOW_TEMPLATE = template / "mlflow.db"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MLFLOW_TEMPLATE, folder / "mlflow.db")
    return folder
