"""The compositional distortion engine (METHOD.md §1)."""

from shamisa_core.distortions.registry import FAMILIES, REGISTRY, DistortionType, get_type

__all__ = ["FAMILIES", "REGISTRY", "DistortionType", "get_type"]
