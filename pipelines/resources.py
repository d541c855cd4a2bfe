"""Resources: where outputs live and which configuration the pipeline runs with.

Defaults come from the environment (so `make run`, `make ui` and schedules agree):
``SHAMISA_PROFILE`` (default ``cpu-small``), ``SHAMISA_OVERRIDES`` (``;``-separated
``section.field=value``), ``SHAMISA_OUTPUTS`` (default ``<repo>/outputs``) and
``SHAMISA_PRISTINE`` (``default`` or a folder) and ``SHAMISA_WORLD_SIZE`` (training processes).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource, PipesSubprocessClient

from shamisa_core.config import ShamisaConfig, load_profile

REPO_ROOT = Path(__file__).resolve().parents[1]


def env_profile() -> str:
    """The profile named by ``SHAMISA_PROFILE`` (default ``cpu-small``)."""
    return os.environ.get("SHAMISA_PROFILE", "cpu-small")


def env_overrides() -> list[str]:
    """``SHAMISA_OVERRIDES`` split on ``;``."""
    raw = os.environ.get("SHAMISA_OVERRIDES", "")
    return [s.strip() for s in raw.split(";") if s.strip()]


def env_config() -> ShamisaConfig:
    """The configuration the environment selects (used for partition definitions)."""
    return load_profile(env_profile(), env_overrides())


class ShamisaSettings(ConfigurableResource):
    """The pipeline configuration: a profile plus overrides, and the pristine source."""

    profile: str = "cpu-small"
    overrides: list[str] = []
    pristine: str = "default"
    world_size: int = 1  # >1: the encoder asset launches torchrun through Dagster Pipes

    def config(self) -> ShamisaConfig:
        """The resolved :class:`ShamisaConfig`."""
        return load_profile(self.profile, [*self.overrides, f"corpus.pristine={self.pristine}"])


class OutputPaths(ConfigurableResource):
    """Paths of large artefacts under one outputs root (never through the I/O manager)."""

    root: str = str(REPO_ROOT / "outputs")

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def pristine_default_dir(self) -> Path:
        return self.root_path / "pristine" / "default"

    def corpus_dir(self, profile: str) -> Path:
        return self.root_path / "corpus" / profile

    def models_dir(self) -> Path:
        return self.root_path / "models"

    def eval_dir(self) -> Path:
        return self.root_path / "evaluation"

    def mlflow_dir(self) -> Path:
        return self.root_path / "mlflow"


def default_resources() -> dict[str, object]:
    """Resources configured from the environment."""
    return {
        "settings": ShamisaSettings(
            profile=env_profile(),
            overrides=env_overrides(),
            pristine=os.environ.get("SHAMISA_PRISTINE", "default"),
            world_size=int(os.environ.get("SHAMISA_WORLD_SIZE", "1")),
        ),
        "pipes_subprocess_client": PipesSubprocessClient(),
        "paths": OutputPaths(root=os.environ.get("SHAMISA_OUTPUTS", str(REPO_ROOT / "outputs"))),
    }
