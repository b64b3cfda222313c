"""The small networks of the two world-trained captioners, and greedy / beam decoding.

Why two architectures: Ventura et al. compare ClipCap (a frozen CLIP image embedding mapped to a
prefix for a language model) with BLIP (a decoder that cross-attends to the patch tokens of its
own vision transformer). Here both are tiny and trained from scratch on the world's still images:

- :class:`ClipCapNet`: an MLP maps the frozen expert's image embedding (d) to ``prefix_length``
  vectors that precede the caption tokens in a causal transformer (GPT-style, pre-LN).
- :class:`BlipNet`: a small ViT encodes the image into patch tokens; every decoder block
  self-attends causally to the caption and cross-attends to the patches.

Both expose ``context(inputs)`` (what an image becomes once) and ``logits(context, tokens)``, so
one training loop and one decoder (:func:`generate`) serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vrlib.captions.base import Decoding


@dataclass(frozen=True)
class NetConfig:
    """Sizes of a caption network (saved in its checkpoint)."""

    vocab_size: int
    width: int = 128
    layers: int = 2
    heads: int = 4
    max_tokens: int = 32  # caption tokens incl. <bos>/<eos>
    prefix_length: int = 4  # ClipCap only
    embed_dim: int = 128  # ClipCap only: the expert's embedding size
    image_size: int = 64  # BLIP only
    patch_size: int = 8  # BLIP only
    vision_layers: int = 2  # BLIP only


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, optional cross-attention, MLP."""

    def __init__(self, width: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross = nn.MultiheadAttention(width, heads, batch_first=True) if cross else None
        self.ln_cross = nn.LayerNorm(width) if cross else None
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor | None
    ) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        if self.cross is not None:
            h = self.ln_cross(x)
            x = x + self.cross(h, memory, memory, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TextDecoder(nn.Module):
    """Causal transformer language model over word ids, with an optional prefix or memory."""

    def __init__(self, cfg: NetConfig, cross: bool, prefix_length: int = 0) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.randn(prefix_length + cfg.max_tokens, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cross) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied, as in GPT-2
        nn.init.normal_(self.embed.weight, std=0.02)  # GPT-2's init; N(0, 1) starts at loss ~30

    def forward(
        self,
        tokens: torch.Tensor,
        prefix: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, L, V) of the next word after each of ``tokens`` (B, L)."""
        x = self.embed(tokens)  # (B, L, D)
        p = 0 if prefix is None else prefix.shape[1]
        if prefix is not None:
            x = torch.cat([prefix, x], dim=1)  # (B, P + L, D)
        n = x.shape[1]
        if n > self.pos.shape[0]:
            raise ValueError(f"sequence of {n} positions exceeds the model's {self.pos.shape[0]}")
        x = x + self.pos[:n]
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)  # True = blocked
        for block in self.blocks:
            x = block(x, mask, memory)
        return self.head(self.ln(x[:, p:]))  # (B, L, V)


class CaptionNet(nn.Module):
    """An image-conditioned language model: ``context(inputs)`` once, then ``logits`` per step."""

    def context(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.logits(self.context(inputs), tokens)


class ClipCapNet(CaptionNet):
    """Inputs: the frozen expert's L2-normalised image embeddings (B, d)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden = cfg.prefix_length * cfg.width // 2
        self.mapper = nn.Sequential(  # ClipCap's MLP mapping network
            nn.Linear(cfg.embed_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, cfg.prefix_length * cfg.width),
        )
        self.decoder = TextDecoder(cfg, cross=False, prefix_length=cfg.prefix_length)

    def context(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.mapper(inputs).view(
            len(inputs), self.cfg.prefix_length, self.cfg.width
        )  # (B, P, D)

    def logits(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens, prefix=context)


class TinyViT(nn.Module):
    """Patch embedding + pre-LN transformer encoder: (B, 3, S, S) -> patch tokens (B, M, D)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        n = (cfg.image_size // cfg.patch_size) ** 2
        self.pos = nn.Parameter(torch.randn(n, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.vision_layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(cfg.width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixels).flatten(2).transpose(1, 2)  # (B, M, D)
        return self.ln(self.encoder(x + self.pos))


class BlipNet(CaptionNet):
    """Inputs: pixels (B, 3, S, S) scaled to [-1, 1] (see :func:`blip_pixels`)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = TinyViT(cfg)
        self.decoder = TextDecoder(cfg, cross=True)

    def context(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.vision(inputs)  # (B, M, D)

    def logits(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens, memory=context)


def blip_pixels(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (antialiased bilinear resize)."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x * 2.0 - 1.0


# ----------------------------------------------------------------------------- decoding


@torch.no_grad()
def generate(
    net: CaptionNet,
    context: torch.Tensor,
    decoding: Decoding,
    bos: int,
    eos: int,
    banned: tuple[int, ...],
) -> list[list[int]]:
    """Word ids (without <bos>/<eos>) of one caption per context row, greedy or beam search.

    Args:
        net: the network (``logits`` is called on the whole prefix at each step; captions are
            short, so recomputing beats the bookkeeping of a key/value cache).
        context: ``net.context(inputs)``, (B, ...).
        decoding: method, beam size, length limit, length penalty.
        bos, eos: start and end ids; ``banned`` ids are never generated (pad, bos, unk).
    """

    def log_probs(rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        out = net.logits(context[rows], tokens)[:, -1].float().log_softmax(-1)  # (R, V)
        out[:, list(banned)] = -torch.inf
        return out

    if decoding.method == "greedy" or decoding.beam_size == 1:
        return _greedy(log_probs, len(context), decoding.max_length, bos, eos, context.device)
    return _beam(log_probs, len(context), decoding, bos, eos, context.device)


def _greedy(log_probs, batch: int, max_length: int, bos: int, eos: int, device) -> list[list[int]]:
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    for _ in range(max_length):
        nxt = log_probs(rows, tokens).argmax(-1)  # (B,)
        nxt[done] = eos
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == eos
        if done.all():
            break
    return [_strip(row.tolist()[1:], eos) for row in tokens]


def _strip(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


def _beam(log_probs, batch: int, d: Decoding, bos: int, eos: int, device) -> list[list[int]]:
    """Beam search per caption; a beam ends at <eos> and is ranked by ``score / len ** penalty``."""
    k = d.beam_size
    tokens = torch.full((batch, 1), bos, dtype=torch.long, device=device)  # (B * beams, L)
    scores = torch.zeros(batch, 1, device=device)  # (B, beams)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    # Each beam ends with <eos> at most once per step, so the best 2k candidates always hold k
    # that go on: every caption keeps exactly k beams.
    for _ in range(d.max_length):
        beams = scores.shape[1]
        rows = torch.arange(batch, device=device).repeat_interleave(beams)  # (B * beams,)
        lp = log_probs(rows, tokens)  # (B * beams, V)
        vocab = lp.shape[-1]
        total = (scores.reshape(-1, 1) + lp).view(batch, beams * vocab)  # (B, beams * V)
        top_s, top_i = total.topk(min(2 * k, beams * vocab), dim=1)  # (B, 2k)
        keep_rows, keep_words, keep_scores = [], [], []
        for b in range(batch):
            alive = []
            for s, i in zip(top_s[b].tolist(), top_i[b].tolist(), strict=True):
                beam, word = divmod(i, vocab)
                prev = tokens[b * beams + beam, 1:].tolist()
                if word == eos:
                    if len(finished[b]) < k:
                        finished[b].append((s / (len(prev) + 1) ** d.length_penalty, prev))
                elif len(alive) < k:
                    alive.append((s, b * beams + beam, word))
            keep_scores.append([a[0] for a in alive])
            keep_rows += [a[1] for a in alive]
            keep_words += [a[2] for a in alive]
        tokens = torch.cat(
            [tokens[keep_rows], torch.tensor(keep_words, device=device)[:, None]], dim=1
        )
        scores = torch.tensor(keep_scores, device=device)  # (B, k)
        if all(len(f) >= k for f in finished):
            break
    else:  # the length limit: beams still alive compete as they are
        for b in range(batch):
            for j, s in enumerate(scores[b].tolist()):
                ids = tokens[b * scores.shape[1] + j, 1:].tolist()
                finished[b].append((s / (len(ids) + 1) ** d.length_penalty, ids))
    return [max(f, key=lambda x: x[0])[1] for f in finished]
