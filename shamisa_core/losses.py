"""SHAMISA loss terms as pure functions (METHOD.md §4.2-4.4, §3.4.2).

``L = lambda_var * L_var + lambda_inv * L_inv + lambda_cov * L_cov`` with
``L_inv = 2 * (pair + L_ot + bank + reward)``. Defaults of :class:`LossConfig` are the paper
configuration "A0" (DECISIONS.md 9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The settings dataclass lives with the rest of the configuration (torch-free); re-exported.
from shamisa_core.config.loss import LossConfig, PairMetric  # noqa: F401


def batch_halves(z: Tensor, n_ref: int) -> tuple[Tensor, Tensor]:
    """Split node rows into the two var/cov "views" (METHOD §4.2).

    ``Z1`` = first half of the reference rows + first half of the distorted rows, ``Z2`` = the
    rest (for B=2: item 0 vs item 1). Odd counts give the extra row to ``Z1`` (``chunk``).
    """
    ref, dist = z[:n_ref], z[n_ref:]
    r1, d1 = (ref.shape[0] + 1) // 2, (dist.shape[0] + 1) // 2
    return torch.cat([ref[:r1], dist[:d1]]), torch.cat([ref[r1:], dist[d1:]])


def variance_term(z: Tensor, eps: float = 1e-4, target: float = 1.0) -> Tensor:
    """VICReg variance hinge ``(1/D) sum_d relu(target - sqrt(Var_d + eps)) / 2`` (§4.2).

    ``Var_d`` is the unbiased per-dimension variance over the rows of ``z`` (n x D).
    """
    std = torch.sqrt(z.var(dim=0, unbiased=True) + eps)
    return torch.relu(target - std).mean() / 2


def covariance_term(z: Tensor) -> Tensor:
    """VICReg covariance penalty ``(1/D) sum_{d != d'} Cov_dd'^2`` (§4.2), unbiased Cov."""
    n, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    cov = (zc.T @ zc) / (n - 1)
    off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off / d


def pair_term(
    z: Tensor, index: Tensor, weights: Tensor, soft: bool = True, metric: PairMetric = "euc"
) -> Tensor:
    """Graph-weighted invariance ``(1/(N*D)) sum_E W_ij ||z_i - z_j||^2`` (METHOD §4.3).

    ``soft=False`` drops the weights (ablation A1). ``metric="cos"`` uses
    ``(1/N) sum_E W_ij (1 - cos(z_i, z_j))``.

    Evaluated densely: with the column-centred ``Zc`` (differences are unchanged) and
    ``G = Zc Zc^T``, ``sum_E W_ij ||z_i - z_j||^2 = sum_ij W_ij (G_ii + G_jj - 2 G_ij)``.
    For N of a few hundred this is far cheaper than gathering E x D row pairs, and centring
    keeps the cancellation error at the scale of the embedding spread.
    """
    n, d = z.shape
    w = weights if soft else torch.ones_like(weights)
    wd = w.new_zeros(n * n).index_add(0, index[0] * n + index[1], w).view(n, n).to(z.dtype)
    if metric == "euc":
        zc = z - z.mean(dim=0, keepdim=True)
        g = zc @ zc.T
        sq = torch.diagonal(g)
        total = wd.sum(dim=1) @ sq + wd.sum(dim=0) @ sq - 2 * (wd * g).sum()
        return total / (n * d)
    if metric == "cos":
        zn = F.normalize(z, dim=1)
        return (wd * (1 - zn @ zn.T)).sum() / n
    raise ValueError(f"unknown pair metric {metric!r}")


def edge_reward(weights: Tensor, lambda_reg: float) -> Tensor:
    """Edge regulariser ``-lambda_reg * sum_E W_ij^2`` (mode ``neg_sum_sq``, METHOD §4.3)."""
    return -lambda_reg * weights.pow(2).sum()


def prototype_alignment(
    q: Tensor, log_p: Tensor, pairs: Tensor, gamma: float
) -> dict[str, Tensor]:
    """SwAV-like prototype alignment ``L_ot = -(gamma/2) (self + pair)`` (METHOD §3.4.2).

    ``self`` = mean over (i, k) of ``q_i[k] log p_i[k]``; ``pair`` = mean over ordered
    structural pairs (i, j) and k of ``q_i[k] log p_j[k]`` (0 when there are no pairs).
    ``q`` is treated as a constant. Returns the two means, the two weighted parts and the sum.
    """
    q = q.detach()
    self_mean = (q * log_p).mean()
    if pairs.shape[1] > 0:
        pair_mean = (q[pairs[0]] * log_p[pairs[1]]).mean()
    else:
        pair_mean = log_p.new_zeros(())
    self_part = -(gamma / 2) * self_mean
    pair_part = -(gamma / 2) * pair_mean
    return {
        "proto_self_mean_q_logp": self_mean,
        "proto_pair_mean_q_logp": pair_mean,
        "proto_alignment_self_part": self_part,
        "proto_alignment_pair_part": pair_part,
        "proto_alignment": self_part + pair_part,
    }


def invariance_term(pair: Tensor, alignment: Tensor, reward: Tensor, bank: Tensor | float = 0.0) -> Tensor:
    """``L_inv = 2 * (pair + L_ot + bank + reward)`` (METHOD §4.3)."""
    return 2 * (pair + alignment + bank + reward)


def total_loss(l_var: Tensor, l_inv: Tensor, l_cov: Tensor, cfg: LossConfig) -> Tensor:
    """``lambda_var * L_var + lambda_inv * L_inv + lambda_cov * L_cov`` (METHOD §4.4)."""
    return cfg.lambda_var * l_var + cfg.lambda_inv * l_inv + cfg.lambda_cov * l_cov


def var_cov_terms(z: Tensor, n_ref: int, cfg: LossConfig) -> dict[str, Tensor]:
    """``L_var = v(Z1) + v(Z2)`` and ``L_cov = c(Z1) + c(Z2)`` with their halves (METHOD §4.2)."""
    if cfg.single_view_var_cov:
        v, c = variance_term(z, cfg.var_eps, cfg.std_target), covariance_term(z)
        zero = z.new_zeros(())
        return {"L_var": v, "L_var_half1": v, "L_var_half2": zero,
                "L_cov": c, "L_cov_half1": c, "L_cov_half2": zero}
    z1, z2 = batch_halves(z, n_ref)
    v1, v2 = variance_term(z1, cfg.var_eps, cfg.std_target), variance_term(z2, cfg.var_eps, cfg.std_target)
    c1, c2 = covariance_term(z1), covariance_term(z2)
    return {"L_var": v1 + v2, "L_var_half1": v1, "L_var_half2": v2,
            "L_cov": c1 + c2, "L_cov_half1": c1, "L_cov_half2": c2}
