"""Feature-driven relation graphs: kNN (K) and prototype transport (O) (METHOD.md §3.4).

Both are built from the encoder representation ``h`` over all N nodes and are **not**
detached: gradients reach ``h`` (and the prototype head) through the edge values. Only the
Sinkhorn codes ``q`` are computed without gradient (METHOD §3.6). N is at most a few hundred,
so dense N x N score matrices are used and only the selected entries are turned into edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import KnnMetric, TransportNorm, TransportScore, TransportSparse
from .indexing import Edges, coalesce


def knn_affinity(h: Tensor, metric: KnnMetric = "euc") -> Tensor:
    """Dense affinity ``a_ij`` with a zero diagonal (METHOD §3.4.1).

    ``euc``: ``1/(1 + ||h_i - h_j||_2)``; ``cos``: cosine similarity.
    """
    if metric == "euc":
        a = 1.0 / (1.0 + torch.cdist(h, h))
    elif metric == "cos":
        x = F.normalize(h, dim=1)
        a = x @ x.T
    else:
        raise ValueError(f"unknown kNN metric {metric!r}")
    eye = torch.eye(h.shape[0], dtype=torch.bool, device=h.device)
    return a.masked_fill(eye, 0.0)


def knn_edges(
    h: Tensor,
    k: int = 31,
    metric: KnnMetric = "euc",
    soft: bool = True,
    symmetric: bool = True,
    include_self: bool = False,
) -> Edges:
    """kNN graph: each node keeps its ``k`` largest affinities (METHOD §3.4.1).

    ``soft`` keeps ``a_ij`` as the weight (binary 1 otherwise, ablation A1). ``symmetric``
    appends the reversed edges with the same values and sums duplicates on coalescing, so
    ``K_ij = a_ij * ([j in kNN(i)] + [i in kNN(j)])``.
    """
    n = h.shape[0]
    a = knn_affinity(h, metric)
    if include_self:
        a = a + torch.diag(torch.ones(n, dtype=a.dtype, device=a.device))
        k_eff = min(k, n)
        select = a
    else:
        k_eff = min(k, n - 1)
        eye = torch.eye(n, dtype=torch.bool, device=h.device)
        select = a.detach().masked_fill(eye, float("-inf"))
    if k_eff <= 0:
        return Edges(torch.zeros(2, 0, dtype=torch.int64, device=h.device), a.new_zeros(0), n)
    cols = torch.topk(select.detach(), k_eff, dim=1).indices  # (n, k)
    rows = torch.arange(n, device=h.device).unsqueeze(1).expand_as(cols)
    values = a.gather(1, cols) if soft else torch.ones_like(cols, dtype=a.dtype)
    rows, cols, values = rows.reshape(-1), cols.reshape(-1), values.reshape(-1)
    if symmetric:
        rows, cols = torch.cat([rows, cols]), torch.cat([cols, rows])
        values = torch.cat([values, values])
    return coalesce(Edges(torch.stack([rows, cols]), values, n))


@torch.no_grad()
def sinkhorn(logits: Tensor, eps: float = 0.05, n_iters: int = 6) -> Tensor:
    """Balanced soft codes ``q`` by Sinkhorn-Knopp, no gradient (METHOD §3.4.2 step 2).

    Start from ``exp(s/eps)`` normalised to total mass 1; each round gives every prototype
    mass 1/K then every sample mass 1/N; rows are finally rescaled to sum to 1. The global
    maximum is subtracted before ``exp`` (a constant factor, removed by the first
    normalisation) so large logits cannot overflow.
    """
    s = logits.detach()
    n, k = s.shape
    q = torch.exp((s - s.max()) / eps)
    q = q / q.sum()
    for _ in range(n_iters):
        q = q / q.sum(dim=0, keepdim=True) / k
        q = q / q.sum(dim=1, keepdim=True) / n
    return q * n


def pairwise_assignment_score(log_p: Tensor, score: TransportScore = "ce") -> Tensor:
    """Pairwise score from soft assignments (METHOD §3.4.2 step 4).

    ``ce``: ``sc_ij = (1/K) sum_k p_j[k] log p_i[k]`` (asymmetric); ``ce_sym``: its average
    with the transpose; ``cos_s``: ``p_i . p_j``.
    """
    p = log_p.exp()
    if score == "ce":
        return (log_p @ p.T) / p.shape[1]
    if score == "ce_sym":
        sc = (log_p @ p.T) / p.shape[1]
        return 0.5 * (sc + sc.T)
    if score == "cos_s":
        return p @ p.T
    raise ValueError(f"unknown transport score {score!r}")


def normalise_scores(sc: Tensor, mode: TransportNorm = "min_max", temp: float = 0.2) -> Tensor:
    """Normalise the score matrix (METHOD §3.4.2 step 5).

    ``min_max`` over the whole matrix, diagonal included; ``sigmoid``: ``sigmoid(sc/temp)``.
    """
    if mode == "min_max":
        shifted = sc - sc.min()
        return shifted / shifted.max()
    if mode == "sigmoid":
        return torch.sigmoid(sc / temp)
    raise ValueError(f"unknown transport normalisation {mode!r}")


def sparsify_scores(
    sc: Tensor, mode: TransportSparse = "topk_global", k: int = 8, threshold: float = 0.1
) -> Edges:
    """Turn the dense score matrix into edges (METHOD §3.4.2 step 6).

    ``topk_global``: the ``k*N`` largest entries of the whole matrix; ``topk_each``: ``k``
    per row (ablation C1); ``threshold``: entries ``>= threshold``. The diagonal is eligible.
    """
    n = sc.shape[0]
    if mode == "topk_global":
        flat = sc.reshape(-1)
        sel = torch.topk(flat.detach(), min(k * n, flat.numel())).indices
        rows, cols = sel // n, sel % n
    elif mode == "topk_each":
        cols = torch.topk(sc.detach(), min(k, n), dim=1).indices
        rows = torch.arange(n, device=sc.device).unsqueeze(1).expand_as(cols)
        rows, cols = rows.reshape(-1), cols.reshape(-1)
    elif mode == "threshold":
        rows, cols = torch.nonzero(sc.detach() >= threshold, as_tuple=True)
    else:
        raise ValueError(f"unknown transport sparsification {mode!r}")
    return coalesce(Edges(torch.stack([rows, cols]), sc[rows, cols], n))


@dataclass(frozen=True)
class TransportResult:
    """Output of the transport branch: edges plus the quantities the alignment loss needs."""

    edges: Edges
    logits: Tensor  # (N, K), with gradient
    q: Tensor  # (N, K) Sinkhorn codes, no gradient
    log_p: Tensor  # (N, K) log softmax(logits / temp), with gradient
    scores: Tensor  # (N, N) normalised scores, with gradient


def prototype_logits(
    h: Tensor, prototype_weight: Tensor, source_norm: bool = True, prototype_norm: bool = False
) -> Tensor:
    """Logits ``s_i = W x_i`` with ``x_i = h_i/||h_i||`` (METHOD §3.4.2 step 1)."""
    x = F.normalize(h, dim=1) if source_norm else h
    w = prototype_weight.to(x.dtype)
    if prototype_norm:
        w = F.normalize(w, dim=1)
    return x @ w.T


def transport_graph(
    h: Tensor,
    prototype_weight: Tensor,
    *,
    source_norm: bool = True,
    prototype_norm: bool = False,
    eps: float = 0.05,
    n_iters: int = 6,
    temp: float = 0.1,
    score: TransportScore = "ce",
    norm: TransportNorm = "min_max",
    norm_temp: float = 0.2,
    sparse: TransportSparse = "topk_global",
    sparse_k: int = 8,
    threshold: float = 0.1,
) -> TransportResult:
    """Transport / prototype graph O (METHOD §3.4.2 steps 1-7)."""
    logits = prototype_logits(h, prototype_weight, source_norm, prototype_norm)
    q = sinkhorn(logits, eps, n_iters)
    log_p = F.log_softmax(logits / temp, dim=1)
    sc = normalise_scores(pairwise_assignment_score(log_p, score), norm, norm_temp)
    edges = sparsify_scores(sc, sparse, sparse_k, threshold)
    return TransportResult(edges=edges, logits=logits, q=q, log_p=log_p, scores=sc)
