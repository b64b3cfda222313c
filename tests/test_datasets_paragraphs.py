"""ActivityNet Captions (paragraphs on val1) and YouCook2 (clips) on real-format fixtures."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from vrlib.data.datasets import DatasetError, MissingVideoError, load_dataset

FIXTURES = Path(__file__).parent / "data" / "datasets"


def copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def test_activitynet_val1_is_one_paragraph_per_video(tmp_path, bikes_mp4):
    root = copy(tmp_path, "activitynet")
    link(bikes_mp4, root / "videos" / "v_uqiMw7tQ1Cc.mp4")
    link(bikes_mp4, root / "videos" / "bXdq2zI1Ms0.mkv")  # distributed without the v_ prefix too
    link(bikes_mp4, root / "videos" / "v_FsS_NCZEfaI.webm")
    ds = load_dataset("activitynet", root, "val1")
    assert [v.video_id for v in ds.videos] == ["v_uqiMw7tQ1Cc", "v_bXdq2zI1Ms0", "v_FsS_NCZEfaI"]
    assert ds.captions[0].text == (
        "A weight lifting tutorial is given. The coach helps the guy in red with the proper body "
        "placement and lifting technique."
    )
    assert ds.caption_to_video.tolist() == [0, 1, 2]
    assert ds.videos[1].path.name == "bXdq2zI1Ms0.mkv" and ds.videos[0].start is None
    assert len(load_dataset("activitynet", root, "val2", on_error="skip").captions) == 1


def test_activitynet_missing_video_is_named(tmp_path):
    root = copy(tmp_path, "activitynet")
    with pytest.raises(MissingVideoError, match="v_uqiMw7tQ1Cc"):
        load_dataset("activitynet", root, "val1")
    with pytest.raises(DatasetError, match="valid: train, val1, val2"):
        load_dataset("activitynet", root, "val")


def test_youcook2_clips_are_segments_of_the_distributed_videos(tmp_path, bikes_mp4):
    root = copy(tmp_path, "youcook2")
    link(bikes_mp4, root / "raw_videos" / "validation" / "101" / "xHr8X2Wpmno.mp4")
    link(bikes_mp4, root / "videos" / "V53XmPeyjIU.mkv")  # a flat folder works as well
    ds = load_dataset("youcook2", root, "val")
    assert [(v.video_id, v.start, v.end) for v in ds.videos] == [
        ("xHr8X2Wpmno_0", 2.0, 6.0),
        ("xHr8X2Wpmno_1", 7.0, 9.0),
        ("V53XmPeyjIU_0", 1.0, 4.0),
    ]
    assert [c.text for c in ds.captions] == [
        "cut the bread into cubes",
        "melt butter in a pan",
        "boil the noodles in water",
    ]
    assert ds.videos[2].path == root / "videos" / "V53XmPeyjIU.mkv"
    with pytest.raises(MissingVideoError, match="raw_videos/training/113/GLd3aX16zBg.mp4"):
        load_dataset("youcook2", root, "train")


def test_youcook2_bad_segment_names_the_entry(tmp_path):
    root = copy(tmp_path, "youcook2")
    path = root / "youcookii_annotations_trainval.json"
    data = json.loads(path.read_text())
    data["database"]["V53XmPeyjIU"]["annotations"][0]["segment"] = [4, 1]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"V53XmPeyjIU.*annotations\[0\].*start < end"):
        load_dataset("youcook2", root, "val")
