"""Log an evaluation to MLflow, register the quality model, and move the champion alias.

One **parent run** per evaluation (``shamisa.kind=evaluation``, or ``refresh`` for the weekly
re-evaluation of the champion) with a **nested run per dataset**. The parent carries
``mlflow.log_table`` of the evaluation table (datasets x {SRCC, PLCC}, trained and baseline) and
of the cross-dataset table, the metrics ``srcc/<dataset>``, ``plcc/<dataset>``,
``baseline_srcc/<dataset>``, ``baseline_plcc/<dataset>``, ``mean_srcc``, cross metrics
``cross_srcc/<source>_to_<target>``, and the whole result as ``evaluation.json``.

The encoder plus one regressor (``benchmark.primary_dataset``) are registered as the pyfunc
model ``shamisa-iqa`` (:class:`shamisa_core.scoring.ShamisaIQAModel`, higher = better,
DECISIONS 16). Each version is tagged with its per-dataset SRCC and dataset versions. The alias
``champion`` moves to a new version **only** when the new version's mean SRCC beats the
champion's over the datasets both were evaluated on (same name and same dataset version);
without a common dataset it does not move. The decision and its reason are returned
(:class:`ChampionDecision`) and written as tags on the run and the version.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shamisa_core import tracking
from shamisa_core.tracking import CHAMPION_ALIAS, IQA_MODEL_NAME

import mlflow  # noqa: E402  (after tracking: telemetry off)
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from .benchmark import (  # noqa: E402
    PROXY,
    cross_frame,
    dataset_names,
    mean_srcc,
    primary_dataset,
    summary_frame,
)

EXPERIMENT = "shamisa-evaluation"
SRCC_TAG = "srcc/"
VERSION_TAG = "dataset_version/"


@dataclass(frozen=True)
class ChampionDecision:
    """Whether the ``champion`` alias moved to ``new_version``, and why."""

    moved: bool
    reason: str
    new_version: str | None
    old_version: str | None
    new_mean: float | None
    old_mean: float | None
    datasets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return {**asdict(self), "datasets": list(self.datasets)}

    def markdown(self) -> str:
        """A short markdown table for Dagster metadata."""
        def num(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        return ("| field | value |\n|---|---|\n"
                f"| moved | {'yes' if self.moved else 'no'} |\n"
                f"| new version | {self.new_version or '-'} |\n"
                f"| champion before | {self.old_version or '-'} |\n"
                f"| new mean SRCC | {num(self.new_mean)} |\n"
                f"| champion mean SRCC | {num(self.old_mean)} |\n"
                f"| compared on | {', '.join(self.datasets) or '-'} |\n"
                f"| reason | {self.reason} |")


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
# Scores and the champion rule (pure functions)

Scores = Mapping[str, tuple[float, str | None]]


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def result_scores(result: Mapping[str, Any]) -> dict[str, tuple[float, str | None]]:
    """``{dataset: (median SRCC, dataset version)}`` of the trained encoder in a result."""
    return {n: (float(result[n]["srcc"]), result[n].get("dataset_version"))
            for n in dataset_names(result) if _finite(result[n].get("srcc"))}


def version_scores(tags: Mapping[str, str]) -> dict[str, tuple[float, str | None]]:
    """The same from a model version's tags (``srcc/<d>``, ``dataset_version/<d>``)."""
    out: dict[str, tuple[float, str | None]] = {}
    for key, value in tags.items():
        if key.startswith(SRCC_TAG):
            name = key[len(SRCC_TAG):]
            try:
                v = float(value)
            except ValueError:
                continue
            if math.isfinite(v):
                out[name] = (v, tags.get(VERSION_TAG + name))
    return out


def decide_champion(new: Scores, champion: Scores | None, *, new_version: str | None,
                    old_version: str | None) -> ChampionDecision:
    """The champion rule: move only if the new mean SRCC is strictly higher over the datasets
    both were scored on (same name and, where both record it, the same dataset version)."""
    if champion is None or old_version is None:
        mean = sum(v for v, _ in new.values()) / len(new) if new else None
        return ChampionDecision(True, f"no {CHAMPION_ALIAS} yet: version {new_version} becomes "
                                f"{CHAMPION_ALIAS}", new_version, None, mean, None,
                                tuple(sorted(new)))
    common, mismatched = [], []
    for name in sorted(set(new) & set(champion)):
        nv, cv = new[name][1], champion[name][1]
        (common if nv is None or cv is None or nv == cv else mismatched).append(name)
    if not common:
        why = (f"no dataset in common with {CHAMPION_ALIAS} v{old_version} "
               f"(new: {', '.join(sorted(new)) or 'none'}; {CHAMPION_ALIAS}: "
               f"{', '.join(sorted(champion)) or 'none'}")
        if mismatched:
            why += f"; other dataset versions: {', '.join(mismatched)}"
        return ChampionDecision(False, why + f"); {CHAMPION_ALIAS} stays v{old_version}",
                                new_version, old_version, None, None, ())
    new_mean = sum(new[n][0] for n in common) / len(common)
    old_mean = sum(champion[n][0] for n in common) / len(common)
    names = ", ".join(common)
    if new_mean > old_mean:
        reason = (f"mean SRCC {new_mean:.4f} > {old_mean:.4f} of v{old_version} on {names}: "
                  f"{CHAMPION_ALIAS} moves to v{new_version}")
    else:
        reason = (f"mean SRCC {new_mean:.4f} does not beat {old_mean:.4f} of v{old_version} on "
                  f"{names}: {CHAMPION_ALIAS} stays v{old_version}")
    if mismatched:
        reason += f" (not compared, dataset version differs: {', '.join(mismatched)})"
    return ChampionDecision(new_mean > old_mean, reason, new_version, old_version,
                            new_mean, old_mean, tuple(common))


def current_champion(client: MlflowClient, name: str = IQA_MODEL_NAME,
                     ) -> tuple[str, dict[str, tuple[float, str | None]]] | None:
    """``(version, scores)`` of the model version holding the champion alias, or None."""
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    return str(mv.version), version_scores(mv.tags or {})


# ----------------------------------------------------------------------------------------------
# Logging


def _metric_key(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Every parent-run metric of a result (finite values only)."""
    out: dict[str, float] = {}
    base = result.get("baseline") or {}
    for name in dataset_names(result):
        for metric in ("srcc", "plcc"):
            if _finite(result[name].get(metric)):
                out[f"{metric}/{name}"] = float(result[name][metric])
            if _finite((base.get(name) or {}).get(metric)):
                out[f"baseline_{metric}/{name}"] = float(base[name][metric])
    for prefix, section in (("", result), ("baseline_", base)):
        for src, targets in (section.get("cross") or {}).items():
            for tgt, e in targets.items():
                for metric in ("srcc", "plcc"):
                    if _finite(e.get(metric)):
                        out[f"{prefix}cross_{metric}/{src}_to_{tgt}"] = float(e[metric])
        for name, e in (section.get("fr") or {}).items():
            for metric in ("srcc", "plcc"):
                if _finite(e.get(metric)):
                    out[f"{prefix}fr_{metric}/{name}"] = float(e[metric])
    for key, value in (("mean_srcc", mean_srcc(result)),
                       ("baseline_mean_srcc", mean_srcc(result, baseline=True) if base else None)):
        if value is not None:
            out[key] = float(value)
    return {_metric_key(k): v for k, v in out.items()}


def evaluation_id(result: Mapping[str, Any]) -> str:
    """Hash of what was evaluated: encoder fingerprint, crop size and dataset versions."""
    meta = result.get("meta") or {}
    parts = [str((meta.get("encoder") or {}).get("fingerprint")), str(meta.get("crop_size"))]
    parts += [f"{n}={result[n].get('dataset_version')}" for n in sorted(dataset_names(result))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _log_dataset_run(name: str, entry: Mapping[str, Any], base: Mapping[str, Any] | None) -> str:
    """One nested run: dataset params, medians, per-split values (as steps), per-type table."""
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
        if base:
            metrics.update({f"baseline_{k}": float(base[k]) for k in ("srcc", "plcc", "alpha")
                            if _finite(base.get(k))})
        mlflow.log_metrics(metrics)
        for key in ("srcc", "plcc"):
            for step, v in enumerate(entry.get(f"{key}_splits") or []):
                if _finite(v):
                    mlflow.log_metric(f"{key}_split", float(v), step=step)
            for step, v in enumerate((base or {}).get(f"{key}_splits") or []):
                if _finite(v):
                    mlflow.log_metric(f"baseline_{key}_split", float(v), step=step)
        per_type = entry.get("per_type") or {}
        if per_type:
            mlflow.log_table(pd.DataFrame([{"distortion_type": k, **v} for k, v in per_type.items()]),
                             artifact_file="per_type.json")
        mlflow.log_dict(dict(entry), "result.json")
        return run.info.run_id


def _register(result: Mapping[str, Any], encoder_path: Path, regressor_path: Path,
              primary: str) -> tuple[str, str]:
    """Log the pyfunc model in the active run and register it; returns (version, model URI).

    The artefacts are staged as ``encoder.pt`` and ``regressor.npz`` (the names
    ``scoring.load_model`` looks for); the model is logged from code (``pyfunc_model.py``).
    """
    import shutil
    import tempfile

    from shamisa_core.scoring import ENCODER_FILE, REGRESSOR_FILE

    from . import pyfunc_model

    meta = result.get("meta") or {}
    with tempfile.TemporaryDirectory(prefix="shamisa-iqa-") as tmp:
        staged_encoder = Path(tmp) / ENCODER_FILE
        staged_regressor = Path(tmp) / REGRESSOR_FILE
        shutil.copyfile(encoder_path, staged_encoder)
        shutil.copyfile(regressor_path, staged_regressor)
        info = mlflow.pyfunc.log_model(
            name="shamisa-iqa",
            python_model=str(Path(pyfunc_model.__file__)),
            artifacts={"encoder": str(staged_encoder), "regressor": str(staged_regressor)},
            pip_requirements=tracking.pip_requirements(),
            registered_model_name=IQA_MODEL_NAME,
            metadata={"encoder_fingerprint": (meta.get("encoder") or {}).get("fingerprint"),
                      "regressor_dataset": primary, "crop_size": meta.get("crop_size"),
                      "higher_is_better": True},
        )
    version = str(info.registered_model_version)
    return version, f"models:/{IQA_MODEL_NAME}/{version}"


def _version_tags(result: Mapping[str, Any], primary: str) -> dict[str, str]:
    tags = {f"{SRCC_TAG}{n}": repr(v) for n, (v, _) in result_scores(result).items()}
    tags.update({f"{VERSION_TAG}{n}": str(result[n].get("dataset_version"))
                 for n in dataset_names(result)})
    meta = result.get("meta") or {}
    mean = mean_srcc(result)
    tags.update({"mean_srcc": repr(mean) if mean is not None else "nan",
                 "regressor_dataset": primary,
                 "encoder_fingerprint": str((meta.get("encoder") or {}).get("fingerprint")),
                 "crop_size": str(meta.get("crop_size")), "higher_is_better": "true"})
    return tags


def log_evaluation(result: Mapping[str, Any], *, mlflow_dir: str | Path,
                   experiment: str = EXPERIMENT, register: bool = True,
                   encoder_path: str | Path | None = None,
                   regressor_path: str | Path | None = None, kind: str = "evaluation",
                   run_name: str | None = None, tags: Mapping[str, str] | None = None,
                   ) -> EvaluationLog:
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
                         "shamisa.datasets": ",".join(names), **dict(tags or {})})
        params = {"crop_size": meta.get("crop_size"), "seed": meta.get("seed"),
                  "datasets": ",".join(names), "primary_dataset": primary,
                  "encoder_arch": enc.get("arch"), "encoder_step": enc.get("step"),
                  "baseline": bool(result.get("baseline")),
                  "baseline_seed": (meta.get("baseline_encoder") or {}).get("seed"),
                  "n_alphas": (meta.get("alphas") or {}).get("count"),
                  "proxy_spec": str(meta.get("proxy_spec")) if PROXY in names else None}
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics(metrics)
        mlflow.log_table(summary_frame(result), artifact_file="evaluation_table.json")
        if result.get("cross"):
            mlflow.log_table(cross_frame(result), artifact_file="cross_dataset_table.json")
        mlflow.log_dict(dict(result), "evaluation.json")
        base = result.get("baseline") or {}
        runs = {n: _log_dataset_run(n, result[n], base.get(n)) for n in names}
        version = model_uri = None
        decision = None
        if register:
            enc_path = Path(encoder_path or enc.get("path") or "")
            reg_path = Path(regressor_path or result[primary].get("regressor") or "")
            if not enc_path.is_file() or not reg_path.is_file():
                raise FileNotFoundError(f"cannot register: encoder {enc_path} or regressor "
                                        f"{reg_path} missing")
            before = current_champion(client)
            version, model_uri = _register(result, enc_path, reg_path, primary)
            for key, value in _version_tags(result, primary).items():
                client.set_model_version_tag(IQA_MODEL_NAME, version, key, value)
            decision = decide_champion(result_scores(result), before[1] if before else None,
                                       new_version=version,
                                       old_version=before[0] if before else None)
            if decision.moved:
                client.set_registered_model_alias(IQA_MODEL_NAME, CHAMPION_ALIAS, version)
            client.set_model_version_tag(IQA_MODEL_NAME, version, "champion_decision",
                                         decision.reason[:5000])
            mlflow.set_tags({"shamisa.model_version": version,
                             "shamisa.champion_moved": str(decision.moved).lower(),
                             "shamisa.champion_reason": decision.reason[:5000]})
            mlflow.log_metric("champion_moved", float(decision.moved))
            mlflow.log_dict(decision.to_json(), "champion_decision.json")
        return EvaluationLog(tracking_uri=uri, experiment_id=exp_id,
                             parent_run_id=parent.info.run_id, dataset_run_ids=runs,
                             model_version=version, model_uri=model_uri, decision=decision,
                             kind=kind, metrics=metrics)


def update_champion_scores(result: Mapping[str, Any], *, mlflow_dir: str | Path,
                           version: str, run_id: str) -> dict[str, str]:
    """After a refresh: write the re-evaluated per-dataset SRCC (and dataset versions) into the
    champion version's tags, so later challengers are compared on every configured dataset."""
    uri = tracking.tracking_uri(Path(mlflow_dir))
    client = MlflowClient(uri, uri)
    tags = {k: v for k, v in _version_tags(result, primary_dataset(dataset_names(result))).items()
            if k.startswith((SRCC_TAG, VERSION_TAG))}
    tags["last_refresh_run"] = run_id
    for key, value in tags.items():
        client.set_model_version_tag(IQA_MODEL_NAME, version, key, value)
    return tags


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
    from .benchmark import evaluate_encoder

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
    "decide_champion",
    "evaluation_id",
    "evaluation_metrics",
    "log_evaluation",
    "refresh_champion",
    "result_scores",
    "update_champion_scores",
    "version_scores",
]
