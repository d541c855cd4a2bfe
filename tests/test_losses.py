"""Loss terms vs explicit numpy hand computations (METHOD.md §4.2-4.4, §3.4.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shamisa_core.graphs import GraphConfig
from shamisa_core.losses import (
    LossConfig,
    batch_halves,
    covariance_term,
    edge_reward,
    invariance_term,
    pair_term,
    prototype_alignment,
    total_loss,
    var_cov_terms,
    variance_term,
)
from shamisa_core.models import BranchAggregator, build_prototype_head
from shamisa_core.objective import apply_ablation, compute_objective

Z43 = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-0.2, 0.3, 0.1], [0.9, 2.2, -1.3]])


def np_variance(z: np.ndarray, eps: float = 1e-4) -> float:
    n, d = z.shape
    total = 0.0
    for j in range(d):
        col = z[:, j]
        mean = sum(col) / n
        var = sum((x - mean) ** 2 for x in col) / (n - 1)
        total += max(0.0, 1.0 - math.sqrt(var + eps)) / 2
    return total / d


def np_covariance(z: np.ndarray) -> float:
    n, d = z.shape
    mean = z.sum(0) / n
    total = 0.0
    for a in range(d):
        for b in range(d):
            if a != b:
                cov = sum((z[i, a] - mean[a]) * (z[i, b] - mean[b]) for i in range(n)) / (n - 1)
                total += cov**2
    return total / d


def test_variance_term_by_hand():
    z = torch.tensor(Z43)
    assert variance_term(z).item() == pytest.approx(np_variance(Z43), rel=1e-12)
    small = Z43 * 0.1  # all stds below 1 -> hinge active in every dimension
    assert variance_term(torch.tensor(small)).item() == pytest.approx(np_variance(small), rel=1e-12)
    big = Z43 * 10  # all stds above 1 -> zero
    assert variance_term(torch.tensor(big)).item() == 0.0


def test_covariance_term_by_hand():
    assert covariance_term(torch.tensor(Z43)).item() == pytest.approx(np_covariance(Z43), rel=1e-12)


def test_batch_halves_follow_method_4_2():
    z = torch.arange(2 + 6, dtype=torch.float64).unsqueeze(1).repeat(1, 3)
    z1, z2 = batch_halves(z, n_ref=2)
    assert z1[:, 0].tolist() == [0, 2, 3, 4]  # first ref row + first three dist rows
    assert z2[:, 0].tolist() == [1, 5, 6, 7]
    terms = var_cov_terms(torch.tensor(np.vstack([Z43, Z43[::-1] * 0.3])), 4, LossConfig())
    a, b = np.vstack([Z43[:2], (Z43[::-1] * 0.3)[:2]]), np.vstack([Z43[2:], (Z43[::-1] * 0.3)[2:]])
    assert terms["L_var_half1"].item() == pytest.approx(np_variance(a), rel=1e-12)
    assert terms["L_var_half2"].item() == pytest.approx(np_variance(b), rel=1e-12)
    assert terms["L_cov"].item() == pytest.approx(np_covariance(a) + np_covariance(b), rel=1e-12)


def test_pair_term_and_reward_by_hand():
    index = torch.tensor([[0, 1, 0], [1, 3, 2]])
    w = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    expect = 0.0
    for (i, j), wij in zip(index.T.tolist(), w.tolist()):
        expect += wij * sum((Z43[i, k] - Z43[j, k]) ** 2 for k in range(3))
    z = torch.tensor(Z43)
    assert pair_term(z, index, w).item() == pytest.approx(expect / (4 * 3), rel=1e-12)
    unweighted = sum(sum((Z43[i, k] - Z43[j, k]) ** 2 for k in range(3)) for i, j in index.T.tolist())
    assert pair_term(z, index, w, soft=False).item() == pytest.approx(unweighted / 12, rel=1e-12)
    cos = sum(
        wij * (1 - Z43[i] @ Z43[j] / (np.linalg.norm(Z43[i]) * np.linalg.norm(Z43[j])))
        for (i, j), wij in zip(index.T.tolist(), w.tolist())
    )
    assert pair_term(z, index, w, metric="cos").item() == pytest.approx(cos / 4, rel=1e-12)
    assert edge_reward(w, 0.1).item() == pytest.approx(-0.1 * (0.25 + 4 + 2.25), rel=1e-12)


def test_prototype_alignment_by_hand():
    rng = np.random.default_rng(0)
    q = rng.random((3, 4))
    q /= q.sum(1, keepdims=True)
    logits = rng.normal(size=(3, 4))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    pairs = np.array([[0, 2], [2, 0]])  # ordered pairs (0,2) and (2,0)
    gamma = 0.49
    self_mean = sum(q[i, k] * logp[i, k] for i in range(3) for k in range(4)) / 12
    pair_mean = sum(q[i, k] * logp[j, k] for i, j in [(0, 2), (2, 0)] for k in range(4)) / 8
    out = prototype_alignment(torch.tensor(q), torch.tensor(logp), torch.tensor(pairs), gamma)
    assert out["proto_self_mean_q_logp"].item() == pytest.approx(self_mean, rel=1e-12)
    assert out["proto_pair_mean_q_logp"].item() == pytest.approx(pair_mean, rel=1e-12)
    assert out["proto_alignment"].item() == pytest.approx(-(gamma / 2) * (self_mean + pair_mean), rel=1e-12)
    empty = prototype_alignment(torch.tensor(q), torch.tensor(logp), torch.zeros(2, 0, dtype=torch.long), gamma)
    assert empty["proto_pair_mean_q_logp"].item() == 0.0


def test_invariance_and_total_combination():
    cfg = LossConfig()
    l_inv = invariance_term(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(-0.25))
    assert l_inv.item() == 2 * 1.25
    tot = total_loss(torch.tensor(0.3), l_inv, torch.tensor(0.7), cfg)
    assert tot.item() == pytest.approx(cfg.lambda_var * 0.3 + cfg.lambda_inv * 2.5 + cfg.lambda_cov * 0.7)


def test_loss_config_defaults_are_a0():
    c = LossConfig()
    assert (c.lambda_var, c.lambda_inv, c.lambda_cov) == (11.975680785304435, 88.36882206311276, 57.21249573027589)
    assert c.lambda_reg == 0.03419084992354765 and c.gamma == 0.49057801093072007
    assert c.soft and c.pair_metric == "euc"


# ------------------------------------------------------------------ through compute_objective

SHAPE = dict(B=2, R=2, C=2, L=3)


def make_inputs(seed=0, d_h=16, d_z=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = 2 * 4 + 2 * 4 * 2 * 3
    h = torch.nn.functional.normalize(torch.randn(n, d_h, generator=g, dtype=dtype), dim=1)
    z = torch.randn(n, d_z, generator=g, dtype=dtype)
    T = (torch.rand(2, 2, 3, 7, generator=g) * 4).float()
    meta = dict(indices=T, var_dist=torch.tensor([[0, 3], [2, 1]]), n_dist=torch.tensor([[1, 7], [3, 4]]), **SHAPE)
    return h, z, meta


def test_objective_terms_consistent():
    h, z, meta = make_inputs()
    head = build_prototype_head(16, 32)
    out = compute_objective(h, z, meta, head, None, GraphConfig(knn_k=5), LossConfig())
    t = out.terms
    g = out.graph
    assert t["pair"].item() == pytest.approx(pair_term(z, g.final.index, g.final.values).item(), rel=1e-6)
    assert t["edge_reward"].item() == pytest.approx(-LossConfig().lambda_reg * g.final.values.pow(2).sum().item(), rel=1e-6)
    assert t["L_inv"].item() == pytest.approx(2 * (t["pair"] + t["proto_alignment"] + t["edge_reward"]).item(), rel=1e-6)
    assert out.total is t["total"]
    assert out.diagnostics["edges/final"] == g.final.n_edges
    assert out.diagnostics["pi/knn"] == pytest.approx(1 / 6)
    assert isinstance(out.diagnostics["weight/transport"], float)


def test_objective_switches():
    h, z, meta = make_inputs(1)
    head = build_prototype_head(16, 32)
    base_g, base_l = GraphConfig(knn_k=5), LossConfig()
    e1 = compute_objective(h, z, meta, head, None, *apply_ablation(base_g, base_l, "E1"))
    assert e1.terms["proto_alignment"].item() == 0.0
    b1 = compute_objective(h, z, meta, None, None, *apply_ablation(base_g, base_l, "B1"))
    assert b1.terms["proto_alignment"].item() == 0.0 and b1.graph.transport is None
    a2 = compute_objective(h, z, meta, head, None, *apply_ablation(base_g, base_l, "A2"))
    assert a2.terms["edge_reward"].item() == 0.0
    a1 = compute_objective(h, z, meta, head, None, *apply_ablation(base_g, base_l, "A1"))
    g = a1.graph
    unweighted = pair_term(z, g.final.index, g.final.values, soft=False)
    assert a1.terms["pair"].item() == pytest.approx(unweighted.item(), rel=1e-6)
    skip = compute_objective(h, z, meta, head, None, base_g, LossConfig(lambda_inv=0.0))
    assert skip.graph is None and skip.terms["L_inv"].item() == 0.0


def test_objective_gradients_and_learned_weighting():
    h, z, meta = make_inputs(2)
    h.requires_grad_()
    z.requires_grad_()
    head = build_prototype_head(16, 32)
    agg = BranchAggregator(6)
    out = compute_objective(h, z, meta, head, agg, GraphConfig(knn_k=5, weighting="learned"), LossConfig())
    out.total.backward()
    assert h.grad.abs().sum() > 0 and z.grad.abs().sum() > 0
    assert head.parametrizations.weight.original1.grad.abs().sum() > 0
    assert agg.net[-1].weight.grad is not None and agg.net[-1].weight.grad.abs().sum() > 0
    agg.zero_grad()
    out = compute_objective(h, z, meta, head, agg, GraphConfig(knn_k=5, weighting="mlp_frozen"), LossConfig())
    out.total.backward()
    assert agg.net[-1].weight.grad is None or agg.net[-1].weight.grad.abs().sum() == 0


def test_objective_runs_in_fp32_under_bf16_autocast():
    h, z, meta = make_inputs(3)
    head = build_prototype_head(16, 32)
    ref = compute_objective(h, z, meta, head, None, GraphConfig(knn_k=5), LossConfig())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = compute_objective(h.bfloat16(), z.bfloat16(), meta, head, None, GraphConfig(knn_k=5), LossConfig())
    assert out.total.dtype == torch.float32
    assert out.graph.final.values.dtype == torch.float32
    assert torch.isfinite(out.total)
    assert out.terms["L_var"].item() == pytest.approx(ref.terms["L_var"].item(), rel=0.05, abs=1e-3)
