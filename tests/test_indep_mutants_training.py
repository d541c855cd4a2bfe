"""Checks of `shamisa_core.training` written against mutation-testing survivors. Expected
values come from METHOD.md §6 (numbers written here), a brute-force enumeration, the cosine
formula, or the files a run writes (read with json / torch.load)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from shamisa_core.config import load_profile
from shamisa_core.training import loop
from shamisa_core.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_encoder,
    restore_rng_state,
    save_checkpoint,
)
from shamisa_core.training.config import TrainConfig
from shamisa_core.training.distributed import (
    DistInfo,
    barrier,
    broadcast_buffers,
    dist_info_from_env,
    mean_across_ranks,
    wrap_ddp,
)


def test_train_config_defaults_are_the_paper_a0():
    tc = TrainConfig()  # METHOD.md §6.1
    assert (tc.batch_size, tc.steps, tc.epochs, tc.seed) == (2, None, 1, 27)
    assert (tc.lr, tc.momentum, tc.weight_decay) == (1.5e-3, 0.9, 1e-4)
    assert (tc.t0_steps, tc.t_mult, tc.eta_min) == (None, 2, 1e-6)
    assert (tc.amp, tc.device, tc.num_workers, tc.deterministic) == ("auto", "auto", 0, True)
    assert (tc.checkpoint_every, tc.log_every, tc.shuffle_buffer) == (500, 10, 16)


@pytest.mark.parametrize("field,value,match", [
    ("amp", "fp8", "train.amp"), ("device", "tpu", "train.device"),
    ("batch_size", 0, "train.batch_size"), ("epochs", 0, "train.epochs"),
    ("checkpoint_every", 0, "train.checkpoint_every"), ("log_every", 0, "train.log_every"),
    ("shuffle_buffer", 0, "train.shuffle_buffer"), ("t_mult", 0, "train.t_mult"),
    ("steps", 0, "train.steps"), ("t0_steps", 0, "train.t0_steps"), ("num_workers", -1, "train.num_workers"),
    ("lr", 0.0, "train.lr"), ("eta_min", -1e-9, "eta_min"), ("momentum", -0.1, "momentum"),
    ("weight_decay", -1e-9, "weight_decay"),
])
def test_train_config_rejects(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_train_config_accepts_the_boundaries():
    tc = TrainConfig(batch_size=1, epochs=1, checkpoint_every=1, log_every=1, shuffle_buffer=1, t_mult=1,
                     steps=1, t0_steps=1, num_workers=0, eta_min=0.0, momentum=0.0, weight_decay=0.0)
    assert tc.steps == 1


def test_dist_info_from_env(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    d = dist_info_from_env()
    assert (d.rank, d.world_size, d.local_rank, d.is_main, d.enabled) == (0, 1, 0, True, False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = dist_info_from_env()
    assert (d.rank, d.world_size, d.local_rank, d.is_main, d.enabled) == (3, 4, 1, False, True)
    assert DistInfo(rank=0, world_size=2).is_main and DistInfo(world_size=2).enabled


def test_single_process_helpers_are_identities():
    info = DistInfo()
    m = torch.nn.BatchNorm1d(3)
    assert wrap_ddp(m, info, torch.device("cpu")) is m
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(mean_across_ranks(x, info), x)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    broadcast_buffers(m, info)
    barrier(info)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_device_and_amp_resolution():
    assert loop.resolve_device("cpu", DistInfo()) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert loop.resolve_device("auto", DistInfo()) == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA"):
            loop.resolve_device("cuda", DistInfo())
        native = loop.cpu_has_native_bf16()
        assert loop.amp_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)
    assert loop.amp_dtype("auto", torch.device("cuda")) == torch.float16
    assert loop.amp_dtype("off", torch.device("cpu")) is None
    assert loop.amp_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert loop.amp_dtype("fp16", torch.device("cpu")) == torch.float16


def test_seed_everything_seeds_all_three_generators():
    def draw():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    loop.seed_everything(5)
    a = draw()
    loop.seed_everything(5)
    assert draw() == a
    loop.seed_everything(6)
    b = draw()
    assert all(x != y for x, y in zip(a, b))
    random.seed(5)
    assert [random.random() for _ in range(3)] == a[2]
    np.random.seed(5)
    assert np.random.rand(3).tolist() == a[1]


def test_rng_state_roundtrip_through_a_checkpoint(tmp_path):
    loop.seed_everything(11)
    state = capture_rng_state()
    want = (torch.rand(2).tolist(), np.random.rand(2).tolist(), np.random.randn(1).tolist(), random.random())
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "optimizer": {}, "scheduler": {}, "step": 1, "epoch": 0,
                                        "batch_in_epoch": 1, "rng": state, "config": {}})
    loop.seed_everything(99)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (torch.rand(2).tolist(), np.random.rand(2).tolist(), np.random.randn(1).tolist(), random.random())
    assert got == want


def test_checkpoint_errors(tmp_path):
    with pytest.raises(KeyError, match="rng"):
        save_checkpoint(tmp_path / "c.pt", {"model": {}, "optimizer": {}, "scheduler": {}, "step": 1, "epoch": 0,
                                            "batch_in_epoch": 1, "config": {}})
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"format": "other"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="shamisa-checkpoint/1"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="no encoder file"):
        load_encoder(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="shamisa-encoder/1"):
        load_encoder(tmp_path / "foreign.pt")


def _brute_steps(sizes: list[int], batch: int, world: int, workers: int) -> int:
    """min over every shard permutation and rank of the groups that rank receives, // batch;
    shards are dealt round-robin to world * workers slots, rank r owns its workers' slots."""
    w = max(1, workers)
    slots = world * w
    best = math.inf
    for perm in itertools.permutations(sizes):
        for r in range(world):
            got = sum(perm[i] for i in range(len(perm)) if i % slots in range(r * w, (r + 1) * w))
            best = min(best, got)
    return int(best) // batch


@pytest.mark.parametrize("sizes,batch,world,workers", [
    ([2, 2, 2, 2], 2, 1, 0), ([3, 1, 2, 5], 2, 2, 0), ([3, 1, 2, 5, 4], 1, 2, 0),
    ([3, 1, 2, 5, 4], 2, 2, 2), ([7, 1, 1], 3, 1, 2), ([4, 4, 1, 9, 2, 6], 2, 3, 1), ([5], 2, 1, 0),
])
def test_steps_per_epoch_matches_brute_force(sizes, batch, world, workers):
    assert loop.steps_per_epoch(sizes, batch, world, workers) == _brute_steps(sizes, batch, world, workers)


def test_optimizer_and_schedule_follow_the_config():
    model = torch.nn.Linear(3, 2)
    tc = TrainConfig(lr=0.1, momentum=0.5, weight_decay=0.01, t_mult=2, eta_min=0.001)
    opt = loop.build_optimizer(model, tc)
    g = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.1, 0.5, 0.01)
    assert sum(p.numel() for p in g["params"]) == sum(p.numel() for p in model.parameters())
    sched = loop.build_scheduler(opt, 3, tc)
    lrs = []
    for step in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(step)
    # cosine with warm restarts: periods 3, 6 (T_mult 2) starting at steps 0, 3; the loop calls
    # step(g) after step g, so step g (0-based) runs at the value for g - 1 (the first at lr)
    want = []
    for g in range(9):
        s = max(g - 1, 0)
        t_cur, t_i = (s, 3) if s < 3 else (s - 3, 6)
        want.append(0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
    np.testing.assert_allclose(lrs, want, rtol=1e-9)


def test_check_resume_compatible_lists_every_breaking_difference():
    cfg = load_profile("cpu-small")
    saved = cfg.to_dict()
    now = json.loads(json.dumps(saved))
    for k, v in (("steps", 7), ("epochs", 3), ("checkpoint_every", 2), ("log_every", 2), ("device", "cpu")):
        now["train"][k] = v
    loop.check_resume_compatible(saved, now)  # resumable changes
    now["train"]["lr"] = 0.5
    now["group"]["n_levels"] = 9
    now["model"]["arch"] = "resnet50"
    now["loss"][next(iter(now["loss"]))] = "changed"
    now["graph"][next(iter(now["graph"]))] = "changed"
    with pytest.raises(ValueError) as e:
        loop.check_resume_compatible(saved, now)
    msg = str(e.value)
    for key in ("train.lr", "group.n_levels", "model.arch", f"loss.{next(iter(now['loss']))}",
                f"graph.{next(iter(now['graph']))}"):
        assert key in msg, key
    only_corpus = json.loads(json.dumps(saved))
    only_corpus["corpus"]["seed"] = 1234  # the corpus is checked by its hash, not here
    loop.check_resume_compatible(saved, only_corpus)


def test_truncate_log(tmp_path):
    p = tmp_path / "log.jsonl"
    loop._truncate_log(p, 3)
    assert not p.exists()
    p.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)) + "\n")
    loop._truncate_log(p, 3)
    assert [json.loads(x)["step"] for x in p.read_text().splitlines()] == [1, 2, 3]


def test_effective_rank_of_known_spectra():
    s = np.array([3.0, 2.0, 1.0, 0.5])
    x = torch.diag(torch.tensor(s, dtype=torch.float32))
    p = s / s.sum()
    assert loop.effective_rank(x, center=False) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-5)
    assert loop.effective_rank(torch.zeros(4, 3)) == 0.0
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # identical rows: centred = 0
    assert loop.effective_rank(x, center=True) == 0.0 and loop.effective_rank(x, center=False) == pytest.approx(1.0)


def test_representation_stats_and_terms():
    g = torch.Generator().manual_seed(0)
    h, z = torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)
    st = loop.representation_stats(h, z)
    assert set(st) == {f"{n}/{k}" for n in "hz" for k in ("std_mean", "std_min", "erank", "erank_raw")}
    hn = h.numpy().astype(np.float64)
    assert st["h/std_mean"] == pytest.approx(hn.std(axis=0, ddof=1).mean(), rel=1e-5)
    assert st["z/std_min"] == pytest.approx(z.numpy().std(axis=0, ddof=1).min(), rel=1e-5)
    assert st["h/erank_raw"] == pytest.approx(loop.effective_rank(h, center=False))
    terms = {"a": torch.tensor(1.5), "b": torch.tensor([2.0])}
    assert loop.term_floats(terms) == {"loss/a": 1.5, "loss/b": 2.0}
    assert loop.term_floats(terms, prefix="") == {"a": 1.5, "b": 2.0}


def test_group_meta_shapes():
    B, V, C, L = 2, 4, 3, 2
    batch = {"dist": torch.zeros(B, V, C, L, 3, 8, 8), "indices": torch.zeros(B, C, L, 7),
             "var_dist": torch.zeros(B, C, dtype=torch.long), "n_dist": torch.ones(B, C, dtype=torch.long)}
    meta = loop.group_meta(batch, torch.device("cpu"))
    assert (meta["B"], meta["R"], meta["C"], meta["L"]) == (2, 2, 3, 2)
    assert set(meta) == {"indices", "var_dist", "n_dist", "B", "R", "C", "L"}


def test_non_finite_error_names_the_step_and_terms():
    e = loop.NonFiniteLossError(7, 1, float("nan"), {"inv": float("inf"), "var": 1.0})
    assert e.step == 7 and "step 7" in str(e) and "inv=inf" in str(e) and "var=" not in str(e)
    assert "none" in str(loop.NonFiniteLossError(2, 0, float("nan"), {"var": 1.0}))


# ------------------------------------------------------------------ one short real run
@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    from PIL import Image

    from synthetic_images import natural_image
    from shamisa_core.corpus.build import build_corpus
    from shamisa_core.pristine import scan_folder

    root = tmp_path_factory.mktemp("mut_train")
    (root / "p").mkdir()
    for i in range(3):
        Image.fromarray(natural_image(i, 120, 150)).save(root / "p" / f"{i}.png")
    group = {"group.patch_size": 48, "group.n_refs": 2, "group.n_comps": 2, "group.n_levels": 2}
    build_corpus([i.path for i in scan_folder(root / "p", 32).images],
                 load_profile("cpu-small", {**group, "corpus.n_shards": 3, "corpus.groups_per_shard": 2,
                                            "corpus.min_side": 32}), root / "corpus")
    cfg = load_profile("cpu-resnet18", group)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, steps=4, log_every=2, checkpoint_every=3, amp="off", device="cpu", lr=1.5e-3, t0_steps=None))
    logs: list[dict] = []
    res = loop.train(cfg, root / "corpus", root / "run", on_log=logs.append)
    return cfg, root, res, logs


def test_short_run_log_checkpoint_and_encoder(short_run):
    cfg, root, res, logs = short_run
    run = root / "run"
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert rows == logs and [r["step"] for r in rows] == [2, 4]  # every log_every and the last step
    spe = 3  # 6 groups, batch 2, one rank
    assert [r["epoch"] for r in rows] == [2 / spe, 4 / spe]
    tc = cfg.train
    for r in rows:  # step k (1-based) runs at the cosine value for k - 2 (see above), T_0 = one epoch
        s = max(r["step"] - 2, 0)
        t_cur, t_i = (s, spe) if s < spe else (s - spe, 2 * spe)
        assert r["lr"] == pytest.approx(tc.eta_min + (tc.lr - tc.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
        assert math.isfinite(r["loss"]) and r["crops_per_s"] > 0 and r["wall_s"] > 0
        assert {"loss/total", "h/erank", "z/std_mean"} <= set(r) or {"h/erank", "z/std_mean"} <= set(r)
    assert rows[-1]["loss"] == pytest.approx(res.final_loss)
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (4, 1, 1)
    manifest = json.loads((root / "corpus" / "manifest.json").read_text())
    assert ckpt["corpus_hash"] == manifest["config_hash"] and ckpt["world_size"] == 1
    assert ckpt["config"] == cfg.to_dict()
    enc, meta = load_encoder(run / "encoder.pt", options=None)  # exact fp32 path: weights as saved
    assert meta["format"] == "shamisa-encoder/1" and meta["patch_size"] == 48 and meta["step"] == 4
    assert meta["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert meta["corpus_hash"] == manifest["config_hash"] and meta["arch"] == "resnet18"
    x = torch.rand(2, 3, 48, 48)
    h = enc(x)
    assert torch.allclose(h.norm(dim=1), torch.ones(2), atol=1e-5) and not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    sd = res.model.backbone_state_dict()
    assert all(torch.equal(v.cpu(), enc.backbone.state_dict()[k]) for k, v in sd.items())
    assert (res.steps, res.checkpoint, res.encoder, res.log) == (4, run / "checkpoint.pt", run / "encoder.pt",
                                                                 run / "train_log.jsonl")
    assert res.crops_per_s > 0 and res.wall_s > 0


def test_amp_off_runs_without_a_grad_scaler(short_run):
    _, root, _, _ = short_run
    assert load_checkpoint(root / "run" / "checkpoint.pt")["scaler"] == {}  # a disabled GradScaler


def test_non_finite_terms_are_named_without_a_prefix(short_run, tmp_path, monkeypatch):
    cfg, root, _, _ = short_run
    real, seen = loop.compute_objective, {}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        terms = dict(out.terms)
        seen["name"] = name = next(iter(terms))
        terms[name] = terms[name] * float("inf")
        return dataclasses.replace(out, total=out.total * float("nan"), terms=terms)

    monkeypatch.setattr(loop, "compute_objective", poisoned)
    with pytest.raises(loop.NonFiniteLossError) as info:
        loop.train(cfg, root / "corpus", tmp_path / "nan")
    assert f"non-finite terms: {seen['name']}=" in str(info.value) and "loss/" not in str(info.value)
