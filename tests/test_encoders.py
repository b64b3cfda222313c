"""vrlib.encoders: shapes and norms, PIL-exact preprocessing, token features, weight loading, fingerprints."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from vrlib.encoders import CheckpointMismatchError, WeightsUnavailableError, load_clip


@pytest.fixture(scope="module")
def enc():
    return load_clip("vrlib-tiny", device="cpu")


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Frames with smooth gradients, a sharp-edged square and noise: the hard cases for resizing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = np.stack(
            [xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 256], axis=-1
        )
        img[h // 4 : h // 2, w // 3 : w // 2] = rng.integers(0, 256, 3)
        img = img + rng.normal(0, 20, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def test_encode_frames_and_text_shapes_and_unit_norm(enc):
    assert enc.embed_dim == 128 and enc.image_size == 64
    img = enc.encode_frames(_frames(5, 112, 112), batch_size=2)  # uneven last batch
    txt = enc.encode_text(["a red circle on the left", "a small blue square", "x"], batch_size=2)
    for emb, n in ((img, 5), (txt, 3)):
        assert emb.shape == (n, 128) and emb.dtype == torch.float32 and emb.device.type == "cpu"
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(n))
    assert enc.encode_frames(np.zeros((0, 20, 20, 3), np.uint8)).shape == (0, 128)
    assert enc.encode_text([]).shape == (0, 128)


def test_batching_does_not_change_embeddings(enc):
    frames = _frames(5, 90, 120)
    torch.testing.assert_close(
        enc.encode_frames(frames, batch_size=2),
        enc.encode_frames(frames, batch_size=64),
        atol=1e-5,
        rtol=0,
    )


def test_encode_frames_accepts_torch_and_rejects_bad_input(enc):
    frames = _frames(2, 64, 80)
    torch.testing.assert_close(
        enc.encode_frames(torch.from_numpy(frames)), enc.encode_frames(frames)
    )
    with pytest.raises(ValueError, match="uint8"):
        enc.encode_frames(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        enc.preprocess_frames(frames[0])
    with pytest.raises(TypeError, match="list of strings"):
        enc.encode_text("not a list")


@pytest.mark.parametrize("shape", [(112, 112), (120, 160), (272, 640), (50, 40), (64, 64)])
def test_preprocess_frames_matches_open_clip_pil_transform(enc, shape):
    """Down- and upscaling, landscape and portrait: within one uint8 intensity level of PIL.

    Measured max differences are 0 to 1 level (0.015 in normalised units); the tolerance is one
    level divided by the smallest std, plus float slack.
    """
    frames = _frames(3, *shape, seed=1)
    ours = enc.preprocess_frames(frames)
    ref = torch.stack([enc.preprocess(Image.fromarray(f)) for f in frames])
    assert ours.shape == ref.shape == (3, 3, 64, 64)
    diff = (ours - ref).abs()
    one_level = 1.0 / 255 / min(enc.preprocess_cfg["std"])
    assert diff.max().item() <= one_level + 1e-4, f"max abs diff {diff.max().item():.4f}"
    assert diff.mean().item() < 0.05 * one_level  # nearly every pixel identical


def test_text_token_features_shape_mask_and_eot_equals_pooled(enc):
    texts = ["a red circle", "a big green triangle moves to the right", ""]
    tokens, mask = enc.encode_text_tokens(texts)
    assert tokens.shape == (3, 32, 128) and tokens.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.shape == (3, 32)
    ids = enc.tokenizer(texts)
    n_words = [(row != 0).sum().item() for row in ids]  # start + words + end
    assert mask.sum(dim=1).tolist() == n_words == [5, 10, 2]
    assert mask[:, 0].all() and not mask[0, 5:].any()  # a prefix: start token ... EOT
    eot = mask.sum(dim=1) - 1
    pooled = torch.nn.functional.normalize(tokens[torch.arange(3), eot], dim=-1)
    torch.testing.assert_close(pooled, enc.encode_text(texts), atol=1e-5, rtol=0)


def test_random_init_is_seeded_and_leaves_global_rng_alone(enc):
    state = torch.get_rng_state()
    again = load_clip("vrlib-tiny", device="cpu")
    assert torch.equal(state, torch.get_rng_state())
    assert again.fingerprint == enc.fingerprint
    assert load_clip("vrlib-tiny", device="cpu", init_seed=1).fingerprint != enc.fingerprint


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "vrlib-ckpt-ddp"])
def test_local_checkpoint_roundtrip_gives_identical_embeddings(enc, tmp_path, fmt):
    other = load_clip("vrlib-tiny", device="cpu", init_seed=7)
    state = {k: v.clone() for k, v in other.model.state_dict().items()}
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pt'}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif fmt == "pt":
        torch.save(state, path)
    else:  # a training checkpoint whose model was wrapped in DistributedDataParallel
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = load_clip("vrlib-tiny", pretrained=str(path), device="cpu")
    frames, texts = _frames(3, 112, 112), ["a red circle", "two squares"]
    assert torch.equal(loaded.encode_frames(frames), other.encode_frames(frames))
    assert torch.equal(loaded.encode_text(texts), other.encode_text(texts))
    assert loaded.fingerprint == other.fingerprint != enc.fingerprint
    assert loaded.source == str(path)


def test_fingerprint_follows_the_weights(tmp_path):
    a = load_clip("vrlib-tiny", device="cpu")
    before = a.fingerprint
    assert a.fingerprint == before  # stable
    with torch.no_grad():
        a.model.logit_scale.add_(1e-3)  # the smallest change to one weight
    assert a.fingerprint == before  # cached until told
    a.invalidate_fingerprint()
    assert a.fingerprint != before


def test_missing_local_file_names_it(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_clip("vrlib-tiny", pretrained=str(missing), device="cpu")


def test_unknown_tag_model_and_precision_list_choices():
    with pytest.raises(ValueError, match="neither a tag"):
        load_clip("vrlib-tiny", pretrained="openai", device="cpu")
    with pytest.raises(ValueError, match="unknown model 'ViT-X'.*vrlib-tiny"):
        load_clip("ViT-X")
    with pytest.raises(ValueError, match="valid: fp32"):
        load_clip("vrlib-tiny", device="cpu", precision="fp8")


def test_mismatched_checkpoint_names_keys(enc, tmp_path):
    state = dict(enc.model.state_dict())
    state.pop("visual.attnpool.c_proj.weight")
    state["extra.weight"] = torch.zeros(1)
    state["text_projection"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_clip("vrlib-tiny", pretrained=str(path), device="cpu")
    msg = str(err.value)
    assert (
        "bad.pt" in msg
        and "visual.attnpool.c_proj.weight" in msg
        and "extra.weight" in msg
        and "text_projection (3, 3)" in msg
    )


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(ValueError, match="junk.pt: cannot read"):
        load_clip("vrlib-tiny", pretrained=str(path), device="cpu")


def test_offline_tag_fails_fast_with_local_path_hint(monkeypatch, tmp_path):
    """ViT-B-32:openai with HF_HUB_OFFLINE=1 and an empty cache: an immediate, explanatory error."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        load_clip("ViT-B-32", pretrained="openai", device="cpu", cache_dir=str(tmp_path))
    print(f"offline error after {time.perf_counter() - start:.4f} s")  # reported, not asserted
    msg = str(err.value)
    assert err.value.model_name == "ViT-B-32" and err.value.tag == "openai"
    assert (
        "HF_HUB_OFFLINE" in msg
        and "local checkpoint file" in msg
        and "`--pretrained FILE` on the command line" in msg  # the CLI user's spelling
        and "pretrained=FILE) in Python" in msg
    )


def test_cached_tag_is_loaded_without_network(monkeypatch, tmp_path, enc):
    """A tag whose file sits in the (url) cache loads offline, with the tag's preprocessing."""
    import open_clip.pretrained as ocp

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = "https://example.invalid/weights/vrlib-tiny-test.pt"
    monkeypatch.setitem(
        ocp._PRETRAINED,
        "vrlib-tiny",
        {"testtag": {"url": url, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}},
    )
    torch.save(enc.model.state_dict(), tmp_path / "vrlib-tiny-test.pt")
    loaded = load_clip("vrlib-tiny", pretrained="testtag", device="cpu", cache_dir=str(tmp_path))
    assert loaded.preprocess_cfg["mean"] == (0.5, 0.5, 0.5) and loaded.source == "testtag"
    frames = _frames(2, 70, 70)
    torch.testing.assert_close(
        loaded.model.encode_image(enc.preprocess_frames(frames)),
        enc.model.encode_image(enc.preprocess_frames(frames)),
    )


def test_text_token_features_carry_gradients_for_training(enc):
    ids = enc.tokenizer(["a red circle", "two squares"])
    feats = enc.text_token_features(ids)  # (2, 32, 128)
    assert feats.requires_grad and feats.shape == (2, 32, 128)
    feats[enc.token_mask(ids)].sum().backward()
    assert enc.model.token_embedding.weight.grad is not None
    enc.model.zero_grad(set_to_none=True)
    tokens, _ = enc.encode_text_tokens(["a red circle", "two squares"])
    torch.testing.assert_close(feats.detach(), tokens)
