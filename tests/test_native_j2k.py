"""The vendored, patched OpenJPEG encoder (shamisa_core.native, DECISIONS E14).

Its JP2 files must equal Pillow's byte for byte (the settings and the packets are the same),
its tier-1 stop must be active (a limit below the layer budget changes the output) and safe (the
limit the engine uses does not), and the engine's jpeg2000 outputs must not depend on whether
the library is built.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shamisa_core import native
from shamisa_core.distortions.primitives import compression as cp
from shamisa_core.native import build as native_build


@pytest.fixture(scope="module")
def lib():
    if not native_build.compiler():
        pytest.skip("no C compiler: the native library cannot be built here")
    native_build.build()
    native._STATE.clear()
    loaded = native.library()
    assert loaded is not None, "the library was built but did not load"
    return loaded


def _crops(n: int, seed: int) -> list[np.ndarray]:
    """Natural crops of several shapes, half of them with added noise (more bit-planes)."""
    from shamisa_core.pristine import embedded_default_images

    images = embedded_default_images()
    rng = np.random.default_rng(seed)
    shapes = [(224, 224), (96, 96), (64, 64), (150, 150), (53, 77), (224, 160)]
    out = []
    for i in range(n):
        img = images[i % len(images)][1]
        h, w = shapes[i % len(shapes)]
        y = int(rng.integers(0, img.shape[0] - h))
        x = int(rng.integers(0, img.shape[1] - w))
        crop = img[y : y + h, x : x + w].astype(np.float32)
        if i % 2:
            crop += rng.normal(0.0, float(rng.uniform(2.0, 20.0)), crop.shape)
        out.append(np.clip(crop, 0, 255).astype(np.uint8))
    return out


def _pillow(u8: np.ndarray, ratios: list[float]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(u8).save(
        buf, format="JPEG2000", quality_mode="rates", quality_layers=ratios,
        num_resolutions=cp.j2k_num_resolutions(*u8.shape[:2]), progression="LRCP",
        irreversible=False,
    )
    return buf.getvalue()


def _native(lib, u8: np.ndarray, ratios: list[float], stop: int | None = None) -> bytes:
    if stop is None:
        return cp._j2k_encode_native(lib, u8, ratios)
    h, w, c = u8.shape
    planar = np.ascontiguousarray(np.moveaxis(u8, -1, 0))
    rates = np.asarray(ratios, dtype=np.float32)
    out = np.empty(h * w * c * 2 + 65536, dtype=np.uint8)
    n = lib.shamisa_j2k_encode(planar.ctypes.data, w, h, c, rates.ctypes.data, len(rates),
                               cp.j2k_num_resolutions(h, w), stop, out.ctypes.data, out.size)
    assert n > 0
    return out[:n].tobytes()


def test_jp2_files_equal_pillows_byte_for_byte(lib):
    """Single layers over the engine's ratio range, and the shared-level layer sets of E6."""
    rng = np.random.default_rng(5)
    for i, u8 in enumerate(_crops(24, seed=1)):
        if i % 3 == 2:
            ratios = sorted((float(int(rng.uniform(10, 200))) for _ in range(3)), reverse=True)
        else:
            ratios = [float(int(rng.uniform(2, 200)))]
        assert _native(lib, u8, ratios) == _pillow(u8, ratios), (u8.shape, ratios)


def test_the_stop_is_active_below_the_budget_and_exact_at_it(lib):
    """At a fiftieth of the layer budget the stop drops passes a layer needs (the output changes:
    the patch is live); at the engine's limit the file equals the unlimited encode."""
    u8 = _crops(2, seed=3)[1]  # 96 x 96, noisy
    ratios = [20.0]
    full = _native(lib, u8, ratios, stop=0)
    limit = cp.j2k_stop_bytes(*u8.shape, ratios)
    assert limit >= u8.size / 20.0
    assert _native(lib, u8, ratios) == full
    assert _native(lib, u8, ratios, stop=limit // 50) != full


def test_engine_jpeg2000_outputs_do_not_depend_on_the_library(lib, monkeypatch):
    """``jpeg2000`` and ``jpeg2000_levels`` give the same floats with and without it."""
    crops = [u8.astype(np.float32) / 255.0 for u8 in _crops(6, seed=7) if u8.shape[0] >= 96]
    on = [(cp.jpeg2000(x, 150.0, None), cp.jpeg2000_levels(x, [40.0, 120.0, 40.0, 170.0]))
          for x in crops]
    monkeypatch.setenv("SHAMISA_NATIVE", "0")
    assert native.library() is None
    off = [(cp.jpeg2000(x, 150.0, None), cp.jpeg2000_levels(x, [40.0, 120.0, 40.0, 170.0]))
           for x in crops]
    for (a1, la), (b1, lb) in zip(on, off):
        np.testing.assert_array_equal(a1, b1)
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(x, y)


def test_build_is_content_keyed_and_reused(lib):
    path = native_build.library_path()
    assert path.exists() and native_build.digest() in path.name
    mtime = path.stat().st_mtime_ns
    assert native_build.build() == path  # up to date: nothing rebuilt
    assert path.stat().st_mtime_ns == mtime


def test_digest_covers_the_vendored_sources(monkeypatch, tmp_path):
    """Any change to a source file gives another library name (never a stale library)."""
    sources = native_build.all_sources()
    assert native_build.OPENJPEG_DIR / "t1.c" in sources  # the patched file among them
    extra = tmp_path / "t1_extra.h"
    extra.write_text("/* a header */\n")
    monkeypatch.setattr(native_build, "all_sources", lambda: sorted([*sources, extra]))
    first = native_build.digest()
    extra.write_text("/* a header, edited */\n")
    assert native_build.digest() != first
    extra.write_text("/* a header */\n")
    assert native_build.digest() == first


def test_missing_library_falls_back_with_a_notice(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(native_build, "library_path", lambda cc=None: tmp_path / "libnone.so")
    monkeypatch.setattr(native, "_STATE", {})
    assert native.library() is None
    assert native.library() is None
    err = capsys.readouterr().err
    assert err.count("native kernels not built") == 1
    assert "python -m shamisa_core.native.build" in err
