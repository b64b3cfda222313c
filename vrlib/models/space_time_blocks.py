"""The space-time transformer's attention and block (Bain et al. 2021, §3.1), apart from the tower.

Why a module of its own: divided attention is the one delicate piece of the model (which token
attends to which), and its tests compare it with a brute-force masked attention; the tower that
stacks the blocks and the dual encoder live in :mod:`vrlib.models.frozen`.

- :class:`SelfAttention` keeps ``nn.MultiheadAttention``'s parameter names so that open_clip's
  image-tower weights load by a plain state-dict copy; ``grouped`` is the paper's attention
  around one CLS token for the clip (its ``VarAttention``).
- :class:`SpaceTimeBlock`: temporal attention, then spatial attention, then the MLP, in the
  paper's modified residual (``"frozen"``) or the original TimeSformer one (``"timesformer"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import check_choice

BLOCKS = ("frozen", "timesformer")


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names.

    The names (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) let open_clip's image-tower
    weights load by a plain state-dict copy.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide width={dim}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (N, L, 3D)
        q, k, v = qkv.view(n, length, 3, self.heads, dim // self.heads).unbind(2)
        return tuple(t.transpose(1, 2) for t in (q, k, v))  # (N, H, L, Dh) each

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, L, D) -> (N, L, D), every token attending to every token of its sequence."""
        n, length, dim = x.shape
        out = F.scaled_dot_product_attention(*self._qkv(x))
        return self.out_proj(out.transpose(1, 2).reshape(n, length, dim))  # (N, L, D)

    def grouped(self, x: Tensor, frames: int, over: str) -> Tensor:
        """Divided attention around one CLS token, as the paper's ``VarAttention``.

        x: (B, 1 + T*P, D), the clip's CLS then its frames' patches (frame-major). The CLS
        attends to every token; each patch attends to the CLS and to its group: the same patch
        position in every frame (``over="time"``) or the patches of its own frame (``"space"``).
        Returns (B, 1 + T*P, D).
        """
        b, length, dim = x.shape
        q, k, v = self._qkv(x)  # (B, H, L, Dh)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, H, 1, Dh)
        h, dh, p = q.shape[1], q.shape[3], (length - 1) // frames

        def groups(t: Tensor) -> Tensor:  # (B, H, T*P, Dh) -> (B, H, G, n, Dh)
            t = t[:, :, 1:].reshape(b, h, frames, p, dh)
            return t.transpose(2, 3) if over == "time" else t

        qg, kg, vg = groups(q), groups(k), groups(v)
        with_cls = [torch.cat([t[:, :, :1, None].expand(-1, -1, qg.shape[2], -1, -1), g], dim=3)
                    for t, g in ((k, kg), (v, vg))]  # fmt: skip
        out = F.scaled_dot_product_attention(qg, *with_cls)  # (B, H, G, n, Dh)
        if over == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, frames * p, dh)], dim=2)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, dim))


class SpaceTimeBlock(nn.Module):
    """Divided space-time attention: temporal attention, then spatial attention, then the MLP.

    The spatial parts (``ln_1``, ``attn``, ``ln_2``, ``mlp``) carry open_clip's names for a
    ``ResidualAttentionBlock``; ``ln_time`` and ``attn_time`` are new.
    """

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float = 4.0, block: str = "frozen", act=nn.GELU
    ) -> None:
        super().__init__()
        check_choice("block", block, BLOCKS)
        self.block = block
        self.ln_time = nn.LayerNorm(dim)
        self.attn_time = SelfAttention(dim, heads)
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(dim, hidden))
        self.mlp.add_module("gelu", act())
        self.mlp.add_module("c_proj", nn.Linear(hidden, dim))

    def zero_temporal_(self) -> None:
        """Make the temporal branch add exactly zero (its output projection is zeroed)."""
        nn.init.zeros_(self.attn_time.out_proj.weight)
        nn.init.zeros_(self.attn_time.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, L, D) tokens (L = CLS + patches of one frame) -> (B, T, L, D)."""
        b, t, length, dim = x.shape
        xt = self.ln_time(x).transpose(1, 2).reshape(b * length, t, dim)  # (B*L, T, D)
        time_out = self.attn_time(xt).view(b, length, t, dim).transpose(1, 2)  # (B, T, L, D)
        after_time = x + time_out
        xs = self.ln_1(after_time).reshape(b * t, length, dim)  # (B*T, L, D)
        space_out = self.attn(xs).view(b, t, length, dim)
        base = x if self.block == "frozen" else after_time
        x = base + space_out
        return x + self.mlp(self.ln_2(x))

    def forward_clip(self, x: Tensor, frames: int) -> Tensor:
        """x: (B, 1 + T*P, D), one CLS for the clip (``cls="video"``) -> the same shape."""
        after_time = x + self.attn_time.grouped(self.ln_time(x), frames, "time")
        space_out = self.attn.grouped(self.ln_1(after_time), frames, "space")
        x = (x if self.block == "frozen" else after_time) + space_out
        return x + self.mlp(self.ln_2(x))
