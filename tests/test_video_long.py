"""Long videos: decord's seek can give up and return earlier frames; the right frames come back.

decord (decord2 3.4) gives up a seek after 10,000 empty polls of its decoder and returns the frame
it had reached. That needs a decoder slower than demuxing by a wide margin: it was reproduced on a
15,000-frame 256x256 noisy H.264 file (7-9 of 32 frames 91-186 frames early, see
``vrlib/data/video/decord_reader.py``), which takes minutes to encode. Here a 64x64 file longer
than the limit, whose pixels encode the frame number, checks that the frames read are the frames
asked for, and decord's give-up (its log line and earlier frames) is simulated on a short file.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from vrlib.data.video import PyAVReader, VideoDecodeError, read_frames
from vrlib.data.video.decode import _open
from vrlib.data.video.decord_reader import DECORD_SKIP_LIMIT

SIZE, BLOCK = 64, 16  # a 4x4 grid of 16x16 blocks, black or white: 16 bits of frame number


def _encode_number(n: int) -> np.ndarray:
    bits = (n >> np.arange(16)) & 1  # (16,)
    grid = bits.reshape(4, 4).astype(np.uint8) * 255
    return np.repeat(np.repeat(grid, BLOCK, 0), BLOCK, 1)[..., None].repeat(3, 2)  # (64, 64, 3)


def _decode_number(frame: np.ndarray) -> int:
    inner = frame[:, :, 0].reshape(4, BLOCK, 4, BLOCK)[:, 2:-2, :, 2:-2]  # away from block edges
    bits = (inner.mean(axis=(1, 3)) > 128).ravel()
    return int((bits << np.arange(16)).sum())


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """10,050 frames at 25 fps (6.7 minutes), H.264 with libx264's default 250-frame GOP."""
    path = tmp_path_factory.mktemp("long") / "numbers.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for n in range(DECORD_SKIP_LIMIT + 50):
            frame = av.VideoFrame.from_ndarray(_encode_number(n), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_the_frame_number_survives_encoding():
    assert [_decode_number(_encode_number(n)) for n in (0, 1, 4097, 10_049)] == [0, 1, 4097, 10_049]


def test_a_long_video_is_read_with_pyav_and_every_frame_is_the_one_asked_for(long_video):
    with _open(long_video, None) as reader:  # more frames than decord seeks reliably
        assert isinstance(reader, PyAVReader) and reader.num_frames == DECORD_SKIP_LIMIT + 50
    wanted = np.linspace(0, DECORD_SKIP_LIMIT + 49, 32).round().astype(int)
    frames = read_frames(long_video, wanted)
    assert [_decode_number(f) for f in frames] == wanted.tolist()


def test_decord_forced_on_a_long_video_never_returns_wrong_frames_silently(long_video):
    wanted = np.linspace(0, DECORD_SKIP_LIMIT + 49, 32).round().astype(int)
    try:
        frames = read_frames(long_video, wanted, backend="decord")
    except VideoDecodeError as e:  # its seek gave up: said, not hidden
        assert "a seek gave up" in e.reason
    else:
        assert [_decode_number(f) for f in frames] == wanted.tolist()


def test_a_seek_that_gives_up_is_caught_and_read_again_with_pyav(bikes_mp4, monkeypatch, capfd):
    import decord

    real = decord.VideoReader.get_batch

    def gives_up(self, indices):  # what decord does: one log line on fd 2, frames 40 too early
        os.write(2, b"[14:17:26] /project/src/video/video_reader.cc:711: [x.mp4] Failed to skip ")
        os.write(
            2, b"frames effectively at frame 60. Decoder did not respond after 10000 attempts.\n"
        )
        return real(self, [max(i - 40, 0) for i in indices])

    monkeypatch.setattr(decord.VideoReader, "get_batch", gives_up)
    got = read_frames(bikes_mp4, [100, 200, 100])
    assert np.array_equal(got, read_frames(bikes_mp4, [100, 200, 100], backend="pyav"))
    with pytest.raises(VideoDecodeError, match="decord returned wrong frames .* a seek gave up"):
        read_frames(bikes_mp4, [100], backend="decord")  # a forced backend says so
    assert capfd.readouterr().err == ""  # decord's line is not printed: the error says it
