"""Generated stand-in photos for tests (a module of its own: `conftest` is ambiguous once
sub-folders have their own conftest.py)."""

from __future__ import annotations

import numpy as np


def natural_image(seed: int = 0, h: int = 160, w: int = 200) -> np.ndarray:
    """A smooth-plus-texture RGB uint8 image (a stand-in photo with edges and flat areas)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            0.5 + 0.4 * np.sin(xx / (9 + seed)) * np.cos(yy / 13),
            0.4 + 0.3 * np.cos((xx + yy) / 17),
            0.5 + 0.2 * np.sin(yy / 7),
        ],
        axis=-1,
    )
    base[h // 3 : h // 2, w // 4 : w // 2] = [0.9, 0.2, 0.1]
    base += rng.normal(0, 0.03, base.shape).astype(np.float32)
    return np.clip(base * 255, 0, 255).astype(np.uint8)
