"""Defect 5 and the corpus cases that already held (issue 8): workers die with a killed
``corpus build``, temp files of killed writes are cleaned by the next build, a rebuild with
fewer shards removes the unlisted ones, rebuilds are byte-identical, no half-written shard
carries a real name, and the pristine path's spelling does not change the config hash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shamisa_core.cli import main

from .conftest import TINY_SETS
from .fault_kit import cli_env, shamisa_cmd, snapshot


def _build(photos: Path | str, out: Path, shards: int, workers: int = 1, gps: int = 1) -> list[str]:
    return ["corpus", "build", "--pristine", str(photos), "--out", str(out), "--shards", str(shards),
            "--groups-per-shard", str(gps), "--workers", str(workers), "--seed", "4", *TINY_SETS]


def _shards(folder: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(folder).items() if k.startswith("shard-") or k == "manifest.json"}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_rebuild_is_byte_identical(photos, tmp_path, capsys):
    assert main(_build(photos, tmp_path / "a", 2)) == 0
    assert main(_build(photos, tmp_path / "b", 2)) == 0
    assert main(_build(photos, tmp_path / "a", 2)) == 0  # again in place
    a, b = _shards(tmp_path / "a"), _shards(tmp_path / "b")
    assert a == b and len(a) == 3


def test_relative_and_absolute_pristine_give_the_same_corpus(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(photos.parent)
    assert main(_build(photos.name, tmp_path / "rel", 1)) == 0
    assert main(_build(str(photos.resolve()) + "/", tmp_path / "abs", 1)) == 0
    rel, ab = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("rel", "abs"))
    assert rel["config_hash"] == ab["config_hash"]
    assert rel["config"]["corpus"]["pristine"].startswith("content:")
    assert _shards(tmp_path / "rel") == _shards(tmp_path / "abs")
    # ... while other photos give another hash
    other = tmp_path / "other"
    shutil.copytree(photos, other)
    (other / "0.png").unlink()
    assert main(_build(other, tmp_path / "oth", 1)) == 0
    assert json.loads((tmp_path / "oth" / "manifest.json").read_text())["config_hash"] != rel["config_hash"]


def test_rebuild_with_fewer_shards_removes_the_unlisted_ones(photos, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(_build(photos, out, 3)) == 0
    capsys.readouterr()
    assert main(_build(photos, out, 2)) == 0
    err = capsys.readouterr().err
    assert f"removed {out / 'shard-000002.tar'}" in err
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    man = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in man["shards"]] == ["shard-000000.tar", "shard-000001.tar"]


def test_a_zombie_writers_temp_is_stale(tmp_path):
    """The workers of a SIGKILLed build stay zombies until reaped; their temps are stale."""
    from shamisa_core.corpus.build import remove_stale_shard_temps

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while _alive(zombie.pid) and time.monotonic() < deadline:  # exited, not reaped
            time.sleep(0.05)
        assert Path(f"/proc/{zombie.pid}").exists() or not Path("/proc/self").exists()
        tmp = tmp_path / f".shard-000003.tar.tmp-{zombie.pid}"
        tmp.write_bytes(b"a killed worker's half shard")
        assert remove_stale_shard_temps(tmp_path) == [tmp] and not tmp.exists()
    finally:
        zombie.wait()


def test_stale_shard_temps_are_removed_but_live_ones_kept(photos, tmp_path, capsys):
    out = tmp_path / "c"
    out.mkdir()
    dead = out / f".shard-000000.tar.tmp-{_dead_pid()}"
    dead.write_bytes(b"half a shard")
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / f".shard-000009.tar.tmp-{live_proc.pid}"
        live.write_bytes(b"another build is writing this")
        assert main(_build(photos, out, 1)) == 0
        assert not dead.exists() and live.exists()
        assert f"removed {dead}" in capsys.readouterr().err
    finally:
        live_proc.kill()
        live_proc.wait()


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return kids


def _alive(pid: int) -> bool:
    try:
        state = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie has exited


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigkill_of_corpus_build_leaves_no_orphans_and_no_torn_shards(photos, tmp_path):
    """SIGKILL ``corpus build --workers 2`` mid-build: its pool workers exit within seconds
    (they used to run on and then idle forever), every file with a shard name is a complete
    shard, and the next build cleans up and gives the uninterrupted bytes.

    The kill is tied to progress, not to the clock (a fixed delay let a fast CI machine finish
    first): it lands a seeded 0-150 ms after the first shard is committed, with 47 shards still
    to write, so it hits the build between and inside shard writes whatever the machine's speed.
    """
    from shamisa_core.corpus.shards import verify_shard

    n_shards = 48
    out = tmp_path / "c"
    cmd = shamisa_cmd(*_build(photos, out, n_shards, workers=2, gps=2))
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        if len(workers) >= 2 and any(out.glob("shard-*.tar")):
            break
        time.sleep(0.01)
    assert len(workers) >= 2, "the build never started its pool"
    assert any(out.glob("shard-*.tar")), "the build never committed a shard"
    time.sleep(float(np.random.default_rng(5).uniform(0.0, 0.15)))
    assert proc.poll() is None, "the build finished before the kill: give it more shards"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived their killed parent"
    done = list(out.glob("shard-*.tar"))
    assert 0 < len(done) < n_shards
    for shard in done:
        verify_shard(shard)  # a real shard name is only ever a complete shard
    assert not (out / "manifest.json").exists()  # the build did not finish: no manifest claims it did
    # the next build in the folder: stale temps gone, same bytes as an uninterrupted build
    rebuild = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert rebuild.returncode == 0 and "Traceback" not in rebuild.stderr, rebuild.stderr
    assert not list(out.glob(".shard-*"))
    ref = tmp_path / "ref"
    assert subprocess.run(shamisa_cmd(*_build(photos, ref, n_shards, workers=2, gps=2)), env=cli_env(),
                          capture_output=True, timeout=900).returncode == 0
    assert _shards(out) == _shards(ref)


def _read_pdeathsig() -> int:
    import ctypes

    value = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
    return value.value


def test_worker_initializer_sets_the_parent_death_signal():
    """The pool initializer really arms ``PR_SET_PDEATHSIG`` (read back with PR_GET_PDEATHSIG)
    in a real (forked) pool worker, and a worker started without it has none."""
    import multiprocessing as mp

    from shamisa_core.corpus.build import _worker_init

    if not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux-only")
    ctx = mp.get_context("fork")
    with ctx.Pool(1, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
        assert pool.apply(_read_pdeathsig) == signal.SIGKILL
    with ctx.Pool(1) as pool:
        assert pool.apply(_read_pdeathsig) == 0
