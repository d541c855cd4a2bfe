"""Training loop: learning, exact resume, errors, DataLoader workers, DDP, CLI, encoder export."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from synthetic_images import natural_image
from shamisa_core.config import GroupConfig, ShamisaConfig, load_profile, with_overrides
from shamisa_core.corpus.build import build_corpus
from shamisa_core.pristine import scan_folder
from shamisa_core.training import NonFiniteLossError, TrainConfig, effective_rank, load_encoder, train
from shamisa_core.training import cli_train, loop
from shamisa_core.training.checkpoint import load_checkpoint
from shamisa_core.training.loop import build_optimizer, build_scheduler, steps_per_epoch

TINY_GROUP = {"group.patch_size": 48, "group.n_refs": 2, "group.n_comps": 2, "group.n_levels": 2}


def tiny_setup(**train: Any) -> ShamisaConfig:
    """cpu-resnet18 (random ResNet-18, B7, projector on f) with the tiny corpus's group shape and
    ``train`` overrides."""
    cfg = load_profile("cpu-resnet18", TINY_GROUP)
    tc = dataclasses.replace(cfg.train, **{"log_every": 1, "checkpoint_every": 1000, "steps": None, **train})
    return dataclasses.replace(cfg, train=tc)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """4 shards x 2 groups of 48-px crops (R=2, C=2, L=2): 4 steps per epoch at B=2."""
    root = tmp_path_factory.mktemp("train_corpus")
    src = root / "pristine"
    src.mkdir()
    for i in range(4):
        Image.fromarray(natural_image(i, 120 + 10 * i, 160)).save(src / f"{i}.png")
    cfg = load_profile(
        "cpu-small",
        {**TINY_GROUP, "corpus.n_shards": 4, "corpus.groups_per_shard": 2, "corpus.min_side": 32},
    )
    build_corpus([i.path for i in scan_folder(src, 32).images], cfg, root / "corpus")
    return root / "corpus"


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------ pure helpers
def test_effective_rank_extremes():
    g = torch.Generator().manual_seed(0)
    line = torch.randn(64, 1, generator=g) @ torch.randn(1, 32, generator=g)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g, dtype=torch.float64))
    assert effective_rank(q.float(), center=False) == pytest.approx(32.0, rel=1e-3)


def test_schedule_is_cosine_with_warm_restarts():
    tc = TrainConfig()
    opt = build_optimizer(torch.nn.Linear(2, 2), tc)
    sched = build_scheduler(opt, 4, tc)
    lrs = []
    for g in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(g)
    cos = lambda t, T: tc.eta_min + (tc.lr - tc.eta_min) * (1 + math.cos(math.pi * t / T)) / 2
    # iteration k uses the schedule at k-1 (reference: step(epoch + i/steps) after iteration i)
    expected = [tc.lr] + [cos(g, 4) for g in range(4)] + [cos(g - 4, 8) for g in range(4, 11)]
    assert lrs == pytest.approx(expected[:12])


def test_steps_per_epoch():
    assert steps_per_epoch([2, 2, 2, 2], batch_size=2) == 4  # floor(8 / 2)
    assert steps_per_epoch([3, 3, 3], batch_size=2) == 4  # floor(9 / 2)
    assert steps_per_epoch([2, 2, 2, 2], batch_size=2, world_size=2) == 2
    assert steps_per_epoch([2, 2, 2], batch_size=1, world_size=2) == 2  # the 1-shard rank bounds it
    assert steps_per_epoch([5, 1, 5, 5], batch_size=1, world_size=2) == 6  # worst case: {1, 5}


def test_train_config_validation():
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    cfg = with_overrides(load_profile("paper"), ["train.steps=7", "train.amp=off"])
    assert cfg.train.steps == 7 and cfg.train.amp == "off"


# ------------------------------------------------------------------------------ the loop
def test_loss_goes_down(corpus, tmp_path):
    cfg = tiny_setup(steps=50, amp="off")
    result = train(cfg, corpus, tmp_path / "run")
    losses = [r["loss"] for r in _log(tmp_path / "run" / "train_log.jsonl")]
    assert len(losses) == 50 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    rec = _log(tmp_path / "run" / "train_log.jsonl")[-1]
    for key in ("lr", "epoch", "loss/L_var", "loss/L_cov", "loss/L_inv", "loss/pair", "edges/knn",
                "weight/knn", "pi/knn", "h/std_mean", "h/std_min", "h/erank", "z/erank", "crops_per_s", "wall_s"):
        assert key in rec, key
    assert result.steps == 50 and (tmp_path / "run" / "encoder.pt").exists()


def test_resume_is_bit_identical(corpus, tmp_path):
    n = 3  # 4 steps per epoch: the resumed half starts mid-epoch and crosses an epoch boundary
    straight = train(tiny_setup(steps=2 * n), corpus, tmp_path / "a")
    first = train(tiny_setup(steps=n, checkpoint_every=n), corpus, tmp_path / "b")
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (n, 0, n)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "config", "format"} <= set(ckpt)
    assert not list((tmp_path / "b").glob(".*.tmp"))  # atomic writes leave no temporary files
    resumed = train(tiny_setup(steps=2 * n), corpus, tmp_path / "b", resume=True)
    assert first.steps == n and resumed.steps == 2 * n
    a, b = _weights(straight.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in _log(tmp_path / "b" / "train_log.jsonl")] == list(range(1, 2 * n + 1))
    assert [r["loss"] for r in _log(tmp_path / "b" / "train_log.jsonl")] == [
        r["loss"] for r in _log(tmp_path / "a" / "train_log.jsonl")
    ]


def test_head_warmup_holds_the_backbone_and_resumes_exactly(corpus, tmp_path):
    """``head_warmup_steps=2``: after 2 steps the backbone is the initial one while the
    projector moved; step 3 moves the backbone; a run resumed at step 2 ends bit-identical."""
    from shamisa_core.models import build_model

    init = tiny_setup()
    loop.seed_everything(init.train.seed)  # the loop's seeded initial weights
    w0 = _weights(build_model(init.model))
    held = _weights(train(tiny_setup(steps=2, head_warmup_steps=2, checkpoint_every=2), corpus,
                          tmp_path / "w").model)
    back = [k for k in w0 if k.startswith("backbone.") and w0[k].is_floating_point()]
    head = [k for k in w0 if k.startswith("projector.")]
    assert back and head
    assert all(torch.equal(held[k], w0[k]) for k in back if "running" not in k and "num_batches" not in k)
    assert not all(torch.equal(held[k], w0[k]) for k in head)
    straight = _weights(train(tiny_setup(steps=4, head_warmup_steps=2), corpus, tmp_path / "s").model)
    assert not all(torch.equal(straight[k], w0[k]) for k in back)
    resumed = _weights(train(tiny_setup(steps=4, head_warmup_steps=2, checkpoint_every=2), corpus,
                             tmp_path / "w", resume=True).model)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_head_warmup_skipping_the_backbone_backward_changes_no_update(corpus, tmp_path, monkeypatch):
    """One process skips the held backbone's backward (requires_grad off); the DDP path keeps
    it and drops the gradients: both give the same weights."""
    fast = _weights(train(tiny_setup(steps=3, head_warmup_steps=2), corpus, tmp_path / "f").model)
    real = loop.warmup_switch
    monkeypatch.setattr(loop, "warmup_switch", lambda model, distributed: real(model, True))
    slow = _weights(train(tiny_setup(steps=3, head_warmup_steps=2), corpus, tmp_path / "s").model)
    assert all(torch.equal(fast[k], slow[k]) for k in fast)


def test_backbone_lr_scale_gives_the_backbone_its_own_lr_group():
    from shamisa_core.models import build_model

    cfg = tiny_setup(lr=0.01, backbone_lr_scale=0.1)
    model = build_model(cfg.model)
    opt = build_optimizer(model, cfg.train)
    heads, back = opt.param_groups
    assert heads["lr"] == 0.01 and back["lr"] == pytest.approx(0.001)
    assert {id(p) for p in back["params"]} == {id(p) for p in model.backbone.parameters()}
    assert len(heads["params"]) + len(back["params"]) == len(list(model.parameters()))
    sched = build_scheduler(opt, 10, cfg.train)
    sched.step(4)
    assert opt.param_groups[1]["lr"] == pytest.approx(opt.param_groups[0]["lr"] * 0.1, rel=1e-3)
    assert len(build_optimizer(model, tiny_setup().train).param_groups) == 1  # the paper: one group


def test_resume_rejects_changed_config(corpus, tmp_path):
    train(tiny_setup(steps=1, amp="off"), corpus, tmp_path / "r")
    with pytest.raises(ValueError, match="train.lr"):
        train(tiny_setup(steps=2, amp="off", lr=0.1), corpus, tmp_path / "r", resume=True)


def test_non_finite_loss_names_the_step(corpus, tmp_path, monkeypatch):
    real = loop.compute_objective
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            return dataclasses.replace(out, total=out.total * float("nan"))
        return out

    monkeypatch.setattr(loop, "compute_objective", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3") as info:
        train(tiny_setup(steps=5, amp="off"), corpus, tmp_path / "nan")
    assert info.value.step == 3


def test_missing_or_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tiny_setup(steps=1), tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        train(tiny_setup(steps=1), tmp_path / "empty", tmp_path / "out")


def test_corpus_of_another_shape_is_rejected(corpus, tmp_path):
    cfg = dataclasses.replace(tiny_setup(steps=1), group=GroupConfig(patch_size=64, n_refs=2, n_comps=2, n_levels=2))
    with pytest.raises(ValueError, match="built with group"):
        train(cfg, corpus, tmp_path / "out")


def test_dataloader_workers(corpus, tmp_path):
    cfg = tiny_setup(steps=5, num_workers=2, amp="off")  # 5 steps: two epochs, two worker spawns
    a = train(cfg, corpus, tmp_path / "w1")
    b = train(cfg, corpus, tmp_path / "w2")
    wa, wb = _weights(a.model), _weights(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ------------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, corpus: str, out: str, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train(tiny_setup(steps=3, amp="off", device="cpu"), corpus, out)
    torch.save(_weights(res.model), Path(result_dir) / f"rank{rank}.pt")


def test_ddp_two_cpu_ranks_end_equal(corpus, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(corpus), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    log = _log(tmp_path / "ddp" / "train_log.jsonl")  # rank 0 wrote it, 2 steps per epoch per rank
    assert [r["step"] for r in log] == [1, 2, 3] and log[-1]["epoch"] == 1.5


# ------------------------------------------------------------------------------ CLI + encoder
def test_cli_train_writes_outputs_and_encoder_loads(corpus, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    cli_train.add_train_parser(parser.add_subparsers(dest="cmd"))
    sets = [f"{k}={v}" for k, v in TINY_GROUP.items()] + ["model.arch=resnet18", "model.init=random"]
    argv = ["train", "--corpus", str(corpus), "--out", str(tmp_path / "cli"), "--steps", "2"]
    args = parser.parse_args(argv + [x for s in sets for x in ("--set", s)])
    assert cli_train.run_train(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2
    for name in ("checkpoint.pt", "encoder.pt", "train_log.jsonl"):
        assert (tmp_path / "cli" / name).exists()
    encoder, meta = load_encoder(tmp_path / "cli" / "encoder.pt")
    assert meta["arch"] == "resnet18" and meta["patch_size"] == 48 and meta["feature_dim"] == 512
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    h = encoder(torch.randn(3, 3, 48, 48))
    assert h.shape == (3, 512) and torch.allclose(h.norm(dim=1), torch.ones(3), atol=1e-5)
