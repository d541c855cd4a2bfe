"""Build shards and whole corpora from a pristine source (METHOD.md §2; DECISIONS 5, 12).

Crash safety (issue 8 defect 5): pool workers die with their parent (``PR_SET_PDEATHSIG``
on Linux, plus a parent-PID watchdog everywhere), temp files of killed shard writes are
removed by the next build in the folder, and shards a rebuild's manifest no longer lists
are removed and reported.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from shamisa_core.config import ShamisaConfig
from shamisa_core.corpus.groups import build_group, default_loader
from shamisa_core.corpus.manifest import read_manifest, unlisted_shards, write_manifest
from shamisa_core.corpus.shards import shard_name, write_shard


@dataclass(frozen=True)
class ShardResult:
    """What building one shard produced."""

    shard: int
    path: str
    sha256: str
    n_groups: int
    n_crops: int
    seconds: float


def build_shard(
    sources: Sequence[str], cfg: ShamisaConfig, shard: int, out_dir: Path
) -> ShardResult:
    """Build shard ``shard`` of the corpus described by ``cfg`` into ``out_dir``."""
    import cv2

    cv2.setNumThreads(1)
    start = time.perf_counter()
    gps = cfg.corpus.groups_per_shard
    groups = [
        build_group(
            list(sources), default_loader, cfg.corpus.seed, shard, g, gps, cfg.group, cfg.engine
        )
        for g in range(gps)
    ]
    path = Path(out_dir) / shard_name(shard)
    sha = write_shard(path, groups)
    return ShardResult(
        shard=shard,
        path=str(path),
        sha256=sha,
        n_groups=len(groups),
        n_crops=len(groups) * cfg.group.crops_per_group,
        seconds=time.perf_counter() - start,
    )


def _build_one(args: tuple[list[str], ShamisaConfig, int, str]) -> ShardResult:
    sources, cfg, shard, out = args
    return build_shard(sources, cfg, shard, Path(out))


_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``prctl``)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Daemon thread body: exit the process as soon as it is re-parented (parent died)."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval_s)


def _worker_init(parent_pid: int) -> None:
    """Pool-worker initializer: die with the parent (issue 8 defect 5), never outlive it."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


_TMP_SHARD = re.compile(r"^\.(shard-\d+\.tar)\.tmp-(\d+)$")


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process. A zombie (exited, not yet reaped: the pool workers
    of a SIGKILLed build, until their new parent reaps them) is not: it can write nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # gone meanwhile (Linux), or no /proc
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def remove_stale_shard_temps(out_dir: Path) -> list[Path]:
    """Delete ``.shard-*.tar.tmp-<pid>`` files whose writer process is gone (killed builds).

    A temp file of a live process (another build writing into the same folder) is kept.
    """
    removed = []
    for tmp in Path(out_dir).glob(".shard-*.tmp-*"):
        m = _TMP_SHARD.match(tmp.name)
        if m and int(m.group(2)) != os.getpid() and not _pid_alive(int(m.group(2))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int, n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` shards: ``requested``, or every available core when
    ``requested`` is 0 (or less); never more than the shards to build, never fewer than 1."""
    workers = int(requested) if int(requested) > 0 else available_cores()
    return max(1, min(workers, int(n_jobs)))


def build_shards(
    sources: Sequence[str], cfg: ShamisaConfig, shards: Sequence[int], out_dir: Path,
    workers: int = 0,
) -> list[ShardResult]:
    """Build the given shards in ``resolve_workers(workers, len(shards))`` processes.

    Each shard depends only on (config, seed, shard index, sources), so the bytes are the
    same whatever the number of workers. Pool workers die with their parent (``_worker_init``).
    Results come back in the order of ``shards``.
    """
    jobs = [(list(sources), cfg, int(s), str(out_dir)) for s in shards]
    n = resolve_workers(workers, len(jobs)) if jobs else 1
    if n > 1:
        with ProcessPoolExecutor(max_workers=n, initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            return list(pool.map(_build_one, jobs))
    return [_build_one(j) for j in jobs]


def build_corpus(
    sources: Sequence[str], cfg: ShamisaConfig, out_dir: Path, workers: int = 1,
    on_note: Callable[[str], None] | None = None,
) -> list[ShardResult]:
    """Build every shard (in ``workers`` processes; 0 = every available core) and the manifest.

    Before: temp files of killed builds are removed. After the manifest is written, shard
    files it does not list (an earlier build had more shards) are deleted. ``on_note``
    receives one line per removed file.
    """
    out_dir = Path(out_dir)
    note = on_note or (lambda _msg: None)
    for tmp in remove_stale_shard_temps(out_dir) if out_dir.is_dir() else []:
        note(f"removed {tmp}, a temp file of an interrupted build")
    results = build_shards(sources, cfg, range(cfg.corpus.n_shards), out_dir, workers)
    write_manifest(out_dir, cfg, [asdict(r) for r in results], sources)
    for stale in unlisted_shards(out_dir, read_manifest(out_dir)):
        stale.unlink(missing_ok=True)
        note(f"removed {stale}: an earlier build's shard that the new manifest does not list")
    return results
