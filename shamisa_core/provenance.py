"""Where a result came from: the git commit of the code that produced it.

Recorded in ``encoder.pt`` at training time and carried into the tags of every registered
model version, so that ``shamisa compare`` and the MLflow UI can filter by commit (issue 9).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def source_commit(repo: Path = _REPO) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (``-dirty`` appended when tracked files differ from
    it), or None where this is not a git checkout or git is missing (e.g. an installed wheel)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}-dirty" if dirty else head
