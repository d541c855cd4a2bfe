"""Loss coefficients and switches (METHOD.md §4.2-4.4, §3.4.2) as one frozen dataclass.

Defaults are the paper configuration "A0" (DECISIONS.md 9). Torch-free; the loss terms are
in :mod:`shamisa_core.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PairMetric = Literal["euc", "cos"]


@dataclass(frozen=True)
class LossConfig:
    """Loss coefficients and switches (METHOD §4.2-4.4).

    ``soft=False`` is ablation A1 (unweighted pair term); ``lambda_reg=0`` is A2;
    ``gamma=0`` is E1. ``single_view_var_cov`` computes var/cov on all N rows at once instead
    of the two batch halves (reference option, off in A0).
    """

    lambda_var: float = 11.975680785304435
    lambda_inv: float = 88.36882206311276
    lambda_cov: float = 57.21249573027589
    lambda_reg: float = 0.03419084992354765
    gamma: float = 0.49057801093072007
    soft: bool = True
    pair_metric: PairMetric = "euc"
    var_eps: float = 1e-4
    std_target: float = 1.0
    single_view_var_cov: bool = False

    def __post_init__(self) -> None:
        """Validate the pair metric."""
        if self.pair_metric not in ("euc", "cos"):
            raise ValueError(f"LossConfig.pair_metric={self.pair_metric!r}; expected 'euc' or 'cos'")
