"""A query browser for JupyterLab (ipywidgets): type a query, see ranked videos as frame strips.

Why a class with plain methods under the widgets: the same ``search`` the text box calls is what
the tests and the headless report call, so what a person sees is what CI checks. Widgets are
updated from ``search``; setting ``browser.query.value`` or ``browser.caption.value`` is exactly
what typing or picking a caption does.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass

import numpy as np
import torch

from vrlib.data.sampling import frame_indices
from vrlib.data.video import VideoDecodeError, probe, read_frames


@dataclass(frozen=True)
class Hit:
    """One ranked video for a query."""

    rank: int
    video_index: int
    video_id: str
    score: float
    is_target: bool


def frame_strip(path, n: int = 6, size: int = 64) -> np.ndarray:
    """``n`` uniformly sampled frames of a video side by side: uint8 ``(size, n*size, 3)``."""
    info = probe(path)
    frames = read_frames(
        path, frame_indices(info.num_frames, info.fps, "uniform", n=n), size=size, resize="square"
    )
    return np.concatenate(list(frames), axis=1)  # (size, n*size, 3)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 RGB array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def video_scores(text_embedding: torch.Tensor, video_embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine scores of one query against every video: ``(V,)``; k embeddings per video score by the best."""
    scores = torch.einsum("d,v...d->v...", text_embedding, video_embeddings)
    return scores.amax(dim=-1) if scores.dim() == 2 else scores


class QueryBrowser:
    """Browse a dataset with a text query.

    Args:
        dataset: a ``RetrievalDataset`` (videos, captions, caption_to_video).
        video_embeddings: ``(V, d)`` or ``(V, k, d)`` L2-normalised, in ``dataset.videos`` order.
        encoder: a ``ClipEncoder`` (only ``encode_text`` is used).
        top_k: how many videos to show.
        strip_frames, strip_size: frame strip shape per result.
    """

    def __init__(
        self,
        dataset,
        video_embeddings,
        encoder,
        top_k: int = 5,
        strip_frames: int = 6,
        strip_size: int = 64,
    ):
        import ipywidgets as w

        if len(video_embeddings) != len(dataset.videos):
            raise ValueError(
                f"{len(video_embeddings)} video embeddings for {len(dataset.videos)} videos"
            )
        self.dataset, self.encoder = dataset, encoder
        self.video_embeddings = torch.as_tensor(video_embeddings, dtype=torch.float32)
        self.strip_frames, self.strip_size = strip_frames, strip_size
        self.hits: list[Hit] = []
        self.target_rank: int | None = None
        self._strips: dict[int, bytes] = {}
        options = [("(type a free query)", None)] + [
            (f"{c.text[:80]} [{c.video_id}]", i) for i, c in enumerate(dataset.captions)
        ]
        self.query = w.Text(
            placeholder="a red circle moves to the left",
            continuous_update=False,
            description="Query",
        )
        self.caption = w.Dropdown(options=options, value=None, description="Caption")
        self.top_k = w.IntSlider(
            value=top_k, min=1, max=max(1, min(50, len(dataset.videos))), description="top-k"
        )
        self.status = w.HTML()
        self.results = w.VBox()
        self.detail = w.HTML()
        self.query.observe(lambda ch: self.search(ch["new"]) if ch["new"] else None, names="value")
        self.caption.observe(self._on_caption, names="value")
        self.top_k.observe(lambda _: self._redo(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.query, self.caption, self.top_k]), self.status, self.results, self.detail]
        )
        self._last: tuple[str, int | None] | None = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _on_caption(self, change) -> None:
        index = change["new"]
        if index is not None:
            self.search(self.dataset.captions[index].text, caption_index=index)

    def _redo(self) -> None:
        if self._last:
            self.search(*self._last)

    def search(self, text: str, caption_index: int | None = None) -> list[Hit]:
        """Rank every video for ``text``; with ``caption_index`` the ground-truth video is marked.

        Returns the top-k hits and updates the widgets.
        """
        if not text.strip():
            raise ValueError("empty query")
        self._last = (text, caption_index)
        target = (
            int(self.dataset.caption_to_video[caption_index]) if caption_index is not None else None
        )
        scores = video_scores(
            self.encoder.encode_text([text])[0].cpu(), self.video_embeddings
        )  # (V,)
        order = torch.argsort(scores, descending=True, stable=True).tolist()
        self.target_rank = 1 + int((scores > scores[target]).sum()) if target is not None else None
        self.hits = [
            Hit(r + 1, v, self.dataset.videos[v].video_id, float(scores[v]), v == target)
            for r, v in enumerate(order[: self.top_k.value])
        ]
        self._render(text)
        return self.hits

    def _strip(self, video_index: int) -> bytes:
        if video_index not in self._strips:
            path = self.dataset.videos[video_index].path
            try:
                image = frame_strip(path, self.strip_frames, self.strip_size)
            except VideoDecodeError:
                image = np.zeros(
                    (self.strip_size, self.strip_size * self.strip_frames, 3), np.uint8
                )
            self._strips[video_index] = png_bytes(image)
        return self._strips[video_index]

    def _render(self, text: str) -> None:
        import ipywidgets as w

        rank = (
            ""
            if self.target_rank is None
            else f" — ground-truth video at rank <b>{self.target_rank}</b>"
        )
        self.status.value = f"Query: <i>{html.escape(text)}</i>{rank}"
        rows = []
        for i, hit in enumerate(self.hits):
            style = "color:#0a0;font-weight:bold" if hit.is_target else ""
            label = w.HTML(
                f"<span style='{style}'>#{hit.rank} {hit.video_id} — {hit.score:.3f}</span>"
            )
            button = w.Button(description="captions", layout=w.Layout(width="90px"))
            button.on_click(lambda _, i=i: self.show_captions(i))
            rows.append(
                w.HBox([label, w.Image(value=self._strip(hit.video_index), format="png"), button])
            )
        self.results.children = rows
        self.detail.value = ""

    def show_captions(self, hit_position: int) -> list[str]:
        """Show (and return) the captions of the ``hit_position``-th result (what clicking it does)."""
        hit = self.hits[hit_position]
        texts = [c.text for c in self.dataset.captions if c.video_id == hit.video_id]
        items = "".join(f"<li>{html.escape(t)}</li>" for t in texts)
        self.detail.value = f"<b>{hit.video_id}</b><ul>{items}</ul>"
        return texts
