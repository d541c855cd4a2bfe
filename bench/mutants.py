"""Mutation score of one library package with mutmut 3.8.1; prints and records JSON.

    python bench/mutants.py --package corpus [--max-children 1] [--budget-s 3600] [--resume]
                            [--sample N --seed S]

Each package is mutated in its own scratch copy of the repository
(``outputs/mutants/<package>/``, git-ignored), with only the fast tests that cover it
(``TESTS`` below), so a run never touches the working tree. A run that exceeds
``--budget-s`` is stopped and the partial result is reported honestly (``complete: false``,
how many mutants were tested); ``--resume`` continues it (mutmut keeps per-mutant results).

``--sample N`` tests a uniform random sample of N mutants (seeded) instead of all of them,
for machines where a full run does not fit; the JSON then says ``sampled: N of M`` and the
kill rate is that of the sample (with a 95% Wilson interval).

Kill rate = killed / (tested - equivalent), where ``killed`` counts mutants that a test
failed on or that timed out, and ``equivalent`` are the surviving mutants listed in
``tests/mutation/equivalent.txt`` (``<mutant name>  # one-line reason``). The result of
each package is merged into ``bench/mutants.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The fast tests that exercise each package (mutmut maps each mutated function to the tests
# that reach it, and runs only those per mutant).
TESTS: dict[str, list[str]] = {
    "corpus": [
        "tests/test_corpus.py",
        "tests/test_indep_corpus.py",
        "tests/test_indep_mutants_corpus.py",
    ],
    "training": [
        "tests/test_training.py",
        "tests/test_indep_training.py",
        "tests/test_indep_mutants_training.py",
        "tests/test_mut_training.py",
    ],
    "evaluation": [
        "tests/test_eval_*.py",
        "tests/test_indep_eval*.py",
        "tests/test_indep_proxy.py",
        "tests/faults/test_eval_cache*.py",
        "tests/test_mut_evaluation*.py",
    ],
}
# Tests left out of a package's mutation runs: slow and already covered by the faster ones
# (DDP spawns processes that mutmut cannot trace; test_loss_goes_down runs 50 ResNet-18
# steps, 3 min per mutant on 2 loaded cores, and the loop code it reaches is reached by the
# resume and short-run tests too). The Dagster evaluation asset test (tests/test_eval_dagster.py,
# ~14 s, in `make test`'s fast suite) was left out of the evaluation runs up to seed 3 for
# time; it is in from seed 4 on (EXCLUDE_FILES).
DESELECT: dict[str, str] = {
    "corpus": "",
    "training": "not ddp and not dataloader_workers and not torchrun and not test_loss_goes_down",
    "evaluation": "",
}
EXCLUDE_FILES: dict[str, list[str]] = {}
COPY = ["shamisa_core", "assets", "pipelines", "config", "tests", "pyproject.toml"]
# exit code -> status, as mutmut 3.8.1's ``stats.status_by_exit_code``
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


# mutmut 3.8.1 runs a mutant's tests fastest first with process_isolation=fork, but in the
# order of a set with forkserver (which torch needs): then a killed mutant may pay for its
# slowest test first. This launcher sorts them (by the durations of the stats run) and then
# runs mutmut's own command line.
LAUNCHER = """
import sys
from mutmut.state import state
from mutmut.workers import isolation

_submit = isolation.ForkServerRunner.submit


def submit(self, mutant_name, tests, cpu_time_limit, estimated_time):
    tests = sorted(tests, key=lambda t: (state().duration_by_test.get(t, 0.0), t))
    return _submit(self, mutant_name, tests, cpu_time_limit, estimated_time)


isolation.ForkServerRunner.submit = submit
from mutmut.__main__ import cli

sys.argv[0] = "mutmut"
sys.exit(cli())
"""


def mutmut_cmd(*args: str) -> list[str]:
    """``mutmut <args>`` through :data:`LAUNCHER`, with this interpreter."""
    return [sys.executable, "-c", LAUNCHER, *args]


def failure_reason(log: Path) -> str | None:
    """Why a mutmut run stopped before testing mutants (from its log), or None."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for marker in ("Failed to run clean test", "failed to collect stats", "Stopping early",
                   "Failed to collect list of tests", "Traceback (most recent call last)"):
        if marker in text:
            tail = text[text.index(marker):][-3000:]
            return f"{marker} (see {log}):\n{tail}"
    return None


def _status_map() -> dict:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code


def prepare(pkg: str, work: Path, resume: bool) -> None:
    """Copy the sources and tests into ``work`` and write its mutmut configuration."""
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPY:
        src, dst = REPO / name, work / name
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    tests = sorted({str(p.relative_to(work)) for pat in TESTS[pkg] for p in work.glob(pat)}
                   - set(EXCLUDE_FILES.get(pkg, [])))
    if not tests:
        raise SystemExit(f"no tests found for {pkg}: {TESTS[pkg]}")
    cfg = [
        "[mutmut]",
        "source_paths=shamisa_core",
        f"only_mutate=shamisa_core/{pkg}/*",
        "also_copy=",
        "    assets",
        "    pipelines",
        "    config",
        "pytest_add_cli_args_test_selection=",
        *[f"    {t}" for t in tests],
        "pytest_add_cli_args=",
        "    -q",
        "    -p",
        "    no:cacheprovider",
        "    -m",
        "    not slow",
        *(["    -k", f"    {DESELECT[pkg]}"] if DESELECT.get(pkg) else []),
        # mutmut's per-test durations leave out fixture set-up (a module's corpus, encoder or
        # dataset), so its time limit can stop a mutant before a test ran: a generous constant
        # (recheck_timeouts re-tests any timeout without a limit anyway)
        "timeout_constant=120",
        "process_isolation=forkserver",
        "use_git_change_detection=false",
        "",
    ]
    (work / "setup.cfg").write_text("\n".join(cfg))


def all_mutant_names(pkg: str, work: Path) -> list[str]:
    """Every mutant name of the package (from the ``.meta`` files of a generated run)."""
    names = []
    for meta in sorted((work / "mutants" / "shamisa_core" / pkg).rglob("*.meta")):
        names.extend(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    return sorted(names)


def drawn_sample(work: Path, seed: int, n: int, drawn: list[str], collect_only: bool) -> list[str]:
    """The sample a run tests, kept in ``<work>/sample.json``.

    A run records the names it drew. A later ``--collect-only`` (or ``--resume``) with the same
    seed and size summarises the recorded names, not a new draw: mutmut regenerates the mutants
    of a source file that changed between runs, which renames some of them and shifts a new
    draw off the tested mutants (a seed-4 summary once counted 54 of its 80). A tree without
    the record (older runs) is summarised by its tested mutants when there are exactly ``n``."""
    path = work / "sample.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("seed") == seed and old.get("n") == n:
        if collect_only or set(old["names"]) <= set(all_mutant_names(work.name, work)):
            return old["names"]
    if collect_only:
        tested = tested_mutant_names(work.name, work)
        if len(tested) == n and set(tested) != set(drawn):
            print(f"note: no sample record in {work}; summarising its {n} tested mutants", file=sys.stderr)
            return tested
        return drawn
    path.write_text(json.dumps({"seed": seed, "n": n, "names": drawn}, indent=1) + "\n")
    return drawn


def tested_mutant_names(pkg: str, work: Path) -> list[str]:
    """The mutants of the package that mutmut has a result for."""
    names = []
    for meta in sorted((work / "mutants" / "shamisa_core" / pkg).rglob("*.meta")):
        names.extend(k for k, v in json.loads(meta.read_text()).get("exit_code_by_key", {}).items()
                     if v is not None)
    return sorted(names)


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return [round(c - h, 4), round(c + h, 4)]


def read_later() -> dict[str, str]:
    """``tests/mutation/killed_after_review.txt``: survivor -> the test added to kill it."""
    later = {}
    later_file = REPO / "tests" / "mutation" / "killed_after_review.txt"
    if later_file.exists():
        for line in later_file.read_text().splitlines():
            name, _, test = line.partition("#")
            if name.strip() and not line.lstrip().startswith("#"):
                later[name.strip()] = test.strip()
    return later


def verify_later_kills(pkg: str, work: Path, env: dict[str, str], only_new: bool = False) -> dict[str, str]:
    """Check each survivor of ``killed_after_review.txt`` against the test named for it, the
    way mutmut tests a mutant: the current tests are copied into the mutated tree and the test
    runs there with ``MUTANT_UNDER_TEST`` set to the mutant (it must fail) and once without any
    mutant (it must pass). Returns ``{mutant: "killed" | "not killed" | "error <rc>"}``, also
    written to ``<work>/verified.json``."""
    mine = {m: t for m, t in read_later().items() if m.startswith(f"shamisa_core.{pkg}.")}
    done = json.loads((work / "verified.json").read_text()) if (work / "verified.json").exists() else {}
    if only_new:  # keep earlier verdicts (same tests), check the entries added since
        mine = {m: t for m, t in mine.items() if m not in done}
    if not mine:
        return {}
    tree = work / "mutants"
    shutil.copytree(REPO / "tests", tree / "tests", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    base = {k: v for k, v in env.items() if k != "MUTANT_UNDER_TEST"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir=."]
    tests = sorted(set(mine.values()))
    clean = subprocess.run(cmd + tests, cwd=tree, env=base, capture_output=True, text=True)
    if clean.returncode != 0:
        raise SystemExit(f"the tests of killed_after_review.txt fail without a mutant:\n{clean.stdout[-3000:]}")
    out = {}
    for mutant, test in sorted(mine.items()):
        r = subprocess.run(cmd + [test], cwd=tree, env={**base, "MUTANT_UNDER_TEST": mutant},
                           capture_output=True, text=True)
        out[mutant] = {0: "not killed", 1: "killed"}.get(r.returncode, f"error {r.returncode}")
        print(f"{out[mutant]:>10}  {mutant}  by {test}", file=sys.stderr)
    (work / "verified.json").write_text(json.dumps({**(done if only_new else {}), **out}, indent=1,
                                                   sort_keys=True) + "\n")
    return out


def recheck_timeouts(pkg: str, work: Path, env: dict[str, str], names: list[str] | None,
                     limit_s: float = 1200, unchecked: bool = False) -> dict[str, str]:
    """Run the tests of each mutant mutmut stopped as a timeout again, without its time limit.

    mutmut's limit is ``(sum of the tests' call durations + timeout_constant) x 15``; the call
    durations leave out fixture set-up, so a mutant whose tests share an expensive module
    fixture (a corpus, an encoder, a dataset) can be stopped before any test ran, and would
    count as killed. Here its covering tests (fastest first, ``-x``) run in the mutated tree
    with the mutant active: ``killed`` (a test failed), ``survived`` (all passed) or
    ``timeout`` (still running after ``limit_s``). Written to ``<work>/direct_runs.json``."""
    status_by_exit_code = _status_map()
    tree = work / "mutants"
    stats = json.loads((tree / "mutmut-stats.json").read_text())
    tests_of, dur = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    codes: dict[str, int | None] = {}
    for meta in sorted((tree / "shamisa_core" / pkg).rglob("*.meta")):
        codes.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    base = {k: v for k, v in env.items() if k != "MUTANT_UNDER_TEST"}
    extra = ["-m", "not slow", *(["-k", DESELECT[pkg]] if DESELECT.get(pkg) else [])]
    out: dict[str, str] = {}
    cost = {n: sum(dur.get(t, 0.0) for t in tests_of.get(n.partition("__mutmut_")[0], [])) for n in codes}
    # the unchecked ones costliest first: a mutmut run still going takes the cheap ones first
    for name in sorted(names if names is not None else codes, key=lambda n: (-cost.get(n, 0.0), n)):
        if codes.get(name) is None:
            if not unchecked or name not in codes:
                continue
        elif status_by_exit_code.get(codes[name]) != "timeout":
            continue
        done = json.loads((work / "direct_runs.json").read_text()) if (work / "direct_runs.json").exists() else {}
        if unchecked and name in done:
            continue
        tests = sorted(tests_of.get(name.partition("__mutmut_")[0].replace("__init__.", ""), []),
                       key=lambda t: (dur.get(t, 0.0), t))
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir=.",
               *extra, *tests]
        try:
            r = subprocess.run(cmd, cwd=tree, env={**base, "MUTANT_UNDER_TEST": name},
                               capture_output=True, text=True, timeout=limit_s)
            out[name] = {0: "survived", 1: "killed"}.get(r.returncode, f"error {r.returncode}")
        except subprocess.TimeoutExpired:
            out[name] = "timeout"
        print(f"{out[name]:>10}  {name}  ({len(tests)} tests)", file=sys.stderr, flush=True)
        done[name] = out[name]
        (work / "direct_runs.json").write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    old = json.loads((work / "direct_runs.json").read_text()) if (work / "direct_runs.json").exists() else {}
    (work / "direct_runs.json").write_text(json.dumps({**old, **out}, indent=1, sort_keys=True) + "\n")
    return out


def collect(pkg: str, work: Path, only: set[str] | None = None) -> dict:
    """Per-file and total counts from mutmut's ``.meta`` files in ``work/mutants``."""
    status_by_exit_code = _status_map()
    equivalent = {}
    eq_file = REPO / "tests" / "mutation" / "equivalent.txt"
    if eq_file.exists():
        for line in eq_file.read_text().splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                equivalent[name.strip()] = reason.strip()
    rechecked = json.loads((work / "direct_runs.json").read_text()) if (work / "direct_runs.json").exists() else {}
    later = read_later()
    verified_file = work / "verified.json"
    if verified_file.exists() or pkg != "corpus":  # the corpus ones were first checked by hand
        verified = json.loads(verified_file.read_text()) if verified_file.exists() else {}
        later = {m: t for m, t in later.items() if verified.get(m) == "killed"}
    files: dict[str, dict] = {}
    survivors: list[dict] = []
    for meta in sorted((work / "mutants" / "shamisa_core" / pkg).rglob("*.meta")):
        data = json.loads(meta.read_text())
        rel = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
        c = {"mutants": 0, "tested": 0, "killed": 0, "survived": 0, "equivalent": 0, "no_tests": 0, "other": 0}
        for key, code in data.get("exit_code_by_key", {}).items():
            if only is not None and key not in only:
                continue
            c["mutants"] += 1
            status = status_by_exit_code.get(code, "not checked") if code is not None else "not checked"
            if key in rechecked and status == "timeout":
                status = {"killed": "killed", "survived": "survived"}.get(rechecked[key], "timeout")
            elif key in rechecked and status == "not checked":  # tested by --test-unchecked
                status = {"killed": "killed", "survived": "survived", "timeout": "timeout"}.get(
                    rechecked[key], "not checked")
            if status == "not checked":
                continue
            if status == "no tests":
                c["no_tests"] += 1
                c["tested"] += 1
                if key in equivalent:
                    c["equivalent"] += 1
                else:
                    survivors.append({"mutant": key, "status": status})
                continue
            c["tested"] += 1
            if status in KILLED:
                c["killed"] += 1
            elif status == "survived":
                if key in equivalent:
                    c["equivalent"] += 1
                    survivors.append({"mutant": key, "status": "equivalent", "reason": equivalent[key]})
                else:
                    c["survived"] += 1
                    survivors.append({"mutant": key, "status": status})
            else:
                c["other"] += 1
                survivors.append({"mutant": key, "status": status})
        files[rel] = c
    total = {k: sum(f[k] for f in files.values()) for k in ("mutants", "tested", "killed", "survived", "equivalent", "no_tests", "other")}
    denom = total["tested"] - total["equivalent"]
    total["kill_rate"] = round(total["killed"] / denom, 4) if denom else None
    total["complete"] = total["tested"] == total["mutants"]
    total["kill_rate_95ci"] = wilson(total["killed"], denom)
    # survivors that a test added after the run kills (checked by hand, see the file)
    total["killed_after_review"] = sum(1 for s_ in survivors if s_["mutant"] in later and s_["status"] != "equivalent")
    k2 = total["killed"] + total["killed_after_review"]
    total["kill_rate_after_review"] = round(k2 / denom, 4) if denom else None
    for s_ in survivors:
        if s_["mutant"] in later:
            s_["killed_later_by"] = later[s_["mutant"]]
    return {"package": f"shamisa_core/{pkg}", "totals": total, "files": files, "not_killed": survivors,
            "tests": TESTS[pkg], "deselected": DESELECT.get(pkg, ""),
            "timeouts_rechecked": {k: v for k, v in rechecked.items() if only is None or k in only}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True, choices=sorted(TESTS))
    p.add_argument("--max-children", type=int, default=1)
    p.add_argument("--budget-s", type=float, default=3 * 3600, help="stop after this many seconds")
    p.add_argument("--resume", action="store_true", help="keep earlier results in outputs/mutants/<pkg>")
    p.add_argument("--collect-only", action="store_true", help="only summarise an earlier run")
    p.add_argument("--sample", type=int, default=0, help="test a seeded random sample of N mutants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-unchecked", action="store_true",
                   help="with --collect-only: test the sampled mutants mutmut did not reach (its run "
                        "stopped by the budget) the way mutmut does, one at a time")
    p.add_argument("--verify-later-kills", action="store_true",
                   help="run the tests of tests/mutation/killed_after_review.txt against their "
                        "mutants (must fail) before summarising")
    p.add_argument("--out", default=str(REPO / "bench" / "mutants.json"))
    p.add_argument("--note", default="", help="a line recorded with the result (machine, load, ...)")
    args = p.parse_args(argv)
    work = REPO / "outputs" / "mutants" / args.package
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    t0 = time.time()
    stopped = False
    sample: list[str] = []
    prepared = False  # copy the sources and tests once per invocation: a second copy taken
    # later (after a merge, say) changes the test selection and makes mutmut start over
    if args.sample:
        if not args.resume and not args.collect_only:
            # a new run draws from mutants generated from today's sources, never from an
            # earlier run's tree (its names go stale when a source file changed)
            prepare(args.package, work, resume=False)
            prepared = True
        if not (work / "mutants" / "mutmut-stats.json").exists():
            # generate the mutants and collect the test stats only: a filter that matches no
            # mutant makes mutmut stop right after those two phases
            if not prepared:
                prepare(args.package, work, args.resume)
            args.resume = prepared = True
            subprocess.run(mutmut_cmd("run", "--max-children", str(args.max_children), "no-such-mutant"),
                           cwd=work, env=env,
                           stdout=open(work / "mutmut-stats.log", "w"), stderr=subprocess.STDOUT,
                           timeout=args.budget_s)
            if not (work / "mutants" / "mutmut-stats.json").exists():
                raise SystemExit(f"mutmut did not collect stats; see {work / 'mutmut-stats.log'}")
        import random

        names = all_mutant_names(args.package, work)
        sample = sorted(random.Random(args.seed).sample(names, min(args.sample, len(names))))
        sample = drawn_sample(work, args.seed, args.sample, sample, args.collect_only)
    if not args.collect_only:
        if not prepared:
            prepare(args.package, work, args.resume)
        proc = subprocess.Popen(mutmut_cmd("run", "--max-children", str(args.max_children), *sample),
                                cwd=work, env=env, start_new_session=True,
                                stdout=open(work / "mutmut.log", "w"), stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=args.budget_s)
        except subprocess.TimeoutExpired:
            stopped = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not stopped and proc.returncode != 0:
            # e.g. the clean run of the selected tests failed: no mutant was tested. Say so
            # instead of recording "tested: 0" as if it were a result.
            why = failure_reason(work / "mutmut.log") or f"see {work / 'mutmut.log'}"
            raise SystemExit(f"mutmut exited with {proc.returncode} before testing mutants: {why}")
    recheck_timeouts(args.package, work, env, sample or None, unchecked=args.test_unchecked)
    if args.verify_later_kills:
        verify_later_kills(args.package, work, env)
    result = collect(args.package, work, set(sample) if sample else None)
    if sample:
        result["sampled"] = f"{len(sample)} of {len(all_mutant_names(args.package, work))}"
        result["sample_seed"] = args.seed
    result["wall_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    allres = json.loads(out.read_text()) if out.exists() else {}
    if args.collect_only:  # keep the wall time of the run that is summarised again
        result["wall_s"] = allres.get(args.package, {}).get("wall_s", result["wall_s"])
    if args.note:
        result["note"] = args.note
    result["stopped_by_budget"] = stopped
    result["mutmut"] = "3.8.1"
    allres[args.package] = result
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(allres, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out)
    print(json.dumps({"package": result["package"], **result["totals"], "wall_s": result["wall_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
