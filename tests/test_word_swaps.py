"""Study 04's word-swap instrument: which captions it swaps, how, and that a model blind to the
held-out shapes (or colours) scores 50% however its words are biased."""

import numpy as np
import pytest

from vrlib.studies.curriculum.swaps import swap_scores, swap_word, word_swaps

SHAPES = ["cross", "diamond", "square"]


def test_swap_word_replaces_whole_words_and_fixes_the_article():
    assert swap_word("a cross moves left", "cross", "diamond") == "a diamond moves left"
    assert swap_word("a red cross crosses", "cross", "square") == "a red square crosses"
    assert swap_word("a cross appears", "cross", "oval") == "an oval appears"
    assert (
        swap_word("a red star and the red ring", "red", "orange")
        == "an orange star and the orange ring"
    )
    assert swap_word("something crossing", "cross", "square") == "something crossing"


def test_swaps_only_captions_naming_one_shown_shape_into_shapes_not_shown():
    captions = [
        "a red cross moves left",  # video 0 shows a cross: swapped into diamond and square
        "a cross and a diamond",  # names two held-out shapes: left out
        "a circle moves right",  # names none: left out
        "a blue square spins",  # video 1 shows a square and a diamond: only into cross
        "a square on the left",  # video 2 shows no square: left out
    ]
    shown = [{"cross", "circle"}, {"square", "diamond"}, {"circle"}]
    swaps = word_swaps(captions, [0, 0, 0, 1, 2], shown, SHAPES)
    assert swaps.rows.tolist() == [0, 0, 3]
    assert swaps.texts == [
        "a red diamond moves left",
        "a red square moves left",
        "a blue cross spins",
    ]
    assert swaps.pairs == [("cross", "diamond"), ("cross", "square"), ("square", "cross")]
    assert len(swaps) == 3


def test_weights_give_every_ordered_pair_the_same_total():
    captions = ["a cross"] * 5 + ["a diamond"] * 2
    swaps = word_swaps(captions, [0] * 5 + [1] * 2, [{"cross"}, {"diamond"}], ["cross", "diamond"])
    assert swaps.weights.mean() == pytest.approx(1.0)
    totals = {p: swaps.weights[[q == p for q in swaps.pairs]].sum() for p in set(swaps.pairs)}
    assert totals[("cross", "diamond")] == pytest.approx(totals[("diamond", "cross")])


def test_a_model_blind_to_the_shapes_scores_half_whatever_its_word_bias():
    # 5 cross videos, 1 diamond video; the text alone prefers "cross" everywhere
    captions = ["a cross"] * 5 + ["a diamond"]
    swaps = word_swaps(
        captions, list(range(6)), [{"cross"}] * 5 + [{"diamond"}], ["cross", "diamond"]
    )
    bias = {"cross": 0.3, "diamond": 0.1}
    own = np.array([bias[a] for a, _ in swaps.pairs])
    swapped = np.array([bias[b] for _, b in swaps.pairs])
    scores = swap_scores(own, swapped, swaps)
    assert scores.mean() == pytest.approx(0.5)  # unweighted it would be 5/6
    seeing = swap_scores(own + 1.0, swapped, swaps)  # one that prefers the shape on screen
    assert seeing.mean() == pytest.approx(1.0)


def test_ties_score_half_and_bad_input_is_refused():
    swaps = word_swaps(["a cross"], [0], [{"cross"}], ["cross", "diamond"])
    assert swap_scores(np.array([0.2]), np.array([0.2]), swaps).tolist() == [0.5]
    with pytest.raises(ValueError, match="at least two"):
        word_swaps(["a cross"], [0], [{"cross"}], ["cross"])
    with pytest.raises(ValueError):
        word_swaps(["a cross", "a cross"], [0], [{"cross"}], SHAPES)  # captions vs videos


def test_no_caption_to_swap_gives_an_empty_set():
    swaps = word_swaps(["a circle"], [0], [{"circle"}], SHAPES)
    assert len(swaps) == 0 and swaps.weights.shape == (0,)
    assert swap_scores(np.zeros(0), np.zeros(0), swaps).shape == (0,)
