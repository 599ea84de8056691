"""Bits per dimension, the densities behind them and the Inception Score, each against an independent reference."""

import math

import pytest
import torch

from course_utils import diffusion, likelihood, losses, metrics
from course_utils.data import load_dataset
from course_utils.models import GaussianArtist

# --------------------------------------------------------------------------- bits per dimension


def test_bits_per_dim_of_a_uniform_density_is_log2_of_the_levels():
    # The uniform density on [0, 1]^D has log p = 0 everywhere: each pixel costs log2(L) bits.
    assert likelihood.bits_per_dim(torch.zeros(3), n_dims=64, levels=256).tolist() == pytest.approx([8.0] * 3)
    assert float(likelihood.bits_per_dim(torch.tensor(0.0), 64, levels=17)) == pytest.approx(math.log2(17))
    # A discrete log-probability: -log2 P / D.
    assert float(likelihood.bits_per_dim(torch.tensor(-64 * math.log(4)), 64, levels=None)) == pytest.approx(2.0)


def test_bits_per_dim_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_dims"):
        likelihood.bits_per_dim(torch.zeros(1), 0)
    with pytest.raises(ValueError, match="levels"):
        likelihood.bits_per_dim(torch.zeros(1), 10, levels=1)


def test_pixel_levels_of_the_course_data():
    digits = load_dataset("digits", "train", verbose=False)
    assert likelihood.pixel_levels(digits.images) == 17
    assert likelihood.pixel_levels(torch.arange(256).float().div(255).view(1, 1, 16, 16)) == 256
    with pytest.raises(ValueError, match="grid"):
        likelihood.pixel_levels(torch.tensor([0.0, 1 / math.pi, 1.0]))


def test_pixel_levels_sees_every_batch_of_pictures():
    # Pixels are read 2**23 at a time: a grey level that only the last picture has must still count.
    images = torch.zeros(2**21 + 1, 1, 2, 2)
    images[-1, 0, 0, 0] = 1 / 255
    images[0, 0, 1, 1] = 1.0
    assert likelihood.pixel_levels(images) == 256


def test_dequantise_stays_in_each_pixels_bin():
    levels = 17
    k = torch.randint(0, levels, (500, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    y = likelihood.dequantise(k / (levels - 1), levels, torch.Generator().manual_seed(1))
    assert (y >= k / levels).all() and (y < (k + 1) / levels).all()
    # Uniform within the bin: the offsets average to one half.
    assert float((y * levels - k).mean()) == pytest.approx(0.5, abs=0.02)


# --------------------------------------------------------------------------- the continuous Bernoulli


@pytest.mark.parametrize("lam", [1e-4, 0.1, 0.4999, 0.5, 0.5001, 0.7, 0.995])
def test_continuous_bernoulli_integrates_to_one(lam):
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    density = losses.continuous_bernoulli_log_prob(x, torch.full_like(x, lam)).exp()
    assert float(torch.trapezoid(density, x)) == pytest.approx(1.0, abs=1e-6)


def test_continuous_bernoulli_matches_torch_and_is_smooth_at_one_half():
    lam = torch.tensor([0.01, 0.2, 0.45, 0.4951, 0.4999, 0.5, 0.5001, 0.5049, 0.8], dtype=torch.float64)
    x = torch.rand(len(lam), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = losses.continuous_bernoulli_log_prob(x, lam)
    # torch's own version switches to a Taylor series only within 0.499 .. 0.501 of 0.5: compare away from it.
    away = (lam - 0.5).abs() > 0.002
    reference = torch.distributions.ContinuousBernoulli(probs=lam[away]).log_prob(x[away])
    assert torch.allclose(ours[away], reference, atol=1e-9)
    # Both sides of the switch to the series (|1 - 2 lambda| = 0.01) agree, and C(1/2) = 2.
    normaliser = losses.continuous_bernoulli_log_normaliser
    below, above = (
        normaliser(torch.tensor([0.495 - 1e-9], dtype=torch.float64)),
        normaliser(torch.tensor([0.495 + 1e-9], dtype=torch.float64)),
    )
    assert float(below) == pytest.approx(float(above), abs=1e-9)
    assert float(normaliser(torch.tensor(0.5))) == pytest.approx(math.log(2))
    assert torch.isfinite(normaliser(torch.tensor([0.5, 0.5 + 1e-7, 1e-6, 1 - 1e-6]))).all()


def test_continuous_bernoulli_rejects_out_of_range_inputs():
    with pytest.raises(ValueError, match="strictly between"):
        losses.continuous_bernoulli_log_normaliser(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.continuous_bernoulli_log_prob(torch.tensor([-0.5]), torch.tensor([0.5]))


class _ToyVAE(torch.nn.Module):
    """A one-number latent code decoded to two pixels: small enough to integrate p(x) numerically."""

    latent_dim = 1

    def encode(self, x):
        return x.flatten(1).mean(1, keepdim=True) - 0.5, torch.full((len(x), 1), -1.0)

    def decode(self, z):
        return torch.sigmoid(torch.cat([2 * z, -z], dim=1)).view(-1, 1, 1, 2)


def test_iwae_with_the_continuous_bernoulli_bounds_the_true_log_density():
    # p(x) = E_z p(x | z) over the prior, by quadrature in z; the IWAE bound with many samples approaches it from below.
    vae, x = _ToyVAE(), torch.tensor([[[[0.3, 0.8]]]])
    z = torch.linspace(-8, 8, 4001, dtype=torch.float64).unsqueeze(1)
    log_px_z = losses.continuous_bernoulli_log_prob(x.flatten(1).expand(len(z), 2).double(), vae.decode(z).flatten(1))
    log_prior = -0.5 * (z.squeeze(1) ** 2 + math.log(2 * math.pi))
    exact = float(torch.logsumexp(log_px_z.sum(1) + log_prior, 0) + math.log(float(z[1] - z[0])))
    generator = torch.Generator().manual_seed(0)
    one = losses.importance_weighted_bound(vae, x.expand(2000, -1, -1, -1), 1, generator, "continuous_bernoulli")
    many = losses.importance_weighted_bound(vae, x.expand(200, -1, -1, -1), 1000, generator, "continuous_bernoulli")
    assert float(one.mean()) < float(many.mean()) <= exact + 1e-3
    assert float(many.mean()) == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="decoder"):
        losses.vae_log_weights(vae, x, 2, decoder="gaussian")


# --------------------------------------------------------------------------- the Gaussian artist in pixel space


def test_gaussian_artist_log_density_is_the_full_gaussian_mixture():
    # A tiny artist on 2x2 pictures with a 2-dimensional subspace, against torch's 4-dimensional Gaussians.
    g = torch.Generator().manual_seed(0)
    images = torch.rand(300, 1, 2, 2, generator=g) * torch.tensor([1.0, 0.6, 0.3, 0.1]).view(1, 1, 2, 2)
    labels = torch.arange(300) % 3
    images[labels == 1] += 0.2
    artist = GaussianArtist((1, 2, 2), n_components=2, n_classes=3).fit(images, labels)
    basis = artist.basis.double()
    projector = torch.eye(4, dtype=torch.float64) - basis @ basis.T
    covariances = basis @ artist.class_covariances.double() @ basis.T + artist.residual_variance.double() * projector
    full = torch.distributions.MultivariateNormal(
        artist.pixel_mean.double() + artist.class_means.double() @ basis.T, covariances
    )
    queries = torch.rand(20, 1, 2, 2, generator=g)
    reference = torch.logsumexp(
        full.log_prob(queries.flatten(1).double().unsqueeze(1)) + artist.class_priors.double().log(), 1
    )
    assert torch.allclose(artist.log_density(queries), reference, atol=1e-8)
    # The noise variance is the variance the subspace leaves out, per left-out direction.
    eigenvalues = torch.linalg.eigvalsh(torch.cov(images.flatten(1).double().T))
    assert float(artist.residual_variance) == pytest.approx(float(eigenvalues[:2].mean()), rel=1e-4)


def test_gaussian_artist_density_integrates_to_one():
    # On a 1x2 picture with one component, integrate exp(log p) over a grid that covers the mass.
    g = torch.Generator().manual_seed(1)
    images = torch.randn(400, 1, 1, 2, generator=g) * torch.tensor([0.3, 0.1]) + 0.5
    artist = GaussianArtist((1, 1, 2), n_components=1, n_classes=2).fit(images, torch.arange(400) % 2)
    axis = torch.linspace(-1.5, 2.5, 801)
    grid = torch.cartesian_prod(axis, axis).view(-1, 1, 1, 2)
    step = float(axis[1] - axis[0])
    assert float(artist.log_density(grid).exp().sum()) * step**2 == pytest.approx(1.0, abs=1e-3)


def test_gaussian_artist_on_digits_has_a_sensible_bits_per_dim():
    train, test = load_dataset("digits", "train", verbose=False), load_dataset("digits", "test", verbose=False)
    artist = GaussianArtist(train.image_shape, n_components=20).fit(train.images, train.labels)
    y = likelihood.dequantise(test.images, 17, torch.Generator().manual_seed(0))
    bpd = likelihood.bits_per_dim(artist.log_density(y), 64, levels=17)
    assert 0 < float(bpd.mean()) < math.log2(17)  # a normalised density, and far better than a uniform guess


def test_kernel_density_matches_a_mixture_of_gaussians_and_integrates_to_one():
    centres = torch.tensor([[0.2, 0.3], [0.7, 0.9], [0.5, 0.1]], dtype=torch.float64)
    queries = torch.rand(10, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    components = torch.distributions.MultivariateNormal(centres, 0.1**2 * torch.eye(2, dtype=torch.float64))
    reference = torch.logsumexp(components.log_prob(queries.unsqueeze(1)), 1) - math.log(3)
    assert torch.allclose(likelihood.kernel_density_log_likelihood(queries, centres, 0.1, chunk=3), reference)
    # Centres taken two at a time (a block of 2, then of 1) give the same sums.
    blocks = likelihood.kernel_density_log_likelihood(queries, centres, 0.1, chunk=3, centre_chunk=2)
    assert torch.allclose(blocks, reference)
    axis = torch.linspace(-1, 2, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    mass = likelihood.kernel_density_log_likelihood(grid, centres, 0.1).exp().sum() * float(axis[1] - axis[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="bandwidth"):
        likelihood.kernel_density_log_likelihood(queries, centres, 0.0)


# --------------------------------------------------------------------------- the diffusion bound


def test_discretised_gaussian_sums_to_one_over_the_levels():
    levels = 17
    values = torch.linspace(-1, 1, levels, dtype=torch.float64)
    for mean, std in [(0.1, 0.05), (0.93, 0.001), (-3.0, 0.5), (40.0, 1.0), (0.0, 30.0)]:
        log_p = likelihood.discretised_gaussian_log_likelihood(values, torch.full_like(values, mean), std, levels)
        assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-9)
        assert torch.isfinite(log_p).all()
    # A bin 20 standard deviations out in the upper tail, where Phi(upper) - Phi(lower) is 1 - 1 = 0 in floating
    # point: its log-mass lies between those of rectangles under the density's lowest and highest points.
    far = float(likelihood.discretised_gaussian_log_likelihood(torch.tensor([0.0]), torch.tensor([-2.0]), 0.1, levels))
    normal = torch.distributions.Normal(torch.tensor(-2.0, dtype=torch.float64), 0.1)
    width = math.log(2 / 16)
    edges = torch.tensor([-1 / 16, 1 / 16], dtype=torch.float64)
    assert width + float(normal.log_prob(edges[1])) < far < width + float(normal.log_prob(edges[0]))


class _OracleEps(torch.nn.Module):
    """A noise predictor whose guess of the clean picture is always ``target + offset``."""

    def __init__(self, schedule, target, offset):
        super().__init__()
        self.schedule, self.target, self.offset = schedule, target, offset
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t):
        alpha_bar = self.schedule.alpha_bar[t].view(-1, 1, 1, 1)
        return (x_t - alpha_bar.sqrt() * (self.target + self.offset)) / (1 - alpha_bar).sqrt()


def test_diffusion_bound_sums_the_terms_of_ho_et_al():
    schedule = diffusion.make_schedule(20, "cosine")
    levels, offset = 17, 0.1
    picture = torch.full((1, 1, 2, 2), 0.5)  # 0 in [-1, 1], on the grid of 17 levels
    model = _OracleEps(schedule, 2 * picture - 1, offset)
    # By hand: with x0_hat = x0 + offset everywhere, each middle KL is coef^2 * D * offset^2 / (2 variance).
    d = picture.numel()
    coef, variance = schedule.posterior_mean_coef_x0.double(), schedule.posterior_variance.double()
    middle = float((coef[1:] ** 2 * d * offset**2 / (2 * variance[1:])).sum())
    abar = schedule.alpha_bar[-1].double()
    prior = d * 0.5 * float((1 - abar) - 1 - torch.log(1 - abar))
    decoder = -d * float(
        likelihood.discretised_gaussian_log_likelihood(
            torch.zeros(1), torch.tensor([offset]), schedule.betas[0].double().sqrt(), levels
        )
    )
    exact = likelihood.diffusion_negative_elbo(model, schedule, picture.expand(3, -1, -1, -1), levels, 19)
    assert exact.tolist() == pytest.approx([prior + decoder + middle] * 3, rel=1e-5)
    # Fewer strata: a random but unbiased estimate of the same number.
    estimate = likelihood.diffusion_negative_elbo(
        model, schedule, picture.expand(4000, -1, -1, -1), levels, 4, torch.Generator().manual_seed(0), batch_size=1000
    )
    assert float(estimate.mean()) == pytest.approx(prior + decoder + middle, rel=0.03)
    # The perfect predictor pays only for the prior and the decoder's rounding.
    perfect = _OracleEps(schedule, 2 * picture - 1, 0.0)
    assert float(likelihood.diffusion_negative_elbo(perfect, schedule, picture, levels, 19)) < prior + decoder + 1e-6
    with pytest.raises(ValueError, match="n_timesteps"):
        likelihood.diffusion_negative_elbo(model, schedule, picture, levels, 20)


# --------------------------------------------------------------------------- the Inception Score


def test_inception_score_by_hand():
    # Two classes. Sure pictures, half of each class: IS = 2 (the most it can be).
    sure = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.inception_score(sure).value == pytest.approx(2.0)
    # Every picture 50/50: no confidence, IS = 1 (the least).
    assert metrics.inception_score(torch.full((4, 2), 0.5)).value == pytest.approx(1.0)
    # Sure pictures of one class only: no spread, IS = 1.
    assert metrics.inception_score(torch.tensor([[1.0, 0.0], [1.0, 0.0]])).value == pytest.approx(1.0)
    # A mixed case against the definition exp(mean KL(p(y|x) || p(y))).
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    marginal = probs.mean(0)
    kl = (probs * (probs / marginal).log()).sum(1).mean()
    score = metrics.inception_score(probs)
    assert score.value == pytest.approx(float(kl.exp()))
    assert score.class_spread_bits == pytest.approx(float(-(marginal * marginal.log2()).sum()))
    with pytest.raises(ValueError, match="add up to 1"):
        metrics.inception_score(torch.tensor([[0.5, 0.6]]))
