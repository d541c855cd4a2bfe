"""Defect 2 (issue 8): one image loader for every PIL mode, EXIF orientation, clear errors.

Each mode is written to a real file, read back with :func:`shamisa_core.imageio.read_rgb`
and compared with the mean brightness the module's rules give. Before the fix, a 16-bit
greyscale PNG read 255 almost everywhere (PIL's ``convert("RGB")`` clips at 255).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .fault_kit import DAMAGES, assert_clean_error
from shamisa_core.errors import ImageReadError
from shamisa_core.imageio import image_to_rgb, read_rgb

H, W = 12, 16


def _halves(lo, hi, dtype):
    """Left half ``lo``, right half ``hi``."""
    a = np.empty((H, W), dtype)
    a[:, : W // 2], a[:, W // 2 :] = lo, hi
    return a


def _write(tmp: Path, name: str, im: Image.Image, **kw) -> Path:
    path = tmp / name
    im.save(path, **kw)
    return path


def _p_transparent(tmp: Path) -> Path:
    im = Image.fromarray(_halves(0, 1, np.uint8), mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    return _write(tmp, "p_trans.png", im, transparency=0)


def _p_opaque(tmp: Path) -> Path:
    im = Image.fromarray(_halves(0, 1, np.uint8), mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    return _write(tmp, "p.png", im)


# name -> (make file, expected stored mode, expected per-channel mean RGB)
CASES = {
    # 16-bit: halves 64*257 and 192*257 -> 64 and 192 -> mean 128 (was 255 before the fix)
    "I;16 png": (lambda t: _write(t, "g16.png", Image.fromarray(_halves(64 * 257, 192 * 257, np.uint16))),
                 "I;16", (128, 128, 128)),
    "I;16B tiff": (lambda t: _write(t, "g16b.tif", Image.frombytes(
        "I;16B", (W, H), _halves(32 * 257, 96 * 257, np.uint16).astype(">u2").tobytes())), "I;16B", (64, 64, 64)),
    "I tiff": (lambda t: _write(t, "i32.tif", Image.fromarray(_halves(0, 65535, np.int32))), "I", (127.5,) * 3),
    "F tiff [0,1]": (lambda t: _write(t, "f.tif", Image.fromarray(_halves(0.25, 0.75, np.float32))),
                     "F", (127.5,) * 3),  # rint(63.75)=64, rint(191.25)=191
    "F tiff [0,255]": (lambda t: _write(t, "f255.tif", Image.fromarray(_halves(10.0, 250.0, np.float32))),
                       "F", (130,) * 3),
    "LA png": (lambda t: _write(t, "la.png", Image.fromarray(
        np.stack([_halves(0, 0, np.uint8), _halves(255, 0, np.uint8)], -1), mode="LA")),
               "LA", (127.5,) * 3),  # opaque black half + transparent half over white
    "P transparent png": (_p_transparent, "P", ((255 + 200) / 2, (255 + 100) / 2, (255 + 50) / 2)),
    "P png": (_p_opaque, "P", ((10 + 200) / 2, (20 + 100) / 2, (30 + 50) / 2)),
    "CMYK tiff": (lambda t: _write(t, "c.tif", Image.new("CMYK", (W, H), (0, 0, 0, 128))), "CMYK", (127,) * 3),
    "CMYK jpeg": (lambda t: _write(t, "c.jpg", Image.new("CMYK", (W, H), (0, 0, 0, 128)), quality=95),
                  "CMYK", (127,) * 3),
    "1 png": (lambda t: _write(t, "b.png", Image.fromarray(_halves(False, True, bool))), "1", (127.5,) * 3),
    "RGBA png": (lambda t: _write(t, "rgba.png", Image.fromarray(
        np.dstack([np.full((H, W, 3), 40, np.uint8), _halves(255, 0, np.uint8)]))), "RGBA", ((40 + 255) / 2,) * 3),
    "L png": (lambda t: _write(t, "l.png", Image.fromarray(_halves(50, 150, np.uint8))), "L", (100,) * 3),
    "RGB png": (lambda t: _write(t, "rgb.png", Image.new("RGB", (W, H), (10, 120, 230))), "RGB", (10, 120, 230)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mode_reads_to_its_expected_brightness(case, tmp_path):
    make, mode, mean = CASES[case]
    path = make(tmp_path)
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is in the mode under test
    arr = read_rgb(path)
    assert arr.dtype == np.uint8 and arr.shape == (H, W, 3) and arr.flags.c_contiguous
    got = arr.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(got, mean, atol=1.0, err_msg=case)


def test_sixteen_bit_is_not_white_and_keeps_its_gradient(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, W).astype(np.uint16), (H, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    arr = read_rgb(tmp_path / "ramp16.png")[..., 0]
    assert (arr == 255).mean() < 0.1
    np.testing.assert_array_equal(arr[0], np.rint(ramp[0] / 257.0).astype(np.uint8))


def test_in_memory_modes_without_a_file_format():
    """Modes PIL cannot save to PNG/TIFF here still convert (I;16L, PA, La, RGBa, YCbCr)."""
    assert image_to_rgb(Image.fromarray(np.full((4, 4), 257 * 10, np.uint16))).mean() == 10
    pa = Image.new("PA", (4, 4))
    pa.putpalette([100, 100, 100] + [0] * 765)
    pa.putdata([(0, 0)] * 16)
    assert image_to_rgb(pa).mean() == 255  # fully transparent -> white page
    assert image_to_rgb(Image.new("YCbCr", (4, 4), (128, 128, 128))).mean() == pytest.approx(128, abs=1)
    with pytest.raises(ImageReadError, match="NaN"):
        image_to_rgb(Image.fromarray(np.full((4, 4), np.nan, np.float32)), "x.tif")


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white (stored orientation)
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    arr = read_rgb(tmp_path / "o.jpg")
    assert arr.shape == (40, 20, 3)  # displayed upright: portrait
    assert arr[:18].mean() > 200 and arr[22:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize("damage", sorted(DAMAGES) + ["missing", "folder"])
def test_unreadable_image_names_the_file_and_why(damage, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    if damage == "missing":
        path.unlink()
    elif damage == "folder":
        path.unlink()
        path.mkdir()
    else:
        DAMAGES[damage](path)
    with pytest.raises(ImageReadError) as info:
        read_rgb(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert {"truncated": "truncated", "zero": "0 bytes", "random": "not an image", "wrong_kind": "not an image",
            "missing": "does not exist", "folder": "folder"}[damage] in msg


# ------------------------------------------------------------------ the loader in every stage
def _grey16(path: Path) -> Path:
    Image.fromarray(np.tile(np.linspace(8000, 40000, 96).astype(np.uint16), (80, 1))).save(path)
    return path


def test_distort_reads_sixteen_bit_grey(tmp_path, capsys):
    from shamisa_core.cli import main

    src = _grey16(tmp_path / "g16.png")
    assert main(["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpeg:0"]) == 0
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert (out == 255).mean() < 0.01 and abs(out.mean() - 24000 / 257) < 3


def test_distort_on_a_damaged_image_is_one_clear_line(tmp_path, capsys):
    from shamisa_core.cli import main

    src = _grey16(tmp_path / "g16.png")
    DAMAGES["truncated"](src)
    rc = main(["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpeg:1"])
    assert_clean_error(rc, capsys.readouterr().err, str(src), "truncated")
    assert not (tmp_path / "o.png").exists()


def test_corpus_reference_from_sixteen_bit_photo_is_not_white(tmp_path, tiny_cfg):
    from shamisa_core.corpus.groups import build_group, default_loader
    from shamisa_core.pristine import scan_folder

    src = tmp_path / "src"
    src.mkdir()
    _grey16(src / "g16.png")
    scan = scan_folder(src, 32)
    assert [Path(i.path).name for i in scan.images] == ["g16.png"]
    g = build_group([i.path for i in scan.images], default_loader, 1, 0, 0, 1, tiny_cfg.group, tiny_cfg.engine)
    assert (g.ref == 255).mean() < 0.01 and 20 < g.ref.mean() < 200


def test_pristine_scan_skips_damaged_files_with_reasons(tmp_path):
    from shamisa_core.pristine import scan_folder

    src = tmp_path / "src"
    src.mkdir()
    _grey16(src / "ok.png")
    for name, damage in DAMAGES.items():
        _grey16(src / f"{name}.png")
        damage(src / f"{name}.png")
    scan = scan_folder(src, 32)
    assert [Path(i.path).name for i in scan.images] == ["ok.png"]
    reasons = dict(scan.skipped)
    assert len(reasons) == len(DAMAGES)
    assert "0 bytes" in reasons[str(src / "zero.png")] and "truncated" in reasons[str(src / "truncated.png")]


def test_evaluation_loader_reads_sixteen_bit_grey(tmp_path):
    from shamisa_core.evaluation.features import load_rgb

    img = load_rgb(_grey16(tmp_path / "g16.png"))
    arr = np.asarray(img)
    assert img.mode == "RGB" and (arr == 255).mean() < 0.01


def test_json_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(ImageReadError, match="not an image"):
        read_rgb(path)
