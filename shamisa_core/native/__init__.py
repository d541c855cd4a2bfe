"""Native (C) kernels: the vendored, patched OpenJPEG encoder and the project's own C code.

:func:`library` loads ``_build/libshamisa_native-<digest>.so`` for the current sources
(:mod:`shamisa_core.native.build` makes it; ``make`` runs that). Every caller keeps a pure
Python path that gives the **same bytes**, so a missing library only costs speed: it is
reported once on stderr with the command that builds it. ``SHAMISA_NATIVE=0`` turns the
library off (the tests compare both paths that way).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

__all__ = ["library", "enabled"]

_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def enabled() -> bool:
    """False when ``SHAMISA_NATIVE`` is ``0``/``false``/``no``/``off`` (read on every call)."""
    return os.environ.get("SHAMISA_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Argument and result types of the exported entry points."""
    fn = lib.shamisa_j2k_encode
    fn.restype = ctypes.c_long
    fn.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,  # planar u8, w, h, comps
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int,  # float32 ratios, layers, resolutions
        ctypes.c_uint, ctypes.c_uint,  # first and safe stop bytes
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,  # out, capacity, int *extra encodes
    ]
    fn = lib.shamisa_pcg64_box_muller_uniforms
    fn.restype = None
    fn.argtypes = [
        ctypes.c_void_p, ctypes.c_uint64,  # uint64[4] PCG64 state (in/out), pairs
        ctypes.c_void_p, ctypes.c_float,  # float32 out (2 * pairs), angle scale
    ]
    return lib


def _load() -> ctypes.CDLL | None:
    from shamisa_core.native.build import library_path

    path: Path = library_path()
    if not path.exists():
        print(
            f"shamisa: native kernels not built ({path.name} missing); using the slower pure "
            "Python paths, same output. Build them with `make install` or "
            "`python -m shamisa_core.native.build`.",
            file=sys.stderr,
        )
        return None
    try:
        return _declare(ctypes.CDLL(str(path)))
    except (OSError, AttributeError) as exc:  # unloadable, or built from other sources
        print(
            f"shamisa: native kernels in {path} cannot be used ({exc}); using the slower pure "
            "Python paths, same output. Rebuild them with "
            "`python -m shamisa_core.native.build --force`.",
            file=sys.stderr,
        )
        return None


def library() -> ctypes.CDLL | None:
    """The loaded library, or ``None`` (not built, or disabled by ``SHAMISA_NATIVE=0``).

    Loaded once per process; the missing-library notice is printed once.
    """
    if not enabled():
        return None
    if "lib" not in _STATE:
        with _LOCK:
            if "lib" not in _STATE:
                _STATE["lib"] = _load()
    return _STATE["lib"]  # type: ignore[return-value]
