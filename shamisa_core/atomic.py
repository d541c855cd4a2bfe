"""Atomic file writes and content hashes (never a half-written output).

Every project write of a result, cache entry or checkpoint goes through :func:`atomic_open`:
the data goes to a temporary file in the target's folder, is flushed and fsync'ed, and only
then replaces the target with ``os.replace``; on any error the temporary file is removed and
the old target (if any) stays as it was. A full disk becomes one ``OSError`` (errno ``ENOSPC``)
that names the target and the space left, whichever call (write, flush, fsync) hit it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *,
                encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; replace ``path`` on a clean exit.

    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` default UTF-8). The file handle is
    yielded; leaving the block normally flushes, fsyncs and renames it into place, an exception
    deletes it. ``yield``s a real file, so libraries that want a path can use ``handle.name``
    (write it, do not reopen it for reading before the block ends).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise disk_full_error(target) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_full_error(target: Path) -> OSError:
    """The ``ENOSPC`` error for ``target``: its path, the space left, and the fix."""
    try:
        free = f"{shutil.disk_usage(target.parent).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return OSError(errno.ENOSPC,
                   f"No space left on the disk while writing it ({free}; nothing was replaced); "
                   "free some space or write to another disk, then rerun", str(target))


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (numpy scalars/arrays and paths converted) atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent, default=_json_default) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
