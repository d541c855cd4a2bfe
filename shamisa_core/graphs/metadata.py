"""Metadata-driven relation graphs RR, RD, DD and S (METHOD.md §3.2-3.3, DECISIONS.md 7).

All builders are vectorised over the whole batch (no loop over nodes) and return coalesced
:class:`~shamisa_core.graphs.indexing.Edges` (sorted row-major). Their values are constants
(no gradient, METHOD §3.6). Severity strengths are evaluated in float32, as the reference
does, and only then cast to the requested dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import SeverityCurve, StructuralRule
from .indexing import BatchShape, Edges, coalesce, dist_node_id, ref_node_id


def severity_strength(gap: Tensor, curve: SeverityCurve = "exponential") -> Tensor:
    """Map a severity gap ``g`` on the 0..4 index scale to an edge strength (METHOD §3.2).

    ``u = g/4``; ``exponential``: ``exp(-3u)`` (A0); ``original``: ``1/(1+u)`` (ablation F1).
    Computed in ``gap``'s dtype.
    """
    u = gap / 4
    if curve == "exponential":
        return torch.exp(-3 * u)
    if curve == "original":
        return 1 / (1 + u)
    raise ValueError(f"unknown severity curve {curve!r}")


def varying_slot_severity(indices: Tensor, var_dist: Tensor) -> Tensor:
    """Severity index ``t`` of the varying slot per (b, c, l), float32 (METHOD §3.3 RD/DD).

    ``indices``: (B, C, L, S) severity per slot; ``var_dist``: (B, C) varying slot ``k*``.
    """
    B, C, L, _ = indices.shape
    k = var_dist.to(device=indices.device, dtype=torch.int64).view(B, C, 1, 1).expand(B, C, L, 1)
    return indices.to(torch.float32).gather(-1, k).squeeze(-1)


def _grid(*sizes: int, device: torch.device | str | None) -> tuple[Tensor, ...]:
    """Integer meshgrid (ij indexing) over the given sizes."""
    return torch.meshgrid(
        *[torch.arange(s, device=device, dtype=torch.int64) for s in sizes], indexing="ij"
    )


def ref_ref_edges(
    shape: BatchShape, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Edges:
    """RR: every ordered pair of distinct reference nodes of the batch, weight 1 (METHOD §3.3).

    Stored entries: ``B*V*(B*V - 1)``.
    """
    n = shape.n_ref
    rows, cols = _grid(n, n, device=device)
    keep = rows != cols
    index = torch.stack([rows[keep], cols[keep]])
    return Edges(index, torch.ones(index.shape[1], dtype=dtype, device=device), shape.n_nodes)


def ref_dist_edges(
    shape: BatchShape,
    t_var: Tensor,
    curve: SeverityCurve = "exponential",
    dtype: torch.dtype = torch.float32,
) -> Edges:
    """RD: reference (b, v) -> its own distortion (b, v, c, l), weight ``phi(t_var[b,c,l])``.

    METHOD §3.3: only the varying slot's severity counts. Stored entries: ``B*V*C*L``; every
    edge points from a lower to a higher node id.
    """
    device = t_var.device
    b, v, c, l = _grid(shape.B, shape.V, shape.C, shape.L, device=device)
    rows = ref_node_id(b, v, shape)
    cols = dist_node_id(b, v, c, l, shape)
    w = severity_strength(t_var.to(torch.float32), curve)  # (B, C, L)
    values = w[b, c, l].to(dtype)
    index = torch.stack([rows.reshape(-1), cols.reshape(-1)])
    return coalesce(Edges(index, values.reshape(-1), shape.n_nodes))


def dist_dist_pairs(shape: BatchShape, t_var: Tensor, curve: SeverityCurve = "exponential") -> Edges:
    """All DD candidates: same item and composition, any views/levels, no self-pairs.

    Weight ``phi(|t_l - t_l'|)`` of the varying slot, in float32 (METHOD §3.3 DD). Count:
    ``B*((V*L)^2*C - V*C*L)``. Returned sorted row-major, before any top-k.
    """
    device = t_var.device
    B, V, C, L = shape.B, shape.V, shape.C, shape.L
    b, c, v, l, v2, l2 = _grid(B, C, V, L, V, L, device=device)
    keep = (v != v2) | (l != l2)
    rows = dist_node_id(b, v, c, l, shape)[keep]
    cols = dist_node_id(b, v2, c, l2, shape)[keep]
    t = t_var.to(torch.float32)
    gap = (t[b, c, l] - t[b, c, l2]).abs()[keep]
    return coalesce(Edges(torch.stack([rows, cols]), severity_strength(gap, curve), shape.n_nodes))


def topk_edges(edges: Edges, k: int | None) -> Edges:
    """Keep the ``k`` largest values over the whole set (METHOD §3.3 DD top-k).

    Ties are broken deterministically in favour of the earlier (row-major) entry; the result
    is re-sorted row-major. ``k=None`` or ``k >= E`` keeps everything.
    """
    if k is None or k >= edges.n_edges:
        return edges
    order = torch.sort(edges.values, descending=True, stable=True).indices[:k]
    order = torch.sort(order).values
    return Edges(edges.index[:, order], edges.values[order], edges.n)


def dist_dist_edges(
    shape: BatchShape,
    t_var: Tensor,
    curve: SeverityCurve = "exponential",
    topk: int | None = 4096,
    dtype: torch.dtype = torch.float32,
) -> Edges:
    """DD: same-composition pairs weighted by severity gap, batch-wide top-k (METHOD §3.3)."""
    kept = topk_edges(dist_dist_pairs(shape, t_var, curve), topk)
    return Edges(kept.index, kept.values.to(dtype), kept.n)


def structural_view_pairs(R: int, rule: StructuralRule = "intent", device=None) -> Tensor:
    """Ordered view pairs (v, v') linked by the structural rule, as a (2, P) tensor.

    ``intent`` (DECISIONS 7): same scale, different reference (``v//R == v'//R``, v != v').
    ``parity`` (reference, METHOD §3.3 S): ``v mod 2 == v' mod 2``, v != v'.
    """
    V = 2 * R
    v, v2 = _grid(V, V, device=device)
    if rule == "intent":
        keep = (v // R == v2 // R) & (v != v2)
    elif rule == "parity":
        keep = (v % 2 == v2 % 2) & (v != v2)
    else:
        raise ValueError(f"unknown structural rule {rule!r}")
    return torch.stack([v[keep], v2[keep]])


def structural_pairs(
    shape: BatchShape, rule: StructuralRule = "intent", device: torch.device | str | None = None
) -> Tensor:
    """S node pairs: same (b, c, l), views related by ``rule`` (METHOD §3.3 S), sorted (2, E).

    ``intent`` count: ``B*C*L*2*R*(R-1)``. Also used by the prototype pair alignment (§3.4.2).
    """
    vp = structural_view_pairs(shape.R, rule, device=device)  # (2, P)
    b, c, l, p = _grid(shape.B, shape.C, shape.L, vp.shape[1], device=device)
    rows = dist_node_id(b, vp[0][p], c, l, shape).reshape(-1)
    cols = dist_node_id(b, vp[1][p], c, l, shape).reshape(-1)
    key = rows * shape.n_nodes + cols
    order = torch.argsort(key)
    return torch.stack([rows[order], cols[order]])


def structural_edges(
    shape: BatchShape,
    rule: StructuralRule = "intent",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Edges:
    """S: structural pairs with weight 1 (METHOD §3.3 S, DECISIONS 7)."""
    index = structural_pairs(shape, rule, device=device)
    return Edges(index, torch.ones(index.shape[1], dtype=dtype, device=device), shape.n_nodes)
