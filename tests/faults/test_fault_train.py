"""Defects 3 and 4 (issue 8) for ``shamisa train``: damaged shards and checkpoints are clear
errors, a run folder is written as a unit, shards are checked against the manifest, a torn
log line is dropped on resume; SIGKILL + ``--resume`` stays bit-identical.

Every case asserts the exit status, that no traceback is shown, and that the run folder
afterwards is the old state or the new state (``snapshot``), never a mix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from shamisa_core.cli import main

from .conftest import TINY_SETS
from .fault_kit import DAMAGES, assert_clean_error, cli_env, rewrite_shard_member, shamisa_cmd, snapshot

SHARD1 = "shard-000001.tar"


def _train(corpus: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "--corpus", str(corpus), "--out", str(out), "--steps", str(steps),
            *TINY_SETS, "--set", "train.log_every=1", "--set", "train.amp=off", *extra]


def _log(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, request) -> Path:
    """A finished 2-step run (never modified: copy it)."""
    built = request.getfixturevalue("built_corpus")
    out = tmp_path_factory.mktemp("run0") / "run"
    assert main(_train(built, out, 2, "--set", "train.checkpoint_every=1")) == 0
    return out


@pytest.fixture
def run_dir(finished_run, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst


# ------------------------------------------------------------------ damaged shards
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_train_on_damaged_shard_is_a_clear_error(damage, corpus, tmp_path, capsys):
    DAMAGES[damage](corpus / SHARD1)
    out = tmp_path / "run"
    rc = main(_train(corpus, out, 1))
    err = capsys.readouterr().err
    assert_clean_error(rc, err, str(corpus / SHARD1), "does not match the corpus manifest", "--skip-bad-shards")
    assert not out.exists()  # nothing started


def test_swapped_shards_are_caught_by_the_manifest_hashes(corpus, tmp_path, capsys):
    a, b = corpus / "shard-000000.tar", corpus / SHARD1
    tmp = corpus / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    rc = main(_train(corpus, tmp_path / "run", 1))
    assert_clean_error(rc, capsys.readouterr().err, "shard-00000", "sha256")


def test_skip_bad_shards_trains_and_counts_them(corpus, tmp_path, capsys):
    DAMAGES["truncated"](corpus / SHARD1)
    out = tmp_path / "run"
    rc = main(_train(corpus, out, 2, "--skip-bad-shards"))
    cap = capsys.readouterr()
    assert rc == 0 and "Traceback" not in cap.err
    assert f"skipping bad shard {corpus / SHARD1}" in cap.err
    rows = _log(out / "train_log.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["skipped_shards"] == 1 for r in rows)
    assert json.loads(cap.out.splitlines()[-1])["skipped_shards"] == 1


def test_wrong_array_shapes_name_the_shard(corpus, tmp_path, capsys):
    """A shard whose members do not have the record's shapes (manifest updated to match, so
    only the shape check can catch it): one line naming the shard, before any step."""
    from shamisa_core.atomic import file_sha256

    shard = corpus / SHARD1
    rewrite_shard_member(shard, ".dist.npy", lambda a: a[:, :, :1])  # L 2 -> 1
    man = json.loads((corpus / "manifest.json").read_text())
    for s in man["shards"]:
        if s["file"] == SHARD1:
            s["sha256"] = file_sha256(shard)
    (corpus / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "run"
    rc = main(_train(corpus, out, 4))
    assert_clean_error(rc, capsys.readouterr().err, str(shard), "wrong array shapes", "dist")
    assert not (out / "checkpoint.pt").exists() and not (out / "encoder.pt").exists()
    rc = main(_train(corpus, tmp_path / "run2", 2, "--skip-bad-shards"))
    assert rc == 0
    assert _log(tmp_path / "run2" / "train_log.jsonl")[-1]["skipped_groups"] >= 1


# ------------------------------------------------------------------ damaged checkpoint
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_resume_with_damaged_checkpoint(damage, built_corpus, run_dir, capsys):
    ckpt = run_dir / "checkpoint.pt"
    DAMAGES[damage](ckpt)
    before = snapshot(run_dir)
    rc = main(_train(built_corpus, run_dir, 4, "--resume"))
    assert_clean_error(rc, capsys.readouterr().err, str(ckpt), "--overwrite")
    assert snapshot(run_dir) == before  # the old state, untouched


# ------------------------------------------------------------------ the run folder is a unit
def test_new_run_into_an_old_run_folder_is_refused(built_corpus, run_dir, capsys):
    before = snapshot(run_dir)
    assert len(_log(run_dir / "train_log.jsonl")) == 2
    rc = main(_train(built_corpus, run_dir, 1))
    assert_clean_error(rc, capsys.readouterr().err, str(run_dir), "--resume", "--overwrite")
    assert snapshot(run_dir) == before  # the old log was NOT truncated (it used to be)


def test_overwrite_replaces_the_old_run(built_corpus, run_dir, capsys):
    old = snapshot(run_dir)
    assert main(_train(built_corpus, run_dir, 1, "--overwrite")) == 0
    new = snapshot(run_dir)
    assert set(new) == {"checkpoint.pt", "encoder.pt", "train_log.jsonl"}
    assert all(new[k] != old[k] for k in new)  # every file is the new run's
    assert [r["step"] for r in _log(run_dir / "train_log.jsonl")] == [1]


def test_overwrite_refuses_a_folder_of_other_files(built_corpus, tmp_path, capsys):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    rc = main(_train(built_corpus, out, 1, "--overwrite"))
    assert_clean_error(rc, capsys.readouterr().err, "thesis.tex", "not part of a shamisa run")
    assert snapshot(out) == {"thesis.tex": snapshot(out)["thesis.tex"]}


def test_resume_drops_a_torn_last_log_line_and_stale_temps(built_corpus, run_dir, capsys):
    log = run_dir / "train_log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "loss": 0.12')  # killed mid-write
    (run_dir / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    rc = main(_train(built_corpus, run_dir, 3, "--resume"))
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    assert f"{log}: dropped a torn last line" in err
    assert [r["step"] for r in _log(log)] == [1, 2, 3]
    assert not list(run_dir.glob(".*.tmp"))


def test_damaged_log_line_in_the_middle_names_the_file(built_corpus, run_dir, capsys):
    log = run_dir / "train_log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("{garbage\n" + "\n".join(lines) + "\n")
    rc = main(_train(built_corpus, run_dir, 3, "--resume"))
    assert_clean_error(rc, capsys.readouterr().err, str(log), "line 1")


# ------------------------------------------------------------------ SIGKILL + resume (held)
@pytest.mark.slow
def test_sigkill_during_training_then_resume_is_bit_identical(built_corpus, tmp_path):
    """Kill a real ``shamisa train`` at a seeded random moment after its first checkpoint,
    resume it: the weights equal an uninterrupted run's bit for bit; the folder never mixes."""
    steps = 6
    sets = ["--set", "train.checkpoint_every=1"]
    straight = tmp_path / "straight"
    assert subprocess.run(shamisa_cmd(*_train(built_corpus, straight, steps, *sets)), env=cli_env(),
                          capture_output=True, timeout=900).returncode == 0
    killed = tmp_path / "killed"
    rng = np.random.default_rng(8)
    proc = subprocess.Popen(shamisa_cmd(*_train(built_corpus, killed, steps, *sets)), env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (killed / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(float(rng.uniform(0.0, 2.0)))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Old or new state only: a checkpoint that loads, a log whose lines parse except a torn last one.
    ck = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 1 <= ck["step"] <= steps
    resumed = subprocess.run(shamisa_cmd(*_train(built_corpus, killed, steps, *sets, "--resume")), env=cli_env(),
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    a = torch.load(straight / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(killed / "encoder.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in _log(killed / "train_log.jsonl")] == list(range(1, steps + 1))
    assert not list(killed.glob(".*.tmp"))
