"""Tests for course_utils.diffusion: schedules, the forward process, the loss and both samplers."""

import math

import pytest
import torch

from course_utils import diffusion as D


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_is_a_valid_noising_process(kind):
    s = D.make_schedule(200, kind)
    assert s.timesteps == 200 and s.kind == kind
    assert torch.all(s.betas > 0) and torch.all(s.betas < 1)
    assert torch.allclose(s.alphas, 1 - s.betas)
    # alpha_bar is the running product of alpha, strictly decreasing from almost 1 to almost 0.
    assert torch.allclose(s.alpha_bar, torch.cumprod(s.alphas.double(), 0).float(), rtol=1e-5)
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])
    assert s.alpha_bar[0] > 0.97 and s.alpha_bar[-1] < 1e-3
    assert s.alpha_bar_prev[0] == 1 and torch.equal(s.alpha_bar_prev[1:], s.alpha_bar[:-1])


def test_linear_schedule_matches_ddpm_numbers():
    s = D.make_schedule(1000, "linear")
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.betas[500].item() == pytest.approx(1e-4 + 500 / 999 * (0.02 - 1e-4), rel=1e-5)
    # With T=1000 the image signal is essentially gone at the end (alpha_bar_T ~ 4e-5 in the paper).
    assert s.alpha_bar[-1].item() == pytest.approx(4.04e-5, rel=0.05)
    # A shorter schedule is rescaled to destroy the image about as fully.
    assert D.make_schedule(100, "linear").alpha_bar[-1] < 1e-3


def test_cosine_schedule_follows_its_closed_form():
    T, s_ = 100, 0.008
    s = D.make_schedule(T, "cosine")
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 50, 90):  # index t is step t + 1
        assert s.alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-4)
    # The cosine schedule keeps more signal halfway than the linear one: fewer steps wasted on pure noise.
    assert s.alpha_bar[T // 2] > D.make_schedule(T, "linear").alpha_bar[T // 2]


def test_posterior_coefficients_match_ho_eq_7():
    s = D.make_schedule(50, "linear")
    t = 20
    beta, ab, ab_prev, a = (v[t].double().item() for v in (s.betas, s.alpha_bar, s.alpha_bar_prev, s.alphas))
    assert s.posterior_variance[t].item() == pytest.approx((1 - ab_prev) / (1 - ab) * beta, rel=1e-4)
    assert s.posterior_mean_coef_x0[t].item() == pytest.approx(math.sqrt(ab_prev) * beta / (1 - ab), rel=1e-4)
    assert s.posterior_mean_coef_xt[t].item() == pytest.approx(math.sqrt(a) * (1 - ab_prev) / (1 - ab), rel=1e-4)
    # The posterior mean is the precision-weighted blend of the two Gaussians it comes from:
    # q(x_t | x_{t-1}) = N(sqrt(a) x_{t-1}, beta) and q(x_{t-1} | x_0) = N(sqrt(ab_prev) x_0, 1 - ab_prev).
    x0, xt = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    precision = a / beta + 1 / (1 - ab_prev)
    expected = (math.sqrt(a) / beta * xt.double() + math.sqrt(ab_prev) / (1 - ab_prev) * x0.double()) / precision
    got = D.posterior_mean(x0, xt, torch.full((4,), t), s)
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert s.posterior_variance[t].item() == pytest.approx(1 / precision, rel=1e-4)


def test_q_sample_closed_form_and_statistics():
    s = D.make_schedule(100, "cosine")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 1, 2, 2, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.full((4000,), 30)
    ab = s.alpha_bar[30]
    assert torch.allclose(D.q_sample(x0, t, noise, s), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    # At t = 0 the image is almost untouched; at t = T-1 it is standard normal noise, whatever x0 was.
    x_last = D.q_sample(torch.ones(4000, 1, 2, 2), torch.full((4000,), 99), noise, s)
    assert abs(x_last.mean().item()) < 0.05 and x_last.std().item() == pytest.approx(1.0, abs=0.05)
    assert (D.q_sample(x0, torch.zeros(4000, dtype=torch.long), noise, s) - x0).abs().mean() < 0.05
    # predict_x0 inverts q_sample exactly when told the noise.
    assert torch.allclose(D.predict_x0(D.q_sample(x0, t, noise, s), t, noise, s), x0, atol=1e-4)


def test_bad_inputs_are_explained():
    s = D.make_schedule(10)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="0 .. 9"):
        D.q_sample(x, torch.tensor([0, 10]), x, s)
    with pytest.raises(ValueError, match="integer tensor"):
        D.q_sample(x, torch.tensor([0.5, 1.0]), x, s)
    with pytest.raises(ValueError, match="kind"):
        D.make_schedule(10, "quadratic")
    with pytest.raises(ValueError, match="steps"):
        D.ddim_timesteps(s, 11)


class PerfectPredictor:
    """A 'network' that knows the one true image x0 and so returns the exact noise in any x_t."""

    def __init__(self, x0, schedule):
        self.x0, self.schedule = x0, schedule

    def __call__(self, x_t, t):
        ab = self.schedule.alpha_bar[t].view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def test_perfect_noise_predictor_recovers_x0_with_both_samplers():
    s = D.make_schedule(100, "cosine")
    x0 = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    model = PerfectPredictor(x0, s)
    for steps in (1, 5, 100):
        out, _ = D.ddim_sample(model, x0.shape, s, steps=steps, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out, x0, atol=2e-3)  # float32: one jump from alpha_bar ~ 1e-5 loses a little
    out, _ = D.ddpm_sample(model, x0.shape, s, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-4)


def test_loss_is_zero_for_a_perfect_predictor_and_positive_otherwise():
    s = D.make_schedule(50)
    x0 = torch.rand(8, 1, 8, 8) * 2 - 1
    assert D.diffusion_loss(PerfectPredictor(x0, s), x0, s).item() < 1e-8
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731  predicting "no noise" costs E[eps^2] = 1
    assert D.diffusion_loss(zero, torch.zeros(512, 1, 8, 8), s).item() == pytest.approx(1.0, abs=0.05)


def test_ddim_step_matches_song_eq_12():
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    ab_t, ab_prev, eta = torch.tensor(0.3), torch.tensor(0.6), 0.5
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).sqrt()
    expected = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps + sigma * z
    got = D.ddim_step(x_t, eps, ab_t, ab_prev, eta=eta, noise=z, clip=None)
    assert torch.allclose(got, expected, atol=1e-6)


def test_samplers_shapes_determinism_and_trajectories():
    s = D.make_schedule(20)
    model = lambda x, t: 0.1 * x + 0.01 * t.view(-1, 1, 1, 1).float()  # noqa: E731
    a, traj = D.ddim_sample(
        model, (5, 1, 8, 8), s, steps=4, generator=torch.Generator().manual_seed(3), return_trajectory=True
    )
    b, _ = D.ddim_sample(model, (5, 1, 8, 8), s, steps=4, generator=torch.Generator().manual_seed(3))
    c, _ = D.ddim_sample(model, (5, 1, 8, 8), s, steps=4, generator=torch.Generator().manual_seed(4))
    assert a.shape == (5, 1, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert len(traj) == 5 and torch.equal(traj[-1], a)
    assert a.abs().max() <= 1.0 + 1e-5  # clipped predictions keep the final image in range
    d, traj = D.ddpm_sample(model, (5, 1, 8, 8), s, generator=torch.Generator().manual_seed(3), trajectory_every=5)
    e, _ = D.ddpm_sample(model, (5, 1, 8, 8), s, generator=torch.Generator().manual_seed(3))
    assert d.shape == (5, 1, 8, 8) and torch.equal(d, e) and len(traj) == 4
    assert D.ddim_timesteps(s, 4).tolist() == [19, 13, 6, 0]
