"""Frame sampling: documented index formulas, the short-video repeat rule, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrlib.data.sampling import (
    SAMPLERS,
    SamplingConfig,
    frame_indices,
    stride_offset_indices,
    stride_offsets,
)

ALL = [
    "all",
    "clip2video",
    "clip4clip",
    "double_rate",
    "fps",
    "segment_random",
    "single",
    "stride",
    "uniform",
]
PAPER = ["clip4clip", "clip2video"]
SEGMENT = ["uniform", "segment_random", "stride", "double_rate"]
DETERMINISTIC = [s for s in ALL if s != "segment_random"]

num_frames_st = st.integers(1, 5000)
fps_st = st.floats(1.0, 120.0)
n_st = st.integers(1, 64)
seed_st = st.integers(0, 2**32 - 1)


def test_registry_has_every_documented_strategy():
    assert SAMPLERS.names() == ALL


# --------------------------------------------------------------------------- exact values


def test_uniform_is_centre_of_equal_segments():
    assert frame_indices(100, 25, "uniform", n=4).tolist() == [12, 37, 62, 87]
    assert frame_indices(250, 25, "uniform", n=12).tolist() == [
        10, 31, 52, 72, 93, 114, 135, 156, 177, 197, 218, 239,
    ]  # fmt: skip
    assert frame_indices(7, 25, "uniform", n=1).tolist() == [3]


def test_short_video_repeats_frames_in_order():
    assert frame_indices(3, 30, "uniform", n=12).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert frame_indices(1, 30, "uniform", n=5).tolist() == [0] * 5
    r = frame_indices(3, 30, "segment_random", n=12, seed=0)
    assert len(r) == 12 and set(r.tolist()) <= {0, 1, 2}


def test_single_is_the_frame_at_t_seconds_as_in_portillo_quintero():
    # W_30: the 30th frame (index 29) of a 30 fps video is its frame at one second.
    assert frame_indices(300, 30, "single").tolist() == [29]
    assert frame_indices(300, 25, "single", at_seconds=2.0).tolist() == [49]
    assert frame_indices(300, 30, "single", at_seconds=0.0).tolist() == [0]
    assert frame_indices(10, 30, "single").tolist() == [9]  # shorter than 1 s: last frame


def test_stride_offsets_within_segments():
    assert frame_indices(100, 25, "stride", n=4, offset=0.0).tolist() == [0, 25, 50, 75]
    assert frame_indices(100, 25, "stride", n=4, offset=0.25).tolist() == [6, 31, 56, 81]
    for n_frames in (5, 100, 251):
        mid = frame_indices(n_frames, 25, "stride", n=8, offset=0.5)
        assert np.array_equal(mid, frame_indices(n_frames, 25, "uniform", n=8))


def test_double_rate_is_uniform_with_twice_the_frames():
    assert np.array_equal(
        frame_indices(120, 30, "double_rate", n=6), frame_indices(120, 30, "uniform", n=12)
    )
    assert len(frame_indices(120, 30, "double_rate", n=6)) == 12


def test_fps_samples_at_target_rate_and_caps():
    assert frame_indices(250, 25, "fps", target_fps=1.0).tolist() == list(range(0, 250, 25))
    assert frame_indices(251, 25, "fps", target_fps=1.0).tolist()[-1] == 250
    assert frame_indices(100, 10, "fps", target_fps=2.0).tolist() == list(range(0, 100, 5))
    # A target above the video's rate gives each frame once.
    assert frame_indices(12, 10, "fps", target_fps=50.0).tolist() == list(range(12))
    # Capped: uniform thinning of the 10 candidates keeps the centres of 5 groups of 2.
    capped = frame_indices(250, 25, "fps", target_fps=1.0, max_frames=5)
    assert capped.tolist() == [25, 75, 125, 175, 225]
    assert frame_indices(3, 25, "fps").tolist() == [0]  # shorter than one period


def test_all_and_its_cap():
    assert frame_indices(7, 30, "all").tolist() == list(range(7))
    assert len(frame_indices(1000, 30, "all", max_frames=16)) == 16


def test_segment_random_draws_inside_each_segment():
    idx = frame_indices(120, 30, "segment_random", n=12, seed=3)
    assert np.all(idx // 10 == np.arange(12))  # segment k is [10k, 10k + 10)
    draws = np.stack([frame_indices(120, 30, "segment_random", n=12, seed=s) for s in range(50)])
    assert len(np.unique(draws[:, 0])) > 5  # it is random, not a fixed offset


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("num_frames", [0, -5])
def test_no_frames_is_an_error(num_frames):
    with pytest.raises(ValueError, match=f"num_frames must be >= 1, got {num_frames}"):
        frame_indices(num_frames, 30)


def test_unknown_strategy_names_value_and_choices():
    with pytest.raises(ValueError, match="'middle'.*all, clip2video, clip4clip, double_rate"):
        frame_indices(100, 30, "middle")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be >= 1"),
        ({"offset": 1.0}, "offset must be in"),
        ({"offset": -0.1}, "offset must be in"),
        ({"target_fps": 0.0}, "target_fps"),
        ({"at_seconds": -1.0}, "at_seconds"),
        ({"max_frames": 0}, "max_frames"),
        ({"num_frames": 2.5}, "num_frames must be an int"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    args = {"num_frames": 100, "fps": 30.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        frame_indices(args.pop("num_frames"), args.pop("fps"), "uniform", **args)


@pytest.mark.parametrize("strategy", ["single", "fps", *PAPER])
@pytest.mark.parametrize("fps", [0.0, float("nan"), None])
def test_time_based_strategies_need_a_frame_rate(strategy, fps):
    with pytest.raises(ValueError, match=f"strategy '{strategy}' needs the video's frame rate"):
        frame_indices(100, fps, strategy)
    assert len(frame_indices(100, fps, "uniform")) == 12  # the others ignore fps


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(num_frames_st, fps_st, n_st, st.sampled_from(ALL), seed_st, st.floats(0.0, 0.999))
def test_indices_are_int64_in_range_and_sorted(num_frames, fps, n, strategy, seed, offset):
    idx = frame_indices(num_frames, fps, strategy, n=n, seed=seed, offset=offset)
    assert idx.dtype == np.int64 and idx.ndim == 1 and len(idx) >= 1
    assert idx.min() >= 0 and idx.max() < num_frames
    assert np.all(np.diff(idx) >= 0)


@settings(max_examples=60, deadline=None)
@given(num_frames_st, fps_st, n_st, st.sampled_from(SEGMENT), seed_st)
def test_segment_strategies_return_n_indices(num_frames, fps, n, strategy, seed):
    expected = 2 * n if strategy == "double_rate" else n
    assert len(frame_indices(num_frames, fps, strategy, n=n, seed=seed)) == expected


@settings(max_examples=40, deadline=None)
@given(num_frames_st, n_st, st.sampled_from(["uniform", "stride"]))
def test_long_videos_get_distinct_frames(num_frames, n, strategy):
    idx = frame_indices(num_frames, 30, strategy, n=n)
    if num_frames >= n:
        assert len(np.unique(idx)) == n
    else:  # short: every frame used, each about n / num_frames times
        assert set(idx.tolist()) == set(range(num_frames))


@settings(max_examples=40, deadline=None)
@given(num_frames_st, fps_st, n_st, st.sampled_from(DETERMINISTIC), seed_st, seed_st)
def test_deterministic_strategies_ignore_the_seed(num_frames, fps, n, strategy, s1, s2):
    a = frame_indices(num_frames, fps, strategy, n=n, seed=s1)
    assert np.array_equal(a, frame_indices(num_frames, fps, strategy, n=n, seed=s2))


@settings(max_examples=40, deadline=None)
@given(st.integers(300, 5000), n_st, seed_st)  # segments of >= 4 frames
def test_segment_random_is_determined_by_its_seed(num_frames, n, seed):
    a = frame_indices(num_frames, 30, "segment_random", n=n, seed=seed)
    assert np.array_equal(a, frame_indices(num_frames, 30, "segment_random", n=n, seed=seed))
    others = [
        frame_indices(num_frames, 30, "segment_random", n=n, seed=seed + k) for k in (1, 2, 3)
    ]
    assert any(not np.array_equal(a, b) for b in others)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20000), fps_st, st.floats(0.05, 200.0), st.one_of(st.none(), n_st))
def test_fps_strategy_spacing_and_cap(num_frames, fps, target_fps, max_frames):
    idx = frame_indices(num_frames, fps, "fps", target_fps=target_fps, max_frames=max_frames)
    step = fps / min(fps, target_fps)
    uncapped = int(np.ceil(num_frames / step - 1e-9))
    assert len(idx) == (uncapped if max_frames is None else min(uncapped, max_frames))
    assert len(np.unique(idx)) == len(idx)  # never the same frame twice


# --------------------------------------------------------------------------- SamplingConfig


def test_config_defaults_and_indices():
    cfg = SamplingConfig()
    assert (cfg.strategy, cfg.n, cfg.resize, cfg.size) == ("uniform", 12, "square", None)
    assert np.array_equal(cfg.indices(250, 25), frame_indices(250, 25))
    rnd = SamplingConfig("segment_random", n=8)
    assert np.array_equal(rnd.indices(300, 30, seed=1), rnd.indices(300, 30, seed=1))
    assert SamplingConfig("single", at_seconds=2).indices(300, 25).tolist() == [49]
    assert len(SamplingConfig("fps", target_fps=2, max_frames=3).indices(1000, 10)) == 3


def test_config_key_is_stable_and_covers_every_field():
    key = SamplingConfig().key()
    assert key == (
        "strategy='uniform',n=12,at_seconds=1.0,offset=0.5,target_fps=1.0,"
        "max_frames=None,size=None,resize='square'"
    )
    assert SamplingConfig(at_seconds=1, target_fps=1).key() == key  # ints normalised to floats
    changed = [
        SamplingConfig(strategy="stride"),
        SamplingConfig(n=8),
        SamplingConfig(at_seconds=2.0),
        SamplingConfig(offset=0.25),
        SamplingConfig(target_fps=2.0),
        SamplingConfig(max_frames=4),
        SamplingConfig(size=64),
        SamplingConfig(resize="short_side"),
    ]
    assert len({c.key() for c in changed} | {key}) == len(changed) + 1


def test_config_is_frozen_and_hashable():
    cfg = SamplingConfig(n=4)
    with pytest.raises(AttributeError):
        cfg.n = 5  # type: ignore[misc]
    assert cfg == SamplingConfig(n=4) and hash(cfg) == hash(SamplingConfig(n=4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "middle"}, "unknown sampling strategy 'middle'; valid: all, clip2video"),
        ({"n": 0}, "n must be >= 1"),
        ({"n": 2.0}, "n must be an int"),
        ({"offset": 1.5}, "offset"),
        ({"target_fps": -1.0}, "target_fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"size": 0}, "size must be >= 1"),
        ({"resize": "stretch"}, "unknown resize 'stretch'; valid: short_side, square"),
        ({"at_seconds": "1"}, "at_seconds must be a number"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kwargs)


# --------------------------------------------------------------------------- paper protocols


def test_clip4clip_takes_one_frame_per_second_then_an_endpoint_linspace():
    # 10 s at 30 fps: one frame per second is [0, 30, ..., 270]; linspace(0, 9, 4) = [0, 3, 6, 9]
    assert frame_indices(300, 30, "clip4clip", n=4).tolist() == [0, 90, 180, 270]
    assert frame_indices(300, 30, "clip4clip", n=12).tolist() == list(range(0, 300, 30))
    # 10 s at 25 fps, n=3: linspace(0, 9, 3) = [0, 4.5, 9] -> [0, 4, 9] -> frames 0, 100, 225
    assert frame_indices(250, 25, "clip4clip", n=3).tolist() == [0, 100, 225]
    # 1.5 s: two one-per-second frames, not padded by repeats (the pipeline pads and masks)
    assert frame_indices(45, 30, "clip4clip", n=12).tolist() == [0, 30]


def test_clip2video_dumps_at_5fps_keeps_every_second_then_linspace():
    # 10 s at 30 fps: 50 frames dumped at 5 fps (every 6th); linspace(0, 49, 25) keeps positions
    # 0, 2, ..., 46, 49; linspace(0, 24, 12) = 0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21, 24 of those
    expected = [0, 24, 48, 72, 96, 120, 156, 180, 204, 228, 252, 294]
    assert frame_indices(300, 30, "clip2video", n=12).tolist() == expected
    # 1 s: dumped [0, 6, 12, 18, 24], two kept (linspace(0, 4, 2) = [0, 4])
    assert frame_indices(30, 30, "clip2video", n=12).tolist() == [0, 24]
    assert frame_indices(3, 30, "clip2video", n=12).tolist() == [0]  # one dumped frame: keep it


@settings(max_examples=60, deadline=None)
@given(num_frames_st, fps_st, n_st, st.sampled_from(PAPER))
def test_paper_protocols_never_repeat_a_frame(num_frames, fps, n, strategy):
    idx = frame_indices(num_frames, fps, strategy, n=n)
    assert 1 <= len(idx) <= n and len(np.unique(idx)) == len(idx)
    assert np.all(np.diff(idx) > 0) and idx[0] == 0


def test_uniform_repeats_frames_in_short_videos_and_the_paper_protocols_do_not():
    """Why the docstring warns: repeated frames make adjacent differences (TDB) exactly zero."""
    assert np.any(np.diff(frame_indices(8, 2, "uniform", n=12)) == 0)  # 8 frames, 4 s
    assert frame_indices(8, 2, "clip4clip", n=12).tolist() == [0, 2, 4, 6]


# --------------------------------------------------------------------------- epochs and offsets


def test_segment_random_draws_new_frames_each_epoch_and_per_video():
    def draw(epoch: int, video: str = "v1", seed: int = 0) -> np.ndarray:
        return frame_indices(1200, 30, "segment_random", n=12, seed=seed, epoch=epoch, video=video)

    assert np.array_equal(draw(3), draw(3))  # same (seed, epoch, video): same frames
    epochs = [draw(e) for e in range(5)]
    assert len({tuple(x) for x in epochs}) == 5  # new frames every epoch
    assert not np.array_equal(draw(0, "v2"), draw(0, "v1"))
    assert not np.array_equal(draw(0, seed=1), draw(0))
    for idx in epochs:
        assert np.all(idx // 100 == np.arange(12))  # still one frame inside each segment
    cfg = SamplingConfig("segment_random", n=12)
    assert cfg.varies_by_epoch and not SamplingConfig().varies_by_epoch
    assert np.array_equal(cfg.indices(1200, 30, seed=0, epoch=2, video="v1"), draw(2))


def test_epoch_seed_and_video_are_validated():
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        frame_indices(100, 30, "segment_random", seed=0, epoch=-1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        frame_indices(100, 30, "segment_random", seed=-3)
    with pytest.raises(ValueError, match="video must be a str"):
        frame_indices(100, 30, "segment_random", seed=0, video=7)


def test_stride_offsets_tile_each_segment_as_frozen_in_time():
    assert stride_offsets(4) == [0.0, 0.25, 0.5, 0.75]
    sets = stride_offset_indices(120, 12, 2)  # segments of 10 frames, offsets 0 and 1/2
    assert [s.tolist() for s in sets] == [list(range(0, 120, 10)), list(range(5, 120, 10))]
    five = stride_offset_indices(120, 12, 5)  # frames 0, 2, 4, 6, 8 of every segment
    assert np.array_equal(np.stack(five).T.reshape(-1), np.arange(0, 120, 2))
    with pytest.raises(ValueError, match="count must be >= 1"):
        stride_offsets(0)
