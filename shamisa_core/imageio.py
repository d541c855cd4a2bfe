"""The project's one image loader: any PIL pixel format -> uint8 RGB (H, W, 3).

Every stage that reads a photo from disk (``shamisa distort``, the pristine scan and the
corpus build, evaluation features, scoring) goes through :func:`read_rgb`, so a file reads
the same everywhere. Rules (docs/DECISIONS.md, "Image loading"):

* EXIF orientation is applied first (``ImageOps.exif_transpose``), so a portrait photo stored
  sideways is read upright.
* Integer greyscale: ``1`` (0/255), ``L`` as is; ``I;16*`` (16-bit) and ``I`` (32-bit, the
  mode older Pillow versions give 16-bit PNGs) are scaled from ``[0, 65535]`` by
  ``round(v / 257)`` (``I`` values outside that range are clipped). Without this, PIL's
  ``convert("RGB")`` clips a 16-bit image at 255 and turns it white.
* ``F`` (32-bit float): taken as ``[0, 1]`` when its maximum is <= 1, else as ``[0, 255]``;
  clipped; NaN or inf is an error.
* Alpha (``LA``, ``PA``, ``RGBA``, ``P`` with a transparent index, ``La``, ``RGBa``) is
  composited over white, as a viewer on a white page shows it.
* ``P``, ``CMYK``, ``YCbCr``, ``RGBX`` and anything else go through PIL's own conversion.
* Multi-frame files (GIF, TIFF) give their first frame.

Failures raise :class:`~shamisa_core.errors.ImageReadError` naming the file and the reason
(missing, a folder, 0 bytes, truncated, not an image, too large, unsupported format).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shamisa_core.errors import ImageReadError

_ALPHA_MODES = {"LA", "PA", "RGBA", "La", "RGBa"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;16BS", "I;16LS"}


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def _scale_to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    """Map ``[0, top]`` to ``[0, 255]`` with round-half-to-even, clipping outside values."""
    return np.rint(np.clip(values.astype(np.float64), 0.0, top) * (255.0 / top)).astype(np.uint8)


def image_to_rgb(im: Image.Image, name: str = "<image>") -> np.ndarray:
    """Convert a decoded PIL image (any mode) to uint8 RGB following the module's rules.

    ``name`` only appears in error messages. EXIF orientation is *not* applied here (see
    :func:`read_rgb`, which applies it before calling this).
    """
    mode = im.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if mode in ("L", "1"):
        return _grey_to_rgb(np.asarray(im.convert("L"), dtype=np.uint8))
    if mode in _SIXTEEN_BIT or mode == "I":
        arr = np.asarray(im)
        if arr.dtype == np.uint8 or arr.ndim != 2:  # defensive: unusual raw layouts
            arr = np.asarray(im.convert("I"))
        return _grey_to_rgb(_scale_to_uint8(arr, 65535.0))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageReadError(name, "32-bit float image holds NaN or inf values")
        top = 1.0 if arr.size == 0 or float(arr.max()) <= 1.0 else 255.0
        return _grey_to_rgb(_scale_to_uint8(arr, top))
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        alpha = rgba[:, :, 3:4] / 255.0
        out = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.rint(out).astype(np.uint8))
    try:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except (ValueError, OSError) as exc:
        raise ImageReadError(name, f"pixel format {mode!r} has no RGB conversion ({exc})") from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a C-contiguous uint8 RGB array (H, W, 3); see the module rules.

    Raises :class:`~shamisa_core.errors.ImageReadError` naming ``path`` and the reason.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise ImageReadError(p, "the file does not exist; check the path")
    if p.is_dir():
        raise ImageReadError(p, "it is a folder, not an image file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageReadError(p, f"cannot stat it ({exc.strerror})") from None
    if size == 0:
        raise ImageReadError(p, "the file is empty (0 bytes); replace it with the intact image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette-transparency and EXIF notices
            with Image.open(p) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                return image_to_rgb(im, str(p))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image file PIL can identify (wrong kind of file?)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(p, f"too large to decode safely ({exc})") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied; make it readable") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            reason = f"truncated or damaged ({reason}); replace it with the intact image"
        else:
            reason = f"damaged or unsupported ({type(exc).__name__}: {reason})"
        raise ImageReadError(p, reason) from None


def read_rgb_image(path: str | os.PathLike) -> Image.Image:
    """:func:`read_rgb` as a PIL ``RGB`` image (for code that resizes with PIL)."""
    return Image.fromarray(read_rgb(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, decoding the whole file (so truncation
    shows); raises :class:`~shamisa_core.errors.ImageReadError` like :func:`read_rgb`."""
    arr = read_rgb(path)
    return int(arr.shape[1]), int(arr.shape[0])
