"""Build one group from (seed, shard, group) alone (METHOD.md §2.2-2.3; DECISIONS 2-5).

A group holds R references x 2 scales (V = 2R views, full-scale block first) as pristine
crops, and for each view the same C compositions at L levels. Exactly one factor varies at a
time: content (reference), scale, the severity of one slot (level), or the recipe
(composition). Everything random derives from ``numpy.random.SeedSequence(seed,
spawn_key=(shard, group, tag, ...))`` so any group is regenerated alone, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from shamisa_core.config import EngineConfig, GroupConfig
from shamisa_core.distortions.registry import get_type
from shamisa_core.distortions.composition import (
    Composition,
    apply_levels,
    sample_composition,
    to_uint8,
)

# Spawn-key tags: which part of a group a generator feeds.
_TAG_REFS, _TAG_CROP, _TAG_COMP, _TAG_PREFIX, _TAG_LEVEL = range(5)


def group_rng(seed: int, shard: int, group: int, *path: int) -> np.random.Generator:
    """The generator for one coordinate of one group (DECISIONS 5)."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(shard, group, *path))
    return np.random.Generator(np.random.PCG64(ss))


@dataclass
class Group:
    """One WebDataset sample: pristine crops, distorted crops and the JSON record."""

    key: str
    ref: np.ndarray  # (V, P, P, 3) uint8
    dist: np.ndarray  # (V, C, L, P, P, 3) uint8
    record: dict[str, Any]


def upscale_to_min_side(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic upsampling so the shorter side is at least ``size`` (DECISIONS 4)."""
    h, w = img.shape[:2]
    if min(h, w) >= size:
        return img
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))


def half_scale(img: np.ndarray) -> np.ndarray:
    """The image downscaled by 2 in each dimension (bicubic, METHOD.md §2.2)."""
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((max(1, w // 2), max(1, h // 2)), Image.BICUBIC))


def random_crop(
    img: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """A random ``size``x``size`` crop; reflect padding where the image is smaller (DECISIONS 4).

    Returns the crop and its box ``[x0, y0, x1, y1]`` in the image's coordinates (the box may
    extend past the border when padding was needed).
    """
    h, w = img.shape[:2]
    y0 = int(rng.integers(0, max(1, h - size + 1)))
    x0 = int(rng.integers(0, max(1, w - size + 1)))
    crop = img[y0 : y0 + size, x0 : x0 + size]
    ph, pw = size - crop.shape[0], size - crop.shape[1]
    if ph > 0 or pw > 0:
        crop = np.pad(crop, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(crop.shape[:2]) > 1 else "edge")
        while crop.shape[0] < size or crop.shape[1] < size:  # reflect needs side > pad
            crop = np.pad(
                crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1]), (0, 0)), mode="symmetric"
            )
    return np.ascontiguousarray(crop), [x0, y0, x0 + size, y0 + size]


def recipe_digest(keys: Sequence[str], values: Sequence[float], t: Sequence[float]) -> str:
    """Short sha256 of one level's recipe (types, values, indices)."""
    payload = json.dumps([list(keys), [float(v) for v in values], [float(x) for x in t]])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def group_key(shard: int, group: int) -> str:
    """WebDataset sample key of a group."""
    return f"s{shard:06d}_g{group:06d}"


def build_group(
    sources: Sequence[str],
    loader: Callable[[str], np.ndarray],
    seed: int,
    shard: int,
    group: int,
    groups_per_shard: int,
    gcfg: GroupConfig,
    ecfg: EngineConfig,
) -> Group:
    """Build one group deterministically from ``(seed, shard, group)`` (METHOD.md §2.2).

    ``sources`` is the ordered list of pristine image ids; ``loader`` returns the RGB uint8
    array for one id. Reference 0 cycles through the sources by global group index; the other
    references are drawn at random (with replacement).
    """
    if not sources:
        raise ValueError("no pristine source images")
    P, R, C, L = gcfg.patch_size, gcfg.n_refs, gcfg.n_comps, gcfg.n_levels
    V = 2 * R
    global_index = shard * groups_per_shard + group
    rng_refs = group_rng(seed, shard, group, _TAG_REFS)
    ref_ids = [global_index % len(sources)] + [
        int(rng_refs.integers(len(sources))) for _ in range(R - 1)
    ]
    comps: list[Composition] = [
        sample_composition(group_rng(seed, shard, group, _TAG_COMP, c), L, ecfg) for c in range(C)
    ]
    stochastic = [
        (any(get_type(t).stochastic for t in comp.keys[: comp.varying_slot]),
         any(get_type(t).stochastic for t in comp.keys[comp.varying_slot :]))
        for comp in comps
    ]
    # A level's recipe is the same in every view: digest it once per (composition, level).
    recipes = [[recipe_digest(comp.keys, comp.values[l], comp.t[l]) for l in range(L)] for comp in comps]
    ref = np.empty((V, P, P, 3), dtype=np.uint8)
    dist = np.empty((V, C, L, P, P, 3), dtype=np.uint8)
    references: list[dict[str, Any]] = []
    crops_meta: list[dict[str, Any]] = []
    for r, sid in enumerate(ref_ids):
        full = upscale_to_min_side(loader(sources[sid]), P)
        half = half_scale(full)
        boxes = {}
        for s, img in enumerate((full, half)):
            v = s * R + r
            crop, box = random_crop(img, P, group_rng(seed, shard, group, _TAG_CROP, r, s))
            boxes["full" if s == 0 else "half"] = box
            ref[v] = crop
            x = crop.astype(np.float32) / np.float32(255.0)
            for c, comp in enumerate(comps):
                # Generators are made only where a stochastic type will draw from them (each
                # derives from its own spawn key, so skipping one changes no other stream).
                prefix = group_rng(seed, shard, group, _TAG_PREFIX, r, s, c) if stochastic[c][0] else None
                levels = (
                    [group_rng(seed, shard, group, _TAG_LEVEL, r, s, c, l) for l in range(L)]
                    if stochastic[c][1] else [None] * L
                )
                outs = apply_levels(x, comp, prefix, levels, ecfg.j2k_shared_levels)
                for l, out in enumerate(outs):
                    dist[v, c, l] = to_uint8(out)
                    crops_meta.append(
                        {
                            "view": v,
                            "reference": r,
                            "scale": s,
                            "composition": c,
                            "level": l,
                            "recipe": recipes[c][l],
                        }
                    )
        references.append(
            {
                "id": r,
                "source": sources[sid],
                "full_size": [int(full.shape[1]), int(full.shape[0])],
                "half_size": [int(half.shape[1]), int(half.shape[0])],
                "crop_full": boxes["full"],
                "crop_half": boxes["half"],
            }
        )
    record = {
        "group_id": group_key(shard, group),
        "seed": int(seed),
        "shard": int(shard),
        "group": int(group),
        "patch_size": int(P),
        "n_refs": R,
        "n_comps": C,
        "n_levels": L,
        "view_layout": "v < R: reference v at full scale; v >= R: reference v-R at half scale",
        "references": references,
        "compositions": [comp.to_record() for comp in comps],
        "crops": crops_meta,
    }
    return Group(key=group_key(shard, group), ref=ref, dist=dist, record=record)


@lru_cache(maxsize=64)
def _cached_rgb(path: str) -> np.ndarray:
    from shamisa_core.pristine import load_rgb

    arr = load_rgb(path)
    arr.setflags(write=False)
    return arr


def default_loader(path: str) -> np.ndarray:
    """Load a pristine image by path, with a small LRU cache (read-only arrays)."""
    return _cached_rgb(str(path))
