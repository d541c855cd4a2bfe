"""Dataset roots: which benchmarks are configured, and where (DECISIONS 15 dataset names).

A config folder holds one ``<name>.yaml`` (or ``.json``) per dataset with ``root: /path``.
The embedded ``proxy`` benchmark needs no root. :func:`benchmark_roots` is "the proxy plus
every configured root", the set the Dagster catalog, the sensor and the weekly refresh use.
No torch import here (the CLI parses dataset names without it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datasets import LOADERS

PROXY = "proxy"
DATASET_NAMES: tuple[str, ...] = (*LOADERS, PROXY)


@dataclass(frozen=True)
class DatasetRoot:
    """One configured dataset: ``<config_dir>/<name>.yaml`` (or .json) with ``root: /path``."""

    name: str
    root: Path | None
    config_file: Path | None
    digest: str

    def to_json(self) -> dict[str, str | None]:
        """Plain dict."""
        return {"name": self.name, "root": str(self.root) if self.root else None,
                "config_file": str(self.config_file) if self.config_file else None,
                "digest": self.digest}


@dataclass(frozen=True)
class RootsScan:
    """The configured dataset roots of a folder, and the files that could not be used."""

    config_dir: Path
    roots: Mapping[str, DatasetRoot]
    problems: tuple[tuple[str, str], ...] = ()


def _parse_root_file(path: Path) -> Mapping[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("root"), str) or not data["root"]:
        raise ValueError("expected a mapping with a non-empty string `root: /path/to/dataset`")
    return data


def scan_dataset_roots(config_dir: str | Path) -> RootsScan:
    """Read every ``<name>.yaml|.yml|.json`` of ``config_dir``.

    ``name`` must be one of ``DATASET_NAMES``; a relative ``root`` is taken relative to the
    config folder. Unusable files are returned in ``problems`` (file, reason), never raised, so
    that one bad file does not hide the others. A missing folder configures nothing.
    """
    folder = Path(config_dir).expanduser()
    roots: dict[str, DatasetRoot] = {}
    problems: list[tuple[str, str]] = []
    if not folder.is_dir():
        return RootsScan(folder, roots, ())
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".yaml", ".yml", ".json") or path.name.startswith("."):
            continue
        name = path.stem.lower()
        if name not in DATASET_NAMES:
            problems.append((str(path), f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}"))
            continue
        if name in roots:
            problems.append((str(path), f"{name} is already configured by {roots[name].config_file}"))
            continue
        try:
            data = _parse_root_file(path)
        except Exception as exc:  # noqa: BLE001 - any parse error is reported, not raised
            problems.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        root = Path(str(data["root"])).expanduser()
        root = root if root.is_absolute() else (folder / root)
        digest = hashlib.sha256(f"{name}\n{root}\n".encode() + path.read_bytes()).hexdigest()[:16]
        roots[name] = DatasetRoot(name=name, root=root, config_file=path, digest=digest)
    return RootsScan(folder, roots, tuple(problems))


def benchmark_roots(scan: RootsScan) -> dict[str, str | None]:
    """The proxy (first; its configured root if any, else None) plus every configured root."""
    out: dict[str, str | None] = {PROXY: str(scan.roots[PROXY].root) if PROXY in scan.roots else None}
    out.update({n: str(r.root) for n, r in scan.roots.items() if n != PROXY})
    return out


def parse_dataset_args(items: list[str]) -> dict[str, str | None]:
    """``["kadid10k=/data/k", "proxy"]`` -> ``{"kadid10k": "/data/k", "proxy": None}``."""
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, root = item.partition("=")
        name = name.strip().lower()
        if name not in DATASET_NAMES:
            raise ValueError(f"unknown dataset {name!r} in --dataset {item!r}; known: "
                             f"{', '.join(DATASET_NAMES)}")
        if name in out:
            raise ValueError(f"dataset {name} given twice")
        root = root.strip()
        if name == PROXY:
            out[name] = None if root in ("", "default") else root
        elif not sep or not root:
            raise ValueError(f"--dataset {name} needs a folder: --dataset {name}=/path/to/{name}")
        else:
            out[name] = root
    return out
