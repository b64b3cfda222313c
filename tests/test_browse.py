"""The query browser, driven headlessly the way a person drives it: set widget values, read results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.browse import QueryBrowser, frame_strip, video_scores


class FixedTextEncoder:
    """Maps each known text to a fixed unit vector (so the expected ranking is known exactly)."""

    def __init__(self, table: dict[str, torch.Tensor]):
        self.table = table

    def encode_text(self, texts):
        return torch.stack([self.table[t] for t in texts])


@pytest.fixture(scope="module")
def browser_setup(smoke_world):
    from vrlib.data.datasets import load_dataset

    ds = load_dataset("synthetic", smoke_world, "test")
    gen = torch.Generator().manual_seed(0)
    videos = torch.nn.functional.normalize(torch.randn(len(ds.videos), 16, generator=gen), dim=-1)
    texts = {
        c.text: torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0)
        for c in ds.captions
    }
    texts["free query"] = videos[2]  # a free query that matches video 2 exactly
    return ds, videos, FixedTextEncoder(texts)


def test_typing_a_query_ranks_videos_by_score(browser_setup):
    ds, videos, enc = browser_setup
    b = QueryBrowser(ds, videos, enc, top_k=3, strip_frames=2, strip_size=16)
    b.query.value = "free query"
    assert [h.rank for h in b.hits] == [1, 2, 3]
    assert b.hits[0].video_index == 2 and b.hits[0].score == pytest.approx(1.0, abs=1e-5)
    expected = torch.argsort(videos @ videos[2], descending=True)[:3].tolist()
    assert [h.video_index for h in b.hits] == expected
    assert b.target_rank is None and len(b.results.children) == 3


def test_picking_a_caption_marks_its_video_and_rank(browser_setup):
    ds, videos, enc = browser_setup
    b = QueryBrowser(ds, videos, enc, top_k=len(ds.videos), strip_frames=2, strip_size=16)
    index = 5
    b.caption.value = index
    target = int(ds.caption_to_video[index])
    scores = videos @ enc.table[ds.captions[index].text]
    assert b.target_rank == 1 + int((scores > scores[target]).sum())
    marked = [h for h in b.hits if h.is_target]
    assert len(marked) == 1 and marked[0].video_index == target and marked[0].rank == b.target_rank


def test_clicking_a_result_shows_its_captions(browser_setup):
    ds, videos, enc = browser_setup
    b = QueryBrowser(ds, videos, enc, top_k=2, strip_frames=2, strip_size=16)
    b.search("free query")
    b.results.children[0].children[-1].click()  # the "captions" button of the first result
    vid = b.hits[0].video_id
    expected = [c.text for c in ds.captions if c.video_id == vid]
    assert expected and all(t.replace("'", "&#x27;") in b.detail.value for t in expected)
    assert b.show_captions(0) == expected


def test_top_k_slider_reruns_the_last_query(browser_setup):
    ds, videos, enc = browser_setup
    b = QueryBrowser(ds, videos, enc, top_k=2, strip_frames=2, strip_size=16)
    b.search("free query")
    b.top_k.value = 4
    assert len(b.hits) == 4


def test_bad_inputs(browser_setup):
    ds, videos, enc = browser_setup
    with pytest.raises(ValueError, match="video embeddings"):
        QueryBrowser(ds, videos[:-1], enc)
    with pytest.raises(ValueError, match="empty"):
        QueryBrowser(ds, videos, enc).search("  ")


def test_video_scores_take_the_best_of_k_embeddings():
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.6, 0.8]]])  # (V=2, k=2, d=2)
    assert video_scores(torch.tensor([0.0, 1.0]), v).tolist() == pytest.approx([1.0, 0.8])


def test_frame_strip_shape(smoke_world):
    path = sorted((smoke_world / "videos").glob("*.mp4"))[0]
    strip = frame_strip(path, n=3, size=20)
    assert strip.shape == (20, 60, 3) and strip.dtype == np.uint8
