"""Groups, shards, manifest and reader: determinism, the one-factor rule, damaged inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shamisa_core.corpus.build import build_corpus, build_shard
from shamisa_core.corpus.groups import build_group, default_loader
from shamisa_core.corpus.manifest import check_record, read_manifest
from shamisa_core.corpus.reader import CorpusDataset, collate_groups, list_shards
from shamisa_core.corpus.shards import ShardError, iter_samples, verify_shard
from shamisa_core.pristine import PristineError, embedded_default_images, scan_folder


def _sources(pristine_dir: Path) -> list[str]:
    return [i.path for i in scan_folder(pristine_dir, 32).images]


def test_group_shape_and_rules(pristine_dir, tiny_cfg):
    g = build_group(_sources(pristine_dir), default_loader, 5, 0, 1, 2, tiny_cfg.group, tiny_cfg.engine)
    V, C, L, P = 4, 2, 2, 48
    assert g.ref.shape == (V, P, P, 3) and g.dist.shape == (V, C, L, P, P, 3)
    assert g.ref.dtype == np.uint8
    assert check_record(g.record, tiny_cfg) == []
    rec = g.record
    for key in ("group_id", "seed", "patch_size", "references", "compositions"):
        assert key in rec
    for ref in rec["references"]:
        assert {"id", "source", "crop_full", "crop_half"} <= set(ref)
    for comp in rec["compositions"]:
        assert isinstance(comp["varying_slot"], int)
        assert all({"family", "type"} == set(s) for s in comp["slots"])
        for lv in comp["levels"]:
            assert len(lv["t"]) == len(lv["value"]) == len(comp["slots"])


def test_group_is_deterministic_and_regenerates_alone(pristine_dir, tiny_cfg):
    src = _sources(pristine_dir)
    a = build_group(src, default_loader, 5, 1, 1, 2, tiny_cfg.group, tiny_cfg.engine)
    _ = build_group(src, default_loader, 5, 0, 0, 2, tiny_cfg.group, tiny_cfg.engine)
    b = build_group(src, default_loader, 5, 1, 1, 2, tiny_cfg.group, tiny_cfg.engine)
    assert np.array_equal(a.dist, b.dist) and np.array_equal(a.ref, b.ref)
    assert json.dumps(a.record, sort_keys=True) == json.dumps(b.record, sort_keys=True)
    c = build_group(src, default_loader, 6, 1, 1, 2, tiny_cfg.group, tiny_cfg.engine)
    assert not np.array_equal(a.dist, c.dist)


def test_check_record_catches_violations(pristine_dir, tiny_cfg):
    g = build_group(_sources(pristine_dir), default_loader, 5, 0, 0, 2, tiny_cfg.group, tiny_cfg.engine)
    rec = json.loads(json.dumps(g.record))
    comp = rec["compositions"][0]
    k = comp["varying_slot"]
    comp["slots"].append(dict(comp["slots"][0]))  # repeat a family
    for lv in comp["levels"]:
        lv["t"].append(1.0)
        lv["value"].append(1.0)
    comp["levels"][1]["t"][-1] = 2.0  # a fixed slot differs across levels
    errs = check_record(rec, tiny_cfg)
    assert any("family repeats" in e for e in errs)
    assert any("differs across levels" in e for e in errs)
    rec2 = json.loads(json.dumps(g.record))
    rec2["crops"][0]["recipe"] = "deadbeef"
    assert any("recipe differs" in e for e in check_record(rec2, tiny_cfg))
    assert 0 <= k < len(g.record["compositions"][0]["slots"])
    assert check_record(g.record, tiny_cfg) == []  # the untouched group is valid
    rec3 = json.loads(json.dumps(g.record))
    rec3["compositions"][0]["varying_slot"] = len(rec3["compositions"][0]["slots"])
    assert any("varying slot" in e for e in check_record(rec3, tiny_cfg))


def test_shard_rebuild_has_same_sha256(pristine_dir, tiny_cfg, tmp_path):
    src = _sources(pristine_dir)
    r1 = build_shard(src, tiny_cfg, 0, tmp_path / "a")
    r2 = build_shard(src, tiny_cfg, 0, tmp_path / "b")
    assert r1.sha256 == r2.sha256
    assert Path(r1.path).read_bytes() == Path(r2.path).read_bytes()
    assert verify_shard(Path(r1.path)) == 2
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temp file left


def test_corpus_reader_batches_and_epoch_determinism(pristine_dir, tiny_cfg, tmp_path):
    out = tmp_path / "corpus"
    build_corpus(_sources(pristine_dir), tiny_cfg, out, workers=1)
    manifest = read_manifest(out)
    assert manifest["n_groups"] == 4 and len(manifest["shards"]) == 2
    ds = CorpusDataset(list_shards(out), seed=3, shuffle_buffer=4)
    ds.set_epoch(0)
    keys0 = [it["key"] for it in ds]
    keys0b = [it["key"] for it in ds]
    ds.set_epoch(1)
    keys1 = [it["key"] for it in ds]
    assert keys0 == keys0b and sorted(keys0) == sorted(keys1) and len(keys0) == 4
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_groups, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    b = batches[0]
    assert b["ref"].shape == (2, 4, 3, 48, 48) and b["dist"].shape == (2, 4, 2, 2, 3, 48, 48)
    assert b["indices"].shape == (2, 2, 2, 7) and b["var_dist"].dtype == torch.int64
    # ranks split the shards
    r0 = CorpusDataset(list_shards(out), seed=3, rank=0, world_size=2)
    r1 = CorpusDataset(list_shards(out), seed=3, rank=1, world_size=2)
    k0, k1 = {it["key"] for it in r0}, {it["key"] for it in r1}
    assert not (k0 & k1) and len(k0 | k1) == 4


def test_truncated_shard_names_the_file(pristine_dir, tiny_cfg, tmp_path):
    res = build_shard(_sources(pristine_dir), tiny_cfg, 0, tmp_path)
    path = Path(res.path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(ShardError, match=path.name):
        list(iter_samples(path))
    ds = CorpusDataset([path], on_error="raise")
    with pytest.raises(ShardError, match=str(path)):
        list(ds)
    skip = CorpusDataset([path], on_error="skip")
    list(skip)
    assert skip.stats.skipped_shards == [str(path)]


def test_corrupt_image_is_skipped_and_reported(pristine_dir):
    (pristine_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (10, 10)).save(pristine_dir / "tiny.png")
    scan = scan_folder(pristine_dir, 32)
    assert len(scan.images) == 3
    reasons = dict(scan.skipped)
    assert "unreadable" in reasons[str(pristine_dir / "broken.jpg")]
    assert "too small" in reasons[str(pristine_dir / "tiny.png")]


def test_empty_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PristineError, match="no usable pristine image"):
        scan_folder(tmp_path / "empty")
    with pytest.raises(PristineError, match="does not exist"):
        scan_folder(tmp_path / "nope")


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        read_manifest(tmp_path / "empty")


def test_embedded_default_images_are_natural_rgb_photos():
    imgs = embedded_default_images()
    assert len(imgs) >= 10
    names = [n for n, _ in imgs]
    assert len(set(names)) == len(names)
    for _, arr in imgs:
        assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8
        assert min(arr.shape[:2]) >= 128
