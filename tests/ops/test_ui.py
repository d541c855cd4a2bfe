"""The Dagster UI end to end: ``dagster dev`` on 127.0.0.1, the default pipeline launched
through its GraphQL API on a tiny profile, every asset's materialization and metadata, the
schedule and the sensor; then headless Chromium screenshots of the asset graph and of the
``encoder`` page (skipped, with the reason, where no browser is installed).

One server serves the module (``ui``); it is stopped by the PID we started, process group
included.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from opshelp import REPO, make_tiny_env
from uiserver import DagsterDev, HeadlessChromium, launch_and_wait, stage_params

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
            # Each step in the run worker, as the Launchpad's ``in_process`` choice does: the
            # multiprocess default starts one more Python per step (~5-10 s each here); it is
            # run by `make run` itself and by the PostgreSQL test.
            config = {**config, "execution": {"config": {"in_process": {}}}}
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


def test_ui_screenshots_in_headless_chromium(ui):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH (`.ci/run` installs Debian's `chromium` where apt works)")
    server, base = ui["server"], ui["base"]
    server.graphql("mutation { setNuxSeen }")  # no first-visit community dialog over the pages
    graph_png, encoder_png, curve_png = (base / f"{n}.png" for n in ("asset_graph", "encoder", "loss_curve"))
    page = HeadlessChromium(browser, base / "chromium")
    try:
        page.open(f"{server.url}/asset-groups", "document.body && document.body.innerText.includes('evaluation')")
        time.sleep(2)
        for kind in ("rawKeyDown", "keyUp"):  # Alt+E: "Expand all groups"
            page.call("Input.dispatchKeyEvent", type=kind, modifiers=1, key="e", code="KeyE",
                      windowsVirtualKeyCode=69)
        page.wait_for("document.body.innerText.includes('benchmark_features')")
        time.sleep(2)
        page.screenshot(graph_png)
        text = page.js("document.body.innerText")
        for name in ALL_ASSETS:  # long names are shortened in the middle on the nodes
            assert name in text or (name[:11] in text and name[-6:] in text), f"{name} not on the graph"

        page.open(f"{server.url}/assets/encoder", "document.body && document.body.innerText.includes('loss_curve')")
        page.screenshot(encoder_png)
        clicked = page.js("""(() => {
            const row = [...document.querySelectorAll('tr')].find(r => r.innerText.includes('loss_curve'));
            const link = row && [...row.querySelectorAll('a')].find(a => a.innerText.includes('Show'));
            if (link) { link.click(); return true; } return false; })()""")
        assert clicked, "no loss_curve metadata row with its markdown link on the encoder page"
        page.wait_for("[...document.querySelectorAll('img')].some(i => "
                      "i.src.startsWith('data:image/png;base64,') && i.naturalWidth > 0)")
        sizes = page.js("[...document.querySelectorAll('img')].filter(i => "
                        "i.src.startsWith('data:image/png;base64,')).map(i => [i.naturalWidth, i.naturalHeight])")
        assert any(w >= 400 and h >= 200 for w, h in sizes), sizes  # the decoded loss-curve plot
        page.screenshot(curve_png)
    finally:
        page.close()
    for png in (graph_png, encoder_png, curve_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    keep = os.environ.get("SHAMISA_SCREENSHOT_DIR")
    if keep:  # e.g. docs/: refresh the screenshot kept in the repository
        shutil.copy(graph_png, Path(keep) / "asset_graph.png")
