"""The SHAMISA training objective: graphs + losses for one step (METHOD.md §3-4).

:func:`compute_objective` takes the step's representations ``h`` and embeddings ``z`` (node
order, METHOD §3.1), the group metadata and the trainable prototype head / aggregator, and
returns the total loss, every term, and float diagnostics. Graph construction and the
variance/covariance terms run in at least float32 even under autocast (DECISIONS.md 11).

:data:`ABLATIONS` maps each graph/loss ablation id of METHOD §4.6 to config overrides;
:func:`apply_ablation` applies one. (Engine ablations D1-D4 live with the data config.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from .graphs.combine import GraphResult, build_graph
from .graphs.config import BRANCHES, GraphConfig
from .graphs.indexing import BatchShape
from .losses import (
    LossConfig,
    edge_reward,
    invariance_term,
    pair_term,
    prototype_alignment,
    total_loss,
    var_cov_terms,
)


@dataclass(frozen=True)
class ObjectiveOutput:
    """Result of :func:`compute_objective`.

    ``terms`` (tensors, with gradient where meaningful): ``L_var``, ``L_var_half1/2``,
    ``L_cov``, ``L_cov_half1/2``, ``pair``, ``edge_reward``, ``proto_alignment`` and its
    parts, ``bank``, ``L_inv``, ``total``. ``diagnostics`` (floats): ``edges/<branch>``,
    ``weight/<branch>`` (sum of coefficient-scaled values), ``pi/<branch>``, and
    ``edges/merged``, ``edges/final``, ``weight/final``, ``weight_sq/final``.
    ``graph`` holds every graph stage (None when the graph path is skipped).
    """

    total: Tensor
    terms: dict[str, Tensor]
    diagnostics: dict[str, float]
    graph: GraphResult | None = field(default=None, compare=False)


def batch_shape_from_meta(meta: Mapping[str, Any]) -> BatchShape:
    """Read the group shape ints ``B, R, C, L`` from the metadata dict (METHOD §2.4)."""
    return BatchShape(*(int(meta[k]) for k in ("B", "R", "C", "L")))


def _working_dtype(t: Tensor) -> torch.dtype:
    """At least float32 (DECISIONS 11); float64 inputs stay float64."""
    return torch.promote_types(t.dtype, torch.float32)


def _prototype_weight(proto_head: nn.Module | Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Effective prototype weight (K, D) of the head (weight-normalised), cast to ``dtype``."""
    if proto_head is None:
        return None
    w = proto_head if isinstance(proto_head, Tensor) else proto_head.weight
    return w.to(dtype)


def _diagnostics(graph: GraphResult | None) -> dict[str, float]:
    """Edge counts, weight sums and branch weights as plain floats (one host transfer)."""
    if graph is None:
        return {}
    names: list[str] = []
    vals: list[Tensor] = []
    ref = graph.final.values
    for b in BRANCHES:
        if b in graph.scaled:
            e = graph.scaled[b]
            names += [f"edges/{b}", f"weight/{b}", f"pi/{b}"]
            vals += [ref.new_tensor(float(e.n_edges)), e.values.detach().sum().to(ref.dtype),
                     graph.pi[graph.active.index(b)].detach().to(ref.dtype)]
        else:
            names += [f"edges/{b}", f"weight/{b}", f"pi/{b}"]
            vals += [ref.new_zeros(()), ref.new_zeros(()), ref.new_zeros(())]
    w = graph.final.values.detach()
    names += ["edges/merged", "edges/final", "weight/final", "weight_sq/final"]
    vals += [ref.new_tensor(float(graph.merged.n_edges)), ref.new_tensor(float(graph.final.n_edges)),
             w.sum(), w.pow(2).sum()]
    return dict(zip(names, torch.stack(vals).cpu().tolist()))


def compute_objective(
    h: Tensor,
    z: Tensor,
    meta: Mapping[str, Any],
    proto_head: nn.Module | Tensor | None,
    aggregator: nn.Module | None,
    graph_cfg: GraphConfig,
    loss_cfg: LossConfig,
) -> ObjectiveOutput:
    """One step's SHAMISA objective (METHOD §3-4).

    ``h`` (N, D_h) normalised representations and ``z`` (N, D_z) projector outputs, in node
    order. ``meta``: ``indices`` (B, C, L, S) float severity per slot (-1 empty), ``var_dist``
    (B, C) int64, ``n_dist`` (B, C) int64 (unused by the graphs), and ints ``B, R, C, L``.
    ``proto_head``: module whose ``.weight`` is the effective (K, D_h) prototype matrix (or
    that matrix); only needed with the transport branch. ``aggregator``: only needed for the
    ``learned`` / ``mlp_frozen`` weightings.

    The prototype alignment term is part of the transport branch: it is computed only when
    that branch is active and ``gamma != 0``; its pair part always uses the structural pairs
    of ``graph_cfg.structural_rule``, whether or not the S branch itself is active.
    If ``lambda_inv == 0`` the graph path is skipped (METHOD §4.3).
    """
    shape = batch_shape_from_meta(meta)
    with torch.autocast(device_type=h.device.type, enabled=False):
        dtype = _working_dtype(h)
        hw, zw = h.to(dtype), z.to(_working_dtype(z))
        terms: dict[str, Tensor] = dict(var_cov_terms(zw, shape.n_ref, loss_cfg))
        zero = zw.new_zeros(())
        graph: GraphResult | None = None
        pair = reward = bank = zero
        align: dict[str, Tensor] = {
            "proto_alignment": zero,
            "proto_alignment_self_part": zero,
            "proto_alignment_pair_part": zero,
            "proto_self_mean_q_logp": zero,
            "proto_pair_mean_q_logp": zero,
        }
        if loss_cfg.lambda_inv != 0:
            graph = build_graph(
                hw,
                shape,
                meta["indices"],
                meta["var_dist"],
                _prototype_weight(proto_head, dtype) if "transport" in graph_cfg.active_branches() else None,
                graph_cfg,
                aggregator,
            )
            w = graph.final.values.to(zw.dtype)
            pair = pair_term(zw, graph.final.index, w, loss_cfg.soft, loss_cfg.pair_metric)
            reward = edge_reward(w, loss_cfg.lambda_reg) if loss_cfg.lambda_reg != 0 else zero
            if graph.transport is not None and loss_cfg.gamma != 0:
                align = prototype_alignment(
                    graph.transport.q, graph.transport.log_p, graph.structural_pairs, loss_cfg.gamma
                )
                align = {k: v.to(zw.dtype) for k, v in align.items()}
            l_inv = invariance_term(pair, align["proto_alignment"], reward, bank)
        else:
            l_inv = zero
        terms.update(pair=pair, edge_reward=reward, bank=bank, L_inv=l_inv, **align)
        total = total_loss(terms["L_var"], l_inv, terms["L_cov"], loss_cfg)
        terms["total"] = total
    return ObjectiveOutput(total=total, terms=terms, diagnostics=_diagnostics(graph), graph=graph)


# Ablations (METHOD §4.6): the table lives with the configuration; re-exported here.
from shamisa_core.config.ablations import ABLATIONS, apply_ablation  # noqa: E402,F401


__all__ = [
    "ABLATIONS",
    "ObjectiveOutput",
    "apply_ablation",
    "batch_shape_from_meta",
    "compute_objective",
]
