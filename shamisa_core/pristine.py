"""Pristine source photos: a folder read recursively, or the packaged default (METHOD.md §2.1).

The embedded default is the natural photographs that ship inside the wheels of the stack
(scikit-image's ``skimage.data`` images that need no download, scikit-learn's sample images,
matplotlib's sample photo). Nothing is downloaded. Unreadable, corrupt or too-small files are
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

# skimage.data photos shipped in the wheel (no pooch download). Textures and grey photos are
# converted to RGB. Microscopy/medical and synthetic images are left out.
_SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "gravel",
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


def embedded_default_images() -> list[tuple[str, np.ndarray]]:
    """The packaged natural photos as ``(name, RGB uint8 array)`` pairs, in a fixed order."""
    import matplotlib
    import skimage.data
    from sklearn.datasets import load_sample_images

    out: list[tuple[str, np.ndarray]] = []
    for name in _SKIMAGE_PHOTOS:
        out.append((f"skimage_{name}", _to_rgb_uint8(getattr(skimage.data, name)())))
    left, right, _ = skimage.data.stereo_motorcycle()
    out.append(("skimage_motorcycle", _to_rgb_uint8(left)))
    samples = load_sample_images()
    for fname, img in zip(samples.filenames, samples.images):
        out.append((f"sklearn_{Path(fname).stem}", _to_rgb_uint8(img)))
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    for fname in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        path = mpl_dir / fname
        if path.exists():
            with Image.open(path) as im:
                out.append((f"matplotlib_{path.stem.lower()}", _to_rgb_uint8(np.asarray(im.convert("RGB")))))
    return out


def export_default(out_dir: Path) -> Path:
    """Write the embedded default photos as PNGs into ``out_dir`` (byte-reproducible)."""
    out_dir = Path(out_dir)
    for name, arr in embedded_default_images():
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
