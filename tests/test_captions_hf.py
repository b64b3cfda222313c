"""Real captioners (BLIP, ClipCap through transformers) load from local paths: tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from vrlib.captions import Decoding, load_captioner  # noqa: E402
from vrlib.captions.hf import CaptionerWeightsUnavailableError  # noqa: E402

WORDS = ["a", "red", "circle", "on", "the", "left", "blue", "square"]


def _frames(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    import transformers as tf

    out = tmp_path_factory.mktemp("blip")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = tf.BertTokenizer(str(out / "vocab.txt"))
    image_processor = tf.BlipImageProcessor(size={"height": 32, "width": 32})
    tf.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    text = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        bos_token_id=5,
        pad_token_id=0,
        sep_token_id=3,
        eos_token_id=3,
    )
    vision = dict(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = tf.BlipForConditionalGeneration(tf.BlipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    import transformers as tf

    out = tmp_path_factory.mktemp("gpt2")
    vocab = {"<|endoftext|>": 0, ".": 1, **{f"\u0120{w}": i + 2 for i, w in enumerate(WORDS)}}
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tf.GPT2Tokenizer(str(out / "vocab.json"), str(out / "merges.txt")).save_pretrained(out)
    torch.manual_seed(0)
    cfg = tf.GPT2Config(
        vocab_size=len(vocab),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=40,
        bos_token_id=0,
        eos_token_id=0,
    )
    tf.GPT2LMHeadModel(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_encoder():
    from vrlib.encoders import load_clip

    return load_clip("vrlib-tiny", device="cpu", precision="fp32")


def test_blip_loads_from_a_local_directory_and_captions_deterministically(tiny_blip):
    cap = load_captioner(
        "blip", path=str(tiny_blip), decoding={"method": "beam", "beam_size": 2, "max_length": 5}
    )
    out = cap.caption(_frames())
    assert len(out) == 3 and all(isinstance(c, str) for c in out)
    assert all(set(c.split()) <= set(WORDS) | {"[dec]", "[mask]"} for c in out), out
    assert out == cap.caption(_frames())
    greedy = load_captioner("blip", path=str(tiny_blip), decoding=Decoding("greedy", max_length=5))
    assert greedy.fingerprint != cap.fingerprint  # decoding settings key the caption cache


def test_clipcap_loads_a_checkpoint_and_gpt2_from_local_paths(tiny_gpt2, tiny_encoder, tmp_path):
    d, width, prefix = tiny_encoder.embed_dim, 16, 3
    torch.manual_seed(1)
    state = {
        "clip_project.model.0.weight": torch.randn(24, d) * 0.1,
        "clip_project.model.0.bias": torch.zeros(24),
        "clip_project.model.2.weight": torch.randn(prefix * width, 24) * 0.1,
        "clip_project.model.2.bias": torch.zeros(prefix * width),
    }
    torch.save(state, tmp_path / "clipcap.pt")
    cap = load_captioner(
        "clipcap",
        checkpoint=str(tmp_path / "clipcap.pt"),
        gpt2=str(tiny_gpt2),
        encoder=tiny_encoder,
        decoding={"method": "greedy", "max_length": 6},
    )
    assert cap.prefix_length == prefix
    out = cap.caption(_frames(4))
    assert len(out) == 4 and out == cap.caption(_frames(4))
    assert all(set(c.replace(".", " ").split()) <= set(WORDS) for c in out)


def test_missing_weights_fail_fast_naming_what_to_pass(tmp_path, tiny_encoder, tiny_gpt2):
    with pytest.raises(CaptionerWeightsUnavailableError, match="pass the directory"):
        load_captioner("blip", path=str(tmp_path / "nowhere"))
    with pytest.raises(CaptionerWeightsUnavailableError, match="no path was given"):
        load_captioner("blip")
    with pytest.raises(CaptionerWeightsUnavailableError, match="checkpoint="):
        load_captioner(
            "clipcap",
            checkpoint=str(tmp_path / "none.pt"),
            gpt2=str(tiny_gpt2),
            encoder=tiny_encoder,
        )
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a ClipCap MLP checkpoint"):
        load_captioner(
            "clipcap",
            checkpoint=str(tmp_path / "bad.pt"),
            gpt2=str(tiny_gpt2),
            encoder=tiny_encoder,
        )
