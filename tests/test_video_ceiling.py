"""The video ceiling: the ideal model's likelihood follows the caption generator exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vrlib.data import synthetic as syn
from vrlib.data import video_ceiling as vc
from vrlib.data.caption_ceiling import enumerate_outputs
from vrlib.data.synthetic import captions as gen


def events_with(shots: int, seed: int = 0) -> list[dict]:
    cfg = syn.resolve_config("smoke", max_shots=shots, min_duration=max(2.0, 4.0 * shots - 3.0))
    for k in range(200):
        _, events = syn.sample_video(np.random.default_rng([seed, k]), cfg)
        if len(events) == shots and (shots > 1 or events[0]["static"]):
            return events
    raise AssertionError(f"no {shots}-shot video drawn")


def total(kind_fn, generate, events) -> float:
    tables = [vc.shot_tables(ev) for ev in events]
    support = enumerate_outputs(lambda d: generate(events, gen._Draw(d)))
    return sum(kind_fn(text, tables) for text in support)


def test_one_shot_full_captions_sum_to_one() -> None:
    events = events_with(1)
    assert total(vc._full, gen._full_caption, events) == pytest.approx(1.0)


def test_partial_and_appearance_captions_sum_to_one() -> None:
    # Two shots: the partial caption's choice of shots is exercised; three enumerate the same code
    # over 30 s of draws (CI's time budget), so they are not run here.
    events = events_with(2)
    partial = total(vc._partial, lambda e, d: gen._partial_caption(e, d)[0], events)
    assert partial == pytest.approx(1.0)
    look = total(vc._look, lambda e, d: gen._appearance_caption(e, d)[0], events)
    assert look == pytest.approx(1.0)


def test_every_generated_caption_is_possible_for_its_video_and_twins_differ() -> None:
    events = events_with(2)
    reverse = syn.reverse_events(events, events[-1]["frames"][1])
    captions = gen.video_captions(events, 20, np.random.default_rng(0))
    twin_captions = gen.video_captions(reverse, 20, np.random.default_rng(0))
    texts = [c for c, _ in captions + twin_captions]
    owners = [0] * len(captions) + [1] * len(twin_captions)
    out = vc.ideal_video_recall(texts, owners, [events, reverse])
    assert out["impossible"] == 0 and out["t2v_R@1"] > 50.0
    canonical = captions[0][0]
    assert vc.caption_likelihood(canonical, events) > vc.caption_likelihood(canonical, reverse)
    audio = next(c for c, tags in captions if "audio" in tags)
    assert vc.caption_likelihood(audio, events) == vc.caption_likelihood(audio, reverse) > 0
    assert out["num_videos"] == 2 and out["num_captions"] == len(texts)


def test_video_ceiling_of_the_smoke_world(smoke_world: Path) -> None:
    out = vc.video_ceiling(smoke_world, "test")
    videos = [
        json.loads(x) for x in (smoke_world / "annotations/videos.jsonl").read_text().splitlines()
    ]
    assert out["num_videos"] == sum(v["split"] == "test" for v in videos)
    assert out["impossible"] == 0
    assert 100.0 / out["num_videos"] < out["t2v_R@1"] <= out["t2v_R@5"] <= 100.0
    with pytest.raises(ValueError, match="no videos in split 'nope'"):
        vc.video_ceiling(smoke_world, "nope")


def test_world_measurements_of_the_smoke_world(smoke_world: Path, smoke_expert: Path) -> None:
    """The report entry point runs end to end and its numbers are consistent with their parts."""
    from vrlib.studies.world_measures import world_measurements

    out = world_measurements("smoke", 0)
    unseen = out["unseen_words"]
    assert (unseen["token_fraction"] == 0.0) == (unseen["words"] == []) and unseen["tokens"] > 0
    assert 0.0 <= out["direction_probe"]["pairwise"] <= 100.0
    assert out["direction_probe"]["n_test"] > 0
    zs = out["zero_shot"]
    assert zs["drop_R@1"] == pytest.approx(zs["no_shift"]["R@1"] - zs["shift"]["R@1"])
    assert out["video_ceiling"] == vc.video_ceiling(smoke_world, "test")
    assert out["world"]["test_videos"] == out["video_ceiling"]["num_videos"]


def _measured(probe: float, no_shift: float, shift: float, unseen: float = 0.0) -> dict:
    return {
        "world": {"preset": "default", "seed": 0, "video_shift": 0.4, "test_videos": 300},
        "unseen_words": {"token_fraction": unseen, "words": [], "tokens": 100},
        "direction_probe": {"pairwise": probe, "n_test": 200, "weight_decay": 1e-3},
        "zero_shot": {"no_shift": {"R@1": no_shift}, "shift": {"R@1": shift},
                      "drop_R@1": no_shift - shift, "drop_share": (no_shift - shift) / no_shift},
        "video_ceiling": {"t2v_R@1": 40.0},
    }  # fmt: skip


def test_world_reading_counts_the_targets_from_its_table() -> None:
    from vrlib.studies.world_measures import world_reading, world_table

    good = _measured(probe=92.0, no_shift=15.0, shift=10.0)
    rows = world_table(good)
    assert [r["met"] for r in rows if r["met"] is not None] == [True, True, True]
    assert rows[-1]["value"] == pytest.approx(30.0)  # headroom over the shifted zero-shot
    text = world_reading(good)
    assert "meets 3 of its 3 targets" in text and "Not met" not in text and "33%" in text
    bad = world_reading(_measured(probe=84.0, no_shift=15.0, shift=14.5, unseen=0.01))
    assert "meets 0 of its 3 targets" in bad
    assert "Not met: unseen test-caption tokens (%); frozen direction probe" in bad
    assert "share of R@1 the shift costs" in bad
