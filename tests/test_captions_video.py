"""Captioners and video frames: nuisance augmentation, and attribute precision on decoded frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vrlib.captions.quality import (
    attribute_precision,
    evaluate_captioner_on_frames,
    video_frame_samples,
)
from vrlib.captions.train import CaptionerConfig, with_video_nuisances
from vrlib.data import synthetic as syn


def test_nuisance_augmentation_is_off_at_zero_and_touches_about_the_share() -> None:
    frames = np.stack([syn.render("white", [], 32) for _ in range(200)])
    assert np.array_equal(with_video_nuisances(frames, 0.0, 0.5, 0), frames)
    assert np.array_equal(with_video_nuisances(frames, 0.6, 0.0, 0), frames)
    out = with_video_nuisances(frames, 0.6, 0.5, 0)
    changed = np.mean([not np.array_equal(a, b) for a, b in zip(out, frames, strict=True)])
    assert 0.35 < changed < 0.65
    assert np.array_equal(out, with_video_nuisances(frames, 0.6, 0.5, 0))  # deterministic
    assert CaptionerConfig("blip-tiny", 1).augment_shift == 0.0


class FixedCaptioner:
    """Says the same thing of every frame: its precision is the scenes' truth about that claim."""

    def __init__(self, text: str) -> None:
        self.text, self.seen = text, 0

    def caption(self, frames: np.ndarray) -> list[str]:
        self.seen += len(frames)
        return [self.text] * len(frames)


def test_frame_samples_avoid_bad_frames(smoke_world: Path) -> None:
    picks, scenes = video_frame_samples(smoke_world, "test", per_video=3)
    rows = {
        str(smoke_world / v["path"]): v["meta"]
        for v in map(
            json.loads, (smoke_world / "annotations/videos.jsonl").read_text().splitlines()
        )
    }
    assert len(scenes) == sum(len(idx) for _, idx in picks) > 0
    for path, idx in picks:
        assert len(idx) == 3 and not set(idx) & set(rows[path]["bad_frames"])
        assert all(0 <= i < rows[path]["num_frames"] for i in idx)


def test_attribute_precision_on_frames_scores_against_each_frames_scene(smoke_world: Path) -> None:
    text = "a small red circle on the left on a white background"
    captioner = FixedCaptioner(text)
    out = evaluate_captioner_on_frames(captioner, smoke_world, "test", per_video=2)
    _, scenes = video_frame_samples(smoke_world, "test", per_video=2)
    assert captioner.seen == len(scenes) == out["num_captions"]
    expected = attribute_precision([text] * len(scenes), scenes)
    assert out["precision"] == expected["precision"] and out["recall"] == expected["recall"]
