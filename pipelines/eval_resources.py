"""Resources of the evaluation stage: dataset roots, the MLflow store, evaluation settings.

Environment (read here only, never inside ``shamisa_core``):

* ``SHAMISA_DATASETS_DIR``: folder of ``<name>.yaml`` (or ``.json``) files, each with
  ``root: /path/to/dataset`` (default ``<repo>/config/datasets``);
* ``SHAMISA_OUTPUTS``: outputs root; the MLflow SQLite store is ``<outputs>/mlflow``;
* ``SHAMISA_EVAL_ENCODER``: encoder to evaluate (path or MLflow URI; default: the newest
  trained one, ``<outputs>/models/latest/encoder.pt``);
* ``SHAMISA_PROXY_REFS``, ``SHAMISA_PROXY_TYPES`` (comma-separated engine keys or ``all``),
  ``SHAMISA_PROXY_LEVELS`` (comma-separated t in [0, 4]): the proxy benchmark's size;
* ``SHAMISA_EVAL_CROP``: crop size (default: the encoder's training patch size);
* ``SHAMISA_EVAL_FR``: ``1`` to run the full-reference protocol (``full_reference_table``).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource

from pipelines.resources import REPO_ROOT

DEFAULT_DATASETS_DIR = REPO_ROOT / "config" / "datasets"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in run logs


def _outputs_root() -> Path:
    return Path(os.environ.get("SHAMISA_OUTPUTS", str(REPO_ROOT / "outputs")))


class DatasetRoots(ConfigurableResource):
    """The config folder naming the benchmark roots (one ``<name>.yaml`` per dataset)."""

    config_dir: str = str(DEFAULT_DATASETS_DIR)

    def scan(self):  # noqa: ANN201 - shamisa_core.evaluation.roots.RootsScan
        """The configured roots and the unusable files (``roots.scan_dataset_roots``)."""
        from shamisa_core.evaluation.roots import scan_dataset_roots

        return scan_dataset_roots(self.config_dir)

    def roots(self) -> dict[str, str | None]:
        """The proxy plus every configured root (``roots.benchmark_roots``)."""
        from shamisa_core.evaluation.roots import benchmark_roots

        return benchmark_roots(self.scan())

    def root_of(self, name: str) -> str | None:
        """The root of dataset ``name`` (None for an unconfigured proxy); KeyError otherwise."""
        roots = self.roots()
        if name in roots:
            return roots[name]
        raise KeyError(f"dataset {name!r} has no root in {self.config_dir} "
                       f"(add {name}.yaml with `root: /path`)")


class MlflowTracking(ConfigurableResource):
    """The MLflow SQLite store (``<dir>/mlflow.db``) and the evaluation experiment."""

    mlflow_dir: str = str(_outputs_root() / "mlflow")
    experiment: str = "shamisa-evaluation"

    @property
    def path(self) -> Path:
        """The store folder."""
        return Path(self.mlflow_dir)

    def uri(self) -> str:
        """``sqlite:///<dir>/mlflow.db``."""
        from shamisa_core.tracking import tracking_uri

        return tracking_uri(self.path)


class EvaluationSettings(ConfigurableResource):
    """What to evaluate and how: encoder, crop size, proxy size, cross, FR, registration.

    ``fr`` turns on the full-reference protocol (§7.8) in the ``full_reference_table`` asset
    (``SHAMISA_EVAL_FR=1``); it then also feeds ``evaluation_table``."""

    encoder: str = ""
    crop_size: int = 0
    proxy_refs: int = 0
    proxy_types: list[str] = []
    proxy_levels: list[float] = []
    seed: int = 27
    cross: bool = True
    fr: bool = False
    register_model: bool = True

    def encoder_uri(self, models_dir: Path) -> str:
        """The encoder to evaluate: ``encoder`` or the newest trained ``latest/encoder.pt``."""
        return self.encoder or str(models_dir / "latest" / "encoder.pt")

    def proxy_spec(self):  # noqa: ANN201 - shamisa_core.evaluation.proxy.ProxySpec
        """The proxy spec: ``prepared.DEFAULT_PROXY_SPEC`` with the fields set here."""
        from shamisa_core.evaluation.prepared import proxy_spec_with

        return proxy_spec_with(self.proxy_refs, self.proxy_types, self.proxy_levels)


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "").strip()
    if not raw or raw.lower() in ("all", "default"):
        return []
    return [s.strip() for s in raw.split(",") if s.strip()]


def eval_resources() -> dict[str, object]:
    """The evaluation resources configured from the environment (module docstring)."""
    return {
        "dataset_roots": DatasetRoots(
            config_dir=os.environ.get("SHAMISA_DATASETS_DIR", str(DEFAULT_DATASETS_DIR))),
        "mlflow_tracking": MlflowTracking(mlflow_dir=str(_outputs_root() / "mlflow")),
        "evaluation": EvaluationSettings(
            encoder=os.environ.get("SHAMISA_EVAL_ENCODER", ""),
            crop_size=int(os.environ.get("SHAMISA_EVAL_CROP", "0") or 0),
            proxy_refs=int(os.environ.get("SHAMISA_PROXY_REFS", "0") or 0),
            proxy_types=_env_list("SHAMISA_PROXY_TYPES"),
            proxy_levels=[float(v) for v in _env_list("SHAMISA_PROXY_LEVELS")],
            fr=os.environ.get("SHAMISA_EVAL_FR", "").strip().lower() in ("1", "true", "yes"),
        ),
    }
