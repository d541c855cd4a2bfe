"""The vendored, patched OpenJPEG encoder (shamisa_core.native, DECISIONS E14).

Its JP2 files must equal Pillow's byte for byte (the settings and the packets are the same),
its rate-allocation check must catch a byte limit that is too tight (and encode again), and
the engine's jpeg2000 outputs must not depend on whether the library is built.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shamisa_core import native
from shamisa_core.distortions.primitives import compression as cp
from shamisa_core.native import build as native_build


@pytest.fixture
def lib(native_built, monkeypatch):
    monkeypatch.delenv("SHAMISA_NATIVE", raising=False)
    return native_built


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


def test_jp2_files_equal_pillows_byte_for_byte(lib):
    """Single layers over the engine's ratio range, and the shared-level layer sets of E6."""
    rng = np.random.default_rng(5)
    extras = []
    for i, u8 in enumerate(_crops(24, seed=1)):
        if i % 3 == 2:
            ratios = sorted((float(int(rng.uniform(10, 200))) for _ in range(3)), reverse=True)
        else:
            ratios = [float(int(rng.uniform(2, 200)))]
        data, extra = cp.j2k_encode_native(lib, u8, ratios)
        assert data == _pillow(u8, ratios), (u8.shape, ratios)
        extras.append(extra)
    assert extras.count(0) >= len(extras) // 2  # mostly done in one encode at the tight limit
    assert cp._j2k_encode_native(lib, _crops(1, seed=2)[0], [40.0]) == _pillow(
        _crops(1, seed=2)[0], [40.0])


def test_the_check_sends_a_too_tight_limit_back(lib):
    """A first limit at 1/50 of the layer budget stops code-blocks whose kept passes a layer
    needs: the rate allocator's check sees it, the image is encoded again (at 1/50 once more,
    then with no limit) and the file is still Pillow's. At the budget itself no second encode is
    needed for this crop."""
    u8 = _crops(2, seed=3)[1]  # 96 x 96, noisy
    ratios = [20.0]
    limit = cp.j2k_stop_bytes(*u8.shape, ratios)
    assert limit >= u8.size / 20.0
    tight, extra = cp.j2k_encode_native(lib, u8, ratios, (limit // 50, limit // 50))
    assert extra == 1 and tight == _pillow(u8, ratios)
    stepped, extra = cp.j2k_encode_native(lib, u8, ratios, (limit // 50, limit))
    assert extra >= 1 and stepped == tight
    full, extra = cp.j2k_encode_native(lib, u8, ratios, (0, 0))
    assert extra == 0 and full == tight
    at_budget, extra = cp.j2k_encode_native(lib, u8, ratios, (limit, limit))
    assert extra == 0 and at_budget == tight


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


def test_an_unloadable_library_falls_back_with_a_notice(monkeypatch, tmp_path, capsys):
    broken = tmp_path / "libshamisa_native-broken.so"
    broken.write_bytes(b"not a shared library")
    monkeypatch.setattr(native_build, "library_path", lambda cc=None: broken)
    monkeypatch.setattr(native, "_STATE", {})
    assert native.library() is None
    err = capsys.readouterr().err
    assert "cannot be used" in err and "--force" in err and str(broken) in err
