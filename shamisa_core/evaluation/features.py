"""Test-time feature extraction: 5 crops x 2 scales per image (METHOD.md §7.3, DECISIONS 4).

Per image: the full image and a 2x-downscaled copy (bicubic). From each, five ``P x P`` crops in
the order centre, top-left, bottom-left, top-right, bottom-right. An image whose shorter side is
below ``P`` at full scale is first upsampled (bicubic) so that side equals ``P``; where a crop
still runs past the border (half-scale copies of small images) the image is reflect-padded,
never black-padded (DECISIONS 4). Crops are ImageNet-normalised and encoded in batches under
``torch.inference_mode`` by any callable ``encoder(x: Tensor[N, 3, P, P]) -> Tensor[N, d]``;
crop ``k``'s feature is ``concat(h(full crop k), h(half crop k))``, giving an
``(n_images, 5, 2d)`` float64 array. Images that fail to load get NaN rows and are reported.

The same extraction serves the benchmarks (paths), :func:`shamisa_core.serving.score` (paths,
arrays, PIL images) and the encoder pyfunc. The on-disk cache is ``evaluation.cache``; bump
``FEATURE_CODE_VERSION`` whenever a change here changes the features, so cached ones are
not reused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shamisa_core.corpus.reader import IMAGENET_MEAN, IMAGENET_STD

from .datasets.base import DatasetInfo

# Part of every feature cache key: change it when the crops, scales, normalisation or the
# batching of this module change what comes out.
FEATURE_CODE_VERSION = "features/2"
CROP_NAMES: tuple[str, ...] = ("center", "top_left", "bottom_left", "top_right", "bottom_right")
N_CROPS = len(CROP_NAMES)

Encoder = Callable[[torch.Tensor], torch.Tensor]
ImageInput = str | os.PathLike | np.ndarray | Image.Image
LOAD_ERRORS = (OSError, ValueError, TypeError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class FeatureConfig:
    """Crop size ``P``, crops per encoder call, device, and the optional short-side resize
    applied before everything (SPAQ: 512, ``DatasetInfo.resize_short_side``)."""

    crop_size: int = 224
    batch_size: int = 64
    device: str = "cpu"
    resize_short_side: int | None = None


def feature_config_for(info: DatasetInfo, crop_size: int = 224, batch_size: int = 64,
                       device: str = "cpu") -> FeatureConfig:
    """The ``FeatureConfig`` for a dataset: carries its short-side resize (SPAQ, §7.1)."""
    return FeatureConfig(crop_size=crop_size, batch_size=batch_size, device=device,
                         resize_short_side=info.resize_short_side)


@dataclass(frozen=True, eq=False)
class FeatureResult:
    """Features (n_images, 5, 2d) float64, NaN rows for the images that failed to load."""

    features: np.ndarray
    failed: tuple[tuple[str, str], ...]

    @property
    def n_failed(self) -> int:
        """Number of images that could not be loaded or encoded."""
        return len(self.failed)


# ----------------------------------------------------------------------------------------------
# Geometry (pure functions on PIL images / uint8 arrays)


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB (fully decoded) with the project's one loader (shamisa_core.imageio)."""
    from shamisa_core.imageio import read_rgb_image

    return read_rgb_image(path)


def to_pil(image: ImageInput) -> Image.Image:
    """A path, PIL image or HxWx3 (or HxW) uint8 array as an RGB PIL image.

    Raises ``TypeError``/``ValueError`` naming what is wrong with an in-memory input, and the
    loader's ``OSError`` for a file.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"image arrays must be HxWx3, got shape {arr.shape}")
        return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]))
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(f"expected a path, a PIL image or a uint8 array, got {type(image).__name__}")
    path = Path(os.fspath(image))
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return load_rgb(path)


def resize_short_side(img: Image.Image, side: int) -> Image.Image:
    """Resize (bicubic) so that the shorter side equals ``side``, keeping the aspect ratio."""
    w, h = img.size
    if min(w, h) == side:
        return img
    if w <= h:
        size = (side, max(1, int(round(h * side / w))))
    else:
        size = (max(1, int(round(w * side / h))), side)
    return img.resize(size, Image.Resampling.BICUBIC)


def ensure_min_side(img: Image.Image, crop_size: int) -> Image.Image:
    """Upsample (bicubic) an image whose shorter side is below ``crop_size`` (DECISIONS 4)."""
    return resize_short_side(img, crop_size) if min(img.size) < crop_size else img


def half_scale(img: Image.Image) -> Image.Image:
    """The 2x-downscaled copy (bicubic), at least 1 pixel per side (§7.3)."""
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BICUBIC)


def reflect_pad_to(arr: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad an (H, W, C) array so both sides are at least ``size`` (centred padding).

    Never pads with black (DECISIONS 4); repeated reflection covers pads wider than the image.
    """
    h, w = arr.shape[:2]
    pad_h = max(0, size - h)
    pad_w = max(0, size - w)
    if pad_h == 0 and pad_w == 0:
        return arr
    widths = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    return np.pad(arr, widths, mode="reflect")


def five_crop_boxes(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (top, left) of the centre, TL, BL, TR, BR crops of an image >= size."""
    if height < size or width < size:
        raise ValueError(f"image {height}x{width} is smaller than the crop {size}")
    bottom, right = height - size, width - size
    return [(bottom // 2, right // 2), (0, 0), (bottom, 0), (0, right), (bottom, right)]


def five_crops(arr: np.ndarray, size: int) -> np.ndarray:
    """The five ``size x size`` crops of an (H, W, 3) array, reflect-padded first if needed."""
    padded = reflect_pad_to(arr, size)
    boxes = five_crop_boxes(padded.shape[0], padded.shape[1], size)
    return np.stack([padded[top:top + size, left:left + size] for top, left in boxes])


def image_crops(img: Image.Image, crop_size: int, resize_short: int | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(full-scale crops, half-scale crops), each (5, P, P, 3) uint8 (§7.3, DECISIONS 4)."""
    if resize_short is not None:
        img = resize_short_side(img, resize_short)
    img = ensure_min_side(img, crop_size)
    full = five_crops(np.asarray(img, dtype=np.uint8), crop_size)
    half = five_crops(np.asarray(half_scale(img), dtype=np.uint8), crop_size)
    return full, half


def normalise(crops: np.ndarray) -> torch.Tensor:
    """uint8 (N, P, P, 3) -> float32 (N, 3, P, P), ImageNet mean/std normalised."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------------------------
# Encoding


def _encode(encoder: Encoder, crops: np.ndarray, device: str) -> np.ndarray:
    x = normalise(crops).to(device)
    h = encoder(x)
    if h.ndim != 2 or h.shape[0] != crops.shape[0]:
        raise ValueError(f"encoder must return (N, d); got {tuple(h.shape)} for N={len(crops)}")
    return h.detach().to("cpu", torch.float64).numpy()


def _label(image: ImageInput, i: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"<item {i}: {type(image).__name__}>"


def extract_features(paths: Sequence[ImageInput], encoder: Encoder,
                     config: FeatureConfig = FeatureConfig(), *,
                     allow_empty: bool = False) -> FeatureResult:
    """Encode every image's 5 crops at 2 scales (§7.3) -> ``FeatureResult``.

    ``paths`` holds file paths, or in-memory images (HxWx3 uint8 arrays, PIL images). Images
    that cannot be opened or decoded are named in ``failed`` with the reason (arrays as
    ``<item i: ndarray>``), and their rows are NaN. With no readable image at all this is an
    error unless ``allow_empty`` (then the width comes from ``encoder.feature_dim``, else 1).
    An ``nn.Module`` encoder is switched to eval mode for the call and restored.
    """
    module = encoder if isinstance(encoder, torch.nn.Module) else None
    was_training = bool(module.training) if module is not None else False
    if module is not None:
        module.eval()
    per_batch = max(1, config.batch_size // (2 * N_CROPS))
    failed: list[tuple[str, str]] = []
    rows: dict[int, np.ndarray] = {}
    dim: int | None = None
    try:
        with torch.inference_mode():
            pending: list[tuple[int, np.ndarray]] = []
            for i, path in enumerate(paths):
                try:
                    full, half = image_crops(to_pil(path), config.crop_size,
                                             config.resize_short_side)
                except LOAD_ERRORS as exc:
                    failed.append((_label(path, i), f"{type(exc).__name__}: {exc}"))
                    continue
                pending.append((i, np.concatenate([full, half])))
                if len(pending) >= per_batch:
                    dim = _flush(encoder, pending, rows, config.device)
                    pending = []
            if pending:
                dim = _flush(encoder, pending, rows, config.device)
    finally:
        if module is not None:
            module.train(was_training)
    n = len(paths)
    if dim is None:
        if not allow_empty:
            raise ValueError(f"no image could be loaded ({len(failed)} failed), e.g. {failed[:1]}")
        dim = int(getattr(encoder, "feature_dim", 0) or 0) or 1
    features = np.full((n, N_CROPS, 2 * dim), np.nan, dtype=np.float64)
    for i, row in rows.items():
        features[i] = row
    return FeatureResult(features=features, failed=tuple(failed))


def _flush(encoder: Encoder, pending: list[tuple[int, np.ndarray]],
           rows: dict[int, np.ndarray], device: str) -> int:
    """Encode the 10 crops of each pending image; store (5, 2d) rows; return d."""
    h = _encode(encoder, np.concatenate([c for _, c in pending]), device)
    d = h.shape[1]
    for j, (i, _) in enumerate(pending):
        block = h[j * 2 * N_CROPS:(j + 1) * 2 * N_CROPS]
        rows[i] = np.concatenate([block[:N_CROPS], block[N_CROPS:]], axis=1)
    return d


def extract_reference_features(reference_images: Sequence[str | Path], encoder: Encoder,
                               config: FeatureConfig = FeatureConfig(), *,
                               allow_empty: bool = False) -> FeatureResult:
    """Features of each row's reference image, encoding each distinct reference once (§7.8).

    ``reference_images`` is the table's ``reference_image`` column; the result has one row per
    entry, aligned with it.
    """
    unique = sorted(set(map(str, reference_images)))
    result = extract_features(unique, encoder, config, allow_empty=allow_empty)
    position = {p: k for k, p in enumerate(unique)}
    index = np.array([position[str(p)] for p in reference_images], dtype=np.int64)
    return FeatureResult(features=result.features[index], failed=result.failed)
