"""Build the native kernels: ``python -m shamisa_core.native.build`` (``make`` runs it).

Compiles the C files of this folder and the vendored OpenJPEG 2.5.4 (``openjpeg/``, with the
one patch of docs/DECISIONS.md E14) into one shared library,
``_build/libshamisa_native-<digest>.so``. The digest covers every source file, the flags and
the compiler's version, so a library is never reused after any of them changed; an existing
library with the current digest is kept (a second run costs a hash of the sources). The file
appears atomically (compiled under a temporary name, then renamed), so concurrent builds and
readers never see half a library.

OpenJPEG is compiled with the flags of its own CMake release build (``-O3 -ffast-math``), as
the copy inside Pillow's wheels is; the project's own C files use ``-O2`` and no contraction
of float operations (their results must equal NumPy's float32 arithmetic). Only the
``shamisa_*`` entry points are exported (``-fvisibility=hidden``), so the vendored OpenJPEG
cannot clash with the one Pillow or imagecodecs load into the same process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPENJPEG_DIR = HERE / "openjpeg"
BUILD_DIR = HERE / "_build"

# OpenJPEG's library sources (src/lib/openjp2 of 2.5.4, without the JPIP index writers).
OPENJPEG_SOURCES = (
    "bio.c", "cio.c", "dwt.c", "event.c", "function_list.c", "ht_dec.c", "image.c",
    "invert.c", "j2k.c", "jp2.c", "mct.c", "mqc.c", "openjpeg.c", "opj_clock.c",
    "opj_malloc.c", "pi.c", "sparse_array.c", "t1.c", "t2.c", "tcd.c", "tgt.c", "thread.c",
)
COMMON_FLAGS = ("-fPIC", "-fvisibility=hidden", "-DNDEBUG", f"-I{OPENJPEG_DIR}")
OPENJPEG_FLAGS = ("-O3", "-ffast-math", "-DMUTEX_pthread", "-DOPJ_STATIC", "-std=gnu99")
OWN_FLAGS = ("-O2", "-ffp-contract=off", "-DOPJ_STATIC", "-std=gnu99")
LINK_FLAGS = ("-shared", "-lm", "-lpthread")


def compiler() -> str:
    """The C compiler: ``$CC``, else ``cc`` or ``gcc`` on PATH (empty string if none)."""
    for name in (os.environ.get("CC", ""), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return ""


def own_sources() -> list[Path]:
    """The project's C files (this folder), sorted."""
    return sorted(HERE.glob("*.c"))


def all_sources() -> list[Path]:
    """Every file the library is built from (C files and headers), sorted."""
    files = own_sources() + sorted(OPENJPEG_DIR.glob("*.h"))
    files += [OPENJPEG_DIR / name for name in OPENJPEG_SOURCES]
    return sorted(files)


def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.splitlines()[0] if out.stdout else ""


def digest(cc: str | None = None) -> str:
    """16 hex digits of SHA-256 over the sources, the flags and the compiler's version."""
    cc = compiler() if cc is None else cc
    h = hashlib.sha256()
    for path in all_sources():
        name = path.relative_to(HERE).as_posix() if path.is_relative_to(HERE) else path.name
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    for flags in (COMMON_FLAGS[:-1], OPENJPEG_FLAGS, OWN_FLAGS, LINK_FLAGS):
        h.update(" ".join(flags).encode() + b"\0")
    h.update(_compiler_version(cc).encode())
    return h.hexdigest()[:16]


def library_path(cc: str | None = None) -> Path:
    """Where the library for the current sources lives (it may not exist yet)."""
    return BUILD_DIR / f"libshamisa_native-{digest(cc)}.so"


def _compile(cc: str, src: Path, obj: Path, flags: tuple[str, ...]) -> None:
    cmd = [cc, *COMMON_FLAGS, *flags, "-c", str(src), "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"compiling {src} failed ({' '.join(cmd)}):\n{res.stderr.strip()}")


def build(force: bool = False, jobs: int | None = None) -> Path:
    """Build the library for the current sources unless it exists; return its path.

    Raises ``RuntimeError`` naming the file and the fix when there is no C compiler or a
    file does not compile. Libraries of other digests in ``_build/`` are removed.
    """
    cc = compiler()
    if not cc:
        raise RuntimeError(
            "no C compiler found (tried $CC, cc, gcc): install gcc (Debian: apt-get install "
            "gcc) and run `python -m shamisa_core.native.build` again"
        )
    target = library_path(cc)
    if target.exists() and not force:
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=".objs-") as tmp:
        units = [(s, OPENJPEG_FLAGS) for s in (OPENJPEG_DIR / n for n in OPENJPEG_SOURCES)]
        units += [(s, OWN_FLAGS) for s in own_sources()]
        objs = [Path(tmp) / f"{i:02d}-{src.stem}.o" for i, (src, _) in enumerate(units)]
        workers = jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda a: _compile(cc, a[0][0], a[1], a[0][1]), zip(units, objs)))
        partial = Path(tmp) / target.name
        cmd = [cc, *(str(o) for o in objs), *LINK_FLAGS, "-o", str(partial)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"linking {target.name} failed ({' '.join(cmd)}):\n{res.stderr}")
        os.replace(partial, target)
    for old in BUILD_DIR.glob("libshamisa_native-*.so"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="rebuild even if the library exists")
    args = p.parse_args(argv)
    try:
        path = build(force=args.force)
    except RuntimeError as exc:
        print(f"shamisa native build: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
