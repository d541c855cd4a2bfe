"""The Dagster UI end to end: ``dagster dev`` on 127.0.0.1, the default pipeline launched
through its GraphQL API on a tiny profile, every asset's materialization and metadata, the
schedule and the sensor; then headless Chromium screenshots of the asset graph and of the
``encoder`` page (skipped, with the reason, where no browser is installed).

One server serves the module (``ui``); it is stopped by the PID we started, process group
included.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from opshelp import REPO, make_tiny_env
from uiserver import DagsterDev, launch_and_wait, stage_params

REPOSITORY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name }
    schedules { name cronSchedule scheduleState { status } }
    sensors { name sensorState { status } }
} } } }"""

ASSETS = """
{ assetNodes {
    assetKey { path }
    isPartitioned
    assetMaterializations(limit: 1) {
      runId partition
      metadataEntries { label __typename }
    }
} }"""

ALL_ASSETS = {"pristine_images", "corpus_shards", "corpus_manifest", "encoder", "benchmark_catalog",
              "benchmark_datasets", "benchmark_features", "quality_regressors",
              "cross_dataset_table", "full_reference_table", "evaluation_table"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """``dagster dev`` with the default pipeline launched through GraphQL, stage by stage."""
    from pipelines.main_run import stages

    base = tmp_path_factory.mktemp("ui")
    env = make_tiny_env(base)
    server = DagsterDev(env, base / "dagster_dev.log")
    try:
        server.wait_ready()
        repo = server.graphql(REPOSITORY)["repositoriesOrError"]["nodes"][0]
        n_shards = 2
        runs = []
        for args in stages_for(stages, n_shards, env):
            assets, tags, config = stage_params(args)
            runs.append((assets, launch_and_wait(server, repo["location"]["name"], repo["name"],
                                                 assets, tags, config)))
        yield {"server": server, "repo": repo, "runs": runs, "env": env, "base": base}
    finally:
        server.stop()
        assert server.proc.poll() is not None


def stages_for(stages, n_shards: int, env: dict[str, str]) -> list[list[str]]:
    """``pipelines.main_run.stages()`` under the tiny environment (it reads the shard count)."""
    saved = {k: os.environ.get(k) for k in env if k.startswith("SHAMISA_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("SHAMISA_")})
    try:
        out = stages()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert any(f"shard-{n_shards - 1:06d}" in " ".join(a) for a in out), out
    if not any("full_reference_table" in " ".join(a) for a in out):  # not in `make run`'s stages
        out.insert(len(out) - 1, ["--select", "full_reference_table"])
    return out


def test_ui_runs_default_pipeline_through_graphql(ui):
    server = ui["server"]
    assert server.proc.poll() is None  # still serving
    nodes = server.graphql(ASSETS)["assetNodes"]
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(by_name) == ALL_ASSETS
    launched = {run_id for _, run_id in ui["runs"]}
    for name, node in by_name.items():
        mats = node["assetMaterializations"]
        assert mats, f"{name} has no materialization"
        if name != "benchmark_datasets":  # the sensor may also materialize the proxy's
            assert mats[0]["runId"] in launched, name
        assert mats[0]["metadataEntries"], (name, mats[0])
    labels = {e["label"] for e in by_name["encoder"]["assetMaterializations"][0]["metadataEntries"]}
    assert {"loss_curve", "steps", "mlflow_run_id"} <= labels
    repo = ui["repo"]
    assert [s["name"] for s in repo["schedules"]] == ["benchmark_refresh"]
    assert repo["schedules"][0]["cronSchedule"] == "0 3 * * 1"
    assert [s["name"] for s in repo["sensors"]] == ["new_dataset_root"]
    assert {repo["schedules"][0]["scheduleState"]["status"],
            repo["sensors"][0]["sensorState"]["status"]} == {"RUNNING"}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browse(browser: str, url: str, out: Path, profile: Path) -> str:
    """Screenshot of ``url`` into ``out`` and its rendered DOM, after the app settles."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--hide-scrollbars", "--window-size=1600,1000", f"--user-data-dir={profile}",
              "--virtual-time-budget=25000", "--run-all-compositor-stages-before-draw"]
    subprocess.run([*common, f"--screenshot={out}", url], check=True, capture_output=True,
                   timeout=180)
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True,
                         text=True, timeout=180)
    out.with_suffix(".html").write_text(dom.stdout)  # kept beside the screenshot for debugging
    return dom.stdout


def test_ui_screenshots_in_headless_chromium(ui):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH (`.ci/run` installs Debian's `chromium` where apt works)")
    server, base = ui["server"], ui["base"]
    graph_png, encoder_png = base / "asset_graph.png", base / "encoder.png"
    graph_dom = _browse(browser, f"{server.url}/asset-groups", graph_png, base / "chrome1")
    for name in ALL_ASSETS:
        assert name in graph_dom, f"{name} not on the asset graph page"
    encoder_dom = _browse(browser, f"{server.url}/assets/encoder", encoder_png, base / "chrome2")
    assert "loss_curve" in encoder_dom
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', encoder_dom)
    assert any(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images), \
        "the loss-curve image is not on the encoder page"
    for png in (graph_png, encoder_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    keep = os.environ.get("SHAMISA_SCREENSHOT_DIR")
    if keep:  # e.g. docs/: refresh the screenshot kept in the repository
        shutil.copy(graph_png, Path(keep) / "asset_graph.png")
