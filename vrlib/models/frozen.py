"""Frozen in Time's space-time transformer (Bain et al. 2021, §3.1), sized for a CPU.

An end-to-end dual encoder on pixels: a video (or an image, a one-frame video) goes through one
ViT whose blocks add *temporal* self-attention (over the same patch position across frames)
before the usual *spatial* self-attention (within a frame); the text tower is the image-text
expert's own, trained with it. Configurations are data (``vrlib/model_configs/frozen-*.json``)
naming the open_clip model whose image tower the spatial blocks load, the most frames, the block
style and the init of the temporal attention.

Design choices (each says why):

- **One CLS token for the whole clip** (``cls="video"``, the paper's and the default): it
  attends to every patch of every frame in both the temporal and the spatial step, and every
  patch attends to it as well as to its own group (the same position across frames, or the same
  frame). For one frame this is exactly the expert's image tower; for several frames the
  spatial step already mixes frames through the CLS, so the model is not the expert's mean
  pooling even before any training. ``cls="frame"`` is the labelled ablation: each frame keeps
  its own CLS (loaded from the expert's ``class_embedding``), the CLS tokens of the frames
  attend to each other in the temporal step like any patch position, and the video embedding is
  the mean of the L2-normalised per-frame outputs. With zero temporal attention and zero
  temporal embeddings that model is *exactly* the expert's image tower applied frame by frame
  and mean pooled (study 01's ``mean``), so 1 frame at 8 offsets equals 8 frames at 1 offset.
- **Temporal attention starts at zero** by zeroing its output projection (weight and bias): the
  branch adds nothing at step 0 but its output projection gets a gradient at once (the
  reference zeroes q/k/v and fills the projection with ones for the same purpose).
- **The block styles** (``block``; the attention and block are in
  :mod:`vrlib.models.space_time_blocks`): ``"frozen"`` is the paper's modified residual (the spatial
  branch's residual comes from the block input, so temporal attention reaches the output only
  through the spatial attention); ``"timesformer"`` is the original divided block (the spatial
  residual starts from the temporal output). At zero temporal init both equal the image block.
- **Temporal embeddings** are a table of ``max_frames`` rows, zero at init, of which a T-frame
  clip uses the first T. A curriculum m -> M frames writes rows ``[:M]`` in place from rows
  ``[:m]`` (:func:`expand_temporal_embedding`), so optimiser state stays attached.
- **Attention** uses ``scaled_dot_product_attention``; :func:`count_flops` switches it to the
  math backend so that ``torch.utils.flop_counter`` sees its matrix products (the fused CPU
  kernel is invisible to the counter).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import check_choice, check_positive_int
from .space_time_blocks import BLOCKS, SpaceTimeBlock

CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"
CLS_MODES = ("video", "frame")
EXPANSIONS = ("zeros", "nearest", "bilinear")


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class FrozenConfig:
    """A space-time model as data (``vrlib/model_configs/<name>.json``).

    Attributes:
        clip_model: the open_clip architecture whose towers it starts from (its vision geometry
            — image size, patch, width, layers, heads — is the model's).
        max_frames: rows of the temporal embedding table: the most frames a clip may have.
        block: ``"frozen"`` (the paper's modified residual) or ``"timesformer"``.
        zero_temporal: start the temporal attention at zero (the paper); False draws it at random.
        cls: ``"video"`` (one CLS token for the clip, the paper's) or ``"frame"`` (one per frame,
            the per-frame outputs averaged; the ablation that starts as the expert's mean pooling).
    """

    clip_model: str = "vrlib-tiny-vit32"
    max_frames: int = 8
    block: str = "frozen"
    zero_temporal: bool = True
    cls: str = "video"

    def __post_init__(self) -> None:
        check_positive_int("max_frames", self.max_frames)
        check_choice("block", self.block, BLOCKS)
        check_choice("cls", self.cls, CLS_MODES)


def load_frozen_config(name_or_path: str | Path, **overrides: Any) -> FrozenConfig:
    """Read ``model_configs/<name>.json`` (or a path), apply ``overrides``, reject unknown keys."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("frozen-*.json"))
        raise FileNotFoundError(f"{path}: no such space-time model config; known: {known}")
    data = {**json.loads(path.read_text()), **overrides}
    fields = {f.name for f in dataclasses.fields(FrozenConfig)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    return FrozenConfig(**data)


# ----------------------------------------------------------------------------- temporal expansion


def expand_temporal_embedding(table: Tensor, frames: int, method: str) -> Tensor:
    """Grow a learned (m, D) temporal embedding to (M, D) rows for an M-frame stage (§3.2).

    Args:
        table: (m, D), the rows learned so far.
        frames: M >= m.
        method: ``"zeros"`` keeps the m rows and appends zeros (new positions learned from
            scratch); ``"nearest"`` repeats each row (row i takes ``floor(i * m / M)``);
            ``"bilinear"`` interpolates linearly along time as the reference code does (a 2-D
            bilinear resize of the (m, D) table to (M, D), ``align_corners=False``: new row i
            samples old position ``(i + 0.5) * m / M - 0.5``, clamped to the old end rows).

    Returns:
        A new (M, D) tensor (``table`` is not modified).
    """
    check_choice("method", method, EXPANSIONS)
    m, dim = table.shape
    if frames < m:
        raise ValueError(f"cannot expand {m} temporal embeddings to fewer ({frames})")
    if method == "zeros":
        return torch.cat([table, table.new_zeros(frames - m, dim)])
    if method == "nearest":
        return table[torch.arange(frames) * m // frames].clone()
    if m == 1:
        return table.expand(frames, dim).clone()
    grid = table.T[None]  # (1, D, m): interpolate along time
    out = F.interpolate(grid, size=frames, mode="linear", align_corners=False)
    return out[0].T.contiguous()  # (M, D)


# ----------------------------------------------------------------------------- the video tower


class SpaceTimeViT(nn.Module):
    """Patches of every frame -> CLS outputs through space-time blocks: (B, 1, E) for one CLS per
    clip (``cls="video"``), (B, T, E) for one per frame (``cls="frame"``)."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        max_frames: int,
        block: str = "frozen",
        mlp_ratio: float = 4.0,
        act=nn.GELU,
        cls: str = "video",
    ) -> None:
        super().__init__()
        check_choice("cls", cls, CLS_MODES)
        self.cls = cls
        if image_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
        self.image_size, self.patch_size, self.max_frames = image_size, patch_size, max_frames
        grid = image_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.temporal_embedding = nn.Parameter(torch.zeros(max_frames, width))
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(width, heads, mlp_ratio, block, act) for _ in range(layers)
        )
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def zero_temporal_(self) -> None:
        for blk in self.blocks:
            blk.zero_temporal_()

    def forward(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, 3, S, S), normalised -> per-frame outputs (B, T, E), not normalised."""
        if pixels.ndim != 5 or pixels.shape[2] != 3:
            raise ValueError(f"pixels must be (B, T, 3, S, S), got {tuple(pixels.shape)}")
        b, t = pixels.shape[:2]
        if t > self.max_frames:
            raise ValueError(
                f"{t} frames but the model has {self.max_frames} temporal embeddings; "
                "build it with a larger max_frames"
            )
        x = self.conv1(pixels.flatten(0, 1))  # (B*T, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B*T, P, D)
        pos = self.positional_embedding.to(x.dtype)
        cls = self.class_embedding.to(x.dtype) + pos[0]
        patches = (x + pos[1:]).view(b, t, *x.shape[1:])  # (B, T, P, D)
        patches = patches + self.temporal_embedding[:t, None, :].to(x.dtype)
        if self.cls == "video":  # one CLS token, no temporal embedding (it has no frame)
            x = torch.cat([cls.expand(b, 1, -1), patches.flatten(1, 2)], dim=1)  # (B, 1+T*P, D)
            x = self.ln_pre(x)
            for blk in self.blocks:
                x = blk.forward_clip(x, t)
            return self.ln_post(x[:, :1]) @ self.proj  # (B, 1, E)
        cls = (cls + self.temporal_embedding[:t, None, :].to(x.dtype)).expand(b, t, 1, -1)
        x = self.ln_pre(torch.cat([cls, patches], dim=2))  # (B, T, L, D)
        for blk in self.blocks:
            x = blk(x)
        return self.ln_post(x[:, :, 0]) @ self.proj  # (B, T, E)

    @torch.no_grad()
    def load_image_tower(self, visual: nn.Module) -> None:
        """Copy an open_clip ``VisionTransformer``'s weights into the spatial path.

        Raises ValueError when the geometry differs or the tower has parts this model lacks
        (attention pooling, patch-embedding bias, layer scale).
        """
        src = visual.state_dict()
        own = self.state_dict()
        mapped = {}
        for key, value in src.items():
            new = key.replace("transformer.resblocks.", "blocks.")
            if new not in own:
                raise ValueError(f"image tower weight {key!r} has no place in the space-time model")
            if own[new].shape != value.shape:
                raise ValueError(
                    f"image tower weight {key}: shape {tuple(value.shape)} != {tuple(own[new].shape)}"
                )
            mapped[new] = value
        spatial = {k for k in own if ".attn_time." not in k and ".ln_time." not in k}
        missing = sorted(spatial - set(mapped) - {"temporal_embedding"})
        if missing:
            raise ValueError(f"image tower lacks weights for {missing[:5]}")
        self.load_state_dict(mapped, strict=False)


# ----------------------------------------------------------------------------- the dual encoder


class FrozenInTime(nn.Module):
    """Space-time video tower + the expert's text tower; both L2-normalise their outputs.

    Attributes:
        visual: the :class:`SpaceTimeViT`.
        text: the open_clip CLIP model the text side comes from (its image tower removed).
        config: the :class:`FrozenConfig`.
        frames: the number of learned temporal positions (grows with :meth:`expand_frames`).
    """

    def __init__(self, visual: SpaceTimeViT, text: nn.Module, config: FrozenConfig) -> None:
        super().__init__()
        self.visual, self.text, self.config = visual, text, config
        self.frames = 1

    @classmethod
    def from_clip(cls, clip: nn.Module, config: FrozenConfig) -> FrozenInTime:
        """Build from an open_clip CLIP model: spatial blocks and text tower copied from it."""
        v = clip.visual
        if getattr(v, "attn_pool", None) is not None or getattr(v, "pool_type", "tok") != "tok":
            raise ValueError("the space-time model needs a CLS-token ViT image tower")
        width = v.conv1.out_channels
        first = v.transformer.resblocks[0]
        visual = SpaceTimeViT(
            image_size=v.image_size[0], patch_size=v.patch_size[0], width=width,
            layers=len(v.transformer.resblocks), heads=first.attn.num_heads,
            output_dim=v.proj.shape[1], max_frames=config.max_frames, block=config.block,
            mlp_ratio=first.mlp.c_fc.out_features / width, act=type(first.mlp.gelu),
            cls=config.cls,
        )  # fmt: skip
        visual.load_image_tower(v)
        if config.zero_temporal:
            visual.zero_temporal_()
        text = copy.deepcopy(clip)
        text.visual = nn.Identity()  # the space-time tower replaces it
        text.logit_scale.requires_grad_(False)  # the contrastive loss owns the temperature
        return cls(visual, text, config)

    def encode_video(self, pixels: Tensor) -> Tensor:
        """(B, T, 3, S, S) normalised pixels -> (B, E), L2-normalised: the clip's CLS output, or
        with ``cls="frame"`` the mean of the L2-normalised per-frame outputs."""
        per_frame = F.normalize(self.visual(pixels).float(), dim=-1)  # (B, T, E)
        return F.normalize(per_frame.mean(dim=1), dim=-1)

    def encode_image(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, E): the image as a one-frame video, through the same path."""
        return self.encode_video(pixels[:, None])

    def encode_text(self, ids: Tensor) -> Tensor:
        """(B, L) token ids -> (B, E), L2-normalised."""
        return F.normalize(self.text.encode_text(ids).float(), dim=-1)

    def temporal_table_rms(self) -> float:
        """Root-mean-square row norm of the temporal embeddings learned so far (the rows an
        expansion reads); next to :meth:`positional_rms` it says whether the table is large
        enough for the expansion method to matter."""
        return _rms_row_norm(self.visual.temporal_embedding[: self.frames])

    def positional_rms(self) -> float:
        """Root-mean-square row norm of the spatial positional embeddings (the expert's scale)."""
        return _rms_row_norm(self.visual.positional_embedding)

    @torch.no_grad()
    def expand_frames(self, frames: int, method: str) -> None:
        """Grow the learned temporal positions to ``frames`` (in place; see the module docstring)."""
        if frames > self.visual.max_frames:
            raise ValueError(f"frames={frames} > max_frames={self.visual.max_frames}")
        if frames > self.frames:
            table = self.visual.temporal_embedding
            table[:frames] = expand_temporal_embedding(table[: self.frames], frames, method)
        self.frames = max(self.frames, frames)


def _rms_row_norm(table: Tensor) -> float:
    """Root-mean-square of the L2 norms of a table's rows."""
    return float(table.detach().float().norm(dim=1).pow(2).mean().sqrt())


def build_frozen(config: str | FrozenConfig = "frozen-tiny", pretrained: str | None = None,
                 device: str | None = "cpu") -> tuple[FrozenInTime, Any]:  # fmt: skip
    """The space-time model of ``config`` started from ``pretrained`` weights of its clip model.

    Returns:
        ``(model, encoder)``: the model and the ``ClipEncoder`` it was built from (for its
        ``preprocess_frames`` and ``tokenizer``; its own weights are not shared with the model).
    """
    from vrlib.encoders import load_clip

    cfg = config if isinstance(config, FrozenConfig) else load_frozen_config(config)
    encoder = load_clip(cfg.clip_model, pretrained=pretrained, device=device, precision="fp32")
    return FrozenInTime.from_clip(encoder.model, cfg).to(encoder.device), encoder


# ----------------------------------------------------------------------------- compute


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of ``fn()`` as ``torch.utils.flop_counter`` counts them.

    Attention runs on the math backend inside the counter, so its matrix products are counted
    (the fused CPU kernel is not); a multiply-add counts as 2. Call it on a function that does a
    forward and a backward pass to get a training step's FLOPs.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
