"""WebDataset tar shards: byte-reproducible atomic writes and checked reads (DECISIONS 5, 12).

One WebDataset sample is one group: ``<key>.dist.npy`` (V, C, L, P, P, 3), ``<key>.json`` (the
record) and ``<key>.ref.npy`` (V, P, P, 3), raw uint8 ``.npy`` (lossless; faster to read than
PNG, see ``bench/corpus_io.py``), with V = 2R (full-scale views first).

Shards are written by the stock ``webdataset.TarWriter`` (USTAR, members of a sample in sorted
order) with a fixed mtime (0), owner (uid/gid 0, empty user/group names) and mode (0644), so
the same config gives the same bytes; the stock ``webdataset.WebDataset`` pipeline reads them
(tests/test_corpus_webdataset.py). The project reads them with the loop of webdataset's
``tar_file_iterator`` (tarfile's stream mode, regular members, one sample per key prefix) written
out in :func:`iter_raw`, adding a :class:`ShardError` that names a damaged file, so that the
training reader can raise or skip and count bad shards (``bench/corpus_read.py`` compares the
speeds). It does not import ``webdataset`` itself, whose package imports torch: reading a shard
(``corpus inspect``) needs no torch (docs/DECISIONS.md E10). The writer imports it when it runs.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from shamisa_core.atomic import file_sha256
from shamisa_core.corpus.groups import Group


class ShardError(RuntimeError):
    """A shard that cannot be read (truncated, corrupt, or not a shard). Names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        super().__init__(
            f"corrupt or truncated shard {self.path}: {reason}. Rebuild it (re-materialize its "
            f"corpus_shards partition, or `shamisa corpus build`) or read with on_error='skip'."
        )


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:06d}.tar"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_group(group: Group) -> dict[str, Any]:
    """One group as a WebDataset sample: ``__key__`` plus the encoded bytes per extension."""
    record = json.dumps(group.record, sort_keys=True, separators=(",", ":")).encode()
    return {
        "__key__": group.key,
        "json": record,
        "ref.npy": _npy_bytes(group.ref),
        "dist.npy": _npy_bytes(group.dist),
    }


def _tar_writer(fh: Any) -> Any:
    """A stock ``webdataset.TarWriter`` with fixed member metadata (byte-reproducible shards)."""
    import webdataset  # imports torch: only where shards are written

    return webdataset.TarWriter(
        fh, user="", group="", mode=0o644, mtime=0, encoder=False, format="USTAR_FORMAT"
    )


def write_shard(path: Path, groups: list[Group]) -> str:
    """Write ``groups`` to ``path`` atomically (temp file + rename). Returns the sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            with _tar_writer(fh) as writer:
                for group in groups:
                    writer.write(encode_group(group))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return file_sha256(path)


@dataclass
class Sample:
    """One decoded group read back from a shard."""

    key: str
    record: dict[str, Any]
    ref: np.ndarray
    dist: np.ndarray


def _decode(path: Path, key: str, parts: dict[str, bytes]) -> Sample:
    missing = [ext for ext in ("json", "ref.npy", "dist.npy") if ext not in parts]
    if missing:
        raise ShardError(path, f"sample {key!r} lacks {', '.join(missing)}")
    try:
        record = json.loads(parts["json"])
        ref = np.load(io.BytesIO(parts["ref.npy"]), allow_pickle=False)
        dist = np.load(io.BytesIO(parts["dist.npy"]), allow_pickle=False)
    except Exception as exc:
        raise ShardError(path, f"sample {key!r} does not decode ({type(exc).__name__}: {exc})") from exc
    return Sample(key=key, record=record, ref=ref, dist=dist)


def iter_raw(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` per sample, raising :class:`ShardError` on damage.

    The members are read as webdataset's ``tar_file_iterator`` reads them (tarfile's stream
    mode over an unbuffered file, regular members only, ``__*__`` metadata skipped): the stock
    pipeline's buffered opener costs 10-25 % of the read speed (``bench/corpus_read.py``). A
    member cut short raises ``tarfile.ReadError``, reported here as a :class:`ShardError` naming
    the file.
    """
    path = Path(path)
    if not path.exists():
        raise ShardError(path, "file does not exist")
    current: str | None = None
    parts: dict[str, bytes] = {}
    try:
        with open(path, "rb", buffering=0) as fh:
            stream = tarfile.open(fileobj=fh, mode="r|*")
            for info in stream:
                name = info.name
                if not info.isreg() or name.startswith("__"):
                    continue
                data = stream.extractfile(info).read()
                stream.members = []  # a stream keeps every member's header otherwise
                key, _, ext = os.path.basename(name).partition(".")
                if current is not None and key != current:
                    yield current, parts
                    parts = {}
                current = key
                parts[ext] = data
    except ShardError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(path, f"{type(exc).__name__}: {exc}") from exc
    if current is not None:
        yield current, parts


def iter_samples(path: Path) -> Iterator[Sample]:
    """Decode every sample of one shard, in order."""
    for key, parts in iter_raw(path):
        yield _decode(Path(path), key, parts)


def verify_shard(path: Path) -> int:
    """Decode the whole shard; returns the number of samples or raises :class:`ShardError`."""
    return sum(1 for _ in iter_samples(path))
