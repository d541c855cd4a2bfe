"""Shared fixtures: tiny configs and tiny pristine folders built on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthetic_images import natural_image  # noqa: F401 - re-exported for fixtures

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
# The conformance vectors live in the repository (copied from shared/conformance, issue 8):
# a missing vector file FAILS the tests that read it (pytest.fail / FileNotFoundError), never skips.
CONFORMANCE = REPO / "tests" / "data" / "conformance"


@pytest.fixture(scope="session")
def native_built():
    """Builds the native library (a no-op when it is current) and returns it loaded; skips,
    with the reason, only where there is no C compiler (DECISIONS E14-E15)."""
    from shamisa_core import native
    from shamisa_core.native import build as native_build

    if not native_build.compiler():
        pytest.skip("no C compiler: the native library cannot be built here")
    native_build.build()
    native._STATE.clear()  # forget a "not built" seen earlier in the session
    loaded = native.library()
    assert loaded is not None, "the native library was built but did not load"
    return loaded


def conformance_stats(out: np.ndarray, inp: np.ndarray) -> np.ndarray:
    """The seven statistics of shared/conformance/README.md section 1, in
    ``meta.application.stats_columns`` order (output clamped to [0, 1], d = output - input)."""
    d = np.clip(out.astype(np.float64), 0.0, 1.0) - inp.astype(np.float64)
    changed = np.abs(d) > 1e-6
    return np.array(
        [
            np.abs(d).mean(),
            d.std(),
            d.mean(),
            changed.mean(),
            changed.any(axis=-1).mean(),
            (d < -1e-6).mean(),
            (d > 1e-6).mean(),
        ]
    )


@pytest.fixture
def pristine_dir(tmp_path: Path) -> Path:
    """A folder of 3 small generated photos (png, jpg, nested bmp)."""
    d = tmp_path / "pristine"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(natural_image(0)).save(d / "a.png")
    Image.fromarray(natural_image(1, 120, 180)).save(d / "b.jpg", quality=95)
    Image.fromarray(natural_image(2, 150, 150)).save(d / "sub" / "c.bmp")
    return d


@pytest.fixture
def tiny_cfg():
    """A tiny corpus configuration (patch 48, R=2, C=2, L=2, 2 shards x 2 groups)."""
    from shamisa_core.config import load_profile

    return load_profile(
        "cpu-small",
        {
            "group.patch_size": 48,
            "group.n_refs": 2,
            "group.n_comps": 2,
            "group.n_levels": 2,
            "corpus.n_shards": 2,
            "corpus.groups_per_shard": 2,
            "corpus.min_side": 32,
        },
    )
