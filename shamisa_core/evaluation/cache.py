"""The feature cache: content-addressed keys, never a stale or a cached failure (issue 8).

A cached feature array is reused only when everything it depends on is the same:

* each image's identity: its resolved path, size and modification time (``identity="stat"``,
  the default), or its sha256 (``identity="sha256"``: copies with the same bytes share);
* the dataset version (annotation rows, labels included) and the row kind (image or reference);
* the encoder's fingerprint (sha256 of its weights), architecture and ``inference_tag``
  (bf16 autocast, channels_last, BN folding change the numbers);
* the crop size and the short-side resize;
* ``features.FEATURE_CODE_VERSION`` and the input normalisation.

Rows of images that failed to load are NaN in the file and retried on every hit, so a
repaired image is read again and a failure is never served from the cache. A cache file that
cannot be read is rebuilt, with a warning that names it.

Layout: ``<dataset work dir>/features/<key>.npy`` plus ``<key>.json`` (provenance).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from shamisa_core.atomic import atomic_open, atomic_write_json, file_sha256

from .features import (
    FEATURE_CODE_VERSION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureConfig,
    extract_features,
    extract_reference_features,
)

if TYPE_CHECKING:
    from .encoders import EncoderHandle
    from .prepared import PreparedDataset

DEFAULT_FEATURE_BATCH = 64  # crops per encoder call (6 images x 10 crops; 64-320 measured equal)
IDENTITY_MODES: tuple[str, ...] = ("stat", "sha256")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ----------------------------------------------------------------------------------------------
# Key parts


def encoder_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's state dict (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def image_identity(paths: Sequence[str | os.PathLike], mode: str = "stat") -> str:
    """One digest of the identity of every file in ``paths`` (order matters).

    ``stat``: resolved path, size and mtime (ns) per file; ``sha256``: the bytes. A missing
    or unreadable file contributes ``missing``, so its return changes the digest.
    """
    if mode not in IDENTITY_MODES:
        raise ValueError(f"identity mode {mode!r}; expected one of {IDENTITY_MODES}")
    digest = hashlib.sha256(mode.encode())
    for p in paths:
        path = Path(p)
        try:
            if mode == "stat":
                st = path.stat()
                part = f"{path.resolve()}\t{st.st_size}\t{st.st_mtime_ns}"
            else:
                part = file_sha256(path)
        except OSError:
            part = f"{path}\tmissing"
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()


def feature_cache_key(encoder_hash: str, dataset_version: str, crop_size: int,
                      extra: str = "") -> str:
    """Cache key: readable prefix + hash of (encoder hash, dataset version, crop size, extra).

    ``extra`` carries everything else the features depend on (``features_key`` fills it).
    """
    digest = hashlib.sha256(f"{encoder_hash}|{dataset_version}|{crop_size}|{extra}".encode())
    return f"p{crop_size}-{digest.hexdigest()[:20]}"


def key_parts(prepared: PreparedDataset, encoder: EncoderHandle, crop_size: int,
              kind: str = "nr", identity: str = "stat") -> dict[str, Any]:
    """Everything a dataset's cached features depend on (see the module docstring)."""
    column = "reference_image" if kind == "ref" else "image"
    paths = prepared.table[column].tolist()
    if kind == "ref":
        paths = sorted(set(map(str, paths)))
    return {"code": FEATURE_CODE_VERSION, "kind": kind, "dataset": prepared.name,
            "dataset_version": prepared.version, "identity_mode": identity,
            "images": image_identity(paths, identity), "n_rows": len(prepared.table),
            "encoder": encoder.fingerprint,
            "arch": (encoder.meta.get("model_config") or {}).get("arch"),
            "inference_tag": encoder.inference_tag, "crop_size": int(crop_size),
            "resize_short_side": prepared.info.resize_short_side,
            "normalisation": [list(IMAGENET_MEAN), list(IMAGENET_STD)]}


def features_key(parts: dict[str, Any]) -> str:
    """The cache key of :func:`key_parts`."""
    return feature_cache_key(parts["encoder"], parts["dataset_version"], parts["crop_size"],
                             json.dumps(parts, sort_keys=True))


# ----------------------------------------------------------------------------------------------
# Generic .npy cache


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """Where features of ``key`` live."""
    return Path(cache_dir) / f"{key}.npy"


def save_cached_features(cache_dir: str | Path, key: str, features: np.ndarray) -> Path:
    """Write features to ``cache_dir/key.npy`` atomically."""
    target = cache_path(cache_dir, key)
    with atomic_open(target, "wb") as fh:
        np.save(fh, np.asarray(features, dtype=np.float64), allow_pickle=False)
    return target


def _read_npy(path: Path, log: Log = _quiet) -> np.ndarray | None:
    """The array in ``path``; None (with a warning naming the file) when it cannot be read."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, pickled: all rebuilt
        msg = f"unreadable cache file {path} ({type(exc).__name__}: {exc}); rebuilding it"
        warnings.warn(msg, stacklevel=3)
        log(msg)
        return None


def load_cached_features(cache_dir: str | Path, key: str) -> np.ndarray | None:
    """Cached features of ``key``, or None when absent or unreadable (warned)."""
    path = cache_path(cache_dir, key)
    return _read_npy(path) if path.is_file() else None


def cached_features(cache_dir: str | Path, key: str,
                    compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """Load features of ``key`` from the cache, or compute and store them (hit flag too)."""
    found = load_cached_features(cache_dir, key)
    if found is not None:
        return found, True
    features = np.asarray(compute(), dtype=np.float64)
    save_cached_features(cache_dir, key, features)
    return features, False


# ----------------------------------------------------------------------------------------------
# Dataset features


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features (n, 5, 2d) float64 of one dataset under one encoder, and where they live."""

    features: np.ndarray
    key: str
    path: Path
    cache_hit: bool
    failed: tuple[tuple[str, str], ...]
    encoder_fingerprint: str
    crop_size: int
    seconds: float = 0.0
    retried: int = 0

    @property
    def n_failed(self) -> int:
        """Images that could not be read (NaN rows)."""
        return len(self.failed)

    def to_json(self) -> dict[str, Any]:
        """Provenance: key, path, hit, failures, shape, time."""
        return {"key": self.key, "path": str(self.path), "cache_hit": self.cache_hit,
                "n_failed": self.n_failed, "failed": [list(f) for f in self.failed[:20]],
                "retried_failed_rows": self.retried,
                "encoder_fingerprint": self.encoder_fingerprint, "crop_size": self.crop_size,
                "shape": list(self.features.shape), "seconds": round(self.seconds, 3)}


def _extract(prepared: PreparedDataset, encoder: EncoderHandle, config: FeatureConfig,
             kind: str, rows: np.ndarray | None = None):  # noqa: ANN202 - FeatureResult
    table = prepared.table if rows is None else prepared.table.iloc[rows]
    if kind == "ref":
        return extract_reference_features(table["reference_image"].tolist(), encoder.module,
                                          config, allow_empty=rows is not None)
    return extract_features(table["image"].tolist(), encoder.module, config,
                            allow_empty=rows is not None)


def _nan_rows(features: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isnan(features.reshape(features.shape[0], -1)).any(axis=1))


def _write(path: Path, features: np.ndarray, side: dict[str, Any]) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(features, dtype=np.float64), allow_pickle=False)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    atomic_write_json(path.with_suffix(".json"), side)


def encode_dataset(prepared: PreparedDataset, encoder: EncoderHandle, crop_size: int, *,
                   kind: str = "nr", batch_size: int = DEFAULT_FEATURE_BATCH,
                   device: str = "cpu", compute: bool = True, identity: str = "stat",
                   log: Log = _quiet) -> FeatureSet | None:
    """Features of every image (``kind="nr"``) or of each row's reference (``"ref"``, §7.8).

    Read from ``<work>/features/<key>.npy`` when the content key matches (module docstring);
    failed rows of a hit are retried. Otherwise extracted (§7.3) and written atomically with a
    JSON sidecar. ``compute=False`` returns None instead of extracting.
    """
    parts = key_parts(prepared, encoder, crop_size, kind, identity)
    key = features_key(parts)
    path = prepared.work_dir / "features" / f"{key}.npy"
    config = FeatureConfig(crop_size=crop_size, batch_size=batch_size, device=device,
                           resize_short_side=prepared.info.resize_short_side)
    side = {"dataset": prepared.name, "encoder_role": encoder.role, "key_parts": parts}
    feats = _read_npy(path, log) if path.is_file() else None
    if feats is not None and (feats.ndim != 3 or feats.shape[0] != len(prepared.table)):
        msg = f"cache file {path} has shape {feats.shape} for {len(prepared.table)} rows; rebuilding it"
        warnings.warn(msg, stacklevel=2)
        log(msg)
        feats = None
    if feats is not None:
        bad = _nan_rows(feats)
        failed: tuple[tuple[str, str], ...] = ()
        if bad.size:
            if not compute:
                return None
            start = time.perf_counter()
            retry = _extract(prepared, encoder, config, kind, bad)
            if retry.features.shape[1:] == feats.shape[1:]:
                feats = feats.copy()
                feats[bad] = retry.features
            failed = retry.failed
            if len(failed) < bad.size:  # some were repaired: store them
                _write(path, feats, {**side, "shape": list(feats.shape),
                                     "failed": [list(f) for f in failed]})
            return FeatureSet(feats, key, path, True, tuple(failed), encoder.fingerprint,
                              crop_size, time.perf_counter() - start, retried=int(bad.size))
        return FeatureSet(feats, key, path, True, failed, encoder.fingerprint, crop_size, 0.0)
    if not compute:
        return None
    start = time.perf_counter()
    result = _extract(prepared, encoder, config, kind)
    seconds = time.perf_counter() - start
    _write(path, result.features, {**side, "shape": list(result.features.shape),
                                   "failed": [list(f) for f in result.failed],
                                   "seconds": round(seconds, 3)})
    return FeatureSet(result.features, key, path, False, result.failed, encoder.fingerprint,
                      crop_size, seconds)
