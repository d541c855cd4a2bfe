"""Register quality models as ``shamisa-iqa`` versions and apply the champion rule in MLflow.

``register_iqa_model`` logs encoder + regressor as the pyfunc ``ShamisaIQAModel`` (from code)
in the active run and registers it; ``promote`` applies :func:`champion.decide_champion` and
moves the alias. ``version_tags`` are what a version carries for later comparisons and for
``shamisa compare``: per-dataset SRCC/PLCC and dataset versions, mean SRCC, the encoder's
profile, init, step, corpus hash and git commit.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shamisa_core import tracking
from shamisa_core.artifacts import ENCODER_FILE, REGRESSOR_FILE
from shamisa_core.tracking import IQA_MODEL_NAME

import mlflow  # noqa: E402  (after tracking: telemetry off)
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from .champion import (  # noqa: E402
    CHAMPION_ALIAS,
    SRCC_TAG,
    VERSION_TAG,
    ChampionDecision,
    decide_champion,
    finite,
    version_scores,
)

_ENTRY = Path(__file__).with_name("iqa_model_entry.py")


def result_scores(result: Mapping[str, Any]) -> dict[str, tuple[float, str | None]]:
    """``{dataset: (median SRCC, dataset version)}`` of the trained encoder in a result."""
    from shamisa_core.evaluation.report import dataset_names

    return {n: (float(result[n]["srcc"]), result[n].get("dataset_version"))
            for n in dataset_names(result) if finite(result[n].get("srcc"))}


def encoder_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """The filter tags of an encoder (from ``encoder.pt`` meta or a result's ``meta.encoder``):
    profile, init, arch, step, corpus hash, git commit, encoder fingerprint."""
    cfg = meta.get("config") or {}
    model = meta.get("model_config") or {}
    out = {"profile": cfg.get("profile") or meta.get("profile"),
           "init": model.get("init") or meta.get("init"),
           "arch": model.get("arch") or meta.get("arch"),
           "training_steps": meta.get("step"),
           "corpus_hash": meta.get("corpus_hash"),
           "git_commit": meta.get("git_commit") or cfg.get("git_commit"),
           "encoder_fingerprint": meta.get("fingerprint")}
    return {k: str(v) for k, v in out.items() if v is not None}


def version_tags(result: Mapping[str, Any], primary: str) -> dict[str, str]:
    """Tags of a registered version (see the module docstring)."""
    from shamisa_core.evaluation.report import dataset_names, mean_srcc

    names = dataset_names(result)
    tags = {f"{SRCC_TAG}{n}": repr(v) for n, (v, _) in result_scores(result).items()}
    tags.update({f"plcc/{n}": repr(float(result[n]["plcc"])) for n in names
                 if finite(result[n].get("plcc"))})
    tags.update({f"{VERSION_TAG}{n}": str(result[n]["dataset_version"]) for n in names
                 if result[n].get("dataset_version")})
    meta = result.get("meta") or {}
    mean = mean_srcc(result)
    tags.update({"mean_srcc": repr(mean) if mean is not None else "nan",
                 "regressor_dataset": primary, "crop_size": str(meta.get("crop_size")),
                 "higher_is_better": "true"})
    tags.update(encoder_tags(meta.get("encoder") or {}))
    return tags


def register_iqa_model(result: Mapping[str, Any], encoder_path: Path, regressor_path: Path,
                       primary: str) -> tuple[str, str]:
    """Log the pyfunc model in the active run and register it; returns (version, model URI)."""
    meta = result.get("meta") or {}
    with tempfile.TemporaryDirectory(prefix="shamisa-iqa-") as tmp:
        staged_encoder = Path(tmp) / ENCODER_FILE
        staged_regressor = Path(tmp) / REGRESSOR_FILE
        shutil.copyfile(encoder_path, staged_encoder)
        shutil.copyfile(regressor_path, staged_regressor)
        info = mlflow.pyfunc.log_model(
            name="shamisa-iqa",
            python_model=str(_ENTRY),
            artifacts={"encoder": str(staged_encoder), "regressor": str(staged_regressor)},
            pip_requirements=tracking.pip_requirements(),
            registered_model_name=IQA_MODEL_NAME,
            metadata={"encoder_fingerprint": (meta.get("encoder") or {}).get("fingerprint"),
                      "regressor_dataset": primary, "crop_size": meta.get("crop_size"),
                      "higher_is_better": True},
        )
    version = str(info.registered_model_version)
    return version, f"models:/{IQA_MODEL_NAME}/{version}"


def register_model_dir(folder: Path, name: str = IQA_MODEL_NAME, *,
                       metadata: Mapping[str, Any] | None = None) -> str:
    """Log a model folder (``encoder.pt`` + ``regressor.npz``) as the pyfunc quality model in
    the active run and register it under ``name``; returns the version."""
    info = mlflow.pyfunc.log_model(
        name="shamisa-iqa",
        python_model=str(_ENTRY),
        artifacts={"encoder": str(Path(folder) / ENCODER_FILE),
                   "regressor": str(Path(folder) / REGRESSOR_FILE)},
        pip_requirements=tracking.pip_requirements(),
        registered_model_name=name,
        metadata={"higher_is_better": True, **dict(metadata or {})},
    )
    return str(info.registered_model_version)


def current_champion(client: MlflowClient, name: str = IQA_MODEL_NAME,
                     ) -> tuple[str, dict[str, tuple[float, str | None]]] | None:
    """``(version, scores)`` of the model version holding the champion alias, or None."""
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    return str(mv.version), version_scores(mv.tags or {})


def promote(client: MlflowClient, result: Mapping[str, Any], version: str,
            before: tuple[str, dict[str, tuple[float, str | None]]] | None) -> ChampionDecision:
    """Apply the champion rule to ``version`` and move the alias if it wins."""
    health = ((result.get("meta") or {}).get("encoder") or {}).get("health")
    decision = decide_champion(result_scores(result), before[1] if before else None,
                               new_version=version, old_version=before[0] if before else None,
                               health=health)
    if decision.moved:
        client.set_registered_model_alias(IQA_MODEL_NAME, CHAMPION_ALIAS, version)
    client.set_model_version_tag(IQA_MODEL_NAME, version, "champion_decision",
                                 decision.reason[:5000])
    return decision


def update_champion_scores(result: Mapping[str, Any], *, mlflow_dir: str | Path,
                           version: str, run_id: str) -> dict[str, str]:
    """After a refresh: write the re-evaluated per-dataset SRCC (and dataset versions) into the
    champion version's tags, so later challengers are compared on every configured dataset."""
    from shamisa_core.evaluation.report import dataset_names
    from shamisa_core.evaluation.stages import primary_dataset

    uri = tracking.tracking_uri(Path(mlflow_dir))
    client = MlflowClient(uri, uri)
    tags = {k: v for k, v in version_tags(result, primary_dataset(dataset_names(result))).items()
            if k.startswith((SRCC_TAG, VERSION_TAG, "plcc/"))}
    tags["last_refresh_run"] = run_id
    for key, value in tags.items():
        client.set_model_version_tag(IQA_MODEL_NAME, version, key, value)
    return tags
