"""Helpers of the operations tests: the real pipeline on a tiny profile, one instance per test.

``tiny_env`` is the environment of one tiny pipeline: its own ``DAGSTER_HOME`` (a copy of the
repository's ``dagster_home/dagster.yaml``), ``SHAMISA_OUTPUTS``, a 3-photo pristine folder, a
datasets folder whose ``proxy.yaml`` points at a tiny prebuilt KADID-layout benchmark, and
settings small enough for seconds per stage (patch 32, 2 shards of 1 group, 2 training steps).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("pipeline_driver.py")
PYTHON = sys.executable

TINY_OVERRIDES = ";".join([
    "group.patch_size=32", "group.n_levels=2", "corpus.n_shards=2", "corpus.groups_per_shard=1",
    "corpus.min_side=32", "train.steps=2", "train.log_every=1", "train.checkpoint_every=2",
    "model.eval_crop=32",
])

_MLFLOW_TEMPLATE: list[Path] = []


def migrated_mlflow_db() -> Path:
    """An empty, migrated MLflow SQLite store, made once per session (migrations take seconds)."""
    if not _MLFLOW_TEMPLATE:
        from mlflow.tracking import MlflowClient

        from shamisa_core.tracking import tracking_uri

        folder = Path(tempfile.mkdtemp(prefix="shamisa-ops-mlflow-"))
        uri = tracking_uri(folder)
        MlflowClient(uri, uri).search_experiments()
        _MLFLOW_TEMPLATE.append(folder / "mlflow.db")
    return _MLFLOW_TEMPLATE[0]


def photo(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth, textured RGB uint8 stand-in photo (edges and flat areas)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(xx / (7 + seed)) * np.cos(yy / 11),
                    0.4 + 0.3 * np.cos((xx + yy) / 15), 0.5 + 0.2 * np.sin(yy / 5)], axis=-1)
    img[h // 3: h // 2, w // 4: w // 2] = (0.9, 0.2, 0.1)
    img += rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_tiny_env(base: Path, dagster_yaml: Path | None = None) -> dict[str, str]:
    """Folders and environment variables of one tiny pipeline under ``base``."""
    from _eval_helpers import make_kadid_like

    home, out, pristine, datasets = (base / n for n in ("dagster_home", "out", "pristine", "datasets"))
    for d in (home, pristine, datasets, out / "mlflow"):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copy(dagster_yaml or REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    for i, (h, w) in enumerate([(160, 200), (120, 180), (150, 150)]):
        Image.fromarray(photo(i, h, w)).save(pristine / f"p{i}.png")
    proxy = make_kadid_like(base / "proxy_benchmark", proxy_columns=True, seed=5, levels=(1, 3))
    (datasets / "proxy.yaml").write_text(f"root: {proxy}\n")
    shutil.copy(migrated_mlflow_db(), out / "mlflow" / "mlflow.db")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHAMISA_", "DAGSTER_", "MLFLOW_TRACKING"))}
    env.update({
        "DAGSTER_HOME": str(home), "SHAMISA_OUTPUTS": str(out), "SHAMISA_PROFILE": "cpu-small",
        "SHAMISA_OVERRIDES": TINY_OVERRIDES, "SHAMISA_PRISTINE": str(pristine),
        "SHAMISA_DATASETS_DIR": str(datasets), "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1",
    })
    return env


def drive(env: dict[str, str], *args: str, timeout: float = 900) -> dict:
    """Run ``pipeline_driver.py`` with ``args`` in a fresh process; its JSON result."""
    proc = subprocess.run([PYTHON, str(DRIVER), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"pipeline_driver {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][5:])


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
