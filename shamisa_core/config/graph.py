"""Configuration of the relation graphs (METHOD.md §3, DECISIONS.md 7-9).

Defaults reproduce the paper configuration "A0" (METHOD §3.5 table), except where
DECISIONS.md says otherwise: ``structural_rule="intent"`` (DECISIONS 7) and
``weighting="uniform"`` (DECISIONS 8). The reference behaviour is one switch away:
``structural_rule="parity"`` and ``weighting="mlp_frozen"``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

#: Branch names in the reference's order (METHOD §3.5). The short aliases are the labels
#: used by ``shared/conformance`` (S, RD, RR, DD, K, O).
BRANCHES: tuple[str, ...] = ("structural", "ref_dist", "ref_ref", "dist_dist", "knn", "transport")
BRANCH_ALIASES: dict[str, str] = {
    "structural": "S",
    "ref_dist": "RD",
    "ref_ref": "RR",
    "dist_dist": "DD",
    "knn": "K",
    "transport": "O",
}
METADATA_BRANCHES: tuple[str, ...] = ("structural", "ref_dist", "ref_ref", "dist_dist")
FEATURE_BRANCHES: tuple[str, ...] = ("knn", "transport")

StructuralRule = Literal["intent", "parity"]
SeverityCurve = Literal["exponential", "original"]
Weighting = Literal["uniform", "learned", "none", "mlp_frozen"]
KnnMetric = Literal["euc", "cos"]
TransportScore = Literal["ce", "ce_sym", "cos_s"]
TransportNorm = Literal["min_max", "sigmoid"]
TransportSparse = Literal["topk_global", "topk_each", "threshold"]


@dataclass(frozen=True)
class GraphConfig:
    """All switches of the six graph branches and their combination (METHOD §3.2-3.5).

    A branch whose coefficient is exactly 0 is inactive (METHOD §3.5).

    Weighting modes (DECISIONS 8): ``uniform`` = 1/(number of active branches) each
    (default); ``learned`` = softmax of the aggregator MLP with gradient (ablation A4);
    ``none`` = 1 each (ablation A3); ``mlp_frozen`` = the reference A0 behaviour, softmax of
    the aggregator MLP with its output detached (the MLP never trains).
    """

    # --- branch coefficients c_b (METHOD §3.5) ---
    coef_structural: float = 0.6010794863656556
    coef_ref_dist: float = 0.8038735892351129
    coef_ref_ref: float = 0.5765695739376243
    coef_dist_dist: float = 0.1789641360878255
    coef_knn: float = 0.20874201442160423
    coef_transport: float = 0.3670314792148166

    # --- metadata graphs (METHOD §3.2-3.3, DECISIONS 7) ---
    structural_rule: StructuralRule = "intent"
    severity_curve: SeverityCurve = "exponential"
    dd_topk: int | None = 4096

    # --- kNN graph (METHOD §3.4.1) ---
    knn_k: int = 31
    knn_metric: KnnMetric = "euc"
    knn_soft: bool = True
    knn_symmetric: bool = True
    knn_include_self: bool = False

    # --- transport graph (METHOD §3.4.2) ---
    source_norm: bool = True
    prototype_norm: bool = False
    sinkhorn_eps: float = 0.05
    sinkhorn_iters: int = 6
    transport_temp: float = 0.1
    transport_score: TransportScore = "ce"
    transport_norm: TransportNorm = "min_max"
    transport_norm_temp: float = 0.2
    transport_sparse: TransportSparse = "topk_global"
    transport_sparse_k: int = 8
    transport_threshold: float = 0.1

    # --- combination (METHOD §3.5, DECISIONS 8) ---
    weighting: Weighting = "uniform"
    symmetric: bool = True

    def __post_init__(self) -> None:
        """Validate enumerated fields early, with a readable message."""
        allowed = {
            "structural_rule": ("intent", "parity"),
            "severity_curve": ("exponential", "original"),
            "knn_metric": ("euc", "cos"),
            "transport_score": ("ce", "ce_sym", "cos_s"),
            "transport_norm": ("min_max", "sigmoid"),
            "transport_sparse": ("topk_global", "topk_each", "threshold"),
            "weighting": ("uniform", "learned", "none", "mlp_frozen"),
        }
        for name, options in allowed.items():
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"GraphConfig.{name}={value!r}; expected one of {options}")
        for b in BRANCHES:
            if self.coefficient(b) < 0:
                raise ValueError(f"GraphConfig.coef_{b} must be >= 0")
        if self.knn_k < 1 or self.transport_sparse_k < 1 or self.sinkhorn_iters < 0:
            raise ValueError("knn_k and transport_sparse_k must be >= 1, sinkhorn_iters >= 0")
        if self.dd_topk is not None and self.dd_topk < 0:
            raise ValueError("dd_topk must be None or >= 0")

    def coefficient(self, branch: str) -> float:
        """Coefficient ``c_b`` of one branch (METHOD §3.5)."""
        return float(getattr(self, f"coef_{branch}"))

    def coefficients(self) -> dict[str, float]:
        """All six coefficients, in branch order."""
        return {b: self.coefficient(b) for b in BRANCHES}

    def active_branches(self) -> tuple[str, ...]:
        """Branches with a non-zero coefficient, in the reference's order (METHOD §3.5)."""
        return tuple(b for b in BRANCHES if self.coefficient(b) != 0.0)


def config_field_names(cls: type) -> frozenset[str]:
    """Names of the fields of a config dataclass (used to route ablation overrides)."""
    return frozenset(f.name for f in fields(cls))
