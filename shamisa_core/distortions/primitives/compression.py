"""Compression family: jpeg2000, jpeg (METHOD.md §1.2 "jpeg", §1.4).

Both encode and decode with a real codec. The float image is converted to uint8 by
truncation (``floor(clip(x, 0, 1) * 255)``), as the reference does (not rounding); the decoded
image comes back as ``k / 255``. Deterministic (``rng`` unused).
"""

from __future__ import annotations

import io
import math

import cv2
import imagecodecs
import numpy as np
from PIL import Image

_INV255 = np.float32(1.0 / 255.0)
_J2K_MAX_RESOLUTIONS = 8

_JPEG_PARAMS: list[int] = []
if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR") and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_420"):
    _JPEG_PARAMS = [int(cv2.IMWRITE_JPEG_SAMPLING_FACTOR), int(cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)]


def _to_uint8_truncate(img: np.ndarray) -> np.ndarray:
    """``floor(clip(x, 0, 1) * 255)`` as uint8 (the reference truncates, it does not round)."""
    x = np.clip(img, 0.0, 1.0) * np.float32(255.0)
    return x.astype(np.uint8)


def jpeg(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG encode/decode at integer quality ``value`` (METHOD.md §1.4 jpeg).

    libjpeg-turbo through OpenCV: baseline, 4:2:0 chroma subsampling, standard tables scaled by
    quality, islow DCT; identical (uint8 MAE 0) to the torchvision codec the reference used on
    the conformance vectors. The RGB->BGR swap only adapts to OpenCV's channel order.
    """
    quality = int(min(max(int(value), 1), 100))
    bgr = cv2.cvtColor(_to_uint8_truncate(img), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality, *_JPEG_PARAMS])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    out = dec.astype(np.float32)
    out *= _INV255
    return out


def j2k_num_resolutions(height: int, width: int) -> int:
    """Resolution levels used for a ``height x width`` image: 8, capped so that OpenJPEG accepts
    it (``2 ** (levels - 1) <= min(height, width)``), e.g. 7 for a 96-px crop."""
    side = max(1, min(int(height), int(width)))
    return max(1, min(_J2K_MAX_RESOLUTIONS, int(math.floor(math.log2(side))) + 1))


def jpeg2000(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG 2000 encode/decode at compression ratio ``value`` (METHOD.md §1.4 jpeg2000).

    Pillow + OpenJPEG: rate mode with one quality layer ``[ratio]``, 8 resolution levels
    (capped for crops smaller than 128 px, see :func:`j2k_num_resolutions`), LRCP progression,
    and Pillow's default **reversible 5/3** wavelet: that is what reproduces the reference's
    stored images bit for bit (the irreversible 9/7 wavelet does not: uint8 MAE 4-27/255).
    Raises if Pillow lacks the OpenJPEG codec (no silent JPEG fallback).

    Decoding goes through ``imagecodecs`` (the same OpenJPEG 2.5 decoder without Pillow's
    file-object layer: identical pixels, ~0.6 ms less per call). Encoding stays on Pillow:
    ``imagecodecs.jpeg2k_encode`` has no compression-ratio mode (only a PSNR target) and runs
    the same OpenJPEG tier-1 coder, so it is no faster (docs/DECISIONS.md, engine speed).
    """
    h, w = img.shape[:2]
    ratio = float(max(int(value), 1))
    buf = io.BytesIO()
    Image.fromarray(_to_uint8_truncate(img)).save(
        buf,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[ratio],
        num_resolutions=j2k_num_resolutions(h, w),
        progression="LRCP",
        irreversible=False,
    )
    arr = imagecodecs.jpeg2k_decode(buf.getbuffer(), numthreads=1)
    out = arr.astype(np.float32)
    out *= _INV255
    return out
