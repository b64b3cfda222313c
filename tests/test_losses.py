"""ContrastiveLoss against a brute-force InfoNCE, and gather_with_grad in two gloo processes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from vrlib.losses import ContrastiveLoss, gather_side, gather_with_grad, same_video_mask


def _brute_info_nce(
    sim: torch.Tensor, scale: float, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE with positives on the diagonal, written out term by term."""
    n = sim.shape[0]
    keep = torch.ones(n, n, dtype=torch.bool) if keep is None else keep
    total = 0.0
    for i in range(n):
        row = [scale * sim[i, j] for j in range(n) if keep[i, j]]
        total = total - (scale * sim[i, i] - torch.logsumexp(torch.stack(row), 0))
        col = [scale * sim[j, i] for j in range(n) if keep[j, i]]
        total = total - (scale * sim[i, i] - torch.logsumexp(torch.stack(col), 0))
    return total / (2 * n)


def test_loss_matches_brute_force_and_starts_at_clip_temperature():
    torch.manual_seed(0)
    sim = torch.randn(6, 6).tanh()
    loss_fn = ContrastiveLoss()
    assert loss_fn.scale().item() == pytest.approx(1 / 0.07)
    got = loss_fn(sim)
    assert got.item() == pytest.approx(_brute_info_nce(sim, 1 / 0.07).item(), rel=1e-5)


def test_loss_is_symmetric_in_directions_and_low_for_a_perfect_match():
    sim = torch.eye(5) * 2 - 1  # positives 1, negatives -1
    loss_fn = ContrastiveLoss(temperature=0.05)
    assert loss_fn(sim).item() < 1e-6
    torch.manual_seed(1)
    noisy = torch.randn(5, 5)
    assert loss_fn(noisy).item() == pytest.approx(loss_fn(noisy.T).item(), rel=1e-6)


def test_scale_is_clamped_at_100_and_clamp_keeps_the_parameter_in_range():
    loss_fn = ContrastiveLoss()
    with torch.no_grad():
        loss_fn.logit_scale.fill_(math.log(1000.0))
    assert loss_fn.scale().item() == pytest.approx(100.0)
    loss_fn.clamp_()
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(100.0))
    with pytest.raises(ValueError, match="max_scale"):
        ContrastiveLoss(temperature=0.001)


def test_temperature_gets_a_gradient_unless_fixed():
    sim = torch.randn(4, 4)
    loss_fn = ContrastiveLoss()
    loss_fn(sim).backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.abs() > 0
    assert not ContrastiveLoss(learnable=False).logit_scale.requires_grad


def test_ignore_mask_drops_false_negatives_from_both_softmaxes():
    torch.manual_seed(2)
    sim = torch.randn(5, 5) * 0.3
    sim[0, 2] = sim[2, 0] = 1.0  # the duplicate looks like a strong "negative"
    video_index = torch.tensor([0, 1, 0, 2, 3])  # items 0 and 2 show the same video
    ignore = same_video_mask(video_index)
    assert ignore.sum() == 2 and ignore[0, 2] and ignore[2, 0]
    loss_fn = ContrastiveLoss(temperature=0.1)
    expected = _brute_info_nce(sim, 10.0, keep=~ignore)
    assert loss_fn(sim, ignore=ignore).item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss_fn(sim, ignore=ignore).item() != pytest.approx(loss_fn(sim).item(), rel=1e-3)
    with pytest.raises(ValueError, match="positive"):
        loss_fn(sim, ignore=torch.eye(5, dtype=torch.bool))


def test_labels_pick_the_positive_column_of_a_rectangular_matrix():
    torch.manual_seed(3)
    sim = torch.randn(3, 7)
    labels = torch.tensor([4, 0, 6])
    loss_fn = ContrastiveLoss(temperature=0.2)
    logits = 5.0 * sim
    t2v = torch.nn.functional.cross_entropy(logits, labels)
    v2t = torch.nn.functional.cross_entropy(logits[:, labels].T, torch.arange(3))
    assert loss_fn(sim, labels).item() == pytest.approx(((t2v + v2t) / 2).item(), rel=1e-6)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(sim)
    with pytest.raises(ValueError, match="distinct"):
        loss_fn(sim, torch.tensor([1, 1, 2]))


def test_gather_is_the_identity_without_a_process_group():
    t = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(t) is t
    side = {"video": t, "mask": torch.ones(3, dtype=torch.bool)}
    assert gather_side(side) == side


def _gather_worker(out_dir: str) -> None:
    """Rank r holds rows filled with r; each rank's loss weights the gathered rows differently."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.full((2, 3), float(rank + 1), requires_grad=True)
    gathered = gather_with_grad(t)
    weights = torch.arange(world * 2 * 3, dtype=torch.float32).view(world * 2, 3) * (rank + 1)
    (gathered * weights).sum().backward()
    flags = gather_with_grad(torch.tensor([rank == 0, True]))
    ids = gather_with_grad(torch.tensor([10 * rank]))
    torch.save(
        {"gathered": gathered.detach(), "grad": t.grad, "flags": flags, "ids": ids},
        Path(out_dir) / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


def test_gather_with_grad_in_two_processes(tmp_path: Path):
    from _launch import run_ranks

    run_ranks("test_losses", "_gather_worker", tmp_path, world_size=2)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    base = torch.arange(12, dtype=torch.float32).view(4, 3)
    for rank, res in enumerate(results):
        # forward: every rank sees rank 0's rows then rank 1's rows
        assert torch.equal(res["gathered"], torch.tensor([[1.0] * 3] * 2 + [[2.0] * 3] * 2))
        # backward: the sum over ranks of d(loss_r)/d(own rows) = (1 + 2) * base[own rows]
        assert torch.allclose(res["grad"], 3 * base[2 * rank : 2 * rank + 2])
        assert res["flags"].dtype == torch.bool and res["flags"].tolist() == [
            True,
            True,
            False,
            True,
        ]
        assert res["ids"].tolist() == [0, 10]
    assert os.environ.get("RANK") is None  # the test process itself stayed single-process


def test_fixed_temperature_001_is_accepted_and_stays_at_scale_100():
    """CLIP4Clip / CLIP2Video train at logit scale 100 (temperature 0.01)."""
    loss_fn = ContrastiveLoss(temperature=0.01, learnable=False)
    assert loss_fn.scale().item() == pytest.approx(100.0, rel=1e-6)
    assert list(p for p in loss_fn.parameters() if p.requires_grad) == []
    sim = torch.randn(4, 4, requires_grad=True)
    loss_fn(sim).backward()
    loss_fn.clamp_()
    assert loss_fn.scale().item() == pytest.approx(100.0, rel=1e-6)
    expected = _brute_info_nce(sim.detach(), 100.0)
    assert loss_fn(sim).item() == pytest.approx(expected.item(), rel=1e-5)


def test_from_logit_scale_starts_at_the_encoders_scale_clamped_at_100():
    stored = torch.tensor(math.log(100.0))  # float32 rounds above log(100), as in CLIP weights
    assert stored.item() > math.log(100.0)
    loss_fn = ContrastiveLoss.from_logit_scale(stored)
    assert loss_fn.logit_scale.requires_grad
    assert loss_fn.scale().item() == pytest.approx(100.0, rel=1e-6)
    assert ContrastiveLoss.from_logit_scale(3.0).scale().item() == pytest.approx(math.exp(3.0))
    assert ContrastiveLoss.from_logit_scale(9.0).scale().item() == pytest.approx(100.0)
    with torch.no_grad():  # a step that pushes it past 100 is clamped back, as CLIP4Clip does
        loss_fn.logit_scale.add_(0.5)
    loss_fn.clamp_()
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(100.0))
    with pytest.raises(ValueError, match="finite"):
        ContrastiveLoss.from_logit_scale(float("nan"))
