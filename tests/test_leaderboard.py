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


def _world_like(n_videos=6, per_video=2, seed=0):
    """A study's test split as its card sees it: each caption's video, and a (C, V) similarity."""
    import numpy as np

    rng = np.random.default_rng(seed)
    c2v = np.repeat(np.arange(n_videos), per_video)
    return c2v, rng.standard_normal((len(c2v), n_videos)).astype(np.float32)


def _card(sim, c2v, setting, root, seed=0, sampling=None):
    from vrlib.evaluation.study_cards import study_card

    return study_card(
        sim, c2v, dataset="synthetic", split="test", root=root, study="temporal_ablation",
        setting=setting, seed=seed, sampling=sampling or {}, intervals=0,
    )  # fmt: skip


def test_a_study_card_scores_the_head_like_any_card_and_says_its_sampling(tmp_path):
    import numpy as np

    from vrlib.metrics import ranks

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "test.json").write_text("[]")
    c2v, sim = _world_like()
    card = _card(sim, c2v, "tdb", tmp_path, seed=3, sampling={"strategy": "uniform", "n": 12})
    t2v = ranks(sim, c2v, direction="t2v")  # brute force beside the card
    assert card.metrics["t2v"]["R@1"] == pytest.approx(100 * np.mean(t2v == 1))
    assert card.model["name"] == "temporal_ablation:tdb" and card.model["seed"] == 3
    assert card.protocol["sampling"] == {"strategy": "uniform", "n": 12}
    assert card.protocol["aggregation"]["method"] == "the tdb head"
    assert card.dataset["queries"] == 12 and card.dataset["videos_evaluated"] == 6
    assert list(card.dataset["annotations"]) == ["annotations/test.json"]
    assert ":" not in card.stem()  # a file name on every system


def test_study_cards_refuse_two_cards_of_one_head_and_build_the_reports_leaderboard(tmp_path):
    from vrlib.evaluation.study_cards import write_study_cards
    from vrlib.rollup import build_study_leaderboard

    assert build_study_leaderboard(tmp_path) is None  # no default run wrote cards
    c2v, sim = _world_like()
    cards = [_card(sim * s, c2v, name, tmp_path) for name, s in (("meanP", 1.0), ("tdb", -1.0))]
    with pytest.raises(ValueError, match="meanP given more than once"):
        write_study_cards([cards[0], cards[0]], tmp_path / "x")
    write_study_cards(cards, tmp_path / "temporal_ablation" / "default" / "cards")
    write_study_cards(cards[:1], tmp_path / "temporal_ablation" / "smoke" / "cards")  # not listed
    out = build_study_leaderboard(tmp_path)
    text = out.read_text()
    assert "--leaderboard reports/temporal_ablation/default/cards`" in text
    section = text.split("## synthetic test — `clip4clip`")[1]
    assert section.count("| temporal_ablation:meanP |") == 1
    assert section.count("| temporal_ablation:tdb |") == 1


def test_the_leaderboard_says_each_rows_frames(tmp_path):
    from vrlib.evaluation.leaderboard import build_leaderboard
    from vrlib.evaluation.study_cards import write_study_cards

    c2v, sim = _world_like()
    card = _card(sim, c2v, "tdb", tmp_path, sampling={"strategy": "uniform", "n": 12, "x": None})
    write_study_cards([card], tmp_path / "cards")
    assert "| temporal_ablation:tdb |  | uniform, n 12 |" in build_leaderboard(tmp_path / "cards")
    card.model.update(pretrained="expert", encoder={"name": "vrlib-tiny-vit32"})
    write_study_cards([card], tmp_path / "cards")
    text = build_leaderboard(tmp_path / "cards")
    assert "| temporal_ablation:tdb | vrlib-tiny-vit32 expert | uniform, n 12 |" in text
