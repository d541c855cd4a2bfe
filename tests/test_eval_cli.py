"""`shamisa evaluate` end to end on a tiny proxy-like dataset with a random-init encoder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _eval_helpers import fresh_mlflow_dir, make_encoder, make_kadid_like
from shamisa_core.cli import main
from shamisa_core.evaluation import benchmark as bm
from shamisa_core.evaluation.cli_evaluate import DATASET_NAMES, parse_datasets

REQUIRED = {"srcc", "plcc", "srcc_splits", "plcc_splits", "alpha", "n_images", "n_missing"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    proxy = make_kadid_like(root / "proxy", proxy_columns=True, seed=3, levels=(1, 3))
    enc = make_encoder(root / "run" / "encoder.pt", seed=1)
    return root, proxy, enc


def test_evaluate_prints_table_and_writes_json(setup, capsys):
    root, proxy, enc = setup
    out = root / "out" / "result.json"
    rc = main(["evaluate", "--encoder", str(enc), "--dataset", f"proxy={proxy}",
               "--json", str(out), "--cache-dir", str(root / "cache"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SRCC" in text and "random twin (= init twin) SRCC" in text and "proxy" in text
    data = json.loads(out.read_text())
    assert REQUIRED <= set(data["proxy"]) and REQUIRED <= set(data["twins"]["random_twin"]["proxy"])
    assert data["proxy"]["n_images"] == 24 and data["proxy"]["n_missing"] == 0
    assert len(data["proxy"]["srcc_splits"]) == 10
    assert data["meta"]["crop_size"] == 32 and "cross" not in data
    assert not list(out.parent.glob(".*tmp"))  # atomic write leaves no temp file

    # --cross, --no-baseline and --crop-size; the features of crop 32 come from the cache
    out2 = root / "out" / "cross.json"
    rc = main(["evaluate", "--encoder", str(enc.parent), "--dataset", f"proxy={proxy}",
               "--dataset", f"kadid10k={proxy}",
               "--cross", "--no-baseline", "--json", str(out2),
               "--cache-dir", str(root / "cache"), "--quiet"])
    assert rc == 0
    data2 = json.loads(out2.read_text())
    assert "twins" not in data2 and data2["proxy"]["features"]["cache_hit"]
    assert REQUIRED <= set(data2["cross"]["proxy"]["kadid10k"])
    assert "proxy" not in data2["cross"]["proxy"]  # the diagonal is the standard protocol
    assert data2["proxy"]["srcc"] == data["proxy"]["srcc"]
    assert "cross-dataset SRCC" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope=/x"], "unknown dataset"),
    (["--dataset", "kadid10k"], "needs a folder"),
    (["--dataset", "kadid10k=/definitely/not/here"], "does not exist"),
])
def test_evaluate_errors(setup, capsys, argv, message):
    root, _, enc = setup
    rc = main(["evaluate", "--encoder", str(enc), "--cache-dir", str(root / "cache"), "--quiet",
               *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_missing_encoder_and_unknown_model_uri(setup, capsys, tmp_path):
    root, proxy, _ = setup
    assert main(["evaluate", "--encoder", str(tmp_path / "none.pt"), "--dataset",
                 f"proxy={proxy}", "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    rc = main(["evaluate", "--encoder", "models:/shamisa-iqa@champion", "--dataset",
               f"proxy={proxy}", "--mlflow-dir", str(fresh_mlflow_dir(tmp_path / "mlflow")),
               "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert rc == 2 and "cannot resolve models:/shamisa-iqa@champion" in capsys.readouterr().err


def test_parse_datasets_and_names():
    assert parse_datasets(["proxy", "KADID10K=/d/k", "live=/d/l"]) == {
        "proxy": None, "kadid10k": "/d/k", "live": "/d/l"}
    assert parse_datasets(["proxy=default"]) == {"proxy": None}
    with pytest.raises(ValueError, match="twice"):
        parse_datasets(["proxy", "proxy=default"])
    assert DATASET_NAMES == bm.DATASET_NAMES
    assert set(DATASET_NAMES) == {"live", "csiq", "tid2013", "kadid10k", "koniq10k", "clive",
                                  "spaq", "flive", "proxy"}


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "shamisa_core.cli", "evaluate", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--encoder", "--dataset", "--cross", "--fr", "--json", "--no-twins",
                 "--crop-size"):
        assert flag in out


@pytest.mark.slow
def test_evaluate_builds_the_proxy(setup, capsys):
    root, _, enc = setup
    rc = main(["evaluate", "--encoder", str(enc), "--dataset", "proxy", "--quiet",
               "--cache-dir", str(root / "cache"), "--proxy-dir", str(root / "proxies"),
               "--proxy-refs", "6", "--proxy-types", "gaublur,jpeg", "--proxy-levels", "0,4",
               "--json", str(root / "built.json")])
    assert rc == 0
    data = json.loads((root / "built.json").read_text())
    assert data["proxy"]["n_images"] == 24
    assert data["meta"]["proxy_spec"]["types"] == ["gaublur", "jpeg"]
    built = list((root / "proxies").iterdir())
    assert len(built) == 1 and built[0].name.startswith("r6-t2-l2-")
    assert (built[0] / "dmos.csv").is_file()
