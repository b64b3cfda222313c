"""vrlib.captions: captioners, decoding, quality scores, frame labels with CLIPScore, selection rules."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.captions import Decoding, WordVocab, WorldCaptioner
from vrlib.captions.labels import (
    GroundTruthDescriber,
    caption_videos,
    clip_score,
    stack,
)
from vrlib.captions.nets import BlipNet, CaptionNet, NetConfig, generate
from vrlib.captions.quality import (
    attribute_precision,
    corpus_bleu,
    majority_caption,
    stated_attributes,
)
from vrlib.captions.selection import SELECTION_RULES, draw, select

# ----------------------------------------------------------------------------- words


def test_vocab_round_trip_and_unknown_words():
    vocab = WordVocab.build(["a red circle, on the left", "a blue square"])
    ids = vocab.encode(["a red circle, on the left", "a green square"], length=10)
    assert ids.shape == (2, 10)
    assert ids[0, 0] == WordVocab.BOS and WordVocab.EOS in ids[0].tolist()
    assert vocab.decode(ids[0, 1:].tolist()) == "a red circle, on the left"
    assert WordVocab.UNK in ids[1].tolist()  # "green" was never seen
    assert vocab.encode(["a red circle"], length=3)[0].tolist() == [WordVocab.BOS] + [
        vocab.stoi[w] for w in ("a", "red")
    ]  # truncated


# ----------------------------------------------------------------------------- decoding


class _TableNet(CaptionNet):
    """A language model whose next-word distribution depends only on the previous word."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table  # (V, V) log-probabilities, row = previous word

    def context(self, inputs):
        return inputs

    def logits(self, context, tokens):
        return self.table[tokens]  # (B, L, V)


def _trap_table() -> torch.Tensor:
    """Greedy takes word 4 (p=0.6) and is then stuck; beam search finds 5 -> <eos> (0.4 * 0.9)."""
    v = 6
    p = torch.full((v, v), 1e-6)
    p[WordVocab.BOS, 4], p[WordVocab.BOS, 5] = 0.6, 0.4
    p[4, 4], p[4, 5], p[4, WordVocab.EOS] = 0.34, 0.33, 0.33
    p[5, WordVocab.EOS], p[5, 4] = 0.9, 0.1
    p[4:, :4] = 1e-6
    p[4, WordVocab.EOS], p[5, WordVocab.EOS] = 0.33, 0.9
    return (p / p.sum(1, keepdim=True)).log()


def _brute_force_best(table: torch.Tensor, max_length: int, banned) -> tuple[list[int], float]:
    words = [w for w in range(table.shape[0]) if w not in banned and w != WordVocab.EOS]
    best, best_score = None, -math.inf
    for n in range(max_length + 1):
        for seq in itertools.product(words, repeat=n):
            path = [WordVocab.BOS, *seq, WordVocab.EOS]
            score = sum(table[a, b].item() for a, b in itertools.pairwise(path))
            if score > best_score:
                best, best_score = list(seq), score
    return best, best_score


def test_beam_search_finds_the_most_likely_caption_that_greedy_misses():
    net, banned = _TableNet(_trap_table()), (0, 1, 3)
    ctx = torch.zeros(2, 1)
    greedy = generate(net, ctx, Decoding("greedy", max_length=4), 1, 2, banned)
    beam = generate(net, ctx, Decoding("beam", 4, 4, length_penalty=0.0), 1, 2, banned)
    best, _ = _brute_force_best(_trap_table(), 4, banned)
    assert beam == [best, best] == [[5], [5]]
    assert greedy[0][0] == 4  # the locally best first word


def test_beam_of_one_is_greedy():
    torch.manual_seed(0)
    table = torch.randn(9, 9).log_softmax(-1)
    net, ctx = _TableNet(table), torch.zeros(3, 1)
    banned = (0, 1, 3)
    assert generate(net, ctx, Decoding("beam", 1, 6), 1, 2, banned) == generate(
        net, ctx, Decoding("greedy", 1, 6), 1, 2, banned
    )


def _tiny_blip(seed: int = 0) -> WorldCaptioner:
    vocab = WordVocab(["a", "red", "circle", "on", "the", "left"])
    cfg = NetConfig(
        vocab_size=len(vocab), width=32, layers=1, heads=2, image_size=16, vision_layers=1
    )
    torch.manual_seed(seed)
    return WorldCaptioner("blip-tiny", BlipNet(cfg), vocab, Decoding("beam", 2, 5))


def test_captioner_shapes_determinism_and_batching():
    frames = np.random.default_rng(0).integers(0, 256, (7, 24, 20, 3), dtype=np.uint8)
    cap = _tiny_blip()
    out = cap.caption(frames, batch_size=3)
    assert len(out) == 7 and all(isinstance(c, str) for c in out)
    # Same weights, same batches: same text. (Other batch sizes may flip near-ties of an untrained
    # model through float rounding, so they are not compared.)
    assert out == cap.caption(frames, batch_size=3) == _tiny_blip().caption(frames, batch_size=3)
    assert cap.fingerprint == _tiny_blip().fingerprint != _tiny_blip(seed=1).fingerprint
    assert cap.caption(frames[:0]) == []
    with pytest.raises(ValueError, match="uint8"):
        cap.caption(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        cap.caption(frames[0])


def test_decoding_settings_are_checked():
    with pytest.raises(ValueError, match="valid: greedy, beam"):
        Decoding("sample")
    with pytest.raises(ValueError, match="beam_size"):
        Decoding("beam", beam_size=0)


def test_unknown_captioner_lists_the_valid_ones():
    from vrlib.captions import load_captioner

    with pytest.raises(KeyError, match="blip-tiny.*clipcap-tiny"):
        load_captioner("blip-large")


# ----------------------------------------------------------------------------- quality


def test_stated_attributes_reads_backgrounds_before_colours():
    caption = "a small red circle on the left and a white star on a white background"
    assert stated_attributes(caption) == [
        ("size", "small"),
        ("colour", "red"),
        ("shape", "circle"),
        ("position", "left"),
        ("colour", "white"),
        ("shape", "star"),
        ("background", "white"),
    ]
    assert stated_attributes("on a checkerboard, a ring in the middle") == [
        ("background", "checkerboard"),
        ("shape", "ring"),
        ("position", "centre"),
    ]


def test_attribute_precision_counts_true_claims():
    scene = {
        "background": "gray",
        "objects": [{"shape": "circle", "colour": "red", "size": "small", "position": "left"}],
    }
    out = attribute_precision(["a small red square on the left on a white background"], [scene])
    assert out["precision"] == pytest.approx(3 / 5)  # square and white background are false
    assert out["precision_shape"] == 0 and out["precision_colour"] == 1
    assert out["recall"] == pytest.approx(3 / 5)  # gray and circle never said
    with pytest.raises(ValueError, match="1 captions but 2 scenes"):
        attribute_precision(["x"], [scene, scene])


def test_majority_caption_states_the_commonest_values():
    obj = {"shape": "star", "colour": "blue", "size": "large", "position": "top"}
    scenes = [{"background": "stripes", "objects": [obj]}] * 2 + [
        {"background": "gray", "objects": [{**obj, "shape": "ring"}]}
    ]
    claims = set(stated_attributes(majority_caption(scenes)))
    assert claims == {
        ("shape", "star"),
        ("colour", "blue"),
        ("size", "large"),
        ("position", "top"),
        ("background", "stripes"),
    }


def test_bleu_matches_a_hand_computation():
    assert corpus_bleu(["a red circle on the left"], [["a red circle on the left"]]) == 1.0
    assert corpus_bleu(["a b c"], [["d e f g"]]) == 0.0
    # hyp 7 words, ref 8 ("is" missing): p1 = 7/7, p2 = 5/6 (not "circle on"),
    # p3 = 3/5 ("a red circle", "on the left", "the left side"), p4 = 1/4, BP = exp(1 - 8/7)
    hyp, ref = "a red circle on the left side", "a red circle is on the left side"
    expected = math.exp(1 - 8 / 7) * (1 * 5 / 6 * 3 / 5 * 1 / 4) ** 0.25
    assert corpus_bleu([hyp], [[ref]]) == pytest.approx(expected)
    # the closest reference length sets the brevity penalty; clipping uses the best reference
    assert corpus_bleu(["the the the the"], [["the cat", "the the the the"]]) == 1.0


# ----------------------------------------------------------------------------- CLIPScore


def test_clip_score_equals_a_hand_computation():
    images = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    texts = torch.tensor([[0.6, 0.8], [0.0, -1.0], [1.0, 1.0]])
    assert clip_score(images, texts).tolist() == pytest.approx([2.5 * 0.6, 0.0, 2.5])
    with pytest.raises(ValueError, match="shapes differ"):
        clip_score(images, texts[:2])


# ----------------------------------------------------------------------------- selection


def _candidates():
    from vrlib.captions.labels import Candidates

    scores = np.array(
        [  # one video, I = 2 captioners, M = 4 frames
            [[0.1, 0.9, 0.5, 0.9], [0.2, 0.3, 0.8, 0.1]],
        ],
        dtype=np.float32,
    )
    captions = [[[f"c{f}" for f in range(4)], [f"b{f}" for f in range(4)]]]
    return Candidates(["c", "b"], ["v0"], captions, scores)


@pytest.mark.parametrize(
    ("rule", "k", "expected"),
    [
        ("rand_m", 1, ["c0", "c1", "c2", "c3", "b0", "b1", "b2", "b3"]),
        ("middle_1", 1, ["c2", "b2"]),
        ("top_1", 1, ["c1", "b2"]),  # tie 0.9 / 0.9: the earlier frame
        ("rand_top_k", 2, ["c1", "c3", "b2", "b1"]),  # C+B: union of each captioner's top 2
        ("rand_top_k", 3, ["c1", "c3", "c2", "b2", "b1", "b0"]),
        ("pooled_top_k", 2, ["c1", "c3"]),  # one captioner takes both places
        ("pooled_top_k", 3, ["c1", "c3", "b2"]),
    ],
)
def test_selection_rules_pick_the_right_captions(rule, k, expected):
    assert select(_candidates(), rule, k).captions == [expected]


def test_selection_rules_on_one_captioner_and_bad_k():
    from vrlib.captions.labels import Candidates

    c = _candidates()
    one = Candidates(["c"], c.video_ids, [[c.captions[0][0]]], c.scores[:, :1])
    assert select(one, "rand_top_k", 2).captions == [["c1", "c3"]]
    assert select(one, "top_1").captions == [["c1"]]
    with pytest.raises(ValueError, match="k must be in 1..4"):
        select(one, "rand_top_k", 5)
    with pytest.raises(KeyError, match="valid: middle_1, pooled_top_k"):
        select(one, "top_5")
    assert SELECTION_RULES.names() == ["middle_1", "pooled_top_k", "rand_m", "rand_top_k", "top_1"]


def test_draw_is_one_caption_per_video_seeded_by_epoch():
    from vrlib.captions.selection import Selection

    sel = Selection("rand_m", 1, ["v0", "v1"], [np.arange(3)] * 2, [["a", "b", "c"], ["d"]])
    first = draw(sel, epoch=0, seed=3)
    assert first == draw(sel, epoch=0, seed=3) and first[1] == "d"
    seen = {draw(sel, epoch=e, seed=3)[0] for e in range(30)}
    assert seen == {"a", "b", "c"}  # a new draw each epoch covers the set


# ----------------------------------------------------------------------------- frame labels


class _FakeExpert:
    """Embeds a frame by its mean colour and a text by a hash: cheap and deterministic."""

    fingerprint = "fake-expert"

    def encode_frames(self, frames):
        x = torch.as_tensor(np.asarray(frames)).float().mean(dim=(1, 2))  # (N, 3)
        return torch.nn.functional.normalize(x - 100.0, dim=-1)

    def encode_text(self, texts):
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:3], np.uint8) for t in texts]
        return torch.nn.functional.normalize(
            torch.tensor(np.array(rows), dtype=torch.float32) - 128.0, dim=-1
        )


class _CountingCaptioner:
    """Captions a frame by its mean colour; can fail after a number of batches (a killed run)."""

    name = "counting"
    fingerprint = "counting-v1"

    def __init__(self, fail_after: int | None = None) -> None:
        self.batches, self.fail_after = 0, fail_after

    def caption(self, frames, batch_size=64, progress=None):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        return [f"mean {int(f.mean())}" for f in frames]


@pytest.fixture(scope="module")
def smoke_videos(smoke_world: Path):
    from vrlib.data.datasets import load_dataset

    return load_dataset("synthetic", smoke_world, "train")


def test_caption_cache_resumes_after_an_interrupt(smoke_videos, tmp_path):
    expert, n = _FakeExpert(), len(smoke_videos.videos)
    with pytest.raises(KeyboardInterrupt):
        caption_videos(
            smoke_videos,
            _CountingCaptioner(fail_after=2),
            expert,
            m=4,
            size=32,
            cache_dir=tmp_path,
            videos_per_shard=3,
            progress=False,
        )
    resumed = _CountingCaptioner()
    table = caption_videos(
        smoke_videos,
        resumed,
        expert,
        m=4,
        size=32,
        cache_dir=tmp_path,
        videos_per_shard=3,
        progress=False,
    )
    assert resumed.batches == math.ceil((n - 6) / 3)  # the 2 finished shards were not redone
    fresh = caption_videos(
        smoke_videos,
        _CountingCaptioner(),
        expert,
        m=4,
        size=32,
        cache_dir=tmp_path / "fresh",
        videos_per_shard=3,
        progress=False,
    )
    assert table.captions == fresh.captions and np.allclose(table.scores, fresh.scores)
    assert table.frame_indices.shape == (n, 4) and table.scores.shape == (n, 4)
    again = _CountingCaptioner()
    caption_videos(
        smoke_videos,
        again,
        expert,
        m=4,
        size=32,
        cache_dir=tmp_path,
        videos_per_shard=3,
        progress=False,
    )
    assert again.batches == 0  # all cached
    shard = sorted(tmp_path.glob("*/shard-*.json"))[0]
    shard.write_text("{broken")  # a damaged shard is recomputed
    redo = _CountingCaptioner()
    assert (
        caption_videos(
            smoke_videos,
            redo,
            expert,
            m=4,
            size=32,
            cache_dir=tmp_path,
            videos_per_shard=3,
            progress=False,
        ).captions
        == table.captions
    )
    assert redo.batches == 1


def test_clip_scores_of_the_table_are_each_caption_with_its_own_frame(smoke_videos, tmp_path):
    from vrlib.data.video import read_frames

    expert = _FakeExpert()
    table = caption_videos(
        smoke_videos, _CountingCaptioner(), expert, m=3, size=32, cache_dir=tmp_path, progress=False
    )
    v = smoke_videos.videos[1]
    frames = read_frames(v.path, table.frame_indices[1], size=32, resize="square")
    want = clip_score(expert.encode_frames(frames), expert.encode_text(table.captions[1]))
    assert table.scores[1] == pytest.approx(want.numpy(), abs=1e-6)
    assert table.captions[1] == [f"mean {int(f.mean())}" for f in frames]


def test_ground_truth_describer_states_only_true_attributes(smoke_videos, tmp_path):
    from vrlib.data.synthetic import scene_at

    gt = GroundTruthDescriber(seed=0)
    table = caption_videos(
        smoke_videos, gt, _FakeExpert(), m=5, size=32, cache_dir=tmp_path, progress=False
    )
    scenes = [
        scene_at(v.meta["events"], int(i))
        for v, idx in zip(smoke_videos.videos, table.frame_indices, strict=True)
        for i in idx
    ]
    flat = [c for caps in table.captions for c in caps]
    assert attribute_precision(flat, scenes)["precision"] == 1.0
    other = caption_videos(
        smoke_videos,
        GroundTruthDescriber(seed=0),
        _FakeExpert(),
        m=5,
        size=32,
        cache_dir=tmp_path / "b",
        progress=False,
    )
    assert other.captions == table.captions  # deterministic for a seed
    both = stack([table, other])
    assert both.scores.shape == (len(smoke_videos.videos), 2, 5)


# ----------------------------------------------------------------------------- training


_TINY = {"batch_size": 64, "width": 64, "layers": 1, "vision_layers": 1, "lr": 3e-3}


def test_training_resumes_to_the_same_weights_and_refuses_other_settings(
    smoke_world, tmp_path, monkeypatch
):
    from vrlib.captions import train_captioner

    tiny = {**_TINY, "width": 32, "image_size": 16, "epochs": 2}
    straight = train_captioner("blip-tiny", smoke_world, tmp_path / "a.pt", **tiny)

    def killed(*args, **kwargs):  # the run dies right after the first epoch's checkpoint
        raise KeyboardInterrupt

    monkeypatch.setattr("vrlib.captions.train.write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        train_captioner("blip-tiny", smoke_world, tmp_path / "b.pt", **tiny)
    monkeypatch.undo()
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(ValueError, match="other settings"):
        train_captioner("blip-tiny", smoke_world, tmp_path / "b.pt", **{**tiny, "lr": 1e-4})
    resumed = train_captioner("blip-tiny", smoke_world, tmp_path / "b.pt", **tiny)
    assert resumed["history"] == straight["history"]
    a = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="needs expert_path"):
        train_captioner("clipcap-tiny", smoke_world, tmp_path / "c.pt", epochs=1)


@pytest.mark.slow
def test_a_trained_captioner_states_true_attributes_more_often_than_a_constant_caption(
    tmp_path_factory,
):
    """A small BLIP trained briefly on 960 images beats the majority caption on held-out images."""
    from vrlib.captions import load_world_captioner, load_world_images, train_captioner
    from vrlib.captions.quality import evaluate_captioner, evaluate_captions
    from vrlib.data.synthetic import ensure_world

    world = ensure_world(
        tmp_path_factory.mktemp("world"), preset="smoke", num_images=1200, num_videos=2
    )
    out = tmp_path_factory.mktemp("captioner") / "blip.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread wastes no time spinning on a busy machine
    try:
        train_captioner("blip-tiny", world, out, epochs=8, **_TINY)
    finally:
        torch.set_num_threads(threads)
    captioner = load_world_captioner(out, Decoding("greedy"))
    train, test = load_world_images(world, "train"), load_world_images(world, "test")
    constant = majority_caption(train.attributes)
    base = evaluate_captions(
        [constant] * len(test.captions), test.attributes, [[c] for c in test.captions]
    )
    trained = evaluate_captioner(captioner, world, "test")
    assert trained["precision"] > base["precision"] + 0.1, (trained, base)
    assert trained["precision_background"] > 0.8  # the easiest attribute: a large area of pixels
    assert trained["distinct_captions"] > 10  # it describes images, not one sentence
