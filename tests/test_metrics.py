"""Tests for course_utils.metrics, each against an independent reference (scipy, closed forms, direct loops)."""

from __future__ import annotations

import itertools
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch

from course_utils import metrics


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    """A well-conditioned random covariance matrix (a sample covariance of 3d Gaussian draws)."""
    a = rng.standard_normal((3 * d, d))
    return a.T @ a / (3 * d)


def scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's general matrix square root (as in the original FID code)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# --------------------------------------------------------------------------- Frechet distance


@pytest.mark.parametrize("d", [64, pytest.param(512, marks=pytest.mark.slow)])
def test_frechet_distance_agrees_with_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.3
    sigma1, sigma2 = random_covariance(rng, d), random_covariance(rng, d)
    expected = scipy_frechet(mu1, sigma1, mu2, sigma2)
    actual = metrics.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert actual == pytest.approx(expected, rel=1e-6)


def test_identical_feature_sets_give_zero():
    feats = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert metrics.fid_from_features(feats, feats.clone()) == pytest.approx(0.0, abs=1e-9)


def test_pure_mean_shift_gives_squared_shift():
    feats = torch.randn(400, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shift = torch.tensor([3.0, -1.0, 0.5, 0.0, 2.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    expected = float((shift**2).sum())  # 15.25: covariances are identical, only the means move
    assert metrics.fid_from_features(feats, feats + shift) == pytest.approx(expected, rel=1e-9)


def test_one_dimensional_gaussians_closed_form():
    # In 1-d the distance is (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations.
    value = metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert value == pytest.approx(3.0**2 + (2.0 - 3.0) ** 2, rel=1e-12)


def test_gaussian_statistics_match_numpy():
    feats = np.random.default_rng(3).standard_normal((50, 5))
    mu, sigma = metrics.gaussian_statistics(feats)
    np.testing.assert_allclose(mu.numpy(), feats.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(feats, rowvar=False), rtol=1e-10)


def test_sqrtm_psd_squares_back():
    sigma = random_covariance(np.random.default_rng(4), 20)
    root = metrics.sqrtm_psd(torch.from_numpy(sigma))
    np.testing.assert_allclose((root @ root).numpy(), sigma, atol=1e-10)
    np.testing.assert_allclose(root.numpy(), root.numpy().T, atol=1e-12)


def test_too_few_samples_for_feature_size_is_a_clear_error():
    with pytest.raises(ValueError, match="too few samples for the feature size: 20 samples of 32-d"):
        metrics.fid_from_features(torch.randn(20, 32), torch.randn(100, 32))


def test_mismatched_widths_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="different widths"):
        metrics.fid_from_features(torch.randn(50, 4), torch.randn(50, 5))
    with pytest.raises(ValueError, match="2-d matrix"):
        metrics.fid_from_features(torch.randn(50, 1, 2, 2), torch.randn(50, 4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.fid_from_features(torch.full((50, 4), float("nan")), torch.randn(50, 4))


def test_fid_on_images_uses_the_feature_extractor():
    gen = torch.Generator().manual_seed(5)
    images_a = torch.rand(64, 1, 4, 4, generator=gen)
    images_b = torch.rand(64, 1, 4, 4, generator=gen) * 0.5

    def flatten(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    expected = metrics.fid_from_features(flatten(images_a), flatten(images_b))
    assert metrics.fid(images_a, images_b, flatten, batch_size=10) == pytest.approx(expected, rel=1e-12)
    assert expected > 0.1


# --------------------------------------------------------------------------- KID


def direct_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Quadratic-time reference written with explicit loops over pairs."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.product(range(m), range(m)) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.product(range(n), range(n)) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i, j in itertools.product(range(m), range(n))) / (m * n)
    return xx + yy - 2 * xy


def test_kid_with_one_subset_equals_direct_quadratic_computation():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((30, 6)), rng.standard_normal((30, 6)) + 0.4
    result = metrics.kid(x, y, n_subsets=1)
    assert result.value == pytest.approx(direct_mmd2_unbiased(x, y), rel=1e-10)
    assert np.isnan(result.std_error)


def test_kid_subsets_are_disjoint_blocks_with_standard_error():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5)) * 1.5
    result = metrics.kid(x, y, n_subsets=4, seed=3)
    # Reproduce the shuffle and the blocks, then the mean and standard error, with the direct reference.
    generator = torch.Generator().manual_seed(3)
    xs = x[torch.randperm(40, generator=generator).numpy()]
    ys = y[torch.randperm(40, generator=generator).numpy()]
    blocks = [direct_mmd2_unbiased(xs[i * 10 : (i + 1) * 10], ys[i * 10 : (i + 1) * 10]) for i in range(4)]
    assert result.value == pytest.approx(np.mean(blocks), rel=1e-10)
    assert result.std_error == pytest.approx(np.std(blocks, ddof=1) / 2, rel=1e-8)


def test_kid_is_near_zero_for_the_same_distribution_and_positive_for_different_ones():
    gen = torch.Generator().manual_seed(8)
    same = metrics.kid(torch.randn(1000, 8, generator=gen), torch.randn(1000, 8, generator=gen))
    different = metrics.kid(torch.randn(1000, 8, generator=gen), torch.randn(1000, 8, generator=gen) + 0.5)
    assert abs(same.value) < 3 * same.std_error + 1e-3
    assert different.value > 10 * different.std_error


def test_kid_rejects_too_many_subsets():
    with pytest.raises(ValueError, match="too few samples for 10 subsets"):
        metrics.kid(torch.randn(15, 3), torch.randn(15, 3), n_subsets=10)


# --------------------------------------------------------------------------- precision and recall


def direct_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Loop-based reference of the k-NN manifold test."""

    def radii(points):
        out = []
        for p in points:
            dists = sorted(np.linalg.norm(points - p, axis=1))
            out.append(dists[k])  # dists[0] is the point itself
        return np.array(out)

    def coverage(manifold, r, queries):
        return np.mean([any(np.linalg.norm(manifold - q, axis=1) <= r) for q in queries])

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


def test_precision_recall_matches_direct_loops():
    rng = np.random.default_rng(9)
    real = rng.standard_normal((60, 3))
    fake = rng.standard_normal((50, 3)) * 0.6 + 0.5
    result = metrics.precision_recall(real, fake, k=3)
    precision, recall = direct_precision_recall(real, fake, k=3)
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert 0.0 < result["recall"] < result["precision"] < 1.0  # a narrow fake cloud: precise but not diverse


def test_precision_recall_closed_cases():
    real = torch.randn(200, 4, generator=torch.Generator().manual_seed(10))
    assert metrics.precision_recall(real, real.clone()) == {"precision": 1.0, "recall": 1.0}
    far = metrics.precision_recall(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0}
    # Mode collapse: every fake is (almost) one real sample: all good, very little covered.
    collapsed = real[:1].repeat(200, 1) + 1e-6 * torch.randn(200, 4, generator=torch.Generator().manual_seed(11))
    result = metrics.precision_recall(real, collapsed)
    assert result["precision"] == 1.0
    assert result["recall"] < 0.05


# --------------------------------------------------------------------------- memorisation


def test_nearest_neighbours_finds_copied_training_images():
    gen = torch.Generator().manual_seed(12)
    train = torch.rand(50, 1, 8, 8, generator=gen)
    samples = torch.cat([train[[7, 31]], torch.rand(3, 1, 8, 8, generator=gen)])
    distances, indices = metrics.nearest_neighbours(samples, train)
    assert indices[:2].tolist() == [7, 31]
    assert distances[:2].tolist() == [0.0, 0.0]
    # Brute-force reference for the others.
    for s in range(2, 5):
        d = ((train - samples[s]) ** 2).flatten(1).sum(1).sqrt()
        assert indices[s].item() == int(d.argmin())
        assert distances[s].item() == pytest.approx(float(d.min()), rel=1e-6)


def test_nearest_neighbours_across_blocks_of_the_training_set():
    # The training set is read 2,048 pictures at a time: copies in the second block are found, and of two equal
    # pictures in different blocks the first index wins, as torch.min's does.
    gen = torch.Generator().manual_seed(13)
    train = torch.rand(9000, 1, 2, 2, generator=gen)
    train[8500] = train[100]
    distances, indices = metrics.nearest_neighbours(torch.stack([train[8999], train[100]]), train)
    assert indices.tolist() == [8999, 100]
    assert distances.tolist() == [0.0, 0.0]


def test_nearest_neighbours_in_feature_space():
    train = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    samples = torch.tensor([3.2, 8.9]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2)

    def mean_pixel(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)

    distances, indices = metrics.nearest_neighbours(samples, train, feature_fn=mean_pixel)
    assert indices.tolist() == [3, 9]
    assert distances.tolist() == pytest.approx([0.2, 0.1], abs=1e-6)


# --------------------------------------------------------------------------- Inception (offline behaviour)


def test_inception_unavailable_offline_says_what_to_use(monkeypatch):
    import torchvision.models._api as api

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", no_network)
    with pytest.raises(metrics.InceptionUnavailableError, match="classifier's features") as info:
        metrics.inception_feature_extractor()
    assert "URLError" in str(info.value)


def test_inception_preprocess_shape_and_normalisation():
    out = metrics.inception_preprocess(torch.ones(2, 1, 8, 8))
    assert out.shape == (2, 3, 299, 299)
    expected = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 100, 100], expected)
    with pytest.raises(ValueError, match="N x 1 x H x W"):
        metrics.inception_preprocess(torch.ones(2, 2, 8, 8))


def test_knn_radii_and_coverage_do_not_depend_on_the_chunk_size():
    feats = torch.randn(50, 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    queries = torch.randn(30, 3, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    radii = metrics.knn_radii(feats, k=2, chunk=7)
    torch.testing.assert_close(radii, metrics.knn_radii(feats, k=2, chunk=1024))
    assert metrics._coverage(feats, radii, queries, chunk=4) == metrics._coverage(feats, radii, queries, chunk=1024)
