"""Checks of `shamisa_core.corpus` written against mutation-testing survivors: each asserts a
documented property with an expected value computed here (``hashlib``, ``tarfile``,
``numpy.load``, PIL), not by the code under test."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shamisa_core.config import load_profile, with_overrides
from shamisa_core.corpus.build import build_corpus, build_shard
from shamisa_core.corpus.groups import build_group, default_loader
from shamisa_core.corpus.manifest import read_manifest, write_manifest
from shamisa_core.corpus.reader import CorpusDataset, collate_groups, list_shards
from shamisa_core.corpus.shards import ShardError, iter_samples, verify_shard
from shamisa_core.pristine import scan_folder

P, R, C, L = 48, 2, 2, 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet statistics


def _cfg(**extra):
    return load_profile("cpu-small", {"group.patch_size": P, "group.n_refs": R, "group.n_comps": C,
                                      "group.n_levels": L, "corpus.n_shards": 2, "corpus.groups_per_shard": 2,
                                      "corpus.min_side": 32, **extra})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from synthetic_images import natural_image

    root = tmp_path_factory.mktemp("mut_corpus")
    src = root / "pristine"
    src.mkdir()
    for i, (h, w) in enumerate([(160, 200), (120, 180), (150, 150)]):
        Image.fromarray(natural_image(i, h, w)).save(src / f"{i}.png")
    sources = [i.path for i in scan_folder(src, 32).images]
    out = root / "corpus"
    build_corpus(sources, _cfg(), out, workers=1)
    return sources, out


def _tar_samples(shard: Path) -> list[tuple[str, dict, np.ndarray, np.ndarray]]:
    """(key, record, ref, dist) of every sample, read with tarfile + numpy only."""
    parts: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard) as tar:
        for m in tar.getmembers():
            key, _, ext = Path(m.name).name.partition(".")
            parts.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return [(k, json.loads(p["json"]), np.load(io.BytesIO(p["ref.npy"])), np.load(io.BytesIO(p["dist.npy"])))
            for k, p in parts.items()]


# ------------------------------------------------------------------------------ manifest
def test_manifest_matches_the_files(built):
    sources, out = built
    m = json.loads((out / "manifest.json").read_text())
    crops_per_group = 2 * R * (1 + C * L)  # V pristine + V*C*L distorted crops
    assert m["format"] == "shamisa-corpus/1" and m["profile"] == "cpu-small"
    assert (m["n_shards"], m["n_groups"], m["n_crops"]) == (2, 4, 4 * crops_per_group)
    assert m["crops_per_group"] == crops_per_group and m["n_sources"] == len(sources) == 3
    assert m["config"] == _cfg().to_dict()
    assert [s["shard"] for s in m["shards"]] == [0, 1]
    for s in m["shards"]:
        path = out / s["file"]
        assert s["file"] == f"shard-{s['shard']:06d}.tar"
        assert s["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (s["n_groups"], s["n_crops"]) == (2, 2 * crops_per_group)
        assert len(_tar_samples(path)) == 2


def test_config_hash_follows_the_corpus_sections_only(built, tmp_path):
    _, out = built
    base = json.loads((out / "manifest.json").read_text())["config_hash"]
    rows = [{"shard": 0, "path": "x/shard-000000.tar", "sha256": "0" * 64, "n_groups": 1, "n_crops": 20}]

    def h(cfg) -> str:
        return json.loads(write_manifest(tmp_path, cfg, rows, ["a"]).read_text())["config_hash"]

    assert h(_cfg()) == base
    assert h(with_overrides(_cfg(), {"train.lr": 0.5})) == base  # training does not change the corpus
    for change in ({"corpus.seed": 99}, {"group.n_levels": 3}, {"engine.max_distortions": 2}):
        assert h(with_overrides(_cfg(), change)) != base, change


def test_write_manifest_sorts_and_sums(tmp_path):
    rows = [{"shard": s, "path": f"/elsewhere/shard-{s:06d}.tar", "sha256": f"{s}" * 64, "n_groups": g, "n_crops": 16 * g}
            for s, g in ((2, 3), (0, 1), (1, 2))]
    m = json.loads(write_manifest(tmp_path, _cfg(), rows, ["a", "b"]).read_text())
    assert [s["shard"] for s in m["shards"]] == [0, 1, 2]
    assert [s["file"] for s in m["shards"]] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [s["n_groups"] for s in m["shards"]] == [1, 2, 3] and [s["sha256"][0] for s in m["shards"]] == ["0", "1", "2"]
    assert (m["n_shards"], m["n_groups"], m["n_crops"], m["n_sources"]) == (3, 6, 96, 2)
    # stable bytes: sorted keys, one-space indent
    text = (tmp_path / "manifest.json").read_text()
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True)
    assert not list(tmp_path.glob(".*tmp*"))


def test_read_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": []}))
    with pytest.raises(ValueError, match="no shards"):
        read_manifest(tmp_path)


def test_list_shards_in_manifest_order_and_missing_named(built, tmp_path):
    _, out = built
    assert list_shards(out) == [out / "shard-000000.tar", out / "shard-000001.tar"]
    m = json.loads((out / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    (tmp_path / "shard-000000.tar").write_bytes((out / "shard-000000.tar").read_bytes())
    with pytest.raises(FileNotFoundError, match="shard-000001.tar"):
        list_shards(tmp_path)


def test_parallel_build_is_byte_identical(built, tmp_path):
    sources, out = built
    build_corpus(sources, _cfg(), tmp_path, workers=2)
    for name in ("shard-000000.tar", "shard-000001.tar", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


# ------------------------------------------------------------------------------ groups
def test_group_crops_are_the_recorded_boxes_of_the_sources(built, tmp_path):
    sources, _ = built
    for shard in (0, 1):  # built here, so that mutation testing maps this test to the builder
        path = Path(build_shard(sources, _cfg(), shard, tmp_path).path)
        for key, rec, ref, dist in _tar_samples(path):
            g = rec["group"]
            assert key == f"s{shard:06d}_g{g:06d}" == rec["group_id"]
            assert (rec["seed"], rec["shard"], rec["patch_size"]) == (_cfg().corpus.seed, shard, P)
            assert (rec["n_refs"], rec["n_comps"], rec["n_levels"]) == (R, C, L)
            assert ref.shape == (2 * R, P, P, 3) and dist.shape == (2 * R, C, L, P, P, 3)
            assert ref.dtype == dist.dtype == np.uint8
            assert rec["references"][0]["source"] == sources[(shard * 2 + g) % 3]
            for r, info in enumerate(rec["references"]):
                full = np.asarray(Image.open(info["source"]).convert("RGB"))
                h, w = full.shape[:2]
                half = np.asarray(Image.fromarray(full).resize((w // 2, h // 2), Image.BICUBIC))
                assert info["full_size"] == [w, h] and info["half_size"] == [w // 2, h // 2]
                for s, (img, box) in enumerate(((full, info["crop_full"]), (half, info["crop_half"]))):
                    x0, y0, x1, y1 = box
                    assert (x1 - x0, y1 - y0) == (P, P)
                    assert 0 <= x0 <= img.shape[1] - P and 0 <= y0 <= img.shape[0] - P
                    np.testing.assert_array_equal(ref[s * R + r], img[y0:y1, x0:x1])
            crops = rec["crops"]
            assert len(crops) == 2 * R * C * L
            for cr in crops:
                assert cr["view"] == cr["scale"] * R + cr["reference"]
            for c in range(C):
                for l in range(L):
                    digests = {cr["recipe"] for cr in crops if (cr["composition"], cr["level"]) == (c, l)}
                    assert len(digests) == 1
            assert np.mean(dist != ref[:, None, None]) > 0.1  # the distorted crops differ


def test_upscaled_small_source_and_group_regenerates_alone(tmp_path):
    from synthetic_images import natural_image

    small = tmp_path / "small.png"
    Image.fromarray(natural_image(5, 30, 40)).save(small)  # shorter side 30 < patch 48
    cfg = _cfg()
    g = build_group([str(small)], default_loader, 3, 1, 1, 2, cfg.group, cfg.engine)
    info = g.record["references"][0]
    assert min(info["full_size"]) == P and info["full_size"] == [64, 48]  # 40x30 scaled by 48/30
    assert info["half_size"] == [32, 24]
    assert g.ref.shape == (2 * R, P, P, 3)
    again = build_group([str(small)], default_loader, 3, 1, 1, 2, cfg.group, cfg.engine)
    assert np.array_equal(g.ref, again.ref) and np.array_equal(g.dist, again.dist) and g.record == again.record
    other = build_group([str(small)], default_loader, 3, 1, 0, 2, cfg.group, cfg.engine)
    assert not np.array_equal(g.dist, other.dist)
    with pytest.raises(ValueError, match="no pristine source"):
        build_group([], default_loader, 3, 1, 1, 2, cfg.group, cfg.engine)


def test_shard_built_alone_equals_the_corpus_shard(built, tmp_path):
    sources, out = built
    r = build_shard(sources, _cfg(), 1, tmp_path)
    assert Path(r.path).read_bytes() == (out / "shard-000001.tar").read_bytes()
    assert (r.shard, r.n_groups, r.n_crops) == (1, 2, 2 * 2 * R * (1 + C * L))
    assert r.sha256 == hashlib.sha256(Path(r.path).read_bytes()).hexdigest() and r.seconds > 0


# ------------------------------------------------------------------------------ shards
def test_shard_reads_back_what_the_tar_holds(built):
    _, out = built
    expected = _tar_samples(out / "shard-000000.tar")
    got = list(iter_samples(out / "shard-000000.tar"))
    assert [s.key for s in got] == [k for k, *_ in expected]
    for s, (k, rec, ref, dist) in zip(got, expected):
        assert s.record == rec and np.array_equal(s.ref, ref) and np.array_equal(s.dist, dist)
    assert verify_shard(out / "shard-000000.tar") == 2
    with tarfile.open(out / "shard-000000.tar") as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.mode, m.uname, m.gname) == (0, 0, 0, 0o644, "", "")


def _retar(src: Path, dst: Path, edit) -> None:
    with tarfile.open(src) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(dst, "w") as tar:
        for name, data in edit(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_damaged_shards_raise_shard_error_naming_the_file(built, tmp_path):
    _, out = built
    src = out / "shard-000000.tar"
    missing = tmp_path / "missing.tar"
    _retar(src, missing, lambda ms: [m for m in ms if not m[0].endswith(".dist.npy")])
    with pytest.raises(ShardError, match="lacks dist.npy") as e:
        list(iter_samples(missing))
    assert e.value.path == str(missing)
    bad = tmp_path / "bad.tar"
    _retar(src, bad, lambda ms: [(n, b"garbage" if n.endswith(".ref.npy") else d) for n, d in ms])
    with pytest.raises(ShardError, match="does not decode"):
        list(iter_samples(bad))
    with pytest.raises(ShardError, match="does not exist"):
        list(iter_samples(tmp_path / "absent.tar"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(src.read_bytes()[:3000])
    with pytest.raises(ShardError, match="cut.tar"):
        verify_shard(cut)


# ------------------------------------------------------------------------------ reader
def test_items_are_the_tar_arrays_as_tensors(built):
    _, out = built
    expected = {k: (rec, ref, dist) for k, rec, ref, dist in _tar_samples(out / "shard-000000.tar")}
    for normalize in (False, True):
        ds = CorpusDataset([out / "shard-000000.tar"], shuffle=False, normalize=normalize)
        items = list(ds)
        assert [it["key"] for it in items] == sorted(expected)  # file order without shuffling
        for it in items:
            rec, ref, dist = expected[it["key"]]
            want_ref = torch.from_numpy(ref.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
            want_dist = torch.from_numpy(dist.astype(np.float32) / 255.0).permute(0, 1, 2, 5, 3, 4)
            if normalize:
                m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
                want_ref, want_dist = (want_ref - m) / s, (want_dist - m) / s
            assert it["ref"].dtype == torch.float32
            torch.testing.assert_close(it["ref"], want_ref)
            torch.testing.assert_close(it["dist"], want_dist)
            for c, comp in enumerate(rec["compositions"]):
                n = len(comp["slots"])
                assert int(it["n_dist"][c]) == n and int(it["var_dist"][c]) == comp["varying_slot"]
                for l, lv in enumerate(comp["levels"]):
                    np.testing.assert_allclose(it["indices"][c, l, :n].numpy(), lv["t"], rtol=1e-6)
                    np.testing.assert_allclose(it["values"][c, l, :n].numpy(), lv["value"], rtol=1e-6)
                    assert torch.all(it["indices"][c, l, n:] == -1) and torch.all(it["values"][c, l, n:] == -1)
            assert it["indices"].shape == (C, L, 7) and it["n_dist"].dtype == torch.int64
        assert ds.stats.groups == 2


def test_collate_stacks_groups(built):
    _, out = built
    items = list(CorpusDataset(list_shards(out), shuffle=False))
    batch = collate_groups(items[:3])
    assert batch["keys"] == [it["key"] for it in items[:3]]
    for name in ("ref", "dist", "indices", "values", "n_dist", "var_dist"):
        assert batch[name].shape == (3, *items[0][name].shape)
        assert torch.equal(batch[name][2], items[2][name])


def test_defaults_and_shard_order(built):
    _, out = built
    shards = list_shards(out) * 9  # 18 entries, 36 groups: more than the 16-group buffer
    ds = CorpusDataset(shards)
    explicit = CorpusDataset(shards, seed=27, shuffle=True, shuffle_buffer=16, rank=0, world_size=1,
                             on_error="raise", normalize=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        explicit.set_epoch(epoch)
        assert ds.shard_order() == explicit.shard_order()
        assert [it["key"] for it in ds] == [it["key"] for it in explicit]
    orders = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        order = ds.shard_order()
        assert sorted(order) == sorted(shards)
        orders.add(tuple(order))
    assert len(orders) > 1
    assert CorpusDataset(shards, shuffle=False).shard_order() == shards
    with pytest.raises(ValueError, match="at least one shard"):
        CorpusDataset([])
    with pytest.raises(ValueError, match="on_error"):
        CorpusDataset(shards, on_error="ignore")
    with pytest.raises(ValueError, match="cannot feed"):
        CorpusDataset(list_shards(out), rank=2, world_size=3).my_shards()


def test_skip_mode_counts_damaged_shards(built, tmp_path):
    _, out = built
    cut = tmp_path / "shard-000009.tar"
    cut.write_bytes((out / "shard-000000.tar").read_bytes()[:3000])
    ds = CorpusDataset([out / "shard-000001.tar", cut], shuffle=False, on_error="skip")
    keys = [it["key"] for it in ds]
    assert keys == ["s000001_g000000", "s000001_g000001"]
    assert ds.stats.skipped_shards == [str(cut)] and ds.stats.groups == 2
    with pytest.raises(ShardError):
        list(CorpusDataset([cut], shuffle=False))


def test_check_record_without_group_id_names_it_unknown(built):
    from shamisa_core.corpus.manifest import check_record

    _, out = built
    rec = _tar_samples(out / "shard-000000.tar")[0][1]
    del rec["group_id"]
    rec["compositions"][0]["varying_slot"] = 99
    errs = check_record(rec)
    assert errs and all(e.startswith("? comp 0") for e in errs), errs


def test_half_scale_floors_and_keeps_one_pixel():
    from shamisa_core.corpus.groups import half_scale

    for (h, w), want in (((3, 5), (1, 2)), ((1, 1), (1, 1)), ((9, 4), (4, 2))):
        assert half_scale(np.zeros((h, w, 3), np.uint8)).shape == (*want, 3)
