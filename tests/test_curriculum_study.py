"""Study 04's parameters, run sharing, bootstrap and claims (vrlib.studies.curriculum)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.papers import paper_rows
from vrlib.report import load_params
from vrlib.studies import curriculum as cu
from vrlib.studies.temporal_twins import twin_pairwise_accuracy


def _params(**kw) -> cu.CurriculumParams:
    return cu.CurriculumParams.model_validate(kw)


def test_committed_parameter_files_validate():
    for name in ("smoke", "default", "webvid-cc"):
        p = load_params("curriculum", f"parameters/curriculum/{name}.yaml")
        totals = {sum(s.steps for s in st) for st in p.schedules.values()}
        assert len(totals) == 1  # every row gets the same number of steps, as in the paper


def test_schedules_must_have_equal_steps_and_named_schedules_must_exist():
    with pytest.raises(ValueError, match="same total steps"):
        _params(schedules={"1": [{"frames": 1, "steps": 4}], "4": [{"frames": 4, "steps": 6}]},
                expansion_schedule="1", sources_schedule="4", curve_schedules=[])  # fmt: skip
    with pytest.raises(ValueError, match="not in schedules"):
        _params(expansion_schedule="2=>16")


def test_settings_share_runs_where_they_train_the_same_thing():
    p = _params()
    by_name = {s.name: s for s in cu.settings(p)}
    assert [n for n in by_name if n.startswith("frames-")] == list(cu.TABLE4)
    key = {n: s.run_key(p) for n, s in by_name.items()}
    assert key["videos-only"] == key["frames-4"]  # Table 4 trains on videos, as the paper's
    assert key["joint"] != key["frames-4"]
    assert key["expand-zeros"][:1] == key["frames-1=>4=>8"][:1]  # same schedule, but joint data
    same = _params(table4_data="joint")
    assert {s.name: s.run_key(same) for s in cu.settings(same)}["expand-zeros"] == (
        cu.settings(same)[4].run_key(same)
    )  # with joint Table 4 the default expansion shares frames-1=>4=>8's run
    assert key["expand-nearest"] != key["expand-zeros"]
    assert key["images-only"] != key["videos-only"] != key["joint"]


def test_verdicts():
    assert cu._verdict({"lo": 0.5, "hi": 2.0}, "greater") == "holds"
    assert cu._verdict({"lo": -2.0, "hi": -0.5}, "greater") == "reversed"
    assert cu._verdict({"lo": -1.0, "hi": 1.0}, "greater") == "within noise"
    assert cu._verdict({"lo": -1.0, "hi": 1.0}, "equal") == "holds"
    assert cu._verdict({"lo": -3.0, "hi": -1.0}, "not_worse").startswith("does not hold")


def test_twin_scores_agree_with_study_02s_twin_accuracy():
    gen = torch.Generator().manual_seed(0)
    sim = torch.randn(12, 6, generator=gen)
    sim[0, 1] = sim[0, 0]  # a tie
    c2v = np.repeat(np.arange(6), 2)
    twin_of = np.array([1, 0, -1, 4, 3, -1])
    scores = cu._twin_scores(sim, c2v, twin_of)
    acc, n = twin_pairwise_accuracy(sim, c2v, twin_of)
    assert len(scores) == n == 8 and np.mean(scores) == pytest.approx(acc)
    assert 0.5 in scores


def test_paper_rows_cover_every_table():
    names = {r["setting"] for r in paper_rows("curriculum")}
    assert set(cu.TABLE4) | {"images-only", "videos-only", "joint", "expand-zeros"} <= names
    t4 = {r["setting"]: r for r in paper_rows("curriculum")}
    assert t4["frames-1=>4=>8"]["R@1"] == 27.4 and t4["frames-8"]["PTT_h"] == 98.0
