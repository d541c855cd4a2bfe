"""Shared tools of the fault-test suite: damaged inputs made on the spot, a real ``shamisa``
subprocess, and the three assertions every fault test makes (exit code, no traceback,
on-disk state is the old one or the new one).

Damage kinds (issue 8): truncated at 50 %, 0 bytes, random bytes, a valid file of the wrong
kind, a wrong-shape member (see :func:`rewrite_shard_member`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ damage
def truncate_half(path: Path) -> None:
    """Keep the first 50 % of the file's bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero_bytes(path: Path) -> None:
    """Make the file empty."""
    path.write_bytes(b"")


def random_bytes(path: Path, seed: int = 0, n: int = 4096) -> None:
    """Replace the file with ``n`` seeded random bytes."""
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())


def wrong_kind(path: Path) -> None:
    """Replace the file with a valid file of another kind (a small JSON document)."""
    path.write_bytes(json.dumps({"this": "is a JSON file, not what you expected"}).encode())


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated": truncate_half,
    "zero": zero_bytes,
    "random": random_bytes,
    "wrong_kind": wrong_kind,
}


def rewrite_shard_member(shard: Path, suffix: str, transform: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite every ``*.{suffix}`` npy member of a shard through ``transform`` (e.g. a
    wrong shape), keeping the tar otherwise intact and readable."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(shard) as tar:
        for info in tar:
            data = tar.extractfile(info).read()
            if info.name.endswith(suffix):
                buf = io.BytesIO()
                np.save(buf, transform(np.load(io.BytesIO(data))), allow_pickle=False)
                data = buf.getvalue()
                info.size = len(data)
            members.append((info, data))
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))


# ------------------------------------------------------------------ running
def cli_env() -> dict[str, str]:
    """Environment of a ``shamisa`` subprocess: offline, quiet, few threads."""
    env = dict(os.environ)
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def shamisa_cmd(*args: str) -> list[str]:
    """The command line of ``shamisa ARGS`` run with this interpreter."""
    return [sys.executable, "-m", "shamisa_core.cli", *map(str, args)]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``shamisa ARGS`` as a real subprocess; returns the completed process (text)."""
    return subprocess.run(shamisa_cmd(*args), capture_output=True, text=True, env=cli_env(),
                          cwd=REPO, timeout=timeout)


def assert_clean_error(rc: int, err: str, *needles: str, code: int = 2) -> None:
    """Exit status ``code``, no Python traceback, exactly one error line naming ``needles``."""
    assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("shamisa: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (the on-disk state)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
