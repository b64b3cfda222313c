"""Parameter files fail before the notebook starts, naming the file and the key (issue 10, §1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vrlib.report import ParamsError, check_params, load_params, run_study


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("study", "text", "needles"),
    [
        (
            "zero_shot_aggregation",
            "kmeans_k: [0, 3]\n",
            ["kmeans_k.0", "greater than or equal to 1"],
        ),
        ("zero_shot_aggregation", "kmeans_k: []\n", ["kmeans_k", "at least 1 item"]),
        (
            "zero_shot_aggregation",
            "sampling:\n  max_frames: -3\n",
            ["sampling", "max_frames must be >= 1"],
        ),
        (
            "zero_shot_aggregation",
            "sampling:\n  target_fps: 0\n",
            ["sampling", "target_fps must be"],
        ),
        (
            "zero_shot_aggregation",
            "sampling:\n  strategy: every\n",
            ["sampling", "'every'", "uniform"],
        ),
        (
            "zero_shot_aggregation",
            "data:\n  dataset: msrvt\n",
            ["data.dataset", "'msrvt'", "msrvtt"],
        ),
        (
            "zero_shot_aggregation",
            "explore_split: valid\n",
            ["explore_split", "'valid'", "train, val, test"],
        ),
        ("zero_shot_aggregation", "encoder:\n  model: ViT-B-33\n", ["encoder.model", "'ViT-B-33'"]),
        ("zero_shot_aggregation", "encoder:\n  pretrained: opneai\n", ["encoder", "'opneai'"]),
        ("failure_analysis", "split: tset\n", ["split", "'tset'"]),
        ("failure_analysis", "aggregation: meen\n", ["aggregation", "'meen'", "kmeans, mean"]),
        ("query_browser", "data:\n  dataset: msrvtt\nsplit: test\n", ["split", "'test'", "1k-A"]),
        ("temporal_ablation", "val_split: dev\n", ["val_split", "'dev'"]),
        ("temporal_ablation", "encoder:\n  model: nope\n", ["encoder.model", "'nope'"]),
    ],
)
def test_bad_value_names_file_and_key(tmp_path: Path, study: str, text: str, needles: list[str]):
    path = _write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_params(study, path)
    for needle in [str(path), *needles]:
        assert needle in str(err.value), (needle, str(err.value))


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "{}\n"])
def test_empty_parameter_file_is_refused(tmp_path: Path, text: str):
    path = _write(tmp_path, text)
    with pytest.raises(ParamsError, match="empty parameter file"):
        load_params("zero_shot_aggregation", path)


def _refused_before_the_notebook(tmp_path: Path, study: str, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        run_study(study, path, out_root=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()  # no notebook, no folder
    assert str(path) in str(err.value)
    return str(err.value)


def test_missing_data_root_fails_before_the_notebook(tmp_path: Path):
    text = (
        f"data:\n  dataset: msrvtt\n  root: {tmp_path / 'nowhere'}\nencoder:\n  pretrained: null\n"
    )
    text += "explore_split: 1k-A\nconfirm_split: full\n"
    msg = _refused_before_the_notebook(tmp_path, "zero_shot_aggregation", text)
    assert "data.root" in msg and "nowhere" in msg and "folder not found" in msg


def test_missing_checkpoint_fails_before_the_notebook(tmp_path: Path):
    text = f"encoder:\n  pretrained: {tmp_path / 'weights.pt'}\n"
    msg = _refused_before_the_notebook(tmp_path, "query_browser", text)
    assert "encoder.pretrained" in msg and "weights.pt: checkpoint file not found" in msg


def test_split_of_a_folder_dataset_is_read_by_its_reader(tmp_path: Path, bikes_mp4: Path):
    root = tmp_path / "mine"
    (root / "videos").mkdir(parents=True)
    os.symlink(bikes_mp4, root / "videos" / "a.mp4")
    (root / "captions.csv").write_text("video_id,caption,split\na,a dog,test\n")
    common = f"data:\n  dataset: folder\n  root: {root}\nencoder:\n  pretrained: null\n"
    check_params("failure_analysis", _write(tmp_path, common + "split: test\n", "ok.yaml"))
    msg = _refused_before_the_notebook(tmp_path, "failure_analysis", common + "split: val\n")
    assert "split ('val')" in msg and "unknown split 'val'" in msg and "all, test" in msg
