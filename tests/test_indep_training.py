"""Independent checks of the training stage: ranks read disjoint parts of the corpus that
together cover it, resume is refused when the world size or the corpus changes, and the
``encoder`` asset trains with ``world_size=2`` through torchrun + Dagster Pipes.

The expected sets of groups are read straight from the shard tars with ``tarfile``, not
through the corpus reader under test.
"""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from synthetic_images import natural_image
from shamisa_core.config import load_profile
from shamisa_core.corpus.build import build_corpus
from shamisa_core.pristine import scan_folder
from shamisa_core.training import loop, train
from shamisa_core.training.checkpoint import load_checkpoint
from shamisa_core.training.distributed import DistInfo

TINY_GROUP = {"group.patch_size": 48, "group.n_refs": 2, "group.n_comps": 2, "group.n_levels": 2}


def _cfg(**train):
    cfg = load_profile("cpu-small", {**TINY_GROUP, "model.arch": "resnet18", "model.init": "random"})
    tc = dataclasses.replace(cfg.train, **{"log_every": 1, "checkpoint_every": 1000, "steps": None,
                                           "amp": "off", "device": "cpu", **train})
    return dataclasses.replace(cfg, train=tc)


def _build(root: Path, seed: int) -> Path:
    src = root / "pristine"
    if not src.exists():
        src.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(natural_image(i, 120 + 10 * i, 160)).save(src / f"{i}.png")
    cfg = load_profile("cpu-small", {**TINY_GROUP, "corpus.n_shards": 4, "corpus.groups_per_shard": 2,
                                     "corpus.min_side": 32, "corpus.seed": seed})
    out = root / f"corpus-{seed}"
    build_corpus([i.path for i in scan_folder(src, 32).images], cfg, out)
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    """Two corpora of the same group shape (4 shards x 2 groups) and different seeds."""
    root = tmp_path_factory.mktemp("indep_train")
    return _build(root, 1), _build(root, 2)


def _keys_in_tars(corpus: Path) -> set[str]:
    """Every group key of a corpus, from the tar member names (``<key>.json``)."""
    keys = set()
    for tar_path in sorted(corpus.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            keys |= {Path(m.name).name[: -len(".json")] for m in tar.getmembers() if m.name.endswith(".json")}
    return keys


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_read_disjoint_groups_that_cover_the_corpus(corpora, world_size, epoch):
    corpus = corpora[0]
    everything = _keys_in_tars(corpus)
    assert len(everything) == 8
    seen: list[list[str]] = []
    for rank in range(world_size):
        dataset, spe, _ = loop.open_corpus(corpus, _cfg(batch_size=1), DistInfo(rank=rank, world_size=world_size))
        dataset.set_epoch(epoch)
        seen.append([item["key"] for item in dataset])
    flat = [k for keys in seen for k in keys]
    assert len(flat) == len(set(flat)), "a group is read by two ranks"
    assert set(flat) == everything, "the ranks together do not cover the corpus"
    assert all(len(keys) == 8 // world_size for keys in seen)


def test_resume_refused_when_world_size_differs(corpora, tmp_path):
    corpus = corpora[0]
    train(_cfg(steps=1), corpus, tmp_path / "run")
    ckpt_path = tmp_path / "run" / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["world_size"] == 1
    ckpt["world_size"] = 2  # as written by a 2-rank run
    torch.save(ckpt, ckpt_path)
    with pytest.raises(ValueError, match="(?i)world size"):
        train(_cfg(steps=2), corpus, tmp_path / "run", resume=True)


def test_resume_refused_when_corpus_differs(corpora, tmp_path):
    a, b = corpora
    train(_cfg(steps=1), a, tmp_path / "run")
    with pytest.raises(ValueError, match="(?i)corpus"):
        train(_cfg(steps=2), b, tmp_path / "run", resume=True)
    # same corpus, same world size: resume is accepted
    assert train(_cfg(steps=2), a, tmp_path / "run", resume=True).steps == 2


# --------------------------------------------------------------- torchrun + Pipes (encoder asset)
TINY = [
    "group.patch_size=48", "group.n_refs=2", "group.n_comps=2", "group.n_levels=2",
    "corpus.n_shards=2", "corpus.groups_per_shard=2", "corpus.min_side=32",
    "model.arch=resnet18", "model.init=random",
    "train.steps=2", "train.log_every=1", "train.num_workers=0", "train.batch_size=2",
]


@pytest.mark.slow
def test_encoder_asset_world_size_2_through_torchrun_and_pipes(tmp_path, pristine_dir):
    """Slow (two torchrun ranks); CI runs it explicitly: ``pytest tests/test_indep_training.py -k torchrun``."""
    from dagster import DagsterInstance, PipesSubprocessClient, materialize

    from assets.corpus import corpus_manifest
    from assets.training import encoder
    from pipelines.eval_resources import MlflowTracking
    from pipelines.resources import OutputPaths, ShamisaSettings

    settings = ShamisaSettings(profile="cpu-small", overrides=TINY, pristine=str(pristine_dir), world_size=2)
    cfg = settings.config()
    paths = OutputPaths(root=str(tmp_path / "out"))
    build_corpus([i.path for i in scan_folder(pristine_dir, 32).images], cfg, paths.corpus_dir("cpu-small"))
    resources = {
        "settings": settings, "paths": paths,
        "mlflow_tracking": MlflowTracking(mlflow_dir=str(tmp_path / "mlflow")),
        "pipes_subprocess_client": PipesSubprocessClient(),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize([corpus_manifest.to_source_asset(), encoder], resources=resources,
                             instance=instance, selection=[encoder])
        assert result.success
        logs = [e.message for e in instance.all_logs(result.run_id) if e.user_message]
    # the child's log lines came back through the Pipes channel
    assert any("step 2: loss" in m for m in logs), logs[-20:]
    run_dir = Path(result.asset_materializations_for_node("encoder")[-1].metadata["encoder"].value).parent
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2
    rows = [line for line in (run_dir / "train_log.jsonl").read_text().splitlines() if line]
    assert len(rows) == 2
