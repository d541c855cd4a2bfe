"""Fixtures of the operations tests (helpers in ``opshelp``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opshelp import make_tiny_env


@pytest.fixture
def tiny_env(tmp_path: Path) -> dict[str, str]:
    """The environment of one tiny pipeline in ``tmp_path`` (``opshelp.make_tiny_env``)."""
    return make_tiny_env(tmp_path)
