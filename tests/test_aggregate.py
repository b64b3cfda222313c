"""vrlib.aggregate: single frame, mean, spherical k-means (batched, seeded)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vrlib.aggregate import AGGREGATIONS, aggregate, average_over_offsets

OPTIONS = {"single": {"index": 1}, "mean": {}, "kmeans": {"k": 3, "seed": 0}}


def videos(lengths=(7, 2, 12, 5), d=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(t, d)).astype(np.float32) for t in lengths]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("method", AGGREGATIONS.names())
def test_outputs_are_unit_norm_and_shaped(method):
    vids = videos()
    out = aggregate(vids, method, **OPTIONS[method])
    expected = (4, 3, 16) if method == "kmeans" else (4, 16)
    assert out.shape == expected and isinstance(out, np.ndarray)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    one = aggregate(torch.from_numpy(vids[0]), method, **OPTIONS[method])
    assert isinstance(one, torch.Tensor) and one.shape == expected[1:]


def test_mean_matches_direct_computation():
    vids = videos()
    want = np.stack([unit(unit(v).mean(0)) for v in vids])
    np.testing.assert_allclose(aggregate(vids, "mean"), want, rtol=1e-5, atol=1e-6)


def test_single_picks_the_frame_by_position():
    vids = videos()
    np.testing.assert_allclose(aggregate(vids[0], "single", index=3), unit(vids[0][3]), rtol=1e-6)
    np.testing.assert_allclose(aggregate(vids[0], "single"), unit(vids[0][0]), rtol=1e-6)
    per_video = aggregate(vids, "single", index=[0, -1, 11, 4])
    want = np.stack([unit(vids[0][0]), unit(vids[1][1]), unit(vids[2][11]), unit(vids[3][4])])
    np.testing.assert_allclose(per_video, want, rtol=1e-6)
    with pytest.raises(ValueError, match="index 2 is out of range for video 1 with T=2"):
        aggregate(vids, "single", index=2)
    with pytest.raises(ValueError, match="index has 2 entries for 4 videos"):
        aggregate(vids, "single", index=[0, 1])


def clustered(seed, n_clusters=3, per_cluster=10, d=16, noise=0.05):
    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(n_clusters, d)))
    labels = rng.permutation(np.repeat(np.arange(n_clusters), per_cluster))
    frames = centers[labels] + noise * rng.normal(size=(len(labels), d))
    return frames.astype(np.float32), labels


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_recovers_clear_clusters(seed):
    frames, labels = clustered(seed)
    cents = aggregate(frames, "kmeans", k=3, seed=seed)
    assign = np.argmax(unit(frames) @ cents.T, axis=1)  # brute-force nearest centroid
    pairs = set(zip(labels.tolist(), assign.tolist(), strict=True))
    assert len(pairs) == 3 and len({a for _, a in pairs}) == 3  # a bijection: same partition
    for c in range(3):  # each centroid is the normalised mean of its frames
        np.testing.assert_allclose(cents[c], unit(unit(frames[assign == c]).mean(0)), atol=1e-5)


def test_kmeans_converges_to_a_fixed_point():
    frames = videos(lengths=(40,), seed=3)[0]
    cents = aggregate(frames, "kmeans", k=4, seed=0, iters=200)
    assign = np.argmax(unit(frames) @ cents.T, axis=1)
    for c in np.unique(assign):
        np.testing.assert_allclose(cents[c], unit(unit(frames[assign == c]).mean(0)), atol=1e-5)


def test_kmeans_deterministic_by_seed():
    vids = videos(lengths=(30, 25))
    a = aggregate(vids, "kmeans", k=4, seed=7)
    np.testing.assert_array_equal(a, aggregate(vids, "kmeans", k=4, seed=7))
    others = [aggregate(vids, "kmeans", k=4, seed=s) for s in range(3)]
    assert any(not np.allclose(a, o) for o in others)


def test_kmeans_fewer_frames_than_k_repeats_frames_cyclically():
    frames = videos(lengths=(2,))[0]
    out = aggregate(frames, "kmeans", k=5)
    np.testing.assert_allclose(out, unit(frames)[[0, 1, 0, 1, 0]], rtol=1e-6)
    batch = aggregate([frames, *videos(lengths=(9,), seed=1)], "kmeans", k=5)
    np.testing.assert_allclose(batch[0], out, rtol=1e-6)


def test_kmeans_with_identical_frames_stays_finite():
    frames = np.tile(np.arange(1, 5, dtype=np.float32), (6, 1))  # 6 copies of one frame, k=3
    out = aggregate(frames, "kmeans", k=3)
    np.testing.assert_allclose(out, np.tile(unit(frames[0]), (3, 1)), rtol=1e-6)


@pytest.mark.parametrize("method", AGGREGATIONS.names())
def test_batched_equals_one_by_one(method):
    vids = videos(lengths=(7, 3, 15, 1, 9))
    options = {"k": 3, "seed": 2} if method == "kmeans" else {}
    batched = aggregate(vids, method, **options)
    alone = np.stack([aggregate(v, method, **options) for v in vids])
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", AGGREGATIONS.names())
def test_numpy_and_torch_agree(method):
    vids = videos()
    out_np = aggregate(vids, method, **OPTIONS[method])
    out_t = aggregate([torch.from_numpy(v) for v in vids], method, **OPTIONS[method])
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-6)


def test_float64_in_float64_out():
    vids = [v.astype(np.float64) for v in videos()]
    assert aggregate(vids, "mean").dtype == np.float64
    assert aggregate(vids[0], "kmeans", k=2).dtype == np.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    vids = [torch.from_numpy(v) for v in videos()]
    for method, options in OPTIONS.items():
        gpu = aggregate([v.cuda() for v in vids], method, **options)
        assert gpu.is_cuda
        torch.testing.assert_close(
            gpu.cpu(), aggregate(vids, method, **options), rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize(
    ("features", "method", "options", "error", "match"),
    [
        (
            [np.zeros((3, 4)), np.zeros((0, 4))],
            "mean",
            {},
            ValueError,
            r"frame_features\[1\] has no frames",
        ),
        (np.zeros((0, 4)), "kmeans", {}, ValueError, "no frames"),
        (
            [np.zeros((3, 4)), np.zeros((3, 5))],
            "mean",
            {},
            ValueError,
            r"frame_features\[1\] has d=5",
        ),
        ([np.zeros((3, 4)), torch.zeros(3, 4)], "mean", {}, TypeError, "mixes numpy"),
        (np.zeros((2, 3, 4)), "mean", {}, ValueError, r"shape \(2, 3, 4\); expected \(T, d\)"),
        ([], "mean", {}, ValueError, "empty list"),
        ([[1.0, 2.0]], "mean", {}, TypeError, "list"),
        (np.ones((3, 4)), "median", {}, KeyError, "valid: kmeans, mean, single"),
        (np.ones((3, 4)), "mean", {"k": 2}, TypeError, r"unknown option\(s\) \['k'\]"),
        (np.ones((3, 4)), "kmeans", {"k": 0}, ValueError, "k must be an int >= 1"),
        (np.ones((3, 4)), "kmeans", {"iters": 0}, ValueError, "iters must be"),
    ],
)
def test_bad_input_raises(features, method, options, error, match):
    with pytest.raises(error, match=match):
        aggregate(features, method, **options)


def test_clusters_are_a_partition_for_every_seed_pair():
    """Different seeds may order centroids differently but find the same clear clusters."""
    frames, _ = clustered(11)
    sets = []
    for seed in range(3):
        cents = aggregate(frames, "kmeans", k=3, seed=seed)
        assign = np.argmax(unit(frames) @ cents.T, axis=1)
        sets.append({frozenset(np.flatnonzero(assign == c).tolist()) for c in range(3)})
    assert all(a == b for a, b in itertools.combinations(sets, 2))


def test_average_over_offsets_is_the_normalised_mean_of_normalised_embeddings():
    g = torch.Generator().manual_seed(0)
    per_offset = [torch.randn(5, 8, generator=g) * (o + 1) for o in range(3)]  # (N, D) each
    got = average_over_offsets(per_offset)
    for n in range(5):
        units = [v[n] / v[n].norm() for v in per_offset]
        mean = sum(units) / 3
        torch.testing.assert_close(got[n], mean / mean.norm())
    torch.testing.assert_close(average_over_offsets(torch.stack(per_offset)), got)
    one = per_offset[0]
    torch.testing.assert_close(average_over_offsets([one]), one / one.norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="offsets, videos, D"):
        average_over_offsets(torch.zeros(5, 8))


def test_kmeans_ignores_cross_machine_rounding_noise():
    """Features computed on another CPU differ by ~1.5e-7 (other SIMD kernels); with
    near-duplicate frames and k above the number of distinct scenes, that noise used to pick
    other seeds and assignments. Centroids must move by the noise only, never by a frame."""
    g = torch.Generator().manual_seed(0)
    n, t, d = 40, 24, 64
    scenes = torch.randn(n, 3, d, generator=g)  # 3 distinct scenes per video, static frames
    which = torch.randint(0, 3, (n, t), generator=g)
    frames = scenes[torch.arange(n)[:, None], which] + 1e-7 * torch.randn(n, t, d, generator=g)
    other_cpu = frames + 1.5e-7 * torch.randn(n, t, d, generator=g)
    for k in (2, 5, 8):
        a = aggregate(list(frames), "kmeans", k=k, seed=0)
        b = aggregate(list(other_cpu), "kmeans", k=k, seed=0)
        assert (a - b).abs().max() < 1e-5, f"k={k}: centroids differ beyond the input noise"
