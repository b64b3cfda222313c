"""transformers CLIP, SigLIP and X-CLIP from local folders: tiny random models saved to tmp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

tf = pytest.importorskip("transformers")

from test_eval import benchmark_root  # noqa: E402

from vrlib.evaluation import evaluate_model, load_model  # noqa: E402

VOCAB = {
    "<|endoftext|>": 0,
    "<|startoftext|>": 1,
    "a</w>": 2,
    "red</w>": 3,
    "cat</w>": 4,
    "dog</w>": 5,
}
LAYER = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
TEXT = dict(vocab_size=len(VOCAB), max_position_embeddings=16, **LAYER)
VISION = dict(image_size=32, patch_size=8, **LAYER)


def tokenizer(folder: Path):
    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return tf.CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16
    )


def save(folder: Path, model, processor) -> Path:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    out = {}
    d = tmp_path_factory.mktemp("hf-clip")
    image = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = tf.CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=8)
    out["hf-clip"] = save(
        d, tf.CLIPModel(config), tf.CLIPProcessor(image_processor=image, tokenizer=tokenizer(d))
    )
    d = tmp_path_factory.mktemp("hf-siglip")
    image = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    config = tf.SiglipConfig(text_config=TEXT, vision_config=VISION)
    out["hf-siglip"] = save(
        d, tf.SiglipModel(config), tf.SiglipProcessor(image_processor=image, tokenizer=tokenizer(d))
    )
    d = tmp_path_factory.mktemp("xclip")
    video = tf.VideoMAEImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    mit = dict(
        num_frames=4,
        mit_hidden_size=16,
        mit_intermediate_size=32,
        mit_num_hidden_layers=1,
        mit_num_attention_heads=2,
    )
    config = tf.XCLIPConfig(
        text_config=TEXT, vision_config={**VISION, **mit}, projection_dim=16, prompt_layers=1,
        prompt_attention_heads=2,
    )  # fmt: skip
    out["xclip"] = save(
        d, tf.XCLIPModel(config), tf.XCLIPProcessor(image_processor=video, tokenizer=tokenizer(d))
    )
    return out


def frames(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["hf-clip", "hf-siglip"])
def test_frame_encoders_equal_the_transformers_model(tiny_models, name):
    enc = load_model(name, str(tiny_models[name]), device="cpu")
    model_cls = tf.CLIPModel if name == "hf-clip" else tf.SiglipModel
    ref = model_cls.from_pretrained(tiny_models[name]).eval()
    processor = tf.AutoProcessor.from_pretrained(tiny_models[name])
    x = frames()
    got = enc.encode_preprocessed(enc.preprocess_frames(x))
    with torch.no_grad():
        pixels = processor.image_processor(images=list(x), return_tensors="pt")["pixel_values"]
        out = ref.get_image_features(pixel_values=pixels)
        want = torch.nn.functional.normalize(getattr(out, "pooler_output", out), dim=-1)
    assert got.shape == (5, want.shape[1]) and torch.allclose(got, want, atol=1e-5)
    texts = enc.encode_text(["a red cat", "dog", "a dog"])
    assert texts.shape[0] == 3 and torch.allclose(texts.norm(dim=1), torch.ones(3), atol=1e-5)
    assert enc.fingerprint == load_model(name, str(tiny_models[name]), device="cpu").fingerprint
    assert enc.image_size == 32


def test_xclip_embeds_each_clip_as_a_whole(tiny_models):
    model = load_model("xclip", str(tiny_models["xclip"]), device="cpu")
    clip = frames(7)
    one = model.encode_videos([clip])
    both = model.encode_videos([clip, frames(3, seed=1)])
    vision = model.model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2  # prompt features per video
    assert both.shape == (2, (1 + patches) * 16) and torch.allclose(one[0], both[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1])
    assert model.encode_texts(["a red cat"]).shape == (1, 16)


def test_xclip_scores_equal_the_transformers_forward_with_video_specific_prompts(tiny_models):
    """``score`` is XCLIPModel.forward's logits_per_text over its logit scale; a caption's
    score depends on the video it is scored against (plain dot products would not match)."""
    model = load_model("xclip", str(tiny_models["xclip"]), device="cpu")
    ref = tf.XCLIPModel.from_pretrained(tiny_models["xclip"]).eval()
    processor = tf.AutoProcessor.from_pretrained(tiny_models["xclip"])
    with torch.no_grad():  # the tiny prompt generator starts with alpha 0.1: make it count
        for m in (model.model, ref):
            m.prompts_generator.alpha.fill_(1.0)
    clips = [frames(4, seed=s) for s in range(3)]
    texts = ["a red cat", "dog", "a dog runs"]
    got = model.score(model.encode_texts(texts), model.encode_videos(clips), chunk=2)
    inputs = processor(text=texts, return_tensors="pt", padding=True)
    pixels = torch.stack(
        [processor.image_processor(images=list(c), return_tensors="pt")["pixel_values"].reshape(4, 3, 32, 32) for c in clips]
    )  # fmt: skip
    with torch.no_grad():
        out = ref(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=pixels,
        )
    want = out.logits_per_text / ref.logit_scale.exp()
    assert got.shape == (3, 3) and torch.allclose(got, want, atol=1e-4)
    videos = model.encode_videos(clips)[:, :16]
    plain = torch.nn.functional.normalize(model.encode_texts(texts), dim=-1) @ videos.T
    assert not torch.allclose(plain, want, atol=1e-3)


def test_hf_models_score_a_benchmark(tiny_models, tmp_path, bikes_mp4):
    root = benchmark_root(tmp_path, "msrvtt", "1k-A", bikes_mp4)
    for name in ("hf-clip", "xclip"):
        card = evaluate_model(
            name, str(tiny_models[name]), "msrvtt", root, "1k-A", "clip4clip",
            cache_dir=tmp_path / "cache", intervals=0, progress=False, device="cpu",
        )  # fmt: skip
        assert card.metrics["t2v"]["n"] == card.dataset["queries"] and card.model["fingerprint"]
        kind = "frame encoder" if name == "hf-clip" else "video-text model"
        assert card.model["kind"] == kind


def test_missing_folder_and_unknown_name_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_model("xclip", str(tmp_path / "nope"))
    from vrlib.encoders.hf import load_hf_model

    with pytest.raises(ValueError, match="hf-clip, hf-siglip, xclip"):
        load_hf_model("hf-blip", tmp_path)
