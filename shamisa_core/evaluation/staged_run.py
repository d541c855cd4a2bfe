"""The evaluation as separate stages over a run folder (what the Dagster assets call).

Each Dagster asset calls one function here; the functions call the same stage functions as
``shamisa evaluate`` (``stages.py``) and keep their results in the run folder of one encoder
at one crop size, ``<cache>/runs/<fingerprint>-p<crop>/``:

    standard.json     quality_regressors   (standard protocol, every encoder, + meta)
    cross.json        cross_dataset_table  (§7.7)
    fr.json           full_reference_table (§7.8, optional)
    evaluation.json   evaluation_table     (the assembled SCHEMA result)

and the latest tables in ``<cache>/evaluation_table.txt`` / ``.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shamisa_core.artifacts import is_mlflow_uri
from shamisa_core.atomic import atomic_write_json, atomic_write_text

from .cache import DEFAULT_FEATURE_BATCH, FeatureSet, encode_dataset
from .encoders import TRAINED, EncoderHandle, load_trained, make_twins, training_seed
from .prepared import PreparedDataset, prepare_dataset
from .proxy import ProxySpec
from .report import format_table, markdown_table, summary_frame
from .ridge import DEFAULT_ALPHAS
from .splits import SplitConfig
from .stages import (
    assemble_result,
    evaluation_meta,
    fr_section,
    run_cross,
    standard_section,
)

STANDARD_FILE = "standard.json"
CROSS_FILE = "cross.json"
FR_FILE = "fr.json"
EVALUATION_FILE = "evaluation.json"
TABLE_TEXT_FILE = "evaluation_table.txt"
TABLE_MD_FILE = "evaluation_table.md"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class StageError(RuntimeError):
    """A stage cannot run yet (an earlier stage has not run); the message says which."""


@dataclass(frozen=True)
class DatasetPlan:
    """Where datasets are prepared: cache folder, proxy base and spec, split seed."""

    cache_dir: Path
    proxy_base: Path
    proxy_spec: ProxySpec | None = None
    seed: int = 27

    def spec_for(self, root: str | os.PathLike | None) -> ProxySpec | None:
        """The proxy spec to build with: this plan's when the proxy has no configured root;
        None (use the folder as it is) when it has one, so that a user's proxy is never
        rebuilt over."""
        return self.proxy_spec if root is None else None

    def prepare(self, name: str, root: str | None, *, build: bool) -> PreparedDataset:
        """``prepare_dataset``; a configured proxy root is used as it is (``spec_for``)."""
        return prepare_dataset(name, root, self.cache_dir, proxy_base=self.proxy_base,
                               proxy_spec=self.spec_for(root),
                               split_config=SplitConfig(seed=self.seed), build=build)


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """One encoder under evaluation with its twins, at one crop size, and its run folder."""

    plan: DatasetPlan
    trained: EncoderHandle
    twins: tuple[EncoderHandle, ...]
    crop: int
    batch_size: int = DEFAULT_FEATURE_BATCH
    device: str = "cpu"
    alphas: Sequence[float] = DEFAULT_ALPHAS

    @property
    def encoders(self) -> list[EncoderHandle]:
        """Trained first, then the twins."""
        return [self.trained, *self.twins]

    @property
    def run_dir(self) -> Path:
        """``<cache>/runs/<fingerprint>-p<crop>``."""
        return self.plan.cache_dir / "runs" / f"{self.trained.fingerprint}-p{self.crop}"

    def file(self, name: str) -> Path:
        """A file of the run folder."""
        return self.run_dir / name


def open_run(encoder: str, plan: DatasetPlan, *, crop_size: int | None = None,
             tracking_uri: str | None = None, device: str = "cpu") -> EvaluationRun:
    """Load the encoder (path or MLflow URI) and build its twins with the training seed."""
    trained = load_trained(encoder, download_dir=plan.cache_dir / "downloads",
                           tracking_uri=tracking_uri if is_mlflow_uri(encoder) else None,
                           device=device)
    twins = make_twins(trained, training_seed(trained.meta, plan.seed), device)
    return EvaluationRun(plan, trained, tuple(twins), int(crop_size or trained.patch_size or 224),
                         device=device)


def read_stage(run: EvaluationRun, name: str, *, needed_by: str | None = None) -> dict | None:
    """A stage file of the run folder (None when absent; ``StageError`` if ``needed_by``)."""
    path = run.file(name)
    if not path.is_file():
        if needed_by:
            raise StageError(f"no {path}: materialize {needed_by} first")
        return None
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------
# Stages


def features_stage(run: EvaluationRun, prepared: PreparedDataset, *,
                   log: Log = _quiet) -> dict[str, FeatureSet]:
    """Features of one dataset for every encoder (cached by content key)."""
    out: dict[str, FeatureSet] = {}
    for enc in run.encoders:
        fs = encode_dataset(prepared, enc, run.crop, batch_size=run.batch_size,
                            device=run.device, log=log)
        assert fs is not None
        out[enc.role] = fs
    return out


def available(run: EvaluationRun, roots: Mapping[str, str | None], names: Sequence[str],
              *, log: Log = _quiet,
              ) -> tuple[dict[str, PreparedDataset], dict[str, dict[str, FeatureSet]], dict[str, str]]:
    """Datasets whose splits and features (every encoder) are on disk; the rest with why."""
    prepared: dict[str, PreparedDataset] = {}
    feats: dict[str, dict[str, FeatureSet]] = {e.role: {} for e in run.encoders}
    skipped: dict[str, str] = {}
    for name in names:
        if name not in roots:
            skipped[name] = f"dataset {name!r} has no configured root"
            continue
        try:
            prep = run.plan.prepare(name, roots[name], build=False)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            skipped[name] = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            continue
        sets = {e.role: encode_dataset(prep, e, run.crop, compute=False, log=log)
                for e in run.encoders}
        if any(fs is None for fs in sets.values()):
            skipped[name] = (f"features for encoder {run.trained.fingerprint} (crop {run.crop}) "
                             f"not materialized (or images changed): run benchmark_features[{name}]")
            continue
        prepared[name] = prep
        for role, fs in sets.items():
            feats[role][name] = fs  # type: ignore[assignment]
    if skipped:
        log("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return prepared, feats, skipped


def standard_stage(run: EvaluationRun, roots: Mapping[str, str | None], names: Sequence[str],
                   *, log: Log = _quiet) -> dict[str, Any]:
    """Standard protocol + final regressors for every encoder -> ``standard.json``."""
    prepared, feats, skipped = available(run, roots, names, log=log)
    if not prepared:
        raise StageError("no benchmark has features for this encoder: "
                         + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    sections = {e.role: standard_section(prepared, feats[e.role], e, run.alphas, log=log)
                for e in run.encoders}
    meta = evaluation_meta(run.trained, run.twins, run.crop, run.plan.seed, prepared,
                           alphas=run.alphas)
    data = {"sections": sections, "meta": meta, "skipped": skipped, "path": str(run.file(STANDARD_FILE))}
    atomic_write_json(run.file(STANDARD_FILE), data)
    return data


def cross_stage(run: EvaluationRun, roots: Mapping[str, str | None], *,
                log: Log = _quiet) -> dict[str, Any]:
    """Cross-dataset protocol (§7.7) for every encoder -> ``cross.json``."""
    standard = read_stage(run, STANDARD_FILE, needed_by="quality_regressors")
    assert standard is not None
    names = list(standard["sections"][TRAINED])
    prepared, feats, skipped = available(run, roots, names, log=log)
    data: dict[str, Any] = {"datasets": list(prepared), "skipped": skipped, "sections": {}}
    for enc in run.encoders:
        alphas = {n: standard["sections"][enc.role][n]["alpha"] for n in prepared}
        data["sections"][enc.role] = run_cross(prepared, feats[enc.role], alphas,
                                               log=lambda m, r=enc.role: log(f"[{r}] {m}"))
    atomic_write_json(run.file(CROSS_FILE), data)
    return data


def fr_stage(run: EvaluationRun, roots: Mapping[str, str | None], *,
             log: Log = _quiet) -> dict[str, Any]:
    """Full-reference protocol (§7.8) for every encoder -> ``fr.json``."""
    standard = read_stage(run, STANDARD_FILE, needed_by="quality_regressors")
    assert standard is not None
    names = list(standard["sections"][TRAINED])
    prepared, feats, skipped = available(run, roots, names, log=log)
    data: dict[str, Any] = {"datasets": list(prepared), "skipped": skipped, "sections": {}}
    for enc in run.encoders:
        data["sections"][enc.role] = fr_section(prepared, feats[enc.role], enc, run.crop,
                                                run.alphas, batch_size=run.batch_size,
                                                device=run.device, log=log)
    atomic_write_json(run.file(FR_FILE), data)
    return data


def pictures_stage(run: EvaluationRun, result: Mapping[str, Any]) -> dict[str, Path]:
    """The evaluation pictures (``pictures.py``) in ``<run>/pictures``."""
    from .pictures import make_pictures, tables_from_meta

    return make_pictures(result, run.file("pictures"), tables_from_meta(result))


def report_stage(run: EvaluationRun) -> tuple[dict[str, Any], dict[str, Path]]:
    """Assemble the result from the stage files -> ``evaluation.json`` and the tables."""
    standard = read_stage(run, STANDARD_FILE, needed_by="quality_regressors")
    assert standard is not None
    sections = {role: dict(sec) for role, sec in standard["sections"].items()}
    names = list(sections[TRAINED])
    for extra, key in ((read_stage(run, CROSS_FILE), "cross"), (read_stage(run, FR_FILE), "fr")):
        if extra is not None and extra.get("datasets") == names:
            for role, sec in extra["sections"].items():
                if role in sections:
                    sections[role][key] = sec
    meta = dict(standard["meta"])
    meta["skipped"] = standard.get("skipped") or {}
    result = assemble_result(sections.pop(TRAINED), sections, meta)
    paths = {"results": atomic_write_json(run.file(EVALUATION_FILE), result),
             "table_text": atomic_write_text(run.plan.cache_dir / TABLE_TEXT_FILE,
                                             format_table(result) + "\n"),
             "table_md": atomic_write_text(run.plan.cache_dir / TABLE_MD_FILE,
                                           markdown_table(summary_frame(result)) + "\n")}
    return result, paths
