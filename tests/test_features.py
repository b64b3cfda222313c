"""Frame/text feature extraction: results, cache round trip, resume, damage, changed files, ranks.

Videos are tiny real H.264 files written with PyAV; the encoder is the real ``vrlib-tiny`` CLIP
with random weights (64 px), wrapped to count the frames and texts it encodes.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.data.video import VideoDecodeError, probe, read_frames
from vrlib.features import FrameFeatures, extract_frame_features, extract_text_features

# (frames, width, height) per test video, 10 fps; sizes differ so that one encoder batch mixes them
SHAPES = ((6, 64, 64), (14, 64, 64), (9, 64, 40), (25, 64, 64), (11, 40, 56), (18, 64, 64))
SAMPLING = SamplingConfig(strategy="uniform", n=4)


def _write_mp4(path: Path, num_frames: int, width: int, height: int, shade: int) -> None:
    """A 10 fps H.264 clip: a bright square moving over a background of colour ``shade``."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            img = np.full((height, width, 3), (shade, 255 - shade, (shade * 3) % 256), np.uint8)
            x = (4 * t) % (width - 8)
            img[10:22, x : x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def video_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    paths = []
    for i, (n, w, h) in enumerate(SHAPES):
        paths.append(folder / f"v{i}.mp4")
        _write_mp4(paths[-1], n, w, h, shade=40 * i)
    return paths


@pytest.fixture()
def videos(video_files: list[Path], tmp_path: Path) -> list[Path]:
    """Per-test copies, so that tests may touch, rewrite or damage them."""
    folder = tmp_path / "videos"
    folder.mkdir()
    out = []
    for p in video_files:
        out.append(folder / p.name)
        shutil.copy2(p, out[-1])
    return out


def _dataset(paths: list[Path], root: Path | None = None) -> RetrievalDataset:
    items = [VideoItem(video_id=p.stem, path=p) for p in paths]
    return RetrievalDataset(
        name="test", split="all", root=root or paths[0].parent, videos=items, captions=[]
    )


class Counting:
    """Wraps an encoder and counts what passes through it; can raise after ``stop_after`` calls."""

    def __init__(self, encoder, stop_after: int | None = None) -> None:
        self._encoder = encoder
        self.frames = 0
        self.calls = 0
        self.texts = 0
        self.stop_after = stop_after

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_preprocessed(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt("simulated Ctrl-C")
        self.calls += 1
        self.frames += int(pixels.shape[0])
        return self._encoder.encode_preprocessed(pixels)

    def encode_text(self, texts):
        self.texts += len(texts)
        return self._encoder.encode_text(texts)

    def encode_text_tokens(self, texts):
        self.texts += len(texts)
        return self._encoder.encode_text_tokens(texts)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while this module runs, restored after.

    The encoder batches here are a few 64 px frames: on a shared 2-core machine, two spinning
    OpenMP threads made each extraction 3-8x slower than one thread did.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    from vrlib.encoders import load_clip

    torch.manual_seed(0)
    return load_clip("vrlib-tiny", pretrained=None, device="cpu")


def _extract(ds, encoder, cache, **kw) -> FrameFeatures:
    kw = {"batch_size": 5, "shard_size": 2, "progress": False, **kw}
    return extract_frame_features(ds, encoder, SAMPLING, cache, **kw)


def _assert_same(a: FrameFeatures, b: FrameFeatures, exact: bool = False) -> None:
    """Same videos, frames and features. Cache hits are bit-identical (``exact``); a frame encoded
    again may share its batch with other frames than before, which changes float rounding."""
    assert a.video_ids == b.video_ids
    for fa, fb, ia, ib, ta, tb in zip(
        a.features, b.features, a.indices, b.indices, a.timestamps, b.timestamps, strict=True
    ):
        if exact:
            assert torch.equal(fa, fb)
        else:
            torch.testing.assert_close(fa, fb, atol=1e-5, rtol=1e-4)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta, tb)


def _frames_of(feats: FrameFeatures, ids) -> int:
    return sum(int(feats.features[feats.video_ids.index(v)].shape[0]) for v in ids)


def _manifest_ids(cache: Path) -> list[str]:
    (run_dir,) = [p for p in cache.iterdir() if p.is_dir()]
    return [
        vid
        for m in run_dir.glob("manifest_*.json")
        for shard in json.loads(m.read_text())["shards"]
        for vid in shard["video_ids"]
    ]


# ----------------------------------------------------------------------------------------------


def test_features_match_direct_encoding(videos, tiny, tmp_path):
    """Packing frames of several videos into one batch and splitting back gives each video its own frames."""
    feats = _extract(_dataset(videos), tiny, tmp_path / "cache")
    assert feats.video_ids == [p.stem for p in videos]
    assert len(feats) == len(videos) and feats.skipped == []
    for path, f, idx, ts in zip(
        videos, feats.features, feats.indices, feats.timestamps, strict=True
    ):
        info = probe(path)
        expected_idx = np.asarray(SAMPLING.indices(info.num_frames, info.fps, seed=None))
        np.testing.assert_array_equal(idx, expected_idx)
        np.testing.assert_allclose(ts, idx / info.fps)
        with torch.no_grad():
            direct = tiny.encode_preprocessed(tiny.preprocess_frames(read_frames(path, idx)))
        assert f.dtype == torch.float32 and f.device.type == "cpu"
        assert f.shape == (len(idx), tiny.embed_dim)
        torch.testing.assert_close(f, direct.float().cpu(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(f.norm(dim=-1), torch.ones(len(idx)), atol=1e-4, rtol=0)


def test_cache_round_trip_encodes_nothing(videos, tiny, tmp_path):
    ds, cache = _dataset(videos), tmp_path / "cache"
    first_enc, second_enc = Counting(tiny), Counting(tiny)
    first = _extract(ds, first_enc, cache)
    second = _extract(ds, second_enc, cache)
    assert first_enc.frames == sum(f.shape[0] for f in first.features) > 0
    assert second_enc.frames == 0
    assert second.stats["cached"] == len(videos) and second.stats["encoded"] == 0
    assert first.key == second.key
    _assert_same(first, second, exact=True)


def test_cache_key_changes_with_sampling_and_seed(videos, tiny, tmp_path):
    ds, cache = _dataset(videos[:2]), tmp_path / "cache"
    base = _extract(ds, tiny, cache)
    other = extract_frame_features(
        ds, tiny, SamplingConfig(strategy="uniform", n=3), cache, progress=False
    )
    reseeded = _extract(ds, tiny, cache, seed=1)
    assert len({base.key, other.key, reseeded.key}) == 3
    assert other.stats["encoded"] == 2 and reseeded.stats["encoded"] == 2
    assert all(f.shape[0] == 3 for f in other.features)


def test_resume_after_interrupt(videos, tiny, tmp_path):
    ds = _dataset(videos)
    reference = _extract(ds, tiny, tmp_path / "reference")
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        _extract(ds, Counting(tiny, stop_after=3), cache)
    done = _manifest_ids(cache)
    assert 0 < len(done) < len(videos)  # partial progress was kept

    rerun_enc = Counting(tiny)
    resumed = _extract(ds, rerun_enc, cache)
    _assert_same(resumed, reference)
    remaining = [v for v in reference.video_ids if v not in done]
    assert resumed.stats["encoded"] == len(remaining)
    assert rerun_enc.frames == _frames_of(reference, remaining)


KILL_SCRIPT = """
import sys, time, torch
from pathlib import Path
from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.encoders import load_clip
from vrlib.features import extract_frame_features

torch.set_num_threads(1)
cache, paths = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
ds = RetrievalDataset("test", "all", paths[0].parent, [VideoItem(p.stem, p) for p in paths], [])
enc = load_clip("vrlib-tiny", pretrained=None, device="cpu")
encode = enc.encode_preprocessed
def slow(pixels):  # slow enough that the parent can kill us between two shards
    time.sleep(0.4)
    return encode(pixels)
enc.encode_preprocessed = slow
extract_frame_features(ds, enc, SamplingConfig(strategy="uniform", n=4), cache, batch_size=5,
                       shard_size=2, progress=False)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_resume_after_sigkill(videos, tiny, tmp_path):
    """A process killed with SIGKILL mid-run (no chance to flush) loses only unfinished shards."""
    import signal
    import subprocess
    import sys
    import time

    ds = _dataset(videos)
    reference = _extract(ds, tiny, tmp_path / "reference")
    cache = tmp_path / "cache"
    script = tmp_path / "extract.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(cache), *map(str, videos)])
    deadline = time.time() + 120
    while (
        not list(cache.glob("*/manifest_*.json")) and proc.poll() is None and time.time() < deadline
    ):
        time.sleep(0.05)  # the first shard is listed in the manifest: kill now, mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    done = _manifest_ids(cache)
    assert 0 < len(done) < len(videos)

    rerun = Counting(tiny)
    resumed = _extract(ds, rerun, cache)
    _assert_same(resumed, reference)
    assert resumed.stats["encoded"] == len(videos) - len(done)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "checksum"])
def test_damaged_shard_is_reported_and_recomputed(videos, tiny, tmp_path, damage):
    ds, cache = _dataset(videos), tmp_path / "cache"
    reference = _extract(ds, tiny, cache)
    shard = sorted(cache.glob("*/shard_*.pt"))[0]
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "garbage":
        shard.write_bytes(b"not a torch file")
    else:  # tensors altered after the checksum was taken
        blob = torch.load(shard, weights_only=True)
        blob["entries"][0]["features"] += 1.0
        torch.save(blob, shard)
    rerun_enc = Counting(tiny)
    with pytest.warns(UserWarning, match=shard.name):
        again = _extract(ds, rerun_enc, cache)
    _assert_same(again, reference)
    # only the damaged entries: the first shard holds v0 and v1 (shard_size=2)
    assert again.stats["encoded"] == (1 if damage == "checksum" else 2)

    quiet_enc = Counting(tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed entries are found in a newer shard
        _extract(ds, quiet_enc, cache)
    assert quiet_enc.frames == 0


def test_changed_video_is_recomputed(videos, tiny, tmp_path):
    ds, cache = _dataset(videos), tmp_path / "cache"
    before = _extract(ds, tiny, cache)

    st = videos[1].stat()
    os.utime(videos[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    enc = Counting(tiny)
    touched = _extract(ds, enc, cache)
    assert touched.stats["encoded"] == 1
    assert enc.frames == _frames_of(before, ["v1"])
    _assert_same(touched, before)

    shutil.copy(videos[3], videos[2])  # different content (and size) under the same name
    rewritten = _extract(ds, tiny, cache)
    assert rewritten.stats["encoded"] == 1
    got = rewritten.features[rewritten.video_ids.index("v2")]
    torch.testing.assert_close(
        got, before.features[before.video_ids.index("v3")], atol=1e-5, rtol=1e-4
    )
    assert not torch.allclose(got, before.features[before.video_ids.index("v2")], atol=1e-3)


def _bad_files(tmp_path: Path) -> list[Path]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(2048))
    return [empty, junk, tmp_path / "missing.mp4"]


def test_on_error_skip_lists_bad_videos(videos, tiny, tmp_path):
    bad = _bad_files(tmp_path)
    ds = _dataset([videos[0], bad[0], videos[1], bad[1], bad[2]], root=tmp_path)
    feats = _extract(ds, tiny, tmp_path / "cache", on_error="skip")
    assert feats.video_ids == ["v0", "v1"]
    assert [vid for vid, _ in feats.skipped] == ["empty", "junk", "missing"]
    assert all(isinstance(reason, str) and reason for _, reason in feats.skipped)
    assert feats.stats["skipped"] == 3


def test_on_error_raise_names_the_file(videos, tiny, tmp_path):
    bad = _bad_files(tmp_path)
    for path in bad:
        ds = _dataset([videos[0], path], root=tmp_path)
        with pytest.raises(VideoDecodeError, match=path.name) as err:
            _extract(ds, tiny, tmp_path / "cache")
        assert Path(err.value.path).name == path.name


def test_bad_arguments_are_rejected(videos, tiny, tmp_path):
    ds = _dataset(videos[:1])
    with pytest.raises(ValueError, match="on_error='ignore'.*raise, skip"):
        _extract(ds, tiny, tmp_path, on_error="ignore")
    with pytest.raises(ValueError, match="rank"):
        _extract(ds, tiny, tmp_path, rank=2, world_size=2)
    with pytest.raises(TypeError, match="sequence of str"):
        extract_text_features("a caption", tiny)


def test_clip_range_limits_indices(videos, tiny, tmp_path):
    item = VideoItem(video_id="clip", path=videos[3], start=0.5, end=1.5)  # 25 frames at 10 fps
    ds = RetrievalDataset(name="t", split="all", root=tmp_path, videos=[item], captions=[])
    feats = _extract(ds, tiny, None)
    idx = feats.indices[0]
    assert idx.min() >= 5 and idx.max() < 15 and len(idx) == SAMPLING.n
    outside = VideoItem(video_id="late", path=videos[0], start=5.0, end=6.0)  # video lasts 0.6 s
    ds = RetrievalDataset(name="t", split="all", root=tmp_path, videos=[outside], captions=[])
    with pytest.raises(VideoDecodeError, match="no frames"):
        _extract(ds, tiny, None)


def test_padded_mask_and_select():
    feats = [torch.full((n, 3), float(n)) for n in (2, 5, 3)]
    ff = FrameFeatures(
        video_ids=["a", "b", "c"],
        features=feats,
        timestamps=[np.arange(len(f)) / 10 for f in feats],
        indices=[np.arange(len(f)) for f in feats],
        skipped=[("d", "broken")],
    )
    x, mask = ff.padded()
    assert x.shape == (3, 5, 3) and mask.shape == (3, 5) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [2, 5, 3]
    assert torch.equal(x[0, :2], feats[0]) and torch.all(x[0, 2:] == 0)

    x, mask = ff.padded(max_frames=6)  # pads beyond the longest video
    assert x.shape == (3, 6, 3) and mask.sum(1).tolist() == [2, 5, 3]

    ramp = FrameFeatures(["r"], [torch.arange(9.0)[:, None]], [np.zeros(9)], [np.arange(9)])
    x, mask = ramp.padded(max_frames=3)  # longer videos keep evenly spaced frames, ends included
    assert x[0, :, 0].tolist() == [0.0, 4.0, 8.0] and mask.all()

    sub = ff.select(["c", "a"])
    assert sub.video_ids == ["c", "a"] and torch.equal(sub.features[0], feats[2])
    assert len(sub) == 2 and sub.skipped == []
    with pytest.raises(KeyError, match="d \\(skipped\\)"):
        ff.select(["a", "d"])


def test_two_checkpoints_of_one_architecture_do_not_share_features(videos, tiny, tmp_path):
    """The frame and text cache keys hold the encoder's weights fingerprint: another checkpoint
    of vrlib-tiny, or the same one fine-tuned in place, never gets the first one's features."""
    import copy

    from vrlib.encoders import load_clip

    ds, cache = _dataset(videos[:2]), tmp_path / "cache"
    other = load_clip("vrlib-tiny", pretrained=None, device="cpu", init_seed=1)
    tuned = copy.deepcopy(tiny)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        for weight in tuned.model.parameters():  # a fine-tuning step, in place
            weight.add_(0.05 * torch.randn_like(weight))
    tuned.invalidate_fingerprint()
    assert len({tiny.fingerprint, other.fingerprint, tuned.fingerprint}) == 3
    texts = ["a red circle moves left", "a blue square grows"]
    first = _extract(ds, tiny, cache)
    first_text = extract_text_features(texts, tiny, cache, progress=False)
    for encoder in (other, tuned):
        counted = Counting(encoder)
        feats = _extract(ds, counted, cache)
        assert feats.key != first.key and feats.stats["cached"] == 0
        assert counted.frames == sum(f.shape[0] for f in feats.features) > 0
        with torch.no_grad():
            direct = encoder.encode_preprocessed(
                encoder.preprocess_frames(read_frames(videos[0], feats.indices[0]))
            )
        torch.testing.assert_close(feats.features[0], direct.float(), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(feats.features[0], first.features[0], atol=1e-3)
        text = extract_text_features(texts, counted, cache, progress=False)
        assert counted.texts == 2  # encoded, not served from the first encoder's file
        torch.testing.assert_close(text, encoder.encode_text(texts).float(), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(text, first_text, atol=1e-3)


def test_text_features_cache(tiny, tmp_path):
    texts = ["a red circle moves left", "a blue square grows", "a loud beep is heard"]
    enc = Counting(tiny)
    first = extract_text_features(texts, enc, tmp_path, batch_size=2, progress=False)
    assert first.shape == (3, tiny.embed_dim) and enc.texts == 3
    torch.testing.assert_close(first, tiny.encode_text(texts).float(), atol=1e-5, rtol=1e-4)
    again = extract_text_features(texts, enc, tmp_path, progress=False)
    assert torch.equal(again, first) and enc.texts == 3  # served from the cache

    other = extract_text_features(texts[:2], enc, tmp_path, progress=False)
    assert enc.texts == 5 and torch.allclose(other, first[:2], atol=1e-5)

    tokens, mask = extract_text_features(texts, enc, tmp_path, tokens=True, progress=False)
    assert tokens.ndim == 3 and tokens.shape[:2] == mask.shape and mask.dtype == torch.bool
    assert enc.texts == 8
    tokens2, mask2 = extract_text_features(texts, enc, tmp_path, tokens=True, progress=False)
    assert enc.texts == 8 and torch.equal(tokens, tokens2) and torch.equal(mask, mask2)

    for f in (tmp_path / "text").glob("*.pt"):
        f.write_bytes(f.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged"):
        fixed = extract_text_features(texts, enc, tmp_path, progress=False)
    # recomputed, not read back: equal up to float rounding (CPU kernels may split work
    # differently from one call to the next on a loaded machine)
    torch.testing.assert_close(fixed, first, atol=1e-6, rtol=1e-5)
    assert enc.texts == 11


@pytest.mark.slow
def test_workers_match_in_process_decoding(videos, tiny, tmp_path):
    ds = _dataset(videos)
    in_process = _extract(ds, tiny, None, num_workers=0)
    workers = _extract(ds, tiny, None, num_workers=2)
    _assert_same(workers, in_process)


def test_ranks_share_the_work_and_merge_from_cache(videos, tiny, tmp_path, monkeypatch):
    ds, cache = _dataset(videos), tmp_path / "cache"
    reference = _extract(ds, tiny, tmp_path / "reference")
    monkeypatch.setenv("WORLD_SIZE", "2")
    parts = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        parts[rank] = _extract(ds, tiny, cache)  # rank and world size from the environment
    assert parts[0].video_ids == reference.video_ids[0::2]
    assert parts[1].video_ids == reference.video_ids[1::2]
    assert sorted(p.name for p in cache.glob("*/done_*.json")) == [
        "done_r0of2.json",
        "done_r1of2.json",
    ]

    merge_enc = Counting(tiny)
    merged = _extract(ds, merge_enc, cache, rank=0, world_size=1)
    assert merge_enc.frames == 0 and merged.stats["cached"] == len(videos)
    _assert_same(merged, reference)


def test_merge_warns_about_unfinished_rank(videos, tiny, tmp_path):
    ds, cache = _dataset(videos), tmp_path / "cache"
    _extract(ds, tiny, cache, rank=1, world_size=3)
    enc = Counting(tiny)
    with pytest.warns(UserWarning, match=r"ranks \[0, 2\] of a 3-rank"):
        merged = _extract(ds, enc, cache, rank=0, world_size=1)
    assert merged.stats["encoded"] == len(videos) - len(videos[1::3])
