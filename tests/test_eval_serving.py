"""shamisa score / fit / compare, the Python API and the fast CLI (issue 9 part 2)."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _eval_helpers import fresh_mlflow_dir, make_encoder, make_kadid_like
from shamisa_core.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A KADID-layout folder, its labels as a fit CSV (with references) and a fitted model."""
    root = tmp_path_factory.mktemp("serving")
    data = make_kadid_like(root / "data", seed=7, levels=(1, 3))
    table = pd.read_csv(data / "dmos.csv")
    labels = pd.DataFrame({"image": table["dist_img"], "score": table["dmos"],
                           "reference": table["ref_img"]})
    labels.to_csv(root / "labels.csv", index=False)
    enc = make_encoder(root / "enc" / "encoder.pt", seed=0)
    rc = main(["fit", "--images", str(data / "images"), "--labels", str(root / "labels.csv"),
               "--encoder", str(enc), "--out", str(root / "model"), "--quiet",
               "--json", str(root / "fit.json")])
    assert rc == 0
    return {"root": root, "data": data, "enc": enc, "model": root / "model",
            "report": json.loads((root / "fit.json").read_text())}


def test_fit_reports_and_saves_a_model(fitted, capsys):
    rep = fitted["report"]
    assert rep["n_images"] == 24 and rep["split_method"] == "reference_disjoint"
    assert len(rep["srcc_splits"]) == 10 and rep["srcc_iqr"] is not None
    assert rep["srcc"] is not None and -1 <= rep["srcc"] <= 1
    model = fitted["model"]
    assert (model / "encoder.pt").is_file() and (model / "regressor.npz").is_file()
    card = json.loads((model / "model.json").read_text())
    assert card["kind"] == "shamisa-fit" and card["n_images"] == 24


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.assign(image=t["image"].where(t.index != 3, "nope.png")), "line 5: image nope.png not found"),
    (lambda t: t.assign(score=t["score"].where(t.index != 0, np.nan)), "line 2: score of"),
    (lambda t: t.head(9), "9 labelled images; fitting needs at least 10"),
    (lambda t: t.drop(columns=["score"]), "missing column(s) ['score']"),
])
def test_fit_bad_labels_name_the_file_and_row(fitted, tmp_path, capsys, edit, message):
    table = pd.read_csv(fitted["root"] / "labels.csv")
    bad = tmp_path / "bad.csv"
    edit(table).to_csv(bad, index=False)
    rc = main(["fit", "--images", str(fitted["data"] / "images"), "--labels", str(bad),
               "--encoder", str(fitted["enc"]), "--out", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "m" / "regressor.npz").exists()


def test_score_files_and_folders_with_a_broken_file(fitted, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    images = sorted((fitted["data"] / "images").glob("I01*.png"))[:4]
    for p in images:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "scores.json"
    rc = main(["score", str(folder), str(tmp_path / "absent.jpg"), "--model", str(fitted["model"]),
               "--json", str(out), "--quiet"])
    assert rc == 1  # some files failed
    rows = json.loads(out.read_text())
    assert [Path(r["path"]).name for r in rows] == sorted(
        [p.name for p in images] + ["broken.png"]) + ["absent.jpg"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["broken.png"]["score"] is None
    assert by_name["broken.png"]["error"] and by_name["absent.jpg"]["error"].startswith("FileNotFoundError")
    good = [r for r in rows if r["error"] is None]
    assert len(good) == 4 and all(np.isfinite(r["score"]) for r in good)
    # a score does not depend on the other images of its batch
    out1 = tmp_path / "one.csv"
    assert main(["score", *[str(folder / p.name) for p in images], "--model", str(fitted["model"]),
                 "--batch-size", "1", "--csv", str(out1), "--quiet"]) == 0
    single = pd.read_csv(out1)
    np.testing.assert_allclose(single["score"].to_numpy(), [by_name[p.name]["score"] for p in images],
                               rtol=1e-9)
    # the printed table names the failure too
    assert main(["score", str(folder), "--model", str(fitted["model"])]) == 1
    captured = capsys.readouterr()
    assert "broken.png" in captured.out and "1 failed" in captured.err


def test_score_api_gives_reasons(fitted, tmp_path):
    from shamisa_core import load_model, score

    model = load_model(fitted["model"])
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
        sorted((fitted["data"] / "images").glob("I02*.png"))[0]).convert("RGB"))
    scores, reasons = score(model, [img, img.astype(np.float32), str(tmp_path / "x.png"), 3.5],
                            return_errors=True)
    assert np.isfinite(scores[0]) and np.isnan(scores[1:]).all()
    assert reasons[0] is None and "uint8" in reasons[1]
    assert "FileNotFoundError" in reasons[2] and "float" in reasons[3]


def test_fit_doctest_runs():
    import shamisa_core.serving.fit as fit_module

    result = doctest.testmod(fit_module)
    assert result.attempted >= 10 and result.failed == 0


def test_compare_from_mlflow_only(fitted, tmp_path, capsys):
    store = fresh_mlflow_dir(tmp_path / "mlflow")
    assert main(["compare", "--mlflow-dir", str(store), "--name", "user-iqa"]) == 0
    assert "no registered" in capsys.readouterr().out
    rc = main(["fit", "--images", str(fitted["data"] / "images"), "--labels",
               str(fitted["root"] / "labels.csv"), "--encoder", str(fitted["enc"]), "--out",
               str(tmp_path / "m2"), "--register", "user-iqa", "--mlflow-dir", str(store),
               "--quiet"])
    assert rc == 0 and "registered models:/user-iqa/1" in capsys.readouterr().out
    out = tmp_path / "cmp.json"
    assert main(["compare", "--mlflow-dir", str(store), "--name", "user-iqa", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["version"] == "1" and rows[0]["init"] == "random"
    assert rows[0]["srcc/user"] == pytest.approx(fitted["report"]["srcc"])
    assert "srcc/user" in capsys.readouterr().out


def test_compare_does_not_import_torch(tmp_path):
    store = fresh_mlflow_dir(tmp_path / "mlflow")
    code = ("import sys\nfrom shamisa_core.cli import main\n"
            f"assert main(['compare', '--mlflow-dir', {str(store)!r}]) == 0\n"
            "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_fast_commands_do_not_import_torch():
    code = ("import sys, contextlib, io\nfrom shamisa_core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "    main(['distortions', 'list'])\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
