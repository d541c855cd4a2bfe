"""`dagster dev` as a person starts it, and a small GraphQL client for it (not a test module)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from opshelp import PYTHON, REPO, free_port

DAGSTER = str(Path(PYTHON).with_name("dagster"))


class DagsterDev:
    """``dagster dev`` on 127.0.0.1 under ``set -m`` (its own process group), stopped by PID."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = (f"set -m; exec {shlex.quote(DAGSTER)} dev -h 127.0.0.1 -p {self.port} "
               f"-w {shlex.quote(str(REPO / 'workspace.yaml'))}")
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(["bash", "-c", cmd], cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def graphql(self, query: str, variables: dict[str, Any] | None = None,
                timeout: float = 60) -> dict[str, Any]:
        """POST one GraphQL request; its ``data`` (errors raise with the server log)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
        for attempt in range(3):  # a 5xx while the code location (re)loads: try again
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    out = json.loads(resp.read())
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:3000]
                if exc.code < 500 or attempt == 2:
                    raise AssertionError(f"GraphQL HTTP {exc.code}: {detail}") from None
                time.sleep(5)
        if out.get("errors"):
            raise AssertionError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def wait_ready(self, timeout: float = 600) -> None:
        """Until the webserver answers and the code location has loaded."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dagster dev exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                data = self.graphql("{ repositoriesOrError { __typename "
                                    "... on RepositoryConnection { nodes { name } } } }", timeout=10)
                if data["repositoriesOrError"].get("nodes"):
                    return
                last = str(data)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = repr(exc)
            time.sleep(2)
        raise AssertionError(f"dagster dev did not answer in {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 60) -> None:
        """SIGINT (Ctrl-C, which `dagster dev` handles) to the process group of the PID we
        started, then SIGTERM, then SIGKILL for whatever lingers."""
        if self.proc.poll() is None:
            pgid = os.getpgid(self.proc.pid)
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                os.killpg(pgid, sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # children (webserver, daemon) follow the group
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
            else:
                os.killpg(pgid, signal.SIGKILL)
        self._log.close()


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""

RUN_STATUS = """
query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""


def stage_params(args: list[str]) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """(asset names, run tags, run config) of one ``dagster asset materialize`` argument list."""
    assets: list[str] = []
    tags: dict[str, str] = {}
    config: dict[str, Any] = {}
    it = iter(args)
    for flag in it:
        value = next(it)
        if flag == "--select":
            assets = value.split(",")
        elif flag == "--partition":
            tags["dagster/partition"] = value
        elif flag == "--partition-range":
            start, end = value.split("...")
            tags["dagster/asset_partition_range_start"] = start
            tags["dagster/asset_partition_range_end"] = end
        elif flag == "--config-json":
            config = json.loads(value)
        else:
            raise ValueError(f"unknown stage flag {flag}")
    return assets, tags, config


def launch_and_wait(server: DagsterDev, location: str, repository: str, assets: list[str],
                    tags: dict[str, str], config: dict[str, Any], timeout: float = 900) -> str:
    """Launch a run of ``assets`` through GraphQL; wait for it to end; its run id (SUCCESS)."""
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": repository,
                     "jobName": "__ASSET_JOB", "assetSelection": [{"path": [a]} for a in assets]},
        "runConfigData": config,
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        "mode": "default",
    }
    res = server.graphql(LAUNCH, {"params": params})["launchRun"]
    if res["__typename"] != "LaunchRunSuccess":
        raise AssertionError(f"launchRun {assets}: {res}")
    run_id = res["run"]["runId"]
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    if status != "SUCCESS":
        raise AssertionError(f"run {run_id} of {assets} ended {status}:\n{server.log_tail()}")
    return run_id


class HeadlessChromium:
    """Headless Chromium driven over the DevTools protocol (``websocket-client``), so that a
    test can click in the page and see what a person sees (images decoded and laid out)."""

    def __init__(self, browser: str, profile: Path, width: int = 1600, height: int = 1000) -> None:
        import websocket

        self.port = free_port()
        self._log = open(profile.with_suffix(".log"), "w")
        self.proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={profile}",
             f"--remote-debugging-port={self.port}", "--remote-allow-origins=*", "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=5) as r:
                    pages = [p for p in json.loads(r.read()) if p.get("type") == "page"]
                if pages:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise AssertionError("Chromium's DevTools endpoint did not come up")
            time.sleep(1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=120)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        return out.get("result", {}).get("value")

    def open(self, url: str, ready_js: str, timeout: float = 180) -> None:
        """Navigate and wait until ``ready_js`` is true in the page."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.js(f"Boolean({ready_js})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: {ready_js} never became true")
            time.sleep(1)

    def wait_for(self, condition_js: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"Boolean({condition_js})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"never true: {condition_js}")
            time.sleep(1)

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self.proc.poll() is None:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
