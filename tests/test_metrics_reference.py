"""vrlib.metrics against small re-implementations of the reference projects' metric code.

Each ``ref_*`` below re-implements, for the test only, what a published evaluation computes (the
facts read from CLIP4Clip's and CLIP2Video's ``metrics.py`` and CLIP_benchmark's
``zeroshot_retrieval.py``): the same sorting, argsort and median semantics, on the same
matrix layouts. vrlib must give identical numbers with the matching options on continuous
random matrices; with ties, where the reference results depend on storage order, vrlib's
optimistic and pessimistic numbers must bracket them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.metrics import evaluate, ranks

# --------------------------------------------------------------------------- reference semantics


def ref_compute_metrics(x: np.ndarray) -> dict[str, float]:
    """CLIP4Clip / CLIP2Video ``compute_metrics``: queries are rows, the match is on the diagonal.

    The rank is the column where the sorted negated row equals the diagonal (np.where: with ties
    a row can match several columns, the documented pitfall); median with np.median.
    """
    sx = np.sort(-x, axis=1)
    d = np.diag(-x)[:, np.newaxis]
    ind = np.where(sx - d == 0)[1]
    return {
        "R@1": float(np.sum(ind == 0)) * 100 / len(ind),
        "R@5": float(np.sum(ind < 5)) * 100 / len(ind),
        "R@10": float(np.sum(ind < 10)) * 100 / len(ind),
        "MdR": float(np.median(ind) + 1),
        "MnR": float(np.mean(ind) + 1),
    }


def ref_group_tensor(sim: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    """The multi-sentence layout of CLIP4Clip's evaluation: ``(V, max captions, V)``, each video's
    captions in one slot row, padded with -inf."""
    num_v = sim.shape[1]
    width = int(np.bincount(labels, minlength=num_v).max())
    out = torch.full((num_v, width, num_v), -np.inf, dtype=torch.float64)
    for v in range(num_v):
        rows = sim[labels == v]
        out[v, : len(rows)] = torch.from_numpy(rows)
    return out


def ref_tensor_text_to_video_metrics(sim_tensor: torch.Tensor) -> dict[str, float]:
    """CLIP4Clip / CLIP2Video ``tensor_text_to_video_metrics``: double argsort, torch.median."""
    stacked = sim_tensor.permute(1, 0, 2)  # (max captions, V, V)
    first = torch.argsort(stacked, dim=-1, descending=True)
    second = torch.argsort(first, dim=-1, descending=False)
    rank = torch.flatten(torch.diagonal(second, dim1=1, dim2=2))
    own = torch.flatten(torch.diagonal(sim_tensor, dim1=0, dim2=2))
    valid = rank[~(torch.isinf(own) | torch.isnan(own))]
    out = {f"R@{k}": float(torch.sum(valid < k) * 100 / len(valid)) for k in (1, 5, 10)}
    out["MdR"] = float(torch.median(valid + 1))
    out["MnR"] = float(np.mean(valid.numpy() + 1))
    out["StdR"] = float(np.std(valid.numpy() + 1))
    return out


def ref_tensor_video_to_text_sim(sim_tensor: torch.Tensor) -> np.ndarray:
    """CLIP4Clip / CLIP2Video ``tensor_video_to_text_sim``: each group scored by its best caption,
    transposed to videos x groups (then ranked with ``compute_metrics``)."""
    sim_tensor = sim_tensor.clone()
    sim_tensor[sim_tensor != sim_tensor] = float("-inf")
    values, _ = torch.max(sim_tensor, dim=1, keepdim=True)
    return torch.squeeze(values).T.numpy()


def ref_clip_benchmark_recall(scores: torch.Tensor, positive: torch.Tensor, k: int) -> float:
    """CLIP_benchmark ``recall_at_k`` then ``> 0``: a query counts if any positive is in its top k."""
    num_q, num_c = scores.shape
    top = torch.topk(scores, min(k, num_c), dim=1)[1]
    onehot = torch.nn.functional.one_hot(top, num_classes=num_c)
    true_pos = torch.logical_and(onehot, positive.view(num_q, 1, num_c)).sum(dim=(1, 2))
    return float((true_pos / positive.sum(dim=1) > 0).float().mean() * 100)


# --------------------------------------------------------------------------- shared matrices


def continuous_problem(seed: int, num_v: int = 40, max_captions: int = 5):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(num_v), rng.integers(1, max_captions + 1, num_v)))
    return rng.normal(size=(len(labels), num_v)), labels


def pick(result: dict, keys) -> dict:
    return {k: result[k] for k in keys}


@pytest.mark.parametrize("seed", range(5))
def test_one_caption_per_video_matches_compute_metrics(seed):
    sim = np.random.default_rng(seed).normal(size=(50, 50))  # MSR-VTT 1k-A layout
    ours = evaluate(sim, np.arange(50))
    keys = ("R@1", "R@5", "R@10", "MdR", "MnR")
    assert pick(ours["t2v"], keys) == pytest.approx(ref_compute_metrics(sim))
    assert pick(ours["v2t"], keys) == pytest.approx(ref_compute_metrics(sim.T))


@pytest.mark.parametrize("seed", range(5))
def test_multi_caption_t2v_matches_tensor_text_to_video_metrics(seed):
    sim, labels = continuous_problem(seed)
    ref = ref_tensor_text_to_video_metrics(ref_group_tensor(sim, labels))
    ours = evaluate(sim, labels, median="lower_middle")["t2v"]
    assert pick(ours, ref) == pytest.approx(ref)
    if len(labels) % 2 == 0:  # the default median differs exactly where the two middles differ
        r = np.sort(ranks(sim, labels))
        assert evaluate(sim, labels)["t2v"]["MdR"] == (r[len(r) // 2 - 1] + r[len(r) // 2]) / 2


@pytest.mark.parametrize("seed", range(5))
def test_multi_caption_v2t_groups_match_tensor_video_to_text_sim(seed):
    sim, labels = continuous_problem(seed)
    ref = ref_compute_metrics(ref_tensor_video_to_text_sim(ref_group_tensor(sim, labels)))
    ours = evaluate(sim, labels, v2t="caption_groups")["v2t"]
    assert pick(ours, ref) == pytest.approx(ref)
    # the default (all captions) is not the reference's protocol and ranks worse
    assert evaluate(sim, labels)["v2t"]["MnR"] > ours["MnR"]


@pytest.mark.parametrize("seed", range(5))
def test_all_captions_matches_clip_benchmark(seed):
    sim, labels = continuous_problem(seed)
    positive = torch.zeros(sim.shape, dtype=torch.bool)
    positive[torch.arange(len(labels)), torch.from_numpy(labels)] = True
    scores = torch.from_numpy(sim)
    for mask in (False, True):
        ours = evaluate(sim, positive.numpy() if mask else labels)
        for k in (1, 5, 10):
            assert ours["t2v"][f"R@{k}"] == pytest.approx(
                ref_clip_benchmark_recall(scores, positive, k)
            )
            assert ours["v2t"][f"R@{k}"] == pytest.approx(
                ref_clip_benchmark_recall(scores.T, positive.T, k)
            )


@pytest.mark.parametrize("seed", range(5))
def test_with_ties_reference_ranks_lie_between_optimistic_and_pessimistic(seed):
    """Integer scores: the double argsort breaks ties by storage order, so its rank is one of the
    orders a random tie-break could give: between vrlib's optimistic and pessimistic ranks."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(12), rng.integers(1, 4, 12)))
    sim = rng.integers(0, 4, (len(labels), 12)).astype(np.float64)
    tensor = ref_group_tensor(sim, labels)
    first = torch.argsort(tensor.permute(1, 0, 2), dim=-1, descending=True)
    second = torch.argsort(first, dim=-1)
    ref_rank = torch.diagonal(second, dim1=1, dim2=2).T + 1  # (V, max captions)
    order = np.argsort(labels, kind="stable")  # captions in the slot order of the group tensor
    slot = np.concatenate([np.arange(n) for n in np.bincount(labels)])
    ref_rank = ref_rank[labels[order], slot].numpy()
    low = ranks(sim, labels, ties="optimistic")[order]
    high = ranks(sim, labels, ties="pessimistic")[order]
    assert (low <= ref_rank).all() and (ref_rank <= high).all()
    expected = ranks(sim, labels, ties="mean")[order]
    assert (low <= expected).all() and (expected <= high).all()
