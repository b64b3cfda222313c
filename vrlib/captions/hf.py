"""Real captioners from local weights: BLIP and ClipCap through ``transformers`` (pip extra ``captions``).

Why local paths only: the machines this workbench is built on reach no model hub, so a captioner
is a directory you downloaded once where the network is reachable. Loading never tries the
network (``local_files_only=True``); a missing path fails at once with
:class:`CaptionerWeightsUnavailableError`, naming what to pass (like ``load_clip``'s
``WeightsUnavailableError``).

- ``blip``: ``BlipForConditionalGeneration`` + ``BlipProcessor`` saved with ``save_pretrained``
  (e.g. Salesforce/blip-image-captioning-base, the captioner of Ventura et al.).
- ``clipcap``: a ClipCap checkpoint (Mokady et al. 2021, the MLP mapping network:
  ``clip_project.model.{0,2}.*`` and, when GPT-2 was fine-tuned, ``gpt.*``) plus GPT-2
  (``GPT2LMHeadModel`` and its tokenizer) from a local directory, on top of a CLIP image encoder
  (``vrlib.encoders.load_clip``; ClipCap's COCO weights expect ViT-B/32's unnormalised embedding).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vrlib.captions.base import CAPTIONERS, Captioner, Decoding, sha256_state


class CaptionerWeightsUnavailableError(FileNotFoundError):
    """A real captioner's weights are not at the local path given (or no path was given)."""


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise ImportError(
            "real captioners need the 'transformers' package: pip install 'vrlib[captions]'"
        ) from e
    return transformers


def _require_dir(path: str | os.PathLike | None, what: str, example: str) -> Path:
    if path is None or not Path(path).expanduser().is_dir():
        where = "no path was given" if path is None else f"{path} is not a directory"
        raise CaptionerWeightsUnavailableError(
            f"{what} weights are not available ({where}); nothing is downloaded. Save them once "
            f"where a model hub is reachable (save_pretrained) and pass the directory: {example}"
        )
    return Path(path).expanduser()


def _generate_kwargs(decoding: Decoding) -> dict[str, Any]:
    beams = decoding.beam_size if decoding.method == "beam" else 1
    return {
        "num_beams": beams,
        "do_sample": False,
        "max_new_tokens": decoding.max_length,
        "length_penalty": decoding.length_penalty,
    }


def _clean(text: str) -> str:
    return " ".join(text.strip().lower().split())


class BlipCaptioner(Captioner):
    """BLIP (``BlipForConditionalGeneration``) from a local directory."""

    def __init__(
        self, path: str | os.PathLike, decoding: Decoding | None = None, device: str | None = None
    ) -> None:
        tf = _require_transformers()
        self.path = _require_dir(
            path, "BLIP", "load_captioner('blip', path='/data/blip-image-captioning-base')"
        )
        self.name = f"blip:{self.path.name}"
        self.decoding = decoding or Decoding()
        self.device = torch.device(device or "cpu")
        self.processor = tf.BlipProcessor.from_pretrained(self.path, local_files_only=True)
        self.model = tf.BlipForConditionalGeneration.from_pretrained(
            self.path, local_files_only=True
        )
        self.model.to(self.device).eval()
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            header = {
                "kind": "hf-blip",
                "config": self.model.config.to_dict(),
                "decoding": self.decoding,
            }
            self._fingerprint = sha256_state(header, self.model.state_dict())
        return self._fingerprint

    @torch.no_grad()
    def _caption_batch(self, frames: torch.Tensor) -> list[str]:
        inputs = self.processor(images=list(frames.numpy()), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        out = self.model.generate(pixel_values=pixels, **_generate_kwargs(self.decoding))
        return [_clean(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]


class ClipCapCaptioner(Captioner):
    """ClipCap: CLIP image embedding -> MLP -> GPT-2 prefix, greedy or beam decoding.

    Args:
        checkpoint: ClipCap state dict (``.pt``), MLP mapping network.
        gpt2: directory with ``GPT2LMHeadModel`` and its tokenizer (``save_pretrained``).
        encoder: the CLIP image encoder (a ``ClipEncoder``) whose embedding the checkpoint maps.
        decoding: greedy or beam; generation also stops at a full stop, as ClipCap's own does.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        gpt2: str | os.PathLike,
        encoder: Any,
        decoding: Decoding | None = None,
        device: str | None = None,
    ) -> None:
        tf = _require_transformers()
        example = "load_captioner('clipcap', checkpoint='/data/coco_prefix.pt', gpt2='/data/gpt2', encoder=load_clip('ViT-B-32', pretrained=...))"
        if checkpoint is None or not Path(checkpoint).expanduser().is_file():
            raise CaptionerWeightsUnavailableError(
                f"ClipCap checkpoint {checkpoint} is not a file; nothing is downloaded. Pass it: {example}"
            )
        gpt2 = _require_dir(gpt2, "GPT-2", example)
        self.name = f"clipcap:{Path(checkpoint).name}"
        self.decoding = decoding or Decoding()
        self.device = torch.device(device or "cpu")
        self.encoder = encoder
        self.tokenizer = tf.AutoTokenizer.from_pretrained(gpt2, local_files_only=True)
        self.gpt = tf.GPT2LMHeadModel.from_pretrained(gpt2, local_files_only=True)
        state = torch.load(Path(checkpoint).expanduser(), map_location="cpu", weights_only=True)
        self.mapper = self._mapper(state, checkpoint)
        gpt_state = {k[len("gpt.") :]: v for k, v in state.items() if k.startswith("gpt.")}
        if gpt_state:
            self.gpt.load_state_dict(gpt_state, strict=False)
        self.gpt.to(self.device).eval()
        self.mapper.to(self.device).eval()
        self._fingerprint: str | None = None

    def _mapper(self, state: dict, checkpoint: Any) -> nn.Sequential:
        keys = ("clip_project.model.0.weight", "clip_project.model.2.weight")
        if not all(k in state for k in keys):
            raise ValueError(
                f"{checkpoint}: not a ClipCap MLP checkpoint (needs {', '.join(keys)}); "
                "the transformer mapping network is not supported"
            )
        hidden, dim = state[keys[0]].shape
        out = state[keys[1]].shape[0]
        width = self.gpt.config.n_embd
        if out % width or dim != self.encoder.embed_dim:
            raise ValueError(
                f"{checkpoint}: maps a {dim}-d embedding to {out} values, which does not fit "
                f"this encoder ({self.encoder.embed_dim}-d) and GPT-2 (width {width})"
            )
        self.prefix_length = out // width
        mapper = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, out))
        mapper.load_state_dict(
            {
                k[len("clip_project.model.") :]: v
                for k, v in state.items()
                if k.startswith("clip_project.model.")
            }
        )
        return mapper

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            header = {
                "kind": "hf-clipcap",
                "encoder": self.encoder.fingerprint,
                "decoding": self.decoding,
            }
            state = {**{f"gpt.{k}": v for k, v in self.gpt.state_dict().items()}}
            state.update({f"mapper.{k}": v for k, v in self.mapper.state_dict().items()})
            self._fingerprint = sha256_state(header, state)
        return self._fingerprint

    @torch.no_grad()
    def _caption_batch(self, frames: torch.Tensor) -> list[str]:
        pixels = self.encoder.preprocess_frames(frames)
        emb = (
            self.encoder.model.encode_image(pixels).float().to(self.device)
        )  # (B, d), unnormalised
        prefix = self.mapper(emb).view(len(emb), self.prefix_length, -1)  # (B, P, E)
        stop = [
            i
            for i in (self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("."))
            if i is not None
        ]
        out = self.gpt.generate(
            inputs_embeds=prefix,
            attention_mask=torch.ones(prefix.shape[:2], dtype=torch.long, device=self.device),
            eos_token_id=stop,
            pad_token_id=stop[0],
            **_generate_kwargs(self.decoding),
        )
        return [_clean(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


@CAPTIONERS.register("blip")
def blip(
    path: str | None = None, decoding: Decoding | dict | None = None, device: str | None = None
) -> BlipCaptioner:
    """BLIP from a local ``save_pretrained`` directory."""
    return BlipCaptioner(
        path, Decoding(**decoding) if isinstance(decoding, dict) else decoding, device
    )


@CAPTIONERS.register("clipcap")
def clipcap(
    checkpoint: str | None = None,
    gpt2: str | None = None,
    encoder: Any = None,
    decoding: Decoding | dict | None = None,
    device: str | None = None,
) -> ClipCapCaptioner:
    """ClipCap from a local checkpoint and a local GPT-2 directory, over ``encoder`` (a ClipEncoder)."""
    if encoder is None:
        raise ValueError(
            "clipcap needs encoder=: the CLIP image encoder its checkpoint was trained on (load_clip(...))"
        )
    return ClipCapCaptioner(
        checkpoint,
        gpt2,
        encoder,
        Decoding(**decoding) if isinstance(decoding, dict) else decoding,
        device,
    )
