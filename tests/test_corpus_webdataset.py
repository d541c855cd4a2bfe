"""A built corpus opens with the stock ``webdataset`` library (issue 11, "Stock WebDataset").

The corpus is built with the project; everything after that reads it with ``json``, ``numpy``,
``torch`` and ``webdataset`` only (no ``shamisa_core`` import in the reading code): every group
of the manifest comes out exactly once, ``json`` / ``ref.npy`` / ``dist.npy`` decode to the
documented shapes (ref (V, P, P, 3) and dist (V, C, L, P, P, 3) uint8 with V = 2R), also with
2 DataLoader workers under the stock ``split_by_worker``.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from shamisa_core.corpus.build import build_corpus


def _sources(pristine_dir: Path) -> list[str]:
    return sorted(str(p) for p in pristine_dir.rglob("*") if p.is_file())


@pytest.fixture
def corpus(pristine_dir, tiny_cfg, tmp_path) -> Path:
    """A tiny corpus of 4 shards x 2 groups (patch 48, R=2, C=2, L=2)."""
    from dataclasses import replace

    cfg = replace(tiny_cfg, corpus=replace(tiny_cfg.corpus, n_shards=4, groups_per_shard=2))
    out = tmp_path / "corpus"
    build_corpus(_sources(pristine_dir), cfg, out, workers=1)
    return out


# --- below: stock tools only -----------------------------------------------------------------


def _manifest_and_urls(corpus: Path) -> tuple[dict, list[str]]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    return manifest, [str(corpus / s["file"]) for s in manifest["shards"]]


def _expected_keys(manifest: dict) -> set[str]:
    """Group keys ``s<shard>_g<group>`` of every shard listed in the manifest."""
    return {f"s{s['shard']:06d}_g{g:06d}" for s in manifest["shards"] for g in range(s["n_groups"])}


def _check_sample(sample: dict, manifest: dict) -> None:
    g = manifest["config"]["group"]
    P, R, C, L = g["patch_size"], g["n_refs"], g["n_comps"], g["n_levels"]
    record, ref, dist = sample["json"], sample["ref.npy"], sample["dist.npy"]
    assert isinstance(record, dict) and record["group_id"] == sample["__key__"]
    assert (record["patch_size"], record["n_refs"], record["n_comps"], record["n_levels"]) == (P, R, C, L)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.uint8 and ref.shape == (2 * R, P, P, 3)
    assert isinstance(dist, np.ndarray) and dist.dtype == np.uint8
    assert dist.shape == (2 * R, C, L, P, P, 3)
    assert len(record["crops"]) == 2 * R * C * L


def test_stock_webdataset_reads_every_group_once(corpus):
    manifest, urls = _manifest_and_urls(corpus)
    assert len(urls) == 4
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=True).decode()
    keys = []
    for sample in ds:
        _check_sample(sample, manifest)
        keys.append(sample["__key__"])
    counts = Counter(keys)
    assert len(keys) == manifest["n_groups"] == 8
    assert set(counts) == _expected_keys(manifest) and set(counts.values()) == {1}


def test_stock_webdataset_two_workers_split_by_worker(corpus):
    manifest, urls = _manifest_and_urls(corpus)
    ds = wds.WebDataset(
        urls, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False
    ).decode().to_tuple("__key__", "json", "ref.npy", "dist.npy")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = []
    for key, record, ref, dist in loader:
        _check_sample({"__key__": key, "json": record, "ref.npy": np.asarray(ref),
                       "dist.npy": np.asarray(dist)}, manifest)
        keys.append(key)
    counts = Counter(keys)
    assert len(keys) == 8 and set(counts) == _expected_keys(manifest)
    assert set(counts.values()) == {1}, counts


def test_shards_carry_fixed_tar_metadata(corpus):
    """TarWriter output is byte-reproducible: fixed mtime, owner and mode on every member."""
    _, urls = _manifest_and_urls(corpus)
    with tarfile.open(urls[0]) as tar:
        members = tar.getmembers()
    assert [m.name.split(".", 1)[1] for m in members] == ["dist.npy", "json", "ref.npy"] * 2
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
