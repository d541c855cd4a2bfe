"""A full disk: every atomic write turns ``ENOSPC`` into one ``OSError`` that names the target
and the space left, leaves no temporary file and keeps the old target; ``shamisa train`` on a
full disk exits 2 with one line instead of torch's "unexpected pos" traceback (what CI showed
when the test run filled its disk).

The full disk is real: a 4 MiB tmpfs mounted for the test (``mount`` needs root, which CI
has; elsewhere the tests are skipped and say why).
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
import torch

from shamisa_core.atomic import atomic_write_bytes
from shamisa_core.cli import main
from shamisa_core.training.checkpoint import atomic_torch_save

from .conftest import TINY_SETS
from .fault_kit import assert_clean_error


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A mounted 4 MiB tmpfs (unmounted after the test)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _assert_disk_full(exc: OSError, target: Path) -> None:
    assert exc.errno == errno.ENOSPC
    assert exc.filename == str(target)
    assert "No space left" in str(exc) and "MiB free" in str(exc)


def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old(tiny_disk):
    target = tiny_disk / "out.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, bytes(8 << 20))
    _assert_disk_full(info.value, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["out.bin"]


def test_torch_save_on_a_full_disk_is_an_oserror_not_a_torch_runtime_error(tiny_disk):
    target = tiny_disk / "checkpoint.pt"
    with pytest.raises(OSError) as info:
        atomic_torch_save({"w": torch.zeros(2 << 20)}, target)
    _assert_disk_full(info.value, target)
    assert list(tiny_disk.iterdir()) == []


def test_train_on_a_full_disk_exits_2_with_one_line(built_corpus, tiny_disk, capsys):
    out = tiny_disk / "run"
    rc = main(["train", "--corpus", str(built_corpus), "--out", str(out), "--steps", "2",
               *TINY_SETS, "--set", "train.amp=off", "--set", "train.checkpoint_every=1"])
    err = capsys.readouterr().err
    assert_clean_error(rc, err, "No space left", str(out / "checkpoint.pt"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
