"""Branch coefficients, branch weighting and merging into one graph (METHOD.md §3.5).

``W = sum_b pi_b * c_b * A^(b)`` over the active branches, then (``symmetric``) only entries
with row < col are kept. Branch weights ``pi`` follow DECISIONS.md 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import BRANCHES, GraphConfig, Weighting
from .features import TransportResult, knn_edges, transport_graph
from .indexing import BatchShape, Edges, coalesce, concat_edges, empty_edges, upper_triangle
from .metadata import (
    dist_dist_edges,
    ref_dist_edges,
    ref_ref_edges,
    structural_pairs,
    varying_slot_severity,
)


def branch_statistics(scaled: dict[str, Edges]) -> Tensor:
    """Detached aggregator input: per branch (stored entries, sum of scaled values) (§3.5).

    Layout ``[n_1, s_1, n_2, s_2, ...]`` in branch order; length ``2 * len(scaled)``.
    """
    stats: list[Tensor] = []
    for e in scaled.values():
        v = e.values.detach()
        stats.append(v.new_tensor(float(e.n_edges)))
        stats.append(v.sum())
    if not stats:
        return torch.zeros(0)
    return torch.stack(stats)


def branch_weights(
    stats: Tensor, n_branches: int, mode: Weighting = "uniform", aggregator: nn.Module | None = None
) -> Tensor:
    """Branch weights ``pi`` (METHOD §3.5 step 2, DECISIONS 8).

    ``uniform``: 1/n each; ``none``: 1 each; ``learned``: ``softmax(aggregator(stats))`` with
    gradient into the aggregator; ``mlp_frozen``: the same, detached (reference A0).
    """
    if n_branches == 0:
        return stats.new_zeros(0)
    if mode == "uniform":
        return stats.new_full((n_branches,), 1.0 / n_branches)
    if mode == "none":
        return stats.new_ones(n_branches)
    if mode in ("learned", "mlp_frozen"):
        if aggregator is None:
            raise ValueError(f"weighting={mode!r} needs an aggregator module")
        p = next(iter(aggregator.parameters()), None)
        x = stats.to(p.dtype) if p is not None else stats
        in_features = getattr(aggregator, "in_features", None)
        if in_features is not None and in_features != x.numel():
            raise ValueError(
                f"aggregator expects {in_features} statistics but {n_branches} branches are active "
                f"({x.numel()} statistics); build it with n_branches={n_branches}"
            )
        pi = torch.softmax(aggregator(x.unsqueeze(0)).squeeze(0), dim=-1).to(stats.dtype)
        return pi.detach() if mode == "mlp_frozen" else pi
    raise ValueError(f"unknown weighting {mode!r}")


def merge_branches(weighted: list[Edges], n: int, dtype: torch.dtype, device) -> Edges:
    """Sum branches into one coalesced matrix (entries at the same (i, j) add) (§3.5 step 3)."""
    if not weighted:
        return empty_edges(n, dtype, device)
    return coalesce(concat_edges(weighted, n, dtype, device))


@dataclass(frozen=True)
class GraphResult:
    """Every stage of the step's graph, for the loss, diagnostics and conformance tests."""

    active: tuple[str, ...]  # active branch names, reference order
    raw: dict[str, Edges]  # before the coefficient
    scaled: dict[str, Edges]  # after the coefficient c_b
    pi: Tensor  # (len(active),) branch weights
    merged: Edges  # sum_b pi_b c_b A^(b), coalesced
    final: Edges  # merged entries with row < col (or merged when not symmetric)
    transport: TransportResult | None
    structural_pairs: Tensor  # (2, E_s) ordered structural pairs (alignment term)


def build_graph(
    h: Tensor,
    shape: BatchShape,
    indices: Tensor,
    var_dist: Tensor,
    prototype_weight: Tensor | None,
    cfg: GraphConfig,
    aggregator: nn.Module | None = None,
) -> GraphResult:
    """Build all active branches and combine them (METHOD §3.3-3.5).

    ``h``: (N, D) representations in node order (the dtype used for all edge values);
    ``indices``: (B, C, L, S) severity per slot; ``var_dist``: (B, C) varying slot;
    ``prototype_weight``: (K, D) effective prototype weights (needed if transport is active).
    """
    n, dtype, device = h.shape[0], h.dtype, h.device
    if n != shape.n_nodes:
        raise ValueError(f"h has {n} rows but the batch shape {shape} has {shape.n_nodes} nodes")
    active = cfg.active_branches()
    t_var = varying_slot_severity(indices.to(device), var_dist.to(device))
    s_pairs = structural_pairs(shape, cfg.structural_rule, device=device)

    raw: dict[str, Edges] = {}
    transport: TransportResult | None = None
    for name in active:
        if name == "structural":
            raw[name] = Edges(s_pairs, torch.ones(s_pairs.shape[1], dtype=dtype, device=device), n)
        elif name == "ref_dist":
            raw[name] = ref_dist_edges(shape, t_var, cfg.severity_curve, dtype)
        elif name == "ref_ref":
            raw[name] = ref_ref_edges(shape, dtype, device)
        elif name == "dist_dist":
            raw[name] = dist_dist_edges(shape, t_var, cfg.severity_curve, cfg.dd_topk, dtype)
        elif name == "knn":
            raw[name] = knn_edges(
                h, cfg.knn_k, cfg.knn_metric, cfg.knn_soft, cfg.knn_symmetric, cfg.knn_include_self
            )
        elif name == "transport":
            if prototype_weight is None:
                raise ValueError("the transport branch is active but no prototype weight was given")
            transport = transport_graph(
                h,
                prototype_weight,
                source_norm=cfg.source_norm,
                prototype_norm=cfg.prototype_norm,
                eps=cfg.sinkhorn_eps,
                n_iters=cfg.sinkhorn_iters,
                temp=cfg.transport_temp,
                score=cfg.transport_score,
                norm=cfg.transport_norm,
                norm_temp=cfg.transport_norm_temp,
                sparse=cfg.transport_sparse,
                sparse_k=cfg.transport_sparse_k,
                threshold=cfg.transport_threshold,
            )
            raw[name] = transport.edges
        else:  # pragma: no cover - BRANCHES is closed
            raise AssertionError(name)

    scaled = {b: raw[b].scale(cfg.coefficient(b)) for b in active}
    stats = branch_statistics(scaled).to(device=device, dtype=dtype) if active else h.new_zeros(0)
    pi = branch_weights(stats, len(active), cfg.weighting, aggregator)
    # Non-kNN branches first, kNN added last (METHOD §3.5 step 3, include_knn_residual).
    order = [b for b in active if b != "knn"] + [b for b in active if b == "knn"]
    weighted = [scaled[b].scale(pi[active.index(b)]) for b in order]
    merged = merge_branches(weighted, n, dtype, device)
    final = upper_triangle(merged) if cfg.symmetric else merged
    return GraphResult(
        active=active,
        raw=raw,
        scaled=scaled,
        pi=pi,
        merged=merged,
        final=final,
        transport=transport,
        structural_pairs=s_pairs,
    )


__all__ = [
    "BRANCHES",
    "GraphResult",
    "branch_statistics",
    "branch_weights",
    "build_graph",
    "merge_branches",
]
