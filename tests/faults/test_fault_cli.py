"""Defect 3 (issue 8): damaged inputs and unusable output paths end with exit status 2 and
ONE line naming the file and the fix, never a traceback; bad arguments stay clear errors.

Most cases call ``shamisa_core.cli.main`` in-process (an escaping exception would fail the
test); ``test_real_subprocess_*`` run the real console entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthetic_images import natural_image
from shamisa_core.cli import main

from .conftest import TINY_SETS
from .fault_kit import DAMAGES, assert_clean_error, rewrite_shard_member, run_cli, snapshot

SHARD0 = "shard-000000.tar"


def _err(capsys) -> tuple[str, str]:
    cap = capsys.readouterr()
    return cap.out, cap.err


# ------------------------------------------------------------------ corpus inspect
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_inspect_damaged_shard(damage, corpus, capsys):
    shard = corpus / SHARD0
    DAMAGES[damage](shard)
    rc = main(["corpus", "inspect", str(shard), "--json"])
    out, err = _err(capsys)
    assert_clean_error(rc, err, str(shard), "Rebuild")


def test_inspect_wrong_shape_member(corpus, capsys):
    shard = corpus / SHARD0
    rewrite_shard_member(shard, ".ref.npy", lambda a: a[:, :40])  # P 48 -> 40 rows
    rc = main(["corpus", "inspect", str(shard)])
    out, err = _err(capsys)
    assert_clean_error(rc, err, str(shard), "ref array", "record says")


def test_inspect_intact_shard_still_works(corpus, capsys):
    assert main(["corpus", "inspect", str(corpus / SHARD0), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and rows[0]["arrays"]["ref"] == [4, 48, 48, 3]


def test_inspect_a_folder(corpus, capsys):
    rc = main(["corpus", "inspect", str(corpus)])
    assert_clean_error(rc, _err(capsys)[1], str(corpus), "folder")


# ------------------------------------------------------------------ --out / --json / OUTPUT
def test_distort_output_is_a_folder_or_under_a_file(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(natural_image(0, 64, 64)).save(src)
    (tmp_path / "outdir").mkdir()
    rc = main(["distort", str(src), str(tmp_path / "outdir"), "--chain", "jpeg:1"])
    assert_clean_error(rc, _err(capsys)[1], str(tmp_path / "outdir"), "is a folder")
    (tmp_path / "afile").write_text("keep me")
    rc = main(["distort", str(src), str(tmp_path / "afile" / "o.png"), "--chain", "jpeg:1"])
    assert_clean_error(rc, _err(capsys)[1], str(tmp_path / "afile"), "is a file")
    rc = main(["distort", str(src), str(tmp_path / "o.xyz"), "--chain", "jpeg:1"])
    assert_clean_error(rc, _err(capsys)[1], "o.xyz", "extension")
    assert (tmp_path / "afile").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile", "in.png", "outdir"]


def test_distort_overwrites_an_existing_output_atomically(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(natural_image(0, 64, 64)).save(src)
    dst = tmp_path / "o.png"
    dst.write_bytes(b"old")
    assert main(["distort", str(src), str(dst), "--chain", "jpeg:1"]) == 0
    assert np.asarray(Image.open(dst)).shape == (64, 64, 3)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_corpus_build_out_is_a_file(photos, tmp_path, capsys):
    out = tmp_path / "corpus.txt"
    out.write_text("not a folder")
    rc = main(["corpus", "build", "--pristine", str(photos), "--out", str(out), "--shards", "1",
               "--groups-per-shard", "1", "--workers", "1", *TINY_SETS])
    assert_clean_error(rc, _err(capsys)[1], str(out), "existing file")
    assert out.read_text() == "not a folder"


def test_train_out_is_a_file(built_corpus, tmp_path, capsys):
    out = tmp_path / "run.txt"
    out.write_text("x")
    rc = main(["train", "--corpus", str(built_corpus), "--out", str(out), "--steps", "1", *TINY_SETS])
    assert_clean_error(rc, _err(capsys)[1], str(out), "existing file")
    assert out.read_text() == "x"


def test_evaluate_json_is_a_folder_fails_before_computing(encoder_file, tmp_path, capsys):
    (tmp_path / "res").mkdir()
    rc = main(["evaluate", "--encoder", str(encoder_file), "--dataset", "proxy", "--json", str(tmp_path / "res"),
               "--no-baseline", "--cache-dir", str(tmp_path / "cache")])
    out, err = _err(capsys)
    assert_clean_error(rc, err, str(tmp_path / "res"), "is a folder")
    assert out == "" and not (tmp_path / "cache").exists()  # nothing was computed or printed


# ------------------------------------------------------------------ evaluate --encoder damaged
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_evaluate_damaged_encoder_names_the_path(damage, encoder_file, tmp_path, capsys):
    enc = tmp_path / "encoder.pt"
    enc.write_bytes(encoder_file.read_bytes())
    DAMAGES[damage](enc)
    rc = main(["evaluate", "--encoder", str(enc), "--dataset", f"kadid10k={tmp_path / 'nowhere'}",
               "--cache-dir", str(tmp_path / "cache")])
    assert_clean_error(rc, _err(capsys)[1], str(enc), "0 bytes" if damage == "zero" else "damaged")


def test_evaluate_torch_file_of_another_kind(tmp_path, capsys):
    import torch

    enc = tmp_path / "checkpoint.pt"
    torch.save({"format": "shamisa-checkpoint/1", "step": 3}, enc)
    rc = main(["evaluate", "--encoder", str(enc), "--dataset", f"kadid10k={tmp_path}"])
    assert_clean_error(rc, _err(capsys)[1], str(enc), "not a shamisa-encoder/1 file")


# ------------------------------------------------------------------ what already held
def test_bad_arguments_stay_clear_errors(photos, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(natural_image(0, 64, 64)).save(src)
    cases = [
        (["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpgg:1"], "unknown distortion type"),
        (["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpeg:9"], "outside [0, 4]"),
        (["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpeg:1,jpeg2000:1"], "family"),
        (["distort", str(tmp_path / "nope.png"), str(tmp_path / "o.png"), "--chain", "jpeg:1"], "does not exist"),
        (["corpus", "build", "--pristine", str(photos), "--out", str(tmp_path / "c"), "--set", "group.nope=1"],
         "unknown config key"),
        (["corpus", "build", "--pristine", str(tmp_path / "none"), "--out", str(tmp_path / "c")], "does not exist"),
        (["train", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "r")], "does not exist"),
    ]
    for argv, needle in cases:
        rc = main(argv)
        assert_clean_error(rc, _err(capsys)[1], needle)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def test_argparse_errors_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--corpus", "x", "--out", "y", "--profile", "huge"])
    err = _err(capsys)[1]
    assert info.value.code == 2 and "invalid choice" in err and "Traceback" not in err


def test_debug_shows_the_traceback(corpus, capsys):
    shard = corpus / SHARD0
    DAMAGES["truncated"](shard)
    rc = main(["--debug", "corpus", "inspect", str(shard)])
    err = _err(capsys)[1]
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("shamisa: error:")
    rc = main(["corpus", "inspect", str(shard), "--debug"])
    assert rc == 2 and "Traceback" in _err(capsys)[1]


# ------------------------------------------------------------------ the real entry point
@pytest.mark.slow
def test_real_subprocess_damaged_shard_and_encoder(corpus, encoder_file, tmp_path):
    shard = corpus / SHARD0
    DAMAGES["random"](shard)
    before = snapshot(corpus)
    proc = run_cli("corpus", "inspect", str(shard))
    assert_clean_error(proc.returncode, proc.stderr, str(shard))
    enc = tmp_path / "encoder.pt"
    enc.write_bytes(encoder_file.read_bytes())
    DAMAGES["truncated"](enc)
    proc = run_cli("evaluate", "--encoder", str(enc), "--dataset", f"live={tmp_path}")
    assert_clean_error(proc.returncode, proc.stderr, str(enc))
    assert snapshot(corpus) == before
