"""Executors chosen by SHAMISA_EXECUTOR, the GPU pool, and `make paper` without datasets."""

from __future__ import annotations

import subprocess

import pytest

from opshelp import PYTHON, REPO

def _load(monkeypatch, kind: str | None) -> dict:
    """Reload ``pipelines.definitions`` with ``SHAMISA_EXECUTOR=kind`` (unset: the default)."""
    import importlib

    import pipelines.definitions as definitions

    if kind is None:
        monkeypatch.delenv("SHAMISA_EXECUTOR", raising=False)
    else:
        monkeypatch.setenv("SHAMISA_EXECUTOR", kind)
    try:
        defs = importlib.reload(definitions).defs
        graph = defs.resolve_asset_graph()
        return {
            "asset_job": defs.resolve_implicit_global_asset_job_def().executor_def.name,
            "refresh_job": defs.resolve_job_def("benchmark_refresh_job").executor_def.name,
            "pools": {k.to_user_string(): sorted(graph.get(k).pools or [])
                      for k in graph.get_all_asset_keys()},
        }
    finally:
        monkeypatch.undo()
        importlib.reload(definitions)


@pytest.mark.parametrize("kind, name", [
    (None, "multi_or_in_process_executor"), ("multiprocess", "multi_or_in_process_executor"),
    ("in_process", "in_process"), ("k8s", "k8s_job_executor"), ("celery", "celery_executor")])
def test_definitions_load_under_each_executor(monkeypatch, kind, name):
    out = _load(monkeypatch, kind)
    assert out["asset_job"] == name and out["refresh_job"] == name
    assert out["pools"]["encoder"] == ["gpu"] and out["pools"]["benchmark_features"] == ["gpu"]
    assert out["pools"]["corpus_shards"] == []


def test_executor_settings_from_env(monkeypatch):
    from pipelines.executors import build_executor, celery_config, executor_kind, k8s_config

    monkeypatch.setenv("SHAMISA_EXECUTOR", "spark")
    with pytest.raises(ValueError, match="multiprocess, in_process, k8s, celery"):
        executor_kind()
    monkeypatch.setenv("SHAMISA_K8S_NAMESPACE", "iqa")
    monkeypatch.setenv("SHAMISA_K8S_IMAGE", "registry.local/shamisa:1")
    monkeypatch.setenv("SHAMISA_WORLD_SIZE", "4")
    cfg = k8s_config()
    assert cfg["job_namespace"] == "iqa" and cfg["job_image"] == "registry.local/shamisa:1"
    gpu = cfg["per_step_k8s_config"]["encoder"]["container_config"]["resources"]["limits"]
    assert gpu == {"nvidia.com/gpu": "4"}
    monkeypatch.setenv("SHAMISA_CELERY_BACKEND", "redis://cache:6379/0")
    assert celery_config()["backend"] == "redis://cache:6379/0"
    assert build_executor("k8s").name == "k8s_job_executor"


def test_dagster_yaml_limits_the_gpu_pool(tmp_path, monkeypatch):
    import shutil

    from dagster import DagsterInstance

    for cfg in (REPO / "dagster_home" / "dagster.yaml", REPO / "dagster_home" / "postgres" / "dagster.yaml"):
        text = cfg.read_text()
        assert "default_limit: 1" in text, cfg
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_make_paper_without_datasets_names_them_and_fails(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHAMISA_", "DAGSTER_"))}
    env.update(SHAMISA_DATASETS_DIR=str(tmp_path / "datasets"), DAGSTER_HOME=str(tmp_path / "home"))
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "kadid10k.yaml").write_text(f"root: {tmp_path / 'KADID10K'}\n")
    (tmp_path / "KADID10K").mkdir()
    proc = subprocess.run([PYTHON, "-m", "pipelines.paper"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "5 of the 6 datasets" in err
    for name in ("live", "csiq", "tid2013", "flive", "spaq"):
        assert f"{tmp_path / 'datasets' / name}.yaml" in err, name
    assert "kadid10k (" not in err  # configured: not reported
    assert "dmos.mat" in err or "LIVE.txt" in err  # the expected layout is stated
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())  # nothing ran
    make = subprocess.run(["make", "-n", "paper"], cwd=REPO, capture_output=True, text=True)
    assert "-m pipelines.paper" in make.stdout


def test_paper_table_layout():
    from pipelines.paper import paper_table

    result = {"live": {"srcc": 0.9, "plcc": 0.91}, "kadid10k": {"srcc": 0.7, "plcc": 0.72},
              "spaq": {"srcc": 0.8, "plcc": 0.81},
              "baseline": {"live": {"srcc": 0.5, "plcc": 0.55}}, "meta": {}}
    lines = paper_table(result).splitlines()
    assert lines[0].startswith("| Method | LIVE SRCC | LIVE PLCC | CSIQ SRCC |")
    assert lines[0].endswith("| Synthetic SRCC | Authentic SRCC | Global SRCC |")
    trained = lines[2].split(" | ")
    assert trained[1:3] == ["0.900", "0.910"] and trained[3] == "-"
    assert trained[-3:] == ["0.800", "0.800", "0.800 |"]  # synthetic (0.9+0.7)/2, authentic 0.8
    assert lines[3].startswith("| untrained twin | 0.500 | 0.550 | - |")
    twins = {**{k: v for k, v in result.items() if k != "baseline"},
             "twins": {"init_twin": {"live": {"srcc": 0.6, "plcc": 0.65}},
                       "random_twin": {"live": {"srcc": 0.4, "plcc": 0.45}}},
             "meta": {"twins": {"init_twin": {"label": "init twin (imagenet)"},
                                "random_twin": {"label": "random twin"}}}}
    lines = paper_table(twins).splitlines()
    assert lines[3].startswith("| init twin (imagenet) | 0.600 | 0.650 | - |")
    assert lines[4].startswith("| random twin | 0.400 | 0.450 | - |")
