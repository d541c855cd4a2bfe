"""Issue 8 defect 1: the evaluation feature cache is content-addressed.

Each test damages a real KADID-layout folder itself and runs the real evaluation (tiny
resnet18, crop 32): a cached result is reused only for the same images, labels, encoder
(weights and inference tag), crop and code version; failures are never served from the
cache; an unreadable cache file is rebuilt with a warning naming it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _eval_helpers import make_encoder, make_kadid_like
from shamisa_core.cli import main
from shamisa_core.evaluation import stages
from shamisa_core.evaluation.cache import features_key, key_parts
from shamisa_core.evaluation.encoders import load_trained
from shamisa_core.evaluation.prepared import prepare_dataset
from shamisa_core.evaluation.report import format_table


def _evaluate(enc: Path, root: Path, cache: Path) -> dict:
    return stages.evaluate_encoder(enc, {"kadid10k": root}, twins=False, cache_dir=cache)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcache")
    data = make_kadid_like(root / "kadid", levels=(1, 3), seed=4)
    enc = make_encoder(root / "enc" / "encoder.pt", seed=0)
    return {"root": root, "data": data, "enc": enc}


def _images(folder: Path) -> list[Path]:
    return sorted((folder / "images").glob("I*_*.png"))


def test_zero_byte_images_are_not_reused(base, tmp_path, capsys):
    data = tmp_path / "kadid"
    shutil.copytree(base["data"], data)
    cache = tmp_path / "cache"
    rc = main(["evaluate", "--encoder", str(base["enc"]), "--dataset", f"kadid10k={data}",
               "--cache-dir", str(cache), "--no-twins", "--quiet"])
    assert rc == 0
    first = capsys.readouterr().out
    assert "kadid10k" in first
    for path in _images(data):  # every distorted image becomes a 0-byte file, labels kept
        path.write_bytes(b"")
    rc = main(["evaluate", "--encoder", str(base["enc"]), "--dataset", f"kadid10k={data}",
               "--cache-dir", str(cache), "--no-twins"])
    out, err = capsys.readouterr()
    assert rc == 2  # nothing readable: a clear error, not the old SRCC
    assert "no image could be loaded" in err and "Traceback" not in err + out
    assert "cached" not in err and out == ""


def test_two_copies_with_the_same_labels_do_not_share(base, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(base["data"], a)  # copy2: same sizes and mtimes
    shutil.copytree(base["data"], b)
    victim = _images(b)[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated
    cache = tmp_path / "cache"
    ra = _evaluate(base["enc"], a, cache)
    rb = _evaluate(base["enc"], b, cache)
    assert ra["kadid10k"]["dataset_version"] == rb["kadid10k"]["dataset_version"]  # same labels
    assert not rb["kadid10k"]["features"]["cache_hit"]
    assert rb["kadid10k"]["features"]["n_failed"] == 1
    assert rb["kadid10k"]["features"]["failed"][0][0].endswith(victim.name)
    text = format_table(rb)  # the printed table names the failed image, not only the JSON
    assert "failed images (1" in text and victim.name in text
    again = _evaluate(base["enc"], a, cache)  # the intact copy keeps all its images
    assert again["kadid10k"]["features"]["cache_hit"]
    assert again["kadid10k"]["features"]["n_failed"] == 0
    assert again["kadid10k"]["srcc_splits"] == ra["kadid10k"]["srcc_splits"]


def test_repaired_images_are_read_again(base, tmp_path):
    data = tmp_path / "kadid"
    shutil.copytree(base["data"], data)
    cache = tmp_path / "cache"
    victims = _images(data)[:2]
    originals = [p.read_bytes() for p in victims]
    stats = [p.stat() for p in victims]
    for p, blob in zip(victims, originals):
        p.write_bytes(os.urandom(len(blob)))  # same size...
    for p, st in zip(victims, stats):
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and same mtime: same key
    broken = _evaluate(base["enc"], data, cache)
    assert broken["kadid10k"]["features"]["n_failed"] == 2
    for p, blob, st in zip(victims, originals, stats):
        p.write_bytes(blob)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    repaired = _evaluate(base["enc"], data, cache)
    feats = repaired["kadid10k"]["features"]
    assert feats["cache_hit"] and feats["retried_failed_rows"] == 2  # the failures were retried
    assert feats["n_failed"] == 0
    stored = np.load(feats["path"])
    assert np.isfinite(stored).all()  # the repaired rows are now in the cache file
    clean = _evaluate(base["enc"], base["data"], tmp_path / "fresh")
    np.testing.assert_allclose(stored, np.load(clean["kadid10k"]["features"]["path"]))


def test_a_second_encoder_on_the_same_cache_is_a_miss(base, tmp_path):
    cache = tmp_path / "cache"
    first = _evaluate(base["enc"], base["data"], cache)
    other = make_encoder(tmp_path / "enc2" / "encoder.pt", seed=1)
    second = _evaluate(other, base["data"], cache)
    assert not second["kadid10k"]["features"]["cache_hit"]
    assert second["kadid10k"]["features"]["key"] != first["kadid10k"]["features"]["key"]
    assert Path(second["kadid10k"]["regressor"]) != Path(first["kadid10k"]["regressor"])


def test_key_covers_inference_tag_crop_labels_and_identity_mode(base, tmp_path):
    prep = prepare_dataset("kadid10k", base["data"], tmp_path / "cache")
    enc = load_trained(base["enc"])
    key = features_key(key_parts(prep, enc, 32))
    assert key == features_key(key_parts(prep, enc, 32))  # deterministic
    assert key != features_key(key_parts(prep, enc, 24))
    assert key != features_key(key_parts(prep, enc, 32, identity="sha256"))
    enc.module.inference_tag = "bf16+channels_last"  # what the Encoder sets when optimised
    assert features_key(key_parts(prep, enc, 32)) != key
    # the dataset version (and so the work folder) includes the labels
    relabelled = tmp_path / "relabelled"
    shutil.copytree(base["data"], relabelled)
    table = pd.read_csv(relabelled / "dmos.csv")
    table.loc[0, "dmos"] += 0.5
    table.to_csv(relabelled / "dmos.csv", index=False)
    other = prepare_dataset("kadid10k", relabelled, tmp_path / "cache")
    assert other.version != prep.version and other.work_dir != prep.work_dir


def test_sha256_identity_shares_identical_copies(base, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(base["data"], a)
    shutil.copytree(base["data"], b, copy_function=shutil.copyfile)  # new mtimes, same bytes
    enc = load_trained(base["enc"])
    pa_ = prepare_dataset("kadid10k", a, tmp_path / "cache")
    pb = prepare_dataset("kadid10k", b, tmp_path / "cache")
    assert features_key(key_parts(pa_, enc, 32)) != features_key(key_parts(pb, enc, 32))
    assert (features_key(key_parts(pa_, enc, 32, identity="sha256"))
            == features_key(key_parts(pb, enc, 32, identity="sha256")))


def test_unreadable_cache_file_is_rebuilt_with_a_warning(base, tmp_path):
    cache = tmp_path / "cache"
    first = _evaluate(base["enc"], base["data"], cache)
    path = Path(first["kadid10k"]["features"]["path"])
    good = np.load(path)
    path.write_bytes(path.read_bytes()[:100])  # truncated cache file
    with pytest.warns(UserWarning, match=path.name):
        again = _evaluate(base["enc"], base["data"], cache)
    assert not again["kadid10k"]["features"]["cache_hit"]
    np.testing.assert_array_equal(np.load(path), good)
    assert again["kadid10k"]["srcc_splits"] == first["kadid10k"]["srcc_splits"]
    splits = Path(first["meta"]["datasets"]["kadid10k"]["splits_path"])
    splits.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=splits.name):
        third = _evaluate(base["enc"], base["data"], cache)
    assert third["kadid10k"]["srcc_splits"] == first["kadid10k"]["srcc_splits"]
