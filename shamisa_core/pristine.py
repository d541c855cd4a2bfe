"""Pristine source photos: a folder read recursively, or the packaged default (METHOD.md §2.1).

The embedded default is natural photographs that ship inside the wheels of the stack
(scikit-image's ``skimage.data`` images that need no download, scikit-learn's sample images,
matplotlib's sample photo, sporco's Kodak/Waterloo test images, PyWavelets' aerial photo), split
into a training half (the default corpus) and a proxy half (the proxy benchmark's references,
never trained on). Nothing is downloaded. Unreadable, corrupt or too-small files are
skipped, counted and named.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from shamisa_core.atomic import atomic_write_bytes, file_sha256
from shamisa_core.errors import ImageReadError
from shamisa_core.imageio import image_size, read_rgb

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Natural photographs shipped inside wheels of the stack (no download), split once and for all
# into the photos the training corpus is built from and the references of the proxy benchmark,
# so the proxy never scores content the encoder was trained on (docs/DECISIONS.md P2). Licences
# are listed in docs/DATA.md. Grey photos are converted to RGB.
TRAIN_PHOTOS: tuple[str, ...] = (
    "skimage_chelsea", "skimage_rocket", "skimage_hubble_deep_field", "sklearn_china",
    "sporco_monarch", "sporco_tulips", "skimage_moon", "skimage_coins", "skimage_grass",
    "skimage_gravel", "pywt_ascent",
)
PROXY_PHOTOS: tuple[str, ...] = (
    "skimage_coffee", "skimage_motorcycle", "sklearn_flower", "sporco_kodim23", "sporco_sail",
    "matplotlib_grace_hopper", "sporco_barbara", "skimage_astronaut", "skimage_camera",
    "skimage_brick", "pywt_aero",
)


class PristineError(ValueError):
    """No usable pristine image, or a source that does not exist."""


@dataclass(frozen=True)
class PristineImage:
    """One usable pristine photo."""

    path: str
    sha256: str
    width: int
    height: int


@dataclass
class PristineScan:
    """Result of scanning a source: the usable images and what was skipped (path, reason)."""

    images: list[PristineImage]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def version(self) -> str:
        """Content hash of the usable set (order independent)."""
        h = hashlib.sha256()
        for digest in sorted(i.sha256 for i in self.images):
            h.update(digest.encode())
        return h.hexdigest()


def _to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr.astype(np.uint8))


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def _sklearn(stem: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{stem}.jpg")


def _package_file(module: str, *parts: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent.joinpath(*parts)


def _png_file(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pywt(name: str) -> np.ndarray:
    import pywt.data

    return getattr(pywt.data, name)()


def _photo(name: str) -> np.ndarray:
    """One packaged photo by its project name (``<package>_<name>``), as RGB uint8."""
    package, _, stem = name.partition("_")
    if package == "skimage":
        arr = _skimage(stem)
    elif package == "sklearn":
        arr = _sklearn(stem)
    elif package == "matplotlib":
        import matplotlib

        arr = _png_file(Path(matplotlib.get_data_path()) / "sample_data" / f"{stem}.jpg")
    elif package == "sporco":
        arr = _png_file(_package_file("sporco", "data", f"{stem}.png"))
    elif package == "pywt":
        arr = _pywt(stem)
    else:  # pragma: no cover - names are the constants above
        raise KeyError(f"unknown packaged photo {name!r}")
    return _to_rgb_uint8(arr)


def embedded_photos(role: str = "train") -> list[tuple[str, np.ndarray]]:
    """The packaged photos of ``role`` (``train``: the corpus; ``proxy``: the proxy benchmark)."""
    names = {"train": TRAIN_PHOTOS, "proxy": PROXY_PHOTOS}.get(role)
    if names is None:
        raise ValueError(f"unknown photo role {role!r}; expected 'train' or 'proxy'")
    return [(name, _photo(name)) for name in names]


def embedded_default_images() -> list[tuple[str, np.ndarray]]:
    """The packaged natural photos the default corpus is built from, in a fixed order."""
    return embedded_photos("train")


def export_default(out_dir: Path) -> Path:
    """Write the embedded default photos as PNGs into ``out_dir`` (byte-reproducible).

    The folder holds exactly that set afterwards: PNGs of other names (an older default set,
    say) are removed, so a scan of the folder never picks up a stale photo.
    """
    out_dir = Path(out_dir)
    photos = embedded_default_images()
    wanted = {f"{name}.png" for name, _ in photos}
    if out_dir.is_dir():
        for old in out_dir.glob("*.png"):
            if old.name not in wanted:
                old.unlink()
    for name, arr in photos:
        path = out_dir / f"{name}.png"
        if path.exists():
            continue
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
        atomic_write_bytes(path, buf.getvalue())
    return out_dir


def scan_folder(root: Path, min_side: int = 64) -> PristineScan:
    """Find usable photos under ``root`` (recursive). Corrupt/unreadable/small ones are skipped.

    Raises :class:`PristineError` if ``root`` does not exist or nothing usable is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise PristineError(
            f"pristine source {root} does not exist or is not a folder; give a folder of "
            f"photos ({', '.join(IMAGE_EXTENSIONS)}) or 'default' for the packaged photos"
        )
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    images: list[PristineImage] = []
    skipped: list[tuple[str, str]] = []
    for path in files:
        try:
            width, height = image_size(path)
        except ImageReadError as exc:
            skipped.append((str(path), f"unreadable: {exc.reason}"))
            continue
        if min(width, height) < min_side:
            skipped.append((str(path), f"too small: {width}x{height} (min side {min_side})"))
            continue
        images.append(PristineImage(str(path), file_sha256(path), width, height))
    if not images:
        raise PristineError(
            f"no usable pristine image under {root} ({len(files)} candidate files, "
            f"{len(skipped)} skipped); add photos with a shorter side >= {min_side} px"
        )
    return PristineScan(images=images, skipped=skipped)


def content_manifest_hash(scan: PristineScan, root: Path) -> str:
    """sha256 over the usable images' (path relative to ``root``, sha256) pairs, sorted.

    What a corpus built from ``root`` depends on: file contents and their order (the build
    visits the images in sorted path order), never the spelling of ``root`` (relative or
    absolute, trailing slash, symlinks) or where the folder lives.
    """
    root = Path(root).resolve()
    h = hashlib.sha256()
    for img in sorted(scan.images, key=lambda i: i.path):
        try:
            rel = Path(img.path).resolve().relative_to(root).as_posix()
        except ValueError:
            rel = Path(img.path).name
        h.update(f"{rel}\0{img.sha256}\n".encode())
    return h.hexdigest()


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB uint8 array (H, W, 3) with the project's one loader
    (:func:`shamisa_core.imageio.read_rgb`: every PIL mode, EXIF orientation, clear errors)."""
    return read_rgb(path)


def write_pristine_manifest(scan: PristineScan, path: Path) -> Path:
    """Write the usable images as parquet (path, sha256, width, height), atomically."""
    import pandas as pd

    df = pd.DataFrame(
        [{"path": i.path, "sha256": i.sha256, "width": i.width, "height": i.height} for i in scan.images]
    )
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_pristine_manifest(path: Path) -> list[str]:
    """The image paths of a pristine manifest, in order (clear error when missing)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"pristine manifest {path} is missing; materialize the pristine_images asset first"
        )
    return [str(p) for p in pd.read_parquet(path)["path"]]
