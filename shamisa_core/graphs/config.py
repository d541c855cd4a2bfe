"""Re-export: the graph settings live with the rest of the configuration, in
:mod:`shamisa_core.config.graph` (torch-free, so that ``shamisa_core.config`` stays cheap)."""

from shamisa_core.config.graph import (  # noqa: F401
    BRANCH_ALIASES,
    BRANCHES,
    FEATURE_BRANCHES,
    METADATA_BRANCHES,
    GraphConfig,
    KnnMetric,
    SeverityCurve,
    StructuralRule,
    TransportNorm,
    TransportScore,
    TransportSparse,
    Weighting,
    config_field_names,
)
