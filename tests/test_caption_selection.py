"""Study 03 (caption selection): the no-ground-truth guard, per-epoch pairs, training, rows and
claims on constructed numbers, and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.captions import Candidates, VideoCaptions, draw, select
from vrlib.models.base import HeadConfig
from vrlib.studies import toolkit as tk
from vrlib.studies.captions import claims as cc
from vrlib.studies.captions import data as cdata
from vrlib.studies.captions import report as crep
from vrlib.studies.captions import runs as cr
from vrlib.studies.captions import study as cs
from vrlib.studies.toolkit import claims_table
from vrlib.train import CachedPairs, TrainConfig, evaluate_model, fit

# ----------------------------------------------------------------------------- constructed data

V, M, D = 12, 4, 16


class _Video:
    def __init__(self, i: int) -> None:
        self.video_id = f"v{i}"


class _Dataset:
    videos = [_Video(i) for i in range(V)]


def _table(label: str, rng: np.random.Generator) -> VideoCaptions:
    return VideoCaptions(
        captioner=label,
        video_ids=[f"v{i}" for i in range(V)],
        frame_indices=np.tile(np.arange(M), (V, 1)),
        captions=[[f"{label} caption {m} of video {v}" for m in range(M)] for v in range(V)],
        scores=rng.random((V, M)).astype(np.float32),
    )


def _train_data(rotation: torch.Tensor | None = None, epochs: int = 2) -> cdata.TrainData:
    """Two captioners' tables, E frame draws, and a caption pool whose embedding of every caption
    of video v is ``R @ mean(frames of v)`` (so a learnt projection can align them)."""
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(V, D, generator=gen), dim=-1)  # (V, D)
    frames = [
        [base[v] + 0.05 * torch.randn(3, D, generator=gen) for v in range(V)] for _ in range(epochs)
    ]
    tables = {"C": _table("C", rng), "B": _table("B", rng)}
    ground_truth = [[f"ground truth of video {v}"] for v in range(V)]
    pool = sorted(
        {t for tab in tables.values() for caps in tab.captions for t in caps}
        | {t for g in ground_truth for t in g}
    )
    r = torch.eye(D) if rotation is None else rotation
    video_of = {t: int(t.rsplit(" ", 1)[1]) for t in pool}
    text = torch.stack([r @ base[video_of[t]] for t in pool])  # (P, D)
    return cdata.TrainData(_Dataset(), tables, None, frames, pool, {"text": text}, ground_truth)


# ----------------------------------------------------------------------------- the guard


def test_guard_fails_when_a_ground_truth_caption_reaches_training():
    produced = [["a red circle", "a blue square"]]
    gt = [["a red circle moves left"]]
    cs.check_training_texts([["a blue square"]], produced, gt)  # captioner output: fine
    with pytest.raises(cs.GroundTruthInTraining, match="ground-truth caption"):
        cs.check_training_texts([["a blue square", "a red circle moves left"]], produced, gt)
    with pytest.raises(cs.GroundTruthInTraining, match="no captioner wrote"):
        cs.check_training_texts([["something else"]], produced, gt)
    # another video's caption is not this video's label either
    with pytest.raises(cs.GroundTruthInTraining, match="video 1"):
        cs.check_training_texts([["a blue square"], ["a blue square"]], [*produced, ["x"]], gt * 2)
    cs.check_training_texts([["a red circle moves left"]], produced, gt, upper_bound=True)


def test_training_pairs_of_every_captioner_run_never_hold_ground_truth(monkeypatch):
    data = _train_data()
    gt = {t for g in data.ground_truth for t in g}
    params = cs.CaptionSelectionParams.model_construct(
        captioners=[cs.CaptionerSpec(label="C", name="blip-tiny"),
                    cs.CaptionerSpec(label="B", name="blip-tiny")],
        rules=[("rand_m", 1), ("middle_1", 1), ("top_1", 1), ("rand_top_k", 2)],
        combine_k=2, upper_bounds=list(cs.UPPER_BOUNDS),
    )  # fmt: skip
    for spec in cs.CaptionSelectionParams.runs(params):
        if spec.rule == cs.GT_DESCRIBER:
            continue  # needs a describer table; not built here
        pairs = cr.train_pairs(spec, data, seed=0)
        seen = set()
        for epoch in range(6):
            pairs.set_epoch(epoch)
            seen |= set(pairs.texts)
        assert bool(seen & gt) == (spec.rule == cs.GT_CAPTIONS), spec.key

    # a bug that hands a captioner run the ground truth is caught before training
    real = cdata.selection_for
    monkeypatch.setattr(
        cdata, "selection_for", lambda spec, d: real(cs.RunSpec(cs.GT_CAPTIONS, 0, ()), d)
    )
    with pytest.raises(cs.GroundTruthInTraining):
        cr.train_pairs(cs.RunSpec("top_1", 1, ("C",)), data, seed=0)


# ----------------------------------------------------------------------------- per-epoch pairs


def test_epoch_pairs_swap_frames_and_draw_captions_each_epoch():
    data = _train_data(epochs=3)
    spec = cs.RunSpec("rand_m", 1, ("C", "B"))
    pairs = cr.train_pairs(spec, data, seed=5)
    sel = cdata.selection_for(spec, data)
    where = {t: i for i, t in enumerate(data.pool)}
    for epoch in (0, 1, 4):
        pairs.set_epoch(epoch)
        want = draw(sel, epoch, 5)
        assert pairs.texts == want
        idx = torch.tensor([where[t] for t in want])
        assert torch.equal(pairs.text, data.pool_inputs["text"][idx])
        assert torch.equal(pairs.frames[:, :3], torch.stack(data.frames_by_epoch[epoch % 3]))
        assert len(pairs) == V and torch.equal(pairs.caption_to_video, torch.arange(V))
    pairs.set_epoch(0)
    first = list(pairs.texts)
    pairs.set_epoch(1)
    assert pairs.texts != first  # Rand(M) over 8 captions: a new draw


def test_top_1_trains_on_the_best_scored_caption_every_epoch():
    data = _train_data()
    pairs = cr.train_pairs(cs.RunSpec("top_1", 1, ("C",)), data, seed=0)
    best = data.tables["C"].scores.argmax(axis=1)
    for epoch in range(3):
        pairs.set_epoch(epoch)
        assert pairs.texts == [data.tables["C"].captions[v][best[v]] for v in range(V)]


def test_mean_pool_projection_is_mean_pooling_at_init():
    from vrlib.models import build_model

    head = cr.MeanPoolProjection(HeadConfig(dim=D, num_frames=3))
    frames, mask = torch.randn(5, 3, D), torch.ones(5, 3, dtype=torch.bool)
    meanp = build_model("meanP", dim=D, num_frames=3)
    assert torch.allclose(head.encode_video(frames, mask), meanp.encode_video(frames, mask))


# ----------------------------------------------------------------------------- training


def test_training_on_selected_captions_lowers_the_loss_and_beats_the_untrained_model():
    from vrlib.models import build_text_side

    rot = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1)))[0]
    data = _train_data(rotation=rot)
    pairs = cr.train_pairs(cs.RunSpec("rand_top_k", 2, ("C", "B")), data, seed=0)
    # held-out queries: each video's ground-truth caption embedding, same rotation
    gt_idx = torch.tensor([data.pool.index(g[0]) for g in data.ground_truth])
    test = CachedPairs(
        data.frames_by_epoch[0], data.pool_inputs["text"][gt_idx], np.arange(V),
        text_inputs={"text": data.pool_inputs["text"][gt_idx]},
    )  # fmt: skip
    torch.manual_seed(0)
    head = cr.MeanPoolProjection(HeadConfig(dim=D, num_frames=3))
    side = build_text_side("frozen", dim=D)
    before = evaluate_model(head, test, text_side=side)["t2v"]["R@1"]
    cfg = TrainConfig(
        epochs=40, batch_size=6, lr=5e-2, warmup=0, temperature=0.05, learn_temperature=False,
        sampling="one_caption_per_video", progress=False, weight_decay=0.0,
    )  # fmt: skip
    result = fit(head, pairs, None, cfg, text_side=side)
    losses = [h["train_loss"] for h in result.history]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
    after = evaluate_model(head, test, text_side=side)["t2v"]["R@1"]
    assert after > before + 30


# ----------------------------------------------------------------------------- rows and claims


def _run(spec: cs.RunSpec, seed: int, r1: float, ranks: np.ndarray) -> cr.RunResult:
    t2v = {"R@1": r1, "R@5": min(100.0, r1 + 10), "R@10": min(100.0, r1 + 20), "MdR": 2.0,
           "MnR": 3.0, "StdR": 1.0, "n": len(ranks)}  # fmt: skip
    return cr.RunResult(spec, seed, [], {"t2v": t2v, "v2t": dict(t2v)}, ranks, 0.0)


def _constructed_runs() -> tuple[list[cr.RunResult], cs.CaptionSelectionParams]:
    """C/top-2 clearly beats zero-shot, Rand(M) and Middle 1; C+B beats C and B and pooled."""
    n = 200
    rng = np.random.default_rng(0)
    r1 = {"none/zero_shot": 10, "C/rand_m": 15, "C/middle_1": 14, "C/rand_top_k2": 40,
          "B/rand_m": 16, "B/middle_1": 15, "B/rand_top_k2": 42, "C+B/rand_top_k2": 60,
          "C+B/pooled_top_k2": 30}  # fmt: skip
    specs = {
        "none/zero_shot": cs.RunSpec(cs.ZERO_SHOT, 0, ()),
        **{f"{lab}/{rule}": cs.RunSpec(rule, 1, (lab,)) for lab in "CB" for rule in ("rand_m", "middle_1")},
        **{f"{lab}/rand_top_k2": cs.RunSpec("rand_top_k", 2, (lab,)) for lab in "CB"},
        "C+B/rand_top_k2": cs.RunSpec("rand_top_k", 2, ("C", "B")),
        "C+B/pooled_top_k2": cs.RunSpec("pooled_top_k", 2, ("C", "B")),
    }  # fmt: skip
    runs = []
    for key, spec in specs.items():
        assert spec.key == key
        for seed in range(3):
            hit = rng.random(n) < r1[key] / 100
            ranks = np.where(hit, 1, 5)
            runs.append(_run(spec, seed, float(100 * hit.mean()), ranks))
    params = cs.CaptionSelectionParams.model_construct(
        captioners=[cs.CaptionerSpec(label="C", name="blip-tiny"),
                    cs.CaptionerSpec(label="B", name="blip-tiny")],
        combine_k=2,
    )  # fmt: skip
    return runs, params


def test_rows_use_rule_names_as_setting_and_claims_follow_the_numbers():
    runs, params = _constructed_runs()
    summary = crep.summary_rows(runs)
    assert {r["setting"] for r in summary} == {
        "zero_shot", "rand_m", "middle_1", "rand_top_k", "pooled_top_k"
    }  # fmt: skip
    assert all(r["n_seeds"] == 3 for r in summary)
    keyed = cc.keyed(summary)
    claims = cc.paper_claims(keyed, params)
    assert len(claims) == 8  # 3 per captioner + C+B vs best single + pooled
    best_single = [c for c in claims if c[3].startswith("C+B >=")][0][1]
    assert best_single == "B/rand_top_k2"  # B scores higher here
    table = claims_table(keyed, [], claims)
    assert all(c["verdict"] == "holds" for c in table), table
    videos = np.arange(len(runs[0].t2v_ranks)) // 4  # 4 queries per test video
    boot = crep.query_bootstrap(runs, claims, n_boot=300, seed=0, clusters=videos)
    assert all(b["lo"] > 0 and b["verdict"] == "holds" for b in boot)
    assert {b["resampled"] for b in boot} == {"videos and seeds"}
    by_query = crep.query_bootstrap(runs, claims, n_boot=300, seed=0)
    assert {b["resampled"] for b in by_query} == {"queries and seeds"}
    text = crep.reading(keyed, table, boot, [])
    assert "8 of 8" in text and "Not reproduced" not in text
    assert "Over test videos and seeds (paired cluster bootstrap of T2V R@1, 95%), 8 of 8" in text
    assert "; 8 hold, 0 reversed, 0 within noise, 0 underpowered." in text
    zero = "none/zero_shot"
    trained = [k for k in dict.fromkeys(r.spec.key for r in runs) if k != zero]
    step0 = crep.query_bootstrap(runs, tk.against_step0(trained, zero), 300, 0, clusters=videos)
    assert [b["comparison"] for b in step0] == [f"{k} vs {zero}" for k in trained]
    beat = [b["comparison"].split(" vs ")[0] for b in step0 if b["verdict"] == "holds"]
    assert "C+B/rand_top_k2" in beat and "C/rand_top_k2" in beat  # 60 and 40 vs 10 R@1
    text = crep.reading(keyed, table, boot, [], [], step0)
    assert (
        f"Step 0: {len(beat)} of {len(trained)} trained runs beat zero-shot over test videos"
        in text
    )


def test_query_bootstrap_resamples_videos_and_seeds_and_reads_underpowered():
    runs, params = _constructed_runs()
    keyed = cc.keyed(crep.summary_rows(runs))
    claims = [("C/rand_m", "C/middle_1", "t2v", "close call")]
    n = len(runs[0].t2v_ranks)
    paper = [{"setting": "C/rand_m", "direction": "t2v", "R@1": 20.5},
             {"setting": "C/middle_1", "direction": "t2v", "R@1": 20.0}]  # fmt: skip
    one_video = crep.query_bootstrap(runs, claims, 300, 0, clusters=np.zeros(n), paper=paper)[0]
    per_video = crep.query_bootstrap(runs, claims, 300, 0, clusters=np.arange(n) // 4, paper=paper)[
        0
    ]
    # one cluster: only the seeds vary, so the interval is the seeds' spread alone
    assert one_video["hi"] - one_video["lo"] < per_video["hi"] - per_video["lo"]
    assert per_video["lo"] < 0 < per_video["hi"] and per_video["MDD"] > 0.5
    assert per_video["verdict"] == "underpowered"  # a 0.5-point paper effect: below the MDD
    no_paper = crep.query_bootstrap(runs, claims, 300, 0, clusters=np.arange(n) // 4)[0]
    assert no_paper["verdict"] == "within noise"  # no effect named: nothing to be powered for
    text = crep.reading(keyed, [], [per_video], [])
    assert (
        "0 of 1 differences are above 0 (none); 0 hold, 0 reversed, 0 within noise, 1 underpowered."
        in text
    )


def test_reading_reports_a_reversed_claim():
    runs, params = _constructed_runs()
    # swap: pooled now far better than C+B per-captioner top 2
    for r in runs:
        if r.spec.key == "C+B/pooled_top_k2":
            r.test["t2v"]["R@1"], r.t2v_ranks = 90.0, np.ones_like(r.t2v_ranks)
    keyed = cc.keyed(crep.summary_rows(runs))
    claims = cc.paper_claims(keyed, params)
    table = claims_table(keyed, [], claims)
    verdicts = {c["comparison"].split(" (")[0]: c["verdict"] for c in table}
    assert verdicts["C+B/rand_top_k2 vs C+B/pooled_top_k2"] == "reversed"
    boot = crep.query_bootstrap(runs, claims, n_boot=300, seed=0)
    text = crep.reading(keyed, table, boot, [])
    assert "7 of 8" in text and "Not reproduced: C+B/rand_top_k2 vs C+B/pooled_top_k2" in text


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"captioners": [{"label": "C", "name": "nope"}]}, "unknown captioner 'nope'"),
        ({"rules": [["best_ever", 1]]}, "unknown selection rule 'best_ever'"),
        ({"rules": [["rand_top_k", 11]]}, "k=11"),
        ({"captioners": [{"label": "C", "name": "blip-tiny"}] * 2}, "labels must be distinct"),
        ({"upper_bounds": ["oracle"]}, "unknown"),
        ({"text_side": {"name": "bert"}}, "unknown 'bert'"),
        ({"train": {"sampling": "all_captions"}}, "one caption per video"),
        ({"decoding": {"method": "nucleus"}}, "nucleus"),
        ({"combine_k": 12}, "combine_k=12"),
        ({"train": {"temperature": 0.05}}, "set temperature: at the top level"),
        ({"temperature": 0.001}, "temperature must be 'expert' or in"),
    ],
)
def test_bad_parameters_fail_naming_the_key(override, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        cs.CaptionSelectionParams.model_validate({"data": {"world_preset": "smoke"}, **override})


def test_default_runs_cover_tables_1_to_3_once_each():
    p = cs.CaptionSelectionParams()
    keys = [s.key for s in p.runs()]
    assert len(keys) == len(set(keys))
    assert {"C/rand_top_k2", "B/rand_top_k2", "C+B/rand_top_k2", "C+B/pooled_top_k2"} <= set(keys)
    assert sum(k.startswith("upper bound/") for k in keys) == 2


def test_select_and_candidates_agree_with_the_runs_selection():
    data = _train_data()
    sel = cdata.selection_for(cs.RunSpec("rand_top_k", 2, ("C", "B")), data)
    cands = Candidates(["C", "B"], [f"v{i}" for i in range(V)],
                       [[data.tables["C"].captions[v], data.tables["B"].captions[v]] for v in range(V)],
                       np.stack([data.tables["C"].scores, data.tables["B"].scores], axis=1))  # fmt: skip
    assert sel.captions == select(cands, "rand_top_k", 2).captions


def test_readme_tells_rows_of_one_rule_apart_by_captioners_k_and_protocol(tmp_path):
    import json

    from vrlib.report import build_readme

    def doc(r1_c: float, r1_b: float, r1_e2e: float) -> dict:
        rows = [
            {"setting": "rand_top_k", "captioners": lab, "k": 2, "protocol": protocol,
             "split": "test", "direction": "t2v", "R@1": r1, "R@5": 50.0, "MdR": 3.0}
            for lab, protocol, r1 in (("C", cs.CACHED, r1_c), ("B", cs.CACHED, r1_b),
                                      ("C", cs.END_TO_END, r1_e2e))
        ]  # fmt: skip
        return {"study": "caption_selection", "seed": 0, "wall_time_s": 1.0,
                "versions": {"torch": "x"}, "protocol": {}, "rows": rows}  # fmt: skip

    for name, values in (("default", (11.0, 22.0, 5.0)), ("no_shift", (33.0, 44.0, 6.0))):
        folder = tmp_path / "caption_selection" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(doc(*values)))
    lines = build_readme(tmp_path).read_text().splitlines()
    line_c = next(x for x in lines if x.startswith("| rand_top_k [C, k=2, cached]"))
    line_b = next(x for x in lines if x.startswith("| rand_top_k [B, k=2, cached]"))
    line_e = next(x for x in lines if x.startswith("| rand_top_k [C, k=2, end to end]"))
    assert line_c.endswith("| 11.0 | 50.0 | 3.0 | 33.0 |"), line_c
    assert line_b.endswith("| 22.0 | 50.0 | 3.0 | 44.0 |"), line_b
    assert line_e.endswith("| 5.0 | 50.0 | 3.0 | 6.0 |"), line_e


def test_fit_tells_the_training_data_each_epoch_before_its_batches():
    from vrlib.models import build_text_side

    data = _train_data(epochs=2)
    pairs = cr.train_pairs(cs.RunSpec("rand_m", 1, ("C",)), data, seed=0)
    seen: list[tuple[int, list[str]]] = []
    original = pairs.set_epoch

    def record(epoch: int) -> None:
        original(epoch)
        seen.append((epoch, list(pairs.texts)))

    pairs.set_epoch = record
    head = cr.MeanPoolProjection(HeadConfig(dim=D, num_frames=3))
    cfg = TrainConfig(epochs=3, batch_size=4, sampling="one_caption_per_video", progress=False)
    fit(head, pairs, None, cfg, text_side=build_text_side("frozen", dim=D))
    sel = cdata.selection_for(cs.RunSpec("rand_m", 1, ("C",)), data)
    assert seen == [(e, draw(sel, e, 0)) for e in range(3)]


def test_training_starts_from_the_experts_own_temperature_or_a_given_one():
    class _Model(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(scale).log())

    class _Encoder:
        def __init__(self, scale: float) -> None:
            self.model = _Model(scale)

    from vrlib.studies.common import start_temperature

    p = cs.CaptionSelectionParams.model_validate({"data": {"world_preset": "smoke"}})
    assert p.temperature == "expert"
    assert start_temperature(p.temperature, _Encoder(20.0)) == pytest.approx(0.05)
    assert (
        start_temperature(p.temperature, _Encoder(200.0)) == 0.01
    )  # clamped like CLIP's scale of 100
    fixed = p.model_copy(update={"temperature": 0.2})
    assert start_temperature(fixed.temperature, _Encoder(20.0)) == 0.2


def _rotated_case() -> tuple[cdata.TrainData, CachedPairs]:
    """Training data whose captions are a rotation of their videos' frames, and held-out
    queries: each video's ground-truth caption embedding under the same rotation."""
    rot = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1)))[0]
    data = _train_data(rotation=rot)
    gt_idx = torch.tensor([data.pool.index(g[0]) for g in data.ground_truth])
    held_out = CachedPairs(
        data.frames_by_epoch[0], data.pool_inputs["text"][gt_idx], np.arange(V),
        text_inputs={"text": data.pool_inputs["text"][gt_idx]},
    )  # fmt: skip
    return data, held_out


def test_training_curves_start_at_zero_shot_and_follow_every_epoch(monkeypatch):
    data, test = _rotated_case()
    p = cs.CaptionSelectionParams.model_construct(
        captioners=[cs.CaptionerSpec(label="C", name="blip-tiny")], combine_k=2, seeds=[0],
        upper_bounds=[cs.GT_CAPTIONS], temperature=0.05, text_side={"name": "frozen"},
        train_sampling=cs.SamplingParams(strategy="segment_random", n=3),
        train=TrainConfig(epochs=3, batch_size=6, lr=5e-2, warmup=0, progress=False,
                          sampling="one_caption_per_video"),
    )  # fmt: skip
    encoder = type("E", (), {"embed_dim": D})()
    rows = cr.training_curves(p, encoder, data, test, zero_shot_r1=12.5, lr=5e-2)
    assert [r["run"] for r in rows] == ["C/rand_top_k2"] * 4 + [
        "upper bound/ground_truth_captions"
    ] * 4
    assert [r["epoch"] for r in rows[:4]] == [0, 1, 2, 3]
    assert rows[0]["t2v R@1"] == 12.5 and np.isnan(rows[0]["train loss"])
    # the recorded epochs are the engine's own validation of the test split
    head, side, result, _ = cr._fit(
        cs.RunSpec("rand_top_k", 2, ("C",)), 0, p, encoder, data, test, eval_every_epochs=1
    )
    assert [r["t2v R@1"] for r in rows[1:4]] == [h["val_t2v_R@1"] for h in result.history]
    text = crep.reading([], [], [], [], rows)
    assert "C/rand_top_k2 peaks at epoch" in text and "untrained 12.5" in text


def test_the_cached_lr_is_chosen_on_val_with_the_untrained_model_beside_it():
    data, val = _rotated_case()
    p = cs.CaptionSelectionParams.model_construct(
        captioners=[cs.CaptionerSpec(label="C", name="blip-tiny")], combine_k=2, seeds=[0],
        temperature=0.05, text_side={"name": "frozen"}, lrs=[1e-9, 5e-2],
        train_sampling=cs.SamplingParams(strategy="segment_random", n=3),
        test_sampling=cs.SamplingParams(strategy="uniform", n=3),
        train=TrainConfig(epochs=20, batch_size=6, lr=1.0, warmup=0, progress=False,
                          sampling="one_caption_per_video", weight_decay=0.0),
    )  # fmt: skip
    encoder = type("E", (), {"embed_dim": D})()
    rows = cr.choose_lr(p, encoder, data, val)
    assert [(r["protocol"], r["lr"]) for r in rows] == [("cached", 0.0), ("cached", 1e-9),
                                                        ("cached", 5e-2)]  # fmt: skip
    assert rows[1]["t2v R@1"] == pytest.approx(rows[0]["t2v R@1"])  # 1e-9 trains nothing
    assert rows[2]["t2v R@1"] > rows[0]["t2v R@1"] + 30  # 5e-2 learns the rotation
    assert [r["chosen"] for r in rows] == [False, False, True]
    given = cr.choose_lr(p.model_copy(update={"lrs": [1e-3]}), encoder, data, None)
    assert given == [{"protocol": "cached", "run": "given", "lr": 1e-3, "t2v R@1": pytest.approx(
        float("nan"), nan_ok=True), "chosen": True}]  # fmt: skip
