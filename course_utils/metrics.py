"""How good are the artist's pictures? Sample-quality metrics for generative models.

Every metric here compares two *sets* of images through a feature extractor (a function that turns
an ``N x C x H x W`` batch into an ``N x D`` matrix of features): the course's own classifier
(``critic.get_critic(data).features``), or the standard Inception network where it can be
downloaded (:func:`inception_feature_extractor`).

* :func:`frechet_distance` / :func:`fid_from_features` / :func:`fid`: fit one Gaussian to each feature
  cloud and measure how far apart the two Gaussians are (Heusel et al. 2017). Lower is better, 0 is a perfect match.
* :func:`kid`: the Kernel Inception Distance, an unbiased squared MMD with a cubic polynomial kernel
  (Binkowski et al. 2018), with a standard error.
* :func:`precision_recall`: how many samples land on the real data's manifold (precision, "are they
  good?") and how much of the real manifold the samples cover (recall, "are they diverse?")
  (Kynkaanniemi et al. 2019).
* :func:`inception_score`: the Inception Score (Salimans et al. 2016) from a classifier's class probabilities:
  confident pictures of every class score high.
* :func:`nearest_neighbours`: for each sample, its closest training image: a memorisation check.

Pure PyTorch/NumPy: this module imports no plotting, widgets or training code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from course_utils import config

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""A feature extractor: ``N x C x H x W`` images in, ``N x D`` features out."""


# --------------------------------------------------------------------------- inputs


def _as_float64(features: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    """Features as a float64 ``N x D`` CPU tensor, with a clear error for anything else."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array of shape N x D, got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(
            f"{what} must be a 2-d matrix N x D (one row of features per image), got shape {tuple(features.shape)}; "
            "flatten images first or pass them through a feature extractor."
        )
    features = _cpu_float64(features)
    if not torch.isfinite(features).all():
        raise ValueError(f"{what} contains NaN or infinite values; check the images and the feature extractor.")
    return features


def _cpu_float64(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``values`` as a float64 CPU tensor. The move comes first: Apple's MPS devices have no float64 at all."""
    return torch.as_tensor(values).detach().cpu().to(torch.float64)


def _same_width(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"the two feature sets have different widths ({a.shape[1]} and {b.shape[1]}): "
            "compute both with the same feature extractor."
        )


# --------------------------------------------------------------------------- the Frechet distance


def gaussian_statistics(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean vector ``mu`` (D) and covariance matrix ``sigma`` (D x D) of an ``N x D`` feature matrix, in float64.

    The covariance of ``D``-dimensional features can only be estimated from more than ``D`` samples (with fewer,
    it is singular and the Frechet distance is dominated by estimation error), so fewer is an error.
    """
    x = _as_float64(features, "features")
    n, d = x.shape
    if n <= d:
        raise ValueError(
            f"too few samples for the feature size: {n} samples of {d}-d features. A {d} x {d} covariance needs "
            f"more than {d} samples (use at least {d + 1}; thousands give stable numbers), or use smaller features."
        )
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (n - 1)  # unbiased sample covariance, like numpy.cov
    return mu, sigma


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix, via its eigendecomposition.

    ``matrix = V diag(lambda) V^T``  gives  ``sqrt(matrix) = V diag(sqrt(lambda)) V^T``. Round-off can make tiny
    eigenvalues slightly negative; they are clipped to 0.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"sqrtm_psd needs a square matrix, got shape {tuple(matrix.shape)}")
    matrix = _cpu_float64(matrix)
    matrix = (matrix + matrix.T) / 2  # remove round-off asymmetry before eigh
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(
    mu1: torch.Tensor | np.ndarray,
    sigma1: torch.Tensor | np.ndarray,
    mu2: torch.Tensor | np.ndarray,
    sigma2: torch.Tensor | np.ndarray,
) -> float:
    """Frechet (2-Wasserstein) distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2), squared.

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``

    The product ``sigma1 sigma2`` is not symmetric, so instead of a general matrix square root we use the identity
    ``Tr((sigma1 sigma2)^(1/2)) = Tr((s1 sigma2 s1)^(1/2))`` with ``s1 = sigma1^(1/2)``: the matrix
    ``s1 sigma2 s1`` is symmetric positive semi-definite, so the trace of its square root is the sum of the square
    roots of its eigenvalues. Everything runs in float64.
    """
    mu1, mu2 = _cpu_float64(mu1).reshape(-1), _cpu_float64(mu2).reshape(-1)
    sigma1, sigma2 = _cpu_float64(sigma1), _cpu_float64(sigma2)
    d = mu1.shape[0]
    if mu2.shape[0] != d or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"shapes do not match: mu1 {tuple(mu1.shape)}, mu2 {tuple(mu2.shape)}, sigma1 {tuple(sigma1.shape)}, "
            f"sigma2 {tuple(sigma2.shape)}; expected two vectors of length D and two D x D matrices."
        )
    mean_term = ((mu1 - mu2) ** 2).sum()
    s1 = sqrtm_psd(sigma1)
    middle = s1 @ sigma2 @ s1
    middle = (middle + middle.T) / 2
    trace_sqrt_product = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    distance = mean_term + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_sqrt_product
    return max(float(distance), 0.0)  # round-off can give -1e-12 for identical inputs


def fid_from_features(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature matrices (``N_a x D`` and ``N_b x D``).

    With Inception features this is the FID; with the course classifier's features it is the same idea in the
    critic's feature space (numbers are only comparable within one feature space).
    """
    a = _as_float64(feats_a, "feats_a")
    b = _as_float64(feats_b, "feats_b")
    _same_width(a, b)
    mu_a, sigma_a = gaussian_statistics(a)
    mu_b, sigma_b = gaussian_statistics(b)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


@torch.no_grad()
def extract_features(images: torch.Tensor, feature_fn: FeatureFn, batch_size: int = 500) -> torch.Tensor:
    """Run ``feature_fn`` over ``images`` in batches (no gradients) and return the ``N x D`` features on the CPU.

    When ``feature_fn`` is a model or a model's method (``classifier.features``), each batch is sent to that
    model's device first; any other function gets the images where they are.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = config.device_of(feature_fn, default=None)
    parts = []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start : start + batch_size]
        out = feature_fn(chunk if device is None else chunk.to(device))
        parts.append(out.detach().reshape(out.shape[0], -1).cpu())
    return torch.cat(parts)


def fid(images_a: torch.Tensor, images_b: torch.Tensor, feature_fn: FeatureFn, batch_size: int = 500) -> float:
    """FID between two image sets, in the feature space of any ``feature_fn`` (images in -> ``N x D`` out)."""
    return fid_from_features(
        extract_features(images_a, feature_fn, batch_size), extract_features(images_b, feature_fn, batch_size)
    )


# --------------------------------------------------------------------------- KID


class KIDResult(NamedTuple):
    """A KID estimate: ``value`` (mean over disjoint subsets) and its ``std_error``."""

    value: float
    std_error: float


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KID's kernel ``k(x, y) = (x . y / D + 1)^3`` for every pair of rows: ``N x D``, ``M x D`` -> ``N x M``."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, kernel: Callable = polynomial_kernel) -> float:
    """Unbiased estimate of the squared Maximum Mean Discrepancy between the samples ``x`` (m x D) and ``y`` (n x D).

    ``MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)``

    Leaving out the diagonal (``i = j``) is what makes it unbiased: it can be slightly negative when the two
    distributions are equal.
    """
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {m} and {n}")
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kid(
    feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray, n_subsets: int = 10, seed: int = 0
) -> KIDResult:
    """Kernel Inception Distance between two feature matrices, with a standard error.

    Both sets are shuffled (seeded) and cut into ``n_subsets`` disjoint blocks of equal size; the unbiased
    :func:`mmd2_unbiased` of each pair of blocks is an independent estimate, so their mean is the KID and their
    standard deviation divided by ``sqrt(n_subsets)`` its standard error. Unlike FID, KID is unbiased: its expected
    value does not depend on the number of samples, so small sets can be compared fairly.
    """
    a = _as_float64(feats_a, "feats_a")
    b = _as_float64(feats_b, "feats_b")
    _same_width(a, b)
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be at least 1, got {n_subsets}")
    block = min(a.shape[0], b.shape[0]) // n_subsets
    if block < 2:
        raise ValueError(
            f"too few samples for {n_subsets} subsets: {a.shape[0]} and {b.shape[0]} samples give blocks of {block}; "
            "use fewer subsets or more samples (each block needs at least 2)."
        )
    generator = torch.Generator().manual_seed(seed)
    a = a[torch.randperm(a.shape[0], generator=generator)]
    b = b[torch.randperm(b.shape[0], generator=generator)]
    estimates = torch.tensor(
        [mmd2_unbiased(a[i * block : (i + 1) * block], b[i * block : (i + 1) * block]) for i in range(n_subsets)],
        dtype=torch.float64,
    )
    std_error = float(estimates.std() / n_subsets**0.5) if n_subsets > 1 else float("nan")
    return KIDResult(float(estimates.mean()), std_error)


# --------------------------------------------------------------------------- precision and recall


def _pairwise_distances(x: torch.Tensor, y: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Euclidean distances between every row of ``x`` and every row of ``y`` (``N x M``), in chunks of rows."""
    return torch.cat([torch.cdist(x[i : i + chunk], y) for i in range(0, x.shape[0], chunk)])


def knn_radii(features: torch.Tensor, k: int, chunk: int = 128) -> torch.Tensor:
    """Distance from each row to its ``k``-th nearest *other* row: the radius of its ball on the manifold."""
    if not 1 <= k < features.shape[0]:
        raise ValueError(f"k must be between 1 and N - 1 = {features.shape[0] - 1}, got {k}")
    # The smallest distance of each row is to itself (0), so the k-th neighbour sits at position k + 1.
    # Rows go in chunks so that memory stays at chunk x N, not N x N.
    return torch.cat(
        [
            torch.cdist(features[i : i + chunk], features).kthvalue(k + 1, dim=1).values
            for i in range(0, features.shape[0], chunk)
        ]
    )


def _coverage(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor, chunk: int = 128) -> float:
    """Fraction of ``queries`` that fall inside at least one ball (centre ``manifold[i]``, radius ``radii[i]``)."""
    inside = [
        (torch.cdist(queries[i : i + chunk], manifold) <= radii[None, :]).any(dim=1)
        for i in range(0, queries.shape[0], chunk)
    ]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray, k: int = 3
) -> dict[str, float]:
    """Improved precision and recall of a generative model (Kynkaanniemi et al. 2019).

    Each set approximates its manifold by a union of balls, one per sample, whose radius is the distance to the
    sample's ``k``-th nearest neighbour in the same set.

    * precision: the fraction of *fake* samples inside the real manifold (quality: low when samples look wrong);
    * recall: the fraction of *real* samples inside the fake manifold (diversity: low under mode collapse).

    Give both sets the same size, as Kynkaanniemi et al. do: the balls shrink as a set grows, so a larger real set
    flatters recall and penalises precision (notebook 08 shows it).
    """
    real = _as_float64(real_features, "real_features")
    fake = _as_float64(fake_features, "fake_features")
    _same_width(real, fake)
    precision = _coverage(real, knn_radii(real, k), fake)
    recall = _coverage(fake, knn_radii(fake, k), real)
    return {"precision": precision, "recall": recall}


# --------------------------------------------------------------------------- the Inception Score


class InceptionScore(NamedTuple):
    """The Inception Score and its two ingredients: ``value = 2 ** (class_spread_bits - uncertainty_bits)``."""

    value: float  # between 1 and the number of classes; higher is better
    class_spread_bits: float  # H(p(y)), the entropy of the mean class probabilities: are all classes there?
    uncertainty_bits: float  # E_x H(p(y | x)), the mean entropy of one picture's probabilities: is each one sure?


def inception_score(class_probabilities: torch.Tensor | np.ndarray) -> InceptionScore:
    """``IS = exp(E_x KL(p(y | x) || p(y)))`` for an ``N x C`` matrix of class probabilities (Salimans et al. 2016).

    ``p(y)`` is the mean of the rows. Since ``E_x KL(p(y | x) || p(y)) = H(p(y)) - E_x H(p(y | x))``, the score
    rewards two things at once: *confidence* (each picture's ``p(y | x)`` sharp, low entropy) and *class spread*
    (``p(y)`` broad, high entropy). It ranges from 1 to ``C``: ``C`` when every picture is one sure class and
    all classes are equally common. Papers compute it with Inception's ImageNet classes; here any classifier.
    """
    probs = _as_float64(class_probabilities, "class_probabilities")
    if probs.min() < 0 or not torch.allclose(probs.sum(dim=1), torch.ones(len(probs), dtype=torch.float64), atol=1e-4):
        raise ValueError("class_probabilities must be rows of probabilities that add up to 1 (apply softmax first)")

    def entropy_bits(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log2(p.clamp(min=1e-300))).sum(dim=-1)  # 0 log 0 = 0

    spread = float(entropy_bits(probs.mean(dim=0)))
    uncertainty = float(entropy_bits(probs).mean())
    return InceptionScore(2 ** (spread - uncertainty), spread, uncertainty)


# --------------------------------------------------------------------------- memorisation


@torch.no_grad()
def nearest_neighbours(
    samples: torch.Tensor, train: torch.Tensor, feature_fn: FeatureFn | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, the index of its closest training image and the distance to it.

    Distances are Euclidean in pixel space by default, or between ``feature_fn`` features when given. A distance near
    0 means the model copied a training image rather than inventing a new one.
    Returns ``(distances, indices)``, both of length ``len(samples)``.
    """
    if samples.ndim < 2 or train.ndim < 2:
        raise ValueError("samples and train must be batches of images (N x C x H x W) or features (N x D)")
    if feature_fn is not None:
        a, b = extract_features(samples, feature_fn), extract_features(train, feature_fn)
    else:
        if samples.shape[1:] != train.shape[1:]:
            raise ValueError(
                f"samples {tuple(samples.shape[1:])} and train {tuple(train.shape[1:])} images differ in shape"
            )
        a, b = samples.reshape(samples.shape[0], -1), train.reshape(train.shape[0], -1)
    # The training set goes 2,048 pictures at a time: all 60,000 MNIST pictures in float64, and their distances
    # to every sample, took 600 MB. A later block wins only when strictly closer, so ties keep the first index.
    a, block_size = _cpu_float64(a), 2048
    best_distances = torch.full((a.shape[0],), math.inf, dtype=torch.float64)
    best_indices = torch.zeros(a.shape[0], dtype=torch.long)
    for start in range(0, b.shape[0], block_size):
        block = _pairwise_distances(a, _cpu_float64(b[start : start + block_size])).min(dim=1)
        closer = block.values < best_distances
        best_distances = torch.where(closer, block.values, best_distances)
        best_indices = torch.where(closer, block.indices + start, best_indices)
    return best_distances, best_indices


# --------------------------------------------------------------------------- optional: Inception features


class InceptionUnavailableError(RuntimeError):
    """The torchvision Inception weights could not be loaded (usually: offline); the message says what to use."""


def inception_feature_extractor(device: torch.device | str = "cpu") -> FeatureFn:
    """The standard FID feature extractor: torchvision's ImageNet InceptionV3, 2048-d pool features.

    Downloads about 100 MB of weights on first use (cached by torch.hub). Offline, raises
    :class:`InceptionUnavailableError`. Grey images are repeated to three channels, resized to 299 x 299 and
    normalised as for ImageNet. Slow on a CPU (a few images per second): for the course, prefer the classifier's
    features. Note that the published FID numbers use a TensorFlow port of slightly different Inception weights,
    so values from these torchvision weights are close to, not identical with, papers' figures.
    """
    from torchvision.models import Inception_V3_Weights, inception_v3

    try:
        # Fetch the weights first (from the torch.hub cache, else the network), so that offline fails fast.
        state = Inception_V3_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as error:  # URLError, OSError, RuntimeError... all mean "no weights here"
        raise InceptionUnavailableError(
            "the Inception weights could not be downloaded or loaded "
            f"({type(error).__name__}: {error}). Standard FID is unavailable here; use the course classifier's "
            "features instead: metrics.fid(a, b, critic.get_critic(data).features)."
        ) from error
    # transform_input=True is how torchvision builds it for these weights (they expect Google's input scaling).
    network = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    network.load_state_dict(state)
    network.fc = torch.nn.Identity()  # keep the 2048-d pooled features, drop the ImageNet classes
    network.eval().to(device)

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        return network(inception_preprocess(images).to(device))

    return features


def inception_preprocess(images: torch.Tensor) -> torch.Tensor:
    """Images in ``[0, 1]`` (``N x 1 x H x W`` or ``N x 3 x H x W``) -> 3-channel 299 x 299, ImageNet-normalised."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected N x 1 x H x W or N x 3 x H x W images in [0, 1], got {tuple(images.shape)}")
    x = images.float().expand(-1, 3, -1, -1)
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
