"""The 2-D toys: data with the right statistics, exact densities and scores, mode counting, the small networks."""

import math

import pytest
import torch

from course_utils import toy2d


def test_ring_has_eight_equally_likely_modes_on_a_circle():
    mixture = toy2d.ring_mixture(8, radius=2.0, std=0.05)
    torch.testing.assert_close(mixture.centres.norm(dim=1), torch.full((8,), 2.0))
    points = toy2d.ring_of_gaussians(8000, generator=torch.Generator().manual_seed(0))
    assert points.shape == (8000, 2)
    nearest = torch.cdist(points, mixture.centres).min(dim=1)
    shares = torch.bincount(nearest.indices, minlength=8).float() / 8000
    assert torch.allclose(shares, torch.full((8,), 0.125), atol=0.02)
    # each mode's spread is its std: squared distance to the centre has mean 2 std^2
    assert nearest.values.pow(2).mean().item() == pytest.approx(2 * 0.05**2, rel=0.1)


def test_lopsided_mixture_keeps_its_weights_and_is_seeded():
    points = toy2d.gaussian_mixture(10_000, generator=torch.Generator().manual_seed(1))
    again = toy2d.gaussian_mixture(10_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(points, again)
    coverage = toy2d.mode_coverage(points, toy2d.lopsided_mixture())
    torch.testing.assert_close(coverage.shares, torch.tensor([0.5, 0.3, 0.2]), atol=0.02, rtol=0)


def test_mixture_density_integrates_to_one_and_matches_a_single_gaussian():
    mixture = toy2d.lopsided_mixture()
    axis = torch.linspace(-5, 5, 401)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).view(-1, 2)
    cell = (axis[1] - axis[0]) ** 2
    for alpha_bar in (1.0, 0.5, 0.05):
        total = toy2d.mixture_log_prob(grid, mixture, alpha_bar).exp().sum() * cell
        assert total.item() == pytest.approx(1.0, abs=1e-3)
    one = toy2d.Mixture(torch.tensor([[1.0, -2.0]]), torch.ones(1), 0.5)
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    expected = torch.distributions.MultivariateNormal(one.centres[0], 0.25 * torch.eye(2)).log_prob(x)
    torch.testing.assert_close(toy2d.mixture_log_prob(x, one), expected)


@pytest.mark.parametrize("alpha_bar", [1.0, 0.7, 0.1])
def test_mixture_score_is_the_gradient_of_the_log_density(alpha_bar):
    mixture = toy2d.lopsided_mixture()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)).mul(1.5).requires_grad_()
    (gradient,) = torch.autograd.grad(toy2d.mixture_log_prob(x, mixture, alpha_bar).sum(), x)
    torch.testing.assert_close(toy2d.mixture_score(x.detach(), mixture, alpha_bar), gradient, rtol=1e-4, atol=1e-4)


def test_mode_coverage_on_hand_made_samples():
    mixture = toy2d.ring_mixture(8, radius=2.0, std=0.1)
    c = mixture.centres
    # 600 points on mode 0, 300 on mode 3, 60 on mode 5 (6%), 40 on mode 6 (4%: too few), and 0 elsewhere
    samples = torch.cat([c[0].repeat(600, 1), c[3].repeat(300, 1), c[5].repeat(60, 1), c[6].repeat(40, 1)])
    coverage = toy2d.mode_coverage(samples, mixture)
    assert coverage.n_covered == 3
    assert coverage.covered.tolist() == [True, False, False, True, False, True, False, False]
    assert coverage.high_quality == 1.0
    # a point 2.9 std from a centre still counts, one 3.1 std away does not
    offsets = torch.tensor([[0.29, 0.0], [0.31, 0.0]])
    edge = toy2d.mode_coverage(c[0] + offsets, mixture, min_share=0.5)
    assert edge.shares[0].item() == 0.5 and edge.high_quality == 0.5
    # all points at the centre of the ring cover nothing
    assert toy2d.mode_coverage(torch.zeros(100, 2), mixture).n_covered == 0
    # the data itself covers all 8
    assert toy2d.mode_coverage(toy2d.sample_mixture(mixture, 1000), mixture).n_covered == 8


def test_bad_inputs_are_explained():
    mixture = toy2d.ring_mixture()
    with pytest.raises(ValueError, match="N x 2"):
        toy2d.mode_coverage(torch.zeros(10, 3), mixture)
    with pytest.raises(ValueError, match="min_share"):
        toy2d.mode_coverage(torch.zeros(10, 2), mixture, min_share=0)
    with pytest.raises(ValueError, match="std > 0"):
        toy2d.ring_mixture(std=0)
    with pytest.raises(ValueError, match="alpha_bar"):
        toy2d.mixture_score(torch.zeros(1, 2), mixture, alpha_bar=0.0)
    with pytest.raises(ValueError, match="positive"):
        toy2d.sample_mixture(mixture, 0)
    with pytest.raises(ValueError, match="activation"):
        toy2d.MLP2d(activation="tanh")
    with pytest.raises(ValueError, match="3 numbers per row"):
        toy2d.MLP2d(3, 1)(torch.zeros(4, 2))


def test_networks_take_and_give_the_right_shapes():
    torch.manual_seed(0)
    assert toy2d.MLP2d(4, 2, hidden=16, layers=3)(torch.zeros(5, 4)).shape == (5, 2)
    discriminator = toy2d.MLP2d(2, 1, activation="leaky_relu")
    assert discriminator(torch.zeros(7, 2)).shape == (7, 1)
    net = toy2d.TimeMLP2d(timesteps=100, hidden=32, layers=2, frequencies=3)
    out = net(torch.zeros(6, 2), torch.arange(6) * 19)
    assert out.shape == (6, 2)
    # the timestep matters: the same point at two times gives two predictions
    assert not torch.allclose(out[0], out[1])
    assert net.net.in_dim == 2 + 2 * 3
    assert math.isclose(float(net.frequencies[1] / net.frequencies[0]), 2.0)
