"""Predicting the noise is estimating the score; Langevin dynamics samples from a score."""

import math

import pytest
import torch

from course_utils import diffusion, langevin, toy2d, toy2d_train


def test_score_from_the_best_noise_guess_is_the_exact_score_of_a_gaussian():
    # x_0 ~ N(m, s^2 I) gives x_t ~ N(sqrt(ab) m, v I), v = ab s^2 + 1 - ab. The best guess of the noise from x_t
    # (the regression the loss learns) is E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / v.
    schedule = diffusion.make_schedule(100, "linear")
    m, s = torch.tensor([1.5, -0.5]), 0.3
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for step in (0, 10, 50, 99):
        ab = float(schedule.alpha_bar[step])
        v = ab * s**2 + 1 - ab
        best_eps = math.sqrt(1 - ab) * (x_t - math.sqrt(ab) * m) / v
        t = torch.full((64,), step)
        exact = -(x_t - math.sqrt(ab) * m) / v  # grad log N(x; sqrt(ab) m, v I)
        torch.testing.assert_close(diffusion.score_from_eps(best_eps, t, schedule), exact)


def test_score_from_eps_agrees_with_the_mixture_toy():
    # On a one-component mixture the two formulas meet: -eps/sqrt(1 - ab) with the best eps is mixture_score.
    schedule = diffusion.make_schedule(50, "cosine")
    mixture = toy2d.Mixture(torch.tensor([[0.5, 1.0]]), torch.ones(1), 0.4)
    x = torch.randn(10, 2)
    t = torch.full((10,), 20)
    ab = float(schedule.alpha_bar[20])
    best_eps = -math.sqrt(1 - ab) * toy2d.mixture_score(x, mixture, ab)
    torch.testing.assert_close(diffusion.score_from_eps(best_eps, t, schedule), toy2d.mixture_score(x, mixture, ab))


def test_langevin_samples_a_gaussian_from_its_score():
    mean, std = torch.tensor([2.0, -1.0]), 0.5
    x0 = torch.zeros(4000, 2)
    samples = langevin.langevin_sample(
        lambda x: -(x - mean) / std**2, x0, step_size=0.01, steps=500, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(samples.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.full((2,), std), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="step_size"):
        langevin.langevin_sample(lambda x: x, x0, step_size=0, steps=1)


def test_annealed_langevin_with_the_exact_scores_finds_the_mixture():
    mixture = toy2d.lopsided_mixture()
    schedule = diffusion.make_schedule(100, "linear")

    def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # a perfect noise predictor
        ab = float(schedule.alpha_bar[int(t[0])])
        return -math.sqrt(1 - ab) * toy2d.mixture_score(x, mixture, ab)

    samples, trajectory = langevin.annealed_langevin_sample(
        exact_eps, (2000, 2), schedule, levels=20, steps_per_level=20, step_scale=0.5,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert len(trajectory) == 20 and samples.shape == (2000, 2)
    coverage = toy2d.mode_coverage(samples, mixture)
    torch.testing.assert_close(coverage.shares, torch.tensor([0.5, 0.3, 0.2]), atol=0.08, rtol=0)
    assert coverage.high_quality > 0.9


def test_a_toy_diffusion_model_learns_the_score():
    mixture = toy2d.lopsided_mixture()
    run = toy2d_train.train_toy_diffusion(mixture, 400, hidden=64, batch_size=256, seed=0)
    assert len(run.history["loss"]) == 400
    assert sum(run.history["loss"][-50:]) < sum(run.history["loss"][:50])
    x = toy2d.gaussian_mixture(200, generator=torch.Generator().manual_seed(1))
    t = 50
    learned = run.score(x, t)
    exact = toy2d.mixture_score(x, mixture, float(run.schedule.alpha_bar[t]))
    cosine = torch.nn.functional.cosine_similarity(learned, exact, dim=1).mean()
    assert cosine > 0.8
    points = run.sample_ddpm(300, seed=0)
    assert points.shape == (300, 2) and toy2d.mode_coverage(points, mixture).n_covered == 3
