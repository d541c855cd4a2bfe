"""The `shamisa` command line: distortions list, distort, corpus build/inspect, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from shamisa_core.cli import main
from tests.conftest import natural_image


def test_distortions_list_json(capsys):
    assert main(["distortions", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 26
    assert {"family", "type", "reference_key", "anchors", "integer", "parameter"} <= set(rows[0])
    jpeg = next(r for r in rows if r["type"] == "jpeg")
    assert jpeg["anchors"] == [43, 36, 24, 7, 4] and jpeg["integer"] is True


def test_distort_applies_chain(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(natural_image(0, 64, 64)).save(src)
    dst = tmp_path / "out.png"
    assert main(["distort", str(src), str(dst), "--chain", "jpeg:2.5,gaublur:1.0"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [c["type"] for c in info["chain"]] == ["jpeg", "gaublur"]
    out = np.asarray(Image.open(dst))
    assert out.shape == (64, 64, 3) and np.abs(out.astype(int) - natural_image(0, 64, 64)).mean() > 1


def test_distort_errors_are_clear(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(natural_image(0, 64, 64)).save(src)
    assert main(["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpgg:1"]) == 2
    err = capsys.readouterr().err
    assert "unknown distortion type 'jpgg'" in err and "jpeg2000" in err
    assert main(["distort", str(src), str(tmp_path / "o.png"), "--chain", "jpeg:5"]) == 2
    assert "outside [0, 4]" in capsys.readouterr().err


def test_corpus_build_and_inspect(pristine_dir, tmp_path, capsys):
    out = tmp_path / "corpus"
    rc = main([
        "corpus", "build", "--pristine", str(pristine_dir), "--out", str(out), "--shards", "1",
        "--groups-per-shard", "2", "--profile", "cpu-small", "--seed", "3", "--workers", "1",
        "--set", "group.patch_size=48", "--set", "group.n_levels=2",
    ])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["groups"] == 2
    assert main(["corpus", "inspect", str(out / "shard-000000.tar"), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    obj = json.loads(lines[0])
    assert obj["arrays"]["dist"] == [4, 2, 2, 48, 48, 3]
    assert obj["compositions"][0]["levels"]


def test_unknown_override_is_a_clear_error(pristine_dir, tmp_path, capsys):
    rc = main(["corpus", "build", "--pristine", str(pristine_dir), "--out", str(tmp_path / "c"),
               "--set", "group.nope=3"])
    assert rc == 2
    assert "unknown config key 'group.nope'" in capsys.readouterr().err
