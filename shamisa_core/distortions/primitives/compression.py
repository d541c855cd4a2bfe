"""Compression family: jpeg2000, jpeg (METHOD.md §1.2 "jpeg", §1.4).

Both encode and decode with a real codec. The float image is converted to uint8 by
truncation (``floor(clip(x, 0, 1) * 255)``), as the reference does (not rounding); the decoded
image comes back as ``k / 255``. Deterministic (``rng`` unused).
"""

from __future__ import annotations

import ctypes
import io
import math
from typing import Sequence

import cv2
import imagecodecs
import numpy as np
from PIL import Image

from shamisa_core import native

_INV255 = np.float32(1.0 / 255.0)
_J2K_MAX_RESOLUTIONS = 8
# Shared codestream of the levels of a varying jpeg2000 slot: extra bytes granted to each layer
# after the first, per packet of a layer (a packet per resolution and component), for the packet
# headers that the earlier layers add (docs/DECISIONS.md E6; 38 bytes for 8 resolutions x 3).
_J2K_LAYER_OVERHEAD_PER_PACKET = 38.0 / 24.0
# ... and only where every level's byte budget is at least this large: with smaller budgets
# (e.g. 96-px crops at ratios above ~35) the header bytes are too large a share and the
# shared codestream strays far from the single-layer encodes (uint8 MAE up to ~40/255).
_J2K_SHARED_MIN_BUDGET_BYTES = 800.0
# Slack on top of the largest layer budget before the patched tier-1 coder stops a code-block
# (DECISIONS E14; any value >= 0 keeps every pass a layer can hold).
_J2K_STOP_MARGIN_BYTES = 16
# The first, tight limit as a share of that budget (E14): where the rate allocator's check
# fails, the image is encoded again at the full budget (and then with no limit). A fifth was
# the fastest share in the 16 paper-shape groups of bench/engine.py (7 of 300 encodes went
# twice; a quarter: none, 6 % slower; a tenth: 173 of 300, 28 % slower).
_J2K_FIRST_STOP_FRACTION = 0.2

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

    Encoding goes through the vendored OpenJPEG of :mod:`shamisa_core.native` when it is
    built: Pillow's settings and the same file bytes, with tier-1 coding stopped early and the
    rate allocation checked (DECISIONS E14); otherwise through Pillow. Decoding goes through ``imagecodecs``
    (the same OpenJPEG 2.5 decoder without Pillow's file-object layer: identical pixels,
    ~0.6 ms less per call). ``imagecodecs.jpeg2k_encode`` has no compression-ratio mode (E2).
    """
    ratio = float(max(int(value), 1))
    buf = _j2k_encode(_to_uint8_truncate(img), [ratio])
    arr = imagecodecs.jpeg2k_decode(buf.getbuffer(), numthreads=1)
    out = arr.astype(np.float32)
    out *= _INV255
    return out


def _j2k_budget_bytes(height: int, width: int, channels: int, ratios: Sequence[float]) -> int:
    """The largest layer budget, ``ceil(h * w * c / min(ratios))`` bytes (OpenJPEG's own cap
    for an 8-bit image)."""
    return math.ceil(height * width * channels / min(float(r) for r in ratios))


def j2k_stop_bytes(height: int, width: int, channels: int, ratios: Sequence[float]) -> int:
    """The safe code-block byte limit for the patched encoder (DECISIONS E14): the largest
    layer budget plus ``_J2K_STOP_MARGIN_BYTES``. No code-block of a layer can hold more bytes
    than the whole layer, so passes ending beyond it are never kept."""
    return int(_j2k_budget_bytes(height, width, channels, ratios) + _J2K_STOP_MARGIN_BYTES)


def j2k_first_stop_bytes(height: int, width: int, channels: int, ratios: Sequence[float]) -> int:
    """The first, tight code-block byte limit (DECISIONS E14): ``_J2K_FIRST_STOP_FRACTION`` of
    the largest layer budget plus the margin. Where the rate allocator finds it too tight, the
    encoder codes the image again with :func:`j2k_stop_bytes`."""
    budget = _j2k_budget_bytes(height, width, channels, ratios)
    return int(math.ceil(budget * _J2K_FIRST_STOP_FRACTION) + _J2K_STOP_MARGIN_BYTES)


# Native encodes, how many were coded again at the budget limit, and how many a third time with
# no limit (DECISIONS E14; bench/engine.py reports them).
J2K_NATIVE_STATS: dict[str, int] = {"encodes": 0, "reencoded": 0, "unlimited": 0}


def j2k_encode_native(
    lib, u8: np.ndarray, ratios: Sequence[float], stops: tuple[int, int] | None = None
) -> tuple[bytes, int]:
    """The JP2 file from the vendored OpenJPEG (shamisa_core.native, DECISIONS E14) and the
    number of further encodes it took (0-2): the same encoder settings and bytes as
    :func:`_j2k_encode`'s Pillow path, with tier-1 coding stopped at ``stops`` = (first, safe)
    byte limits, by default :func:`j2k_first_stop_bytes` and :func:`j2k_stop_bytes`."""
    h, w = u8.shape[:2]
    c = u8.shape[2] if u8.ndim == 3 else 1
    if stops is None:
        stops = (j2k_first_stop_bytes(h, w, c, ratios), j2k_stop_bytes(h, w, c, ratios))
    planar = np.ascontiguousarray(np.moveaxis(u8, -1, 0) if u8.ndim == 3 else u8, dtype=np.uint8)
    rates = np.asarray([float(r) for r in ratios], dtype=np.float32)
    cap = h * w * c * 2 + 65536
    out = np.empty(cap, dtype=np.uint8)
    extra = ctypes.c_int(0)
    n = lib.shamisa_j2k_encode(
        planar.ctypes.data, w, h, c, rates.ctypes.data, len(rates), j2k_num_resolutions(h, w),
        int(stops[0]), int(stops[1]), out.ctypes.data, cap, ctypes.byref(extra),
    )
    if n <= 0:
        raise RuntimeError(
            f"native JPEG 2000 encoding failed (code {n}) for a {h}x{w}x{c} image at ratios "
            f"{list(ratios)}; run with SHAMISA_NATIVE=0 to use Pillow's encoder"
        )
    J2K_NATIVE_STATS["encodes"] += 1
    J2K_NATIVE_STATS["reencoded"] += int(extra.value >= 1)
    J2K_NATIVE_STATS["unlimited"] += int(extra.value >= 2)
    return out[:n].tobytes(), int(extra.value)


def _j2k_encode_native(lib, u8: np.ndarray, ratios: Sequence[float]) -> bytes:
    """:func:`j2k_encode_native` at the engine's limits, the file only."""
    return j2k_encode_native(lib, u8, ratios)[0]


def _j2k_encode(u8: np.ndarray, ratios: Sequence[float]) -> io.BytesIO:
    """A JPEG 2000 (JP2) file of ``u8`` with one quality layer per ratio (rate mode).

    The vendored, patched OpenJPEG when the native library is built (DECISIONS E14), else
    Pillow's; both write the same JP2 file.
    """
    lib = native.library()
    if lib is not None:
        return io.BytesIO(_j2k_encode_native(lib, u8, ratios))
    h, w = u8.shape[:2]
    buf = io.BytesIO()
    Image.fromarray(u8).save(
        buf,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[float(r) for r in ratios],
        num_resolutions=j2k_num_resolutions(h, w),
        progression="LRCP",
        irreversible=False,
    )
    return buf


def _j2k_decode_layers(buf: io.BytesIO, layers: int) -> np.ndarray:
    """The image from the first ``layers`` quality layers of a Pillow-written JPEG 2000 file.

    Pillow reads its ``layers`` attribute only together with ``reduce``, so the decoder's
    argument tuple ``(codec, reduce, layers, fd, length)`` is set here directly.
    """
    buf.seek(0)
    im = Image.open(buf)
    tile = im.tile[0]
    args = tuple(tile.args) if hasattr(tile, "args") else tuple(tile[3])
    if len(args) != 5:
        raise RuntimeError(
            f"unexpected Pillow JPEG 2000 tile arguments {args!r}; "
            "set engine.j2k_shared_levels=false to encode each level on its own"
        )
    new_args = (args[0], 0, int(layers), args[3], args[4])
    im.tile = [tile._replace(args=new_args) if hasattr(tile, "_replace") else (*tile[:3], new_args)]
    im.load()
    return np.asarray(im)


def jpeg2000_levels(img: np.ndarray, values: Sequence[float]) -> list[np.ndarray]:
    """:func:`jpeg2000` of one image at several ratios from **one** codestream (DECISIONS E6).

    The distinct ratios become the quality layers of one encode, highest ratio first; level
    ``k`` is decoded from the first ``k + 1`` layers. OpenJPEG's tier-1 coding (most of the
    encoder's time) then runs once instead of once per ratio. The first layer (the highest
    ratio) equals the single-layer encode bit for bit. A later layer's byte budget also pays
    for the packet headers of the layers before it, so each layer after the first gets
    ``_J2K_LAYER_OVERHEAD_PER_PACKET`` bytes per packet per earlier layer on top of its
    ratio's budget. Measured against single-layer encodes on the varying-slot inputs of 40
    paper-shape compositions: 72 % of the levels identical, uint8 MAE mean 0.13/255, 95th
    percentile 0.69/255, worst 3.2/255. Where the smallest level budget is below
    ``_J2K_SHARED_MIN_BUDGET_BYTES`` (small crops at high ratios) every level is encoded on
    its own, as :func:`jpeg2000` does.
    Returns one float32 image per entry of ``values`` (equal values share one decode).
    """
    ratios = [float(max(int(v), 1)) for v in values]
    distinct = sorted(set(ratios), reverse=True)
    h, w = img.shape[:2]
    total = float(h * w * img.shape[2])  # bytes of the 8-bit image: budget = total / ratio
    if len(distinct) == 1 or total / distinct[0] < _J2K_SHARED_MIN_BUDGET_BYTES:
        single = {r: jpeg2000(img, r, None) for r in distinct}  # type: ignore[arg-type]
        outs, used = [], set()
        for r in ratios:
            outs.append(single[r] if r not in used else single[r].copy())
            used.add(r)
        return outs
    u8 = _to_uint8_truncate(img)
    per_layer = _J2K_LAYER_OVERHEAD_PER_PACKET * j2k_num_resolutions(h, w) * u8.shape[2]
    layer_ratios = [total / (total / r + per_layer * k) for k, r in enumerate(distinct)]
    buf = _j2k_encode(u8, layer_ratios)
    decoded: dict[float, np.ndarray] = {}
    for k, r in enumerate(distinct):
        out = _j2k_decode_layers(buf, k + 1).astype(np.float32)
        out *= _INV255
        decoded[r] = out
    outs, used = [], set()
    for r in ratios:
        outs.append(decoded[r] if r not in used else decoded[r].copy())
        used.add(r)
    return outs
