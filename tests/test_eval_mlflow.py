"""MLflow logging of evaluations: runs, tables, metrics, the shamisa-iqa pyfunc and the
champion rule (a real SQLite store in tmp_path)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from _eval_helpers import fresh_mlflow_dir, make_encoder, make_kadid_like
from shamisa_core.evaluation import benchmark as bm
from shamisa_core.evaluation.mlflow_eval import evaluation_metrics, log_evaluation, refresh_champion
from shamisa_core.serving.champion import decide_champion
from shamisa_core.serving.registry import result_scores
from shamisa_core.tracking import CHAMPION_ALIAS, IQA_MODEL_NAME

def test_champion_rule_pure():
    first = decide_champion({"proxy": (0.5, "v1")}, None, new_version="1", old_version=None)
    assert first.moved and "no champion yet" in first.reason
    champ = {"proxy": (0.5, "v1"), "kadid10k": (0.6, "k1")}
    better = decide_champion({"proxy": (0.7, "v1")}, champ, new_version="2", old_version="1")
    assert better.moved and better.datasets == ("proxy",) and better.old_mean == 0.5
    equal = decide_champion({"proxy": (0.5, "v1")}, champ, new_version="2", old_version="1")
    assert not equal.moved and "does not beat" in equal.reason
    # compared over the intersection only: kadid10k (0.6) does not count against a proxy-only run
    worse_mean = decide_champion({"proxy": (0.55, "v1"), "live": (0.1, "l1")}, champ,
                                 new_version="2", old_version="1")
    assert worse_mean.moved and worse_mean.datasets == ("proxy",)
    disjoint = decide_champion({"live": (0.9, "l1")}, champ, new_version="2", old_version="1")
    assert not disjoint.moved and "no dataset in common" in disjoint.reason
    other_version = decide_champion({"proxy": (0.9, "v2")}, champ, new_version="2",
                                    old_version="1")
    assert not other_version.moved and "other dataset versions: proxy" in other_version.reason

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    data = make_kadid_like(root / "proxy", proxy_columns=True, seed=4, levels=(1, 3))
    enc = make_encoder(root / "enc" / "encoder.pt", seed=2)
    result = bm.evaluate_encoder(enc, {"proxy": data}, cross=True, cache_dir=root / "cache")
    assert "cross" not in result  # one dataset: no pair of distinct datasets
    store = fresh_mlflow_dir(root / "mlflow")
    return {"root": root, "data": data, "enc": enc, "result": result, "store": store}

def _with_srcc(result, value, name="proxy"):
    out = copy.deepcopy(result)
    out[name]["srcc"] = value
    return out

def test_runs_tables_metrics_and_champion_moves_only_on_improvement(evaluated):
    result, store = evaluated["result"], evaluated["store"]
    first = log_evaluation(result, mlflow_dir=store)
    client = MlflowClient(first.tracking_uri, first.tracking_uri)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.metrics["srcc/proxy"] == pytest.approx(result["proxy"]["srcc"])
    for key in ("plcc/proxy", "random_twin_srcc/proxy", "random_twin_plcc/proxy", "mean_srcc",
                "random_twin_mean_srcc", "gain_vs_random_twin/proxy"):
        assert key in parent.data.metrics, key
    assert parent.data.metrics["gain_vs_random_twin/proxy"] == pytest.approx(
        result["proxy"]["srcc"] - result["twins"]["random_twin"]["proxy"]["srcc"])
    assert parent.data.tags["shamisa.init"] == "random" and parent.data.tags["shamisa.arch"] == "resnet18"
    artifacts = {a.path for a in client.list_artifacts(first.parent_run_id)}
    assert {"evaluation_table.json", "evaluation.json"} <= artifacts
    nested = client.search_runs([parent.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{first.parent_run_id}'")
    assert [r.data.tags["shamisa.dataset"] for r in nested] == ["proxy"]
    assert nested[0].data.metrics["srcc"] == pytest.approx(result["proxy"]["srcc"])
    assert first.decision.moved and first.model_version == "1"
    assert str(client.get_model_version_by_alias(IQA_MODEL_NAME, CHAMPION_ALIAS).version) == "1"

    base = result["proxy"]["srcc"]
    worse = log_evaluation(_with_srcc(result, base - 0.1), mlflow_dir=store)
    assert not worse.decision.moved and worse.model_version == "2"
    assert "stays v1" in worse.decision.reason
    assert str(client.get_model_version_by_alias(IQA_MODEL_NAME, CHAMPION_ALIAS).version) == "1"
    assert client.get_model_version(IQA_MODEL_NAME, "2").tags["champion_decision"] == worse.decision.reason

    other = copy.deepcopy(result)
    other["kadid10k"] = other.pop("proxy")
    other["twins"] = {"random_twin": {"kadid10k": other["twins"]["random_twin"]["proxy"]}}
    disjoint = log_evaluation(_with_srcc(other, 0.99, "kadid10k"), mlflow_dir=store,
                              regressor_path=result["proxy"]["regressor"])
    assert not disjoint.decision.moved and "no dataset in common" in disjoint.decision.reason

    better = log_evaluation(_with_srcc(result, min(base + 0.1, 1.0)), mlflow_dir=store)
    assert better.decision.moved and better.model_version == "4"
    assert str(client.get_model_version_by_alias(IQA_MODEL_NAME, CHAMPION_ALIAS).version) == "4"
    assert better.decision.old_version == "1"

def test_cross_and_twin_metrics_names():
    entry = {"srcc": 0.5, "plcc": 0.4, "dataset_version": "v"}
    result = {"a": dict(entry), "b": dict(entry, srcc=0.7),
              "cross": {"a": {"b": {"srcc": 0.3, "plcc": 0.2}}, "b": {"a": {"srcc": 0.1}}},
              "twins": {"init_twin": {"a": {"srcc": 0.4}, "b": {"srcc": 0.2}},
                        "random_twin": {"a": {"srcc": 0.1}, "b": {"srcc": 0.0},
                                        "cross": {"a": {"b": {"srcc": 0.05}}}}},
              "meta": {}}
    m = evaluation_metrics(result)
    assert m["cross_srcc/a_to_b"] == 0.3 and m["random_twin_cross_srcc/a_to_b"] == 0.05
    assert "cross_srcc/a_to_a" not in m
    assert m["gain_vs_init_twin/b"] == pytest.approx(0.5) and m["init_twin_srcc/a"] == 0.4
    assert m["gain_vs_random_twin/mean"] == pytest.approx(0.6 - 0.05)


def test_pyfunc_scores_higher_is_better(evaluated, tmp_path):
    import mlflow

    from shamisa_core.scoring import fit_regressor, load_model, score

    result, data = evaluated["result"], evaluated["data"]
    store = fresh_mlflow_dir(tmp_path / "store")
    prep = bm.prepare_dataset("proxy", data, evaluated["root"] / "cache")
    feats = np.load(result["proxy"]["features"]["path"])
    mos = prep.table["score"].to_numpy()
    # a regressor trained on DMOS (lower = better) must still score higher = better
    dmos = fit_regressor(feats, 6.0 - mos, 0.01, crop_size=32, lower_is_better=True,
                         score_range=(1.0, 5.0), datasets=("dmos-proxy",))
    reg_path = dmos.save(tmp_path / "dmos.npz")
    log = log_evaluation(result, mlflow_dir=store, regressor_path=reg_path)
    mlflow.set_tracking_uri(log.tracking_uri)
    mlflow.set_registry_uri(log.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{IQA_MODEL_NAME}@{CHAMPION_ALIAS}")
    paths = prep.table["image"].tolist()
    by_frame = np.asarray(model.predict(pd.DataFrame({"image": paths})))
    assert by_frame.shape == (len(paths),) and np.all(np.isfinite(by_frame))
    from scipy.stats import spearmanr

    assert spearmanr(by_frame, mos).statistic > 0.8  # higher = better, flipped from DMOS
    from PIL import Image

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths[:3]]
    np.testing.assert_allclose(np.asarray(model.predict(arrays)), by_frame[:3], rtol=1e-6)
    local = load_model(f"models:/{IQA_MODEL_NAME}@{CHAMPION_ALIAS}",
                       tracking_uri=log.tracking_uri, download_dir=tmp_path / "dl")
    assert local.regressor.lower_is_better and local.regressor.datasets == ("dmos-proxy",)
    np.testing.assert_allclose(score(local, paths), by_frame, rtol=1e-6)

def test_refresh_champion_and_schedule(evaluated, tmp_path):
    from dagster import DagsterInstance, RunRequest, build_schedule_context

    from pipelines.eval_resources import MlflowTracking
    from pipelines.schedules import benchmark_refresh

    store = fresh_mlflow_dir(tmp_path / "store")
    sched_res = {"mlflow_tracking": MlflowTracking(mlflow_dir=str(store))}
    with DagsterInstance.ephemeral() as instance:
        skip = benchmark_refresh(build_schedule_context(instance=instance, resources=sched_res))
        assert "no champion" in skip.skip_message
    empty = refresh_champion({"proxy": evaluated["data"]}, mlflow_dir=store,
                             cache_dir=evaluated["root"] / "cache")
    assert empty.version is None and "nothing to refresh" in empty.reason

    log_evaluation(evaluated["result"], mlflow_dir=store)
    with DagsterInstance.ephemeral() as instance:
        req = benchmark_refresh(build_schedule_context(instance=instance, resources=sched_res))
        assert isinstance(req, RunRequest) and req.tags["shamisa/champion_version"] == "1"
    record = refresh_champion({"proxy": evaluated["data"]}, mlflow_dir=store,
                              cache_dir=evaluated["root"] / "cache")
    assert record.version == "1" and record.log.kind == "refresh"
    assert record.result["proxy"]["srcc"] == pytest.approx(evaluated["result"]["proxy"]["srcc"])
    client = MlflowClient(record.log.tracking_uri, record.log.tracking_uri)
    tags = client.get_model_version(IQA_MODEL_NAME, "1").tags
    assert tags["last_refresh_run"] == record.log.parent_run_id
    assert float(tags["srcc/proxy"]) == pytest.approx(result_scores(record.result)["proxy"][0])
    assert client.get_run(record.log.parent_run_id).data.tags["shamisa.kind"] == "refresh"
    assert len(client.search_model_versions(f"name='{IQA_MODEL_NAME}'")) == 1  # nothing registered
