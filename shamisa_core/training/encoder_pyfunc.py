"""Moved to :mod:`shamisa_core.serving.pyfunc` (kept for models logged before the move)."""

from shamisa_core.serving.pyfunc import ShamisaEncoderModel

__all__ = ["ShamisaEncoderModel"]
