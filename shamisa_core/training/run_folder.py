"""A run folder as a unit: its file names, resume compatibility, the torn-log repair, stale
temporary files, and the refusal to overwrite an earlier run (issue 8, defect 4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

from shamisa_core.errors import RunFolderError

CHECKPOINT_NAME = "checkpoint.pt"
ENCODER_NAME = "encoder.pt"
LOG_NAME = "train_log.jsonl"
# What a run folder may hold: --overwrite removes only these (anything else -> refuse).
RUN_FILES = frozenset({CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME, "loss_curve.png"})
# Train fields that may change between a run and its resumption (they do not alter the
# trajectory of the steps already defined).
_RESUMABLE_CHANGES = frozenset({"steps", "epochs", "checkpoint_every", "log_every", "device"})

def check_resume_compatible(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every setting that differs in a way that breaks resume."""
    diffs = []
    for section in ("group", "model", "graph", "loss", "train"):
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "train" and key in _RESUMABLE_CHANGES:
                continue
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: checkpoint {a.get(key)!r} vs now {b.get(key)!r}")
    if diffs:
        raise ValueError("cannot resume: the config differs from the checkpoint's: " + "; ".join(diffs))


def _truncate_log(path: Path, step: int) -> None:
    """Keep only log lines up to ``step`` (a crashed run may have logged past its checkpoint).

    A torn last line (the run was killed while writing it) is dropped with a warning naming
    the file; a damaged line elsewhere is an error naming the file and the line. The
    shortened log replaces the old one atomically.
    """
    from shamisa_core.atomic import atomic_write_bytes

    if not path.exists():
        return
    lines = path.read_text(errors="replace").splitlines()
    keep = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            row = json.loads(ln)
            row_step = int(row["step"])
        except (ValueError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:
                print(f"shamisa: warning: {path}: dropped a torn last line ({len(ln)} characters) "
                      "left by an interrupted run", file=sys.stderr)
                continue
            raise RunFolderError(
                f"{path} line {i + 1} is damaged ({type(exc).__name__}); fix or delete that line, "
                "then resume again"
            ) from None
        if row_step <= step:
            keep.append(ln)
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files of killed checkpoint/encoder/log writes (``.checkpoint.pt.*.tmp``,
    ...) in a run folder; returns what was removed. Only the process that owns the run
    folder calls this, at the start of a run."""
    removed = []
    for name in (CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME):
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _is_temp(name: str) -> bool:
    return any(name.startswith(f".{n}.") and name.endswith(".tmp") for n in (CHECKPOINT_NAME, ENCODER_NAME, LOG_NAME))


def prepare_run_folder(out_dir: Path, resume: bool, overwrite: bool, mutate: bool = True) -> None:
    """Make ``out_dir`` ready for a run, never mixing two runs' files (issue 8 defect 4).

    * ``resume``: the folder must hold the run to continue (``checkpoint.pt`` is read later).
    * a new run: the folder must be absent or empty (after removing stale temp files);
      with ``overwrite`` the previous run's files (:data:`RUN_FILES`) are deleted first,
      but a folder holding anything else is refused, so a mistyped ``--out`` deletes nothing.

    Every rank checks; only ``mutate`` (rank 0) deletes anything.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"--out {out_dir} is an existing file, not a folder; give a folder path")
    if not out_dir.exists():
        if resume:
            raise RunFolderError(f"no run to resume in {out_dir} (the folder does not exist); run without --resume")
        return
    entries = sorted(p.name for p in out_dir.iterdir() if not _is_temp(p.name))
    if resume or not entries:
        if mutate:
            remove_stale_temp_files(out_dir)
        return
    if not overwrite:
        raise RunFolderError(
            f"{out_dir} already holds a run ({', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}); "
            "pass --resume to continue it, --overwrite to replace it, or pick a new --out folder"
        )
    foreign = [e for e in entries if e not in RUN_FILES]
    if foreign:
        raise RunFolderError(
            f"--overwrite refused: {out_dir} holds files that are not part of a shamisa run "
            f"({', '.join(foreign[:4])}); pick a new --out folder"
        )
    if mutate:
        remove_stale_temp_files(out_dir)
        for e in entries:
            (out_dir / e).unlink(missing_ok=True)


