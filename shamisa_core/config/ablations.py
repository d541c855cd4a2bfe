"""Graph and loss ablations of METHOD.md §4.6 as field overrides (A0-A4, B1-B8, C1, E1, F1).

:data:`ABLATIONS` maps each ablation id to overrides routed to :class:`GraphConfig` or
:class:`LossConfig`; :func:`apply_ablation` applies one. The engine ablations (D1-D4) are in
:mod:`shamisa_core.config`. Torch-free (re-exported by :mod:`shamisa_core.objective`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shamisa_core.config.graph import GraphConfig, config_field_names
from shamisa_core.config.loss import LossConfig

_METADATA_OFF = {"coef_structural": 0.0, "coef_ref_dist": 0.0, "coef_ref_ref": 0.0, "coef_dist_dist": 0.0}

ABLATIONS: dict[str, dict[str, Any]] = {
    "A0": {},
    "A1": {"soft": False, "knn_soft": False},  # binary relations
    "A2": {"lambda_reg": 0.0},  # no edge regulariser
    "A3": {"weighting": "none"},  # no adaptive branch weighting (pi_b = 1)
    "A4": {"weighting": "learned"},  # aggregator trained (no stop-gradient)
    "B1": {"coef_transport": 0.0},  # drop transport
    "B2": {"coef_knn": 0.0},  # drop kNN
    "B3": {"coef_ref_dist": 0.0},  # drop ref-dist
    "B4": {"coef_dist_dist": 0.0},  # drop dist-dist
    "B5": {"coef_ref_ref": 0.0},  # drop ref-ref
    "B6": {**_METADATA_OFF, "coef_transport": 0.0},  # kNN only
    "B7": {"coef_knn": 0.0, "coef_transport": 0.0},  # metadata only
    "B8": dict(_METADATA_OFF),  # structure only (kNN + transport)
    "C1": {"transport_sparse": "topk_each", "transport_sparse_k": 8},  # per-row transport
    "E1": {"gamma": 0.0},  # no prototype alignment
    "F1": {"severity_curve": "original"},  # reciprocal severity curve
}

_GRAPH_FIELDS = config_field_names(GraphConfig)
_LOSS_FIELDS = config_field_names(LossConfig)
assert not (_GRAPH_FIELDS & _LOSS_FIELDS), "GraphConfig and LossConfig field names must not overlap"


def apply_ablation(
    graph_cfg: GraphConfig, loss_cfg: LossConfig, name: str
) -> tuple[GraphConfig, LossConfig]:
    """Return copies of the configs with ablation ``name`` (METHOD §4.6) applied."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; known: {sorted(ABLATIONS)}")
    overrides = ABLATIONS[name]
    g = {k: v for k, v in overrides.items() if k in _GRAPH_FIELDS}
    lo = {k: v for k, v in overrides.items() if k in _LOSS_FIELDS}
    unknown = set(overrides) - set(g) - set(lo)
    if unknown:  # pragma: no cover - guarded by tests
        raise KeyError(f"ablation {name!r} sets unknown fields {sorted(unknown)}")
    return dataclasses.replace(graph_cfg, **g), dataclasses.replace(loss_cfg, **lo)
