"""Training diagnostics logged every ``log_every`` steps: loss terms, per-dimension std and
effective rank of ``h`` and ``z`` (METHOD.md §6.3)."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

def effective_rank(x: Tensor, center: bool = True) -> float:
    """``exp(entropy(s / sum(s)))`` of the singular values ``s`` of ``x`` (rows = samples).

    1 = all rows on one line (collapse); at most ``min(x.shape)``.
    """
    x = x.detach().float()
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def term_floats(terms: Mapping[str, Tensor], prefix: str = "loss/") -> dict[str, float]:
    """Loss terms as plain floats (one host transfer)."""
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).cpu().tolist()
    return {prefix + k: v for k, v in zip(terms, values)}


def representation_stats(h: Tensor, z: Tensor) -> dict[str, float]:
    """Per-dimension std (mean, min) and effective rank (centred and raw) of ``h`` and ``z``."""
    out: dict[str, float] = {}
    for name, x in (("h", h), ("z", z)):
        x = x.detach().float()
        std = x.std(dim=0)
        out[f"{name}/std_mean"] = float(std.mean())
        out[f"{name}/std_min"] = float(std.min())
        out[f"{name}/erank"] = effective_rank(x, center=True)
        out[f"{name}/erank_raw"] = effective_rank(x, center=False)
    return out


