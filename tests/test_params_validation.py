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


# --- issue 21, section 4: what studies 03 and 04 and every file get checked for ---------------


@pytest.mark.parametrize(
    ("study", "text", "needles"),
    [
        ("curriculum", "test_split: tset\n", ["test_split", "'tset'", "train, val, test"]),
        ("curriculum", "model: frozen-nosuch\n", ["model", "frozen-nosuch", "frozen-tiny"]),
        ("curriculum", "pool_frames: 4\n", ["schedules.8", "8 frames", "pool_frames is 4"]),
        ("curriculum", "train:\n  temperature: 0\n", ["train.temperature", "greater than 0"]),
        ("curriculum", "train:\n  temperature: -1\n", ["train.temperature", "greater than 0"]),
        ("curriculum", "train:\n  grad_clip: -1\n", ["train.grad_clip", "greater than 0"]),
        ("curriculum", "train:\n  device: banana\n", ["train.device", "'banana'", "cuda:N"]),
        (
            "curriculum",
            "encoder:\n  model: vrlib-tiny\n",
            ["encoder", "'vrlib-tiny' has no ViT image tower", "vrlib-tiny-vit32"],
        ),
        ("caption_selection", "caption_size: 0\n", ["caption_size", "greater than or equal to 1"]),
        ("caption_selection", "caption_size: -5\n", ["caption_size", "greater than or equal"]),
        (
            "caption_selection",
            "captioners:\n  - {label: C, name: clipcap-tiny, options: {chekpoint: x.pt}}\n",
            ["captioners.0", "'chekpoint'", "checkpoint", "decoding"],
        ),
        ("zero_shot_aggregation", "seed: true\n", ["seed", "true", "boolean"]),
        ("zero_shot_aggregation", "kmeans_k: [2, false]\n", ["kmeans_k", "boolean"]),
        ("zero_shot_aggregation", "encoder:\n  device: banana\n", ["encoder.device", "banana"]),
        ("zero_shot_aggregation", "seed: 0\nseed: 1\n", ["'seed' appears twice", "lines 1 and 2"]),
        (
            "zero_shot_aggregation",
            "data:\n  world_preset: smoke\n  world_preset: default\n",
            ["'world_preset' appears twice", "lines 2 and 3"],
        ),
        (
            "zero_shot_aggregation",
            "data:\n  world_overrides: {video_shfit: 0.0}\n",
            ["data", "unknown world parameter", "video_shfit", "video_shift"],
        ),
        (
            "zero_shot_aggregation",
            "data:\n  world_overrides: {video_shift: 2.0}\n",
            ["data", "video_shift=2.0 must be in [0, 1]"],
        ),
        (
            "zero_shot_aggregation",
            "data:\n  world_overrides: {num_videos: 10}\n",
            ["data", "num_videos", "only the mechanism knobs", "motion_image_share"],
        ),
        (
            "caption_selection",
            "data:\n  world_overrides: {motion_image_share: 0.0}\n",
            ["data.world_overrides", "motion_image_share", "change videos alone"],
        ),
    ],
)
def test_more_bad_values_name_file_and_key(tmp_path: Path, study: str, text: str, needles):
    path = _write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_params(study, path)
    for needle in [str(path), *needles]:
        assert needle in str(err.value), (needle, str(err.value))


def test_committed_study_04_and_03_files_still_validate():
    from vrlib.report import params_path

    for study in ("curriculum", "caption_selection"):
        for name in ("default", "smoke"):
            load_params(study, params_path(study, name))


def test_study_04_missing_image_root_fails_at_the_check(tmp_path: Path):
    msg = _refused_before_the_notebook(
        tmp_path, "curriculum", f"image_root: {tmp_path / 'no-images'}\n"
    )
    assert "image_root" in msg and "no-images" in msg and "folder not found" in msg


def test_study_03_missing_captioner_checkpoint_fails_at_the_check(tmp_path: Path):
    text = "captioners:\n  - label: C\n    name: clipcap-tiny\n"
    text += f"    options: {{checkpoint: {tmp_path / 'cap.pt'}}}\n"
    msg = _refused_before_the_notebook(tmp_path, "caption_selection", text)
    assert "captioners.0.options.checkpoint" in msg and "cap.pt: not found" in msg


def test_cache_dir_that_is_a_file_fails_at_the_check(tmp_path: Path):
    (tmp_path / "cache").write_text("not a folder")
    msg = _refused_before_the_notebook(
        tmp_path, "zero_shot_aggregation", f"cache_dir: {tmp_path / 'cache'}\n"
    )
    assert "cache_dir" in msg and "is a file" in msg


def test_a_device_this_machine_lacks_fails_at_the_check(tmp_path: Path):
    import torch

    if torch.cuda.device_count() > 8:
        pytest.skip("a machine with more than 8 GPUs has cuda:8")
    msg = _refused_before_the_notebook(
        tmp_path, "zero_shot_aggregation", "encoder:\n  device: cuda:8\n"
    )
    assert "encoder.device" in msg and "CUDA device(s)" in msg


def test_checkpoint_of_another_architecture_fails_at_the_check(tmp_path: Path):
    import torch

    from vrlib.encoders import load_clip

    ckpt = tmp_path / "resnet.pt"
    torch.save(load_clip("vrlib-tiny", None).model.state_dict(), ckpt)
    good = f"encoder:\n  model: vrlib-tiny\n  pretrained: {ckpt}\n"
    check_params("query_browser", _write(tmp_path, good, "good.yaml"))
    bad = f"encoder:\n  model: vrlib-tiny-vit32\n  pretrained: {ckpt}\n"
    msg = _refused_before_the_notebook(tmp_path, "query_browser", bad)
    assert "encoder.pretrained" in msg and "does not match the architecture" in msg
    assert "'vrlib-tiny-vit32'" in msg


def test_caption_file_whose_videos_are_all_missing_fails_at_the_check(tmp_path: Path):
    root = tmp_path / "mine"
    (root / "videos").mkdir(parents=True)
    (root / "captions.csv").write_text("video_id,caption,split\na,a dog,test\nb,a cat,test\n")
    text = f"data:\n  dataset: folder\n  root: {root}\nencoder:\n  pretrained: null\nsplit: test\n"
    msg = _refused_before_the_notebook(tmp_path, "failure_analysis", text)
    assert "split ('test')" in msg and "none of its 2 videos is there" in msg


def test_refusing_a_bad_file_imports_neither_open_clip_nor_papermill(tmp_path: Path):
    """A typo is refused before the heavy imports (issue 21: 7-12 s for a one-line mistake)."""
    import subprocess
    import sys

    bad = _write(tmp_path, "kmeans_k: [0, 3]\n")
    code = (
        "import sys\nfrom vrlib.report import ParamsError, run_study\n"
        f"try:\n    run_study('zero_shot_aggregation', {str(bad)!r}, out_root={str(tmp_path)!r})\n"
        "except ParamsError:\n    pass\nelse:\n    raise SystemExit('accepted')\n"
        "print(sorted(m for m in ('open_clip', 'papermill') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_report_command_refuses_a_bad_file_in_one_line(tmp_path: Path):
    """`python -m vrlib report` on a bad file: one `error:` line on stderr, exit status 2."""
    import subprocess
    import sys

    bad = _write(tmp_path, "seed: 0\nseed: 1\n")
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "vrlib", "report", "zero_shot_aggregation", "--params", str(bad)]
    run = subprocess.run(
        [*cmd, "--out-root", str(tmp_path / "reports")],
        capture_output=True, text=True, cwd=root, timeout=300,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "'seed' appears twice" in run.stderr and not (tmp_path / "reports").exists()


def test_world_overrides_get_a_world_folder_of_their_own():
    from types import SimpleNamespace

    from vrlib.paths import expert_path, world_dir
    from vrlib.studies.common import DataParams, EncoderParams
    from vrlib.studies.inputs import _encoder_key, study_inputs

    assert world_dir("default", 0, {"video_shift": 0.0}) != world_dir("default", 0)
    # a knob that changes the stills gets an expert of its own; a videos-only knob does not
    stills = DataParams(world_overrides={"motion_image_share": 0.0, "video_shift": 0.0})
    assert stills.stills_overrides() == {"motion_image_share": 0.0}
    assert DataParams(world_overrides={"video_shift": 0.0}).stills_overrides() == {}
    assert expert_path("default", 0, "vrlib-tiny", stills.stills_overrides()) != expert_path()
    assert expert_path("default", 0, "vrlib-tiny", {}) == expert_path()
    assert _encoder_key(EncoderParams(), stills) != _encoder_key(EncoderParams(), DataParams())
    # so does an expert that never saw some shapes
    unseen = EncoderParams(expert_without_words=["square"])
    assert _encoder_key(unseen, DataParams()) != _encoder_key(EncoderParams(), DataParams())
    assert (
        expert_path(without_words=["square"]).name == "vrlib-tiny-default-seed0-without-square.pt"
    )
    for data, name in (
        (DataParams(world_overrides={"video_shift": 0.0}), "world default seed 0 video_shift=0.0"),
        (DataParams(), "world default seed 0"),
    ):
        params = SimpleNamespace(data=data, encoder=EncoderParams())
        assert study_inputs(params)["data_root"] == name
