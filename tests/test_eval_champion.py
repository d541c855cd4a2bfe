"""The champion rule as a pure function (serving.champion): no MLflow involved."""

from __future__ import annotations

import pytest

from shamisa_core.serving.champion import decide_champion, health_blocks, version_scores


def test_first_version_becomes_champion():
    d = decide_champion({"proxy": (0.5, "v1")}, None, new_version="1", old_version=None)
    assert d.moved and "no champion yet" in d.reason and d.new_mean == pytest.approx(0.5)


def test_moves_only_on_a_strictly_higher_mean_over_common_datasets():
    champ = {"proxy": (0.5, "v1"), "kadid10k": (0.7, "k1")}
    up = decide_champion({"proxy": (0.6, "v1")}, champ, new_version="2", old_version="1")
    assert up.moved and up.datasets == ("proxy",) and up.old_mean == pytest.approx(0.5)
    tie = decide_champion({"proxy": (0.5, "v1")}, champ, new_version="2", old_version="1")
    assert not tie.moved and "stays v1" in tie.reason
    other = decide_champion({"live": (0.9, "l1")}, champ, new_version="2", old_version="1")
    assert not other.moved and "no dataset in common" in other.reason


def test_a_different_dataset_version_is_not_compared():
    champ = {"proxy": (0.5, "v1"), "kadid10k": (0.7, "k1")}
    d = decide_champion({"proxy": (0.9, "v2"), "kadid10k": (0.8, "k1")}, champ,
                        new_version="2", old_version="1")
    assert d.datasets == ("kadid10k",) and d.moved and "proxy" in d.reason
    only = decide_champion({"proxy": (0.9, "v2")}, champ, new_version="2", old_version="1")
    assert not only.moved and "other dataset versions: proxy" in only.reason


@pytest.mark.parametrize("new_v,old_v", [(None, "v1"), ("v1", None), (None, None)])
def test_a_missing_dataset_version_is_not_a_mismatch(new_v, old_v):
    d = decide_champion({"proxy": (0.9, new_v)}, {"proxy": (0.5, old_v)},
                        new_version="2", old_version="1")
    assert d.moved and d.datasets == ("proxy",)


def test_missing_version_tag_read_back_as_unknown():
    # an older version whose dataset_version tag was written as the string "None"
    scores = version_scores({"srcc/proxy": "0.5", "dataset_version/proxy": "None",
                             "srcc/live": "nan", "srcc/csiq": "x"})
    assert scores == {"proxy": (0.5, None)}
    d = decide_champion({"proxy": (0.6, "v9")}, scores, new_version="2", old_version="1")
    assert d.moved


def test_a_failed_health_check_blocks_promotion():
    bad = {"passed": False, "reasons": ["collapsed: effective rank of h 1.4 < 5"]}
    d = decide_champion({"proxy": (0.99, "v1")}, {"proxy": (0.1, "v1")}, new_version="2",
                        old_version="1", health=bad)
    assert not d.moved and "health check failed" in d.reason and "effective rank of h 1.4" in d.reason
    first = decide_champion({"proxy": (0.99, "v1")}, None, new_version="1", old_version=None,
                            health=bad)
    assert not first.moved  # not even as the first champion
    ok = decide_champion({"proxy": (0.6, "v1")}, {"proxy": (0.1, "v1")}, new_version="2",
                         old_version="1", health={"passed": True})
    assert ok.moved
    unknown = decide_champion({"proxy": (0.6, "v1")}, {"proxy": (0.1, "v1")}, new_version="2",
                              old_version="1", health=None)
    assert unknown.moved  # no health record: unknown, allowed
    assert health_blocks({}) is None and health_blocks({"passed": True}) is None
