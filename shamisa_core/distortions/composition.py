"""Compositions: chains of distortions where one slot varies over L levels (METHOD.md §1.6-1.7).

A composition is 1..``max_distortions`` types, at most one per family, in random order (or the
fixed alphabetical order). One slot (``varying_slot``) takes L independent severities; every
other slot shares one severity across the levels. Levels are stored sorted by the varying
slot's ``t`` (DECISIONS 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from shamisa_core.config import EngineConfig
from shamisa_core.distortions.registry import FAMILIES, REGISTRY, get_type
from shamisa_core.distortions.severity import sample_severity


@dataclass(frozen=True)
class Composition:
    """One recipe with its L severity settings (METHOD.md §1.6 outputs).

    ``keys``: the chain's type keys in application order (length n).
    ``varying_slot``: position k* of the slot whose severity varies.
    ``t``/``values``: arrays of shape (L, n): severity index and parameter value per level/slot.
    """

    keys: tuple[str, ...]
    varying_slot: int
    t: np.ndarray
    values: np.ndarray

    @property
    def n_levels(self) -> int:
        return int(self.t.shape[0])

    def level_chain(self, level: int) -> list[tuple[str, float]]:
        """``[(key, value), ...]`` for one level, in application order."""
        return [(k, float(self.values[level, s])) for s, k in enumerate(self.keys)]

    def to_record(self) -> dict[str, Any]:
        """JSON record: ``varying_slot``, ``slots`` [{family, type}], ``levels`` [{t, value}]."""
        return {
            "varying_slot": int(self.varying_slot),
            "slots": [{"family": REGISTRY[k].family, "type": k} for k in self.keys],
            "levels": [
                {"t": [float(x) for x in self.t[l]], "value": [float(x) for x in self.values[l]]}
                for l in range(self.n_levels)
            ],
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "Composition":
        """Inverse of :meth:`to_record`."""
        keys = tuple(s["type"] for s in rec["slots"])
        t = np.array([lv["t"] for lv in rec["levels"]], dtype=np.float64)
        v = np.array([lv["value"] for lv in rec["levels"]], dtype=np.float64)
        return cls(keys=keys, varying_slot=int(rec["varying_slot"]), t=t, values=v)

    def padded_indices(self, max_slots: int = 7) -> np.ndarray:
        """(L, max_slots) float32 severity indices with -1 in empty slots (METHOD.md §2.4)."""
        out = np.full((self.n_levels, max_slots), -1.0, dtype=np.float32)
        out[:, : len(self.keys)] = self.t
        return out


def choose_types(n: int, rng: np.random.Generator, fixed_order: bool = False) -> tuple[str, ...]:
    """Pick ``n`` types from ``n`` distinct families (METHOD.md §1.6 step 2)."""
    families = sorted(FAMILIES)
    if not 1 <= n <= len(families):
        raise ValueError(f"chain length must be in 1..{len(families)}, got {n}")
    if fixed_order:
        return tuple(sorted(FAMILIES[f])[0] for f in families[:n])
    picked = rng.choice(len(families), size=n, replace=False)
    keys = []
    for idx in picked:
        members = FAMILIES[families[int(idx)]]
        keys.append(members[int(rng.integers(len(members)))])
    return tuple(keys)


def sample_composition(
    rng: np.random.Generator, n_levels: int, cfg: EngineConfig = EngineConfig()
) -> Composition:
    """Sample one composition with ``n_levels`` settings (METHOD.md §1.6; DECISIONS 3)."""
    n = int(rng.integers(1, cfg.max_distortions + 1))
    keys = choose_types(n, rng, cfg.fixed_order)
    k_star = int(rng.integers(n))

    def draw(key: str) -> tuple[float, float]:
        return sample_severity(
            get_type(key),
            rng,
            dist=cfg.severity_dist,
            discrete=cfg.severity_discrete,
            num_levels=cfg.num_levels,
            extended_int=cfg.extended_int,
            std=cfg.severity_std,
        )

    varying = [draw(keys[k_star]) for _ in range(n_levels)]
    shared = [draw(k) for k in keys]
    t = np.array([[s[0] for s in shared]] * n_levels, dtype=np.float64)
    v = np.array([[s[1] for s in shared]] * n_levels, dtype=np.float64)
    for level, (tv, vv) in enumerate(varying):
        t[level, k_star] = tv
        v[level, k_star] = vv
    if cfg.sort_levels:
        order = np.argsort(t[:, k_star], kind="stable")
        t, v = t[order], v[order]
    return Composition(keys=keys, varying_slot=k_star, t=t, values=v)


def apply_chain(
    img: np.ndarray, chain: Sequence[tuple[str, float]], rng: np.random.Generator
) -> np.ndarray:
    """Apply ``[(key, value), ...]`` in order, clamping to [0, 1] after each (METHOD.md §1.7).

    ``img`` is (H, W, 3) float32 RGB in [0, 1]; it is not modified. The clamp is skipped after
    the types whose output is in [0, 1] already (``registry.CLAMPED_KEYS``): it would change
    no bit there.
    """
    out = img
    for key, value in chain:
        prev = out
        dtype = get_type(key)
        out = np.asarray(dtype.fn(prev, float(value), rng), dtype=np.float32)
        if out is not prev and not dtype.clamped:
            np.clip(out, 0.0, 1.0, out=out)
    if out is img:
        out = img.copy()
    return out


def apply_levels(
    img: np.ndarray,
    comp: Composition,
    prefix_rng: np.random.Generator | None,
    level_rngs: Sequence[np.random.Generator | None],
    j2k_shared_levels: bool = False,
) -> list[np.ndarray]:
    """All L levels of ``comp`` on one crop, sharing the prefix (METHOD.md §1.7 ``variant_b``).

    Slots before the varying slot are applied once (one random realisation shared by the
    levels); the varying slot and the suffix are applied per level with that level's rng.
    A generator may be ``None`` where no stochastic type would draw from it.
    A level whose suffix values equal an earlier level's, with only deterministic types in the
    suffix (no rng drawn, see ``registry.STOCHASTIC_KEYS``), is a copy of that level: the same
    bytes as recomputing it, without the work.

    With ``j2k_shared_levels`` (``engine.j2k_shared_levels``) a varying ``jpeg2000`` slot
    encodes its input once, with one quality layer per level
    (:func:`~shamisa_core.distortions.primitives.compression.jpeg2000_levels`, DECISIONS E6):
    its input is the same for every level and ``jpeg2000`` draws no random numbers, so only
    the codec's output changes (within the conformance tolerance), not any random stream.
    """
    k = comp.varying_slot
    base = apply_chain(img, comp.level_chain(0)[:k], prefix_rng)
    deterministic = not any(get_type(key).stochastic for key in comp.keys[k:])
    slot_outs: list[np.ndarray] | None = None
    if j2k_shared_levels and comp.keys[k] == "jpeg2000" and comp.n_levels > 1:
        from shamisa_core.distortions.primitives.compression import jpeg2000_levels

        slot_outs = jpeg2000_levels(base, [float(v) for v in comp.values[:, k]])
    done: dict[tuple[float, ...], np.ndarray] = {}
    outs = []
    for level in range(comp.n_levels):
        chain = comp.level_chain(level)[k:]
        values = tuple(v for _, v in chain)
        if deterministic and values in done:
            outs.append(done[values].copy())
            continue
        if slot_outs is not None:
            # jpeg2000's levels are k / 255 already (registry.CLAMPED_KEYS): no clamp needed.
            out = apply_chain(slot_outs[level], chain[1:], level_rngs[level])
        else:
            out = apply_chain(base, chain, level_rngs[level])
        if deterministic:
            done[values] = out
        outs.append(out)
    return outs


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``rint(clip(img, 0, 1) * 255)`` as uint8 for a float32 (H, W, 3) image in [0, 1].

    One OpenCV pass (float32 multiply by 255, round half to even, saturate): the same bytes as
    ``np.rint(img * 255.0).astype(np.uint8)`` on clamped input, about 20x faster.
    """
    src = np.ascontiguousarray(img, dtype=np.float32)
    return cv2.convertScaleAbs(src, alpha=255.0)
