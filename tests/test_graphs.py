"""Unit tests of the relation graphs (METHOD.md §3, DECISIONS.md 7-8)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from shamisa_core.graphs import (
    BRANCHES,
    BatchShape,
    Edges,
    GraphConfig,
    branch_weights,
    build_graph,
    coalesce,
    dist_dist_edges,
    dist_dist_pairs,
    dist_node_id,
    knn_affinity,
    knn_edges,
    node_table,
    ref_dist_edges,
    ref_node_id,
    ref_ref_edges,
    severity_strength,
    sinkhorn,
    structural_edges,
    structural_pairs,
    transport_graph,
    varying_slot_severity,
)
from shamisa_core.models import BranchAggregator, build_prototype_head
from shamisa_core.objective import ABLATIONS, apply_ablation
from shamisa_core.losses import LossConfig

A0 = BatchShape(B=2, R=3, C=4, L=5)
SMALL = BatchShape(B=1, R=2, C=1, L=2)


def random_meta(shape: BatchShape, seed: int = 0, slots: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Random severity indices (B, C, L, S) and varying slots (B, C)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, slots + 1, (shape.B, shape.C), generator=g)
    var = (torch.rand(shape.B, shape.C, generator=g) * n).floor().long()
    t = (torch.randn(shape.B, shape.C, shape.L, slots, generator=g) * 2.5).abs().clamp(max=4.0)
    used = torch.arange(slots).view(1, 1, 1, -1) < n.view(shape.B, shape.C, 1, 1)
    shared = t[:, :, :1].expand_as(t)
    is_var = torch.arange(slots).view(1, 1, 1, -1) == var.view(shape.B, shape.C, 1, 1)
    t = torch.where(is_var, t, shared)
    return torch.where(used, t, torch.full_like(t, -1.0)).float(), var


def dd_pairs_formula(s: BatchShape) -> int:
    """METHOD §3.3: ``B*((V*L)^2*C - V*C*L)`` ordered DD pairs."""
    return s.B * ((s.V * s.L) ** 2 * s.C - s.V * s.C * s.L)


# ------------------------------------------------------------------------------ indexing


def test_node_ids_match_method_formulas():
    s = A0
    assert s.n_nodes == 252 and s.n_ref == 12
    assert ref_node_id(1, 5, s) == 11
    assert dist_node_id(0, 0, 0, 0, s) == 12
    assert dist_node_id(1, 5, 3, 4, s) == 251
    assert dist_node_id(1, 2, 3, 1, s) == 12 + 1 * 120 + 2 * 20 + 3 * 5 + 1
    tab = node_table(s)
    ids = dist_node_id(tab["b"][12:], tab["v"][12:], tab["c"][12:], tab["l"][12:], s)
    assert torch.equal(ids, torch.arange(12, 252))
    assert torch.equal(ref_node_id(tab["b"][:12], tab["v"][:12], s), torch.arange(12))


def test_coalesce_sums_duplicates_and_sorts():
    idx = torch.tensor([[2, 0, 2, 1], [1, 3, 1, 0]])
    val = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    e = coalesce(Edges(idx, val, 4))
    assert e.index.tolist() == [[0, 1, 2], [3, 0, 1]]
    assert e.values.tolist() == [2.0, 4.0, 4.0]
    e.values.sum().backward()
    assert val.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------ metadata


def test_severity_curves():
    g = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    exp = severity_strength(g, "exponential")
    assert torch.allclose(exp, torch.tensor([1.000, 0.472, 0.223, 0.105, 0.050]), atol=1e-3)
    assert torch.allclose(exp, torch.exp(-3 * g / 4))
    orig = severity_strength(g, "original")
    assert math.isclose(orig[-1].item(), 0.5) and math.isclose(orig[0].item(), 1.0)


@pytest.mark.parametrize("shape", [A0, SMALL, BatchShape(B=3, R=1, C=2, L=3)])
def test_metadata_edge_counts(shape):
    T, var = random_meta(shape)
    t_var = varying_slot_severity(T, var)
    assert ref_ref_edges(shape).n_edges == shape.n_ref * (shape.n_ref - 1)
    assert ref_dist_edges(shape, t_var).n_edges == shape.B * shape.V * shape.C * shape.L
    n_dd = dd_pairs_formula(shape)
    assert dist_dist_pairs(shape, t_var).n_edges == n_dd
    assert dist_dist_edges(shape, t_var, topk=4096).n_edges == min(4096, n_dd)
    assert dist_dist_edges(shape, t_var, topk=None).n_edges == n_dd
    intent = shape.B * shape.C * shape.L * 2 * shape.R * (shape.R - 1)
    assert structural_edges(shape, "intent").n_edges == intent
    # parity: ordered pairs of distinct views with equal parity, per (b, c, l)
    par_per = sum(1 for v in range(shape.V) for w in range(shape.V) if v != w and v % 2 == w % 2)
    assert structural_edges(shape, "parity").n_edges == shape.B * shape.C * shape.L * par_per


def test_a0_counts_from_method_table():
    T, var = random_meta(A0)
    t_var = varying_slot_severity(T, var)
    assert ref_ref_edges(A0).n_edges == 132
    assert ref_dist_edges(A0, t_var).n_edges == 240
    assert dd_pairs_formula(A0) == 6960
    assert dist_dist_edges(A0, t_var, topk=4096).n_edges == 4096
    assert structural_edges(A0, "parity").n_edges == 480
    assert structural_edges(A0, "intent").n_edges == 2 * 4 * 5 * 2 * 3 * 2 == 480


def test_structural_rules_semantics():
    tab = node_table(A0)
    for rule in ("intent", "parity"):
        p = structural_pairs(A0, rule)
        i, j = p
        for k in ("b", "c", "l"):
            assert torch.equal(tab[k][i], tab[k][j])
        assert bool((tab["is_ref"][i] == 0).all()) and bool((i != j).all())
        vi, vj = tab["v"][i], tab["v"][j]
        if rule == "intent":  # same scale, different reference
            assert torch.equal(vi // A0.R, vj // A0.R)
            assert bool((vi % A0.R != vj % A0.R).all())
        else:
            assert torch.equal(vi % 2, vj % 2)
        key = i * A0.n_nodes + j
        assert bool((key[1:] > key[:-1]).all())  # sorted row-major, unique
    # with R=2 the parity rule links the same content across scales
    p = structural_pairs(SMALL, "parity")
    tab = node_table(SMALL)
    assert torch.equal(tab["v"][p[0]] % 2, tab["v"][p[1]] % 2)
    assert bool((tab["v"][p[0]] // 2 != tab["v"][p[1]] // 2).all())


def test_ref_dist_edges_link_own_distortions():
    T, var = random_meta(A0, seed=3)
    t_var = varying_slot_severity(T, var)
    e = ref_dist_edges(A0, t_var)
    tab = node_table(A0)
    i, j = e.index
    assert bool((tab["is_ref"][i] == 1).all()) and bool((tab["is_ref"][j] == 0).all())
    assert torch.equal(tab["b"][i], tab["b"][j]) and torch.equal(tab["v"][i], tab["v"][j])
    expect = torch.exp(-3 * t_var[tab["b"][j], tab["c"][j], tab["l"][j]] / 4)
    assert torch.allclose(e.values, expect, rtol=1e-6)
    assert bool((i < j).all())


def test_dist_dist_topk_keeps_largest_over_batch():
    T, var = random_meta(A0, seed=5)
    t_var = varying_slot_severity(T, var)
    allp = dist_dist_pairs(A0, t_var)
    kept = dist_dist_edges(A0, t_var, topk=4096)
    key_all = allp.index[0] * A0.n_nodes + allp.index[1]
    key_k = kept.index[0] * A0.n_nodes + kept.index[1]
    dropped = ~torch.isin(key_all, key_k)
    assert kept.values.min() >= allp.values[dropped].max()
    tab = node_table(A0)
    i, j = allp.index
    assert torch.equal(tab["b"][i], tab["b"][j]) and torch.equal(tab["c"][i], tab["c"][j])
    gap = (t_var[tab["b"][i], tab["c"][i], tab["l"][i]] - t_var[tab["b"][j], tab["c"][j], tab["l"][j]]).abs()
    assert torch.allclose(allp.values, torch.exp(-3 * gap / 4), rtol=1e-6)


# ------------------------------------------------------------------------------ features


def test_knn_edges_symmetric_soft_and_differentiable():
    torch.manual_seed(0)
    h = torch.nn.functional.normalize(torch.randn(40, 16, dtype=torch.float64), dim=1).requires_grad_()
    e = knn_edges(h, k=5)
    a = knn_affinity(h.detach())
    dense = e.to_dense().detach()
    assert torch.allclose(dense, dense.T)
    assert bool((torch.diagonal(dense) == 0).all())
    # K_ij = a_ij * ([j in kNN(i)] + [i in kNN(j)])
    top = torch.zeros(40, 40, dtype=torch.float64)
    top.scatter_(1, torch.topk(a.masked_fill(torch.eye(40, dtype=torch.bool), -1), 5, dim=1).indices, 1.0)
    assert torch.allclose(dense, a * (top + top.T))
    e.values.sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0 and torch.isfinite(h.grad).all()
    binary = knn_edges(h.detach(), k=5, soft=False)
    assert set(binary.values.tolist()) <= {1.0, 2.0}


def test_knn_no_nan_gradient_with_duplicate_rows():
    h = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    h = torch.cat([h, h[:3]]).requires_grad_()
    knn_edges(h, k=4).values.sum().backward()
    assert torch.isfinite(h.grad).all()


def test_sinkhorn_marginals():
    torch.manual_seed(1)
    s = torch.randn(50, 8, dtype=torch.float64)
    q = sinkhorn(s, eps=0.5, n_iters=200)
    assert torch.allclose(q.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(q.sum(0), torch.full((8,), 50 / 8, dtype=torch.float64), rtol=1e-3)
    assert not q.requires_grad


@pytest.mark.parametrize("sparse,expect", [("topk_global", 8 * 30), ("topk_each", 8 * 30)])
def test_transport_graph_sparsity_and_gradients(sparse, expect):
    torch.manual_seed(2)
    h = torch.nn.functional.normalize(torch.randn(30, 16), dim=1).requires_grad_()
    head = build_prototype_head(16, 32)
    res = transport_graph(h, head.weight, sparse=sparse)
    assert res.edges.n_edges == expect
    if sparse == "topk_each":
        assert torch.equal(torch.bincount(res.edges.index[0], minlength=30), torch.full((30,), 8))
    assert not res.q.requires_grad  # Sinkhorn codes carry no gradient
    assert res.scores.min().item() == pytest.approx(0.0) and res.scores.max().item() == pytest.approx(1.0)
    res.edges.values.sum().backward()
    assert h.grad.abs().sum() > 0
    assert head.parametrizations.weight.original1.grad.abs().sum() > 0


def test_transport_threshold_mode():
    torch.manual_seed(3)
    h = torch.nn.functional.normalize(torch.randn(20, 16), dim=1)
    res = transport_graph(h, build_prototype_head(16, 8).weight, sparse="threshold", threshold=0.5)
    assert bool((res.edges.values >= 0.5).all())
    assert res.edges.n_edges == int((res.scores >= 0.5).sum())


# ------------------------------------------------------------------------------ combine


def small_graph_inputs(shape: BatchShape = SMALL, d: int = 16, seed: int = 0):
    T, var = random_meta(shape, seed)
    g = torch.Generator().manual_seed(seed)
    h = torch.nn.functional.normalize(torch.randn(shape.n_nodes, d, generator=g), dim=1)
    return h, T, var


def test_uniform_weighting_and_merge():
    h, T, var = small_graph_inputs(BatchShape(B=2, R=2, C=2, L=3))
    shape = BatchShape(B=2, R=2, C=2, L=3)
    head = build_prototype_head(16, 32)
    cfg = GraphConfig(knn_k=5, dd_topk=200)
    res = build_graph(h, shape, T, var, head.weight, cfg)
    assert res.active == BRANCHES
    assert torch.allclose(res.pi, torch.full((6,), 1 / 6))
    dense = sum(res.scaled[b].to_dense() * res.pi[i] for i, b in enumerate(res.active))
    assert torch.allclose(res.merged.to_dense(), dense, atol=1e-6)
    assert bool((res.final.index[0] < res.final.index[1]).all())
    assert torch.allclose(res.final.to_dense(), torch.triu(dense, diagonal=1), atol=1e-6)
    for b in BRANCHES:
        assert torch.allclose(res.scaled[b].values, res.raw[b].values * cfg.coefficient(b))


def test_weighting_modes():
    stats = torch.tensor([10.0, 2.0, 20.0, 5.0, 3.0, 1.0])
    assert torch.allclose(branch_weights(stats, 3, "uniform"), torch.full((3,), 1 / 3))
    assert torch.equal(branch_weights(stats, 3, "none"), torch.ones(3))
    agg = BranchAggregator(3)
    pi = branch_weights(stats, 3, "learned", agg)
    assert pi.sum().item() == pytest.approx(1.0) and pi.requires_grad
    (pi * torch.arange(3.0)).sum().backward()
    assert agg.net[1].weight.grad.abs().sum() > 0
    frozen = branch_weights(stats, 3, "mlp_frozen", agg)
    assert not frozen.requires_grad and torch.allclose(frozen, pi.detach())
    with pytest.raises(ValueError, match="aggregator expects"):
        branch_weights(stats[:4], 2, "learned", agg)


def test_uniform_weighting_counts_only_active_branches():
    shape = BatchShape(B=2, R=2, C=2, L=3)
    h, T, var = small_graph_inputs(shape)
    cfg = GraphConfig(knn_k=5, coef_transport=0.0, coef_ref_ref=0.0)
    res = build_graph(h, shape, T, var, None, cfg)
    assert res.active == ("structural", "ref_dist", "dist_dist", "knn")
    assert torch.allclose(res.pi, torch.full((4,), 0.25))


def test_gradient_reaches_h_through_knn_and_transport_only():
    shape = BatchShape(B=2, R=2, C=2, L=3)
    h0, T, var = small_graph_inputs(shape)
    head = build_prototype_head(16, 32)
    for only in ("knn", "transport"):
        coefs = {f"coef_{b}": (1.0 if b == only else 0.0) for b in BRANCHES}
        h = h0.clone().requires_grad_()
        res = build_graph(h, shape, T, var, head.weight, GraphConfig(knn_k=5, **coefs))
        res.final.values.sum().backward()
        assert h.grad.abs().sum() > 0, only
    h = h0.clone().requires_grad_()
    meta_only = GraphConfig(coef_knn=0.0, coef_transport=0.0)
    res = build_graph(h, shape, T, var, None, meta_only)
    assert not res.final.values.requires_grad


# ------------------------------------------------------------------------------ ablations

EXPECTED_ACTIVE = {
    "A0": BRANCHES,
    "B1": ("structural", "ref_dist", "ref_ref", "dist_dist", "knn"),
    "B2": ("structural", "ref_dist", "ref_ref", "dist_dist", "transport"),
    "B3": ("structural", "ref_ref", "dist_dist", "knn", "transport"),
    "B4": ("structural", "ref_dist", "ref_ref", "knn", "transport"),
    "B5": ("structural", "ref_dist", "dist_dist", "knn", "transport"),
    "B6": ("knn",),
    "B7": ("structural", "ref_dist", "ref_ref", "dist_dist"),
    "B8": ("knn", "transport"),
}


def test_every_method_ablation_is_defined():
    expected = {"A0", "A1", "A2", "A3", "A4", *(f"B{i}" for i in range(1, 9)), "C1", "E1", "F1"}
    assert set(ABLATIONS) == expected
    for name in ABLATIONS:
        apply_ablation(GraphConfig(), LossConfig(), name)  # routes every field
    with pytest.raises(KeyError):
        apply_ablation(GraphConfig(), LossConfig(), "D1")


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_active_branches_and_switches(name):
    g, lo = apply_ablation(GraphConfig(), LossConfig(), name)
    assert g.active_branches() == EXPECTED_ACTIVE.get(name, BRANCHES)
    base_g, base_l = GraphConfig(), LossConfig()
    changed = {f.name for f in dataclasses.fields(g) if getattr(g, f.name) != getattr(base_g, f.name)}
    changed |= {f.name for f in dataclasses.fields(lo) if getattr(lo, f.name) != getattr(base_l, f.name)}
    assert changed == {k for k, v in ABLATIONS[name].items()
                       if getattr(base_g, k, getattr(base_l, k, None)) != v}
    specific = {
        "A1": lambda: not lo.soft and not g.knn_soft,
        "A2": lambda: lo.lambda_reg == 0,
        "A3": lambda: g.weighting == "none",
        "A4": lambda: g.weighting == "learned",
        "C1": lambda: g.transport_sparse == "topk_each" and g.transport_sparse_k == 8,
        "E1": lambda: lo.gamma == 0,
        "F1": lambda: g.severity_curve == "original",
    }
    if name in specific:
        assert specific[name]()


def test_ablated_graph_builds_only_active_branches():
    shape = BatchShape(B=2, R=2, C=2, L=3)
    h, T, var = small_graph_inputs(shape)
    head = build_prototype_head(16, 32)
    for name, active in EXPECTED_ACTIVE.items():
        g, _ = apply_ablation(GraphConfig(knn_k=5), LossConfig(), name)
        res = build_graph(h, shape, T, var, head.weight, g)
        assert tuple(res.raw) == active
        assert (res.transport is not None) == ("transport" in active)


def test_config_validation():
    with pytest.raises(ValueError):
        GraphConfig(structural_rule="interleaved")
    with pytest.raises(ValueError):
        GraphConfig(weighting="softmax")
    assert GraphConfig().structural_rule == "intent" and GraphConfig().weighting == "uniform"


def test_all_branches_off_gives_empty_graph():
    shape = BatchShape(B=2, R=2, C=2, L=3)
    h, T, var = small_graph_inputs(shape)
    cfg = GraphConfig(**{f"coef_{b}": 0.0 for b in BRANCHES})
    res = build_graph(h, shape, T, var, None, cfg)
    assert res.active == () and res.final.n_edges == 0 and res.pi.numel() == 0
