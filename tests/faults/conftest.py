"""Fixtures of the fault suite: a tiny real corpus and a tiny real encoder file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from synthetic_images import natural_image

TINY = ["group.patch_size=48", "group.n_refs=2", "group.n_comps=2", "group.n_levels=2",
        "corpus.min_side=32", "model.arch=resnet18", "model.init=random"]
TINY_SETS = [a for kv in TINY for a in ("--set", kv)]


def tiny_config(**extra: object):
    """cpu-small shrunk to 48-px groups (R=2, C=2, L=2), a random ResNet-18, ``extra`` overrides."""
    from shamisa_core.config import load_profile

    return load_profile("cpu-small", TINY + [f"{k}={v}" for k, v in extra.items()])


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """Four small generated photos."""
    d = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(natural_image(i, 96 + 8 * i, 128)).save(d / f"{i}.png")
    return d


@pytest.fixture(scope="session")
def built_corpus(tmp_path_factory, photos) -> Path:
    """A pristine corpus of 4 shards x 2 groups (never modified: copy it with ``corpus``)."""
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.pristine import scan_folder

    out = tmp_path_factory.mktemp("corpus0") / "corpus"
    cfg = tiny_config(**{"corpus.n_shards": 4, "corpus.groups_per_shard": 2})
    build_corpus([i.path for i in scan_folder(photos, 32).images], cfg, out)
    return out


@pytest.fixture
def corpus(built_corpus, tmp_path) -> Path:
    """A private copy of the tiny corpus that a test may damage."""
    dst = tmp_path / "corpus"
    shutil.copytree(built_corpus, dst)
    return dst


@pytest.fixture(scope="session")
def encoder_file(tmp_path_factory) -> Path:
    """A real ``encoder.pt`` of a random tiny ResNet-18 (never modified)."""
    from shamisa_core.models import build_model
    from shamisa_core.training.checkpoint import save_encoder

    cfg = tiny_config()
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    save_encoder(path, build_model(cfg.model), cfg.model, cfg.group.patch_size)
    return path
