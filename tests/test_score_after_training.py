"""Issue 9 "Done when", at a small scale with real components: after a tiny ``shamisa train``
and an evaluation that registers the ``shamisa-iqa`` champion in a real MLflow store (the
functions the Dagster evaluation assets call), ``shamisa score`` with its default model
scores a folder of pristine photos, their heavily distorted versions and a broken file: one
row per image, pristine higher on average, a named error row and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _eval_helpers import _photo, fresh_mlflow_dir, make_kadid_like
from shamisa_core.cli import main

SMALL = ["group.patch_size=32", "group.n_refs=2", "group.n_comps=2", "group.n_levels=2",
         "model.arch=resnet18", "model.init=random"]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A 2-step trained encoder (40 crops a step: its effective rank of h passes the health
    check that gates promotion), evaluated on a tiny proxy and registered as the champion."""
    from shamisa_core.evaluation.mlflow_eval import log_evaluation
    from shamisa_core.evaluation.stages import evaluate_encoder

    root = tmp_path_factory.mktemp("done-when")
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(_photo(50 + i, 72, 80)).save(photos / f"p{i}.png")
    sets = [a for s in SMALL for a in ("--set", s)]
    assert main(["corpus", "build", "--pristine", str(photos), "--out", str(root / "corpus"),
                 "--shards", "1", "--groups-per-shard", "2", "--workers", "1", *sets]) == 0
    assert main(["train", "--corpus", str(root / "corpus"), "--out", str(root / "run"),
                 "--steps", "2", *sets, "--set", "train.batch_size=2"]) == 0
    data = make_kadid_like(root / "proxy", proxy_columns=True, seed=5, levels=(1, 3))
    result = evaluate_encoder(root / "run" / "encoder.pt", {"proxy": data}, twins=False,
                              cache_dir=root / "cache")
    store = fresh_mlflow_dir(root / "mlflow")
    log = log_evaluation(result, mlflow_dir=store)
    assert log.decision.moved and log.model_version == "1"  # the first version is the champion
    return {"root": root, "store": store}


@pytest.mark.slow  # ~35 s of CPU (train + evaluate + register); `make test` skips it
def test_score_pristine_vs_heavily_distorted_with_a_broken_file(champion, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    pristine, distorted = [], []
    for i in range(4):  # photos the model never saw
        name = f"photo{i}.png"
        Image.fromarray(_photo(900 + i, 48, 64)).save(folder / name)
        pristine.append(name)
        for chain in ("gaublur:4", "whitenoise:4"):
            out = f"photo{i}_{chain.split(':')[0]}.png"
            assert main(["distort", str(folder / name), str(folder / out), "--chain", chain]) == 0
            distorted.append(out)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    out = tmp_path / "scores.json"
    rc = main(["score", str(folder), "--mlflow-dir", str(champion["store"]), "--json", str(out),
               "--quiet"])  # the default model: models:/shamisa-iqa@champion
    assert rc != 0
    rows = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert sorted(rows) == sorted(pristine + distorted + ["broken.png"])  # one row per image
    assert rows["broken.png"]["score"] is None and rows["broken.png"]["error"]
    assert all(rows[n]["error"] is None and np.isfinite(rows[n]["score"]) for n in pristine + distorted)
    mean_pristine = np.mean([rows[n]["score"] for n in pristine])
    mean_distorted = np.mean([rows[n]["score"] for n in distorted])
    assert mean_pristine > mean_distorted, (mean_pristine, mean_distorted)


def test_the_registered_version_names_profile_corpus_and_commit(champion, capsys):
    """What `shamisa compare` shows for the run: profile, init, steps, corpus hash and commit
    (they came out as "-" for `make run`'s versions before the encoder summary carried them)."""
    import json

    from shamisa_core.cli import main
    from shamisa_core.provenance import source_commit

    out = champion["root"] / "compare.json"
    assert main(["compare", "--mlflow-dir", str(champion["store"]), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())  # one registered version
    manifest = json.loads((champion["root"] / "corpus" / "manifest.json").read_text())
    assert row["champion"] and row["init"] and row["training_steps"] == "2"
    assert row["profile"] and row["corpus_hash"] == manifest["config_hash"]
    assert row["git_commit"] == source_commit()
