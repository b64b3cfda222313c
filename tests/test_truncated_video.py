"""A truncated MP4 whose header is at the front: flagged, skipped with a reason, or raised (issue 10)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.data.video import VideoDecodeError, probe, read_sampled
from vrlib.features import extract_frame_features


@pytest.fixture(scope="module")
def half_mp4(tmp_path_factory, bikes_mp4: Path) -> Path:
    """bikes.mp4 remuxed header-first, then cut in half: the header still claims 250 frames."""
    d = tmp_path_factory.mktemp("truncated")
    fast = d / "fast.mp4"
    with (
        av.open(str(bikes_mp4)) as inp,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    half = d / "half.mp4"
    data = fast.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    return half


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_probe_reports_the_header_claim(half_mp4: Path, bikes_mp4: Path, backend: str) -> None:
    whole = probe(bikes_mp4, backend=backend)
    assert (whole.num_frames, whole.claimed_frames, whole.truncation()) == (250, 250, None)
    info = probe(half_mp4, backend=backend)
    assert info.claimed_frames == 250 and 0 < info.num_frames < 200
    assert info.truncation() == (
        f"truncated: {info.num_frames} of the 250 frames the container header claims are in the file"
    )


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_read_sampled_refuses_a_truncated_file_unless_allowed(half_mp4: Path, backend: str) -> None:
    with pytest.raises(VideoDecodeError, match="truncated: .* of the 250 frames") as err:
        read_sampled(half_mp4, lambda info: [0, 10], backend=backend)
    assert err.value.path == str(half_mp4)
    frames, idx, _ = read_sampled(
        half_mp4, lambda i: [0, 10], backend=backend, allow_truncated=True
    )
    assert frames.shape[0] == 2 and idx.tolist() == [0, 10]


@pytest.fixture(scope="module")
def tiny():
    from vrlib.encoders import load_clip

    torch.manual_seed(0)
    return load_clip("vrlib-tiny", pretrained=None, device="cpu")


def test_extraction_lists_truncated_file_as_skipped_or_raises(
    half_mp4: Path, bikes_mp4: Path, tiny, tmp_path: Path
) -> None:
    videos = [VideoItem("whole", bikes_mp4), VideoItem("half", half_mp4)]
    ds = RetrievalDataset("test", "all", tmp_path, videos, [])
    sampling = SamplingConfig(strategy="uniform", n=2)
    kw = {"cache_dir": tmp_path / "cache", "batch_size": 4, "progress": False}
    feats = extract_frame_features(ds, tiny, sampling, on_error="skip", **kw)
    assert feats.video_ids == ["whole"]
    assert [v for v, _ in feats.skipped] == ["half"]
    assert "truncated" in feats.skipped[0][1] and "of the 250 frames" in feats.skipped[0][1]
    assert ds.drop_videos(feats.skipped).skipped == feats.skipped  # what reports list
    with pytest.raises(VideoDecodeError, match="truncated"):
        extract_frame_features(ds, tiny, sampling, on_error="raise", **kw)
    assert np.isfinite(feats.features[0].numpy()).all()
