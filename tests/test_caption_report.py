"""Study 03's shot analysis (vrlib.studies.captions.report): how many scenes of a multi-shot video
each selection rule draws its captions from, and comparisons on single- and multi-shot videos."""

from __future__ import annotations

import numpy as np


def _shot_data():
    """Two training videos: v0 with two shots (frames 0-9, 10-19), v1 with one; M = 4 frames at
    2, 7, 12, 17 captioned by one captioner C whose CLIPScores favour v0's first shot."""
    from types import SimpleNamespace

    from vrlib.captions.labels import VideoCaptions
    from vrlib.studies.captions.data import TrainData

    shots2 = {"events": [{"frames": [0, 10]}, {"frames": [10, 20]}]}
    videos = [SimpleNamespace(video_id="v0", meta=shots2),
              SimpleNamespace(video_id="v1", meta={"events": [{"frames": [0, 20]}]})]  # fmt: skip
    table = VideoCaptions(
        "clipcap-tiny", ["v0", "v1"], np.array([[2, 7, 12, 17]] * 2),
        [[f"c{v}{i}" for i in range(4)] for v in range(2)],
        np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32),
    )  # fmt: skip
    return TrainData(SimpleNamespace(videos=videos), {"C": table}, None, [], [], {}, [[], []])


def test_shot_coverage_counts_the_scenes_a_rule_draws_from():
    from vrlib.studies.captions import report as crep
    from vrlib.studies.captions.data import video_shots
    from vrlib.studies.captions.study import RunSpec

    data = _shot_data()
    specs = [RunSpec("rand_m", 1, ("C",)), RunSpec("rand_top_k", 2, ("C",)),
             RunSpec("ground_truth_captions", 2, ())]  # fmt: skip
    rows = {r["run"]: r for r in crep.shot_coverage(data, specs)}
    assert set(rows) == {"C/rand_m", "C/rand_top_k2"}  # upper bounds have no frames
    assert rows["C/rand_m"]["shot_coverage"] == 100.0 and rows["C/rand_m"]["one_shot_only"] == 0.0
    assert rows["C/rand_top_k2"]["shot_coverage"] == 50.0  # frames 2 and 7: the first shot
    assert rows["C/rand_top_k2"]["one_shot_only"] == 100.0
    assert rows["C/rand_m"]["multi_shot_videos"] == 1
    assert video_shots(data.dataset.videos).tolist() == [2, 1]


def test_by_shots_compares_on_each_subset_of_test_videos():
    from types import SimpleNamespace

    from vrlib.studies.captions import report as crep
    from vrlib.studies.captions.study import RunSpec

    c2v = np.repeat(np.arange(40), 2)  # 40 test videos x 2 queries; videos 0-19 single-shot
    shots = np.where(np.arange(40) < 20, 1, 2)
    top, rand = RunSpec("rand_top_k", 2, ("C",)), RunSpec("rand_m", 1, ("C",))
    top_ranks = np.where(c2v < 20, 1, 5)  # Top-K hits on single-shot videos only
    runs = [SimpleNamespace(spec=top, t2v_ranks=top_ranks),
            SimpleNamespace(spec=rand, t2v_ranks=np.full(80, 5))]  # fmt: skip
    claims = [(top.key, rand.key, "t2v", "C: Top-K > Rand(M)")]
    rows = {r["videos"]: r for r in crep.by_shots(runs, claims, shots, c2v, 200, 0)}
    assert rows["single-shot"]["diff R@1"] == 100.0 and rows["single-shot"]["n_queries"] == 40
    assert rows["multi-shot"]["diff R@1"] == 0.0
    text = " ".join(crep.shots_words([], list(rows.values())))
    assert "C/rand_top_k2 vs C/rand_m on single-shot videos +100.0" in text
