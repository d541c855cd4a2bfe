"""The evaluation stages end to end on tiny real benchmarks and a real encoder (issue 10,
mutation kill rate): every key of the result and its ``meta``, the progress lines, the staged
run's files and messages, the pictures' content. Expected values are recomputed here from the
inputs (the prepared tables, ``load_trained``, scikit-learn), not copied from the output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from _eval_helpers import make_encoder, make_kadid_like

ALPHAS = (0.1, 1.0, 10.0)
CROP = 16
SEED = 9
KNOWN = "live, csiq, tid2013, kadid10k, koniq10k, clive, spaq, flive, proxy"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One BLAS/OpenMP/torch thread: on a shared 2-core machine t-SNE's and torch's thread pools
    oversubscribe the cores (a 12-point t-SNE took 50 s); results do not depend on it."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, _one_thread):
    from shamisa_core.evaluation.stages import evaluate_encoder

    root = tmp_path_factory.mktemp("evaluated")
    kadid = make_kadid_like(root / "kadid", n_refs=6, kinds=(1, 2), levels=(1, 3), size=(24, 24), seed=2,
                            drop=1)  # one listed image missing
    proxy = make_kadid_like(root / "proxy", n_refs=6, kinds=(1, 2), levels=(2,), size=(24, 24), seed=6,
                            proxy_columns=True)
    (proxy / "proxy_spec.json").write_text(json.dumps({"n_refs": 4, "types": ["gaublur", "whitenoise"]}))
    enc = make_encoder(root / "enc" / "encoder.pt", seed=3, patch_size=24)
    messages: list[str] = []
    result = evaluate_encoder(enc, {"kadid10k": kadid, "proxy": proxy}, cross=True, fr=True,
                              cache_dir=root / "cache", crop_size=CROP, seed=SEED, alphas=ALPHAS,
                              log=messages.append)
    return {"root": root, "kadid": kadid, "proxy": proxy, "enc": enc, "result": result,
            "messages": messages, "cache": root / "cache"}


def _prepared(ev, name, seed=SEED):
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.splits import SplitConfig

    return prepare_dataset(name, str(ev[name if name != "kadid10k" else "kadid"]), ev["cache"],
                           split_config=SplitConfig(seed=seed))


# ----------------------------------------------------------------------------------------------
# stages.evaluate_encoder: the SCHEMA result


def test_result_layout_and_meta(evaluated):
    from shamisa_core.evaluation.encoders import load_trained, make_twins

    result = evaluated["result"]
    assert list(result) == ["kadid10k", "proxy", "cross", "fr", "twins", "meta"]
    trained = load_trained(evaluated["enc"])
    (twin,) = make_twins(trained, SEED)  # random-init encoder: only the random twin, seeded by `seed`
    meta = result["meta"]
    assert set(meta) == {"schema", "encoder", "twins", "crop_size", "seed", "datasets", "primary_dataset",
                         "proxy_spec", "alphas", "fr_features", "seconds", "total_seconds"}
    assert meta["schema"] == "shamisa-evaluation/2"
    assert meta["encoder"] == trained.to_json()
    assert meta["twins"] == {"random_twin": twin.to_json()} and meta["twins"]["random_twin"]["seed"] == SEED
    assert (meta["crop_size"], meta["seed"], meta["primary_dataset"]) == (CROP, SEED, "kadid10k")
    assert meta["datasets"] == {n: _prepared(evaluated, n).to_json() for n in ("kadid10k", "proxy")}
    assert meta["proxy_spec"] == {"n_refs": 4, "types": ["gaublur", "whitenoise"]}
    assert meta["alphas"] == {"count": 3, "min": 0.1, "max": 10.0}
    assert meta["fr_features"] == "abs(h_ref - h_dist), both scales"
    assert set(meta["seconds"]) == {
        "prepare/kadid10k", "prepare/proxy", "features/trained/kadid10k", "features/trained/proxy",
        "features/random_twin/kadid10k", "features/random_twin/proxy", "standard/trained",
        "standard/random_twin", "cross/trained", "cross/random_twin"}
    assert all(v >= 0 and round(v, 3) == v for v in meta["seconds"].values())
    assert meta["total_seconds"] >= max(meta["seconds"].values())
    assert round(meta["total_seconds"], 3) == meta["total_seconds"]


def test_standard_entries_follow_the_seed_the_alphas_and_the_crop(evaluated):
    from shamisa_core.evaluation.cache import encode_dataset
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.regressor import Regressor
    from shamisa_core.evaluation.stages import regressor_path, run_standard

    result = evaluated["result"]
    trained = load_trained(evaluated["enc"])
    for name in ("kadid10k", "proxy"):
        prep = _prepared(evaluated, name)
        fs = encode_dataset(prep, trained, CROP, log=lambda m: None)
        assert fs.cache_hit and fs.crop_size == CROP
        entry = result[name]
        std = run_standard(prep, fs, ALPHAS)
        expected = {**std.to_json(), "dataset_version": prep.version, "features": entry["features"]}
        got = {k: v for k, v in entry.items() if k not in ("test_points", "regressor", "regressor_sha256")}
        assert got == expected
        assert entry["features"]["key"] == fs.key and entry["features"]["crop_size"] == CROP
        assert entry["splits_version"] == prep.splits.version
        assert entry["splits_version"] != _prepared(evaluated, name, seed=27).splits.version
        assert entry["alpha"] in ALPHAS
        assert entry["regressor"] == str(regressor_path(prep, fs))
        assert Path(entry["regressor"]).is_file()
        reg = Regressor.load(entry["regressor"])
        assert entry["regressor_sha256"] == reg.digest() and reg.alpha == entry["alpha"]
        preds = std.predictions
        first = preds[preds["split"] == 0]
        assert entry["test_points"] == {"prediction": first["prediction"].astype(float).tolist(),
                                        "label": first["label"].astype(float).tolist()}
        assert len(entry["test_points"]["label"]) == entry["splits"][0]["n_test"]
        twin = result["twins"]["random_twin"][name]
        assert not {"regressor", "regressor_sha256", "test_points"} & set(twin)
        assert twin["features"]["encoder_fingerprint"] == result["meta"]["twins"]["random_twin"]["fingerprint"]


def test_cross_and_fr_sections(evaluated):
    result = evaluated["result"]
    for sec in (result, result["twins"]["random_twin"]):
        assert list(sec["cross"]) == ["kadid10k", "proxy"]
        assert list(sec["cross"]["kadid10k"]) == ["proxy"] and list(sec["cross"]["proxy"]) == ["kadid10k"]
        for src, tgt in (("kadid10k", "proxy"), ("proxy", "kadid10k")):
            e = sec["cross"][src][tgt]
            assert (e["source"], e["target"], e["alpha_source"]) == (src, tgt, "source_standard_search")
            assert e["alpha"] == sec[src]["alpha"]
            assert (e["n_images"], e["n_missing"]) == (sec[tgt]["n_images"], sec[tgt]["n_missing"])
        assert list(sec["fr"]) == ["kadid10k", "proxy"]  # both synthetic: reference images
        for name in ("kadid10k", "proxy"):
            fr = sec["fr"][name]
            assert fr["mode"] == "fr" and fr["dataset"] == name
            assert fr["dataset_version"] == sec[name]["dataset_version"]
            assert fr["features"]["key"] != sec[name]["features"]["key"]  # the reference images' set
            assert fr["features"]["crop_size"] == CROP


def test_progress_lines(evaluated):
    from shamisa_core.evaluation.report import fmt

    result, messages = evaluated["result"], evaluated["messages"]
    for name, n, missing in (("kadid10k", 23, 1), ("proxy", 12, 0)):
        assert f"{name}: {n} images, {missing} missing, version {result[name]['dataset_version']}" in messages
        assert (result[name]["n_images"], result[name]["n_missing"]) == (n, missing)
    for role, label, sec in (("trained", "trained", result),
                             ("random_twin", result["meta"]["twins"]["random_twin"]["label"],
                              result["twins"]["random_twin"])):
        for name in ("kadid10k", "proxy"):
            e = sec[name]
            head = f"[{label}] {name}: SRCC {fmt(e['srcc'])} PLCC {fmt(e['plcc'])} alpha {e['alpha']:.4g} ("
            (line,) = [m for m in messages if m.startswith(head)]
            assert re.fullmatch(re.escape(head) + r"\d+\.\ds features\)", line), line
            fr = sec["fr"][name]
            assert f"[{role}] fr {name}: SRCC {fmt(fr['srcc'])} PLCC {fmt(fr['plcc'])}" in messages
        for src, tgt in (("kadid10k", "proxy"), ("proxy", "kadid10k")):
            c = sec["cross"][src][tgt]
            assert f"[{role}] cross {src} -> {tgt}: SRCC {fmt(c['srcc'])} PLCC {fmt(c['plcc'])}" in messages


def test_cached_rerun_without_twins_on_one_dataset(evaluated):
    from shamisa_core.evaluation.report import fmt
    from shamisa_core.evaluation.stages import evaluate_encoder

    messages: list[str] = []
    again = evaluate_encoder(evaluated["enc"], {"kadid10k": evaluated["kadid"]}, cross=True, twins=False,
                             cache_dir=evaluated["cache"], crop_size=CROP, seed=SEED, alphas=ALPHAS,
                             log=messages.append)
    assert list(again) == ["kadid10k", "meta"]  # one dataset: no cross; no twins key at all
    e = again["kadid10k"]
    assert e["srcc"] == evaluated["result"]["kadid10k"]["srcc"] and e["features"]["cache_hit"] is True
    assert (f"[trained] kadid10k: SRCC {fmt(e['srcc'])} PLCC {fmt(e['plcc'])} alpha {e['alpha']:.4g} "
            "(cached features)") in messages
    meta = again["meta"]
    assert meta["twins"] == {} and meta["fr_features"] is None and meta["proxy_spec"] is None
    assert set(meta["seconds"]) == {"prepare/kadid10k", "features/trained/kadid10k", "standard/trained"}


def test_evaluate_encoder_refuses_unknown_or_no_datasets_before_loading(tmp_path):
    from shamisa_core.evaluation.stages import evaluate_encoder

    absent = tmp_path / "no-encoder.pt"
    with pytest.raises(KeyError) as err:
        evaluate_encoder(absent, {"kadid10k": None, "foo": None, "bar": "/x"}, cache_dir=tmp_path)
    assert err.value.args[0] == f"unknown dataset(s) ['foo', 'bar']; known: {KNOWN}"
    with pytest.raises(ValueError, match="^no dataset to evaluate on$"):
        evaluate_encoder(absent, {}, cache_dir=tmp_path)
    assert not (tmp_path / "downloads").exists()


# ----------------------------------------------------------------------------------------------
# stages: the small pieces


def test_primary_dataset_follows_the_preference_order():
    from shamisa_core.evaluation.stages import REGRESSOR_PREFERENCE, primary_dataset

    assert REGRESSOR_PREFERENCE == ("koniq10k", "spaq", "flive", "clive", "kadid10k", "tid2013", "csiq",
                                    "live", "proxy")
    for i, name in enumerate(REGRESSOR_PREFERENCE):
        assert primary_dataset(list(reversed(REGRESSOR_PREFERENCE[i:]))) == name
    assert primary_dataset(["zeta", "alpha", "mid"]) == "alpha"
    assert primary_dataset(["zeta", "proxy"]) == "proxy"
    with pytest.raises(ValueError, match="^no dataset evaluated$"):
        primary_dataset([])


def test_assemble_result_copies_its_parts():
    from shamisa_core.evaluation.stages import assemble_result

    trained = {"live": {"srcc": 1.0}}
    twins = {"random_twin": {"live": {"srcc": 0.5}}}
    meta = {"seed": 1}
    out = assemble_result(trained, twins, meta)
    assert out == {"live": {"srcc": 1.0}, "twins": {"random_twin": {"live": {"srcc": 0.5}}}, "meta": {"seed": 1}}
    out["meta"]["seed"] = 2
    out["twins"]["random_twin"]["extra"] = 1
    out["new"] = 1
    assert meta == {"seed": 1} and twins == {"random_twin": {"live": {"srcc": 0.5}}} and "new" not in trained
    assert assemble_result(trained, {}, meta) == {"live": {"srcc": 1.0}, "meta": {"seed": 1}}


def test_standard_section_regressors_option(evaluated):
    from shamisa_core.evaluation.cache import encode_dataset
    from shamisa_core.evaluation.encoders import load_trained, make_twins
    from shamisa_core.evaluation.stages import fr_section, standard_section

    trained = load_trained(evaluated["enc"])
    (twin,) = make_twins(trained, SEED)
    prep = _prepared(evaluated, "kadid10k")
    feats = {"kadid10k": encode_dataset(prep, twin, CROP, log=lambda m: None)}
    with_reg = standard_section({"kadid10k": prep}, feats, twin, ALPHAS, regressors=True)["kadid10k"]
    assert Path(with_reg["regressor"]).is_file() and "test_points" in with_reg
    feats_t = {"kadid10k": encode_dataset(prep, trained, CROP, log=lambda m: None)}
    without = standard_section({"kadid10k": prep}, feats_t, trained, ALPHAS, regressors=False)["kadid10k"]
    assert not {"regressor", "regressor_sha256", "test_points"} & set(without)
    assert without["srcc"] == evaluated["result"]["kadid10k"]["srcc"]
    # an authentic dataset (no reference images) is skipped by the FR protocol, and the log says so
    from dataclasses import replace

    authentic = replace(prep, dataset=replace(prep.dataset, info=replace(prep.info, kind="authentic")))
    if authentic.info.is_synthetic:
        pytest.fail("DatasetInfo.kind='authentic' should not be synthetic")
    lines: list[str] = []
    assert fr_section({"kadid10k": authentic}, feats_t, trained, CROP, ALPHAS, log=lines.append) == {}
    assert lines == ["[trained] fr kadid10k: skipped (no reference images)"]
    # a damaged reference-feature cache is rebuilt, and fr_section passes its log along
    from shamisa_core.evaluation.report import fmt

    ref_path = Path(evaluated["result"]["fr"]["kadid10k"]["features"]["path"])
    ref_path.write_bytes(b"not an npy file")
    lines.clear()
    with pytest.warns(UserWarning, match="rebuilding it"):
        out = fr_section({"kadid10k": prep}, feats_t, trained, CROP, ALPHAS, log=lines.append)
    assert lines[0].startswith(f"unreadable cache file {ref_path} (") and lines[0].endswith("; rebuilding it")
    e = out["kadid10k"]
    assert lines[1:] == [f"[trained] fr kadid10k: SRCC {fmt(e['srcc'])} PLCC {fmt(e['plcc'])}"]
    assert e["srcc"] == evaluated["result"]["fr"]["kadid10k"]["srcc"]


# ----------------------------------------------------------------------------------------------
# staged_run


def _run(evaluated, tmp_path, twins=True):
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.evaluation.encoders import load_trained, make_twins

    trained = load_trained(evaluated["enc"])
    plan = sr.DatasetPlan(cache_dir=evaluated["cache"], proxy_base=tmp_path / "pb", seed=SEED)
    tw = tuple(make_twins(trained, SEED)) if twins else ()
    return sr.EvaluationRun(plan, trained, tw, crop=CROP, alphas=ALPHAS)


def test_plan_and_run_defaults(evaluated, tmp_path):
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.evaluation.cache import DEFAULT_FEATURE_BATCH
    from shamisa_core.evaluation.proxy import ProxySpec
    from shamisa_core.evaluation.ridge import DEFAULT_ALPHAS

    plan = sr.DatasetPlan(cache_dir=tmp_path / "c", proxy_base=tmp_path / "p")
    assert (plan.proxy_spec, plan.seed) == (None, 27)
    spec = ProxySpec(n_refs=1)
    withspec = sr.DatasetPlan(tmp_path, tmp_path, proxy_spec=spec)
    assert withspec.spec_for(None) is spec and withspec.spec_for("/my/proxy") is None
    assert withspec.spec_for("") is None
    run = sr.EvaluationRun(plan, _run(evaluated, tmp_path).trained, (), crop=20)
    assert (run.batch_size, run.device, tuple(run.alphas)) == (DEFAULT_FEATURE_BATCH, "cpu", tuple(DEFAULT_ALPHAS))
    assert run.run_dir == tmp_path / "c" / "runs" / f"{run.trained.fingerprint}-p20"
    assert run.file("x.json") == run.run_dir / "x.json"
    full = _run(evaluated, tmp_path)
    assert [e.role for e in full.encoders] == ["trained", "random_twin"]
    assert (sr.STANDARD_FILE, sr.CROSS_FILE, sr.FR_FILE, sr.EVALUATION_FILE, sr.TABLE_TEXT_FILE,
            sr.TABLE_MD_FILE) == ("standard.json", "cross.json", "fr.json", "evaluation.json",
                                  "evaluation_table.txt", "evaluation_table.md")
    assert sr.read_stage(run, "standard.json") is None
    with pytest.raises(sr.StageError) as err:
        sr.read_stage(run, "standard.json", needed_by="quality_regressors")
    assert str(err.value) == f"no {run.file('standard.json')}: materialize quality_regressors first"
    with pytest.raises(sr.StageError) as err:
        sr.report_stage(run)
    assert str(err.value) == f"no {run.file('standard.json')}: materialize quality_regressors first"
    with pytest.raises(sr.StageError, match="materialize quality_regressors first$"):
        sr.cross_stage(run, {})


def test_available_says_why_each_dataset_is_skipped(evaluated, tmp_path):
    from shamisa_core.evaluation import staged_run as sr

    run = _run(evaluated, tmp_path)
    other_crop = sr.EvaluationRun(run.plan, run.trained, run.twins, crop=CROP + 4, alphas=ALPHAS)
    lines: list[str] = []
    roots = {"kadid10k": str(evaluated["kadid"]), "foo": "/x", "live": str(tmp_path / "nolive")}
    prepared, feats, skipped = sr.available(other_crop, roots, ["kadid10k", "foo", "csiq", "live"],
                                            log=lines.append)
    assert prepared == {} and feats == {"trained": {}, "random_twin": {}}
    assert list(skipped) == ["kadid10k", "foo", "csiq", "live"]
    assert skipped["kadid10k"] == (f"features for encoder {run.trained.fingerprint} (crop {CROP + 4}) not "
                                   "materialized (or images changed): run benchmark_features[kadid10k]")
    assert skipped["foo"] == f"unknown dataset 'foo'; known: {KNOWN}"  # the KeyError's text, unquoted
    assert skipped["csiq"] == "dataset 'csiq' has no configured root"
    assert str(tmp_path / "nolive") in skipped["live"]
    assert lines == ["skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    with pytest.raises(sr.StageError) as err:
        sr.standard_stage(other_crop, roots, ["kadid10k", "csiq"])
    assert str(err.value) == ("no benchmark has features for this encoder: "
                              f"kadid10k: {skipped['kadid10k']}; csiq: {skipped['csiq']}")
    quiet: list[str] = []
    prepared, feats, skipped = sr.available(run, roots, ["kadid10k"], log=quiet.append)
    assert list(prepared) == ["kadid10k"] and skipped == {} and quiet == []
    assert {r: list(f) for r, f in feats.items()} == {"trained": ["kadid10k"], "random_twin": ["kadid10k"]}
    assert feats["trained"]["kadid10k"].key == evaluated["result"]["kadid10k"]["features"]["key"]


def test_stages_write_the_same_result_as_evaluate_encoder(evaluated, tmp_path):
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.evaluation.report import format_table, markdown_table, summary_frame

    run = _run(evaluated, tmp_path)
    roots = {"kadid10k": str(evaluated["kadid"]), "proxy": str(evaluated["proxy"])}
    std = sr.standard_stage(run, roots, ["kadid10k", "proxy", "live"])
    ref = evaluated["result"]
    assert std["skipped"] == {"live": "dataset 'live' has no configured root"}
    assert json.loads(run.file("standard.json").read_text()) == std
    for role, sec in (("trained", ref), ("random_twin", ref["twins"]["random_twin"])):
        for name in ("kadid10k", "proxy"):
            assert std["sections"][role][name]["srcc"] == sec[name]["srcc"]
    meta = std["meta"]
    assert (meta["crop_size"], meta["seed"], meta["alphas"], meta["fr_features"]) == (
        CROP, SEED, ref["meta"]["alphas"], None)
    cross = sr.cross_stage(run, roots)
    assert json.loads(run.file("cross.json").read_text()) == cross
    assert cross["datasets"] == ["kadid10k", "proxy"] and cross["skipped"] == {}
    assert cross["sections"] == {"trained": ref["cross"], "random_twin": ref["twins"]["random_twin"]["cross"]}
    fr = sr.fr_stage(run, roots)
    assert json.loads(run.file("fr.json").read_text()) == fr
    assert fr["datasets"] == ["kadid10k", "proxy"] and fr["skipped"] == {}
    for role, sec in (("trained", ref), ("random_twin", ref["twins"]["random_twin"])):
        assert {n: e["srcc"] for n, e in fr["sections"][role].items()} == {
            n: e["srcc"] for n, e in sec["fr"].items()}
    result, paths = sr.report_stage(run)
    assert list(result) == ["kadid10k", "proxy", "cross", "fr", "twins", "meta"]
    assert result["cross"] == ref["cross"] and result["twins"]["random_twin"]["cross"] == ref["twins"]["random_twin"]["cross"]
    assert result["meta"]["skipped"] == {"live": "dataset 'live' has no configured root"}
    cache = evaluated["cache"]
    assert paths == {"results": run.file("evaluation.json"), "table_text": cache / "evaluation_table.txt",
                     "table_md": cache / "evaluation_table.md"}
    assert json.loads(paths["results"].read_text()) == json.loads(json.dumps(result))
    assert paths["table_text"].read_text() == format_table(result) + "\n"
    assert paths["table_md"].read_text() == markdown_table(summary_frame(result)) + "\n"
    pictures = sr.pictures_stage(run, result)
    assert set(pictures) == {"per_type_srcc", "scatter_kadid10k", "scatter_proxy", "tsne_kadid10k", "tsne_proxy"}
    assert all(p.parent == run.file("pictures") and p.is_file() for p in pictures.values())
    # a cross file over other datasets is stale: left out of the assembled result
    stale = dict(cross, datasets=["kadid10k"])
    run.file("cross.json").write_text(json.dumps(stale))
    run.file("fr.json").unlink()
    result, _ = sr.report_stage(run)
    assert "cross" not in result and "fr" not in result and "cross" not in result["twins"]["random_twin"]
    # sections of an encoder the standard stage did not run are ignored
    run.file("cross.json").write_text(json.dumps(dict(cross, sections={**cross["sections"], "init_twin": {}})))
    result, _ = sr.report_stage(run)
    assert list(result["twins"]) == ["random_twin"] and result["cross"] == ref["cross"]


# ----------------------------------------------------------------------------------------------
# pictures


@pytest.fixture
def figures(monkeypatch):
    """Every matplotlib figure saved during the test (the real savefig still runs)."""
    from matplotlib.figure import Figure

    saved: list = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_per_type_bars_draw_each_encoder_per_type(tmp_path, figures):
    from matplotlib.colors import to_rgba

    from shamisa_core.evaluation.pictures import per_type_bars

    result = {
        "kadid10k": {"per_type": {"noise": {"srcc": 0.5}, "blur": {"srcc": 0.25}, "jpeg": {"srcc": -0.1}}},
        "live": {"srcc": 0.3},
        "csiq": {"per_type": {"a": {"srcc": 0.9}}},
        "twins": {"random_twin": {"kadid10k": {"per_type": {"blur": {"srcc": 0.1}}}}},
        "meta": {"twins": {"random_twin": {"label": "random twin (x)"}}},
    }
    path = per_type_bars(result, tmp_path / "bars.png")
    assert path == tmp_path / "bars.png" and _png_size(path) == (600, 640)  # 6 x (3.2 * 2) inches at 100 dpi
    (fig,) = figures
    axes = fig.axes
    assert len(axes) == 2
    for ax, name, types in zip(axes, ["kadid10k", "csiq"], [["blur", "jpeg", "noise"], ["a"]]):
        assert ax.get_title() == f"{name}: SRCC per distortion type"
        assert ax.get_ylabel() == "median SRCC"
        assert [t.get_text() for t in ax.get_xticklabels()] == types
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["trained", "random twin (x)"]
        width = 0.8 / 2
        np.testing.assert_allclose(ax.get_xticks(), np.arange(len(types)) + width / 2)
        trained, twin = ax.containers
        np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in trained], np.arange(len(types)))
        np.testing.assert_allclose([b.get_width() for b in twin], [width] * len(types))
        np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in twin], np.arange(len(types)) + width)
        (hline,) = ax.get_lines()  # the zero line: thin, black
        assert list(hline.get_ydata()) == [0, 0]
        assert (to_rgba(hline.get_color()), hline.get_linewidth()) == ((0, 0, 0, 1), 0.5)
        assert all((t.get_rotation(), t.get_ha(), t.get_fontsize()) == (60, "right", 7)
                   for t in ax.get_xticklabels())
        assert all(t.get_fontsize() == 7 for t in ax.get_legend().get_texts())
    heights = [[b.get_height() for b in c] for c in axes[0].containers]
    np.testing.assert_allclose(heights, [[0.25, -0.1, 0.5], [0.1, np.nan, np.nan]])
    np.testing.assert_allclose([[b.get_height() for b in c] for c in axes[1].containers], [[0.9], [np.nan]])
    assert per_type_bars({"live": {"srcc": 1.0}, "meta": {}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_per_type_bars_width_grows_with_the_number_of_types(tmp_path, figures):
    from shamisa_core.evaluation.pictures import per_type_bars

    types = {f"t{i:02d}": {"srcc": i / 20} for i in range(20)}
    path = per_type_bars({"kadid10k": {"per_type": types}}, tmp_path / "b.png")
    assert _png_size(path) == (1100, 320)  # 0.45 * 20 + 2 = 11 inches wide, one panel
    (ax,) = figures[0].axes
    (bars,) = ax.containers
    np.testing.assert_allclose([b.get_width() for b in bars], [0.8] * 20)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["trained"]


def test_scatter_plots_prediction_against_truth(tmp_path, figures):
    from shamisa_core.evaluation.pictures import scatter

    result = {"live": {"srcc": 0.51234, "test_points": {"prediction": [1.0, 4.0, 2.5], "label": [0.5, 3.0, 2.0]}},
              "csiq": {"test_points": {"prediction": [2.0, 1.0], "label": [1.0, 3.0]}},
              "tid2013": {"test_points": {"prediction": [], "label": []}}, "koniq10k": {}}
    path = scatter(result, "live", tmp_path / "s.png")
    assert _png_size(path) == (420, 400)
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "true score (higher = better)" and ax.get_ylabel() == "predicted score"
    assert ax.get_title() == "live: split 0 test images (median SRCC 0.512)"
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.5, 1.0], [3.0, 4.0], [2.0, 2.5]])
    (diag,) = ax.get_lines()
    assert list(diag.get_xdata()) == [0.5, 4.0] and list(diag.get_ydata()) == [0.5, 4.0]
    # the identity line is a thin grey dashed reference; the points are small and translucent
    assert (diag.get_color(), diag.get_linewidth(), diag.get_linestyle()) == ("grey", 0.8, "--")
    assert list(ax.collections[0].get_sizes()) == [8] and ax.collections[0].get_alpha() == 0.6
    scatter(result, "csiq", tmp_path / "c.png")
    ax = figures[1].axes[0]
    assert ax.get_title() == "csiq: split 0 test images"
    (diag,) = ax.get_lines()
    assert list(diag.get_xdata()) == [1.0, 3.0]
    assert scatter(result, "tid2013", tmp_path / "t.png") is None
    assert scatter(result, "koniq10k", tmp_path / "k.png") is None
    assert len(figures) == 2


def test_tsne_embeds_finite_rows_with_sklearn(tmp_path, figures):
    from sklearn.manifold import TSNE

    from shamisa_core.evaluation.pictures import tsne

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(13, 3, 4))
    feats[4, 1, 2] = np.nan  # one image with a non-finite crop: left out
    types = np.array(["b", "a", "c"] * 4 + ["a"])
    scores = np.linspace(0, 1, 13)
    path = tsne(feats, types, scores, "kadid10k", tmp_path / "t.png", seed=5)
    assert _png_size(path) == (1000, 440)
    keep = [i for i in range(13) if i != 4]
    x = feats.mean(axis=1)[keep]
    emb = TSNE(n_components=2, perplexity=float(max(2, min(30, (12 - 1) // 3))), init="pca",
               random_state=5).fit_transform(x)
    fig = figures[0]
    left, right = fig.axes[0], fig.axes[1]
    assert left.get_title() == "kadid10k: by distortion type" and right.get_title() == "kadid10k: by score"
    kinds = sorted(set(types[keep].tolist()))
    assert [t.get_text() for t in left.get_legend().get_texts()] == kinds
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].resampled(len(kinds))
    for i, (coll, kind) in enumerate(zip(left.collections, kinds, strict=True)):
        m = types[keep] == kind
        np.testing.assert_allclose(coll.get_facecolor()[0], tab20(i))
        assert list(coll.get_sizes()) == [6]
        np.testing.assert_allclose(coll.get_offsets(), emb[m], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(right.collections[0].get_offsets(), emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(right.collections[0].get_array(), scores[keep])
    assert right.collections[0].get_cmap().name == "viridis" and list(right.collections[0].get_sizes()) == [6]
    assert all(t.get_fontsize() == 5 for t in left.get_legend().get_texts())
    assert fig.axes[2].get_ylabel() == "score (higher = better)"  # the colour bar
    assert all(list(ax.get_xticks()) == [] and list(ax.get_yticks()) == [] for ax in (left, right))


def test_tsne_subsamples_at_most_max_points(tmp_path, figures, monkeypatch):
    from shamisa_core.evaluation import pictures

    monkeypatch.setattr(pictures, "MAX_TSNE_POINTS", 20)
    feats = np.random.default_rng(1).normal(size=(21, 6))  # 2-D features are used as they are
    pictures.tsne(feats, np.array(["a", "b", "c"] * 7), np.arange(21.0), "x", tmp_path / "t.png", seed=2)
    keep = np.sort(np.random.default_rng(2).choice(np.arange(21), 20, replace=False))
    np.testing.assert_allclose(figures[0].axes[1].collections[0].get_array(), keep.astype(float))


@pytest.mark.parametrize("n_types,legend", [(30, True), (31, False)])
def test_tsne_legend_only_up_to_thirty_types(tmp_path, figures, n_types, legend):
    from shamisa_core.evaluation.pictures import tsne

    types = np.array([f"t{i:02d}" for i in range(n_types)])
    tsne(np.random.default_rng(3).normal(size=(n_types, 4)), types, np.arange(float(n_types)), "y",
         tmp_path / "u.png")
    got = figures[0].axes[0].get_legend()
    assert (got is not None) is legend
    if legend:
        assert [t.get_text() for t in got.get_texts()] == types.tolist()


def test_make_pictures_draws_every_picture_of_a_result(evaluated, tmp_path, figures):
    from shamisa_core.evaluation.pictures import make_pictures, markdown_images, tables_from_meta

    result = json.loads(json.dumps(evaluated["result"]))
    result["kadid10k"]["per_type"] = {"gaublur": {"srcc": 0.5}}
    tables = tables_from_meta(result)
    assert set(tables) == {"kadid10k", "proxy"}
    out = make_pictures(result, tmp_path / "pics", tables)
    assert out == {"per_type_srcc": tmp_path / "pics" / "per_type_srcc.png",
                   "scatter_kadid10k": tmp_path / "pics" / "scatter_kadid10k.png",
                   "scatter_proxy": tmp_path / "pics" / "scatter_proxy.png",
                   "tsne_kadid10k": tmp_path / "pics" / "tsne_kadid10k.png",
                   "tsne_proxy": tmp_path / "pics" / "tsne_proxy.png"}
    assert all(p.is_file() for p in out.values())
    tsne_fig = figures[2]  # bars, scatter of kadid10k, its t-SNE, then the proxy's two
    assert tsne_fig.axes[0].get_title() == "kadid10k: by distortion type"
    table = tables["kadid10k"]
    colours = tsne_fig.axes[1].collections[0].get_array()
    np.testing.assert_allclose(sorted(colours), sorted(table["score"].to_numpy(float)))
    # lower-is-better labels are flipped to higher = better for the colours
    flipped = json.loads(json.dumps(result))
    flipped["kadid10k"]["lower_is_better"] = True
    figures.clear()
    make_pictures({"kadid10k": flipped["kadid10k"]}, tmp_path / "flip", tables)
    colours = figures[-1].axes[1].collections[0].get_array()
    np.testing.assert_allclose(sorted(colours), sorted(-table["score"].to_numpy(float)))
    # without tables, or a table of another length, or fewer than 8 rows: no t-SNE
    assert set(make_pictures(result, tmp_path / "p2")) == {"per_type_srcc", "scatter_kadid10k", "scatter_proxy"}
    assert "tsne_kadid10k" not in make_pictures(result, tmp_path / "p3", {"kadid10k": table.iloc[:7]})
    text = markdown_images({"scatter_proxy": out["scatter_proxy"]})
    assert text.startswith("**scatter_proxy**\n\n![scatter_proxy](data:image/png;base64,iVBORw0KGgo")
    assert markdown_images({}) == "none"


@pytest.mark.parametrize("n,drawn", [(7, False), (8, True)])
def test_make_pictures_needs_eight_images_for_a_tsne(tmp_path, n, drawn):
    import pandas as pd

    from shamisa_core.evaluation.pictures import make_pictures

    path = tmp_path / "f.npy"
    np.save(path, np.random.default_rng(n).normal(size=(n, 2, 3)))
    table = pd.DataFrame({"distortion_type": ["a", "b"] * 4, "score": np.arange(8.0)}).iloc[:n]
    result = {"live": {"features": {"path": str(path)}}}
    assert ("tsne_live" in make_pictures(result, tmp_path / "p", {"live": table})) is drawn
    assert make_pictures({"live": {"features": {"path": str(tmp_path / "absent.npy")}}}, tmp_path / "q",
                         {"live": table}) == {}


# ----------------------------------------------------------------------------------------------
# mlflow_eval.log_evaluation with registration, tables and pictures


def _artifact_json(uri: str, run_id: str, path: str, dst: Path) -> object:
    import mlflow

    return json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=uri)).read_text())


def test_log_evaluation_registers_with_tables_pictures_and_the_decision(evaluated, tmp_path):
    from mlflow.tracking import MlflowClient

    from _eval_helpers import fresh_mlflow_dir
    from shamisa_core.evaluation.mlflow_eval import evaluation_metrics, log_evaluation
    from shamisa_core.evaluation.report import cross_frame
    from shamisa_core.serving.registry import version_tags
    from shamisa_core.tracking import IQA_MODEL_NAME

    result = evaluated["result"]
    absent = tmp_path / "absent.pt"
    with pytest.raises(FileNotFoundError) as err:
        log_evaluation(result, mlflow_dir=fresh_mlflow_dir(tmp_path / "m0"), encoder_path=absent)
    assert str(err.value) == (f"cannot register: encoder {absent} or regressor "
                              f"{result['kadid10k']['regressor']} missing")
    with pytest.raises(FileNotFoundError, match=f"regressor {re.escape(str(absent))} missing$"):
        log_evaluation(result, mlflow_dir=fresh_mlflow_dir(tmp_path / "m1"), regressor_path=absent)

    pic = tmp_path / "scatter_kadid10k.png"
    pic.write_bytes(b"\x89PNG\r\n\x1a\n")
    log = log_evaluation(result, mlflow_dir=fresh_mlflow_dir(tmp_path / "m"), pictures={"scatter": pic})
    client = MlflowClient(log.tracking_uri, log.tracking_uri)
    assert (log.model_version, log.model_uri, log.kind) == ("1", f"models:/{IQA_MODEL_NAME}/1", "evaluation")
    assert log.decision.moved and log.metrics == evaluation_metrics(result)
    parent = client.get_run(log.parent_run_id)
    assert parent.info.run_name == f"evaluation-{result['meta']['encoder']['fingerprint'][:8]}"
    tags = parent.data.tags
    assert (tags["shamisa.model_version"], tags["shamisa.champion_moved"]) == ("1", "true")
    assert tags["shamisa.champion_reason"] == log.decision.reason
    assert tags["shamisa.datasets"] == "kadid10k,proxy"
    assert parent.data.metrics["champion_moved"] == 1.0
    assert parent.data.params["primary_dataset"] == "kadid10k" and parent.data.params["twin_seed"] == str(SEED)
    assert parent.data.params["proxy_spec"] == str(result["meta"]["proxy_spec"])
    assert parent.data.params["n_alphas"] == "3" and parent.data.params["twins"] == "random_twin"
    arts = {a.path for a in client.list_artifacts(log.parent_run_id)}
    assert arts == {"evaluation.json", "evaluation_table.json", "cross_dataset_table.json",
                    "champion_decision.json", "pictures"}
    assert [a.path for a in client.list_artifacts(log.parent_run_id, "pictures")] == ["pictures/scatter_kadid10k.png"]
    assert _artifact_json(log.tracking_uri, log.parent_run_id, "champion_decision.json",
                          tmp_path / "a") == log.decision.to_json()
    table = _artifact_json(log.tracking_uri, log.parent_run_id, "cross_dataset_table.json", tmp_path / "b")
    frame = cross_frame(result)
    assert table["columns"] == list(frame.columns)
    assert [row[:2] for row in table["data"]] == [["kadid10k", "proxy"], ["proxy", "kadid10k"]]
    version = client.get_model_version(IQA_MODEL_NAME, "1")
    for key, value in version_tags(result, "kadid10k").items():
        assert version.tags[key] == value, key
    assert log.to_json()["decision"] == log.decision.to_json()
    # the nested runs: one per dataset, the twin's values prefixed, the per-type table
    assert set(log.dataset_run_ids) == {"kadid10k", "proxy"}
    kid = client.get_run(log.dataset_run_ids["kadid10k"])
    twin = result["twins"]["random_twin"]["kadid10k"]
    assert kid.data.metrics["random_twin_srcc"] == pytest.approx(twin["srcc"])
    assert kid.data.metrics["random_twin_alpha"] == pytest.approx(twin["alpha"])
    assert kid.data.params["dataset_version"] == result["kadid10k"]["dataset_version"]
    per_type = _artifact_json(log.tracking_uri, kid.info.run_id, "per_type.json", tmp_path / "c")
    assert per_type["columns"][0] == "distortion_type"
    assert sorted(r[0] for r in per_type["data"]) == sorted(result["kadid10k"]["per_type"])
    logged = _artifact_json(log.tracking_uri, kid.info.run_id, "result.json", tmp_path / "d")
    assert logged == json.loads(json.dumps(result["kadid10k"]))


def test_refresh_without_a_champion_says_so(tmp_path):
    from _eval_helpers import fresh_mlflow_dir
    from shamisa_core.evaluation.mlflow_eval import refresh_champion

    rec = refresh_champion({"proxy": None}, mlflow_dir=fresh_mlflow_dir(tmp_path / "m"), cache_dir=tmp_path)
    assert (rec.version, rec.log, rec.result) == (None, None, None)
    assert rec.reason == "no champion registered yet; nothing to refresh"


def test_standard_section_names_the_images_that_failed(tmp_path):
    from shamisa_core.evaluation.cache import encode_dataset
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.report import fmt, format_table
    from shamisa_core.evaluation.stages import standard_section

    data = make_kadid_like(tmp_path / "kadid", n_refs=6, kinds=(1,), levels=(1, 2, 3), size=(24, 24), seed=8)
    bad = data / "images" / "I03_01_02.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # listed and present, but unreadable
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=4, patch_size=16))
    fs = encode_dataset(prep, enc, CROP, log=lambda m: None)
    assert fs.n_failed == 1
    lines: list[str] = []
    sec = standard_section({"kadid10k": prep}, {"kadid10k": fs}, enc, ALPHAS, regressors=False,
                           log=lines.append)
    e = sec["kadid10k"]
    assert lines == [f"[trained] kadid10k: SRCC {fmt(e['srcc'])} PLCC {fmt(e['plcc'])} alpha {e['alpha']:.4g} "
                     f"({fs.seconds:.1f}s features, 1 failed)"]
    assert e["features"]["n_failed"] == 1 and e["features"]["failed"][0][0].endswith("I03_01_02.png")
    table = format_table({"kadid10k": e})
    assert "failed images (1; left out of every metric):" in table.split("\n")


def test_proxy_spec_and_base_choose_the_proxy_folder(evaluated, tmp_path):
    """``proxy_spec`` and ``proxy_base`` reach the dataset preparation: the proxy is read from
    ``proxy_dir(base, spec)``. Decoy proxies (the kadid-like folder, 23 images) sit where a
    dropped spec or base would look, so nothing is built and a wrong folder shows at once."""
    import shutil

    from shamisa_core.evaluation.prepared import DEFAULT_PROXY_SPEC, default_proxy_base, proxy_dir
    from shamisa_core.evaluation.proxy import ProxySpec
    from shamisa_core.evaluation.stages import evaluate_encoder

    spec = ProxySpec(n_refs=6, types=("gaublur", "whitenoise"), levels=(2.0,), seed=1)
    base, cache = tmp_path / "base", tmp_path / "cache"
    shutil.copytree(evaluated["proxy"], proxy_dir(base, spec))
    for b in (base, default_proxy_base(cache)):
        for s in (spec, DEFAULT_PROXY_SPEC):
            if not proxy_dir(b, s).exists():
                shutil.copytree(evaluated["kadid"], proxy_dir(b, s))
    result = evaluate_encoder(evaluated["enc"], {"proxy": None}, twins=False, cache_dir=cache,
                              crop_size=CROP, seed=SEED, alphas=ALPHAS, proxy_spec=spec, proxy_base=base)
    assert result["meta"]["datasets"]["proxy"]["root"] == str(proxy_dir(base, spec))
    assert result["proxy"]["n_images"] == 12
    assert result["proxy"]["srcc"] == evaluated["result"]["proxy"]["srcc"]
