"""Parameter validation, the outputs writer, and the reports/README rollup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vrlib.report import (
    ParamsError,
    StudyOutputs,
    build_readme,
    load_params,
    markdown_table,
)
from vrlib.studies import study_names
from vrlib.studies.toolkit import rows_from_metrics

ROOT = Path(__file__).resolve().parents[1]


def test_every_committed_parameter_file_validates():
    files = sorted((ROOT / "parameters").glob("*/*.yaml"))
    assert files, "no parameter files found"
    for f in files:
        load_params(f.parent.name, f)


def test_every_study_has_default_and_smoke_parameters_and_a_notebook():
    from vrlib.studies import get_study, notebooks_dir

    for study in study_names():
        assert (ROOT / "parameters" / study / "default.yaml").is_file(), study
        assert (ROOT / "parameters" / study / "smoke.yaml").is_file(), study
        assert (notebooks_dir() / get_study(study).notebook).is_file(), study


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seed: 0\nkmeans_kk: [2]\n", "kmeans_kk"),  # unknown key
        ("seed: zero\n", "seed"),  # bad type
        ("data:\n  world_preset: huge\n", "data.world_preset"),  # bad nested value
        ("encoder:\n  batch_size: -1\n", "encoder.batch_size"),
        ("- a\n- b\n", "mapping"),
        ("seed: [\n", "not valid YAML"),
    ],
)
def test_bad_parameter_files_name_the_file_and_key(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError) as e:
        load_params("zero_shot_aggregation", f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_missing_parameter_file_and_unknown_study(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params("zero_shot_aggregation", tmp_path / "nope.yaml")
    with pytest.raises(KeyError, match="zero_shot_aggregation"):
        load_params("zero_shot", tmp_path / "nope.yaml")


def test_run_study_fails_before_the_notebook_on_bad_params(tmp_path):
    from vrlib.report import run_study

    f = tmp_path / "bad.yaml"
    f.write_text("sampling:\n  n: 0\n")
    with pytest.raises(ParamsError, match="sampling.n"):
        run_study("zero_shot_aggregation", f, out_root=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_markdown_table_formats_floats_and_blanks_nan():
    md = markdown_table(pd.DataFrame({"a": ["x", "y"], "b": [1.234, float("nan")]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x | 1.23 |", "| y |  |"]


def test_outputs_writer_and_readme_rollup(tmp_path):
    params = load_params(
        "zero_shot_aggregation", ROOT / "parameters/zero_shot_aggregation/default.yaml"
    )
    for run, r1 in (("default", 12.5), ("msrvtt-1ka", 30.0)):
        out = StudyOutputs(
            "zero_shot_aggregation", params, tmp_path / "zero_shot_aggregation" / run
        )
        result = {
            "t2v": {
                "R@1": r1,
                "R@5": 40.0,
                "R@10": 50.0,
                "MdR": 7.0,
                "MnR": 9.0,
                "StdR": 3.0,
                "n": 10,
            },
            "v2t": {
                "R@1": r1 + 1,
                "R@5": 41.0,
                "R@10": 51.0,
                "MdR": 6.0,
                "MnR": 8.0,
                "StdR": 2.0,
                "n": 5,
            },
        }
        out.add_rows(rows_from_metrics("mean", "val", result))
        out.add_rows(rows_from_metrics("single", "test-all-captions", result))
        out.table("t", pd.DataFrame(out.rows))
        out.write_metrics(protocol={"ties": "optimistic"}, extra={"reading": f"reading {run}"})
    doc = json.loads((tmp_path / "zero_shot_aggregation/default/metrics.json").read_text())
    assert {"study", "params", "protocol", "versions", "seed", "wall_time_s", "rows"} <= doc.keys()
    assert doc["rows"][0]["setting"] == "mean"
    assert (tmp_path / "zero_shot_aggregation/default/t.md").exists()
    readme = build_readme(tmp_path).read_text()
    line = next(x for x in readme.splitlines() if x.startswith("| mean | val | t2v"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "35.4"  # the paper's mean T2V R@1 on MSR-VTT validation
    assert cells[6] == "12.5" and cells[-1] == "30.0"  # ours on default, then the real-data run
    assert "reading default" in readme
    # the paper has "single" only on its validation split: no paper figure beside our test row
    line = next(
        x for x in readme.splitlines() if x.startswith("| single | test-all-captions | t2v")
    )
    assert [c.strip() for c in line.strip("|").split("|")][3:6] == ["", "", ""]


def test_rows_need_setting_split_direction(tmp_path):
    params = load_params("failure_analysis", ROOT / "parameters/failure_analysis/smoke.yaml")
    out = StudyOutputs("failure_analysis", params, tmp_path)
    with pytest.raises(ValueError, match="split"):
        out.add_rows([{"setting": "mean", "direction": "t2v"}])


def test_atomic_writes_replace_whole_files_with_normal_permissions(tmp_path):
    import os
    import stat

    from vrlib.io import atomic_write_text, read_json, write_json

    path = write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert read_json(path) == {"x": 1}
    atomic_write_text(path, '{"x": 2}')
    assert read_json(path) == {"x": 2} and os.listdir(path.parent) == [
        "b.json"
    ]  # no temp files left
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    path.write_text("{broken")
    with pytest.raises(ValueError, match="b.json: not valid JSON"):
        read_json(path)


def _fake_run(tmp_path, rows, protocol):
    params = load_params(
        "zero_shot_aggregation", ROOT / "parameters/zero_shot_aggregation/default.yaml"
    )
    out = StudyOutputs("zero_shot_aggregation", params, tmp_path / "zero_shot_aggregation/default")
    metrics = {"R@1": 20.0, "R@5": 40.0, "R@10": 50.0, "MdR": 4.0, "MnR": 9.0, "StdR": 3.0, "n": 9}
    for setting, split in rows:
        out.add_rows(rows_from_metrics(setting, split, {"t2v": metrics, "v2t": metrics}))
    out.write_metrics(protocol=protocol)
    return build_readme(tmp_path).read_text()


def _cells(readme, prefix):
    line = next(x for x in readme.splitlines() if x.startswith(prefix))
    return [c.strip() for c in line.strip("|").split("|")]


def test_paper_rows_say_when_the_protocol_differs(tmp_path):
    from vrlib.metrics import protocol

    rows = [
        ("mean", "test-all-captions"),
        ("mean", "test-one-caption"),
        ("kmeans-k4-max_sim", "val"),
    ]
    readme = _fake_run(tmp_path, rows, protocol())  # v2t over all captions (the default)
    # the paper's V2T on MSR-VTT Full ranks caption groups (its notebook): marked, explained
    assert _cells(readme, "| mean | test-all-captions | v2t")[3] == "40.3 [2]"
    assert (
        "[2] not like with like, metric protocol: v2t: paper caption_groups, ours all_captions"
        in readme
    )
    # its T2V on Full took torch.median (the lower middle; tensor_text_to_video_metrics): marked
    assert _cells(readme, "| mean | test-all-captions | t2v")[3] == "21.4 [1]"
    assert (
        "[1] not like with like, metric protocol: median: paper lower_middle, ours mean_of_middle"
        in readme
    )
    # V2T with one caption per video is the same under either V2T protocol: unmarked
    assert _cells(readme, "| mean | test-one-caption | v2t")[3] == "27.2"
    # the k-means figures were produced by max over centroids: they sit on our max_sim rows
    assert _cells(readme, "| kmeans-k4-max_sim | val | t2v")[3] == "33.7"
    assert "scores a video by its best centroid (max_sim)" in readme

    readme = _fake_run(tmp_path, rows, protocol(v2t="caption_groups"))
    assert _cells(readme, "| mean | test-all-captions | v2t")[3] == "40.3"
    readme = _fake_run(tmp_path, rows, protocol(median="lower_middle"))
    assert _cells(readme, "| mean | test-all-captions | t2v")[3] == "21.4"


def test_paper_protocols_use_metric_option_names():
    from vrlib import metrics
    from vrlib.papers import PAPER_FIGURES, protocol_differences

    valid = {"multi": metrics.MULTI, "v2t": (*metrics.V2T, "any"), "median": metrics.MEDIANS}
    for rows in PAPER_FIGURES.values():
        for row in rows:
            assert row["protocol"], row
            for key, value in row["protocol"].items():
                assert value in valid[key], (row["source"], key, value)
    row = next(
        r for r in PAPER_FIGURES["zero_shot_aggregation"] if r["setting"] == "kmeans-k6-max_sim"
    )
    assert row["MdR"] == 3.5 and row["protocol"]["median"] == "mean_of_middle"
    assert protocol_differences(row, metrics.protocol(median="lower_middle")) == [
        "median: paper mean_of_middle, ours lower_middle"
    ]
    assert not any(
        r["setting"].endswith("min_rank") for r in PAPER_FIGURES["zero_shot_aggregation"]
    )


def test_metrics_record_the_inputs_data_and_encoder_fingerprints(tmp_path, smoke_world):
    """metrics.json names the world (hash of its annotation files) and the encoder's weights."""
    from vrlib.studies.inputs import data_fingerprint, load_encoder

    params = load_params("failure_analysis", ROOT / "parameters/failure_analysis/smoke.yaml")
    encoder = load_encoder(params.encoder, params.data)
    out = StudyOutputs("failure_analysis", params, tmp_path)
    doc = json.loads(out.write_metrics(protocol={}).read_text())
    assert doc["inputs"]["data_sha256"] == data_fingerprint(smoke_world)
    assert doc["inputs"]["encoder_fingerprint"] == encoder.fingerprint

    copy = tmp_path / "world"
    shutil.copytree(smoke_world, copy, ignore=shutil.ignore_patterns("*.mp4", "images"))
    before = data_fingerprint(copy)
    (copy / "splits.json").write_text((copy / "splits.json").read_text() + " ")
    assert data_fingerprint(copy) != before
