"""Study 03's end-to-end protocol: the per-epoch pixel pairs, the fine-tuned copy, the guard, the
lr chosen on val, the same step 0 as the cached protocol, and the reading's sentences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.studies.captions import claims as cc
from vrlib.studies.captions import data as cdata
from vrlib.studies.captions import end_to_end as ee
from vrlib.studies.captions import report as crep
from vrlib.studies.captions import study as cs
from vrlib.train import EndToEndPairs

V, N, S = 6, 2, 32


def _clips(seed: int) -> np.ndarray:
    """(V, N, S, S, 3) uint8: video v is a square of its own colour on noise."""
    rng = np.random.default_rng(seed)
    clips = rng.integers(0, 40, size=(V, N, S, S, 3)).astype(np.uint8)
    for v in range(V):
        clips[v, :, 8:24, 8:24] = (40 * v, 255 - 40 * v, 120)
    return clips


def _draw(epoch: int) -> list[str]:
    return [f"caption {epoch} of video {v}" for v in range(V)]


def test_epoch_pixel_pairs_swap_frames_and_captions_each_epoch():
    draws = [_clips(0), _clips(1)]
    pairs = ee.EpochPixelPairs(draws, _draw)
    assert len(pairs) == V and pairs.num_frames == N
    batch = pairs.__getitems__([0, 3])
    assert batch["captions"] == ["caption 0 of video 0", "caption 0 of video 3"]
    assert torch.equal(batch["pixels"][1], torch.from_numpy(draws[0][3]))
    pairs.set_epoch(1)
    batch = pairs.__getitems__([3])
    assert batch["captions"] == ["caption 1 of video 3"]
    assert torch.equal(batch["pixels"][0], torch.from_numpy(draws[1][3]))
    pairs.set_epoch(2)  # two draws: epoch 2 reads draw 0 again, with its own captions
    batch = pairs.__getitems__([3])
    assert batch["captions"] == ["caption 2 of video 3"]
    assert torch.equal(batch["pixels"][0], torch.from_numpy(draws[0][3]))
    with pytest.raises(ValueError, match="differ in"):
        ee.EpochPixelPairs([_clips(0), _clips(1)[:, :1]], _draw)
    with pytest.raises(ValueError, match="one a video"):
        ee.EpochPixelPairs(draws, lambda e: _draw(e)[: V - e]).set_epoch(1)


class _Video:
    def __init__(self, i: int) -> None:
        self.video_id, self.meta = f"v{i}", {}


class _Dataset:
    videos = [_Video(i) for i in range(V)]


def _train_data() -> cdata.TrainData:
    from vrlib.captions import VideoCaptions

    rng = np.random.default_rng(0)
    table = VideoCaptions(
        captioner="C", video_ids=[f"v{i}" for i in range(V)],
        frame_indices=np.tile(np.arange(3), (V, 1)),
        captions=[[f"colour {v} frame {m}" for m in range(3)] for v in range(V)],
        scores=rng.random((V, 3)).astype(np.float32),
    )  # fmt: skip
    gt = [[f"ground truth {v}"] for v in range(V)]
    return cdata.TrainData(_Dataset(), {"C": table}, None, [], [], {}, gt)


def _params(**end_to_end) -> cs.CaptionSelectionParams:
    e2e = {"frames": N, "epochs": 2, "batch_size": V, "lrs": [1e-4], **end_to_end}
    return cs.CaptionSelectionParams.model_validate(
        {"data": {"world_preset": "smoke"}, "seeds": [0], "captioners": [{"label": "C",
         "name": "clipcap-tiny"}], "end_to_end": e2e}
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_encoder():
    from vrlib.encoders import load_clip

    return load_clip("vrlib-tiny", device="cpu", precision="fp32")


def test_a_run_fine_tunes_its_own_copy_of_both_towers(tiny_encoder):
    params, data = _params(), _train_data()
    spec = cs.RunSpec("rand_top_k", 2, ("C",), cs.END_TO_END)
    target = EndToEndPairs(list(_clips(2)), [f"colour {v} frame 0" for v in range(V)], np.arange(V))
    before = {k: v.clone() for k, v in tiny_encoder.model.state_dict().items()}
    sim, history, wall = ee.fit_and_score(spec, 0, 1e-3, params, tiny_encoder, data,
                                          [_clips(0), _clips(1)], target)  # fmt: skip
    assert sim.shape == (V, V) and torch.isfinite(sim).all()
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    assert wall > 0
    after = tiny_encoder.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the shared expert is untouched
    untrained = ee.fit_and_score(spec, 0, 1e-12, params, tiny_encoder, data,
                                 [_clips(0), _clips(1)], target)[0]  # fmt: skip
    assert not torch.allclose(sim, untrained, atol=1e-4)  # lr 1e-3 moved both towers


def test_the_ground_truth_guard_stops_an_end_to_end_run_before_training(monkeypatch, tiny_encoder):
    from vrlib.captions import Selection

    data = _train_data()

    def leaky(spec, data):
        caps = [
            [*c[:1], g[0]]
            for c, g in zip(data.tables["C"].captions, data.ground_truth, strict=True)
        ]
        return Selection("rand_top_k", 2, [f"v{i}" for i in range(V)], [[0, 1]] * V, caps)

    monkeypatch.setattr(cdata, "selection_for", leaky)
    spec = cs.RunSpec("rand_top_k", 2, ("C",), cs.END_TO_END)
    with pytest.raises(cs.GroundTruthInTraining, match="ground-truth caption"):
        ee.fit_and_score(spec, 0, 1e-4, _params(), tiny_encoder, data, [_clips(0)], None)


def test_the_lr_is_chosen_on_val_with_the_untrained_model_beside_it(monkeypatch, tiny_encoder):
    val = EndToEndPairs(list(_clips(3)), [f"colour {v} frame 0" for v in range(V)], np.arange(V))
    monkeypatch.setattr(ee, "split_pixels", lambda params, split, encoder: val)
    scores = {1e-4: torch.eye(V), 3e-4: torch.eye(V).roll(1, 0)}  # 1e-4 retrieves every video

    def fake_fit(spec, seed, lr, params, encoder, data, clips, target):
        assert target is val  # the test split is never read here
        return scores[lr], [], 0.0

    monkeypatch.setattr(ee, "fit_and_score", fake_fit)
    rows = ee.choose_lr(_params(lrs=[3e-4, 1e-4]), tiny_encoder, _train_data(), [])
    assert [r["lr"] for r in rows] == [0.0, 3e-4, 1e-4]
    assert {r["protocol"] for r in rows} == {cs.END_TO_END}
    assert [r["chosen"] for r in rows] == [False, False, True]
    assert rows[2]["t2v R@1"] == 100.0 and rows[1]["t2v R@1"] == 0.0
    assert rows[1]["run"] == "C/rand_top_k2 e2e"


def test_untrained_end_to_end_scores_equal_the_cached_zero_shot(
    smoke_world, tiny_encoder, tmp_path
):
    """Step 0 is shared: the end-to-end pixels are the frames the cached features encode."""
    from vrlib.data.datasets import load_dataset
    from vrlib.features import extract_frame_features, extract_text_features
    from vrlib.models import build_model
    from vrlib.train import CachedPairs, similarity_matrix

    params = _params()
    ds = load_dataset("synthetic", smoke_world, "test")
    sampling = params.test_sampling.config()
    feats = extract_frame_features(ds, tiny_encoder, sampling, tmp_path, seed=params.seed)
    text = extract_text_features([c.text for c in ds.captions], tiny_encoder)
    head = build_model("meanP", dim=tiny_encoder.embed_dim, num_frames=sampling.n).eval()
    cached = CachedPairs(feats.select([v.video_id for v in ds.videos]).features, text,
                         ds.caption_to_video)  # fmt: skip
    pixels = ee.dataset_pixels(ds, params, tiny_encoder)
    assert pixels.videos[0].shape == (sampling.n, ee.encoder_size(tiny_encoder),
                                      ee.encoder_size(tiny_encoder), 3)  # fmt: skip
    expected = similarity_matrix(head, cached)
    got = similarity_matrix(head, pixels, encoder=tiny_encoder)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"captioners": ["X"]}, "end_to_end.captioners"),
        ({"rules": [["rand_top_k", 11]]}, "end_to_end.rules"),
        ({"upper_bounds": ["oracle"]}, "end_to_end.upper_bounds: unknown"),
        ({"lrs": [0.0]}, "lrs must be > 0"),
    ],
)
def test_bad_end_to_end_parameters_fail_naming_the_key(override, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        cs.CaptionSelectionParams.model_validate(
            {"data": {"world_preset": "smoke"}, "upper_bounds": ["ground_truth_captions"],
             "end_to_end": override}
        )  # fmt: skip


def test_end_to_end_runs_are_keyed_apart_and_claimed_first():
    default = [s.key for s in cs.CaptionSelectionParams().end_to_end_runs()]
    assert default == ["C/rand_top_k2 e2e", "upper bound/ground_truth_describer e2e",
                       "upper bound/ground_truth_captions e2e"]  # fmt: skip
    p = cs.CaptionSelectionParams.model_validate(
        {"end_to_end": {"rules": [["rand_top_k", 2], ["rand_m", 1]], "upper_bounds": []}}
    )
    keys = [s.key for s in p.end_to_end_runs()]
    assert keys == ["C/rand_top_k2 e2e", "C/rand_m e2e"]
    assert not set(keys) & {s.key for s in p.runs()}
    row = {"setting": "rand_top_k", "captioners": "C", "k": 2, "protocol": cs.END_TO_END}
    assert cc.keyed([row])[0]["setting"] == "C/rand_top_k2 e2e"
    summary = [{"setting": k, "direction": "t2v", "R@1": 1.0}
               for k in [*keys, "none/zero_shot", "C/rand_top_k2", "C/rand_m"]]  # fmt: skip
    claims = cc.paper_claims(summary, p)
    assert [c[:2] for c in claims[:2]] == [
        ("C/rand_top_k2 e2e", "none/zero_shot"), ("C/rand_top_k2 e2e", "C/rand_m e2e")
    ]  # fmt: skip
    shots = [c[:2] for c in cc.by_shot_claims(summary, p)]
    assert shots == [
        ("C/rand_top_k2 e2e", "C/rand_m e2e"),
        ("C/rand_top_k2", "C/rand_m"),
        ("C/rand_top_k2 e2e", "none/zero_shot"),
        ("C/rand_m e2e", "none/zero_shot"),
    ]
    paper = cc.paper_keyed([{"setting": "rand_top_k", "captioners": "C", "k": 2, "R@1": 5.0}])
    assert {r["setting"] for r in paper} == {"C/rand_top_k2", "C/rand_top_k2 e2e"}


def test_reading_states_the_lr_choice_and_the_end_to_end_verdicts():
    e2e = cs.END_TO_END
    lr_rows = [
        {"protocol": e2e, "run": "step 0 (untrained)", "lr": 0.0, "t2v R@1": 9.0, "chosen": False},
        {"protocol": e2e, "run": "C/rand_top_k2 e2e", "lr": 1e-4, "t2v R@1": 11.5, "chosen": True},
        {"protocol": e2e, "run": "C/rand_top_k2 e2e", "lr": 3e-5, "t2v R@1": 10.0, "chosen": False},
        {
            "protocol": cs.CACHED,
            "run": "given",
            "lr": 1e-3,
            "t2v R@1": float("nan"),
            "chosen": True,
        },
    ]
    step0 = [{"claim": "C/rand_top_k2 e2e > step 0", "comparison":
              "C/rand_top_k2 e2e vs none/zero_shot", "diff R@1": 2.5, "lo": 1.0, "hi": 4.0,
              "verdict": "holds", "resampled": "videos and seeds"},
             {"claim": "C/rand_top_k2 > step 0", "comparison": "C/rand_top_k2 vs none/zero_shot",
              "diff R@1": -1.0, "lo": -2.0, "hi": -0.1, "verdict": "reversed"}]  # fmt: skip
    boot = [{"claim": "C: Top-K > Rand(M) (end to end)", "comparison":
             "C/rand_top_k2 e2e vs C/rand_m e2e", "diff R@1": 0.5, "lo": -1.0, "hi": 2.0,
             "verdict": "within noise", "resampled": "videos and seeds"}]  # fmt: skip
    words = " ".join(crep.end_to_end_words(boot, step0, lr_rows))
    assert "lr 0.0001 chosen on the validation split" in words
    assert "0.0001: 11.5, 3e-05: 10.0; untrained 9.0" in words
    assert (
        "C/rand_top_k2 e2e vs none/zero_shot +2.5 [+1.0, +4.0], holds; "
        "C/rand_top_k2 e2e vs C/rand_m e2e +0.5 [-1.0, +2.0], within noise." in words
    )
    assert "C/rand_top_k2 vs none/zero_shot" not in words  # the cached run is not end to end
    assert crep.end_to_end_words(boot, step0, []) == []
    assert crep.lr_words(lr_rows, cs.CACHED, "Cached") == [
        "Cached: lr 0.001 given (one lr: nothing chosen on validation)."
    ]


def test_quality_words_put_stills_and_video_frames_side_by_side():
    rows = [
        {"captioner": "B (blip-tiny)", "images": "held-out stills", "precision": 0.61},
        {"captioner": "B (blip-tiny)", "images": "test-video frames", "precision": 0.51},
        {"captioner": "C (clipcap-tiny)", "images": "held-out stills", "precision": 0.872},
        {"captioner": "C (clipcap-tiny)", "images": "test-video frames", "precision": 0.696},
    ]
    assert crep.quality_words(rows) == [
        "Captioner quality (attribute precision): C (clipcap-tiny) 87.2% on held-out stills and "
        "69.6% on test-video frames; B (blip-tiny) 61.0% on held-out stills and 51.0% on "
        "test-video frames."
    ]  # fmt: skip
    assert crep.quality_words([]) == []


def test_large_draws_are_decoded_when_read_and_equal_the_held_ones(smoke_world, monkeypatch):
    from vrlib.data.datasets import load_dataset
    from vrlib.data.sampling import SamplingConfig

    ds = load_dataset("synthetic", smoke_world, "train")
    sampling = SamplingConfig(strategy="segment_random", n=2)
    held = ee.decode_clips(ds, sampling, 32, seed=0, epoch=1)
    assert isinstance(held, np.ndarray) and held.shape == (len(ds.videos), 2, 32, 32, 3)
    monkeypatch.setattr(ee, "IN_MEMORY_BYTES", 0)
    lazy = ee.decode_clips(ds, sampling, 32, seed=0, epoch=1)
    assert isinstance(lazy, ee.ClipFrames) and lazy.shape == held.shape
    assert all(np.array_equal(lazy[i], held[i]) for i in range(len(lazy)))
    other = ee.decode_clips(ds, sampling, 32, seed=0, epoch=0)
    assert not all(np.array_equal(other[i], held[i]) for i in range(len(other)))  # new draw
    pairs = ee.EpochPixelPairs([held, lazy], lambda e: [f"c{v}" for v in range(len(ds.videos))])
    pairs.set_epoch(1)
    assert torch.equal(pairs.__getitems__([1])["pixels"][0], torch.from_numpy(held[1]))


def _vs_zero(run: str, diff: float, verdict: str) -> dict:
    return {"comparison": f"{run} vs none/zero_shot", "diff R@1": diff, "lo": diff - 1,
            "hi": diff + 1, "verdict": verdict}  # fmt: skip


@pytest.mark.parametrize(
    ("ours", "describer", "truth", "words"),
    [
        ("holds", "holds", "holds", "the paper's gain reproduces"),
        ("within noise", "within noise", "within noise", "the training is the limit"),
        ("reversed", "holds", "holds", "their errors on video frames are the limit"),
        ("within noise", "within noise", "holds", "not the captioners' accuracy"),
    ],
)
def test_signal_sentence_follows_the_three_verdicts(ours, describer, truth, words):
    top = "C/rand_top_k2 e2e"
    step0 = [_vs_zero(top, -0.5, ours),
             _vs_zero("upper bound/ground_truth_describer e2e", -0.1, describer),
             _vs_zero("upper bound/ground_truth_captions e2e", 1.7, truth),
             _vs_zero("C/rand_top_k2", -2.0, "reversed")]  # fmt: skip
    [sentence] = crep.signal_words(step0, top)
    assert words in sentence
    assert f"{top} -0.5 [-1.5, +0.5], {ours}" in sentence
    assert f"ground-truth video captions +1.7 [+0.7, +2.7], {truth}" in sentence
    assert crep.signal_words(step0[:1], top) == [] and crep.signal_words(step0, None) == []
