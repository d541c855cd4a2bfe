"""Start-up time of the ``shamisa`` CLI (issue 9: a command that needs no model must not
import torch).

Process wall times, in fresh processes (median and best of ``--repeat``): ``shamisa --help``,
``distortions list``, ``compare`` (no MLflow store yet), ``evaluate --help``, ``corpus
inspect`` of a one-group shard and ``distort`` of one 256x256 image; and whether each imported
torch. Targets: ``--help`` < 0.5 s, ``distort`` < 1.5 s. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import sys, runpy\nsys.argv = ['shamisa'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('shamisa_core.cli', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         "sys.stderr.write('TORCH=%d\\n' % ('torch' in sys.modules))\n")


def _time(args: list[str], repeat: int) -> dict:
    times, torch_loaded = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True,
                             text=True)
        times.append(time.perf_counter() - t0)
        torch_loaded = "TORCH=1" in res.stderr
    return {"median_s": round(statistics.median(times), 3), "best_s": round(min(times), 3),
            "imports_torch": torch_loaded}


def _one_group_shard(tmp: Path) -> Path:
    """A corpus shard of one tiny group (for ``corpus inspect``)."""
    import numpy as np
    from PIL import Image

    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_shard

    cfg = load_profile("cpu-small", ["corpus.groups_per_shard=1", "group.patch_size=32",
                                     "group.n_refs=1", "group.n_comps=1", "group.n_levels=1"])
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(tmp / f"p{i}.png")
    return Path(build_shard([str(tmp / f"p{i}.png") for i in range(2)], cfg, 0, tmp).path)


def main() -> int:
    """Run the probes and print JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shamisa-cli-bench-"))
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
        tmp / "in.png")
    probes = {
        "help": ["--help"],
        "distortions_list": ["distortions", "list"],
        "compare_no_store": ["compare", "--mlflow-dir", str(tmp / "mlflow")],
        "evaluate_help": ["evaluate", "--help"],
        "corpus_inspect": ["corpus", "inspect", str(_one_group_shard(tmp))],
        "distort_one_image": ["distort", str(tmp / "in.png"), str(tmp / "out.png"),
                              "--chain", "jpeg:2"],
    }
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cpus (shared, loaded by other jobs)",
           "python": platform.python_version(),
           **{name: _time(a, args.repeat) for name, a in probes.items()},
           "targets": {"help": 0.5, "distort_one_image": 1.5}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
