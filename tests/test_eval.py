"""``vrlib eval``: cards on the embedded world and on every benchmark's real-format fixture,
brought embeddings scored like the model that made them, ``--compare`` refusing mismatches, and
missing videos an error naming them or a counted exclusion."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.cli import main
from vrlib.data.datasets import DATASETS, MissingVideoError
from vrlib.evaluation import (
    BENCHMARKS,
    ProtocolMismatchError,
    ResultCard,
    compare_cards,
    evaluate_embeddings,
    evaluate_model,
    evaluate_similarity,
)
from vrlib.evaluation.benchmarks import load_benchmark

FIXTURES = Path(__file__).parent / "data" / "datasets"
MSVD_CAPTIONS = {
    "T3st-vid_A_30_42": [["a", "woman", "rides", "a", "horse"], ["horse", "riding"]],
    "zz9_0_5": [["two", "men", "fight"]],
}


def benchmark_root(
    tmp_path: Path, dataset: str, split: str, video: Path | list[Path], skip: int = 0
) -> Path:
    """The committed annotations of ``dataset`` with ``video`` linked wherever the split's layout
    expects a video (all but the last ``skip`` of them; a list of videos is used in turn)."""
    videos_to_link = video if isinstance(video, list) else [video]
    root = tmp_path / dataset
    shutil.copytree(FIXTURES / dataset, root)
    if dataset == "msvd":
        (root / "raw-captions.pkl").write_bytes(pickle.dumps(MSVD_CAPTIONS))
    bench = BENCHMARKS[dataset][split]
    opts = {k: next(n for n in v if (root / n).is_file()) for k, v in bench.reader_options.items()}
    videos, _ = DATASETS.get(dataset)(root, bench.reader_split, **opts)
    paths = list(dict.fromkeys(v.path for v in videos))
    for i, path in enumerate(paths[: len(paths) - skip]):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.symlink(videos_to_link[i % len(videos_to_link)], path)
    return root


def run_cli(*argv: str) -> int:
    return main(["eval", *map(str, argv)])


@pytest.mark.parametrize(
    "dataset,split", [(d, s) for d, splits in BENCHMARKS.items() for s in splits]
)
def test_eval_writes_a_card_on_each_real_format_fixture(
    tmp_path, bikes_mp4, capsys, dataset, split
):
    root = benchmark_root(tmp_path, dataset, split, bikes_mp4)
    out = tmp_path / "cards"
    argv = ["--model", "vrlib-tiny", "--pretrained", "random", "--dataset", dataset, "--root", root]
    argv += ["--split", split, "--protocol", "frozen", "--out", out, "--intervals", 20, "--json"]
    argv += ["--cache-dir", tmp_path / "cache"]
    assert run_cli(*argv) == 0
    card = ResultCard.from_json(capsys.readouterr().out)
    saved = ResultCard.load(out / f"{card.stem()}.json")
    assert saved.metrics == card.metrics and (out / f"{card.stem()}.md").is_file()
    ds, _ = load_benchmark(dataset, root, split)
    assert card.dataset["videos_evaluated"] == len(ds.videos) and card.dataset["queries"] == len(
        ds.captions
    )
    assert card.dataset["annotations"] and card.model["fingerprint"]
    assert card.protocol["split"] == split and card.protocol["preset"] == "frozen"
    # every fixture video is the same file: whole files score alike, so each caption ties its
    # video with all the others and its expected rank (random tie-break) is the middle one
    if all(v.start is None for v in ds.videos):
        assert card.metrics["t2v"]["MnR"] == pytest.approx((1 + len(ds.videos)) / 2)
    pinned = BENCHMARKS[dataset][split].videos
    assert card.dataset["complete"] is (pinned is None)
    assert bool(card.warnings) is (pinned is not None)


def test_missing_video_is_an_error_naming_it_or_a_counted_exclusion(tmp_path, bikes_mp4, capsys):
    root = benchmark_root(tmp_path, "msrvtt", "1k-A", bikes_mp4, skip=1)
    argv = [
        "--model",
        "vrlib-tiny",
        "--pretrained",
        "random",
        "--dataset",
        "msrvtt",
        "--root",
        root,
    ]
    argv += [
        "--split",
        "1k-A",
        "--out",
        tmp_path / "cards",
        "--intervals",
        0,
        "--cache-dir",
        tmp_path / "c",
    ]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "1 of" in err and "video" in err and "--allow-missing" in err
    with pytest.raises(MissingVideoError, match="file not found"):
        load_benchmark("msrvtt", root, "1k-A")
    assert run_cli(*argv, "--allow-missing", "--json") == 0
    card = ResultCard.from_json(capsys.readouterr().out)
    assert card.dataset["excluded"] == 1 and len(card.dataset["excluded_videos"]) == 1
    assert card.dataset["videos_evaluated"] == card.dataset["videos_listed"] - 1
    assert "partial benchmark" in card.warnings[0] and "1 excluded" in card.warnings[0]


def test_bad_split_and_preset_name_the_valid_ones(tmp_path, capsys):
    assert (
        run_cli(
            "--model", "vrlib-tiny", "--dataset", "msrvtt", "--root", tmp_path, "--split", "test"
        )
        == 2
    )
    assert "1k-A, full" in capsys.readouterr().err
    sim = tmp_path / "s.npy"
    np.save(sim, np.eye(2))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    argv = [
        "--similarity",
        sim,
        "--text-ids",
        tmp_path / "ids.txt",
        "--video-ids",
        tmp_path / "ids.txt",
    ]
    assert run_cli(*argv, "--protocol", "clip5clip", "--out", tmp_path) == 2
    assert "clip4clip, frozen, clip_benchmark, portillo, mmeb" in capsys.readouterr().err


def brought_files(tmp_path: Path, seed: int = 0):
    rng = np.random.default_rng(seed)
    videos = rng.normal(size=(12, 8)).astype(np.float32)
    labels = np.repeat(np.arange(12), 3)
    texts = (videos[labels] + rng.normal(scale=1.5, size=(36, 8))).astype(np.float32)
    ids = [f"vid{i}" for i in range(12)]
    np.save(tmp_path / "V.npy", videos)
    np.save(tmp_path / "T.npy", texts)
    (tmp_path / "video_ids.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "text_ids.txt").write_text("\n".join(ids[i] for i in labels) + "\n")
    np.save(tmp_path / "S.npy", texts @ videos.T)
    return texts @ videos.T, labels


def test_brought_embeddings_and_similarity_score_like_the_metrics(tmp_path):
    from vrlib.metrics import evaluate_protocol

    sim, labels = brought_files(tmp_path)
    files = [tmp_path / n for n in ("V.npy", "T.npy", "video_ids.txt", "text_ids.txt")]
    for preset in ("clip4clip", "frozen", "portillo", "mmeb", "clip_benchmark"):
        want = evaluate_protocol(sim, labels, preset)
        by_emb = evaluate_embeddings(*files, protocol=preset, intervals=0)
        by_sim = evaluate_similarity(
            files[0].with_name("S.npy"), files[3], files[2], protocol=preset, intervals=0
        )
        for card in (by_emb, by_sim):
            for d in ("t2v", "v2t"):
                assert card.metrics[d] == pytest.approx(want[d], rel=1e-5), (preset, d)
    with pytest.raises(ValueError, match="rows for"):
        evaluate_embeddings(files[1], files[0], files[2], files[3])


def test_compare_refuses_cards_whose_protocols_differ(tmp_path, capsys):
    brought_files(tmp_path)
    common = ["--video-embeddings", tmp_path / "V.npy", "--text-embeddings", tmp_path / "T.npy"]
    common += ["--video-ids", tmp_path / "video_ids.txt", "--text-ids", tmp_path / "text_ids.txt"]
    common += ["--intervals", 0]
    for name, preset in (("a", "clip4clip"), ("b", "clip4clip"), ("c", "frozen")):
        assert run_cli(*common, "--name", name, "--protocol", preset, "--out", tmp_path / name) == 0
    capsys.readouterr()
    cards = {n: next((tmp_path / n).glob("*.json")) for n in "abc"}
    assert run_cli("--compare", cards["a"], cards["b"]) == 0
    table = capsys.readouterr().out
    assert "| custom-test-a-clip4clip |" in table and "| custom-test-b-clip4clip |" in table
    assert run_cli("--compare", cards["a"], cards["c"]) == 2
    err = capsys.readouterr().err
    assert (
        "protocol.preset: clip4clip vs frozen" in err
        and "protocol.v2t: caption_groups vs all_captions" in err
    )
    with pytest.raises(ProtocolMismatchError, match="median"):
        compare_cards([ResultCard.load(cards["a"]), ResultCard.load(cards["c"])])


def test_dsl_is_flagged_and_never_the_headline(tmp_path):
    sim, labels = brought_files(tmp_path)
    files = [tmp_path / n for n in ("V.npy", "T.npy", "video_ids.txt", "text_ids.txt")]
    plain = evaluate_embeddings(*files, intervals=0)
    card = evaluate_embeddings(*files, dsl=True, intervals=0)
    assert card.metrics == plain.metrics and card.dsl_metrics is not None
    assert card.protocol["dsl"] is True and "not the headline" in card.to_markdown()
    assert compare_cards([plain, plain]) and pytest.raises(
        ProtocolMismatchError, compare_cards, [plain, card]
    )


class ColourModel:
    """The README's example of a user's own model: a video is its mean colour, a caption the
    colour words it names (20 lines is enough to be scored like any other model)."""

    name = "colour-model"
    words = ("red", "green", "blue")

    def encode_videos(self, frames: list[np.ndarray]) -> np.ndarray:
        rgb = np.stack([f.reshape(-1, 3).mean(0) for f in frames])  # (N, 3)
        return rgb / np.linalg.norm(rgb, axis=1, keepdims=True)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.array([[w in t for w in self.words] for t in texts], dtype=np.float32) + 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_users_video_text_model_is_scored_like_any_other(tmp_path, bikes_mp4):
    from vrlib.evaluation import VideoTextModel

    model = ColourModel()
    assert isinstance(model, VideoTextModel)
    root = benchmark_root(tmp_path, "msrvtt", "1k-A", bikes_mp4)
    card = evaluate_model(model, None, "msrvtt", root, "1k-A", "mmeb", intervals=0, progress=False)
    assert (
        card.model["kind"] == "video-text model"
        and card.protocol["aggregation"]["method"] == "the model's own"
    )
    assert card.metrics["t2v"]["n"] == card.dataset["queries"]


def test_eval_on_the_smoke_world_matches_its_own_embeddings(smoke_expert, tmp_path, capsys):
    """The card of the expert on the embedded world equals the same preset applied to the
    frame features and captions extracted by hand (mean pooled, dot products)."""
    from vrlib.aggregate import aggregate
    from vrlib.data.datasets import load_dataset
    from vrlib.data.sampling import SamplingConfig
    from vrlib.encoders import load_clip
    from vrlib.features import extract_frame_features, extract_text_features
    from vrlib.metrics import PRESETS, evaluate_protocol

    out = tmp_path / "cards"
    argv = ["--model", "vrlib-tiny", "--pretrained", "expert", "--world-preset", "smoke"]
    argv += [
        "--dataset",
        "synthetic",
        "--split",
        "test",
        "--protocol",
        "clip4clip",
        "--out",
        out,
        "--json",
    ]
    assert run_cli(*argv, "--intervals", 200) == 0
    card = ResultCard.from_json(capsys.readouterr().out)
    ds = load_dataset("synthetic", smoke_expert.parent.parent / "worlds" / "smoke-seed0", "test")
    enc = load_clip("vrlib-tiny", str(smoke_expert))
    feats = extract_frame_features(
        ds, enc, SamplingConfig(**PRESETS["clip4clip"].sampling), None, progress=False
    )
    videos = aggregate(feats.features, "mean")
    texts = extract_text_features([c.text for c in ds.captions], enc, progress=False)
    want = evaluate_protocol((texts @ videos.T).numpy(), ds.caption_to_video, "clip4clip")
    for d in ("t2v", "v2t"):
        got = {k: v for k, v in card.metrics[d].items() if k != "CI"}
        assert got == pytest.approx(want[d], rel=1e-4)
        for metric, (low, high) in card.metrics[d]["CI"].items():
            assert low <= card.metrics[d][metric] <= high
    assert card.model["source"].endswith("vrlib-tiny-smoke-seed0.pt")
    assert json.loads(card.to_json())["protocol"]["median"] == {
        "t2v": "lower_middle",
        "v2t": "mean_of_middle",
    }
    assert torch.is_tensor(videos)
