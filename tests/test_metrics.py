"""vrlib.metrics against a plain brute-force loop, ties included, chunked and unchunked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vrlib import metrics
from vrlib.metrics import evaluate, ranks, summarize

# --------------------------------------------------------------------------- brute force


def brute_ranks(sim, positives, direction, multi="max_sim", ties="optimistic"):
    """Ranks by plain Python loops, straight from the protocol's definition.

    sim: (C, V, k) array; positives: (C, V) bool. A query's rank = 1 + the number of negatives
    scoring above its best positive (pessimistic: at or above; mean: the expected rank when the t
    tied negatives and m tied positives are shuffled, 1 + above + t / (m + 1)); min_rank: min over
    the k runs.
    """
    num_c, num_v, k = sim.shape
    if multi == "max_sim":
        runs = [[[max(sim[c][v]) for v in range(num_v)] for c in range(num_c)]]
    else:
        runs = [[[sim[c][v][j] for v in range(num_v)] for c in range(num_c)] for j in range(k)]
    if direction == "v2t":  # a video's candidates are the captions: transpose everything
        runs = [[list(col) for col in zip(*run, strict=True)] for run in runs]
        positives = [list(col) for col in zip(*positives, strict=True)]
    out = []
    for q in range(len(positives)):
        best_rank = math.inf
        for run in runs:
            scored = list(zip(run[q], positives[q], strict=True))
            best = max(s for s, is_pos in scored if is_pos)
            above = sum(1 for s, is_pos in scored if not is_pos and s > best)
            at_or_above = sum(1 for s, is_pos in scored if not is_pos and s >= best)
            tied_pos = sum(1 for s, is_pos in scored if is_pos and s == best)
            rank = {
                "optimistic": 1 + above,
                "pessimistic": 1 + at_or_above,
                "mean": 1 + above + (at_or_above - above) / (tied_pos + 1),
            }[ties]
            best_rank = min(best_rank, rank)
        out.append(best_rank)
    return np.array(out)


def one_hot(c2v, num_v):
    mask = np.zeros((len(c2v), num_v), dtype=bool)
    mask[np.arange(len(c2v)), c2v] = True
    return mask


# --------------------------------------------------------------------------- strategies


@st.composite
def problems(draw, max_k=3, mask=False):
    """Small integer-valued sims (many ties), 1-4 captions per video in shuffled order."""
    num_v = draw(st.integers(1, 6))
    k = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mask:
        num_c = draw(st.integers(1, 10))
        pos = rng.random((num_c, num_v)) < 0.3
        pos[np.arange(num_c), rng.integers(0, num_v, num_c)] = True  # every caption has a video
        extra = rng.integers(0, num_c, num_v)
        pos[extra, np.arange(num_v)] = True  # every video has a caption
        labels = pos
    else:
        counts = rng.integers(1, 5, num_v)
        labels = rng.permutation(np.repeat(np.arange(num_v), counts))
        num_c = len(labels)
        pos = one_hot(labels, num_v)
    sim = rng.integers(0, 4, (num_c, num_v, k)).astype(np.float32)
    if k == 1 and draw(st.booleans()):
        sim = sim[:, :, 0]  # also the plain (C, V) form
    return sim, labels, pos


def as3d(sim):
    return sim if sim.ndim == 3 else sim[:, :, None]


# --------------------------------------------------------------------------- brute-force agreement


@settings(max_examples=120, deadline=None)
@given(
    problems(),
    st.sampled_from(metrics.TIES),
    st.sampled_from(metrics.MULTI),
    st.sampled_from(metrics.DIRECTIONS),
)
def test_ranks_match_brute_force(problem, ties, multi, direction):
    sim, labels, pos = problem
    got = ranks(sim, labels, direction=direction, multi=multi, ties=ties)
    want = brute_ranks(as3d(sim), pos, direction, multi, ties)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == (np.float64 if ties == "mean" else np.int64)


@settings(max_examples=60, deadline=None)
@given(
    problems(mask=True),
    st.sampled_from(metrics.TIES),
    st.sampled_from(metrics.MULTI),
    st.sampled_from(metrics.DIRECTIONS),
)
def test_positives_mask_matches_brute_force(problem, ties, multi, direction):
    sim, mask, pos = problem
    got = ranks(sim, mask, direction=direction, multi=multi, ties=ties)
    np.testing.assert_array_equal(got, brute_ranks(as3d(sim), pos, direction, multi, ties))


@settings(max_examples=40, deadline=None)
@given(problems(max_k=1))
def test_v2t_is_liu_et_al_min_rank_over_all_captions(problem):
    """The literal Liu et al. recipe: sort all captions for the video, take its captions' best position."""
    sim, labels, _ = problem
    sim2 = as3d(sim)[:, :, 0]
    want = []
    for v in range(sim2.shape[1]):
        column = sorted(sim2[:, v].tolist(), reverse=True)
        own = [column.index(sim2[c, v]) + 1 for c in np.flatnonzero(labels == v)]
        want.append(min(own))
    np.testing.assert_array_equal(ranks(sim, labels, "v2t"), want)


def test_one_caption_per_video_v2t_equals_t2v_of_transpose():
    rng = np.random.default_rng(3)
    sim = rng.normal(size=(9, 9)).astype(np.float32)
    labels = rng.permutation(9)
    inverse = np.argsort(labels)  # caption of each video
    np.testing.assert_array_equal(ranks(sim, labels, "v2t"), ranks(sim.T.copy(), inverse, "t2v"))


# --------------------------------------------------------------------------- backends and chunking


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(metrics.TIES), st.sampled_from(metrics.MULTI), st.booleans())
def test_torch_and_numpy_agree(problem, ties, multi, dsl):
    sim, labels, _ = problem
    a = evaluate(sim, labels, multi=multi, ties=ties, dsl=dsl)
    b = evaluate(torch.from_numpy(sim), torch.from_numpy(labels), multi=multi, ties=ties, dsl=dsl)
    assert a == b


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from(metrics.TIES), st.sampled_from(metrics.MULTI), st.booleans())
def test_chunking_does_not_change_ranks(problem, ties, multi, dsl):
    sim, labels, _ = problem
    if dsl:  # continuous scores: the streamed log-sum-exp may differ from one-shot by an ulp
        sim = sim + np.random.default_rng(0).normal(0, 0.1, sim.shape).astype(np.float32)
    full = {
        d: ranks(sim, labels, d, multi, ties, dsl, chunk_size=10**6) for d in metrics.DIRECTIONS
    }
    for chunk in (1, 3):  # 3 leaves an uneven last chunk for most C
        for d in metrics.DIRECTIONS:
            np.testing.assert_array_equal(ranks(sim, labels, d, multi, ties, dsl, chunk), full[d])


def test_tensor_that_requires_grad_and_strided_numpy_are_accepted():
    rng = np.random.default_rng(2)
    sim = rng.normal(size=(12, 4)).astype(np.float32)
    labels = np.arange(12) % 4
    want = evaluate(sim, labels, dsl=True)
    assert evaluate(torch.tensor(sim, requires_grad=True), labels, dsl=True) == want
    flipped = np.ascontiguousarray(sim[::-1])[::-1]  # a negatively strided view of the same values
    assert evaluate(flipped, labels, dsl=True, chunk_size=5) == want


def test_blocks_never_exceed_chunk_size(monkeypatch):
    seen = []
    real_rows = metrics.ranking._rows

    def spy(p, start, stop):
        seen.append(stop - start)
        return real_rows(p, start, stop)

    monkeypatch.setattr(metrics.ranking, "_rows", spy)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 4)  # C = 20
    evaluate(rng.normal(size=(20, 5, 2)), labels, chunk_size=7)
    assert max(seen) == 7 and sum(seen) == 2 * 20  # two passes (v2t best caption, then counts)
    seen.clear()
    evaluate(rng.normal(size=(20, 5)), labels, chunk_size=7, dsl=True)
    assert max(seen) == 7 and sum(seen) == 3 * 20  # plus one pass for the dual-softmax sums


def test_default_chunk_bounds_block_size():
    sim = np.zeros((5000, 1000), dtype=np.float32)
    problem = metrics.inputs._prepare(sim, np.arange(5000) % 1000, None, need_v2t=True)
    assert problem.chunk * 1000 <= metrics.BLOCK_ELEMENTS < 5000 * 1000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(1)
    sim = torch.from_numpy(rng.integers(0, 5, (50, 10, 3)).astype(np.float32))
    labels = torch.arange(50) % 10
    for multi in metrics.MULTI:
        assert evaluate(sim.cuda(), labels.cuda(), multi=multi, ties="mean") == evaluate(
            sim, labels, multi=multi, ties="mean"
        )


# --------------------------------------------------------------------------- hand examples


def test_ties_hand_example():
    # caption 0 -> video 0, tied with video 1 and below video 2
    sim = np.array([[0.5, 0.5, 0.9, 0.1]])
    labels = np.array([0])
    assert ranks(sim, labels, ties="optimistic").tolist() == [2]
    assert ranks(sim, labels, ties="pessimistic").tolist() == [3]
    assert ranks(sim, labels, ties="mean").tolist() == [2.5]


def test_tied_own_captions_do_not_count_against_a_video():
    sim = np.array([[0.7], [0.7], [0.2]])  # two captions of the only video tie at the top
    assert ranks(sim, np.array([0, 0, 0]), "v2t", ties="pessimistic").tolist() == [1]


def test_min_rank_vs_max_sim_hand_example():
    # caption 0 -> video 0 whose embeddings score (0.5, 0.1); video 1 scores (0.2, 0.6).
    sim = np.zeros((2, 2, 2))
    sim[0, 0], sim[0, 1] = (0.5, 0.1), (0.2, 0.6)
    sim[1, 0], sim[1, 1] = (0.0, 0.0), (0.9, 0.9)
    labels = np.array([0, 1])
    assert ranks(sim, labels, multi="max_sim").tolist() == [2, 1]  # 0.5 < max(0.2, 0.6)
    assert ranks(sim, labels, multi="min_rank").tolist() == [1, 1]  # run 0: 0.5 > 0.2
    # v2t, video 0: its caption scores (0.5, 0.1), caption 1 scores (0.0, 0.0) -> rank 1 either way
    assert ranks(sim, labels, "v2t", multi="min_rank").tolist() == [1, 1]


def test_dual_softmax_hand_example():
    # caption 0 -> video 1, caption 1 -> video 0. Video 0 is a "hub" that caption 0 also likes,
    # but caption 1 claims video 0 much more strongly, so the prior over captions for video 0
    # nearly zeroes caption 0's score for it.
    sim = np.array([[0.50, 0.45], [0.60, 0.10]], dtype=np.float64)
    labels = np.array([1, 0])
    assert ranks(sim, labels).tolist() == [2, 1]
    assert ranks(sim, labels, dsl=True).tolist() == [1, 1]
    prior = np.exp(sim / 0.01) / np.exp(sim / 0.01).sum(0, keepdims=True)
    rescored = sim * prior
    assert rescored[0, 0] == pytest.approx(0.5 / (1 + math.exp(10)))
    np.testing.assert_array_equal(ranks(sim, labels, dsl=True), ranks(rescored, labels))
    # a high temperature flattens the prior to 1/C: order as without DSL
    assert ranks(sim, labels, dsl=True, dsl_temperature=1e6).tolist() == [2, 1]


@settings(max_examples=30, deadline=None)
@given(problems(), st.sampled_from(metrics.MULTI))
def test_dual_softmax_matches_direct_rescoring(problem, multi):
    sim, labels, _ = problem
    # continuous scores: exact ties in the re-scored matrix would depend on rounding order
    noise = np.random.default_rng(sim.size).normal(0, 0.05, as3d(sim).shape)
    sim3 = as3d(sim).astype(np.float64) / 4 + noise
    runs = sim3.max(2, keepdims=True) if multi == "max_sim" else sim3
    logits = runs / 0.01
    prior = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    rescored = runs * prior
    for d in metrics.DIRECTIONS:
        got = ranks(sim3, labels, d, multi=multi, dsl=True)
        want = ranks(rescored, labels, d, multi="min_rank" if multi == "min_rank" else "max_sim")
        np.testing.assert_array_equal(got, want)


def test_summarize_hand_example():
    out = summarize(np.array([1, 2, 3, 10, 20]))
    assert out == pytest.approx(
        {
            "R@1": 20.0,
            "R@5": 60.0,
            "R@10": 80.0,
            "MdR": 3.0,
            "MnR": 7.2,
            "StdR": math.sqrt(50.96),
            "n": 5,
        }
    )


def test_evaluate_keys_and_protocol():
    rng = np.random.default_rng(0)
    out = evaluate(rng.normal(size=(8, 4)), np.arange(8) % 4, dsl=True)
    assert set(out) == {"t2v", "v2t", "protocol"}
    assert set(out["t2v"]) == {"R@1", "R@5", "R@10", "MdR", "MnR", "StdR", "n"}
    assert out["t2v"]["n"] == 8 and out["v2t"]["n"] == 4
    assert out["protocol"]["dsl_used"] is True and out["protocol"]["dsl_temperature"] == 0.01
    plain = evaluate(rng.normal(size=(8, 4)), np.arange(8) % 4, ties="mean")["protocol"]
    assert plain["dsl_used"] is False and plain["ties_used"] == "mean"
    assert "dsl_temperature" not in plain


# --------------------------------------------------------------------------- bad input


SIM = np.zeros((4, 2), dtype=np.float32)
C2V = np.array([0, 1, 0, 1])


@pytest.mark.parametrize(
    ("sim", "c2v", "kw", "match"),
    [
        (np.zeros(4), C2V, {}, "sim must be"),
        (np.zeros((4, 0)), C2V, {}, "sim must be"),
        (SIM.astype(bool), C2V, {}, "real numbers"),
        ([[0.0, 1.0]], C2V, {}, "numpy array or torch tensor"),
        (SIM, np.array([0, 1, 0]), {}, "caption_to_video has shape"),
        (SIM, np.array([0, 1, 2, 1]), {}, r"outside \[0, 2\).*captions \[2\]"),
        (SIM, np.array([0, 1, -1, 1]), {}, "outside"),
        (SIM, C2V.astype(float), {}, "integer video indices"),
        (SIM, np.array([0, 0, 0, 0]), {}, r"videos have no caption.*videos \[1\]"),
        (SIM, np.ones((4, 3), dtype=bool), {}, "mask has shape"),
        (SIM, np.eye(4, 2, dtype=bool), {}, r"captions have no positive video.*\[2, 3\]"),
        (np.array([[0.0, np.nan]] * 4), C2V, {}, r"non-finite.*rows 0\.\.3"),
        (SIM, C2V, {"multi": "mean"}, "multi='mean'; valid: max_sim, min_rank"),
        (SIM, C2V, {"ties": "random"}, "ties='random'; valid"),
        (SIM, C2V, {"chunk_size": 0}, "chunk_size"),
        (SIM, C2V, {"dsl": True, "dsl_temperature": 0.0}, "dsl_temperature"),
    ],
)
def test_bad_input_raises_naming_the_argument(sim, c2v, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        evaluate(sim, c2v, **kw)


def test_bad_direction_and_t2v_allows_captionless_videos():
    with pytest.raises(ValueError, match="direction='both'"):
        ranks(SIM, C2V, direction="both")
    sim = np.array([[0.9, 0.1, 0.5]])  # video 2 has no caption: a distractor for t2v
    assert ranks(sim, np.array([0]), "t2v").tolist() == [1]
    with pytest.raises(ValueError, match=r"videos \[1, 2\]"):
        ranks(sim, np.array([0]), "v2t")


# --------------------------------------------------------------------------- protocol options


def brute_group_ranks(sim, labels, multi="max_sim", ties="optimistic"):
    """v2t by caption groups from the definition: group g scores video v by its best caption."""
    sim3 = as3d(sim)
    runs = [sim3.max(2)] if multi == "max_sim" else [sim3[:, :, j] for j in range(sim3.shape[2])]
    num_v = sim3.shape[1]
    out = []
    for v in range(num_v):
        best_rank = math.inf
        for run in runs:
            group = [
                max(run[c][v] for c in range(len(labels)) if labels[c] == g) for g in range(num_v)
            ]
            above = sum(1 for g in range(num_v) if g != v and group[g] > group[v])
            tied = sum(1 for g in range(num_v) if g != v and group[g] == group[v])
            rank = {
                "optimistic": 1 + above,
                "pessimistic": 1 + above + tied,
                "mean": 1 + above + tied / 2,
            }
            best_rank = min(best_rank, rank[ties])
        out.append(best_rank)
    return np.array(out)


@settings(max_examples=80, deadline=None)
@given(problems(), st.sampled_from(metrics.TIES), st.sampled_from(metrics.MULTI), st.booleans())
def test_caption_groups_match_brute_force(problem, ties, multi, chunked):
    sim, labels, _ = problem
    got = ranks(
        sim,
        labels,
        "v2t",
        multi=multi,
        ties=ties,
        v2t="caption_groups",
        chunk_size=2 if chunked else None,
    )
    np.testing.assert_allclose(got, brute_group_ranks(sim, labels, multi, ties))
    if ties == "optimistic":  # a distractor video counts once, not once per caption
        assert (got <= ranks(sim, labels, "v2t", multi=multi, ties=ties)).all()


def test_caption_groups_hand_example_and_one_caption_per_video():
    # video 0 has captions 0, 1 (best 0.6); video 1's two captions 2, 3 both score 0.7 and 0.65 on
    # video 0: all captions -> rank 3, caption groups -> rank 2 (video 1's group counts once).
    sim = np.array([[0.6, 0.0], [0.1, 0.0], [0.7, 0.9], [0.65, 0.8]])
    labels = np.array([0, 0, 1, 1])
    assert ranks(sim, labels, "v2t").tolist() == [3, 1]
    assert ranks(sim, labels, "v2t", v2t="caption_groups").tolist() == [2, 1]
    square = np.random.default_rng(1).normal(size=(7, 7))
    np.testing.assert_array_equal(
        ranks(square, np.arange(7), "v2t", v2t="caption_groups"), ranks(square, np.arange(7), "v2t")
    )


def test_caption_groups_need_int_labels_and_options_are_named():
    sim = np.zeros((2, 2))
    with pytest.raises(ValueError, match="caption_groups.*int caption_to_video"):
        evaluate(sim, np.eye(2, dtype=bool), v2t="caption_groups")
    with pytest.raises(ValueError, match="v2t='groups'; valid: all_captions, caption_groups"):
        evaluate(sim, np.arange(2), v2t="groups")
    with pytest.raises(ValueError, match="median='torch'; valid: mean_of_middle, lower_middle"):
        evaluate(sim, np.arange(2), median="torch")


def test_median_options():
    rank = np.array([4, 1, 3, 2])
    assert summarize(rank)["MdR"] == 2.5  # np.median
    assert summarize(rank, median="lower_middle")["MdR"] == 2.0  # torch.median
    assert summarize(rank[:3], median="lower_middle")["MdR"] == 3.0  # odd n: the middle either way
    assert float(torch.median(torch.tensor(rank))) == 2.0  # the reference semantics


def test_protocol_records_v2t_and_median():
    rng = np.random.default_rng(0)
    doc = evaluate(
        rng.normal(size=(6, 3)), np.arange(6) % 3, v2t="caption_groups", median="lower_middle"
    )
    assert doc["protocol"]["v2t_used"] == "caption_groups"
    assert doc["protocol"]["median_used"] == "lower_middle"
    assert set(doc["protocol"]["v2t"]) == set(metrics.V2T)
    default = evaluate(rng.normal(size=(6, 3)), np.arange(6) % 3)["protocol"]
    assert (default["v2t_used"], default["median_used"]) == ("all_captions", "mean_of_middle")


# --------------------------------------------------------------------------- ties="mean" = expectation


def enumerated_rank_distribution(scores, positive):
    """Every order of the candidates, equally likely, sorted stably by score: {rank: probability}.

    The rank is 1 + the number of negatives before the first positive (positives never count).
    """
    from collections import Counter
    from itertools import permutations

    counts = Counter()
    orders = list(permutations(range(len(scores))))
    for order in orders:
        ranked = sorted(order, key=lambda i: -scores[i])  # stable: ties keep the random order
        first = next(n for n, i in enumerate(ranked) if positive[i])
        counts[1 + sum(1 for i in ranked[:first] if not positive[i])] += 1
    return {r: n / len(orders) for r, n in counts.items()}


@st.composite
def tiny_problems(draw):
    """Few enough candidates (<= 6) to enumerate every tie-break order; many ties."""
    num_v = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.permutation(np.repeat(np.arange(num_v), rng.integers(1, 3, num_v)))
    k = draw(st.integers(1, 2))
    sim = rng.integers(0, 3, (len(labels), num_v, k)).astype(np.float64)
    return sim, labels


@settings(max_examples=60, deadline=None)
@given(tiny_problems(), st.sampled_from(metrics.MULTI), st.booleans())
def test_mean_ties_give_the_expected_recall_of_a_random_tie_break(problem, multi, use_mask):
    sim, labels = problem
    pos = one_hot(labels, sim.shape[1])
    runs = [sim.max(2)] if multi == "max_sim" else [sim[:, :, j] for j in range(sim.shape[2])]
    got = evaluate(sim, pos if use_mask else labels, multi=multi, ties="mean")
    for direction in metrics.DIRECTIONS:
        flip = direction == "v2t"
        queries = pos.T if flip else pos
        hit = np.zeros((len(queries), len(metrics.RECALL_AT)))
        mean_rank = np.zeros(len(queries))
        for q in range(len(queries)):
            miss = np.ones(len(metrics.RECALL_AT))
            for run in runs:  # independent tie-breaks per run
                dist = enumerated_rank_distribution((run.T if flip else run)[q], queries[q])
                miss *= [1 - sum(p for r, p in dist.items() if r <= k) for k in metrics.RECALL_AT]
                mean_rank[q] = sum(r * p for r, p in dist.items())
            hit[q] = 1 - miss
        for i, k in enumerate(metrics.RECALL_AT):
            assert got[direction][f"R@{k}"] == pytest.approx(100 * hit[:, i].mean())
        if len(runs) == 1:  # the reported rank is the expected rank
            want = ranks(sim, labels, direction, multi=multi, ties="mean")
            np.testing.assert_allclose(want, mean_rank)


def test_mean_ties_hand_example():
    # caption 0 -> video 0, tied with videos 1 and 2: its rank is uniform on 1..3; the other three
    # captions find their video first
    sim = np.eye(4)
    sim[0, :3] = 0.5
    labels = np.arange(4)
    assert ranks(sim, labels, ties="mean").tolist() == [2.0, 1.0, 1.0, 1.0]
    out = evaluate(sim, labels, ties="mean")["t2v"]
    assert out["R@1"] == pytest.approx(100 * (1 / 3 + 3) / 4)  # not the pessimistic 75
    assert out["R@5"] == 100.0
    assert evaluate(sim, labels, ties="pessimistic")["t2v"]["R@1"] == 75.0
