"""The captioner interface, its registry, decoding settings and the word vocabulary.

Why: study 03 labels unlabelled video frames with image captioners and compares them. Every
captioner (the two trained on the embedded world, the ground-truth describer's pixel-free
sibling, real BLIP and ClipCap from local weights) answers the same call,
``caption(frames uint8 (N, H, W, 3)) -> list[str]``, and carries a :attr:`Captioner.fingerprint`
that keys the on-disk caption cache (``vrlib.captions.labels``). Adding a captioner is one builder
function with ``@CAPTIONERS.register("name")``.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlib.registry import Registry

DECODING_METHODS = ("greedy", "beam")


@dataclass(frozen=True)
class Decoding:
    """How token sequences are chosen (part of every caption-cache key).

    Attributes:
        method: ``"greedy"`` (argmax at each step) or ``"beam"`` (beam search, log-probabilities
            summed, finished beams kept, the best by ``score / length ** length_penalty``).
        beam_size: beams kept per caption (beam search only).
        max_length: most tokens generated, end token excluded.
        length_penalty: exponent of the length normalisation (0 = raw sum of log-probabilities).
    """

    method: str = "beam"
    beam_size: int = 3
    max_length: int = 24
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in DECODING_METHODS:
            raise ValueError(
                f"unknown decoding method {self.method!r}; valid: {', '.join(DECODING_METHODS)}"
            )
        if self.beam_size < 1 or self.max_length < 1:
            raise ValueError(
                f"beam_size and max_length must be >= 1, got {self.beam_size}, {self.max_length}"
            )


def check_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) as a CPU tensor; ValueError naming the shape or dtype."""
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (0..255), got {x.dtype}")
    return x.cpu()


class Captioner(ABC):
    """Turns frames into one caption each.

    Subclasses implement :meth:`_caption_batch` and :attr:`fingerprint`; :meth:`caption` does the
    checking, batching and progress bar. Captions are deterministic: decoding is greedy or beam
    (no sampling), so the same weights and :class:`Decoding` give the same text.

    Attributes:
        name: registry name (or a description for captioners built outside the registry).
        decoding: the decoding settings.
    """

    name: str = "captioner"
    decoding: Decoding = Decoding()

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """SHA-256 of everything that changes a caption except the frames: weights and decoding."""

    @abstractmethod
    def _caption_batch(self, frames: torch.Tensor) -> list[str]:
        """Captions of one batch of checked uint8 frames (B, H, W, 3)."""

    def caption(
        self, frames: np.ndarray | torch.Tensor, batch_size: int = 64, progress: bool | None = None
    ) -> list[str]:
        """One caption per frame.

        Args:
            frames: uint8 RGB (N, H, W, 3), any size (each captioner resizes to its own input).
            batch_size: frames decoded together.
            progress: show a progress bar; None shows one when there are more than 4 batches.

        Returns:
            N strings, lower case, words separated by single spaces.
        """
        x = check_frames(frames)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        starts = range(0, len(x), batch_size)
        show = len(starts) > 4 if progress is None else progress
        out: list[str] = []
        for start in tqdm(starts, desc=f"caption {self.name}", disable=not show, leave=False):
            out.extend(self._caption_batch(x[start : start + batch_size]))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.decoding})"


CaptionerBuilder = Callable[..., Captioner]
CAPTIONERS: Registry[CaptionerBuilder] = Registry("captioner")


def load_captioner(name: str, **kwargs) -> Captioner:
    """Build the captioner registered as ``name`` (KeyError lists the valid names).

    ``None`` keyword values are dropped so that a parameter file's unset keys keep the builder's
    own defaults (timm's factory does the same).
    """
    builder = CAPTIONERS.get(name)
    return builder(**{k: v for k, v in kwargs.items() if v is not None})


def sha256_state(header: dict, state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a JSON header plus every tensor of a state dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- words

_WORD = re.compile(r"[a-z0-9']+|[,.]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: ``"On a red, X"`` -> ``["on", "a", "red", ",", "x"]``."""
    return _WORD.findall(text.lower())


def join_words(tokens: Iterable[str]) -> str:
    """Inverse of :func:`words` for our captions: punctuation attaches to the word before it."""
    return re.sub(r" ([,.])", r"\1", " ".join(tokens)).strip()


class WordVocab:
    """A closed word vocabulary built from training captions (the embedded world has ~80 words).

    Why words and not BPE: the world's captions come from a small grammar, so a word vocabulary is
    exact, tiny (small output layer, fast CPU training) and readable in tests. Ids 0..3 are
    ``<pad> <bos> <eos> <unk>``.
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    PAD, BOS, EOS, UNK = range(4)

    def __init__(self, tokens: Sequence[str]) -> None:
        self.itos = list(self.SPECIALS) + [t for t in tokens if t not in self.SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, captions: Iterable[str]) -> WordVocab:
        """Every word of ``captions``, sorted (so the same captions give the same ids)."""
        return cls(sorted({w for c in captions for w in words(c)}))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, captions: Sequence[str], length: int) -> torch.Tensor:
        """LongTensor (N, length): ``<bos> w1 .. wk <eos> <pad>..``, truncated to ``length``."""
        out = torch.full((len(captions), length), self.PAD, dtype=torch.long)
        for i, c in enumerate(captions):
            ids = [self.BOS, *(self.stoi.get(w, self.UNK) for w in words(c)), self.EOS]
            out[i, : min(length, len(ids))] = torch.tensor(ids[:length])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, stopping at ``<eos>``; specials are dropped."""
        out = []
        for i in ids:
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.itos[i])
        return join_words(out)
