"""Study 04's parameters, run sharing, bootstrap and claims (vrlib.studies.curriculum.runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.papers import paper_rows
from vrlib.report import load_params
from vrlib.studies import toolkit as tk
from vrlib.studies.curriculum import claims as cc
from vrlib.studies.curriculum import data as cdata
from vrlib.studies.curriculum import runs as cu


def _params(**kw) -> cu.CurriculumParams:
    return cu.CurriculumParams.model_validate(kw)


def test_committed_parameter_files_validate():
    for name in (
        "smoke",
        "default",
        "webvid-cc",
        "no_holdout",
        "unseen_shapes",
        "unseen_shapes_control",
        "shapes_known_to_expert",
    ):
        p = load_params("curriculum", f"parameters/curriculum/{name}.yaml")
        totals = {sum(s.steps for s in st) for st in p.schedules.values()}
        assert len(totals) == 1  # every row gets the same number of steps, as in the paper


def test_held_out_words_are_checked_and_training_videos_showing_them_are_left_out():
    from vrlib.data.datasets import CaptionItem, RetrievalDataset, VideoItem

    with pytest.raises(
        ValueError, match="unknown word.*hexagon.*valid: the shapes circle.*colours red"
    ):
        _params(videos_without_words=["hexagon"])
    with pytest.raises(ValueError, match="listed twice"):
        _params(encoder={"model": "vrlib-tiny-vit32", "expert_without_words": ["star", "star"]})
    with pytest.raises(ValueError, match="expert_without_words needs pretrained: expert"):
        _params(encoder={"model": "ViT-B-32", "pretrained": "openai",
                         "expert_without_words": ["star"]})  # fmt: skip
    with pytest.raises(ValueError, match="videos_without_words needs dataset: synthetic"):
        _params(data={"dataset": "msrvtt", "root": "/data/msrvtt"}, videos_without_words=["star"],
                train_split="9k", test_split="1k-A",
                encoder={"model": "ViT-B-32", "pretrained": "openai"})  # fmt: skip
    p = _params(encoder={"model": "vrlib-tiny-vit32", "expert_without_words": ["star"]},
                videos_without_words=["square", "circle"])  # fmt: skip
    assert p.videos_without_words == ["circle", "square"]
    assert p.held_out_words() == ["circle", "square", "star"]
    colours = _params(videos_without_words=["red", "blue"])  # colours are held out the same way
    assert colours.held_out_words() == ["blue", "red"]

    def event(shape, colour="red", static=None):
        ends = {"colour": colour}
        return {"shape": shape, "start": ends, "end": ends, "static": static}

    videos = [
        VideoItem("a", Path("a.mp4"), meta={"events": [event("star")]}),
        VideoItem("b", Path("b.mp4"), meta={"events": [event("star", static={"shape": "square", "colour": "blue"})]}),
        VideoItem("c", Path("c.mp4"), meta={"events": [event("circle"), event("ring")]}),
    ]  # fmt: skip
    captions = [CaptionItem(v, f"{v} {i}") for v in "abc" for i in range(2)]
    ds = RetrievalDataset("synthetic", "train", Path("."), videos, captions)
    kept = cdata._without_words(ds, ["square"])  # a shape shown only as a static object counts
    assert [v.video_id for v in kept.videos] == ["a", "c"] and len(kept.captions) == 4
    assert kept.caption_to_video.tolist() == [0, 0, 1, 1]
    # a colour counts wherever an object shows it, also a static one's
    assert [v.video_id for v in cdata._without_words(ds, ["blue"]).videos] == ["a", "c"]
    assert [v.video_id for v in cdata._without_words(ds, ["red"]).videos] == []
    no_events = RetrievalDataset("mine", "train", Path("."), [VideoItem("x", Path("x.mp4"))],
                                 [CaptionItem("x", "t")])  # fmt: skip
    with pytest.raises(ValueError, match="mine: video 'x' has no meta.events"):
        cdata._without_words(no_events, ["square"])


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
    both = _params(cls_modes=["video", "frame"])
    key = {s.name: s.run_key(both) for s in cu.settings(both)}
    assert key["cls-video"] == key["frames-4"]  # the default model has one CLS per clip
    assert key["cls-frame"] != key["cls-video"]
    matched = _params(schedules={**p.model_dump()["schedules"], "4": [{"frames": 4, "steps": 12,
                                                                       "clips": 24}]})  # fmt: skip
    assert {s.name: s.run_key(matched) for s in cu.settings(matched)}["frames-4"] != key["frames-4"]


def _runs_from_hits(hits: dict[str, list[np.ndarray]], gflops: dict[str, float]) -> list:
    """RunResults whose test ranks give the per-query R@1 hits asked for (1 = hit, else rank 2)."""
    runs = []
    for setting, per_seed in hits.items():
        for seed, hit in enumerate(per_seed):
            r1 = 100.0 * float(np.mean(hit))
            test = {"t2v": {"R@1": r1, "R@5": 100.0, "R@10": 100.0, "MdR": 1.0, "MnR": 1.5,
                            "StdR": 0.5, "n": len(hit)}}  # fmt: skip
            runs.append(cu.RunResult(
                setting=setting, seed=seed, test=test, t2v_ranks=np.where(hit, 1, 2),
                twin_scores=hit[:42].astype(float), history=[],
                total_flops=int(gflops[setting] * 1e9), train_s=1.0, flops_per_step={},
            ))  # fmt: skip
    return runs


class _Test:
    """The two fields of a ClipSet the claims read: 200 videos x 3 queries, twins (0,1), (2,3)..."""

    caption_to_video = np.repeat(np.arange(200), 3)
    twin_of = np.where(np.arange(200) < 14, np.arange(200) ^ 1, -1)  # 7 pairs: 42 twin captions


def _constructed(curriculum_gflops: float, curriculum_shift: int, seeds: int = 2):
    rng = np.random.default_rng(0)
    base = rng.random(600) < 0.4  # frames-8's hits, the same for every seed

    def moved(hit, k):  # k queries turned from miss to hit (k > 0) or hit to miss
        out = hit.copy()
        idx = np.flatnonzero(~hit if k > 0 else hit)[: abs(k)]
        out[idx] = not hit[idx[0]]
        return out

    hits = {
        "frames-8": [base] * seeds,
        "frames-1=>4=>8": [moved(base, curriculum_shift)] * seeds,
        "frames-4": [base] * seeds,
        "frames-1": [moved(base, -150)] * seeds,
        "expand-zeros": [base],
        "expand-nearest": [base],  # identical outputs
        cu.UNTRAINED: [moved(base, -60)],
    }
    gflops = {"frames-8": 100.0, "frames-1=>4=>8": curriculum_gflops, "frames-4": 60.0,
              "frames-1": 20.0, "expand-zeros": 50.0, "expand-nearest": 50.0, cu.UNTRAINED: 0.0}  # fmt: skip
    runs = _runs_from_hits(hits, gflops)
    summary = cu.summary_rows(runs)
    p = _params(n_boot=400)
    return runs, summary, {c["comparison"]: c for c in cc.claims(runs, summary, p, _Test())}


def test_claims_compute_ratio_margins_and_identical_outputs_on_constructed_runs():
    runs, summary, by = _constructed(curriculum_gflops=56.0, curriculum_shift=-1)
    cur = by["frames-1=>4=>8 - frames-8 (T2V R@1)"]
    assert cur["compute_ratio"] == pytest.approx(0.56)
    assert cur["diff"] == pytest.approx(-100 / 600) and cur["ci_low"] > -1.0
    assert cur["verdict"] == "holds" and cur["margin"] == 1.0 and cur["n_videos"] == 200
    # the same accuracy at more compute than fixed 8 frames is not a saving
    _, _, by = _constructed(curriculum_gflops=105.0, curriculum_shift=-1)
    assert by["frames-1=>4=>8 - frames-8 (T2V R@1)"]["verdict"] == (
        "does not hold (compute ratio 1.05 > 1.0)"
    )
    # upper bound 0 (the old rule, hi >= 0, said "holds"), lower bound at -margin: not shown
    _, _, by = _constructed(curriculum_gflops=56.0, curriculum_shift=-2)
    edge = by["frames-1=>4=>8 - frames-8 (T2V R@1)"]
    assert edge["ci_high"] >= 0 and edge["ci_low"] <= -1.0 and edge["mdd"] < 1.0
    assert edge["verdict"] == "within noise"
    _, _, by = _constructed(curriculum_gflops=56.0, curriculum_shift=-6)
    unsure = by["frames-1=>4=>8 - frames-8 (T2V R@1)"]
    assert unsure["ci_low"] < -1.0 < unsure["ci_high"] and unsure["mdd"] > 1.0
    assert unsure["verdict"] == "underpowered"
    _, _, by = _constructed(curriculum_gflops=56.0, curriculum_shift=-24)
    worse = by["frames-1=>4=>8 - frames-8 (T2V R@1)"]
    assert worse["ci_high"] < -1.0 and worse["verdict"] == "reversed"
    same = by["expand-zeros - expand-nearest (T2V R@1)"]
    assert same["verdict"] == tk.IDENTICAL and same["ci_low"] == same["ci_high"] == 0.0
    assert by["frames-4 - frames-1 (T2V R@1)"]["verdict"] == "holds"
    twin = by["frames-8 - frames-1 (twin acc)"]
    assert twin["n_queries"] == 42 and twin["n_videos"] == 7  # twin pairs are the clusters
    step0 = by[f"frames-8 - {cu.UNTRAINED} (T2V R@1)"]
    assert step0["diff"] == pytest.approx(10.0) and step0["verdict"] == "holds"


def test_the_twin_claim_says_when_the_captions_were_order_free():
    """The order-free-captions control (``train.backwards_share``) is the same comparison, worded
    for what the training captions could teach."""
    runs, summary, _ = _constructed(curriculum_gflops=56.0, curriculum_shift=-1)
    p = _params(n_boot=400, train={"backwards_share": 0.5})
    twin = next(c for c in cc.claims(runs, summary, p, _Test()) if "twin" in c["comparison"])
    assert twin["claim"].endswith(", captions order-free (50% of clips played backwards)")
    plain = _params(n_boot=400)
    twin = next(c for c in cc.claims(runs, summary, plain, _Test()) if "twin" in c["comparison"])
    assert "order-free" not in twin["claim"]


def test_expansions_are_uninformative_when_the_learned_table_is_negligible():
    """Different outputs, but the rows the expansion read were ~0: no method can matter."""
    rng = np.random.default_rng(1)
    base = rng.random(600) < 0.4
    other = base.copy()
    other[np.flatnonzero(~base)[:3]] = True
    hits = {"expand-zeros": [base], "expand-nearest": [other], "expand-bilinear": [base]}
    for table_rms, negligible in ((0.001, True), (0.5, False)):
        runs = _runs_from_hits(hits, dict.fromkeys(hits, 10.0))
        for r in runs:
            r.expansions = [{"from": 4, "to": 8, "table_rms": table_rms}]
            r.positional_rms = 1.0
        summary = cu.summary_rows(runs)
        rows = cc.claims(runs, summary, _params(n_boot=400), _Test())
        by = {c["comparison"]: c for c in rows}
        pair = by["expand-zeros - expand-nearest (T2V R@1)"]
        assert pair["table_ratio"] == pytest.approx(table_rms)
        assert pair["verdict"].startswith("uninformative") == negligible
        text = cc.reading(summary, rows, [])
        assert ("uninformative" in tk.counts_sentence(rows)) == negligible
        assert f"temporal table {table_rms:.3f} of the positions' size" in text


def test_reading_counts_verdicts_and_reads_step_0_from_constructed_runs():
    runs, summary, by = _constructed(curriculum_gflops=56.0, curriculum_shift=-1)
    rows = list(by.values())
    text = cc.reading(summary, rows, cu.twin_rows(runs))
    paper = [c for c in rows if tk.STEP0_CLAIM not in c["claim"]]
    held = sum(c["verdict"] == "holds" for c in paper)
    assert text.startswith(f"{held} of {len(paper)} comparisons behind the paper's claims hold")
    assert "not distinguishable (identical outputs)" in text
    assert "the 1=>4=>8 curriculum reaches fixed-8 accuracy at less compute: holds " in text
    assert "margin 1, MDD" in text and "compute x0.56" in text
    r0 = next(r["R@1"] for r in summary if r["setting"] == cu.UNTRAINED and r["direction"] == "t2v")
    assert f"Step 0 (untrained, T2V R@1 {r0:.1f}): " in text
    r1 = {r["setting"]: r["R@1"] for r in summary if r["direction"] == "t2v"}
    assert (
        f"Curriculum 1=>4=>8: R@1 {r1['frames-1=>4=>8']:.1f} with 56 GFLOPs; fixed 8 frames: "
        f"R@1 {r1['frames-8']:.1f} with 100 GFLOPs." in text
    )
    assert (
        "3 of 4 Table 4 settings beat it (frames-4, frames-8, frames-1=>4=>8; 3 hold, 1 reversed"
        in text
    )
    _, summary, by = _constructed(curriculum_gflops=70.0, curriculum_shift=-24)
    text = cc.reading(summary, list(by.values()), [])
    assert "at less compute: reversed (frames-1=>4=>8 - frames-8 (T2V R@1) -4.0" in text


def test_paper_rows_cover_every_table():
    names = {r["setting"] for r in paper_rows("curriculum")}
    assert set(cu.TABLE4) | {"images-only", "videos-only", "joint", "expand-zeros"} <= names
    t4 = {r["setting"]: r for r in paper_rows("curriculum")}
    assert t4["frames-1=>4=>8"]["R@1"] == 27.4 and t4["frames-8"]["PTT_h"] == 98.0


def _micro_encoder(tmp_path: Path):
    """The micro open_clip encoder (untrained) and a space-time config file over it."""
    import json

    from _frozen_micro import register_micro

    from vrlib.encoders import load_clip

    name = register_micro(tmp_path)
    config = tmp_path / "frozen-micro.json"
    config.write_text(json.dumps({"clip_model": name, "max_frames": 8}))
    return load_clip(name, pretrained=None, device="cpu"), config


def test_step_0_is_the_untrained_model_tested_like_every_run(tmp_path):
    """``untrained_run``: no steps, no compute, the test protocol of every run; the temporal
    attention starts at zero, so the seed that draws its q/k/v does not change a single score."""
    from vrlib.train.clips import ClipSet

    encoder, config = _micro_encoder(tmp_path)
    gen = torch.Generator().manual_seed(0)
    pools = [torch.randn(6, 3, 16, 16, generator=gen).half() for _ in range(4)]
    c2v = np.repeat(np.arange(4), 2)
    words = ["a red circle", "a blue square", "a green star", "moves left", "moves right"]
    captions = [" ".join(words[i % 5 : i % 5 + 2]) for i in range(8)]
    test = ClipSet(pools, captions, c2v, twin_of=np.array([1, 0, -1, -1]))
    prep = cu.Prepared(train=None, test=test, images=None, skipped=[])
    runs = [cu.untrained_run(_params(model=str(config), seeds=[s]), prep, encoder) for s in (0, 5)]
    for run in runs:
        assert run.setting == cu.UNTRAINED and run.total_flops == 0 and run.history == []
        assert run.t2v_ranks.shape == (8,) and run.twin_scores.shape == (4,)  # videos 0 and 1
        assert run.test["t2v"]["n"] == 8
    assert np.array_equal(runs[0].t2v_ranks, runs[1].t2v_ranks)
    assert np.array_equal(runs[0].twin_scores, runs[1].twin_scores)
    # step 0 is order-blind: each clip ties with itself played backwards (the twin files did not)
    assert np.all(runs[0].twin_scores == 0.5)
    # a model whose temporal attention and embedding read order does not tie
    from vrlib.models.frozen import FrozenInTime, load_frozen_config
    from vrlib.train.clips import clip_similarity, encode_captions, encode_clips

    model = FrozenInTime.from_clip(encoder.model, load_frozen_config(str(config)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "attn_time" in name or "temporal_embedding" in name:
                param.normal_(0, 0.5, generator=gen)
    sim = clip_similarity(model, encoder.tokenizer, test, 4, 8)
    embedded = (
        encode_captions(model, encoder.tokenizer, test.captions),
        encode_clips(model, test, 4, 8),
    )
    assert torch.equal(embedded[0] @ embedded[1].T, sim)  # the similarities are the embeddings'
    scores = cu._twin_scores(embedded, model, test, 4, 8, "zeros")
    assert scores.shape == (4,) and not np.all(scores == 0.5)
    # the pass over twinned videos only scores as the pass over every video would
    from vrlib.models.reversal import own_video_order_scores

    backward = clip_similarity(model, encoder.tokenizer, test, 4, 8, reverse=True)
    rows = np.flatnonzero(test.twin_of[c2v] >= 0)
    full = own_video_order_scores(sim[rows], backward[rows], c2v[rows])
    assert np.array_equal(scores, full)
    summary = cu.summary_rows(runs[:1])
    assert [r["setting"] for r in summary] == [cu.UNTRAINED] * 2 and summary[0]["GFLOPs"] == 0


def test_joint_against_videos_only_is_tested_again_on_held_out_concept_videos():
    """The subset claim reads only the queries of held-out-concept videos, clustered by video."""
    rng = np.random.default_rng(2)
    videos_only = rng.random(600) < 0.3
    joint = videos_only.copy()
    held_out = np.arange(200) < 50  # videos 0-49: queries 0-149
    joint[:150] = True  # joint wins on every held-out query it missed, and only there
    runs = _runs_from_hits({"videos-only": [videos_only] * 2, "joint": [joint] * 2},
                           {"videos-only": 10.0, "joint": 8.0})  # fmt: skip
    summary = cu.summary_rows(runs)
    p = _params(n_boot=400)
    rows = cc.claims(runs, summary, p, _Test(), held_out=held_out)
    by = {c["comparison"]: c for c in rows}
    sub = by["joint - videos-only (T2V R@1, held-out concepts)"]
    assert sub["n_queries"] == 150 and sub["n_videos"] == 50
    assert sub["diff"] == pytest.approx(100.0 * (1 - videos_only[:150].mean()))
    assert sub["verdict"] == "holds"
    whole = by["joint - videos-only (T2V R@1)"]
    assert whole["n_queries"] == 600 and whole["diff"] < sub["diff"]
    # no held-out concepts in the test split (or a real dataset): no subset claim
    rows = cc.claims(runs, summary, p, _Test(), held_out=np.zeros(200, bool))
    assert not any("held-out" in c["comparison"] for c in rows)
    # a shape the model starts without: the same comparison on the videos that show it, worded
    # for whether the training videos lacked it too (the mechanism) or showed it (the control)
    for expert_without, videos_without, lacking in (
        (["square"], [], "the expert never saw"),
        (["square"], ["square"], "the expert and the training videos never"),
        ([], ["square"], "the training videos never showed (the expert saw it)"),
    ):
        p = _params(n_boot=400, encoder={"model": "vrlib-tiny-vit32",
                    "expert_without_words": expert_without}, videos_without_words=videos_without)  # fmt: skip
        rows = cc.claims(runs, summary, p, _Test(), unseen_word=held_out)
        sub = next(c for c in rows if c["comparison"].endswith("videos of square)"))
        assert lacking in sub["claim"] and sub["n_videos"] == 50 and sub["verdict"] == "holds"


def test_table2_on_subsets_of_test_videos_reads_each_subset_and_the_rest():
    """R@1 per setting on the videos of a held-out concept and on the others, over seeds."""
    hits = np.zeros(600, bool)
    hits[:150:3] = True  # one of 3 queries of each of videos 0-49: 33.3% there
    hits[150::2] = True  # half of the other queries: 50%
    runs = _runs_from_hits({"joint": [hits, hits], "videos-only": [hits, ~hits]},
                           {"joint": 1.0, "videos-only": 1.0})  # fmt: skip
    mask = np.arange(200) < 50
    rows = cu.subset_rows(runs, _Test(), {"of square": mask}, ["joint", "videos-only"])
    by = {(r["videos"], r["setting"]): r for r in rows}
    assert set(by) == {
        (v, s) for v in ("of square", "the others") for s in ("joint", "videos-only")
    }
    assert by["of square", "joint"]["R@1"] == pytest.approx(100 / 3)
    assert by["the others", "joint"]["R@1"] == pytest.approx(50.0)
    assert (
        by["of square", "joint"]["n_videos"] == 50 and by["the others", "joint"]["n_videos"] == 150
    )
    assert by["of square", "joint"]["n_seeds"] == 2 and by["of square", "joint"]["R@1_std"] == 0.0
    # the second seed's hits are the complement: the mean is over seeds, per subset
    assert by["of square", "videos-only"]["R@1"] == pytest.approx(50.0)
    # which subsets a study reads: only those some test video is in
    prep = cu.Prepared(train=None, test=None, images=None, skipped=[],
                       held_out=np.zeros(200, bool), unseen_word=mask)  # fmt: skip
    p = _params(encoder={"model": "vrlib-tiny-vit32", "expert_without_words": ["square"]})
    assert list(cu.video_subsets(prep, p)) == ["of square"]


def test_word_swaps_score_each_swapped_caption_against_its_own_on_its_video(tmp_path):
    """``_swap_scores``: the own caption's score with its video (from the run's similarities)
    against the swapped caption's with the same video, weighted; one entry per swap."""
    from vrlib.studies.curriculum.swaps import word_swaps
    from vrlib.train.clips import ClipSet, clip_similarity

    encoder, config = _micro_encoder(tmp_path)
    gen = torch.Generator().manual_seed(1)
    pools = [torch.randn(6, 3, 16, 16, generator=gen).half() for _ in range(3)]
    captions = ["a red circle", "a circle moves", "a blue square", "a star", "a green square"]
    c2v = np.array([0, 0, 1, 2, 2])
    shown = [{"circle"}, {"square"}, {"star", "square"}]
    swaps = word_swaps(captions, c2v, shown, ["circle", "square", "star"])
    # caption 2 into circle and star; 3 and 4 into circle only (their video shows star and square)
    assert swaps.rows.tolist() == [0, 0, 1, 1, 2, 2, 3, 4]
    prep = cu.Prepared(train=None, test=ClipSet(pools, captions, c2v, twin_of=np.full(3, -1)),
                       images=None, skipped=[],
                       swaps=swaps)  # fmt: skip
    run = cu.untrained_run(_params(model=str(config)), prep, encoder)
    assert run.swap_scores.shape == (8,)
    from vrlib.models.frozen import FrozenInTime, load_frozen_config

    torch.manual_seed(0)
    model = FrozenInTime.from_clip(encoder.model, load_frozen_config(str(config)))
    frames, views = 8, _params().train.views
    sim = clip_similarity(model, encoder.tokenizer, prep.test, frames, views)
    swapped = clip_similarity(model, encoder.tokenizer, prep.test, frames, views, texts=swaps.texts)
    video = c2v[swaps.rows]
    own, other = sim[swaps.rows, video].numpy(), swapped[np.arange(8), video].numpy()
    expected = swaps.weights * np.where(own > other, 1.0, np.where(own < other, 0.0, 0.5))
    assert run.swap_scores == pytest.approx(expected)
    # without held-out shapes there is nothing to swap
    assert cu.untrained_run(_params(model=str(config)), cu.Prepared(
        train=None, test=prep.test, images=None, skipped=[]), encoder).swap_scores.shape == (0,)  # fmt: skip


def test_the_shape_swap_claim_reads_swaps_clustered_by_video_and_enters_the_reading():
    from vrlib.studies.curriculum.swaps import word_swaps

    captions = [
        f"a {'cross' if v < 100 else 'diamond'} moving" for v in range(200) for _ in range(3)
    ]
    shown = [{"cross"} if v < 100 else {"diamond"} for v in range(200)]
    swaps = word_swaps(captions, _Test.caption_to_video, shown, ["cross", "diamond"])
    assert len(swaps) == 600
    rng = np.random.default_rng(3)
    blind = (rng.random(600) < 0.5).astype(float)
    runs = _runs_from_hits({"videos-only": [rng.random(600) < 0.3] * 2,
                            "joint": [rng.random(600) < 0.3] * 2}, {"videos-only": 1.0, "joint": 1.0})  # fmt: skip
    for r in runs:
        r.swap_scores = swaps.weights * (blind if r.setting == "videos-only" else np.ones(600))
    summary = cu.summary_rows(runs)
    p = _params(n_boot=400, encoder={"model": "vrlib-tiny-vit32", "expert_without_words": ["cross"]},
                videos_without_words=["diamond"])  # fmt: skip
    rows = cc.claims(runs, summary, p, _Test(), swaps=swaps)
    row = next(c for c in rows if "shape-swap acc" in c["comparison"])
    assert row["comparison"] == "joint - videos-only (shape-swap acc, cross, diamond)"
    assert row["n_queries"] == 600 and row["n_videos"] == 200
    assert row["diff"] == pytest.approx(100.0 * (1 - blind).mean(), abs=0.5)  # joint always right
    assert row["verdict"] == "holds"
    assert not any("shape-swap" in c["comparison"] for c in cc.claims(runs, summary, p, _Test()))
    # the sources against the untrained model: only where an untrained run exists
    assert not any(cu.UNTRAINED in c["comparison"] for c in rows)
    untrained = cu.RunResult(setting=cu.UNTRAINED, seed=0, test=runs[0].test,
                             t2v_ranks=runs[0].t2v_ranks, twin_scores=runs[0].twin_scores,
                             history=[], total_flops=0, train_s=0.0, flops_per_step={},
                             swap_scores=swaps.weights * blind)  # fmt: skip
    with0 = [*runs, untrained]
    by = {
        c["comparison"]: c
        for c in cc.claims(with0, cu.summary_rows(with0), p, _Test(), swaps=swaps)
    }
    blind_row = by["videos-only - untrained (shape-swap acc, cross, diamond)"]
    assert blind_row["diff"] == pytest.approx(0.0) and blind_row["verdict"] != "holds"
    assert not any(c.startswith("images-only") for c in by)  # no images-only run here
    text = cc.reading(summary, list(by.values()), [], [])
    assert "No source teaches the held-out shapes' words" in text and "videos-only +0.0" in text
    for r in with0:  # videos now always right, the untrained model blind
        r.swap_scores = swaps.weights * (blind if r.setting == cu.UNTRAINED else np.ones(600))
    taught = cc.claims(with0, cu.summary_rows(with0), p, _Test(), swaps=swaps)
    assert "Shapes taught by videos-only" in cc.reading(summary, taught, [], [])
    table = cu.swap_rows(runs, p.held_out_words())
    assert [r["setting"] for r in table] == ["videos-only", "joint"] and table[0]["n"] == 600
    assert table[0]["words"] == "cross, diamond"
    text = cc.reading(summary, rows, [], table)
    assert f"joint {table[1]['swap_acc']:.1f}%" in text
    assert "Shape swaps (600 swapped captions of cross, diamond)" in text


def test_held_out_colours_get_colour_words_in_claims_and_reading():
    """The same instrument over colours (the positive control of Table 2): the claims, the
    metric and the reading name colours, computed from the held-out words."""
    from vrlib.studies.curriculum.swaps import word_kind, word_swaps

    assert (word_kind(["cross", "star"]), word_kind(["blue", "red"])) == ("shape", "colour")
    assert word_kind(["blue", "star"]) == "word"
    captions = [
        f"a {'red' if v < 100 else 'blue'} star moving" for v in range(200) for _ in range(3)
    ]
    shown = [{"red", "star"} if v < 100 else {"blue", "star"} for v in range(200)]
    swaps = word_swaps(captions, _Test.caption_to_video, shown, ["blue", "red"])
    assert swaps.texts[0] == "a blue star moving" and len(swaps) == 600
    rng = np.random.default_rng(4)
    runs = _runs_from_hits({"videos-only": [rng.random(600) < 0.3] * 2, "joint": [rng.random(600) < 0.3] * 2},
                           {"videos-only": 1.0, "joint": 1.0})  # fmt: skip
    blind = (rng.random(600) < 0.5).astype(float)
    for r in runs:
        r.swap_scores = swaps.weights * (blind if r.setting == "videos-only" else np.ones(600))
    untrained = dataclasses.replace(
        runs[0], setting=cu.UNTRAINED, swap_scores=swaps.weights * blind
    )
    runs.append(untrained)
    p = _params(n_boot=400, encoder={"model": "vrlib-tiny-vit32", "expert_without_words": ["blue", "red"]},
                videos_without_words=["blue", "red"])  # fmt: skip
    summary = cu.summary_rows(runs)
    rows = cc.claims(runs, summary, p, _Test(), swaps=swaps)
    claim = next(
        c for c in rows if c["comparison"] == "joint - videos-only (colour-swap acc, blue, red)"
    )
    assert claim["claim"].startswith("joint training ties a colour's word to the colour better")
    assert "a colour the expert and the training videos never showed" in claim["claim"]
    assert claim["verdict"] == "holds"
    taught = next(c for c in rows if c["comparison"].startswith("videos-only - untrained"))
    assert "teaches the held-out colours' words" in taught["claim"]
    text = cc.reading(summary, rows, [], cu.swap_rows(runs, p.held_out_words()))
    assert "No source teaches the held-out colours' words" in text
    assert "compares something other than the colours." in text
    assert "Colour swaps (600 swapped captions of blue, red)" in text


def test_an_undecided_claim_says_when_the_papers_gain_lies_above_its_interval():
    row = {"claim": "joint training beats videos only", "comparison": "joint - videos-only (T2V R@1)",
           "diff": -1.3, "ci_low": -2.7, "ci_high": 0.2, "margin": 0.0, "mdd": 2.1,
           "compute_ratio": 0.8, "verdict": "underpowered", "paper_diff": 1.3}  # fmt: skip
    assert "the paper's +1.3 lies above the interval" in cc._claim_words(row)
    for changed in ({"ci_high": 1.5}, {"paper_diff": float("nan")}, {"verdict": "holds"}):
        assert "lies above" not in cc._claim_words(row | changed)
