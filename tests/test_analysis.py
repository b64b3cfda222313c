"""Failure-analysis breakdowns on small hand-made inputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vrlib import analysis


def _dataset():
    videos = [
        SimpleNamespace(video_id="a", meta={"duration": 2.0, "num_shots": 1}),
        SimpleNamespace(video_id="b", meta={"duration": 10.0, "num_shots": 3}),
    ]
    captions = [
        SimpleNamespace(text="red circle", tags=("full",)),
        SimpleNamespace(text="a beep", tags=("audio",)),
        SimpleNamespace(text="blue square then", tags=("temporal", "full")),
        SimpleNamespace(text="music", tags=("audio",)),
    ]
    return SimpleNamespace(
        videos=videos, captions=captions, caption_to_video=np.array([0, 0, 1, 1])
    )


def test_caption_frame_and_worst_queries():
    df = analysis.caption_frame(_dataset(), np.array([1, 7, 2, 9]))
    assert list(df.video_id) == ["a", "a", "b", "b"]
    assert list(df.duration) == [2.0, 2.0, 10.0, 10.0]
    worst = analysis.worst_queries(df, 2)
    assert list(worst.caption) == ["music", "a beep"]


def test_tag_share_counts_audio_among_worst():
    df = analysis.caption_frame(_dataset(), np.array([1, 7, 2, 9]))
    share = analysis.tag_share(df, "audio", worst_k=2)
    assert share["share_worst_%"] == 100.0 and share["share_all_%"] == 50.0


def test_recall_by_tag_and_shots():
    df = analysis.caption_frame(_dataset(), np.array([1, 7, 2, 9]))
    by_tag = analysis.recall_by(df, "tag").set_index("tag")
    assert by_tag.loc["full", "n"] == 2 and by_tag.loc["full", "r_at_1"] == 50.0
    assert by_tag.loc["audio", "r_at_5"] == 0.0
    by_shots = analysis.recall_by(df, "num_shots").set_index("num_shots")
    assert by_shots.loc[1, "median_rank"] == 4.0


def test_rank_vs_length_and_correlation():
    df = analysis.caption_frame(_dataset(), np.array([1, 2, 8, 9]))
    table = analysis.rank_vs_length(df, bins=[0, 5, 20])
    assert list(table["median_rank"]) == [1.5, 8.5]
    assert analysis.length_rank_correlation(df) > 0.8


def test_caption_frame_rejects_wrong_number_of_ranks():
    with pytest.raises(ValueError, match="3 entries"):
        analysis.caption_frame(_dataset(), np.array([1, 2, 3]))
