"""Study 02's own logic: twin accuracy, temporal subset, seed aggregation, parameters, one run.

The notebook itself runs in tests/test_notebooks.py at smoke.yaml; here the pieces are checked
against hand-made examples so that a wrong count cannot hide behind a plausible table.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vrlib.report import ParamsError, load_params
from vrlib.studies import get_study
from vrlib.studies import toolkit as tk
from vrlib.studies.temporal import reading as trd
from vrlib.studies.temporal import runs as tr
from vrlib.studies.temporal import study as ta
from vrlib.studies.temporal import twins as tw
from vrlib.train import CachedPairs, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- twins


def brute_force_twin_accuracy(sim, c2v, twin_of, mask=None):
    """Loop over captions one by one: 1 if own > twin, 1/2 if equal, 0 otherwise."""
    scores = []
    for c, v in enumerate(c2v):
        t = twin_of[v]
        if t < 0 or (mask is not None and not mask[c]):
            continue
        own, other = float(sim[c][v]), float(sim[c][t])
        scores.append(1.0 if own > other else 0.5 if own == other else 0.0)
    return (sum(scores) / len(scores) if scores else math.nan), len(scores)


def test_twin_accuracy_hand_example_with_ties():
    # videos 0 <-> 1 are twins, 2 has none; captions 0,1 -> video 0, 2,3 -> video 1, 4 -> video 2
    sim = np.array(
        [
            [0.9, 0.1, 0.0],  # own 0 > twin 1: 1
            [0.5, 0.5, 0.9],  # tie: 1/2
            [0.8, 0.2, 0.0],  # own 1 (0.2) < twin 0 (0.8): 0
            [0.3, 0.4, 0.0],  # own 1 > twin 0: 1
            [0.0, 0.0, 1.0],  # video 2 has no twin: not counted
        ]
    )
    c2v = np.array([0, 0, 1, 1, 2])
    twin_of = np.array([1, 0, -1])
    acc, n = tw.twin_pairwise_accuracy(sim, c2v, twin_of)
    assert n == 4 and acc == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert (acc, n) == pytest.approx(brute_force_twin_accuracy(sim, c2v, twin_of))
    acc, n = tw.twin_pairwise_accuracy(
        sim, c2v, twin_of, caption_mask=[True, False, True, False, True]
    )
    assert (acc, n) == (0.5, 2)


def test_twin_accuracy_matches_brute_force_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = int(rng.integers(2, 9))
        twin_of = np.full(v, -1)
        order = rng.permutation(v)
        for a, b in zip(order[0::2][: v // 3], order[1::2][: v // 3], strict=False):
            twin_of[a], twin_of[b] = b, a
        c2v = rng.integers(0, v, size=int(rng.integers(1, 30)))
        sim = rng.integers(0, 3, size=(len(c2v), v)).astype(np.float32)  # many ties
        mask = rng.random(len(c2v)) < 0.6
        for m in (None, mask):
            got = tw.twin_pairwise_accuracy(torch.from_numpy(sim), c2v, twin_of, m)
            want = brute_force_twin_accuracy(sim, c2v, twin_of, m)
            assert got[1] == want[1]
            assert (math.isnan(got[0]) and math.isnan(want[0])) or got[0] == pytest.approx(want[0])


def test_order_blind_scores_give_exactly_one_half():
    """Identical embeddings for a video and its twin -> every caption ties -> exactly 0.5."""
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(4, 8, generator=gen)
    video = torch.cat([video, video[:2].flip(0)])  # videos 4, 5 are twins of 1, 0 with equal rows
    twin_of = np.array([5, 4, -1, -1, 1, 0])
    text = torch.randn(30, 8, generator=gen)
    c2v = torch.randint(0, 6, (30,), generator=gen).numpy()
    acc, n = tw.twin_pairwise_accuracy(text @ video.T, c2v, twin_of)
    assert n == int(np.isin(c2v, [0, 1, 4, 5]).sum()) and acc == 0.5


def test_twin_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must be \\(C, V\\)"):
        tw.twin_pairwise_accuracy(np.zeros((3, 2)), [0, 1, 1], [1, 0, -1])


def test_twin_accuracy_without_twins_is_nan_with_n_zero():
    acc, n = tw.twin_pairwise_accuracy(np.eye(2), [0, 1], [-1, -1])
    assert n == 0 and math.isnan(acc)


@dataclass
class _Video:
    video_id: str
    meta: dict = field(default_factory=dict)


def test_twin_index_reads_reversed_of_both_ways_and_ignores_other_splits():
    videos = [
        _Video("a"),
        _Video("b", {"reversed_of": "a"}),
        _Video("c", {"reversed_of": "elsewhere"}),
        _Video("d", {"reversed_of": None}),
    ]
    assert tw.twin_index(videos).tolist() == [1, 0, -1, -1]


# ----------------------------------------------------------------------------- temporal subset


def test_subset_t2v_counts_only_selected_captions_against_all_videos():
    sim = np.array(
        [
            [0.9, 0.1, 0.0],  # caption 0 -> video 0: rank 1
            [0.5, 0.6, 0.7],  # caption 1 -> video 0: rank 3
            [0.0, 0.1, 0.9],  # caption 2 -> video 1: rank 2
        ]
    )
    got = tw.subset_t2v(sim, [0, 0, 1], [False, True, True])
    assert got["n"] == 2
    assert got["R@1"] == 0.0 and got["R@5"] == 100.0 and got["MdR"] == 2.5
    assert tw.subset_t2v(sim, [0, 0, 1], [True, False, False])["R@1"] == 100.0
    empty = tw.subset_t2v(sim, [0, 0, 1], [False] * 3)
    assert empty["n"] == 0 and math.isnan(empty["R@1"])


# ----------------------------------------------------------------------------- parameters


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"bogus": 1}, "bogus"),
        ({"train": {"epochz": 2}}, "epochz"),
        ({"train": {"seed": 3}}, "train.seed"),
        ({"models": ["meanP", "tdb-typo"]}, "tdb-typo"),
        ({"model_config_overrides": {"tdb": {"centers": 3}}}, "centers"),
        ({"model_config_overrides": {"tdb": {"dim": 3}}}, "dim"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"weights": [1.5]}, "weights"),
        ({"data": {"wat": 1}}, "data.wat"),
    ],
)
def test_params_reject_bad_keys_naming_them(tmp_path, doc, key):
    with pytest.raises(ParamsError, match=key.replace(".", "\\.").replace("+", "\\+")):
        load_params("temporal_ablation", _write(tmp_path, doc))


def test_partial_train_section_keeps_the_study_defaults():
    p = ta.TemporalParams.model_validate({"train": {"epochs": 7}})
    assert isinstance(p.train, TrainConfig) and p.train.epochs == 7
    assert p.train.lr == ta.DEFAULT_TRAIN.lr and p.train.sampling == ta.DEFAULT_TRAIN.sampling


def test_settings_names_and_shared_runs():
    p = ta.TemporalParams()
    names = [s.name for s in p.settings()]
    n1 = len(ta.TABLE1_MODELS)
    assert names[:n1] == list(ta.TABLE1_MODELS)
    aware = [m for m in ta.TABLE1_MODELS if m != "meanP"]
    assert names[n1 : n1 + len(aware)] == [m + ta.CONTROL for m in aware]
    rest = names[n1 + len(aware) :]
    assert rest == [
        "meanP:frozen-text", "seqTransf:frozen-text", "tdb:frozen-text",
        "seqTransf:twin-batches", "tdb:twin-batches",
        "tab-k4", "tab-k5", "tab-k6", "tab-k7", "tab-w0.4", "tab-w0.5", "tab-w0.6", "tab-w0.7",
    ]  # fmt: skip
    keys = {s.name: s.run_key() for s in p.settings()}
    assert keys["tab-k5"] == keys["tab-w0.5"] == keys["tdb+tab-base"]
    assert len({keys["tab-k4"], keys["tab-k6"], keys["tab-w0.4"], keys["tdb+tab-base"]}) == 4
    assert len(set(keys.values())) == len(keys) - 2  # only tab-k5 and tab-w0.5 are shared
    by_name = {s.name: s for s in p.settings()}
    from vrlib.models import CanonicalOrder

    assert isinstance(ta.build_head(by_name["tdb" + ta.CONTROL], 64, 12), CanonicalOrder)
    assert not isinstance(ta.build_head(by_name["tdb"], 64, 12), CanonicalOrder)
    assert by_name["tdb:frozen-text"].text == "frozen"
    assert by_name["tdb:twin-batches"].train == {"twin_batches": True}
    # the sweep really changes the head
    k4 = next(s for s in p.settings() if s.name == "tab-k4")
    w4 = next(s for s in p.settings() if s.name == "tab-w0.4")
    assert ta.build_head(k4, 64, 12).tab.assign_centers.shape[0] == 4
    assert ta.build_head(w4, 64, 12).part_weights() == pytest.approx(
        {"global": 0.4, "aligned": 0.6}
    )


@pytest.mark.parametrize("name", ["default", "full", "smoke", "msrvtt-9k"])
def test_committed_parameter_files_validate(name):
    p = load_params("temporal_ablation", ROOT / "parameters" / "temporal_ablation" / f"{name}.yaml")
    if name != "default":  # default keeps the heads that decide "does order help?"
        assert {s.model for s in p.settings()} >= set(ta.TABLE1_MODELS)
    if name in ("default", "full"):  # the released code's protocol: own temperature, learned
        assert p.text_side["name"] != "frozen" and p.n_boot >= 1000
        assert p.temperature == "expert" and p.train.learn_temperature
        assert p.train.sampling == "all_captions" and p.sampling.strategy == "clip2video"
        assert {m + ta.CONTROL for m in p.models if m != "meanP"} <= {s.name for s in p.settings()}
        assert ta.step0_setting(p) is not None
    assert get_study("temporal_ablation").notebook == "02_temporal_ablation.ipynb"


# ----------------------------------------------------------------------------- one run end to end


def _split(name, n_videos, gen, twin_pairs=1):
    # entries +-1/4 in 16 dims: unit norm exactly, and sums of them are exact in float32, so a
    # mean over frames does not depend on their order (no rounding to tell twins apart)
    signs = torch.randint(0, 2, (n_videos, 4, 16), generator=gen) * 2 - 1
    frames = signs.float() / 4
    frames[1] = frames[0].flip(0)  # video 1 = video 0 reversed
    c2v = np.repeat(np.arange(n_videos), 3)
    text = torch.nn.functional.normalize(
        frames[c2v].mean(1) + 0.3 * torch.randn(len(c2v), 16, generator=gen), dim=-1
    )
    tokens = text[:, None].repeat(1, 3, 1)
    token_mask = torch.ones(len(c2v), 3, dtype=torch.bool)
    twin_of = np.full(n_videos, -1)
    twin_of[[0, 1]] = [1, 0]
    inputs = {"text": text, "tokens": tokens, "token_mask": token_mask}
    pairs = CachedPairs(
        frames, text, c2v, tokens=tokens, token_mask=token_mask, text_inputs=inputs,
        twin_of=twin_of,
    )  # fmt: skip
    tags = [("temporal",) if c % 2 else () for c in range(len(c2v))]
    return ta.SplitData(name, _DS(c2v), pairs, tags, twin_of)


@dataclass
class _DS:
    caption_to_video: np.ndarray


def test_train_and_evaluate_runs_every_kind_of_head_and_meanP_is_order_blind():
    gen = torch.Generator().manual_seed(0)
    train, val, test = (_split(n, 8, gen) for n in ("train", "val", "test"))
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, progress=False, sampling="all_captions")
    from vrlib.models import build_text_side

    def sides(name=None):
        return build_text_side(name or "adapter", None, 16)

    for model in ("meanP", "tdb", "tdb+tab-tdb"):
        run = tr.train_and_evaluate(
            ta.Setting(model, model), 1, train, val, test, cfg, dim=16, num_frames=4,
            text_side_factory=sides,
        )  # fmt: skip
        assert run.text_state is not None and run.train_twin["twin_pairs"] == 1
        assert run.t2v_ranks.shape == (24,) and run.v2t_ranks.shape == (8,)
        assert np.isnan(run.twin_score).sum() == 24 - 6
        assert run.seed == 1 and len(run.history) == 1 and "val_t2v_R@1" in run.history[0]
        assert set(run.test) >= {"t2v", "v2t"} and run.test["t2v"]["n"] == 24
        assert run.twin["twin_n"] == 6 and run.twin["twin_pairs"] == 1
        assert run.temporal["n"] == 12
        control = tr.train_and_evaluate(
            ta.Setting(model + ta.CONTROL, model, control=True), 1, train, val, test, cfg,
            dim=16, num_frames=4, text_side_factory=sides,
        )  # fmt: skip
        assert control.twin["twin_acc"] == 50.0  # order-blind by construction: twins tie
        assert (control.reversal_score == 0.5).all()  # the twin instrument: exactly 50%
        if model == "meanP":  # reversed frames, same mean: every twin comparison is a tie
            assert run.twin["twin_acc"] == 50.0 and (run.reversal_score == 0.5).all()
        else:  # a head that reads order does not tie its video with the same frames reversed
            assert (run.reversal_score != 0.5).any() and run.reversal_score.shape == (24,)
        assert 0.0 <= run.train_twin["reversal_acc_temporal"] <= 100.0
    rows = tr.summary_rows([run, run.__class__(**{**run.__dict__, "seed": 2})])
    assert {r["direction"] for r in rows} == {"t2v", "v2t"}
    assert all(r["n_seeds"] == 2 and r["R@1_std"] == 0.0 for r in rows)


def test_run_all_trains_shared_settings_once(monkeypatch):
    calls = []

    def fake(setting, seed, *args, **kw):
        calls.append((setting.run_key(), seed))
        return ta.RunResult(setting.name, setting.model, seed, [], None, {}, {}, {}, 0.0, 0)

    monkeypatch.setattr(tr, "train_and_evaluate", fake)
    p = ta.TemporalParams(seeds=[0, 1], sweep_seeds=[5])
    runs = tr.run_all(p, {"train": None, "val": None, "test": None}, dim=8, progress=False)
    assert len(calls) == len(set(calls))
    settings = p.settings()
    expected = sum(len(p.seeds_for(s)) for s in settings)
    assert len(runs) == expected
    assert {r.seed for r in runs if r.setting.startswith("tab-")} == {5}
    # tab-k5 / tab-w0.5 with seed 5 share one run; the base model itself trains with seeds 0, 1
    assert sum(1 for key, seed in calls if key == settings[6].run_key()) == 3


def _run(setting, seed, twin_score, t2v_ranks, reversal_score=None):
    """A run whose reversal scores (the twin instrument) are its twin scores unless given."""
    return ta.RunResult(
        setting, setting.split(":")[0], seed, [], None, {"t2v": {"R@1": 0.0}},
        {"twin_acc": 0.0, "twin_pairs": 2, "twin_n": 4, "twin_n_temporal": 4},
        {"R@1": 100.0 * float(np.mean(np.asarray(t2v_ranks) == 1)), "n": 4}, 0.0, 0,
        t2v_ranks=np.asarray(t2v_ranks), v2t_ranks=np.ones(4, dtype=int),
        twin_score=np.asarray(twin_score, dtype=float),
        reversal_score=np.asarray(twin_score if reversal_score is None else reversal_score, float),
    )  # fmt: skip


def _twin_test_split():
    # videos 0<->1 and 2<->3 are twins; one temporal caption per video
    return ta.SplitData(
        "test", _DS(np.arange(4)), None, [("temporal",)] * 4, np.array([1, 0, 3, 2])
    )


def test_twin_rows_carry_bootstrap_intervals_over_pairs():
    test = _twin_test_split()
    runs = [_run("tdb", s, [1, 1, 0, 1], [1, 1, 2, 1]) for s in (0, 1)]
    runs += [_run("tdb" + ta.CONTROL, s, [0.5] * 4, [1, 2, 2, 2]) for s in (0, 1)]
    rows = {r["setting"]: r for r in tw.twin_rows(runs, test, n_boot=200)}
    tdb, ctl = rows["tdb"], rows["tdb" + ta.CONTROL]
    assert tdb["twin_acc_temporal"] == pytest.approx(75.0)  # pairs: (1+1)/2, (0+1)/2
    assert tdb["twin_acc_temporal_lo"] == 50.0 and tdb["twin_acc_temporal_hi"] == 100.0
    assert ctl["twin_acc_temporal"] == ctl["twin_acc_temporal_lo"] == ctl["twin_acc_temporal_hi"] == 50.0  # fmt: skip
    assert tdb["temporal_R@1_lo"] <= tdb["temporal_R@1"] == 75.0 <= tdb["temporal_R@1_hi"]
    assert tdb["twin_acc_temporal_std"] == 0.0 and tdb["n_seeds"] == 2


def test_reversal_scores_compare_each_caption_with_its_own_video_reversed():
    forward = torch.tensor([[0.9, 0.1], [0.2, 0.5], [0.3, 0.7]])
    backward = torch.tensor([[0.5, 9.0], [9.0, 0.5], [0.3, 0.8]])  # other videos never count
    from vrlib.models.reversal import own_video_order_scores

    got = own_video_order_scores(forward, backward, [0, 1, 1])
    assert got.tolist() == [1.0, 0.5, 0.0]  # above, tie, below
    assert tw.video_values(got, np.array([0, 1, 1]), np.ones(3, bool)).tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="must both be"):
        own_video_order_scores(forward, backward[:2], [0, 1, 1])


def test_pair_values_weigh_each_twin_pair_once():
    c2v = np.array([0, 0, 0, 1, 2, 3, 4])
    twin_of = np.array([1, 0, 3, 2, -1])
    score = np.array([1.0, 1.0, 1.0, 0.0, 0.5, 0.5, np.nan])
    got = tw.pair_values(score, c2v, twin_of, np.ones(7, dtype=bool))
    assert got.tolist() == [0.75, 0.5]  # pair (0,1): 3 ones and a zero; pair (2,3): ties


def test_reading_is_computed_from_the_numbers():
    def row(name, direction, r1, std):
        return {"setting": name, "direction": direction, "R@1": r1, "R@1_std": std, "n_seeds": 3}

    summary = [row("tab-k4", "t2v", 25.0, 0.5), row("tab-k5", "t2v", 24.0, 0.5)]
    paper = [row("seqTransf", "t2v", 44.5, 0), row("meanP", "t2v", 43.1, 0)]
    paper += [row("tab-k5", "t2v", 45.1, 0), row("tab-k4", "t2v", 44.6, 0)]
    test = _twin_test_split()
    # seqTransf wins every twin pair, its control ties them; tdb loses to its control
    runs = [
        _run("meanP", 0, [0.5] * 4, [2, 2, 2, 2]),
        _run("seqTransf", 0, [1, 1, 1, 1], [1, 1, 1, 1]),
        _run("seqTransf" + ta.CONTROL, 0, [0.5] * 4, [1, 1, 2, 2]),
        _run("tdb", 0, [0, 0, 0, 0], [2, 2, 2, 2]),
        _run("tdb" + ta.CONTROL, 0, [0.5] * 4, [2, 2, 2, 2]),
    ]
    twins = tw.twin_rows(runs, test, n_boot=200)
    units, clusters = tw.claim_units(runs, test), tw.claim_clusters(test)
    assert units("meanP", "t2v").shape == (1, len(test.caption_to_video))  # (seeds, queries)
    assert list(clusters("t2v")) == list(test.caption_to_video) and clusters("twin") is None
    claims = tk.paired_claims_table(ta.CLAIMS, units, paper, clusters=clusters, n_boot=200)
    assert claims[0]["resampled"] == "clusters"
    # seqTransf vs meanP (T2V 100 vs 0) holds; tdb vs seqTransf (0 vs 100) is reversed
    assert [c["verdict"] for c in claims] == ["holds", "reversed"]
    assert claims[0]["paper diff"] == pytest.approx(1.4) and claims[0]["ours diff"] == 100.0
    p = ta.TemporalParams(models=["meanP", "seqTransf", "tdb"], frozen_text_models=[],
                          twin_batch_models=[])  # fmt: skip
    ours = tk.paired_claims_table(ta.study_claims(p), units, n_boot=200)
    verdicts = {c["comparison"]: c["verdict"] for c in ours}
    assert verdicts["seqTransf vs seqTransf:order-blind (reversal)"] == "holds"
    assert verdicts["tdb vs tdb:order-blind (reversal)"] == "reversed"
    text = trd.reading(summary, twins, claims, ours, paper)
    assert "1 of 2 of the paper's Table 1 comparisons hold" in text
    assert "meanP prefers the true order in 50.0% [50.0, 50.0]" in text
    assert "1 of 2 order-aware heads prefer a caption's video in true order to the same frames reversed more often" in text  # fmt: skip
    assert "1 do so less often (tdb -50.0)" in text
    assert "; in all: 1 hold, 1 reversed, 0 within noise, 0 underpowered." in text
    assert "seqTransf 100.0% [100.0, 100.0] vs 50.0% [50.0, 50.0]" in text
    assert "Best K by T2V R@1: ours 4, the paper's 5" in text
    assert "Does order help? 1 of 2" in text
    shut = trd.reading(summary, twins, claims, ours, paper, gate_passed=False)
    assert (
        "Does order help?" not in shut and "Twin results (not read, see the gate): 1 of 2" in shut
    )


def test_text_gate_reads_twins_only_above_ninety_percent_on_the_last_text_side():
    from vrlib.studies.temporal.probes import PROBE_GATE, text_gate

    frozen = {"text": "frozen", "pairwise": 95.0}
    trained = {"text": "adapter", "pairwise": PROBE_GATE - 0.1}
    passed, words = text_gate([frozen, trained])  # the most trained side decides
    assert not passed and "Gate not passed: the adapter text side" in words and "89.9%" in words
    passed, words = text_gate([trained, frozen | {"pairwise": PROBE_GATE}])
    assert passed and words.startswith("Gate passed")
    assert text_gate([]) == (True, "")


def test_paired_claims_table_skips_missing_settings_and_decides_by_interval():
    a, b = np.ones(50) * 100.0, np.zeros(50)
    noise = np.tile([100.0, 0.0], 25)
    table = {("x", "t2v"): a, ("y", "t2v"): b, ("z", "t2v"): noise}
    claims = [("x", "y", "t2v", "x beats y"), ("z", "noise", "t2v", "missing"),
              ("z", "z", "t2v", "z beats z"), ("y", "x", "t2v", "y beats x")]  # fmt: skip
    rows = tk.paired_claims_table(claims, lambda s, k: table.get((s, k)), n_boot=200)
    assert [r["verdict"] for r in rows] == [
        "holds",
        tk.IDENTICAL,
        "reversed",
    ]  # z vs z: never holds
    assert rows[0]["ours diff"] == 100.0 and rows[0]["n"] == 50
    assert all(r["CI lo"] <= r["ours diff"] <= r["CI hi"] for r in rows)


def test_probe_reading_says_where_the_signal_is_lost():
    from vrlib.studies.temporal.probes import probe_reading

    blind_text = [{"text": "frozen", "pairwise": 51.0, "pairwise_lo": 45.0, "pairwise_hi": 57.0,
                   "n_test": 80}]  # fmt: skip
    fit = [{"setting": "tdb", "train reversal_acc_temporal": 90.0},
           {"setting": "tdb" + ta.CONTROL, "train reversal_acc_temporal": 50.0}]  # fmt: skip
    assert "lost in the caption embeddings" in probe_reading(blind_text, fit)
    good_text = [{**blind_text[0], "pairwise": 80.0, "pairwise_lo": 72.0}]
    assert "signal exists" in probe_reading(good_text, fit)
    no_fit = [fit[0] | {"train reversal_acc_temporal": 52.0}, fit[1]]
    text = probe_reading(good_text, no_fit)
    assert "lost on the video side" in text and "within 5 points of it" in text


def _caption_like(n: int, seed: int, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors that share one large direction; each of the 8 directions adds a small offset
    on its own axis (opposite directions at cosine ~0.99, as the expert's captions are)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 8
    x = torch.zeros(n, 32)
    x[:, 0] = 1.0
    x[torch.arange(n), 1 + y] += offset
    x += 0.01 * torch.randn(n, 32, generator=g)
    return torch.nn.functional.normalize(x, dim=-1), y


def test_direction_probe_finds_a_small_offset_whatever_the_features_scale():
    from vrlib.studies.temporal.probes import fit_direction_probe, pairwise_direction

    train, val, test = (_caption_like(400, s, 0.05) for s in (0, 1, 2))
    scores = []
    for scale, shift in ((1.0, 0.0), (1e-3, 5.0)):  # standardised: an affine change is invisible
        moved = [(x * scale + shift, y) for x, y in (train, val, test)]
        probe, wd = fit_direction_probe(*moved[0], moved[1])
        with torch.no_grad():
            scores.append(pairwise_direction(probe(moved[2][0]), moved[2][1]).mean())
    assert scores[0] >= 95.0 and scores[1] == pytest.approx(scores[0], abs=1.0)


def test_direction_probe_chooses_its_l2_by_pairwise_accuracy_on_val():
    from vrlib.studies.temporal.probes import (
        DIRECTIONS,
        PROBE_WEIGHT_DECAYS,
        fit_direction_probe,
        fit_linear_probe,
        pairwise_direction,
    )

    train, val = _caption_like(80, 0, 0.03), _caption_like(80, 1, 0.03)
    by_hand = []
    for wd in PROBE_WEIGHT_DECAYS:
        probe = fit_linear_probe(*train, len(DIRECTIONS), weight_decay=wd)
        with torch.no_grad():
            by_hand.append(pairwise_direction(probe(val[0]), val[1]).mean())
    _, chosen = fit_direction_probe(*train, val)
    assert chosen == PROBE_WEIGHT_DECAYS[int(np.argmax(by_hand))]  # the first best: strongest L2
    assert fit_direction_probe(*train, None)[1] == 1e-3  # no val split: the fixed strength


def _runs_with_cards(monkeypatch):
    from test_leaderboard import _world_like

    from vrlib.evaluation.study_cards import study_card

    c2v, sim = _world_like()

    def fake(setting, seed, *args, sampling=None, **kw):
        card = study_card(
            sim, c2v, dataset="synthetic", split="test", root=".", study=tr.STUDY,
            setting=setting.name, seed=seed, sampling=sampling, intervals=0,
        )  # fmt: skip
        return ta.RunResult(
            setting.name, setting.model, seed, [], None, {}, {}, {}, 0.0, 0, card=card
        )

    monkeypatch.setattr(tr, "train_and_evaluate", fake)
    p = ta.TemporalParams(seeds=[0], sweep_seeds=[5])
    runs = tr.run_all(p, {"train": None, "val": None, "test": None}, dim=8, progress=False)
    return runs, p


def test_run_all_gives_each_setting_its_own_card_of_a_shared_run(monkeypatch):
    runs, p = _runs_with_cards(monkeypatch)
    assert all(r.card.model["name"] == f"temporal_ablation:{r.setting}" for r in runs)
    assert all(r.card.protocol["sampling"] == p.sampling.model_dump() for r in runs)
    names = [r.card.model["name"] for r in runs]
    assert len(names) == len(set(names))  # shared runs do not share a card object


def test_write_cards_keeps_the_first_seed_of_each_setting_with_its_encoder(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from vrlib.evaluation import ResultCard

    runs, p = _runs_with_cards(monkeypatch)
    runs = runs + [copy.copy(runs[0])]  # a second seed of the first setting: not written
    written = tr.write_cards(
        runs, SimpleNamespace(fingerprint="f00d", name="vrlib-tiny"), p, tmp_path
    )
    assert len(written) == len({r.setting for r in runs})
    card = ResultCard.load(written[0])
    assert card.model["fingerprint"] == "f00d" and card.model["encoder"]["name"] == p.encoder.model
