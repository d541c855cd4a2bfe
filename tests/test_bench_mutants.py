"""bench/mutants.py keeps the sample it drew, so a later summary counts the mutants it tested."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("bench_mutants", REPO / "bench" / "mutants.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tree(tmp_path: Path, codes: dict[str, int | None]) -> Path:
    work = tmp_path / "evaluation"
    meta = work / "mutants" / "shamisa_core" / "evaluation" / "m.py.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    return work


def test_a_run_records_its_draw_and_a_summary_reuses_it(mutants, tmp_path):
    work = _tree(tmp_path, {f"m.x_f__mutmut_{i}": None for i in range(10)})
    drawn = ["m.x_f__mutmut_1", "m.x_f__mutmut_5"]
    assert mutants.drawn_sample(work, 4, 2, drawn, collect_only=False) == drawn
    assert json.loads((work / "sample.json").read_text()) == {"seed": 4, "n": 2, "names": drawn}
    # the mutants were regenerated (renamed) since: a new draw differs, the record wins
    _tree(tmp_path, {f"m.x_g__mutmut_{i}": 0 for i in range(10)})
    assert mutants.drawn_sample(work, 4, 2, ["m.x_g__mutmut_3", "m.x_g__mutmut_7"], True) == drawn
    # another seed or size is a new draw, and a summary does not overwrite the record
    assert mutants.drawn_sample(work, 5, 2, ["m.x_g__mutmut_0"], True) == ["m.x_g__mutmut_0"]
    assert json.loads((work / "sample.json").read_text())["names"] == drawn


def test_a_resumed_run_draws_again_when_recorded_names_are_gone(mutants, tmp_path):
    work = _tree(tmp_path, {"m.x_f__mutmut_1": None, "m.x_f__mutmut_2": None})
    mutants.drawn_sample(work, 4, 1, ["m.x_f__mutmut_1"], collect_only=False)
    _tree(tmp_path, {"m.x_h__mutmut_1": None, "m.x_h__mutmut_2": None})
    assert mutants.drawn_sample(work, 4, 1, ["m.x_h__mutmut_2"], False) == ["m.x_h__mutmut_2"]
    assert json.loads((work / "sample.json").read_text())["names"] == ["m.x_h__mutmut_2"]


def test_a_summary_without_a_record_uses_the_tested_mutants(mutants, tmp_path):
    codes = {f"m.x_f__mutmut_{i}": (1 if i in (2, 6, 7) else None) for i in range(10)}
    work = _tree(tmp_path, codes)
    tested = ["m.x_f__mutmut_2", "m.x_f__mutmut_6", "m.x_f__mutmut_7"]
    assert mutants.tested_mutant_names("evaluation", work) == tested
    assert mutants.drawn_sample(work, 4, 3, ["m.x_f__mutmut_0", "m.x_f__mutmut_1",
                                             "m.x_f__mutmut_2"], True) == tested
    # a count that does not match the size keeps the draw
    assert mutants.drawn_sample(work, 4, 2, ["m.x_f__mutmut_0", "m.x_f__mutmut_1"],
                                True) == ["m.x_f__mutmut_0", "m.x_f__mutmut_1"]
    assert not (work / "sample.json").exists()
