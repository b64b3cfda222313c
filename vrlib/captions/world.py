"""The world's trained captioners as :class:`~vrlib.captions.base.Captioner` objects.

``load_captioner("clipcap-tiny", preset="default", seed=0)`` trains the captioner on first use
(cached in ``$VRLIB_HOME/captioners``, see ``vrlib.captions.train``) and returns it;
:func:`load_world_captioner` loads any checkpoint file written by ``train_captioner``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vrlib.captions.base import CAPTIONERS, Captioner, Decoding, WordVocab, sha256_state
from vrlib.captions.nets import NetConfig, blip_pixels, generate
from vrlib.captions.train import build_net, ensure_captioner
from vrlib.io import sha256_file


class WorldCaptioner(Captioner):
    """A ``clipcap-tiny`` or ``blip-tiny`` network with its vocabulary (and, for ClipCap, the expert).

    Attributes:
        net: the caption network (eval mode).
        vocab: its word vocabulary.
        expert: the frozen image-text expert whose embeddings ClipCap reads (None for BLIP).
    """

    def __init__(
        self, kind: str, net, vocab: WordVocab, decoding: Decoding, expert=None, device=None
    ) -> None:
        self.name = kind
        self.net = net.eval()
        self.vocab = vocab
        self.decoding = decoding
        self.expert = expert
        self.device = torch.device(device or "cpu")
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            header = {"kind": self.name, "vocab": self.vocab.itos, "decoding": self.decoding}
            header["expert"] = self.expert.fingerprint if self.expert is not None else None
            self._fingerprint = sha256_state(header, self.net.state_dict())
        return self._fingerprint

    @torch.no_grad()
    def _caption_batch(self, frames: torch.Tensor) -> list[str]:
        if self.expert is not None:
            inputs = self.expert.encode_frames(frames).to(self.device)  # (B, d)
        else:
            inputs = blip_pixels(frames, self.net.cfg.image_size).to(self.device)  # (B, 3, S, S)
        context = self.net.context(inputs)
        banned = (WordVocab.PAD, WordVocab.BOS, WordVocab.UNK)
        ids = generate(self.net, context, self.decoding, WordVocab.BOS, WordVocab.EOS, banned)
        return [self.vocab.decode(row) for row in ids]


def load_world_captioner(
    path: str | os.PathLike,
    decoding: Decoding | None = None,
    expert_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> WorldCaptioner:
    """Load a checkpoint written by ``train_captioner``.

    Args:
        path: the checkpoint.
        decoding: default :class:`Decoding` (beam search, 3 beams).
        expert_path: ClipCap only; default the expert recorded in the checkpoint. Its SHA-256 must
            match the one the captioner was trained on.
        device: default CPU.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the expert is not the one the captioner learned from.
    """
    from vrlib.encoders import load_clip

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no captioner checkpoint (train one with ensure_captioner)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    kind, net_cfg = ckpt["kind"], NetConfig(**ckpt["net_config"])
    net = build_net(kind, net_cfg)
    net.load_state_dict(ckpt["model"])
    expert = None
    if kind == "clipcap-tiny":
        expert_path = Path(expert_path or ckpt["summary"]["expert_path"])
        if sha256_file(expert_path) != ckpt["inputs"]["expert_sha"]:
            raise ValueError(f"{path}: was trained on another expert than {expert_path}")
        expert = load_clip("vrlib-tiny", pretrained=str(expert_path), device=device)
    vocab = WordVocab(ckpt["vocab"][len(WordVocab.SPECIALS) :])
    return WorldCaptioner(
        kind, net.to(device or "cpu"), vocab, decoding or Decoding(), expert, device
    )


def _builder(kind: str):
    def build(
        preset: str = "default",
        seed: int = 0,
        decoding: Decoding | dict | None = None,
        checkpoint: str | os.PathLike | None = None,
        device: str | None = None,
    ) -> WorldCaptioner:
        if isinstance(decoding, dict):
            decoding = Decoding(**decoding)
        path = checkpoint or ensure_captioner(kind, preset, seed, device=device)
        return load_world_captioner(path, decoding, device=device)

    build.__doc__ = f"``{kind}`` trained on the ``preset`` world (trained on first use), or loaded from ``checkpoint``."
    return build


CAPTIONERS.register("clipcap-tiny")(_builder("clipcap-tiny"))
CAPTIONERS.register("blip-tiny")(_builder("blip-tiny"))
