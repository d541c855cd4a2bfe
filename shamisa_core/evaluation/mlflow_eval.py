"""Log an evaluation to MLflow: one parent run, a nested run per dataset, the registration.

One **parent run** per evaluation (``shamisa.kind=evaluation``, or ``refresh`` for the weekly
re-evaluation of the champion) with a **nested run per dataset**. The parent carries
``mlflow.log_table`` of the evaluation table (datasets x {SRCC, PLCC}, trained and each twin)
and of the cross-dataset table, the metrics ``srcc/<dataset>``, ``plcc/<dataset>``,
``<twin>_srcc/<dataset>``, ``gain_vs_<twin>/<dataset>`` (``init_twin``, ``random_twin``),
``mean_srcc``, cross metrics ``cross_srcc/<source>_to_<target>``, the whole result as
``evaluation.json``, and the filter tags (profile, init, encoder version, corpus hash, git
commit). Registration and the champion rule live in ``shamisa_core.serving``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shamisa_core import tracking
from shamisa_core.tracking import CHAMPION_ALIAS, IQA_MODEL_NAME

import mlflow  # noqa: E402  (after tracking: telemetry off)
from mlflow.tracking import MlflowClient  # noqa: E402

from shamisa_core.serving.champion import ChampionDecision, finite as _finite  # noqa: E402
from shamisa_core.serving.registry import (  # noqa: E402
    current_champion,
    encoder_tags,
    promote,
    register_iqa_model,
    result_scores,
    update_champion_scores,
    version_tags,
)

from .report import cross_frame, dataset_names, mean_srcc, summary_frame, twin_roles  # noqa: E402
from .roots import PROXY  # noqa: E402
from .stages import primary_dataset  # noqa: E402

EXPERIMENT = "shamisa-evaluation"


@dataclass(frozen=True)
class EvaluationLog:
    """What :func:`log_evaluation` wrote: runs, the model version and the champion decision."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    dataset_run_ids: Mapping[str, str]
    model_version: str | None = None
    model_uri: str | None = None
    decision: ChampionDecision | None = None
    kind: str = "evaluation"
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        out = asdict(self)
        out["decision"] = self.decision.to_json() if self.decision else None
        return out


# ----------------------------------------------------------------------------------------------
# Logging


def _metric_key(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Every parent-run metric of a result (finite values only)."""
    out: dict[str, float] = {}
    roles = twin_roles(result)
    twins = result.get("twins") or {}
    for name in dataset_names(result):
        for metric in ("srcc", "plcc"):
            if _finite(result[name].get(metric)):
                out[f"{metric}/{name}"] = float(result[name][metric])
            for role in roles:
                value = (twins[role].get(name) or {}).get(metric)
                if _finite(value):
                    out[f"{role}_{metric}/{name}"] = float(value)
        for role in roles:
            b = (twins[role].get(name) or {}).get("srcc")
            if _finite(b) and _finite(result[name].get("srcc")):
                out[f"gain_vs_{role}/{name}"] = float(result[name]["srcc"]) - float(b)
    for prefix, section in (("", result), *((f"{r}_", twins[r]) for r in roles)):
        for src, targets in (section.get("cross") or {}).items():
            for tgt, e in targets.items():
                for metric in ("srcc", "plcc"):
                    if _finite(e.get(metric)):
                        out[f"{prefix}cross_{metric}/{src}_to_{tgt}"] = float(e[metric])
        for name, e in (section.get("fr") or {}).items():
            for metric in ("srcc", "plcc"):
                if _finite(e.get(metric)):
                    out[f"{prefix}fr_{metric}/{name}"] = float(e[metric])
    mean = mean_srcc(result)
    if mean is not None:
        out["mean_srcc"] = mean
    for role in roles:
        m = mean_srcc(result, role)
        if m is not None:
            out[f"{role}_mean_srcc"] = m
            if mean is not None:
                out[f"gain_vs_{role}/mean"] = mean - m
    return {_metric_key(k): v for k, v in out.items()}


def evaluation_id(result: Mapping[str, Any]) -> str:
    """Hash of what was evaluated: encoder fingerprint, crop size and dataset versions."""
    meta = result.get("meta") or {}
    parts = [str((meta.get("encoder") or {}).get("fingerprint")), str(meta.get("crop_size"))]
    parts += [f"{n}={result[n].get('dataset_version')}" for n in sorted(dataset_names(result))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _log_dataset_run(name: str, entry: Mapping[str, Any],
                     twins: Mapping[str, Mapping[str, Any]]) -> str:
    """One nested run: dataset params, medians, per-split values (as steps), per-type table;
    each twin's values prefixed with its role (``random_twin_srcc``, ...)."""
    import pandas as pd

    with mlflow.start_run(run_name=name, nested=True) as run:
        mlflow.set_tags({"shamisa.dataset": name, "shamisa.kind": "dataset"})
        params = {"dataset_version": entry.get("dataset_version"),
                  "splits_version": entry.get("splits_version"),
                  "split_method": entry.get("split_method"), "label": entry.get("label"),
                  "alpha": entry.get("alpha"), "n_splits": entry.get("n_splits")}
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        metrics = {k: float(entry[k]) for k in ("srcc", "plcc", "krcc", "rmse", "alpha",
                                                 "median_val_srcc", "n_images", "n_missing",
                                                 "n_failed") if _finite(entry.get(k))}
        for role, base in twins.items():
            metrics.update({f"{role}_{k}": float(base[k]) for k in ("srcc", "plcc", "alpha")
                            if _finite(base.get(k))})
        mlflow.log_metrics(metrics)
        for key in ("srcc", "plcc"):
            for step, v in enumerate(entry.get(f"{key}_splits") or []):
                if _finite(v):
                    mlflow.log_metric(f"{key}_split", float(v), step=step)
            for role, base in twins.items():
                for step, v in enumerate(base.get(f"{key}_splits") or []):
                    if _finite(v):
                        mlflow.log_metric(f"{role}_{key}_split", float(v), step=step)
        per_type = entry.get("per_type") or {}
        if per_type:
            mlflow.log_table(pd.DataFrame([{"distortion_type": k, **v} for k, v in per_type.items()]),
                             artifact_file="per_type.json")
        mlflow.log_dict(dict(entry), "result.json")
        return run.info.run_id


def log_evaluation(result: Mapping[str, Any], *, mlflow_dir: str | Path,
                   experiment: str = EXPERIMENT, register: bool = True,
                   encoder_path: str | Path | None = None,
                   regressor_path: str | Path | None = None, kind: str = "evaluation",
                   run_name: str | None = None, tags: Mapping[str, str] | None = None,
                   pictures: Mapping[str, str | Path] | None = None) -> EvaluationLog:
    """Log ``result`` (``benchmark.evaluate_encoder``'s dict) as one parent run with nested
    dataset runs; register encoder + regressor as ``shamisa-iqa`` and apply the champion rule.

    ``encoder_path`` defaults to the evaluated ``encoder.pt``, ``regressor_path`` to the final
    regressor of ``primary_dataset`` written by the evaluation.
    """
    exp_id = tracking.setup(Path(mlflow_dir), experiment)
    uri = tracking.tracking_uri(Path(mlflow_dir))
    client = MlflowClient(uri, uri)
    names = dataset_names(result)
    meta = result.get("meta") or {}
    enc = meta.get("encoder") or {}
    primary = primary_dataset(names)
    metrics = evaluation_metrics(result)
    with mlflow.start_run(run_name=run_name or f"{kind}-{str(enc.get('fingerprint'))[:8]}",
                          experiment_id=exp_id) as parent:
        mlflow.set_tags({"shamisa.kind": kind, "shamisa.evaluation_id": evaluation_id(result),
                         "shamisa.encoder_fingerprint": str(enc.get("fingerprint")),
                         "shamisa.encoder_source": str(enc.get("source")),
                         "shamisa.datasets": ",".join(names),
                         **{f"shamisa.{k}": v for k, v in encoder_tags(enc).items()},
                         **dict(tags or {})})
        params = {"crop_size": meta.get("crop_size"), "seed": meta.get("seed"),
                  "datasets": ",".join(names), "primary_dataset": primary,
                  "encoder_arch": enc.get("arch"), "encoder_step": enc.get("step"),
                  "twins": ",".join(twin_roles(result)) or "none",
                  "twin_seed": next(iter((meta.get("twins") or {}).values()), {}).get("seed"),
                  "n_alphas": (meta.get("alphas") or {}).get("count"),
                  "proxy_spec": str(meta.get("proxy_spec")) if PROXY in names else None}
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics(metrics)
        mlflow.log_table(summary_frame(result), artifact_file="evaluation_table.json")
        if result.get("cross"):
            mlflow.log_table(cross_frame(result), artifact_file="cross_dataset_table.json")
        mlflow.log_dict(dict(result), "evaluation.json")
        for picture in (pictures or {}).values():
            mlflow.log_artifact(str(picture), artifact_path="pictures")
        twins = result.get("twins") or {}
        runs = {n: _log_dataset_run(n, result[n], {r: twins[r][n] for r in twins if n in twins[r]})
                for n in names}
        version = model_uri = None
        decision = None
        if register:
            enc_path = Path(encoder_path or enc.get("path") or "")
            reg_path = Path(regressor_path or result[primary].get("regressor") or "")
            if not enc_path.is_file() or not reg_path.is_file():
                raise FileNotFoundError(f"cannot register: encoder {enc_path} or regressor "
                                        f"{reg_path} missing")
            before = current_champion(client)
            version, model_uri = register_iqa_model(result, enc_path, reg_path, primary)
            for key, value in version_tags(result, primary).items():
                client.set_model_version_tag(IQA_MODEL_NAME, version, key, value)
            decision = promote(client, result, version, before)
            mlflow.set_tags({"shamisa.model_version": version,
                             "shamisa.champion_moved": str(decision.moved).lower(),
                             "shamisa.champion_reason": decision.reason[:5000]})
            mlflow.log_metric("champion_moved", float(decision.moved))
            mlflow.log_dict(decision.to_json(), "champion_decision.json")
        return EvaluationLog(tracking_uri=uri, experiment_id=exp_id,
                             parent_run_id=parent.info.run_id, dataset_run_ids=runs,
                             model_version=version, model_uri=model_uri, decision=decision,
                             kind=kind, metrics=metrics)


@dataclass(frozen=True)
class RefreshRecord:
    """Outcome of :func:`refresh_champion`: which version was re-evaluated and the run."""

    version: str | None
    log: EvaluationLog | None
    result: Mapping[str, Any] | None
    reason: str


def refresh_champion(datasets: Mapping[str, Any], *, mlflow_dir: str | Path,
                     cache_dir: str | Path, experiment: str = EXPERIMENT,
                     **evaluate_kwargs: Any) -> RefreshRecord:
    """Re-evaluate the ``champion`` version on ``datasets`` (the weekly ``benchmark_refresh``):
    one ``refresh`` parent run, nothing registered, the champion's score tags updated."""
    from .stages import evaluate_encoder

    uri = tracking.tracking_uri(Path(mlflow_dir))
    champ = current_champion(MlflowClient(uri, uri))
    if champ is None:
        return RefreshRecord(None, None, None, f"no {CHAMPION_ALIAS} registered yet; nothing to refresh")
    version = champ[0]
    result = evaluate_encoder(f"models:/{IQA_MODEL_NAME}/{version}", datasets,
                              cache_dir=cache_dir, tracking_uri=uri, **evaluate_kwargs)
    log = log_evaluation(result, mlflow_dir=mlflow_dir, experiment=experiment, register=False,
                         kind="refresh", run_name=f"refresh-v{version}",
                         tags={"shamisa.model_version": version})
    update_champion_scores(result, mlflow_dir=mlflow_dir, version=version, run_id=log.parent_run_id)
    return RefreshRecord(version, log, result,
                         f"re-evaluated {CHAMPION_ALIAS} v{version} on {', '.join(datasets)}")


__all__: Sequence[str] = [
    "EXPERIMENT",
    "ChampionDecision",
    "EvaluationLog",
    "RefreshRecord",
    "current_champion",
    "evaluation_id",
    "evaluation_metrics",
    "log_evaluation",
    "refresh_champion",
    "result_scores",
    "update_champion_scores",
]
