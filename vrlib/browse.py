"""A query browser for JupyterLab (ipywidgets): type a query, see the ranked videos, play them.

Why a class with plain methods under the widgets: the ``search`` the Search button and the Enter
key call is what the tests and the headless report call, so what a person sees is what CI checks.
The browser searches a :class:`~vrlib.index.VideoIndex`, so it serves a dataset split (with its
captions and ground truth) and a folder of one's own videos (``VideoIndex.load(folder)``) alike.

Choices, and why:

* Enter and the Search button always search, also when the text did not change (re-running a
  query is what a person expects of Enter). The box syncs on every keystroke, because the
  front end sends Enter before it commits the text; typing alone does not search.
* Captions are picked from a filterable list (type in "find caption" to narrow thousands of
  captions to a few), each labelled with its video id first (a long caption cannot hide it),
  then its tags (paraphrase, partial, audio, temporal, ...), then the text; picking one puts its
  text in the query box, so the box and the results always agree. Typing another query (or
  searching one) deselects the caption, because a list only reports a *change* of selection:
  picking the same caption again then searches it again.
* The ground-truth video is shown below the top-k when it ranks outside it.
* Playback is an animated strip (GIF) of the clip rather than an HTML5 ``<video>``: a notebook
  server only serves files under its root, and the GIF works for any path and in exported HTML.
  It opens right under the row that was played, at its natural size (twice the strip's frame
  size), with the file's path beside it; a captions list opens in the same place. A widget image
  without a fixed size is stretched to the output's width (about 960 px, blurred, below all the
  results), hence the explicit pixel size.
* A hint appears when scores are nearly flat (standard deviation over all videos below
  ``flat_threshold``): a weak model then returns nearly the same order for every query.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vrlib.data.sampling import frame_indices
from vrlib.data.video import VideoDecodeError, probe, read_frames

HINT = "Type a query and press Enter (or Search), or pick a caption below."


@dataclass(frozen=True)
class Hit:
    """One ranked video for a query (``time``: best-matching second, when frames are kept)."""

    rank: int
    video_index: int
    video_id: str
    score: float
    is_target: bool
    time: float | None = None


def _frames(path, n: int, size: int) -> np.ndarray:
    info = probe(path)
    indices = frame_indices(info.num_frames, info.fps, "uniform", n=n)
    return read_frames(path, indices, size=size, resize="square")  # (n, size, size, 3)


def frame_strip(path, n: int = 6, size: int = 96) -> np.ndarray:
    """``n`` uniformly sampled frames of a video side by side: uint8 ``(size, n*size, 3)``."""
    return np.concatenate(list(_frames(path, n, size)), axis=1)  # (size, n*size, 3)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 RGB array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def clip_gif(path, n: int = 24, size: int = 192, fps: float = 4.0) -> bytes:
    """An animated GIF of ``n`` evenly spaced frames of the video (the browser's playback)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in _frames(path, n, size)]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
    )
    return buf.getvalue()


def is_flat(scores: np.ndarray, threshold: float) -> bool:
    """True when the scores of all videos barely differ (std below ``threshold``)."""
    return len(scores) > 1 and float(np.std(scores)) < threshold


class QueryBrowser:
    """Browse a :class:`~vrlib.index.VideoIndex` with text queries.

    Args:
        index: the videos (``VideoIndex``; its ``path`` column is used for strips and playback).
        encoder: the text encoder; checked against the index's manifest.
        dataset: optional ``RetrievalDataset`` whose captions can be picked (ground truth shown).
        top_k: how many videos to show.
        strip_frames, strip_size: frames per result strip and their side in pixels.
        metrics: shown in the header, e.g. ``{"R@1": 12.5, "R@5": 40.0}``.
        flat_threshold: score standard deviation under which the flat-scores hint appears.
        export_dir: where "Export CSV" writes.
        max_caption_options: captions listed at once in the picker.
    """

    def __init__(
        self, index, encoder, dataset=None, *, top_k: int = 5, strip_frames: int = 6, strip_size: int = 96,
        metrics: dict[str, float] | None = None, flat_threshold: float = 0.02,
        export_dir: str | Path = ".", max_caption_options: int = 200,
    ):  # fmt: skip
        import ipywidgets as w

        self.index = index.attach(encoder)
        self.dataset = dataset
        self.strip_frames, self.strip_size = strip_frames, strip_size
        self.flat_threshold, self.export_dir = flat_threshold, Path(export_dir)
        self.max_caption_options = max_caption_options
        self.hits: list[Hit] = []
        self.target_rank: int | None = None
        self.target_hit: Hit | None = None
        self.searches = 0
        self._strips: dict[int, bytes] = {}
        self._last: tuple[str, int | None] | None = None
        self.header = w.HTML(self._header_html(metrics or {}))
        self.query = w.Text(
            placeholder="a red circle moves to the left", continuous_update=True,
            description="Query", layout=w.Layout(width="60%"),
        )  # fmt: skip
        self._watch_submit(self.query, lambda _: self.submit())
        self.query.observe(lambda _: self._deselect_stale_caption(), names="value")
        self.search_button = w.Button(description="Search", button_style="primary")
        self.search_button.on_click(lambda _: self.submit())
        self.top_k = w.IntSlider(
            value=top_k, min=1, max=max(1, min(50, len(index))), description="top-k"
        )
        self.top_k.observe(lambda _: self._redo(), names="value")
        self.export_button = w.Button(description="Export CSV")
        self.export_button.on_click(lambda _: self.export())
        self.export_note = w.HTML()
        self.status = w.HTML(HINT)
        self.results = w.VBox()
        self._rows: list[tuple[Hit | None, object]] = []  # (hit, its row) as shown, notes too
        player_px = f"{2 * strip_size}px"  # the GIF's own size (see clip_gif in play)
        self.player = w.Image(
            format="gif", layout=w.Layout(display="none", width=player_px, height=player_px)
        )
        self.detail = w.HTML()
        self.panel = w.HBox(
            [self.player, self.detail], layout=w.Layout(align_items="flex-start", margin="0 0 8px 220px")
        )  # fmt: skip
        self.panel.add_class("vrlib-player")  # CSS classes: what the real-browser test looks for
        rows = [
            self.header,
            w.HBox([self.query, self.search_button, self.top_k, self.export_button, self.export_note]),
        ]  # fmt: skip
        rows += self._caption_picker(w) if dataset is not None else []
        self.widget = w.VBox([*rows, self.status, self.results])

    # -- construction helpers ---------------------------------------------------------------

    def _header_html(self, metrics: dict[str, float]) -> str:
        m = self.index.manifest
        parts = [
            f"<b>{html.escape(str(m.get('model')))}</b>",
            html.escape(Path(str(m.get("pretrained"))).name),
        ]
        parts += [
            f"{len(self.index)} videos",
            f"aggregation {html.escape(m['aggregation']['method'])}",
        ]
        parts += [f"{k} {v:.1f}" for k, v in metrics.items()]
        return " · ".join(parts)

    @staticmethod
    def _watch_submit(text, callback) -> None:
        """Enter in the box (ipywidgets 8 still sends it; ``on_submit`` only warns it may go away)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            text.on_submit(callback)

    def _caption_picker(self, w) -> list:
        self.caption_filter = w.Text(
            placeholder="filter captions by words, video id or tag", continuous_update=True,
            description="Find caption", layout=w.Layout(width="60%"),
        )  # fmt: skip
        self.caption = w.Select(options=[], rows=8, layout=w.Layout(width="95%"))
        self.caption_count = w.HTML()
        self.caption_filter.observe(lambda _: self._filter_captions(), names="value")
        self.caption.observe(self._on_caption, names="value")
        self._filter_captions()
        return [w.HBox([self.caption_filter, self.caption_count]), self.caption]

    def caption_label(self, i: int) -> str:
        """``video_id · [tags] text``: the id first, so a long caption cannot push it out of view."""
        c = self.dataset.captions[i]
        tags = f"[{', '.join(c.tags)}] " if c.tags else ""
        return f"{c.video_id} · {tags}{c.text}"

    def _filter_captions(self) -> None:
        words = self.caption_filter.value.lower().split()
        labels = (self.caption_label(i) for i in range(len(self.dataset.captions)))
        matches = [(lab, i) for i, lab in enumerate(labels) if all(x in lab.lower() for x in words)]
        shown = matches[: self.max_caption_options]
        self.caption.options = shown
        self.caption_count.value = f"{len(shown)} of {len(matches)} matching captions shown"

    # -- actions ----------------------------------------------------------------------------

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def submit(self) -> list[Hit]:
        """What Enter and the Search button do: search the box's text, shown in the status if blank.

        The box still holding the selected caption's text searches that caption (ground truth
        included); any other text is a free query.
        """
        try:
            return self.search(self.query.value, caption_index=self._selected_caption())
        except ValueError as e:
            self.hits, self.target_rank, self.target_hit = [], None, None
            self._rows, self.results.children = [], ()
            self._close_panel()
            self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span> — {HINT}"
            return []

    def _selected_caption(self) -> int | None:
        if self.dataset is None or self.caption.value is None:
            return None
        return (
            self.caption.value
            if self.dataset.captions[self.caption.value].text == self.query.value
            else None
        )

    def _deselect_stale_caption(self) -> None:
        """Typing another query deselects the caption, so that picking it again is a change."""
        if (
            self.dataset is not None
            and self.caption.value is not None
            and self._selected_caption() is None
        ):
            self.caption.value = None

    def _on_caption(self, change) -> None:
        index = change["new"]
        if index is not None:
            self.query.value = self.dataset.captions[index].text  # the box shows what was searched
            self.search(self.dataset.captions[index].text, caption_index=index)

    def _redo(self) -> None:
        if self._last:
            self.search(*self._last)

    def search(self, text: str, caption_index: int | None = None) -> list[Hit]:
        """Rank every video for ``text``; with ``caption_index`` the ground-truth video is marked.

        Returns the top-k hits and updates the widgets. Raises ValueError on a blank text.
        """
        if not text.strip():
            raise ValueError("empty query: type some words first")
        self.searches += 1
        self._last = (text, caption_index)
        if caption_index is None and self.dataset is not None:
            self.caption.value = None  # a free query: picking a caption again is then a change
        q = self.index.embed_queries([text])  # (1, d)
        scores = self.index.scores(q)[0]  # (N,) exact, for ranks and the flat-scores hint
        target = None
        if caption_index is not None:
            target = self.index.row_of(self.dataset.captions[caption_index].video_id)
        found = self.index.search(q, k=self.top_k.value, method="exact")[0]
        self.hits = [
            Hit(h.rank, h.row, h.video_id, h.score, h.row == target, h.time) for h in found
        ]
        self.target_rank = 1 + int((scores > scores[target]).sum()) if target is not None else None
        self.target_hit = None
        if target is not None and self.target_rank > len(self.hits):
            when = (
                self.index.frames.best_time(target, q[0]) if self.index.frames is not None else None
            )
            vid = self.index.video_ids[target]
            self.target_hit = Hit(self.target_rank, target, vid, float(scores[target]), True, when)
        self._render(text, caption_index, scores)
        return self.hits

    # -- rendering --------------------------------------------------------------------------

    def _strip(self, row: int) -> bytes:
        if row not in self._strips:
            try:
                image = frame_strip(
                    self.index.table.at[row, "path"], self.strip_frames, self.strip_size
                )
            except (VideoDecodeError, FileNotFoundError):
                image = np.zeros(
                    (self.strip_size, self.strip_size * self.strip_frames, 3), np.uint8
                )
            self._strips[row] = png_bytes(image)
        return self._strips[row]

    def _row(self, hit: Hit, position: int | None):
        import ipywidgets as w

        style = "color:#0a0;font-weight:bold" if hit.is_target else ""
        when = f" @ {hit.time:.1f}s" if hit.time is not None else ""
        gt = " (ground truth)" if hit.is_target else ""
        label = w.HTML(
            f"<span style='{style}'>#{hit.rank} {html.escape(hit.video_id)}{gt}<br>score {hit.score:.3f}{when}</span>",
            layout=w.Layout(width="220px"),
        )
        play = w.Button(description="▶ play", layout=w.Layout(width="80px"))
        play.on_click(lambda _, h=hit: self.play(h))
        items = [label, w.Image(value=self._strip(hit.video_index), format="png"), play]
        if self.dataset is not None:
            button = w.Button(description="captions", layout=w.Layout(width="90px"))
            button.on_click(lambda _, h=hit: self.show_captions(h))
            items.append(button)
        row = w.HBox(items, layout=w.Layout(align_items="center"))
        row.add_class("vrlib-result")
        return row

    def _close_panel(self) -> None:
        self.player.layout.display = "none"
        self.detail.value = ""

    def _open_panel(self, hit: Hit) -> bool:
        """Show the player/detail panel right under ``hit``'s row; False where no row shows that
        video (a button of the previous query's rows, clicked while the new rows were drawn)."""
        rows = [row for _, row in self._rows]
        at = next(
            (i for i, (h, _) in enumerate(self._rows) if h is not None and h.video_index == hit.video_index),
            None,
        )  # fmt: skip
        if at is None:
            return False
        self.results.children = [*rows[: at + 1], self.panel, *rows[at + 1 :]]
        return True

    def _render(self, text: str, caption_index: int | None, scores: np.ndarray) -> None:
        import ipywidgets as w

        status = f"Query: <i>{html.escape(text)}</i>"
        if caption_index is not None:
            tags = self.dataset.captions[caption_index].tags
            status += f" <small>[{html.escape(', '.join(tags) or 'no tags')}]</small>"
            status += f" — ground-truth video at rank <b>{self.target_rank}</b> of {len(scores)}"
        if is_flat(scores, self.flat_threshold):
            status += (
                f"<br><span style='color:#a60'>Scores are nearly flat (std {np.std(scores):.4f} over "
                f"{len(scores)} videos): this model barely tells the videos apart for this query, "
                "so their order means little.</span>"
            )
        self._rows = [(h, self._row(h, i)) for i, h in enumerate(self.hits)]
        if self.target_hit is not None:
            note = w.HTML(f"<i>ground truth, outside the top {len(self.hits)}:</i>")
            self._rows += [(None, note), (self.target_hit, self._row(self.target_hit, None))]
        self.results.children = [row for _, row in self._rows]
        self._close_panel()
        # The status changes last: it says the rows below it are this query's (a click on a row
        # of the previous query, made while these were being drawn, then finds no row; see play).
        self.status.value = status

    def play(self, hit: Hit) -> bytes:
        """Show (and return) an animated strip of the hit's video (what its ▶ button does)."""
        path = self.index.table.at[hit.video_index, "path"]
        if not self._open_panel(hit):
            return b""
        try:
            self.player.value = clip_gif(path, size=2 * self.strip_size)
        except (VideoDecodeError, FileNotFoundError) as e:  # said in the panel, not the log console
            self.player.layout.display = "none"
            self.detail.value = (
                f"<span style='color:#b00'>cannot play: {html.escape(str(e))}</span>"
            )
            return b""
        self.player.layout.display = ""
        when = f", best match at {hit.time:.1f}s" if hit.time is not None else ""
        self.detail.value = (
            f"<b>{html.escape(hit.video_id)}</b>{when}<br><small>{html.escape(str(path))}</small>"
        )
        return self.player.value

    def show_captions(self, hit: Hit | int) -> list[str]:
        """Show (and return) the captions of a hit (or of the ``hit``-th result), with their tags."""
        hit = self.hits[hit] if isinstance(hit, int) else hit
        caps = [c for c in self.dataset.captions if c.video_id == hit.video_id]
        items = "".join(
            f"<li>{html.escape(c.text)} <small>{html.escape(', '.join(c.tags))}</small></li>"
            for c in caps
        )
        self.player.layout.display = "none"
        self.detail.value = f"<b>{html.escape(hit.video_id)}</b><ul>{items}</ul>"
        self._open_panel(hit)
        return [c.text for c in caps]

    def results_frame(self):
        """The shown results as a table (the ground truth outside the top-k included)."""
        import pandas as pd

        query = self._last[0] if self._last else None
        hits = self.hits + ([self.target_hit] if self.target_hit else [])
        rows = [
            {"query": query, "rank": h.rank, "video_id": h.video_id, "path": self.index.table.at[h.video_index, "path"],
             "score": h.score, "best_time_s": h.time, "ground_truth": h.is_target}
            for h in hits
        ]  # fmt: skip
        return pd.DataFrame(
            rows,
            columns=["query", "rank", "video_id", "path", "score", "best_time_s", "ground_truth"],
        )

    def export(self, path: str | Path | None = None) -> Path:
        """Write the shown results as CSV (default: ``export_dir/query_results_<n>.csv``)."""
        from vrlib.io import atomic_write_text

        path = Path(path) if path else self.export_dir / f"query_results_{self.searches:03d}.csv"
        atomic_write_text(path, self.results_frame().to_csv(index=False))
        self.export_note.value = (
            f"exported {len(self.results_frame())} rows to <code>{html.escape(str(path))}</code>"
        )
        return path
