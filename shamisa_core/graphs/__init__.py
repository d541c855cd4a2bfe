"""Relation graphs of SHAMISA (METHOD.md §3): node indexing, metadata graphs (RR, RD, DD, S),
feature graphs (kNN, transport) and their weighted combination."""

from .combine import GraphResult, branch_statistics, branch_weights, build_graph, merge_branches
from .config import (
    BRANCH_ALIASES,
    BRANCHES,
    FEATURE_BRANCHES,
    METADATA_BRANCHES,
    GraphConfig,
)
from .features import (
    TransportResult,
    knn_affinity,
    knn_edges,
    pairwise_assignment_score,
    prototype_logits,
    sinkhorn,
    transport_graph,
)
from .indexing import BatchShape, Edges, coalesce, dist_node_id, node_table, ref_node_id, upper_triangle
from .metadata import (
    dist_dist_edges,
    dist_dist_pairs,
    ref_dist_edges,
    ref_ref_edges,
    severity_strength,
    structural_edges,
    structural_pairs,
    varying_slot_severity,
)

__all__ = [
    "BRANCHES",
    "BRANCH_ALIASES",
    "FEATURE_BRANCHES",
    "METADATA_BRANCHES",
    "BatchShape",
    "Edges",
    "GraphConfig",
    "GraphResult",
    "TransportResult",
    "branch_statistics",
    "branch_weights",
    "build_graph",
    "coalesce",
    "dist_dist_edges",
    "dist_dist_pairs",
    "dist_node_id",
    "knn_affinity",
    "knn_edges",
    "merge_branches",
    "node_table",
    "pairwise_assignment_score",
    "prototype_logits",
    "ref_dist_edges",
    "ref_node_id",
    "ref_ref_edges",
    "severity_strength",
    "sinkhorn",
    "structural_edges",
    "structural_pairs",
    "transport_graph",
    "upper_triangle",
    "varying_slot_severity",
]
