"""The embedded proxy benchmark: a KADID-10K-style set built from the packaged photos.

Human-scored benchmarks cannot ship with the project, so ``make run`` evaluates on this proxy:
the packaged *proxy* photos (``pristine.PROXY_PHOTOS``, disjoint from the photos the default
corpus is built from, so no content leaks from training into the test), centre-cropped to 512x384, each degraded by single distortions of
the project's own engine at 5 fixed levels (t = 0..4), written in the KADID-10K file layout
(``dmos.csv`` + ``images/I<ref>_<type>_<level>.png``) so the KADID loader reads it (engine type names come from its extra ``type`` column).

Its labels are a **pseudo-MOS, not a human one**: four analytical full-reference metrics of
``piq`` (SSIM, GMSD, HaarPSI, MDSI; no learned weights, nothing downloaded) are computed on the
images downscaled by ``max(1, round(min(H, W) / 256))`` (the SSIM authors' recommended viewing
scale; 2 for 512x384), oriented so higher = better, z-scored over the set, averaged, and
mapped linearly to [1, 5].
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from shamisa_core.distortions.composition import apply_chain
from shamisa_core.distortions.registry import REGISTRY, get_type
from shamisa_core.distortions.severity import index_to_value
from shamisa_core.atomic import atomic_write_bytes
from shamisa_core.pristine import PROXY_PHOTOS, embedded_photos

PROXY_SIZE = (512, 384)  # width, height (KADID-10K's image size)
LEVELS = (0.0, 1.0, 2.0, 3.0, 4.0)
# (name, higher_is_better)
METRICS: tuple[tuple[str, bool], ...] = (
    ("ssim", True),
    ("gmsd", False),
    ("haarpsi", True),
    ("mdsi", False),
)


@dataclass(frozen=True)
class ProxySpec:
    """What to build: how many references, which types, which levels."""

    n_refs: int = len(PROXY_PHOTOS)
    types: tuple[str, ...] = tuple(REGISTRY)
    levels: tuple[float, ...] = LEVELS
    seed: int = 27


def center_crop_resize(img: np.ndarray, size: tuple[int, int] = PROXY_SIZE) -> np.ndarray:
    """Resize (bicubic) so the image covers ``size``, then centre-crop to exactly ``size``."""
    w, h = size
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih)
    if scale > 1 or (iw > 2 * w and ih > 2 * h):
        nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
        ih, iw = img.shape[:2]
    y0, x0 = (ih - h) // 2, (iw - w) // 2
    return np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def pseudo_mos_metrics(ref: np.ndarray, dists: Sequence[np.ndarray]) -> np.ndarray:
    """(n_dist, n_metrics) raw FR metric values of each distorted image against ``ref``."""
    import piq
    import torch

    r = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    d = torch.from_numpy(np.stack(dists)).permute(0, 3, 1, 2).float().div(255)
    factor = max(1, round(min(ref.shape[:2]) / 256))
    if factor > 1:
        r = torch.nn.functional.avg_pool2d(r, factor)
        d = torch.nn.functional.avg_pool2d(d, factor)
    r = r.expand(d.shape[0], -1, -1, -1)
    fns = {"ssim": piq.ssim, "gmsd": piq.gmsd, "haarpsi": piq.haarpsi, "mdsi": piq.mdsi}
    out = []
    with torch.inference_mode():
        for name, _ in METRICS:
            v = fns[name](d, r, data_range=1.0, reduction="none")
            out.append(v.double().numpy())
    return np.stack(out, axis=1)


def pseudo_mos(raw: np.ndarray) -> np.ndarray:
    """Orient (higher = better), z-score each metric, average, map linearly to [1, 5]."""
    signs = np.array([1.0 if hib else -1.0 for _, hib in METRICS])
    x = raw * signs
    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    s = z.mean(axis=1)
    return 1.0 + 4.0 * (s - s.min()) / max(s.max() - s.min(), 1e-12)


def build_proxy(out_dir: Path, spec: ProxySpec = ProxySpec()) -> Path:
    """Write the proxy benchmark into ``out_dir`` (KADID-10K layout). Returns ``dmos.csv``.

    Deterministic: the same spec gives the same files. Skips the work when ``dmos.csv`` exists
    with the same spec.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    csv_path = out_dir / "dmos.csv"
    spec_path = out_dir / "proxy_spec.json"
    spec_json = json.dumps(
        {"n_refs": spec.n_refs, "types": list(spec.types), "levels": list(spec.levels), "seed": spec.seed,
         "photos": list(PROXY_PHOTOS[: spec.n_refs])},
        sort_keys=True,
    )
    if csv_path.exists() and spec_path.exists() and spec_path.read_text() == spec_json:
        return csv_path
    photos = embedded_photos("proxy")[: spec.n_refs]
    if len(photos) < spec.n_refs:
        raise ValueError(f"only {len(photos)} packaged photos, asked for {spec.n_refs} references")
    rows = []
    raws = []
    images = out_dir / "images"
    for r, (_, photo) in enumerate(photos, start=1):
        ref = center_crop_resize(photo)
        ref_name = f"I{r:02d}.png"
        atomic_write_bytes(images / ref_name, _png(ref))
        x = ref.astype(np.float32) / 255.0
        dists = []
        for ti, key in enumerate(spec.types, start=1):
            dtype = get_type(key)
            for li, t in enumerate(spec.levels, start=1):
                _, value = index_to_value(dtype, t)
                rng = np.random.default_rng([spec.seed, r, ti, li])
                out = np.rint(apply_chain(x, [(key, value)], rng) * 255).astype(np.uint8)
                name = f"I{r:02d}_{ti:02d}_{li:02d}.png"
                atomic_write_bytes(images / name, _png(out))
                dists.append(out)
                rows.append({"dist_img": name, "ref_img": ref_name, "type": key, "level": li})
        raws.append(pseudo_mos_metrics(ref, dists))
    raw = np.concatenate(raws)
    mos = pseudo_mos(raw)
    df = pd.DataFrame(rows)
    df["dmos"] = np.round(mos, 6)  # KADID's column name; higher = better (METHOD.md §7.1)
    for j, (name, _) in enumerate(METRICS):
        df[f"fr_{name}"] = raw[:, j]
    buf = io.BytesIO()
    df[["dist_img", "ref_img", "dmos"] + [c for c in df.columns if c.startswith("fr_") or c in ("type", "level")]].to_csv(buf, index=False)
    atomic_write_bytes(csv_path, buf.getvalue())
    atomic_write_bytes(spec_path, spec_json.encode())
    return csv_path
