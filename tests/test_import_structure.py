"""The import structure (issue 9): no import runs back up between the layers, and the CLI
commands that need no model import no torch.

The graph is read from the source (``ast``; every ``import``, also those inside functions),
so a lazy import that runs back up is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("shamisa_core", "assets", "pipelines")


def _modules() -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


@lru_cache(maxsize=None)
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import sub`` -> ``pkg.sub``)."""
    path, is_pkg = MODULES[name]
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    return frozenset(_imported_names(ast.parse(path.read_text(), str(path)), here))


def _imported_names(tree: ast.AST, here: list[str]) -> set[str]:
    """The absolute module names the import statements under ``tree`` name (``here``: the
    package the module sits in, for relative imports)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                         for a in node.names)
    return found


def _with_parents(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(start: str) -> set[str]:
    """The modules of this repository that importing ``start`` can import (parents included)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for mod in _with_parents(todo.pop()):
            if mod in MODULES and mod not in seen:
                seen.add(mod)
                todo.extend(imports_of(mod))
    return seen


def external_roots(mods: set[str]) -> set[str]:
    return {i.split(".")[0] for m in mods for i in imports_of(m)} - set(PACKAGES)


def test_the_reader_sees_the_known_edges():
    # guards the parser itself: these edges exist, so an empty graph would fail here
    assert "shamisa_core.config.train" in imports_of("shamisa_core.config")
    assert "shamisa_core.graphs.combine" in imports_of("shamisa_core.graphs")  # relative import
    assert "pipelines.resources" in imports_of("assets.corpus")
    assert "torch" in external_roots(closure("shamisa_core.models"))


def test_shamisa_core_never_imports_dagster_assets_or_pipelines():
    bad = sorted((m, i) for m in MODULES if m.startswith("shamisa_core")
                 for i in imports_of(m) if i.split(".")[0] in ("dagster", "assets", "pipelines")
                 or i.startswith("dagster_"))
    assert bad == []


def test_the_config_imports_no_higher_layer_and_no_torch():
    reach = closure("shamisa_core.config")
    higher = sorted(m for m in reach if not (m == "shamisa_core" or m.startswith("shamisa_core.config")))
    assert higher == [], "shamisa_core.config must only import its own package"
    assert external_roots(reach) <= {"__future__", "dataclasses", "hashlib", "importlib", "json",
                                     "typing"}


def test_assets_import_only_pipelines_resources_which_never_imports_assets():
    from_pipelines = {(m, i) for m in MODULES if m.startswith("assets")
                      for i in imports_of(m) if i.startswith("pipelines")}
    assert {i for _, i in from_pipelines} == {"pipelines.resources"}, from_pipelines
    reach = closure("pipelines.resources")
    assert sorted(m for m in reach if m.startswith("assets")) == []
    assert sorted(m for m in reach if m.startswith("pipelines")) == ["pipelines", "pipelines.resources"]
    assert imports_of("pipelines") == frozenset()  # the package itself imports nothing eagerly


FAST = r"""
import contextlib, io, sys
from shamisa_core.cli import main
src, dst, shard = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(["--help"])
    except SystemExit:
        pass
    assert main(["distortions", "list"]) == 0
    assert main(["distort", src, dst, "--chain", "jpeg:3,gaublur:1"]) == 0
    if shard:
        assert main(["corpus", "inspect", shard]) == 0
import shamisa_core.config as config
config.load_profile("cpu-small")  # ablation B7: the graph/loss ablation table too
assert "s000000_g000000" in out.getvalue() or not shard
print(sorted(m for m in ("torch", "torchvision", "mlflow", "dagster", "shamisa_core.training",
                         "shamisa_core.models", "shamisa_core.objective") if m in sys.modules))
"""


def _fast(tmp_path: Path, shard: str = "") -> str:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
        tmp_path / "in.png")
    res = subprocess.run([sys.executable, "-c", FAST, str(tmp_path / "in.png"),
                          str(tmp_path / "out.png"), shard], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out.png").is_file()
    return res.stdout.strip().splitlines()[-1]


def test_commands_without_a_model_import_no_torch(tmp_path):
    assert _fast(tmp_path) == "[]"


def test_corpus_inspect_imports_no_torch(tmp_path):
    import numpy as np
    from PIL import Image

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_shard

    cfg = load_profile("cpu-small", ["corpus.n_shards=1", "corpus.groups_per_shard=1",
                                     "group.patch_size=32", "group.n_refs=1", "group.n_comps=1",
                                     "group.n_levels=1"])
    rng = np.random.default_rng(1)
    sources = []
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
        sources.append(str(tmp_path / f"p{i}.png"))
    shard = build_shard(sources, cfg, 0, tmp_path).path
    assert _fast(tmp_path, shard) == "[]"


def test_loading_the_code_location_imports_no_torch():
    """Every run worker, the webserver and the daemon load the Definitions: torch (about 2 s
    here) is imported by the assets that run a model, when they run."""
    code = ("import sys, pipelines.definitions as d; d.defs.get_repository_def(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]"


def _top_level_imports(name: str) -> set[str]:
    """What importing ``name`` runs: module-level imports (not those inside functions or
    classes, nor under ``if TYPE_CHECKING``)."""
    path, is_pkg = MODULES[name]
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for stmt in ast.parse(path.read_text(), str(path)).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, ast.If) and getattr(stmt.test, "id", "") == "TYPE_CHECKING":
            continue
        found |= _imported_names(stmt, here)
    return found


def test_no_module_level_import_cycle():
    # edges to a module's own parent packages are left out (a submodule importing its package)
    graph = {m: {p for i in _top_level_imports(m) for p in _with_parents(i)
                 if p in MODULES and p != m and not m.startswith(p + ".")} for m in MODULES}
    assert "shamisa_core.config" in graph["shamisa_core.distortions.composition"]
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for nxt in sorted(graph[mod]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [mod, nxt] if nxt in path else [mod, nxt])
            elif nxt not in state:
                visit(nxt, path + [mod])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert cycles == []
