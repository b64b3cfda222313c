"""CLIP2Video's Temporal Difference Block (TDB) and Temporal Alignment Block (TAB), with the
ablation variants of the paper's Table 1 (Fang et al. 2021, arXiv:2106.11097).

TDB heads (``tdb-sub``, ``tdb-mlp``, ``tdb``, ``tdb-all``)
    Differences of adjacent frame features ``f[k+1] - f[k]`` are turned into difference tokens
    and inserted between the frame tokens; frame positions ``P`` and a type embedding ``T``
    (frame / difference) are added (Eq. 2); an ``layers``-layer temporal transformer (L_t = 4)
    runs over the 2T-1 tokens; every output gets its own input added back (CLIP4Clip's
    residual); the outputs are normalised, mean-pooled over valid tokens and normalised again.

    ========== ============================================= ======================
    variant    difference token                              pooled outputs
    ========== ============================================= ======================
    tdb        2*sigmoid(LN(delta(d + P))) - 1, delta a       frame tokens only
               1-layer transformer over the differences (Eq. 1)
    tdb-all    same as tdb                                    frame + difference
    tdb-mlp    2*sigmoid(LN(W d)) - 1 (one linear map)        frame tokens only
    tdb-sub    d itself (raw subtraction)                     frame tokens only
    ========== ============================================= ======================

TDB+TAB heads (``tdb+tab-base``, ``tdb+tab-temporal``, ``tdb+tab-transformer``, ``tdb+tab-tdb``)
    The global part is the ``tdb`` head above. TAB aggregates the tokens of each modality on K
    shared centers (NetVLAD-like, Eqs. 3-6) into an aligned embedding per side, and the
    similarity is ``w * global + (1 - w) * aligned`` (w = 0.5), the loss likewise (see
    ``base``). Text side: every word token (``tokens`` with ``token_mask``). Video side: the
    frame tokens plus, for all variants but ``base``, extra tokens computed from a sparser
    resampling of the frames, encoded as the Table 1 rows and the ablation text (Sec. 4.2.2) say:

    ==================== =============================================================
    variant              video tokens given to TAB
    ==================== =============================================================
    tdb+tab-base         the T frame features only ("basic alignment")
    tdb+tab-temporal     + sparse frames through the *shared* TDB + temporal transformer
                         of the global branch ("shared temporal output"), frame outputs
    tdb+tab-transformer  + sparse frames + P through a new 1-layer transformer, + residual
    tdb+tab-tdb          + sparse frames through the shared TDB (difference tokens, P, T),
                         then a new 1-layer transformer; frame outputs + residual (the paper's)
    ==================== =============================================================

Choices where the paper is open (each has a test):

- *Which frames are "double frame rate".* The paper resamples ``{f^0, f^2, ...}`` from the
  T frames ("sparsely", Eq. 5 sums over 1.5(m-1) tokens) and the released code takes every
  second frame feature. So the default ``extra_frames="stride2"`` uses ``frames[:, ::2]``
  (ceil(T/2) extra tokens) and needs no extra input: ``needs_double_rate`` is False.
  ``extra_frames="double_rate"`` instead encodes the caller's ``frames_2x`` (B, 2T, D)
  (2T uniform samples), for studies that read "double frame rate" literally; then
  ``needs_double_rate`` is True and the position table has 2 * num_frames rows.
  ``frames_2x`` is ignored when the head does not need it.
- *Masking of difference tokens.* ``d_k = f[k+1] - f[k]`` is valid only when both frames are
  valid (the released code used the mask of f[k] alone).
- *Positions.* In delta's input ``d_k`` gets P[k+1] (the later frame); in the interleaved
  sequence ``d_k`` shares P[k] with the frame before it and is told apart by its type
  embedding. Both follow the released code.
- *LayerNorm before the sigmoid* (not in Eq. 1, present in the released code) keeps
  2*sigmoid(.)-1 out of saturation whatever the feature scale.
- *TAB assignment.* ``a_ik = softmax_k(assign_scale * <x_i, c_k>)``: the paper's rho_i is the
  i-th token, not a scale, so ``assign_scale`` is a fixed constant, default 1.0 (the plain dot
  product of Eq. 3). Tokens of both modalities are L2-normalised before TAB so that the
  shared centers see frame and word tokens on one scale (the released code used raw CLIP
  outputs); assignment centers c start N(0, 1) so that assignments are not uniform at init,
  residual centers c~ start N(0, 1/D) (norm about 1, like a token).
- *TAB aggregation* (Eqs. 4-6): ``v_k = l2norm(sum_i m_i a_ik (x_i - c~_k))``, then the mean
  over the K centers, then l2norm (as in the released code).
- *TAB's text tokens* are the word tokens and the end-of-text token, as ``token_mask`` marks
  them, **without position 0**, the start-of-text token, as the released code drops it. Why:
  in a causal text tower the start token attends only to itself, so its feature is the same
  for every caption; kept, it would add one constant token to every caption's aligned
  embedding. ``tokens`` are therefore expected as the text tower lays them out (start token
  first: ``ClipEncoder.encode_text_tokens`` and every ``vrlib.models.text_side``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from .base import (
    TemporalHead,
    TemporalTransformer,
    check_choice,
    check_positive_int,
    check_sequence,
    check_vectors,
    l2norm,
    learned_embedding,
    positions,
)
from .clip4clip import SeqTransfConfig, pool_frames
from .registry import MODELS, make_config

DIFFERENCES = ("attention", "mlp", "sub")
POOLS = ("frames", "all")
EXTRAS = ("none", "temporal", "transformer", "tdb")
EXTRA_FRAMES = ("stride2", "double_rate")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclasses.dataclass
class TDBConfig(SeqTransfConfig):
    difference: str = "attention"  # how a difference token is made, see DIFFERENCES
    pool: str = "frames"  # which transformer outputs are pooled, see POOLS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("difference", self.difference, DIFFERENCES)
        check_choice("pool", self.pool, POOLS)


@dataclasses.dataclass
class TABConfig(TDBConfig):
    centers: int = 5  # K shared centers
    w: float = 0.5  # weight of the global similarity (and loss); 1 - w for the aligned one
    extra: str = "tdb"  # how the resampled frames are encoded, see EXTRAS
    extra_frames: str = "stride2"  # where the resampled frames come from, see EXTRA_FRAMES
    assign_scale: float = 1.0  # fixed factor on <x, c_k> before the softmax over centers

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("centers", self.centers)
        if not _is_number(self.w) or not 0.0 <= self.w <= 1.0:
            raise ValueError(f"w must be a number in [0, 1], got {self.w!r}")
        if not _is_number(self.assign_scale) or not self.assign_scale > 0:
            raise ValueError(f"assign_scale must be a number > 0, got {self.assign_scale!r}")
        check_choice("extra", self.extra, EXTRAS)
        check_choice("extra_frames", self.extra_frames, EXTRA_FRAMES)


def interleave(frames: Tensor, diffs: Tensor) -> Tensor:
    """[f0, d0, f1, d1, ..., f_{T-1}] from frames (B, T, ...) and diffs (B, T-1, ...)."""
    pad = frames.new_zeros(frames[:, :1].shape)  # (B, 1, ...)
    pairs = torch.stack([frames, torch.cat([diffs, pad], dim=1)], dim=2)  # (B, T, 2, ...)
    return pairs.flatten(1, 2)[:, :-1]  # (B, 2T-1, ...)


class TemporalDifferenceBlock(nn.Module):
    """Difference tokens from adjacent frames (Eq. 1 and its ablations ``mlp`` and ``sub``).

    ``forward`` returns the difference tokens (B, T-1, D) and their mask; for ``attention`` and
    ``mlp`` every value lies in (-1, 1).
    """

    def __init__(self, dim: int, heads: int, kind: str) -> None:
        super().__init__()
        check_choice("difference", kind, DIFFERENCES)
        self.kind = kind
        if kind == "attention":
            self.delta = TemporalTransformer(dim, layers=1, heads=heads)
        if kind == "mlp":
            self.proj = nn.Linear(dim, dim, bias=False)
        if kind != "sub":
            self.norm = nn.LayerNorm(dim)

    @staticmethod
    def difference_mask(mask: Tensor) -> Tensor:
        """(B, T) frame mask -> (B, T-1): d_k is valid only if frames k and k+1 both are."""
        return mask[:, 1:] & mask[:, :-1]

    def forward(self, frames: Tensor, mask: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """frames (B, T, D), mask (B, T), pos (T, D) -> (diffs (B, T-1, D), mask (B, T-1))."""
        d = frames[:, 1:] - frames[:, :-1]  # (B, T-1, D)
        d_mask = self.difference_mask(mask)
        if self.kind == "sub":
            return d, d_mask
        if self.kind == "attention":
            d = self.delta(d + pos[1:], d_mask)
        else:
            d = self.proj(d)
        return 2 * torch.sigmoid(self.norm(d)) - 1, d_mask


class TDB(TemporalHead):
    """Temporal transformer over frame tokens interleaved with difference tokens."""

    def __init__(self, config: TDBConfig) -> None:
        super().__init__(config)
        self.pool = config.pool
        self.frame_pos = learned_embedding(self._position_count(), config.dim)  # (P, D)
        self.type_emb = learned_embedding(2, config.dim)  # row 0: frame, row 1: difference
        self.difference = TemporalDifferenceBlock(config.dim, config.heads, config.difference)
        self.transformer = TemporalTransformer(config.dim, config.layers, config.heads)

    def _position_count(self) -> int:
        return self.num_frames

    def tokens(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eq. 2: interleaved tokens with P and T added, their mask, and their raw values.

        Returns tokens (B, 2T-1, D), mask (B, 2T-1), values (B, 2T-1, D) (frames and
        difference tokens before P and T: what the residual adds back).
        """
        pos = positions(self.frame_pos, frames.shape[1], "frames")  # (T, D)
        diffs, d_mask = self.difference(frames, mask, pos)  # (B, T-1, D), (B, T-1)
        values = interleave(frames, diffs)  # (B, 2T-1, D)
        embed = interleave(
            (pos + self.type_emb[0]).expand_as(frames),
            (pos[:-1] + self.type_emb[1]).expand_as(diffs),
        )  # (B, 2T-1, D)
        return values + embed, interleave(mask, d_mask), values

    def temporal_outputs(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Transformer outputs plus residual for every token: (B, 2T-1, D) and mask (B, 2T-1).
        Frame tokens are at even positions (``[:, ::2]``), difference tokens at odd ones."""
        tokens, t_mask, values = self.tokens(frames, mask)
        return self.transformer(tokens, t_mask) + values, t_mask

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        out, t_mask = self.temporal_outputs(frames, mask)  # (B, 2T-1, D)
        if self.pool == "all":
            return pool_frames(out, t_mask)
        return pool_frames(out[:, ::2], mask)  # frame tokens only: (B, T, D)


class TemporalAlignmentBlock(nn.Module):
    """K shared centers aggregating a token set into one aligned embedding (Eqs. 3-6)."""

    def __init__(self, dim: int, centers: int, assign_scale: float = 1.0) -> None:
        super().__init__()
        self.assign_scale = float(assign_scale)
        self.assign_centers = nn.Parameter(torch.randn(centers, dim))  # c, (K, D)
        self.residual_centers = nn.Parameter(torch.randn(centers, dim) * dim**-0.5)  # c~, (K, D)

    def assign(self, tokens: Tensor) -> Tensor:
        """Soft assignment of L2-normalised tokens (B, N, D) to centers: (B, N, K), rows sum to 1."""
        return torch.softmax(self.assign_scale * l2norm(tokens) @ self.assign_centers.T, dim=-1)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """tokens (B, N, D), mask (B, N) -> aligned embedding (B, D), L2-normalised."""
        x = l2norm(tokens)
        a = torch.where(mask.unsqueeze(-1), self.assign(tokens), 0.0)  # (B, N, K)
        x = torch.where(mask.unsqueeze(-1), x, 0.0)  # padded values never reach the sum
        # sum_i a_ik (x_i - c~_k) = sum_i a_ik x_i - (sum_i a_ik) c~_k
        v = torch.einsum("bnk,bnd->bkd", a, x) - a.sum(1).unsqueeze(-1) * self.residual_centers
        return l2norm(l2norm(v).mean(dim=1))  # (B, K, D) -> (B, D)


class TDBTAB(TDB):
    """The ``tdb`` head for the global similarity plus TAB for the aligned one."""

    needs_tokens = True

    def __init__(self, config: TABConfig) -> None:
        super().__init__(config)
        self.extra = config.extra
        self.extra_frames = config.extra_frames
        self.w = float(config.w)
        self.needs_double_rate = config.extra != "none" and config.extra_frames == "double_rate"
        self.tab = TemporalAlignmentBlock(config.dim, config.centers, config.assign_scale)
        if config.extra in ("transformer", "tdb"):
            self.extra_transformer = TemporalTransformer(config.dim, layers=1, heads=config.heads)

    def _position_count(self) -> int:
        double = self.config.extra_frames == "double_rate" and self.config.extra != "none"
        return self.num_frames * (2 if double else 1)

    def resampled(
        self, frames: Tensor, mask: Tensor, frames_2x: Tensor | None, mask_2x: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The sparser (or, with ``double_rate``, denser) frame sequence TAB's extra tokens use."""
        if self.extra_frames == "stride2":
            return frames[:, ::2], mask[:, ::2]  # (B, ceil(T/2), D)
        if frames_2x is None or mask_2x is None:
            raise ValueError(
                f"{self.name or type(self).__name__} was built with extra_frames='double_rate': "
                "video_side needs frames_2x (B, 2T, D) and mask_2x (B, 2T)"
            )
        return check_sequence(frames_2x, mask_2x, self.dim, "frames_2x")

    def extra_tokens(self, frames: Tensor, mask: Tensor) -> Tensor:
        """Encode the resampled frames (B, S, D) as the variant says -> (B, S, D)."""
        if self.extra == "temporal":  # the global branch's own TDB + transformer, shared
            return self.temporal_outputs(frames, mask)[0][:, ::2]
        if self.extra == "transformer":
            pos = positions(self.frame_pos, frames.shape[1], "resampled frames")  # (S, D)
            return self.extra_transformer(frames + pos, mask) + frames
        tokens, t_mask, _ = self.tokens(frames, mask)  # shared TDB: (B, 2S-1, D)
        return self.extra_transformer(tokens, t_mask)[:, ::2] + frames

    def alignment_tokens(
        self,
        frames: Tensor,
        mask: Tensor,
        frames_2x: Tensor | None = None,
        mask_2x: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Video tokens TAB aggregates: (B, N, D) and mask (B, N); N = T + S (S = 0 for base)."""
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        if self.extra == "none":
            return frames, mask
        sparse, s_mask = self.resampled(frames, mask, frames_2x, mask_2x)  # (B, S, D)
        extra = self.extra_tokens(sparse, s_mask)
        return torch.cat([frames, extra], dim=1), torch.cat([mask, s_mask], dim=1)

    def video_side(
        self,
        frames: Tensor,
        mask: Tensor,
        frames_2x: Tensor | None = None,
        mask_2x: Tensor | None = None,
    ) -> dict[str, Tensor]:
        tokens, t_mask = self.alignment_tokens(frames, mask, frames_2x, mask_2x)
        return {"video": self.encode_video(frames, mask), "video_aligned": self.tab(tokens, t_mask)}

    def text_side(
        self, text: Tensor, tokens: Tensor | None = None, token_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        check_vectors(text, self.dim, "text")
        if tokens is None or token_mask is None:
            raise ValueError(
                f"{self.name or type(self).__name__} has needs_tokens=True: text_side needs "
                "tokens (B, L, D) and token_mask (B, L)"
            )
        words, word_mask = tokens[:, 1:], token_mask[:, 1:]  # drop the start token (module doc)
        words, word_mask = check_sequence(
            words, word_mask, self.dim, "tokens after the start token"
        )
        return {"text": l2norm(text), "text_aligned": self.tab(words, word_mask)}

    def similarity_parts(
        self, text_side: dict[str, Tensor], video_side: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        return {
            "global": text_side["text"] @ video_side["video"].T,  # (Bt, Bv)
            "aligned": text_side["text_aligned"] @ video_side["video_aligned"].T,  # (Bt, Bv)
        }

    def part_weights(self) -> dict[str, float]:
        return {"global": self.w, "aligned": 1.0 - self.w}


# --- registry: one builder per Table 1 row ------------------------------------------------


@MODELS.register("tdb-sub")
def tdb_sub(**cfg: Any) -> TDB:
    return TDB(make_config(TDBConfig, cfg, difference="sub", pool="frames"))


@MODELS.register("tdb-mlp")
def tdb_mlp(**cfg: Any) -> TDB:
    return TDB(make_config(TDBConfig, cfg, difference="mlp", pool="frames"))


@MODELS.register("tdb")
def tdb(**cfg: Any) -> TDB:
    return TDB(make_config(TDBConfig, cfg, difference="attention", pool="frames"))


@MODELS.register("tdb-all")
def tdb_all(**cfg: Any) -> TDB:
    return TDB(make_config(TDBConfig, cfg, difference="attention", pool="all"))


def _tdb_tab(extra: str, cfg: dict[str, Any]) -> TDBTAB:
    return TDBTAB(make_config(TABConfig, cfg, difference="attention", pool="frames", extra=extra))


@MODELS.register("tdb+tab-base")
def tdb_tab_base(**cfg: Any) -> TDBTAB:
    return _tdb_tab("none", cfg)


@MODELS.register("tdb+tab-temporal")
def tdb_tab_temporal(**cfg: Any) -> TDBTAB:
    return _tdb_tab("temporal", cfg)


@MODELS.register("tdb+tab-transformer")
def tdb_tab_transformer(**cfg: Any) -> TDBTAB:
    return _tdb_tab("transformer", cfg)


@MODELS.register("tdb+tab-tdb")
def tdb_tab_tdb(**cfg: Any) -> TDBTAB:
    return _tdb_tab("tdb", cfg)
