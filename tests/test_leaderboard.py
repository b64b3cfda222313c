"""The leaderboard is rebuilt from a folder of cards, published figures beside and marked."""

from __future__ import annotations

import json

import pytest
from test_eval import brought_files

from vrlib.cli import main
from vrlib.evaluation import evaluate_similarity
from vrlib.evaluation.leaderboard import build_leaderboard


def test_leaderboard_groups_cards_and_marks_published_protocols(tmp_path):
    brought_files(tmp_path)
    files = [tmp_path / n for n in ("S.npy", "text_ids.txt", "video_ids.txt")]
    cards = tmp_path / "cards"
    runs = [
        ("a", "full", "frozen"),
        ("b", "full", "frozen"),
        ("c", "full", "clip4clip"),
        ("d", "1k-A", "frozen"),
    ]
    for name, split, preset in runs:
        card = evaluate_similarity(
            *files, protocol=preset, name=name, dataset="msrvtt", split=split, intervals=0
        )
        card.save(cards)
    text = build_leaderboard(cards)
    assert "## msrvtt full — `frozen`" in text and "## msrvtt full — `clip4clip`" in text
    assert "## msrvtt 1k-A — `frozen`" in text
    frozen_full = text.split("## msrvtt full — `frozen`")[1].split("##")[0]
    assert "| a |" in frozen_full and "| b |" in frozen_full and "| c |" not in frozen_full
    # Portillo-Quintero's all-captions V2T ranks caption groups: not the frozen preset's rule
    assert "≠ v2t: paper caption_groups, ours all_captions" in frozen_full
    clip4clip_full = text.split("## msrvtt full — `clip4clip`")[1].split("##")[0]
    assert "≠ v2t" not in clip4clip_full
    one_k = text.split("## msrvtt 1k-A — `frozen`")[1]
    assert "Frozen in Time" in one_k and "CLIP2Video" in one_k and "| same |" in one_k


def test_leaderboard_command_writes_the_file_and_names_a_stray_json(tmp_path, capsys):
    brought_files(tmp_path)
    files = [tmp_path / n for n in ("S.npy", "text_ids.txt", "video_ids.txt")]
    evaluate_similarity(*files, intervals=0).save(tmp_path / "cards")
    out = tmp_path / "leaderboard.md"
    assert main(["eval", "--leaderboard", str(tmp_path / "cards"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Leaderboard") and "custom test" in out.read_text()
    (tmp_path / "cards" / "other.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="other.json"):
        build_leaderboard(tmp_path / "cards")
