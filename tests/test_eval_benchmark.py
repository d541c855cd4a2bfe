"""evaluate_encoder: the whole protocol on tiny datasets (METHOD.md §7, DECISIONS 13-16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _eval_helpers import make_encoder, make_kadid_like
from shamisa_core.evaluation import benchmark as bm
from shamisa_core.evaluation.proxy import ProxySpec
from shamisa_core.scoring import Regressor, fit_regressor

STANDARD_KEYS = {"srcc", "plcc", "srcc_splits", "plcc_splits", "alpha", "n_images", "n_missing"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny datasets (a proxy-layout one and a KADID-layout one with 2 missing images),
    a random-init resnet18 encoder (patch 32) and one evaluation with cross + FR."""
    root = tmp_path_factory.mktemp("bench")
    a = make_kadid_like(root / "proxy", proxy_columns=True, seed=1, levels=(1, 3))
    b = make_kadid_like(root / "kadid", seed=2, drop=2, levels=(1, 3))
    enc = make_encoder(root / "enc" / "encoder.pt", seed=0)
    result = bm.evaluate_encoder(enc, {"proxy": a, "kadid10k": b}, cross=True, fr=True,
                                 cache_dir=root / "cache")
    return {"root": root, "a": a, "b": b, "enc": enc, "result": result}


def test_result_schema(tiny):
    r = tiny["result"]
    assert bm.dataset_names(r) == ["proxy", "kadid10k"]
    for name in ("proxy", "kadid10k"):
        assert STANDARD_KEYS <= set(r[name])
        assert STANDARD_KEYS <= set(r["twins"]["random_twin"][name])
        assert len(r[name]["srcc_splits"]) == 10 and r[name]["n_splits"] == 10
        assert np.isfinite(r[name]["srcc"]) and -1 <= r[name]["srcc"] <= 1
        assert np.isclose(np.logspace(-3, 3, 100), r[name]["alpha"]).any()
        assert Path(r[name]["regressor"]).is_file()
    assert r["kadid10k"]["n_missing"] == 2 and r["kadid10k"]["n_images"] == 22
    assert r["proxy"]["n_missing"] == 0 and r["proxy"]["n_images"] == 24
    # proxy distortion types come from the builder's `type` column, not KADID's numbering
    assert set(r["proxy"]["per_type"]) == {"gaublur", "whitenoise"}
    meta = r["meta"]
    assert meta["schema"] == bm.SCHEMA and meta["crop_size"] == 32  # the encoder's patch size
    # a random-init encoder: its init twin is its random twin, reported once
    assert list(r["twins"]) == ["random_twin"] and list(meta["twins"]) == ["random_twin"]
    twin = meta["twins"]["random_twin"]
    assert meta["encoder"]["fingerprint"] != twin["fingerprint"]
    assert twin["seed"] == 27 and twin["init"] == "random" and "= init twin" in twin["label"]
    json.dumps(r)  # JSON-ready (no NaN objects, no numpy types)


def test_cross_dataset_on_two_tiny_sets(tiny):
    r = tiny["result"]
    for owner in (r, r["twins"]["random_twin"]):
        section = owner["cross"]
        assert set(section) == {"proxy", "kadid10k"}
        for src, targets in section.items():
            assert set(targets) == {"proxy", "kadid10k"} - {src}  # no train-on-test diagonal
            for tgt, e in targets.items():
                assert {"srcc", "plcc", "srcc_splits", "plcc_splits", "alpha"} <= set(e)
                assert len(e["srcc_splits"]) == 10
                assert not e["same_dataset"]
                assert e["alpha"] == owner[src]["alpha"]  # the source's own standard alpha
                assert e["n_images"] == r[tgt]["n_images"]
    mat = bm.cross_matrix(r)
    assert mat.shape == (2, 2) and mat.loc["proxy", "kadid10k"] == r["cross"]["proxy"]["kadid10k"]["srcc"]
    # the diagonal is the standard protocol's value, marked in the printed table
    assert mat.loc["kadid10k", "kadid10k"] == r["kadid10k"]["srcc"]
    assert np.isnan(bm.cross_matrix(r, diagonal=False).loc["proxy", "proxy"])
    assert "standard protocol" in bm.format_table(r)
    assert set(r["fr"]) == {"proxy", "kadid10k"} and r["fr"]["proxy"]["mode"] == "fr"


def test_cache_splits_and_determinism(tiny):
    r = tiny["result"]
    prep = r["meta"]["datasets"]["kadid10k"]
    splits = Path(prep["splits_path"])
    assert splits.is_file() and splits.parent.name == prep["version"]
    feat = Path(r["kadid10k"]["features"]["path"])
    assert feat.is_file() and feat.parent.parent == splits.parent  # features beside the splits
    assert feat.with_suffix(".json").is_file()
    again = bm.evaluate_encoder(tiny["enc"], {"kadid10k": tiny["b"]}, cross=False,
                                cache_dir=tiny["root"] / "cache")
    assert again["kadid10k"]["features"]["cache_hit"]
    assert again["twins"]["random_twin"]["kadid10k"]["features"]["cache_hit"]
    assert again["kadid10k"]["srcc_splits"] == r["kadid10k"]["srcc_splits"]
    assert (again["twins"]["random_twin"]["kadid10k"]["srcc"]
            == r["twins"]["random_twin"]["kadid10k"]["srcc"])
    other = bm.evaluate_encoder(tiny["enc"], {"kadid10k": tiny["b"]}, twins=False,
                                crop_size=24, cache_dir=tiny["root"] / "cache")
    assert "twins" not in other and not other["kadid10k"]["features"]["cache_hit"]
    assert other["kadid10k"]["features"]["shape"] == [22, 5, 1024]
    assert other["meta"]["crop_size"] == 24


def test_untrained_twin_is_the_training_start():
    from shamisa_core.models import ModelConfig, build_model

    trained = bm.EncoderHandle("trained", torch.nn.Identity(),
                               {"model_config": {"arch": "resnet18", "init": "imagenet",
                                                 "n_branches": 0}, "patch_size": 32}, "x", "x")
    state = torch.get_rng_state()
    twin = bm.untrained_twin(trained, 5)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    torch.manual_seed(5)
    model = build_model(ModelConfig(arch="resnet18", init="random", n_branches=0))
    ref = model.backbone.state_dict()
    for k, v in twin.module.backbone.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert twin.fingerprint == bm.untrained_twin(trained, 5).fingerprint
    assert twin.fingerprint != bm.untrained_twin(trained, 6).fingerprint
    assert bm.training_seed({"config": {"train": {"seed": 11}}}, 27) == 11
    assert bm.training_seed({}, 27) == 27


def test_init_twin_of_an_imagenet_encoder(tmp_path):
    """init=imagenet: the init twin is the ImageNet backbone itself, the random twin differs;
    both are built from the ModelConfig (any arch build_backbone knows)."""
    import torchvision

    from shamisa_core.models import ModelConfig, build_backbone

    weights = tmp_path / "resnet18-imagenet.pth"
    torch.manual_seed(123)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    cfg = {"arch": "resnet18", "init": "imagenet", "weights_path": str(weights), "n_branches": 0}
    trained = bm.EncoderHandle("trained", torch.nn.Identity(),
                               {"model_config": cfg, "patch_size": 32}, "x", "x")
    twins = bm.make_twins(trained, 5)
    assert [t.role for t in twins] == ["init_twin", "random_twin"]
    assert twins[0].label == "init twin (imagenet)" and twins[1].label == "random twin"
    ref = build_backbone(ModelConfig(**cfg)).state_dict()
    for k, v in twins[0].module.backbone.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert twins[0].fingerprint != twins[1].fingerprint
    assert twins[1].to_json()["init"] == "random" and twins[0].to_json()["init"] == "imagenet"
    # a random-init encoder has one twin only
    rand = bm.EncoderHandle("trained", torch.nn.Identity(),
                            {"model_config": {**cfg, "init": "random"}, "patch_size": 32}, "x", "x")
    assert [t.role for t in bm.make_twins(rand, 5)] == ["random_twin"]


def test_scan_dataset_roots(tmp_path):
    (tmp_path / "kadid10k.yaml").write_text("root: /data/kadid\n")
    (tmp_path / "live.json").write_text(json.dumps({"root": "rel/live"}))
    (tmp_path / "bogus.yaml").write_text("root: /x\n")
    (tmp_path / "csiq.yaml").write_text("path: /x\n")
    (tmp_path / "notes.txt").write_text("ignored")
    scan = bm.scan_dataset_roots(tmp_path)
    assert set(scan.roots) == {"kadid10k", "live"}
    assert scan.roots["kadid10k"].root == Path("/data/kadid")
    assert scan.roots["live"].root == tmp_path / "rel" / "live"
    assert {Path(f).name for f, _ in scan.problems} == {"bogus.yaml", "csiq.yaml"}
    before = scan.roots["kadid10k"].digest
    (tmp_path / "kadid10k.yaml").write_text("root: /data/kadid2\n")
    assert bm.scan_dataset_roots(tmp_path).roots["kadid10k"].digest != before
    assert bm.scan_dataset_roots(tmp_path / "absent").roots == {}


def test_proxy_loader_reads_the_26th_type(tmp_path):
    root = make_kadid_like(tmp_path / "p", n_refs=2, kinds=(26,), levels=(1, 2),
                           proxy_columns=True)
    ds = bm.load_proxy(root)
    assert ds.info.name == "proxy" and ds.n_images == 4
    assert set(ds.table["distortion_type"]) == {"t26"} and set(ds.table["level"]) == {1, 2}
    assert ds.table["reference"].nunique() == 2


def test_proxy_spec_ids_and_dirs(tmp_path):
    a = bm.proxy_spec_id(bm.DEFAULT_PROXY_SPEC)
    b = bm.proxy_spec_id(ProxySpec(n_refs=6, types=("jpeg",), levels=(0.0, 4.0)))
    assert a != b and a.startswith("r8-t26-l5-") and b.startswith("r6-t1-l2-")
    assert bm.proxy_dir(tmp_path, bm.DEFAULT_PROXY_SPEC) == tmp_path / a
    with pytest.raises(FileNotFoundError, match="not built"):
        bm.load_named_dataset("proxy", None, proxy_base=tmp_path, build=False)
    with pytest.raises(ValueError, match="needs a root"):
        bm.load_named_dataset("kadid10k", None, proxy_base=tmp_path)


def test_fit_regressor_matches_sklearn_and_flips_dmos(tmp_path):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(30, 5, 12))
    y = feats.mean(axis=(1, 2)) * 3 + rng.normal(0, 0.1, 30) + 3
    reg = fit_regressor(feats, y, 0.5, crop_size=32, score_range=(1.0, 5.0), datasets=("x",))
    sk = Ridge(alpha=0.5).fit(feats.reshape(150, 12), np.repeat(y, 5))
    np.testing.assert_allclose(reg.coef, sk.coef_, atol=1e-8)
    np.testing.assert_allclose(reg.intercept, sk.intercept_, atol=1e-8)
    np.testing.assert_allclose(reg.predict(feats), sk.predict(feats.reshape(150, 12)).reshape(30, 5).mean(1))
    dmos = fit_regressor(feats, 6.0 - y, 0.5, crop_size=32, lower_is_better=True,
                         score_range=(1.0, 5.0))
    np.testing.assert_allclose(dmos.predict(feats), 6.0 - dmos.predict_raw(feats))
    assert np.corrcoef(dmos.predict(feats), y)[0, 1] > 0.9  # higher = better (DECISIONS 16)
    loaded = Regressor.load(dmos.save(tmp_path / "r.npz"))
    assert loaded.lower_is_better and loaded.orientation == "flipped" and loaded.crop_size == 32
    np.testing.assert_array_equal(loaded.coef, dmos.coef)
    assert loaded.digest() == dmos.digest()


def test_tables(tiny):
    r = tiny["result"]
    text = bm.format_table(r)
    assert "random twin" in text and "proxy" in text and "kadid10k" in text and "cross" in text
    frame = bm.summary_frame(r)
    assert list(frame["dataset"]) == ["proxy", "kadid10k"]
    gain = frame["srcc"] - frame["random_twin_srcc"]
    np.testing.assert_allclose(frame["gain_vs_random_twin"], gain)
    md = bm.markdown_table(frame)
    assert md.startswith("| dataset | srcc |") and md.count("\n") == 3
    assert len(bm.cross_frame(r)) == 2  # ordered pairs of distinct datasets
    assert bm.primary_dataset(["proxy", "kadid10k"]) == "kadid10k"
    assert bm.primary_dataset(["proxy"]) == "proxy"


def test_load_model_from_folder_and_score(tiny, tmp_path):
    import shutil

    from PIL import Image

    from shamisa_core.scoring import load_model, score

    r = tiny["result"]
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(tiny["enc"], folder / "encoder.pt")
    shutil.copyfile(r["proxy"]["regressor"], folder / "regressor.npz")
    model = load_model(folder)
    assert model.crop_size == 32 and model.regressor.datasets == ("proxy",)
    paths = sorted((tiny["a"] / "images").glob("I01_*.png"))[:2]
    arr = np.asarray(Image.open(paths[0]).convert("RGB"))
    s = score(model, [str(paths[0]), arr, str(tmp_path / "missing.png"), paths[1]])
    assert s.shape == (4,) and np.isnan(s[2]) and np.isfinite(s[[0, 1, 3]]).all()
    assert s[0] == pytest.approx(s[1])  # path and array of the same image
    assert np.isnan(score(model, [str(tmp_path / "missing.png")])).all()


def test_pictures(tiny, tmp_path):
    from shamisa_core.evaluation.pictures import make_pictures, markdown_images, tables_from_meta
    from shamisa_core.training.report import diagnostics_png

    r = tiny["result"]
    assert len(r["kadid10k"]["test_points"]["prediction"]) == r["kadid10k"]["splits"][0]["n_test"]
    tables = tables_from_meta(r)
    assert set(tables) == {"proxy", "kadid10k"}
    pics = make_pictures(r, tmp_path / "pics", tables)
    assert set(pics) == {"per_type_srcc", "scatter_proxy", "scatter_kadid10k", "tsne_proxy",
                         "tsne_kadid10k"}
    for path in pics.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert markdown_images(pics).count("data:image/png;base64,") == 5
    rows = [{"step": s, "loss": 1.0 / (s + 1), "loss/L_var": 0.5, "loss/L_inv": 0.1 * s,
             "h/erank": 3.0 + s, "z/std_mean": 0.5, "z/std_min": 0.1} for s in range(5)]
    png = diagnostics_png(rows, tmp_path / "diag.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    assert diagnostics_png([], tmp_path / "none.png") is None
