"""Resources and code versions: all that ``assets/`` need from ``pipelines/``.

The assets import this module and no other module of ``pipelines/``; it imports nothing from
``assets/`` nor from the wiring (``definitions``, ``jobs``, ``schedules``, ``sensors``), so
the two packages never import each other in a loop (tests/test_import_structure.py).
``pipelines.eval_resources`` and ``pipelines.versions`` re-export parts of it.

**Settings.** Where outputs live and which configuration the pipeline runs with.
Defaults come from the environment (so `make run`, `make ui` and schedules agree):
``SHAMISA_PROFILE`` (default ``cpu-small``), ``SHAMISA_OVERRIDES`` (``;``-separated
``section.field=value``), ``SHAMISA_OUTPUTS`` (default ``<repo>/outputs``) and
``SHAMISA_PRISTINE`` (``default`` or a folder) and ``SHAMISA_WORLD_SIZE`` (training processes).

**Evaluation resources**: dataset roots, the MLflow store, evaluation settings.
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

**Code versions** that make Dagster's staleness ("unsynced") follow the configuration.

Dagster marks an asset stale when its ``code_version`` differs from the one recorded at its
last materialization, or when an input's data version changed since. Settings come from the
environment (``SHAMISA_PROFILE``, ``SHAMISA_OVERRIDES``, ``SHAMISA_PRISTINE``,
``SHAMISA_WORLD_SIZE`` and the evaluation variables above), read when
the code location loads. So each asset's code version is ``<code revision>+<hash>`` where the
hash covers the settings the asset's output depends on, *including its ancestors' settings*:
changing the corpus seed changes the versions of ``corpus_shards`` and of everything downstream
in one step, so "Materialize unsynced" re-runs the whole affected chain at once, and nothing
upstream of the change moves. Changing only evaluation settings leaves the corpus and the
encoder fresh.

Data versions are content hashes returned by the assets themselves (pristine manifest, shard
sha256, manifest hash, ``encoder.pt`` sha256, dataset/splits/feature versions).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, PipesSubprocessClient

from shamisa_core.config import ShamisaConfig, load_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS_DIR = REPO_ROOT / "config" / "datasets"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in run logs


# ------------------------------------------------------------------------------ settings
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


# ------------------------------------------------------------------------------ evaluation
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


# ------------------------------------------------------------------------------ code versions
def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cfg():
    """The configuration ``ShamisaSettings`` resolves from the same environment."""
    pristine = os.environ.get("SHAMISA_PRISTINE", "default")
    return load_profile(env_profile(), [*env_overrides(), f"corpus.pristine={pristine}"])


def settings_payloads() -> dict[str, Any]:
    """The settings each stage depends on (ancestors included), as plain JSON values."""
    cfg = _cfg().to_dict()
    pristine = {"pristine": cfg["corpus"]["pristine"], "min_side": cfg["corpus"]["min_side"],
                "profile": cfg["profile"]}
    corpus = {"profile": cfg["profile"], **{k: cfg[k] for k in ("engine", "group", "corpus")}}
    training = {"config": cfg, "world_size": int(os.environ.get("SHAMISA_WORLD_SIZE", "1") or 1)}
    ev = eval_resources()["evaluation"].model_dump()
    benchmark = {k: ev.get(k) for k in ("proxy_refs", "proxy_types", "proxy_levels", "seed")}
    features = {"benchmark": benchmark, "training": training,
                **{k: ev.get(k) for k in ("encoder", "crop_size")}}
    results = {"features": features, "evaluation": ev}
    return {"pristine": pristine, "corpus": corpus, "training": training,
            "benchmark": benchmark, "features": features, "results": results}


def code_version(stage: str, revision: str) -> str:
    """``<revision>+<hash of the settings of stage>`` (a key of :func:`settings_payloads`).

    ``revision`` is the asset's own code revision: bump it where the asset is defined when its
    code changes the output for the same settings.
    """
    return f"{revision}+{_digest(settings_payloads()[stage])}"
