"""`make paper`: the ``paper`` profile end to end on the benchmarks the user downloaded.

1. Checks that every dataset of the paper's table has a root in ``config/datasets`` (or
   ``$SHAMISA_DATASETS_DIR``); otherwise says which are missing, the layout each expects and
   how to configure it, and exits with status 2 before running anything.
2. Materializes the pipeline with ``SHAMISA_PROFILE=paper`` stage by stage (as ``make run``),
   with one ``benchmark_datasets``/``benchmark_features`` run per dataset.
3. Prints the table in the paper's layout: one row for the trained encoder and one for its
   untrained twin, SRCC/PLCC per dataset (LIVE, CSIQ, TID2013, KADID-10K, FLIVE, SPAQ), the
   synthetic, authentic and global means of the per-dataset medians (METHOD.md §7.6).

``SHAMISA_PAPER_DATASETS`` (comma-separated) narrows the set, e.g. ``kadid10k,live``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.resources import REPO_ROOT

PAPER_DATASETS: tuple[str, ...] = ("live", "csiq", "tid2013", "kadid10k", "flive", "spaq")
TITLES = {"live": "LIVE", "csiq": "CSIQ", "tid2013": "TID2013", "kadid10k": "KADID-10K",
          "flive": "FLIVE", "spaq": "SPAQ", "koniq10k": "KonIQ-10k", "clive": "CLIVE"}
SYNTHETIC = ("live", "csiq", "tid2013", "kadid10k")
IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def wanted_datasets() -> list[str]:
    """``SHAMISA_PAPER_DATASETS`` or :data:`PAPER_DATASETS`."""
    raw = os.environ.get("SHAMISA_PAPER_DATASETS", "").strip()
    names = [n.strip().lower() for n in raw.split(",") if n.strip()] if raw else list(PAPER_DATASETS)
    unknown = [n for n in names if n not in TITLES]
    if unknown:
        raise SystemExit(f"SHAMISA_PAPER_DATASETS: unknown {', '.join(unknown)}; "
                         f"known: {', '.join(TITLES)}")
    return names


def datasets_dir() -> Path:
    """The folder of ``<name>.yaml`` root files."""
    return Path(os.environ.get("SHAMISA_DATASETS_DIR", str(REPO_ROOT / "config" / "datasets")))


def missing_report(names: Sequence[str], config_dir: Path) -> tuple[dict[str, str], str]:
    """(configured name -> root, text naming the missing datasets and how to add each)."""
    from shamisa_core.evaluation.benchmark import scan_dataset_roots
    from shamisa_core.evaluation.datasets import LOADERS

    scan = scan_dataset_roots(config_dir)
    roots = {n: str(scan.roots[n].root) for n in names if n in scan.roots}
    lines = []
    for n in names:
        if n in roots and not Path(roots[n]).is_dir():
            lines.append(f"  {n}: {scan.roots[n].config_file} names {roots[n]}, which is not a folder")
            del roots[n]
        elif n not in roots:
            lines.append(f"  {n} ({TITLES[n]}): add {config_dir / (n + '.yaml')} with `root: /path/to/"
                         f"{TITLES[n]}`; the folder holds {LOADERS[n].info.layout}")
    for path, problem in scan.problems:
        lines.append(f"  (ignored) {path}: {problem}")
    text = ""
    if len(roots) < len(names):
        text = (f"make paper: {len(names) - len(roots)} of the {len(names)} datasets of the "
                f"paper's table are not configured in {config_dir}:\n" + "\n".join(lines) +
                "\nDownload them from their publishers (they cannot be redistributed), add the "
                "files above, or narrow the table with SHAMISA_PAPER_DATASETS=kadid10k,live.")
    return roots, text


def stages(names: Sequence[str], n_shards: int) -> list[list[str]]:
    """The ``dagster asset materialize`` argument lists of the paper run, in order."""
    out = [
        ["--select", "pristine_images"],
        ["--select", "corpus_shards", "--partition-range", f"shard-000000...shard-{n_shards - 1:06d}"],
        ["--select", "corpus_manifest"],
        ["--select", "encoder", "--config-json", IN_PROCESS],
        ["--select", "benchmark_catalog"],
    ]
    out += [["--select", "benchmark_datasets,benchmark_features", "--partition", n,
             "--config-json", IN_PROCESS] for n in names]
    out.append(["--select", "quality_regressors,cross_dataset_table,evaluation_table",
                "--config-json", IN_PROCESS])
    return out


def _cell(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def paper_table(result: Mapping[str, Any], names: Sequence[str] = PAPER_DATASETS) -> str:
    """Markdown table in the paper's layout from an ``evaluation.json`` result (§7.6)."""
    cols = [TITLES[n] for n in names]
    head = ["Method"]
    for c in cols:
        head += [f"{c} SRCC", f"{c} PLCC"]
    head += ["Synthetic SRCC", "Authentic SRCC", "Global SRCC"]
    rows = []
    twins = result.get("twins") or {}
    labels = (result.get("meta") or {}).get("twins") or {}
    sections = [("SHAMISA (this run)", result)]
    sections += [((labels.get(role) or {}).get("label") or role.replace("_", " "), sec)
                 for role, sec in twins.items()]
    if "baseline" in result:  # results written before the init/random twins
        sections.append(("untrained twin", result.get("baseline") or {}))
    for label, section in sections:
        srcc = {n: (section.get(n) or {}).get("srcc") for n in names}
        plcc = {n: (section.get(n) or {}).get("plcc") for n in names}
        cells = [label]
        for n in names:
            cells += [_cell(srcc[n]), _cell(plcc[n])]
        cells += [_cell(_mean([srcc[n] for n in names if n in SYNTHETIC])),
                  _cell(_mean([srcc[n] for n in names if n not in SYNTHETIC])),
                  _cell(_mean(list(srcc.values())))]
        rows.append(cells)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def latest_result() -> dict[str, Any]:
    """The ``evaluation.json`` of the latest ``evaluation_table`` materialization."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("evaluation_table"))
    if event is None or event.asset_materialization is None:
        raise SystemExit("make paper: no evaluation_table materialization found")
    path = event.asset_materialization.metadata["results"].value
    return json.loads(Path(str(path)).read_text())


def main() -> int:
    """Check the datasets, run every stage with the paper profile, print the table."""
    names = wanted_datasets()
    config_dir = datasets_dir()
    roots, report = missing_report(names, config_dir)
    if report:
        print(report, file=sys.stderr)
        return 2
    os.environ["SHAMISA_PROFILE"] = "paper"
    os.environ["SHAMISA_DATASETS_DIR"] = str(config_dir)
    if os.environ.get("SHAMISA_PRISTINE", "default") == "default":
        print("make paper: SHAMISA_PRISTINE is not set, so the corpus is made from the packaged "
              "photos; the paper uses ~140k pristine photos (e.g. KADIS-700k's references)",
              file=sys.stderr)
    from pipelines.main_run import materialize_stages
    from pipelines.resources import env_config

    rc = materialize_stages(stages(names, env_config().corpus.n_shards), label="make paper: ")
    if rc != 0:
        return rc
    print("\nSHAMISA, paper profile: median over 10 reference-disjoint splits")
    print(paper_table(latest_result(), names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
