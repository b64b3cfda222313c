"""Bad annotation files fail naming the file and line; Excel's BOM is accepted (issue 10, §1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from vrlib.data.datasets import DatasetError, load_dataset

FIXTURES = Path(__file__).parent / "data" / "datasets"


@pytest.fixture()
def folder(tmp_path: Path, bikes_mp4: Path) -> Path:
    """A folder dataset with three videos and no annotation file yet."""
    root = tmp_path / "mine"
    (root / "videos").mkdir(parents=True)
    for name in ("a", "b", "c"):
        os.symlink(bikes_mp4, root / "videos" / f"{name}.mp4")
    return root


def _load(root: Path, name: str, text: str | bytes):
    path = root / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return load_dataset("folder", root, "all", annotations=name)


@pytest.mark.parametrize("name", ["caps.csv", "caps.jsonl"])
def test_non_utf8_names_file_line_and_encoding(folder: Path, name: str) -> None:
    if name.endswith(".csv"):
        data = "video_id,caption\na,a dog\nb,un caf\xe9 noir\n".encode("latin-1")
    else:
        data = '{"video_id": "a", "caption": "x"}\n{"video_id": "b", "caption": "caf\xe9"}\n'
        data = data.encode("latin-1")
    with pytest.raises(DatasetError, match=rf"{name}:3?2?: not UTF-8.*expected a UTF-8") as err:
        _load(folder, name, data)
    line = 3 if name.endswith(".csv") else 2
    assert f"{folder / name}:{line}:" in str(err.value)


def test_non_utf8_msrvtt_json_names_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "msrvtt"
    shutil.copytree(FIXTURES / "msrvtt", root)
    path = root / "MSRVTT_data.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    text = text.replace('"caption": "', '"caption": "caf\xe9 ', 1)
    path.write_bytes(text.encode("latin-1"))
    line = text[: text.index("caf\xe9")].count("\n") + 1
    with pytest.raises(ValueError, match="not UTF-8") as err:
        load_dataset("msrvtt", root, "full", on_error="skip")
    assert f"{path}:{line}:" in str(err.value) and "UTF-8" in str(err.value)


def test_unterminated_quote_names_file_and_line(folder: Path) -> None:
    text = 'video_id,caption\na,a dog runs\nb,"a cat sleeps\nc,a bird sings\n'
    with pytest.raises(DatasetError, match=r"caps\.csv:3: a field runs over lines 3-4") as err:
        _load(folder, "caps.csv", text)
    assert "unterminated quote" in str(err.value)


def test_quoted_comma_and_crlf_still_read(folder: Path) -> None:
    ds = _load(folder, "caps.csv", 'video_id,caption\r\na,"a dog, running"\r\nb,a cat\r\n')
    assert [c.text for c in ds.captions] == ["a dog, running", "a cat"]


def test_utf8_bom_from_excel_is_accepted(folder: Path) -> None:
    ds = _load(folder, "caps.csv", "\ufeffvideo_id,caption\na,a dog\nb,a caf\u00e9\n")
    assert [v.video_id for v in ds.videos] == ["a", "b"]
    assert ds.captions[1].text == "a caf\u00e9"
    ds = _load(folder, "caps.jsonl", '\ufeff{"video_id": "c", "caption": "x"}\n')
    assert [v.video_id for v in ds.videos] == ["c"]


def test_duplicate_row_is_refused_naming_both_lines(folder: Path) -> None:
    text = "video_id,caption\na,a dog\nb,a cat\na,a dog\n"
    with pytest.raises(DatasetError, match=r"caps\.csv:4: duplicate row.*first at .*caps\.csv:2"):
        _load(folder, "caps.csv", text)


def test_two_ids_for_one_file_are_refused(folder: Path) -> None:
    with pytest.raises(DatasetError, match=r"video ids 'a' and 'a\.mp4' both name .*a\.mp4"):
        _load(folder, "caps.csv", "video_id,caption\na,a dog\na.mp4,a dog runs\n")


@pytest.mark.parametrize("text", ["video_id,caption\n", "\ufeffvideo_id,caption\n\n"])
def test_header_only_csv_names_dataset_and_file(folder: Path, text: str) -> None:
    with pytest.raises(
        DatasetError, match=r"dataset 'folder' split 'all': .*caps\.csv has no caption rows"
    ):
        _load(folder, "caps.csv", text)
