"""The query browser, driven headlessly the way a person drives it: set widget values, click, read.

One test per bug found in a real browser (named ``test_bug_*``) and per addition researchers asked
for; the real-browser check itself is ``tests/test_browser_e2e.py``.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from vrlib.browse import QueryBrowser, clip_gif, frame_strip, is_flat
from vrlib.index import VideoIndex

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_query_browser.ipynb"


class FixedTextEncoder:
    """Maps each known text to a fixed unit vector (so the expected ranking is known exactly)."""

    def __init__(self, table: dict[str, torch.Tensor]):
        self.table = table

    def encode_text(self, texts):
        return torch.stack([self.table[t] for t in texts])


@pytest.fixture(scope="module")
def setup(smoke_world):
    from vrlib.data.datasets import load_dataset

    ds = load_dataset("synthetic", smoke_world, "test")
    gen = torch.Generator().manual_seed(0)
    videos = torch.nn.functional.normalize(torch.randn(len(ds.videos), 16, generator=gen), dim=-1)
    texts = {
        c.text: torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0)
        for c in ds.captions
    }
    texts["free query"] = videos[2]  # a free query that matches video 2 exactly
    texts["flat query"] = torch.zeros(16)  # every video scores 0
    ids = [v.video_id for v in ds.videos]
    index = VideoIndex.from_arrays(
        videos.numpy(), ids, [str(v.path) for v in ds.videos], {"model": "fixed"}
    )
    return ds, videos, FixedTextEncoder(texts), index


def _browser(setup, **kw) -> QueryBrowser:
    ds, _, enc, index = setup
    kw = {"top_k": 3, "strip_frames": 2, "strip_size": 16, **kw}
    return QueryBrowser(index, enc, ds, **kw)


def _type_and_enter(b: QueryBrowser, text: str) -> None:
    b.query.value = text  # typing (the box syncs on every keystroke) ...
    b.query._submission_callbacks(b.query)  # ... then Enter, as the front end sends it


def test_typing_a_query_and_pressing_enter_ranks_videos_by_score(setup):
    _, videos, _, _ = setup
    b = _browser(setup)
    b.query.value = "free query"
    assert b.hits == [] and b.searches == 0  # typing alone does not search
    _type_and_enter(b, "free query")
    assert [h.rank for h in b.hits] == [1, 2, 3]
    assert b.hits[0].video_index == 2 and b.hits[0].score == pytest.approx(1.0, abs=1e-5)
    expected = torch.argsort(videos @ videos[2], descending=True)[:3].tolist()
    assert [h.video_index for h in b.hits] == expected
    assert b.target_rank is None and len(b.results.children) == 3


def test_bug_blank_query_shows_a_message_instead_of_raising(setup):
    b = _browser(setup)
    _type_and_enter(b, "free query")
    _type_and_enter(b, "   ")
    assert "empty query" in b.status.value and b.hits == [] and b.results.children == ()
    with pytest.raises(ValueError, match="empty"):
        b.search("  ")  # the API still says so


def test_bug_enter_on_an_unchanged_query_and_the_search_button_search_again(setup):
    b = _browser(setup)
    _type_and_enter(b, "free query")
    b.results.children = ()
    b.query._submission_callbacks(b.query)  # Enter again, text unchanged
    assert b.searches == 2 and len(b.results.children) == 3
    b.search_button.click()
    assert b.searches == 3 and b.search_button.description == "Search"


def test_bug_picking_a_caption_puts_it_in_the_query_box_and_marks_its_rank(setup):
    ds, videos, enc, _ = setup
    b = _browser(setup, top_k=len(ds.videos))
    _type_and_enter(b, "free query")
    b.caption.value = 5
    assert b.query.value == ds.captions[5].text  # the box and the results agree
    target = int(ds.caption_to_video[5])
    scores = videos @ enc.table[ds.captions[5].text]
    assert b.target_rank == 1 + int((scores > scores[target]).sum())
    marked = [h for h in b.hits if h.is_target]
    assert len(marked) == 1 and marked[0].video_index == target and marked[0].rank == b.target_rank
    assert f"rank <b>{b.target_rank}</b>" in b.status.value


def test_bug_caption_picker_is_never_blank_and_has_no_dead_option(setup):
    ds, _, _, _ = setup
    b = _browser(setup, max_caption_options=10)
    labels = [label for label, _ in b.caption.options]
    assert len(labels) == 10 and all(label.strip() for label in labels)
    assert not any("free query" in label for label in labels) and b.caption.value is None
    assert f"10 of {len(ds.captions)}" in b.caption_count.value


def test_searchable_caption_picker_with_tags(setup):
    ds, _, _, _ = setup
    b = _browser(setup)
    tagged = next(i for i, c in enumerate(ds.captions) if c.tags)
    c = ds.captions[tagged]
    assert b.caption_label(tagged) == f"{c.video_id} · [{', '.join(c.tags)}] {c.text}"
    word = ds.captions[tagged].tags[0]
    b.caption_filter.value = word
    shown = [i for _, i in b.caption.options]
    expected = [i for i, c in enumerate(ds.captions) if word in b.caption_label(i).lower()]
    assert shown == expected[: b.max_caption_options] and shown
    b.caption_filter.value = "zzz-no-such-words"
    assert b.caption.options == () and "0 of 0" in b.caption_count.value


def test_bug_long_captions_show_their_video_id_first(setup):
    ds, _, _, _ = setup
    b = _browser(setup)
    longest = max(range(len(ds.captions)), key=lambda i: len(ds.captions[i].text))
    assert len(ds.captions[longest].text) > 100  # longer than the picker is wide
    label = b.caption_label(longest)
    assert label.startswith(ds.captions[longest].video_id + " ")
    assert all(lab.split(" ")[0] == ds.captions[i].video_id for lab, i in b.caption.options)


def test_ground_truth_outside_the_top_k_is_shown(setup):
    ds, videos, enc, _ = setup
    b = _browser(setup, top_k=1)
    for i in range(len(ds.captions)):
        b.caption.value = i
        if b.target_rank > 1:
            break
    assert b.target_hit is not None and b.target_hit.rank == b.target_rank > 1
    assert b.target_hit.video_id == ds.captions[i].video_id and b.target_hit.is_target
    assert len(b.results.children) == 3  # the top-1 row, a note, the ground-truth row
    assert b.results_frame()["ground_truth"].tolist() == [False, True]


def test_header_shows_model_and_recall(setup):
    b = _browser(setup, metrics={"R@1": 12.5, "R@5": 40.0})
    assert (
        "fixed" in b.header.value and "R@1 12.5" in b.header.value and "R@5 40.0" in b.header.value
    )


def test_flat_scores_show_a_hint(setup):
    b = _browser(setup)
    _type_and_enter(b, "flat query")
    assert "nearly flat" in b.status.value
    _type_and_enter(b, "free query")
    assert "nearly flat" not in b.status.value
    assert is_flat(np.full(5, 0.3), 0.02) and not is_flat(np.array([0.0, 0.5]), 0.02)


def test_export_writes_the_shown_results(setup, tmp_path):
    b = _browser(setup, export_dir=tmp_path)
    _type_and_enter(b, "free query")
    b.export_button.click()
    written = list(tmp_path.glob("query_results_*.csv"))
    assert len(written) == 1
    table = pd.read_csv(written[0])
    assert table["video_id"].tolist() == [h.video_id for h in b.hits]
    assert table["rank"].tolist() == [1, 2, 3] and (table["query"] == "free query").all()


def test_play_shows_an_animated_strip_and_captions_show_tags(setup):
    ds, _, _, _ = setup
    b = _browser(setup)
    _type_and_enter(b, "free query")
    row = b.results.children[0].children
    row[2].click()  # ▶ play
    assert b.player.value[:6] == b"GIF89a" and b.player.layout.display == ""
    row[3].click()  # captions
    vid = b.hits[0].video_id
    expected = [c.text for c in ds.captions if c.video_id == vid]
    assert expected and all(t.replace("'", "&#x27;") in b.detail.value for t in expected)
    assert b.player.layout.display == "none"  # the captions list replaces the player


@pytest.mark.parametrize("played", [0, 1, 2])
def test_bug_player_opens_under_the_played_row_at_its_natural_size(setup, played):
    """It was drawn below all results, stretched to the output's width (~960 px) and blurred."""
    from PIL import Image

    b = _browser(setup, strip_size=24)
    _type_and_enter(b, "free query")
    rows = list(b.results.children)
    rows[played].children[2].click()  # ▶ play on that row
    shown = list(b.results.children)
    assert shown.index(b.panel) == played + 1 and b.player in b.panel.children
    assert "vrlib-player" in b.panel._dom_classes  # what the real-browser test finds
    assert all("vrlib-result" in r._dom_classes for r in rows)
    assert [r for r in shown if r is not b.panel] == rows  # the rows themselves stay in order
    gif = Image.open(__import__("io").BytesIO(b.player.value))
    assert gif.size == (48, 48)  # twice the strip's frame size
    assert (b.player.layout.width, b.player.layout.height) == ("48px", "48px")
    assert b.hits[played].video_id in b.detail.value
    b.results.children[0].children[3].click()  # captions of the first row move the panel there
    assert list(b.results.children).index(b.panel) == 1


def test_player_opens_under_the_ground_truth_row_outside_the_top_k(setup):
    ds, _, _, _ = setup
    b = _browser(setup, top_k=1)
    i = next(
        i for i in range(len(ds.captions)) if b.search(ds.captions[i].text, i) and b.target_hit
    )
    b.play(b.target_hit)
    shown = list(b.results.children)
    assert shown[-1] is b.panel and shown.index(b.panel) == 3  # row, note, ground truth, panel
    assert b.target_hit.video_id == ds.captions[i].video_id


def test_bug_empty_query_hides_the_player_and_the_detail(setup):
    b = _browser(setup)
    _type_and_enter(b, "free query")
    b.results.children[0].children[2].click()  # ▶ play
    assert b.player.layout.display == "" and b.detail.value
    _type_and_enter(b, "  ")
    assert b.panel not in b.results.children and b.results.children == ()
    assert b.player.layout.display == "none" and b.detail.value == ""


def test_bug_picking_the_still_selected_caption_again_searches_it_again(setup):
    ds, videos, enc, _ = setup
    b = _browser(setup)
    b.caption.value = 5
    assert b.searches == 1 and b.target_rank is not None
    _type_and_enter(b, "free query")  # another query while caption 5 is still highlighted
    assert b.caption.value is None and b.target_rank is None and b.searches == 2
    b.caption.value = 5  # the same caption, picked again
    assert b.searches == 3 and b.query.value == ds.captions[5].text
    target = int(ds.caption_to_video[5])
    scores = videos @ enc.table[ds.captions[5].text]
    assert b.target_rank == 1 + int((scores > scores[target]).sum())


def test_typing_over_a_picked_caption_deselects_it_and_enter_on_it_keeps_ground_truth(setup):
    ds, _, _, _ = setup
    b = _browser(setup)
    b.caption.value = 5
    _type_and_enter(b, ds.captions[5].text)  # Enter on the caption's own text: still that caption
    assert b.caption.value == 5 and b.target_rank is not None and b.searches == 2
    b.query.value = "free"  # typing, no Enter yet
    assert b.caption.value is None and b.searches == 2


def test_top_k_slider_reruns_the_last_query(setup):
    b = _browser(setup, top_k=2)
    _type_and_enter(b, "free query")
    b.top_k.value = 4
    assert len(b.hits) == 4


def test_a_different_encoder_is_refused(setup):
    from vrlib.index import IndexMismatchError

    ds, videos, enc, index = setup
    other = index.__class__.from_arrays(
        index.embeddings, index.video_ids, index.table["path"], {"encoder_fingerprint": "abc"}
    )
    with pytest.raises(IndexMismatchError):
        QueryBrowser(other, enc, ds)


def test_frame_strip_and_clip_shapes(smoke_world):
    from PIL import Image

    path = sorted((smoke_world / "videos").glob("*.mp4"))[0]
    strip = frame_strip(path, n=3, size=20)
    assert strip.shape == (20, 60, 3) and strip.dtype == np.uint8
    gif = Image.open(__import__("io").BytesIO(clip_gif(path, n=4, size=24)))
    assert gif.n_frames == 4 and gif.size == (24, 24)


def test_bug_false_random_init_warning_is_hidden(tmp_path, caplog):
    from vrlib.index import open_encoder

    ckpt = tmp_path / "tiny.pt"
    with caplog.at_level(logging.WARNING):
        torch.save(open_encoder("vrlib-tiny", None).model.state_dict(), ckpt)
        random_init = [r for r in caplog.records if "No pretrained weights" in r.getMessage()]
        caplog.clear()
        open_encoder("vrlib-tiny", str(ckpt))
    assert random_init, "a truly random model keeps open_clip's warning"
    assert not [r for r in caplog.records if "No pretrained weights loaded" in r.getMessage()]


def test_bug_run_all_leaves_a_fresh_widget_and_prints_no_stray_values():
    """The widget is created in the last cell, after the examples, which never touch a widget;
    no cell ends in a call whose value Jupyter would print (the stray ``PosixPath(...)``)."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    assert "QueryBrowser(" in cells[-1] and cells[-1].strip().endswith("browser")
    assert not any(re.search(r"QueryBrowser\(|\bbrowser\b", src) for src in cells[1:-1])
    for src in cells:
        last = ast.parse(src).body[-1]
        call = isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
        assert not call or ast.unparse(last.value.func) in ("print", "display"), src


@pytest.mark.slow
def test_bug_notebook_outputs_have_no_stray_path_or_false_warning(smoke_expert, tmp_path):
    from vrlib.report import run_study

    out = run_study(
        "query_browser", ROOT / "parameters" / "query_browser" / "smoke.yaml", out_root=tmp_path
    )
    executed = json.dumps(nbformat.read(out / NOTEBOOK.name, as_version=4).cells)
    assert "PosixPath(" not in executed and "No pretrained weights loaded" not in executed
    assert '"output_type": "error"' not in executed


def test_bug_the_audio_tag_has_one_name_in_docs_and_code():
    """The tag is ``audio`` in the data; docs called it "sound-only" (one word everywhere)."""
    from vrlib.data.synthetic.captions import CAPTION_TAGS

    assert "audio" in CAPTION_TAGS
    files = [
        ROOT / "README.md",
        *(ROOT / "notebooks").glob("*.ipynb"),
        *(ROOT / "vrlib").rglob("*.py"),
    ]
    files += [*(ROOT / "docs").rglob("*.md")]
    stale = [
        str(f.relative_to(ROOT)) for f in files if re.search(r"sound[- ]only", f.read_text(), re.I)
    ]
    assert not stale, f"call the audio tag `audio`, not sound-only: {stale}"


def test_bug_play_on_a_row_of_the_previous_query_does_nothing(setup):
    """CI: ▶ on a row drawn for the previous query (clicked while the next query's rows were being
    drawn) raised StopIteration in the callback, so the player never showed."""
    import dataclasses

    b = _browser(setup, top_k=1)
    _type_and_enter(b, "free query")
    shown = {h.video_index for h, _ in b._rows if h is not None}
    other = next(i for i in range(len(b.index.table)) if i not in shown)
    stale = dataclasses.replace(b.hits[0], video_index=other)  # a hit no row shows now
    assert b.play(stale) == b""
    assert b.panel not in b.results.children and b.player.layout.display == "none"


def test_status_changes_after_the_rows_are_drawn(setup):
    """The status line is the signal that the rows below it belong to the query it names."""
    b = _browser(setup)
    seen = []
    b.status.observe(lambda _: seen.append(tuple(b.results.children)), "value")
    _type_and_enter(b, "free query")
    assert seen and seen[-1] == tuple(b.results.children) and len(seen[-1]) >= 1
